"""Fixtures for the planners' page: the built front end, the real API and worker as subprocesses against
the test Kafka and Neo4j, a small labelled network published through Kafka, and a headless Chromium.

Everything runs for real: events go through Kafka and the worker into Neo4j, the page talks to the API
over HTTP and websocket. The API and worker of this session get their own topic names, consumer group and
ports so that other test sessions on the same services are not disturbed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FRONTEND = REPO_ROOT / "frontend"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "frontend"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    # WebGL through the software rasteriser: sigma.js draws with WebGL and CI has no GPU.
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
PRODUCER_ID = "fe-test"


# ------------------------------------------------------------------------------------- API + worker


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@dataclass
class HubStack:
    base_url: str
    env: dict[str, str]
    settings: Any
    tag: str
    logs: dict[str, Path] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def gql(self, query: str, variables: dict[str, Any] | None = None, user: str | None = "hub.admin") -> Any:
        headers = {"Content-Type": "application/json"}
        if user is not None:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.base_url}/graphql", data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            payload = json.loads(resp.read())
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors for {query[:80]!r}: {payload['errors']}")
        return payload["data"]

    def publish(self, events: list[dict[str, Any]]) -> None:
        """Publish events to this session's producer topic through the hub's Kafka producer client."""
        from devstack.services.async_run import run_coroutine
        from hub.kafka_clients import ADMIN
        from ingest.producer import HubProducer

        async def send() -> Any:
            # As the admin: these tests are about the page, not about who may write which topic.
            async with HubProducer(PRODUCER_ID, settings=self.settings, principal=ADMIN) as producer:
                return await producer.send_all(events)

        # The browser driver keeps an event loop running in this thread: publish from a private one.
        stats = run_coroutine(send())
        assert not stats.rejected, f"the producer rejected test events locally: {stats.rejections}"


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"the API exited with code {proc.returncode} before answering:\n{_tail(log)}", pytrace=False
            )
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = repr(exc)
        time.sleep(0.5)
    pytest.fail(
        f"the API did not answer {url} within {timeout_s:.0f} s ({last}):\n{_tail(log)}", pytrace=False
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def hub_stack(settings: Any, frontend_dist: Path) -> Iterator[HubStack]:
    """The API (serving the built page) and one ingest worker, both real subprocesses."""
    from hub.settings import Settings
    from ingest.producer import ensure_topic

    tag = uuid.uuid4().hex[:8]
    api_port = _free_port()
    overrides = {
        "HUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HUB_NEO4J_URI": settings.neo4j_uri,
        "HUB_STATE_DIR": str(settings.state_dir),
        "HUB_INGEST_TOPIC_PREFIX": f"fe{tag}.ingest.",
        "HUB_CHANGES_TOPIC": f"fe{tag}.changes",
        "HUB_DEADLETTER_TOPIC": f"fe{tag}.deadletter",
        "HUB_WORKER_ID": f"hub-worker-fe{tag}",
        "HUB_WORKER_WEB_PORT": str(_free_port()),
        "HUB_METRICS_PORT": "-1",
        "HUB_API_HOST": "127.0.0.1",
        "HUB_API_PORT": str(api_port),
        "HUB_DEV_MODE": "true",
        "HUB_TOPIC_PARTITIONS": "1",
        # A measurement sample a second, so a chart grows within a test.
        "HUB_MEASUREMENT_HISTORY_INTERVAL_S": "1",
        "HUB_PRODUCERS": json.dumps(
            {PRODUCER_ID: {"org": "hub", "clearance": "SECRET", "default_label": "classification=PUBLIC"}}
        ),
    }
    env = {**os.environ, **overrides}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), str(REPO_ROOT / "graphql"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    stack_settings = Settings(
        **{k.removeprefix("HUB_").lower(): v for k, v in overrides.items() if k != "HUB_PRODUCERS"},
        producers=json.loads(overrides["HUB_PRODUCERS"]),
    )
    from devstack.services import kafka
    from devstack.services.async_run import run_coroutine

    # The worker and the API sign in as their principals, whose ACLs follow these topic names.
    kafka.apply_service_acls(stack_settings)
    # The worker waits for a first ingest topic; creating it now lets it subscribe at once.
    run_coroutine(
        ensure_topic(settings.kafka_bootstrap, f"{stack_settings.ingest_topic_prefix}{PRODUCER_ID}", 1)
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    logs = {"api": ARTIFACTS / "api.log", "worker": ARTIFACTS / "worker.log"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with open(logs["worker"], "wb") as wlog:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "ingest.worker"],
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=wlog,
                    stderr=subprocess.STDOUT,
                )
            )
        with open(logs["api"], "wb") as alog:
            api = subprocess.Popen(
                [sys.executable, "-c", "from hubql.processes import run; run()"],
                cwd=REPO_ROOT,
                env=env,
                stdout=alog,
                stderr=subprocess.STDOUT,
            )
            procs.append(api)
        base = f"http://127.0.0.1:{api_port}"
        # Generous: the API builds its schema from the ontology first, slow on a busy shared machine.
        _wait_http(f"{base}/healthz", api, logs["api"], 240)
        with urllib.request.urlopen(f"{base}/dev/tokens", timeout=10) as resp:
            body = json.loads(resp.read())
        users = body["users"] if isinstance(body, dict) else body
        tokens = {u["user"]: u["token"] for u in users}
        yield HubStack(base_url=base, env=env, settings=stack_settings, tag=tag, logs=logs, tokens=tokens)
    finally:
        for p in reversed(procs):
            _stop(p)


# --------------------------------------------------------------------------------------- test data


def _event(
    mrid: str,
    cls: str,
    version: int,
    attributes: dict[str, Any],
    references: dict[str, Any] | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "id": f"{mrid}-v{version}-{uuid.uuid4().hex[:6]}",
        "source": PRODUCER_ID,
        "type": "upsert",
        "subject": mrid,
        "time": datetime.now(UTC).isoformat(),
        "version": version,
        "class": cls,
        "attributes": attributes,
        "references": references or {},
    }
    if label:
        ev["label"] = label
    return ev


@dataclass
class Network:
    """A small gas network and a coupled generating unit, named with this session's tag."""

    tag: str
    mrids: dict[str, str]
    names: dict[str, str]
    points: dict[str, tuple[float, float]]

    @staticmethod
    def event(*args: Any, **kwargs: Any) -> dict[str, Any]:
        """An upsert event from the test producer (see ``_event``)."""
        return _event(*args, **kwargs)


