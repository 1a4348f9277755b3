"""The ``changes`` subscription end to end: events through real Kafka and the real ingest worker into Neo4j,
change records on the change topic, and two subscribers with different clearances over websockets.

Each subscriber must receive exactly the changes to objects it may see, each object's changes in order,
and a subscriber that reconnects with the cursor of a change it received must get exactly the rest.
The test has its own topic prefix, so other tests on the shared services neither see nor disturb it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import websockets
from aiokafka import AIOKafkaProducer
from graphkit import Api, serve
from hubql.cursors import CursorCodec, cursor_key

from hub.kafka_clients import admin_options
from hub.kafka_topics import ensure_topics, topic_admin

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 3
LABELS = ["classification=PUBLIC", "classification=OFFICIAL", "classification=SECRET", "org=sub-producer"]
SUBSCRIPTION = """subscription($after: String, $domain: Domain) {
  changes(after: $after, domain: $domain) { cursor mrid className change version node { mrid label } } }"""
# Without ``node``: the API then reads nothing from the graph for the subscriber.
LEAN = """subscription($after: String) { changes(after: $after) { cursor mrid className change version } }"""


async def _create_topics(bootstrap: str, names: list[str]) -> None:
    async with topic_admin(admin_options(bootstrap)) as admin:
        await ensure_topics(admin, names, PARTITIONS)


@contextlib.contextmanager
def worker(
    settings: Any,
    prefix: str,
    log_path: Path,
    producers: dict[str, dict[str, Any]] | None = None,
    partitions: int = PARTITIONS,
) -> Iterator[subprocess.Popen[bytes]]:
    from devstack.services import kafka

    # The worker signs in as its principal, whose ACLs follow these topic names.
    kafka.apply_service_acls(
        settings.model_copy(
            update={
                "ingest_topic_prefix": f"{prefix}.cim.ingest.",
                "deadletter_topic": f"{prefix}.cim.deadletter",
                "changes_topic": f"{prefix}.cim.changes",
                "worker_id": f"{prefix}-worker",
            }
        )
    )
    env = {
        **os.environ,
        "HUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HUB_NEO4J_URI": settings.neo4j_uri,
        "HUB_NEO4J_USER": settings.neo4j_user,
        "HUB_NEO4J_PASSWORD": settings.neo4j_password,
        "HUB_INGEST_TOPIC_PREFIX": f"{prefix}.cim.ingest.",
        "HUB_DEADLETTER_TOPIC": f"{prefix}.cim.deadletter",
        "HUB_CHANGES_TOPIC": f"{prefix}.cim.changes",
        "HUB_WORKER_ID": f"{prefix}-worker",
        "HUB_WORKER_WEB_PORT": "0",
        "HUB_METRICS_PORT": "0",
        # The subscription tests relabel objects both ways: widening needs the declassify right.
        "HUB_PRODUCERS": json.dumps(
            producers or {"p1": {"org": "sub-producer", "clearance": "SECRET", "declassify": True}}
        ),
        "HUB_BATCH_TIMEOUT_S": "0.2",
        "HUB_TOPIC_PARTITIONS": str(partitions),
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingest.worker"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


class Subscriber:
    """A graphql-transport-ws client collecting ``changes`` payloads in a background task."""

    def __init__(self, url: str, token: str, variables: dict[str, Any], query: str = SUBSCRIPTION) -> None:
        self.url, self.token, self.variables, self.query = url, token, variables, query
        self.received: list[dict[str, Any]] = []
        # When each payload of ``received`` arrived (time.time(); appended first, so it is never shorter).
        self.received_at: list[float] = []
        self.errors: list[Any] = []
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        async with websockets.connect(
            self.url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
        ) as ws:
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {self.token}"}})
            )
            frame = await ws.recv()
            # Browsers' graphql-ws clients read text frames only.
            assert isinstance(frame, str), f"binary websocket frame: {frame!r}"
            ack = json.loads(frame)
            assert ack["type"] == "connection_ack", ack
            await ws.send(
                json.dumps(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {"query": self.query, "variables": self.variables},
                    }
                )
            )
            self.ready.set()
            async for raw in ws:
                msg = json.loads(raw)
                if msg["type"] == "next":
                    if msg["payload"].get("errors"):
                        self.errors.append(msg["payload"]["errors"])
                    else:
                        self.received_at.append(time.time())
                        self.received.append(msg["payload"]["data"]["changes"])
                elif msg["type"] == "error":
                    self.errors.append(msg["payload"])
                elif msg["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))

    def start(self) -> None:
        self.task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


async def wait_for(subs: list[tuple[Subscriber, int]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for sub, _ in subs:
            assert not sub.errors, sub.errors
            if sub.task is not None and sub.task.done() and sub.task.exception():
                raise sub.task.exception()  # type: ignore[misc]
        if all(len(sub.received) >= n for sub, n in subs):
            await asyncio.sleep(2.0)  # anything beyond the expected would arrive now
            return
        await asyncio.sleep(0.2)


def by_object(changes: list[dict[str, Any]]) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = {}
    for c in changes:
        out.setdefault(c["mrid"], []).append((c["change"], c["version"]))
    return out


async def test_subscribers_get_exactly_what_they_may_see(settings: Any, run_id: str, tmp_path: Path) -> None:
    prefix = f"sub-{run_id}"
    changes_topic = f"{prefix}.cim.changes"
    await _create_topics(settings.kafka_bootstrap, [changes_topic, f"{prefix}.cim.ingest.p1"])
    api_settings = settings.model_copy(update={"changes_topic": changes_topic})
    codec = CursorCodec(cursor_key(api_settings))

    def start_cursor(subject: str) -> str:
        # The start of the topic, sealed for one subscriber (issuer and subject) as the API would
        # (development key).
        principal = f"{api_settings.oidc_issuer} {subject}"
        return codec.seal(changes_topic, principal, dict.fromkeys(range(PARTITIONS), 0))

    # 16 objects, two versions each, labels cycling through four visibilities, both domains
    events = []
    expected: dict[str, dict[str, list[tuple[str, int]]]] = {"public": {}, "official": {}, "gas": {}}
    now = datetime.now(UTC).isoformat()
    for i in range(16):
        mrid = f"{prefix}-o{i:02d}"
        cls = "GasPipe" if i % 2 else "ACLineSegment"
        label = LABELS[(i // 2) % len(LABELS)]
        for version in (1, 2):
            events.append(
                {
                    "id": f"{mrid}-v{version}",
                    "source": "p1",
                    "type": "upsert",
                    "subject": mrid,
                    "time": now,
                    "version": version,
                    "class": cls,
                    "label": label,
                    "attributes": {"IdentifiedObject.name": f"{mrid} v{version}"},
                }
            )
        seq = [("upsert", 1), ("upsert", 2)]
        if label == "classification=PUBLIC":
            expected["public"][mrid] = seq
        if label in ("classification=PUBLIC", "classification=OFFICIAL"):
            expected["official"][mrid] = seq
            if cls == "GasPipe":
                expected["gas"][mrid] = seq

    with serve(api_settings) as api, worker(settings, prefix, tmp_path / "worker.log") as proc:
        public = Subscriber(api.ws_url, api.token("pub", None, "PUBLIC"), {"after": start_cursor("pub")})
        official = Subscriber(
            api.ws_url, api.token("off", "elsewhere", "OFFICIAL"), {"after": start_cursor("off")}
        )
        gas = Subscriber(
            api.ws_url,
            api.token("gas", "elsewhere", "OFFICIAL"),
            {"after": start_cursor("gas"), "domain": "GAS"},
        )
        lean = Subscriber(
            api.ws_url, api.token("lean", "elsewhere", "OFFICIAL"), {"after": start_cursor("lean")}, LEAN
        )
        subs = [public, official, gas, lean]
        for s in subs:
            s.start()
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in subs)), 30)

        producer = AIOKafkaProducer(**admin_options(settings.kafka_bootstrap))
        await producer.start()
        try:
            # Version 1 of everything, then (once the subscribers saw it) version 2: the worker folds a
            # batch into one change per object, so the phases keep both versions observable.
            for version in (1, 2):
                for ev in events:
                    if ev["version"] == version:
                        await producer.send_and_wait(
                            f"{prefix}.cim.ingest.p1",
                            json.dumps(ev).encode(),
                            key=str(ev["subject"]).encode(),
                        )
                want = {k: version * len(expected[k]) for k in expected}
                await wait_for(
                    [
                        (public, want["public"]),
                        (official, want["official"]),
                        (gas, want["gas"]),
                        (lean, want["official"]),
                    ],
                    180,
                )
        finally:
            await producer.stop()
            for s in subs:
                await s.stop()
        assert proc.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]

        assert by_object(public.received) == expected["public"]
        assert by_object(official.received) == expected["official"]
        assert by_object(gas.received) == expected["gas"]
        assert by_object(lean.received) == expected["official"]
        assert all("node" not in c for c in lean.received)
        for c in official.received:
            assert c["node"] is None or c["node"]["mrid"] == c["mrid"]
            assert c["node"] is None or c["node"]["label"] in LABELS[:2]

        # reconnect with the cursor of the 5th change: exactly the rest, nothing missed, nothing repeated
        k = 4
        resumed = Subscriber(
            api.ws_url, api.token("off", "elsewhere", "OFFICIAL"), {"after": official.received[k]["cursor"]}
        )
        resumed.start()
        try:
            await wait_for([(resumed, len(official.received) - k - 1)], 120)
        finally:
            await resumed.stop()
        rest = official.received[k + 1 :]
        key = [(c["mrid"], c["version"]) for c in rest]
        assert sorted((c["mrid"], c["version"]) for c in resumed.received) == sorted(key)
        assert len(resumed.received) == len(rest)
        for mrid, seq in by_object(resumed.received).items():
            assert seq == sorted(seq, key=lambda x: x[1]), mrid


async def test_websocket_rejects_bad_token(api: Api) -> None:
    async with websockets.connect(
        api.ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer not-a-token"}})
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
    assert closed.value.rcvd.reason == "token is malformed"


async def test_websocket_messages_are_not_compressed_unless_configured(api: Api, settings: Any) -> None:
    # The client offers permessage-deflate (websockets does by default); the API declines it unless
    # api_ws_compression is on: the change feed's many small messages are cheaper sent as they are.
    assert settings.api_ws_compression is False
    async with websockets.connect(
        api.ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    ) as ws:
        assert ws.response is not None
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
    with serve(settings.model_copy(update={"api_ws_compression": True})) as compressing:
        async with websockets.connect(
            compressing.ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
        ) as ws:
            assert ws.response is not None
            assert "permessage-deflate" in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")
