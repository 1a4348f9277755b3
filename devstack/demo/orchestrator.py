"""``hub demo``: the whole system in one command.

1. Start the local Kafka and Neo4j if they are not running (the launcher), then an ingest worker and the
   API as child processes, the worker configured with the demo producers (``HUB_PRODUCERS``).
2. Publish the whole-system network (:mod:`devstack.demo.network`) as five producers, each to its own topic.
3. Wait until the worker has applied it, then print the page's address, the GraphQL endpoint and a token
   for each demo user, with how many objects each of them can see.
4. Stream live changes (:mod:`devstack.demo.simulator`) until Ctrl-C, then stop the worker and the API, and
   the services too if this command started them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer
from hubql import page
from hubql.page import page_dir
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from devstack import page_build
from devstack.demo.network import DemoNetwork, build_network
from devstack.demo.producers import NESO, PRODUCER_CONFIG, PRODUCER_IDS, producers_json
from devstack.demo.simulator import Simulator
from devstack.demo.stack import DemoError, DemoStack, child_env, ensure_services, visible_count
from devstack.services import launcher
from devstack.services.errors import ServiceError
from devstack.services.layout import StateLayout
from hub.auth import dev_tokens
from hub.settings import Settings, get_settings
from ingest.producer import HubProducer, ProduceStats
from ingest.producer_onboarding import add_producer

console = Console()
err_console = Console(stderr=True)
Report = Callable[[str], None]
SYSTEM_OPERATOR_ORG = PRODUCER_CONFIG[NESO]["org"]
# What the demo's API runs with beyond the hub's secure defaults (printed when the demo starts).
DEMO_INSECURE_SETTINGS: dict[str, str] = {"HUB_DEV_MODE": "true", "HUB_ANONYMOUS_ACCESS": "true"}


async def add_demo_producers(settings: Settings) -> None:
    """Give each demo producer its Kafka principal, topic and ACL (idempotent), as an operator would with
    `hub producers add`: the demo publishes as the producers themselves, not as an administrator."""
    for pid, config in PRODUCER_CONFIG.items():
        await add_producer(settings, pid, **config)


def producer_clients(
    network: DemoNetwork, settings: Settings, ontology: Any, batch_size: int = 500
) -> dict[str, HubProducer]:
    return {
        pid: HubProducer(
            pid,
            settings=settings,
            ontology=ontology,
            label_header=network.header_label(pid),
            batch_size=batch_size,
        )
        for pid in PRODUCER_IDS
    }


async def publish_network(
    network: DemoNetwork, producers: dict[str, HubProducer], report: Report | None = None
) -> dict[str, ProduceStats]:
    """Publish every producer's part of the network; producers must be started."""
    stats: dict[str, ProduceStats] = {}
    for pid in PRODUCER_IDS:
        if report is not None:
            report(f"Publishing {len(network.events[pid])} objects as {pid}")
        stats[pid] = await producers[pid].send_all(network.events[pid])
        if stats[pid].rejected:
            first = stats[pid].rejections[0]
            raise DemoError(
                f"{stats[pid].rejected} demo event(s) of {pid} failed the local checks, e.g. {first}"
            )
    return stats


def wait_applied(
    base: str, token: str, expected: int, timeout_s: float, check: Callable[[], None], report: Report
) -> int:
    """Poll the counts an administrator sees until they cover the published objects (or time runs out)."""
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        check()
        try:
            seen = visible_count(base, token)
        except DemoError as exc:
            report(f"Waiting for the worker ({exc})")
        if seen >= expected:
            return seen
        report(f"Waiting for the worker: {seen:,} of {expected:,} objects in the graph")
        time.sleep(1.0)
    return seen


def _users_table(base: str, users: list[dict[str, Any]]) -> Table:
    table = Table(title="Demo users (tokens below)", header_style="bold")
    for column in ("user", "org", "clearance", "roles", "objects visible"):
        table.add_column(column, justify="right" if column == "objects visible" else "left")
    for user in users:
        try:
            count = f"{visible_count(base, user['token']):,}"
        except DemoError:
            count = "?"
        table.add_row(user["user"], user["org"], user["clearance"], ", ".join(user["roles"]), count)
    return table


def _status(sim: Simulator, rate: float) -> Panel:
    st = sim.stats
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(st.events.items()))
    out = ", ".join(f"{o.kind} {o.mrid[:8]}" for o in sim.outages.values()) or "none"
    return Panel(
        f"[bold]{st.total:,}[/] changes sent at ~{rate:g}/s ({kinds})\n"
        f"outages now: {out}; {st.outages} so far, {st.restorations} restored\n"
        "[dim]Ctrl-C stops the demo[/]",
        title="Live feed",
        expand=False,
    )


