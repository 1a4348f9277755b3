"""``hub api --processes 2`` end to end: the real command, two uvicorn processes on one port, real Kafka
and Neo4j, out of development mode and with no cursor key set (the processes must share the one the
parent draws).

- requests are served by both processes, each a child of the command's process, and the metrics port
  serves the sum of their counts;
- a change cursor received from one process resumes a subscription on the other;
- the status of an HTTP ingest batch is found whichever process is asked, and only by its poster.

Which process takes a connection is the kernel's choice, so the tests open connections until both have
been seen (each log line names its process).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from graphkit import Api
from test_subscriptions import _create_topics
from test_subscriptions_security import Socket, until

from devstack.services.async_run import run_coroutine
from hub.kafka_clients import admin_options
from hub.labels import intern

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
PUBLIC = "classification=PUBLIC"
PRODUCER = "procs-p"
PRODUCERS = {PRODUCER: {"org": "procs-org", "clearance": "OFFICIAL"}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    api: Api
    process: subprocess.Popen[bytes]
    log: Path
    metrics: str
    topic: str
    bootstrap: str

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if raw.startswith("{"):
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    continue
        return out


@pytest.fixture(scope="module")
def served(settings: Any, neo4j_driver: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from devstack.services import kafka

    prefix = f"procs-{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.cim.changes"
    ingest = f"{prefix}.cim.ingest."
    run_coroutine(_create_topics(settings.kafka_bootstrap, [topic, ingest + PRODUCER]))
    api_settings = settings.model_copy(
        update={"changes_topic": topic, "ingest_topic_prefix": ingest, "producers": PRODUCERS}
    )
    kafka.apply_service_acls(api_settings)
    port, metrics_port = _free_port(), _free_port()
    api = Api(base=f"http://127.0.0.1:{port}", settings=api_settings)
    api.token("key-maker")  # the development issuer's key exists before the API reads it
    neo4j_driver.execute_query(
        "MERGE (s:SecurityLabel {id: $id}) SET s.expr = $expr", id=intern(PUBLIC)[0], expr=intern(PUBLIC)[1]
    )
    env = {k: v for k, v in os.environ.items() if k != "HUB_CURSOR_KEY"}
    env.update(
        {
            "HUB_DEV_MODE": "false",
            "HUB_ANONYMOUS_ACCESS": "false",
            # Out of development mode the keys come from a file: the development issuer's.
            "HUB_JWKS_FILE": str(Path(settings.state_dir) / "dev-issuer" / "jwks.json"),
            "HUB_CHANGES_TOPIC": topic,
            "HUB_INGEST_TOPIC_PREFIX": ingest,
            "HUB_PRODUCERS": json.dumps(PRODUCERS),
            "HUB_API_METRICS_PORT": str(metrics_port),
            "HUB_LOG_JSON": "true",
            "HUB_LOG_LEVEL": "INFO",
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "graphql")]),
        }
    )
    log = Path(tmp_path_factory.mktemp("procs")) / "api.log"
    argv = [sys.executable, "-m", "hubcli.main", "api", "--processes", "2", "--host", "127.0.0.1"]
    with open(log, "wb") as out:
        process = subprocess.Popen([*argv, "--port", str(port)], cwd=REPO, env=env, stdout=out, stderr=out)
    try:
        # Each process imports the API and builds its schema: minutes on a busy two-core machine.
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the API did not answer /healthz: " + log.read_text()[-3000:]
            try:
                if httpx.get(f"{api.base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield Served(
            api, process, log, f"http://127.0.0.1:{metrics_port}/metrics", topic, settings.kafka_bootstrap
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _operations(served: Served, subject: str) -> list[dict[str, Any]]:
    return [
        e for e in served.lines() if e.get("event") == "graphql operation" and e.get("subject") == subject
    ]


def _counted(served: Served) -> float:
    """hub_api_operations_total of ok queries, as the metrics port serves it."""
    text = httpx.get(served.metrics, timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("hub_api_operations_total{") and 'type="query"' in line and 'outcome="ok"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_requests_are_served_by_both_processes_and_counted_once(served: Served) -> None:
    user = f"spread-{uuid.uuid4().hex[:6]}"
    token = served.api.token(user, None, "PUBLIC")
    before = _counted(served)

    def one(_: int) -> int:
        # A connection of its own per request: the kernel hands each to whichever process accepts first.
        response = httpx.post(
            f"{served.api.base}/graphql",
            json={"query": "{ __typename }"},
            headers={"Authorization": f"Bearer {token}", "Connection": "close"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"data": {"__typename": "Query"}}
        return 1

    sent = 0
    pids: set[int] = set()
    deadline = time.monotonic() + 120
    with ThreadPoolExecutor(8) as pool:
        while len(pids) < 2 and time.monotonic() < deadline:
            sent += sum(pool.map(one, range(16)))
            time.sleep(0.5)  # the log lines are written
            pids = {e["pid"] for e in _operations(served, user)}
    assert len(pids) == 2, f"{sent} requests, all served by {pids}"
    # Both are children of the command's process, which serves no requests itself.
    assert all(_parent(pid) == served.process.pid for pid in pids)
    assert len(_operations(served, user)) == sent
    # The metrics port serves what both processes counted, once each.
    assert _counted(served) - before == sent


def _record(mrid: str, version: int) -> bytes:
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {
            "mrid": mrid,
            "class": "ACLineSegment",
            "change": "upsert",
            "version": version,
            "label_id": intern(PUBLIC)[0],
            "time": now,
            "event_time": now,
            "event_id": f"{mrid}-v{version}",
            "producer": "procs",
            "prev_label_id": intern(PUBLIC)[0] if version > 1 else None,
        }
    ).encode()


async def _resume_across(served: Served) -> None:
    user = f"resume-{uuid.uuid4().hex[:6]}"
    token = served.api.token(user, None, "PUBLIC")
    first, second = f"{user}-a", f"{user}-b"
    producer = AIOKafkaProducer(**admin_options(served.bootstrap))
    await producer.start()
    try:
        async with Socket(served.api.ws_url, token) as ws:
            await ws.subscribe("1", {"mrids": [first]})
            # Live once a first change reaches it.
            version = 0
            while not ws.received["1"]:
                version += 1
                await producer.send_and_wait(served.topic, _record(first, version), key=first.encode())
                try:
                    await until(lambda: bool(ws.received["1"]), 5, "warm-up")
                except AssertionError:
                    continue
            cursor, issued_at = ws.received["1"][0]["cursor"], int(ws.received["1"][0]["version"])
        await producer.send_and_wait(served.topic, _record(second, 1), key=second.encode())
    finally:
        await producer.stop()

    def started() -> list[dict[str, Any]]:
        return [
            e for e in served.lines() if e.get("event") == "subscription started" and e.get("subject") == user
        ]

    await until(lambda: len(started()) >= 1, 10, "the first subscription's log line")
    issued_by = started()[0]["pid"]
    resumed_by: set[int] = set()
    deadline = time.monotonic() + 120
    while issued_by not in resumed_by or len(resumed_by) < 2:
        assert time.monotonic() < deadline, f"every resumed subscription was served by {resumed_by}"
        seen = len(started())
        async with Socket(served.api.ws_url, token) as again:
            await again.subscribe("1", {"after": cursor, "mrids": [first, second]})
            await until(
                lambda: any(c["mrid"] == second for c in again.received["1"]) or bool(again.errors),
                60,
                "the resumed change",
            )
            await asyncio.sleep(0.5)
        assert not again.errors, again.errors
        # Only what came after the cursor, whichever process issued it (order is per object).
        assert sorted((c["mrid"], c["version"]) for c in again.received["1"]) == [
            *((first, v) for v in range(issued_at + 1, version + 1)),
            (second, 1),
        ]
        await until(lambda n=seen: len(started()) > n, 10, "the resumed subscription's log line")
        resumed_by.add(started()[-1]["pid"])


def test_a_cursor_from_one_process_resumes_on_the_other(served: Served) -> None:
    run_coroutine(_resume_across(served))


def _access(served: Served, request: str) -> list[int]:
    """Pids of the processes that answered ``request`` (e.g. ``GET /ingest/batches/``), in order."""
    return [
        e["pid"]
        for e in served.lines()
        if e.get("logger") == "uvicorn.access" and f'"{request}' in e["event"]
    ]


def test_a_batch_status_is_found_whichever_process_is_asked(served: Served) -> None:
    api = served.api
    user = f"poster-{uuid.uuid4().hex[:6]}"
    poster = api.token(user, "procs-org", "OFFICIAL", roles=(f"producer:{PRODUCER}",))
    other = api.token(f"{user}-other", "procs-org", "OFFICIAL", roles=(f"producer:{PRODUCER}",))
    mrid = f"{user}-line"
    event = {
        "id": f"{mrid}-v1",
        "source": PRODUCER,
        "type": "upsert",
        "subject": mrid,
        "time": datetime.now(UTC).isoformat(),
        "version": 1,
        "class": "ACLineSegment",
        "label": PUBLIC,
        "attributes": {"IdentifiedObject.name": mrid},
    }

    def call(method: str, path: str, token: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
        return httpx.request(method, f"{api.base}{path}", json=body, headers=headers, timeout=30)

    posted = call("POST", "/ingest", poster, [event])
    assert posted.status_code == 202, posted.text
    location, batch = posted.headers["location"], posted.json()["batch"]
    never = "/ingest/batches/" + "0" * 8 + "-" + "x" * 22
    answered: set[int] = set()
    refused: set[int] = set()
    deadline = time.monotonic() + 120
    while len(answered) < 2 or len(refused) < 2:
        assert time.monotonic() < deadline, f"status answered by {answered}, refused by {refused}"
        status = call("GET", location, poster)
        assert status.status_code == 200, status.text
        assert status.json()["id"] == batch
        assert [e["id"] for e in status.json()["events"]] == [event["id"]]
        # Another caller, whichever process it reaches, gets what an id that was never a batch gets.
        theirs, nothing = call("GET", location, other), call("GET", never, poster)
        assert (
            (theirs.status_code, theirs.content)
            == (404, nothing.content)
            == (404, b'{"detail":"no such batch"}')
        )
        time.sleep(0.2)  # the access log lines are written
        *_, mine, foreign, _ = _access(served, "GET /ingest/batches/")
        answered.add(mine)
        refused.add(foreign)