PUBLIC = "classification=PUBLIC"
SECRET = "classification=SECRET"


@pytest.fixture(scope="session")
def network(hub_stack: HubStack) -> Network:
    """Publishes the test network through Kafka and waits until the worker has written all of it."""
    tag = hub_stack.tag
    m = {k: f"fe{tag}-{k}" for k in ("emden", "aachen", "werne", "pipe1", "pipe2", "offtake", "unit")}
    names = {
        "emden": f"Emden {tag}",
        "aachen": f"Aachen {tag}",
        "werne": f"Werne {tag}",
        "pipe1": f"Pipe Emden-Aachen {tag}",
        "pipe2": f"Pipe Emden-Werne {tag}",
        "offtake": f"Offtake Aachen {tag}",
        "unit": f"CCGT Aachen {tag}",
    }
    points = {"emden": (7.2061, 53.3670), "aachen": (6.0839, 50.7753), "werne": (7.6339, 51.6633)}
    events = [
        _event(
            m["emden"],
            "GasNode",
            1,
            {
                "IdentifiedObject.name": names["emden"],
                "GasNode.longitude": points["emden"][0],
                "GasNode.latitude": points["emden"][1],
                "GasNode.pressureMax": 84.0,
            },
            label=PUBLIC,
        ),
        _event(
            m["aachen"],
            "GasNode",
            1,
            {
                "IdentifiedObject.name": names["aachen"],
                "GasNode.longitude": points["aachen"][0],
                "GasNode.latitude": points["aachen"][1],
                "GasNode.pressureMax": 70.0,
            },
            label=PUBLIC,
        ),
        _event(
            m["werne"],
            "GasNode",
            1,
            {
                "IdentifiedObject.name": names["werne"],
                "GasNode.longitude": points["werne"][0],
                "GasNode.latitude": points["werne"][1],
                "GasNode.pressureMax": 80.0,
            },
            label=SECRET,
        ),
        _event(
            m["pipe1"],
            "GasPipe",
            1,
            {"IdentifiedObject.name": names["pipe1"], "GasPipe.length": 52.3, "GasPipe.diameter": 900.0},
            {"GasConnection.FromNode": m["emden"], "GasConnection.ToNode": m["aachen"]},
            label=PUBLIC,
        ),
        _event(
            m["pipe2"],
            "GasPipe",
            1,
            {"IdentifiedObject.name": names["pipe2"], "GasPipe.length": 31.7, "GasPipe.diameter": 1200.0},
            {"GasConnection.FromNode": m["emden"], "GasConnection.ToNode": m["werne"]},
            label=SECRET,
        ),
        _event(
            m["unit"],
            "ThermalGeneratingUnit",
            1,
            {"IdentifiedObject.name": names["unit"], "GeneratingUnit.maxOperatingP": 451.0},
            label=PUBLIC,
        ),
        _event(
            m["offtake"],
            "GasOfftake",
            1,
            {"IdentifiedObject.name": names["offtake"]},
            {"GasOfftake.Node": m["aachen"], "GasOfftake.GeneratingUnits": [m["unit"]]},
            label=PUBLIC,
        ),
    ]
    hub_stack.publish(events)
    deadline = time.monotonic() + 120
    missing = list(m.values())
    while time.monotonic() < deadline:
        missing = [
            mrid
            for mrid in m.values()
            if hub_stack.gql("query($m: ID!) { object(mrid: $m) { mrid version } }", {"m": mrid})["object"]
            is None
        ]
        if not missing:
            break
        time.sleep(1)
    if missing:
        pytest.fail(
            f"the worker did not write {missing} within 120 s:\n{_tail(hub_stack.logs['worker'])}",
            pytrace=False,
        )
    return Network(tag=tag, mrids=m, names=names, points=points)


