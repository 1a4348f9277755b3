"""``hub services up | status | down | logs``: the command line over :mod:`devstack.services.launcher`."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated, cast

import typer
from rich.console import Console
from rich.table import Table

from devstack.services import launcher
from devstack.services.errors import ServiceError
from devstack.services.layout import SERVICE_NAMES, ServiceName, StateLayout
from devstack.services.process import log_tail
from hub.settings import get_settings

app = typer.Typer(
    help="Run the local Kafka and Neo4j (JVM processes, data under the state folder).", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)


class Service(StrEnum):
    kafka = "kafka"
    neo4j = "neo4j"


ServicesArg = Annotated[
    list[Service] | None, typer.Argument(help="Which services (default: all).", show_default=False)
]


def _selected(services: list[Service] | None) -> list[ServiceName]:
    if not services:
        return list(SERVICE_NAMES)
    return [cast(ServiceName, s.value) for s in services]


def _fail(exc: ServiceError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
    return typer.Exit(code=1)


def _table(statuses: list[launcher.ServiceStatus]) -> Table:
    table = Table(show_header=True, header_style="bold")
    for column in ("service", "state", "address", "pid"):
        table.add_column(column)
    table.add_column("log", overflow="fold")
    for st in statuses:
        state = (
            "[green]ready[/]"
            if st.ready
            else ("[dim]stopped[/]" if st.detail == "stopped" else f"[yellow]{st.detail}[/]")
        )
        table.add_row(st.title, state, st.address, str(st.pid or "-"), str(st.log_file))
    return table


@app.command()
def up(services: ServicesArg = None) -> None:
    """Fetch (first time only), start and wait until each service answers. Running services are kept."""
    settings = get_settings()
    try:
        with console.status("Checking the services…") as spinner:
            statuses = launcher.ensure_up(
                settings, _selected(services), progress=lambda msg: spinner.update(msg)
            )
    except ServiceError as exc:
        raise _fail(exc) from exc
    console.print(_table(statuses))
    console.print(f"[green]Services ready[/] (state folder {StateLayout.of(settings.state_dir).root})")


@app.command()
def status(services: ServicesArg = None) -> None:
    """Show each service: ready or not, with its address, pid and log file."""
    console.print(_table(launcher.status(get_settings(), _selected(services))))


@app.command()
def down(services: ServicesArg = None) -> None:
    """Stop the services this launcher started (SIGTERM, then SIGKILL after a timeout)."""
    try:
        with console.status("Stopping…"):
            stopped = launcher.stop(get_settings(), _selected(services))
    except ServiceError as exc:
        raise _fail(exc) from exc
    if stopped:
        console.print("Stopped: " + ", ".join(launcher.TITLES[name] for name in stopped))
    else:
        console.print("Nothing was running.")


@app.command()
def logs(
    service: Annotated[Service, typer.Argument(help="kafka or neo4j")],
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines from the end.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
) -> None:
    """Print the end of a service's log."""
    name = _selected([service])[0]
    path = StateLayout.of(get_settings().state_dir).log_file(name)
    if not path.is_file():
        err_console.print(f"No log yet at {path}")
        raise typer.Exit(code=1)
    console.print(log_tail(path, lines), markup=False, highlight=False, soft_wrap=True)
    if not follow:
        return
    with path.open("rb") as handle:
        handle.seek(0, 2)
        try:
            while True:
                chunk = handle.read()
                if chunk:
                    console.out(chunk.decode(errors="replace"), end="", highlight=False)
                else:
                    time.sleep(0.5)
        except KeyboardInterrupt:
            return


@app.command("kafka-compose")
def kafka_compose(
    host: Annotated[str, typer.Option(help="Kafka's name on the compose network.")] = "kafka",
) -> None:
    """Write docker-compose.yml's Kafka configuration (TLS, SCRAM users, ACL settings) to the state folder."""
    from devstack.services.kafka_compose import write_compose_config

    console.print(f"Kafka start script: {write_compose_config(get_settings(), host)}")


@app.command("kafka-acls")
def kafka_acls() -> None:
    """Grant the worker, the API and the configured producers their Kafka ACLs (as the admin principal)."""
    from devstack.services import kafka

    kafka.apply_service_acls(get_settings())
    console.print("ACLs of the worker, the API and the configured producers are in place.")
