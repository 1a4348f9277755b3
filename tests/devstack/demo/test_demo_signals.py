"""``./dev.sh demo`` stopped by a signal: SIGINT to its own pid (a supervisor), SIGINT to its whole process
group (a terminal's Ctrl-C) and SIGTERM to its pid, while Kafka and Neo4j are still starting and once the
demo is up. Each time everything it started must be gone (the Kafka and Neo4j JVMs, the worker and the
API, their ports), and the next ``./dev.sh demo`` on the same state folder and ports must come up.

The demo runs on its own state folder and free ports, so the services are its own to start and to stop
(the test session's Kafka and Neo4j are not involved); the jars come from the shared cache.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.services import launcher
from devstack.services.process import port_open
from hub.settings import Settings, get_settings

pytestmark = pytest.mark.services

REPO_ROOT = Path(__file__).resolve().parents[3]
# dev.sh may install into .venv first; then Kafka, Neo4j (about a minute each on a busy two-core machine),
# the worker, the API and the published network.
DEMO_START_TIMEOUT_S = 900.0
# The demo stops the API and the worker (20 s each at most), then the services (SIGKILL after 45 s).
DEMO_STOP_TIMEOUT_S = 240.0


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class OwnDemo:
    """A demo with its own state folder and ports: every service it needs is one it starts itself."""

    settings: Settings
    env: dict[str, str]

    @property
    def state_dir(self) -> Path:
        return Path(self.settings.state_dir)

    @property
    def ports(self) -> dict[str, int]:
        s = self.settings
        return {
            "HUB_KAFKA_BOOTSTRAP": int(s.kafka_bootstrap.rsplit(":", 1)[1]),
            "HUB_KAFKA_CONTROLLER_PORT": s.kafka_controller_port,
            "HUB_NEO4J_URI": int(s.neo4j_uri.rsplit(":", 1)[1]),
            "HUB_API_PORT": s.api_port,
            "HUB_WORKER_WEB_PORT": s.worker_web_port,
            "HUB_METRICS_PORT": s.metrics_port,
            "HUB_API_METRICS_PORT": s.api_metrics_port,
        }

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"


@pytest.fixture
def own_demo() -> Iterator[OwnDemo]:
    # Not under pytest's tmp_path: concurrent pytest runs prune old tmp folders, possibly under live JVMs.
    state = Path(tempfile.mkdtemp(prefix="hub-demo-signals-"))
    kafka, controller, bolt, api, worker_web, metrics, api_metrics = _free_ports(7)
    settings = Settings(
        state_dir=state,
        # The jars the test services were started from: a start here downloads nothing.
        cache_dir=get_settings().cache_dir,
        kafka_bootstrap=f"127.0.0.1:{kafka}",
        kafka_controller_port=controller,
        neo4j_uri=f"bolt://127.0.0.1:{bolt}",
        neo4j_password="demo-signals-password",
        api_port=api,
        worker_web_port=worker_web,
        metrics_port=metrics,
        api_metrics_port=api_metrics,
        kafka_heap="512m",
        neo4j_heap="512m",
        neo4j_pagecache="128m",
    )
    # Nothing of the test session's configuration (its services, topics, state folder) reaches the demo.
    env = {key: value for key, value in os.environ.items() if not key.startswith("HUB_")}
    env.pop("VIRTUAL_ENV", None)
    env.update(
        {
            "HUB_STATE_DIR": str(state),
            "HUB_CACHE_DIR": str(settings.cache_dir),
            "HUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HUB_KAFKA_CONTROLLER_PORT": str(controller),
            "HUB_NEO4J_URI": settings.neo4j_uri,
            "HUB_NEO4J_PASSWORD": settings.neo4j_password,
            "HUB_API_PORT": str(api),
            "HUB_WORKER_WEB_PORT": str(worker_web),
            "HUB_METRICS_PORT": str(metrics),
            "HUB_API_METRICS_PORT": str(api_metrics),
            "HUB_KAFKA_HEAP": settings.kafka_heap,
            "HUB_NEO4J_HEAP": settings.neo4j_heap,
            "HUB_NEO4J_PAGECACHE": settings.neo4j_pagecache,
            "COLUMNS": "200",
        }
    )
    demo = OwnDemo(settings, env)
    try:
        yield demo
    finally:
        # Whatever a failed test left behind: the launcher's processes, then anything else of this folder.
        with contextlib.suppress(Exception):
            launcher.stop(settings)
        for pid in _processes_of(state):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(1)
        if not _processes_of(state):
            shutil.rmtree(state, ignore_errors=True)


def _processes_of(state: Path) -> dict[int, str]:
    """Live processes whose command line names the state folder (the JVMs) or that run in it (the
    worker and the API run in its demo-worker and demo-api folders)."""
    found: dict[int, str] = {}
    mark = str(state)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
            status = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue  # gone meanwhile, or not ours to look at
        if status in {"Z", "X"}:
            continue
        if mark in cmdline or cwd == mark or cwd.startswith(mark + os.sep):
            found[int(entry.name)] = cmdline.strip()[:300]
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Run:
    """One ``./dev.sh demo --no-simulate --duration 600`` in its own session (its pid is its group's id)."""

    def __init__(self, demo: OwnDemo, log: Path) -> None:
        self.demo = demo
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["bash", "dev.sh", "demo", "--no-simulate", "--duration", "600"],
                cwd=REPO_ROOT,
                env=demo.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        return self.output()[-4000:]

    def wait_for(
        self, what: str, reached: Callable[[], bool], timeout_s: float = DEMO_START_TIMEOUT_S
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not reached():
            assert self.proc.poll() is None, (
                f"the demo exited ({self.proc.returncode}) before {what}:\n{self.tail()}"
            )
            assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f}s:\n{self.tail()}"
            time.sleep(0.2)

    def wait_starting(self) -> None:
        """Until the launcher has started Kafka's JVM (Neo4j follows; neither answers yet)."""
        pid_file = self.demo.state_dir / "run" / "kafka.pid"
        self.wait_for("Kafka's JVM starting", pid_file.is_file)

    def wait_up(self) -> None:
        """Until the API answers /healthz and the demo has published its network and said where it is."""

        def healthy() -> bool:
            try:
                return httpx.get(f"{self.demo.api_base}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        self.wait_for("API answering /healthz", healthy)
        self.wait_for("demo up (its page's address printed)", lambda: "Page:" in self.output())

    def stop(self, how: str) -> int:
        """Send the signal and wait for the demo to exit; its exit code."""
        if how == "SIGINT to the pid":
            os.kill(self.proc.pid, signal.SIGINT)
        elif how == "SIGINT to the group":
            os.killpg(self.proc.pid, signal.SIGINT)
        elif how == "SIGTERM to the pid":
            os.kill(self.proc.pid, signal.SIGTERM)
        else:
            raise AssertionError(f"unknown way to stop: {how!r}")
        try:
            return self.proc.wait(timeout=DEMO_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the demo still runs {DEMO_STOP_TIMEOUT_S:.0f}s after {how}:\n{self.tail()}"
            ) from None

    def kill(self) -> None:
        if _group_alive(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)


def assert_everything_stopped(demo: OwnDemo, run: Run, how: str) -> None:
    # The demo's process group: dev.sh, hub demo and anything they ran in the foreground (Maven, npm).
    deadline = time.monotonic() + 60
    while _group_alive(run.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _group_alive(run.proc.pid), f"processes of the demo's group remain after {how}"
    # Kafka and Neo4j take a moment to let go of their ports after exiting: a bounded wait, no timing.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = _processes_of(demo.state_dir)
        listening = {key: port for key, port in demo.ports.items() if port_open("127.0.0.1", port)}
        if not left and not listening:
            break
        time.sleep(1)
    assert left == {}, f"still running after {how}: {left}\n{run.tail()}"
    assert listening == {}, f"ports still answering after {how}: {listening}\n{run.tail()}"
    status = {s.name: (s.ready, s.pid, s.detail) for s in launcher.status(demo.settings)}
    assert status == {"kafka": (False, None, "stopped"), "neo4j": (False, None, "stopped")}, status


WAYS = ["SIGINT to the pid", "SIGINT to the group", "SIGTERM to the pid"]


@pytest.mark.parametrize("how", WAYS)
def test_a_stop_signal_stops_everything_the_demo_started(how: str, own_demo: OwnDemo) -> None:
    signum = signal.SIGTERM if how.startswith("SIGTERM") else signal.SIGINT
    logs = own_demo.state_dir / "test-logs"
    logs.mkdir()
    assert not _processes_of(own_demo.state_dir)

    # 1. While Kafka and Neo4j are still starting.
    run = Run(own_demo, logs / "1-starting.log")
    try:
        run.wait_starting()
        code = run.stop(how)
        assert code == 128 + signum, f"exit code {code} after {how} while starting:\n{run.tail()}"
        assert_everything_stopped(own_demo, run, f"{how} while starting")
    finally:
        run.kill()

    # 2. The next demo on the same state folder and ports starts cleanly; stopped once it is up.
    run = Run(own_demo, logs / "2-up.log")
    try:
        run.wait_up()
        assert "did not start" not in run.output(), run.tail()
        code = run.stop(how)
        # Once up, a stop signal is the demo's normal end.
        assert code == 0, f"exit code {code} after {how} once up:\n{run.tail()}"
        assert "Stopped the services this demo started: kafka, neo4j" in run.output(), run.tail()
        assert_everything_stopped(own_demo, run, f"{how} once up")
    finally:
        run.kill()

    # 3. And after a stop of a demo that was up, the next one comes up again.
    run = Run(own_demo, logs / "3-again.log")
    try:
        run.wait_up()
        assert httpx.get(f"{own_demo.api_base}/healthz", timeout=10).status_code == 200
        assert run.stop(how) == 0, run.tail()
        assert_everything_stopped(own_demo, run, f"{how} on the third start")
    finally:
        run.kill()
