"""The demo's processes: the local services (through the launcher), one ingest worker and the API.

The worker and the API are children of the demo, each in its own session (a Ctrl-C in the terminal
reaches the demo, which then stops them in order) and with its output in the state folder's logs.
They get the demo's settings through ``HUB_*`` variables, among them ``HUB_PRODUCERS``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devstack.services import launcher
from devstack.services.layout import ServiceName
from devstack.services.process import log_tail, port_open, stop_signals_held
from hub.settings import Settings

Report = Callable[[str], None]

WORKER_ARGV = [sys.executable, "-m", "ingest.worker"]
API_ARGV = [sys.executable, "-c", "from hubql.processes import run; run()"]


class DemoError(RuntimeError):
    """The demo cannot go on; the message says what failed and where its log is."""


def _package_roots() -> list[str]:
    """The folders this process imports the hub's packages from (``hubql`` lives in its own source root)."""
    roots = []
    for name in ("hub", "hubql"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            roots.append(str(Path(spec.origin).resolve().parent.parent))
    return roots


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def check(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise DemoError(
                f"the {self.name} (pid {self.pid}) exited with status {code}. "
                f"Last lines of {self.log}:\n{log_tail(self.log, 30)}"
            )


def ensure_services(settings: Settings, report: Report, started: list[ServiceName]) -> None:
    """Start whichever local service has no process, then wait until every one answers.

    The names of those this call starts are appended to ``started`` before they are started, so that a
    caller interrupted midway (a stop signal while Kafka or Neo4j starts) still stops them. A service
    with a process of someone else's (a launcher, another demo; even one still starting) is waited for
    but never counted as started here.
    """
    before = launcher.status(settings)
    started.extend(s.name for s in before if s.pid is None)
    waiting: list[ServiceName] = [s.name for s in before if not s.ready]
    if waiting:
        launcher.ensure_up(settings, waiting, progress=report)


def child_env(settings: Settings, overrides: Mapping[str, str]) -> dict[str, str]:
    """The environment of a child: ours, the settings that locate the services, and ``overrides``."""
    env = dict(os.environ)
    env.update(
        {
            "HUB_STATE_DIR": str(settings.state_dir),
            "HUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HUB_NEO4J_URI": settings.neo4j_uri,
            "HUB_NEO4J_USER": settings.neo4j_user,
            "HUB_NEO4J_PASSWORD": settings.neo4j_password,
            "HUB_NEO4J_DATABASE": settings.neo4j_database,
            "HUB_API_HOST": settings.api_host,
            "HUB_API_PORT": str(settings.api_port),
            "HUB_INGEST_TOPIC_PREFIX": settings.ingest_topic_prefix,
            "HUB_CHANGES_TOPIC": settings.changes_topic,
            "HUB_DEADLETTER_TOPIC": settings.deadletter_topic,
            "PYTHONUNBUFFERED": "1",
            # The children run in the state folder; they import the hub's packages from where this
            # process does (site-packages when installed, the source roots when run from a checkout).
            "PYTHONPATH": os.pathsep.join(
                dict.fromkeys(p for p in (*_package_roots(), os.environ.get("PYTHONPATH")) if p)
            ),
        }
    )
    env.update(overrides)
    return env


@dataclass
class DemoStack:
    """Starts and stops the worker and API processes; ``stop`` ends only what ``start`` began."""

    settings: Settings
    env: dict[str, str]
    log_dir: Path
    children: list[Child] = field(default_factory=list)

    @property
    def api_base(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def _spawn(self, name: str, argv: list[str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"demo-{name}.log"
        # Faust keeps a data folder in its working directory: keep it in the state folder, not the repo.
        workdir = Path(self.settings.state_dir) / f"demo-{name}"
        workdir.mkdir(parents=True, exist_ok=True)
        # A stop signal between the start and the append would leave a child nobody stops: held until then.
        with log.open("ab") as out, stop_signals_held():
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=workdir,
                start_new_session=True,
            )
            child = Child(name, process, log)
            self.children.append(child)
        return child

    def start(self, report: Report, timeout_s: float = 300.0) -> None:
        host, port = self.settings.api_host, self.settings.api_port
        if port_open(host, port):
            raise DemoError(
                f"port {port} on {host} (HUB_API_PORT) is already in use; stop what runs there "
                "or choose another port with HUB_API_PORT"
            )
        report("Starting the ingest worker")
        self._spawn("worker", WORKER_ARGV)
        report(f"Starting the API on {self.api_base}")
        self._spawn("api", API_ARGV)
        self.wait_for_api(report, timeout_s)

    def check(self) -> None:
        for child in self.children:
            child.check()

    def wait_for_api(self, report: Report, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            self.check()
            try:
                response = httpx.get(f"{self.api_base}/healthz", timeout=2.0)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            report(f"Waiting for the API on {self.api_base} ({last})")
            time.sleep(0.5)
        raise DemoError(
            f"the API did not answer at {self.api_base}/healthz within {timeout_s:.0f}s "
            f"(last: {last}); see {self.log_dir / 'demo-api.log'}"
        )

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM the children (API first, so nobody reads while the worker drains), then SIGKILL."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in reversed(self.children):
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                child.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                child.process.wait(timeout=5)
        self.children.clear()


def graphql(
    base: str,
    query: str,
    token: str | None = None,
    variables: dict[str, Any] | None = None,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=timeout_s,
    )
    if response.status_code != 200:
        raise DemoError(
            f"GraphQL at {base}/graphql answered HTTP {response.status_code}: {response.text[:300]}"
        )
    body = response.json()
    if body.get("errors"):
        raise DemoError(f"GraphQL errors: {body['errors']}")
    data: dict[str, Any] = body["data"]
    return data


COUNTS = "query DemoCounts { counts { className count } }"


def visible_count(base: str, token: str | None) -> int:
    """How many objects the caller can see, over every class."""
    return sum(int(row["count"]) for row in graphql(base, COUNTS, token)["counts"])