# ------------------------------------------------------------------------------------------ browser


# Module scope: the sync API keeps an event loop marked as running in this thread while it is open,
# which breaks every later asyncio test of the session.
@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium)",
            pytrace=False,
        )
    with sync_playwright() as p:
        yield p


@contextlib.contextmanager
def _chromium_page(playwright_driver: Any, name: str) -> Iterator[Any]:
    """A page in a fresh Chromium profile; its screenshot goes to test-artifacts/frontend/<name>.png."""
    profile = tempfile.mkdtemp(prefix="hub-chromium-")
    context = playwright_driver.chromium.launch_persistent_context(
        profile,
        executable_path=str(CHROMIUM),
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": 1440, "height": 900},
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        with contextlib.suppress(Exception):
            context.close()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser_page(
    playwright_driver: Any, hub_stack: HubStack, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """A Chromium page beside the session's API and worker (see ``_chromium_page``)."""
    with _chromium_page(playwright_driver, request.node.name) as page:
        yield page


@pytest.fixture
def bare_page(playwright_driver: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A Chromium page with no API started for it, for a test that starts its own."""
    with _chromium_page(playwright_driver, request.node.name) as page:
        yield page


class Ui:
    """Steps the tests share: signing in, searching, reading the graph on the page."""

    @staticmethod
    def sign_in(page: Any, base_url: str, user: str) -> None:
        """Opens the page and signs in as a demo user from the development token list."""
        page.goto(base_url)
        page.wait_for_selector(f'[data-testid="demo-user"][data-user="{user}"]', timeout=20_000)
        page.click(f'[data-testid="demo-user"][data-user="{user}"]')
        page.wait_for_selector('[data-testid="sign-in-dialog"]', state="hidden", timeout=20_000)
        page.wait_for_function(
            "u => document.querySelector('[data-testid=user-name]').textContent.startsWith(u)",
            arg=user,
            timeout=20_000,
        )

    @staticmethod
    def search_and_open(page: Any, text: str, mrid: str) -> None:
        page.fill('[data-testid="search-input"]', text)
        item = page.locator(f'[data-testid="search-suggestion"][data-mrid="{mrid}"]')
        item.wait_for(timeout=20_000)
        item.dispatch_event("mousedown")
        page.wait_for_function(
            "m => document.querySelector('[data-testid=detail-mrid]')?.textContent === m",
            arg=mrid,
            timeout=20_000,
        )

    @staticmethod
    def graph_nodes(page: Any) -> set[str]:
        return set(page.evaluate("() => window.__hub.graph.nodes()"))

    @staticmethod
    def wait_for_nodes(page: Any, mrids: set[str], timeout_s: float = 20) -> None:
        page.wait_for_function(
            "ms => ms.every(m => window.__hub.graph.hasNode(m))", arg=sorted(mrids), timeout=timeout_s * 1000
        )

    @staticmethod
    def open_and_expand(page: Any, text: str, mrid: str, expect: set[str]) -> None:
        """Searches ``text``, opens ``mrid``, expands it and waits until ``expect`` is on the canvas."""
        Ui.search_and_open(page, text, mrid)
        page.click('[data-testid="action-expand"]')
        Ui.wait_for_nodes(page, expect)


@pytest.fixture
def ui() -> type[Ui]:
    return Ui
