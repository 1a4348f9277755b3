"""The ``hub`` command, the hub's one composition root: it registers each area's sub-app or command.

Only this package puts the layers together (the API of :mod:`hubql`, the worker of :mod:`ingest`, the
development stack of :mod:`devstack`); each of them runs without the others.
"""

from __future__ import annotations

from typing import Annotated

import typer

from devstack.demo.orchestrator import demo as demo_command
from hub.settings import get_settings
from hubcli.access import access_app
from hubcli.contracts import app as contracts_app
from hubcli.deadletters import deadletters as deadletters_command
from hubcli.produce import EXIT_STATUSES
from hubcli.produce import produce as produce_command
from hubcli.producers import app as producers_app
from hubcli.schema import schema_app
from hubcli.services import app as services_app
from hubcli.tokens import token as token_command

app = typer.Typer(help="The energy knowledge-graph hub.", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(schema_app, name="schema")
app.add_typer(producers_app, name="producers")
app.add_typer(contracts_app, name="contracts")
app.add_typer(access_app, name="access")
app.command("token")(token_command)
app.command("produce", epilog=EXIT_STATUSES)(produce_command)
app.command("deadletters")(deadletters_command)
app.command("demo")(demo_command)


@app.command("api")
def api_command(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings.api_host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings.api_port).")] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="API processes sharing the port (default: settings.api_processes; 0: one per core, "
            "at most four).",
        ),
    ] = None,
) -> None:
    """Serve the GraphQL API, HTTP ingest and the planners' page."""
    # Imported when run: the API's imports (schema generation, FastAPI) are not every command's cost.
    from hubql.processes import run

    settings = get_settings()
    given = {"api_host": host, "api_port": port, "api_processes": processes}
    update = {k: v for k, v in given.items() if v is not None}
    run(settings.model_copy(update=update) if update else settings)


@app.command("worker")
def worker_command() -> None:
    """Run an ingest worker: producer topics into the graph (settings from HUB_* variables)."""
    from ingest.worker import main

    main()


if __name__ == "__main__":
    app()
