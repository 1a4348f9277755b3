"""``hub demo``: the whole system in one command.

1. Start the local Kafka and Neo4j if they are not running (the launcher), then an ingest worker and the
   API as child processes, the worker configured with the demo producers (``HUB_PRODUCERS``).
2. Publish the whole-system network (:mod:`devstack.demo.network`) as five producers, each to its own topic.
3. Wait until the worker has applied it, then print the page's address, the GraphQL endpoint and a token
   for each demo user, with how many objects each of them can see.
4. Stream live changes (:mod:`devstack.demo.simulator`) until Ctrl-C, then stop the worker and the API, and
   the services too if this command started them.

A stop signal (SIGINT, SIGTERM or SIGHUP; to this process alone, as a supervisor sends it, or to its whole
process group, as a terminal's Ctrl-C does) ends the demo the same way at any point, also while it is
still starting: see :class:`StopSignals`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Annotated, Any, TypeVar

import typer
from hubql import page
from hubql.page import page_dir
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from devstack import page_build
from devstack.demo.network import DemoNetwork, build_network
from devstack.demo.producers import CONTRACTS_DIR, NESO, PRODUCER_CONFIG, PRODUCER_IDS, producers_json
from devstack.demo.simulator import Simulator
from devstack.demo.stack import DemoError, DemoStack, child_env, ensure_services, visible_count
from devstack.services import launcher
from devstack.services.errors import ServiceError
from devstack.services.layout import ServiceName, StateLayout
from devstack.services.process import STOP_SIGNALS
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


T = TypeVar("T")


class DemoInterrupted(BaseException):
    """A stop signal arrived while the demo was starting. A BaseException, as KeyboardInterrupt is, so that
    no ``except Exception`` on the way (a probe of a starting service) takes it for a failed attempt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP all end the demo in one orderly way, whichever phase it is in.

    Starting: the handler raises :class:`DemoInterrupted` wherever the main thread is (waiting for a
    service, the page build, the API), so a start is cut short at once; starting a process and recording
    its pid are never split (``stop_signals_held``). Running: it calls the callback given to
    :meth:`notify` (the event loop's stop). Stopping: further signals are only noted, so that a second
    Ctrl-C cannot cut the stopping short and leave a service running.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._notify: Callable[[], None] | None = None
        self._holding = False

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            # A shell starts background jobs with SIGINT ignored, and then a supervisor's SIGINT would be
            # lost: the demo takes SIGINT and SIGTERM over in any case. An ignored SIGHUP (nohup) stays so.
            if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
                continue
            signal.signal(signum, self._handle)

    def notify(self, callback: Callable[[], None]) -> None:
        """From now on a signal calls ``callback`` instead of raising."""
        self._notify = callback

    def hold(self) -> None:
        """From now on a signal is only noted: the demo is stopping already."""
        self._holding = True

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        if self._holding:
            return
        if self._notify is not None:
            self._notify()
            return
        self._holding = True
        raise DemoInterrupted(signum)


async def unless_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, T]) -> T | None:
    """``work``'s result, or None when ``stop`` is set first (``work`` is then cancelled and awaited)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopped):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
    if task.cancelled():
        return None
    return task.result()


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


async def wait_applied(
    base: str, token: str, expected: int, timeout_s: float, check: Callable[[], None], report: Report
) -> int:
    """Poll the counts an administrator sees until they cover the published objects (or time runs out).
    A coroutine so that a stop signal cancels the wait at once, not after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        check()
        try:
            seen = await asyncio.to_thread(visible_count, base, token)
        except DemoError as exc:
            report(f"Waiting for the worker ({exc})")
        if seen >= expected:
            return seen
        report(f"Waiting for the worker: {seen:,} of {expected:,} objects in the graph")
        await asyncio.sleep(1.0)
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
    signals: StopSignals,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop() -> None:
        # Called from the signal handler; the loop may be closing already when a late signal comes.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stop.set)

    signals.notify(request_stop)
    producers: dict[str, HubProducer] = {}
    try:
        await unless_stopped(stop, add_demo_producers(settings))
        if stop.is_set():
            return
        producers = producer_clients(network, settings, ontology)
        for producer in producers.values():
            await producer.start()
        with console.status("Publishing the network") as spinner:

            async def publish_and_wait() -> int:
                await publish_network(network, producers, spinner.update)
                # The system operator's engineer is cleared for every label the demo assigns.
                watcher = next(u for u in dev_tokens(settings) if u["org"] == SYSTEM_OPERATOR_ORG)
                return await wait_applied(
                    stack.api_base,
                    watcher["token"],
                    network.count(),
                    180.0,
                    stack.check,
                    spinner.update,
                )

            # Publishing and waiting for the worker take minutes on a slow machine: a stop cuts them short.
            seen = await unless_stopped(stop, publish_and_wait())
        if seen is None:
            return
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
    signals = StopSignals()
    signals.install()
    started: list[ServiceName] = []
    stack: DemoStack | None = None
    code = 0
    # One way out, whatever ends the demo (a stop signal in any phase, an error, --duration): the finally
    # below stops the worker, the API and the services this demo started.
    try:
        with console.status("Starting…") as spinner:
            ensure_services(settings, spinner.update, started)
            page_problem = _build_page(settings, spinner.update)
            # The hub's defaults are secure; the demo is for one person on their own machine, so its API
            # hands out demo tokens and serves callers without a token. Said out loud below.
            env = child_env(
                settings,
                {
                    "HUB_PRODUCERS": producers_json(),
                    "HUB_CONTRACTS_DIR": str(CONTRACTS_DIR),
                    **DEMO_INSECURE_SETTINGS,
                    # One API process starts soonest; HUB_API_PROCESSES asks for more (a load benchmark).
                    "HUB_API_PROCESSES": str(settings.api_processes or 1),
                },
            )
            stack = DemoStack(settings, env, StateLayout.of(settings.state_dir).logs_dir())
            # The producers' topics first, so that the worker subscribes to all of them as it starts rather
            # than joining each as it appears, a rebalance each time, while the network is being written.
            spinner.update("Adding the demo producers")
            asyncio.run(add_demo_producers(settings))
            stack.start(spinner.update)
            spinner.update("Loading the ontology and assembling the network")
            from ontology.loader import load_ontology

            ontology = load_ontology()
            network = build_network(ontology)
        if page_problem:
            err_console.print(f"[yellow]No page:[/] {page_problem}", highlight=False)
        configured = ", ".join(
            f"{pid} ({cfg['org']}, {cfg['clearance']})" for pid, cfg in PRODUCER_CONFIG.items()
        )
        console.print(f"Producers: {configured}")
        console.print(
            "[yellow]Demo only:[/] the API runs with development mode on (anyone on this machine can fetch "
            "demo tokens, admin included, from /dev/tokens; GraphiQL and introspection are on) and "
            f"anonymous access on ({', '.join(f'{k}={v}' for k, v in DEMO_INSECURE_SETTINGS.items())}). "
            "Never run a hub with these settings anywhere else.",
            highlight=False,
        )
        asyncio.run(_run(settings, network, ontology, stack, rate, duration, simulate, seed, signals))
    except (ServiceError, DemoError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        code = 1
    except DemoInterrupted as interrupted:
        # Only raised before the event loop takes the signals over, i.e. while the demo was starting.
        err_console.print(f"Interrupted by {interrupted} while starting", highlight=False)
        code = 128 + interrupted.signum
    finally:
        signals.hold()
        console.print("Stopping the demo…")
        _shutdown(settings, stack, started, keep_services)
    raise typer.Exit(code=code)


def _shutdown(
    settings: Settings, stack: DemoStack | None, started: list[ServiceName], keep_services: bool
) -> None:
    """Stop the worker and the API, then the services this demo started (unless --keep-services)."""
    try:
        if stack is not None:
            stack.stop()
    finally:
        if started and not keep_services:
            try:
                stopped = launcher.stop(settings, started)
            except ServiceError as exc:
                names = ", ".join(started)
                err_console.print(f"[bold red]error:[/] stopping {names}: {exc}", highlight=False)
            else:
                if stopped:
                    console.print(f"Stopped the services this demo started: {', '.join(stopped)}")