async def _run(
    settings: Settings,
    network: DemoNetwork,
    ontology: Any,
    stack: DemoStack,
    rate: float,
    duration_s: float | None,
    simulate: bool,
    seed: int | None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await add_demo_producers(settings)
    producers = producer_clients(network, settings, ontology)
    for producer in producers.values():
        await producer.start()
    try:
        with console.status("Publishing the network") as spinner:
            await publish_network(network, producers, spinner.update)
            # The system operator's engineer is cleared for every label the demo assigns.
            watcher = next(u for u in dev_tokens(settings) if u["org"] == SYSTEM_OPERATOR_ORG)
            seen = await asyncio.to_thread(
                wait_applied,
                stack.api_base,
                watcher["token"],
                network.count(),
                180.0,
                stack.check,
                spinner.update,
            )
        users = dev_tokens(settings)
        tokens_file = StateLayout.of(settings.state_dir).root / "demo-tokens.json"
        tokens_file.write_text(json.dumps(users, indent=2), encoding="utf-8")
        console.print(
            f"[green]Network published[/]: {network.count():,} objects from {len(PRODUCER_IDS)} "
            f"producers; {seen:,} in the graph."
        )
        if seen < network.count():
            console.print(
                "[yellow]The worker has not applied everything yet[/] "
                f"(see {stack.log_dir / 'demo-worker.log'})"
            )
        has_page = page_dir(settings) is not None
        console.print(
            f"Page:     [bold]{stack.api_base}/[/]"
            + ("" if has_page else "  [yellow](not built: ./dev.sh build, then reload)[/]")
        )
        console.print(
            f"GraphQL:  [bold]{stack.api_base}/graphql[/]  (GraphiQL in a browser; "
            f"websocket subscriptions on the same path)"
        )
        console.print(f"Tokens:   {stack.api_base}/dev/tokens, and saved to {tokens_file}")
        console.print(await asyncio.to_thread(_users_table, stack.api_base, users))
        for user in users:
            console.print(
                f"[bold]{user['user']}[/]: Authorization: Bearer {user['token']}",
                soft_wrap=True,
                highlight=False,
            )
        if not simulate:
            if duration_s is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=duration_s)
            else:
                await stop.wait()
            return
        sim = Simulator(network, ontology, seed=seed)
        with Live(_status(sim, rate), console=console, refresh_per_second=2, transient=False) as live:

            async def refresh() -> None:
                while not stop.is_set():
                    live.update(_status(sim, rate))
                    stack.check()
                    await asyncio.sleep(0.5)

            refresher = asyncio.create_task(refresh())
            try:
                await sim.run(producers, rate, stop, duration_s)
            finally:
                stop.set()
                with contextlib.suppress(Exception):
                    await refresher
                live.update(_status(sim, rate))
    finally:
        for producer in producers.values():
            with contextlib.suppress(Exception):
                await producer.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _build_page(settings: Settings, report: Report) -> str | None:
    """Build the page in a checkout unless it is fresh; what went wrong, if anything (the demo goes on)."""
    if settings.frontend_dir is not None or page.is_built(page.PACKAGED) or not page_build.FRONTEND.is_dir():
        return None  # a page of the settings' or of an installed hub's: nothing to build here
    try:
        page_build.ensure_page(report=report)
    except page_build.PageBuildError as exc:
        return str(exc)
    return None


def demo(
    rate: Annotated[float, typer.Option(help="Live changes per second.")] = 20.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")
    ] = None,
    simulate: Annotated[bool, typer.Option(help="Stream live changes after publishing.")] = True,
    keep_services: Annotated[
        bool, typer.Option(help="Leave Kafka and Neo4j running at the end even if the demo started them.")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Seed of the simulator (repeatable feeds).")] = None,
) -> None:
    """Run the whole system: services, worker, API, a published whole-system network and a live feed."""
    settings = get_settings()
    started: list[Any] = []
    stack: DemoStack | None = None
    page_problem: str | None = None
    with console.status("Starting…") as spinner:

        def report(message: str) -> None:
            spinner.update(message)

        try:
            started = ensure_services(settings, report)
            page_problem = _build_page(settings, report)
            # The hub's defaults are secure; the demo is for one person on their own machine, so its API
            # hands out demo tokens and serves callers without a token. Said out loud below.
            env = child_env(
                settings,
                {"HUB_PRODUCERS": producers_json(), **DEMO_INSECURE_SETTINGS},
            )
            stack = DemoStack(settings, env, StateLayout.of(settings.state_dir).logs_dir())
            stack.start(report)
            report("Loading the ontology and assembling the network")
            from ontology.loader import load_ontology

            ontology = load_ontology()
            network = build_network(ontology)
        except (ServiceError, DemoError) as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            _shutdown(settings, stack, started, keep_services)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            # Ctrl-C while starting: stop what was started so far, as at the end.
            _shutdown(settings, stack, started, keep_services)
            raise typer.Exit(code=130) from None
    if page_problem:
        err_console.print(f"[yellow]No page:[/] {page_problem}", highlight=False)
    configured = ", ".join(
        f"{pid} ({cfg['org']}, {cfg['clearance']})" for pid, cfg in PRODUCER_CONFIG.items()
    )
    console.print(f"Producers: {configured}")
    console.print(
        "[yellow]Demo only:[/] the API runs with development mode on (anyone on this machine can fetch "
        "demo tokens, admin included, from /dev/tokens; GraphiQL and introspection are on) and anonymous "
        f"access on ({', '.join(f'{k}={v}' for k, v in DEMO_INSECURE_SETTINGS.items())}). "
        "Never run a hub with these settings anywhere else.",
        highlight=False,
    )
    assert stack is not None
    code = 0
    try:
        asyncio.run(
            _run(
                settings,
                network,
                ontology,
                stack,
                rate,
                duration,
                simulate,
                seed,
            )
        )
    except DemoError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        code = 1
    except KeyboardInterrupt:
        pass
    finally:
        console.print("Stopping the demo…")
        _shutdown(settings, stack, started, keep_services)
    raise typer.Exit(code=code)


def _shutdown(settings: Settings, stack: DemoStack | None, started: list[Any], keep_services: bool) -> None:
    if stack is not None:
        stack.stop()
    if started and not keep_services:
        with contextlib.suppress(ServiceError):
            launcher.stop(settings, started)
        console.print(f"Stopped the services this demo started: {', '.join(started)}")
