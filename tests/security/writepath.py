"""A whole write path for the security tests (the ``stack`` fixture, made available by conftest.py):
the API (HTTP ingest, GraphQL) in this process and a real worker process, on the test Kafka and Neo4j,
with producers configured as the tests need them.

Every topic carries the module's own prefix and has one partition, so the order in which the worker
applies a producer's events is the order they were sent: once a marker sent after an attack is in the
graph, the attack has been judged and its batch committed.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import neo4j
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from graphkit import Api, serve

from devstack.services import kafka
from hub.graph_schema import cypher
from hub.kafka_clients import admin_options
from hub.kafka_topics import delete_topics, ensure_topics, topic_admin, topic_names

REPO = Path(__file__).resolve().parents[2]

# The producers of these tests. ngt is cleared SECRET and may declassify, so that what stops a caller is
# the caller's own rights; gasco may not declassify; tso has an ``owns`` rule; nobody configured "public".
PRODUCERS: dict[str, dict[str, str | bool]] = {
    "ngt": {
        "org": "ngt",
        "clearance": "SECRET",
        "default_label": "classification=OFFICIAL",
        "declassify": True,
    },
    "gasco": {"org": "gasco", "clearance": "OFFICIAL", "default_label": "org=gasco"},
    # Owns only mRIDs starting "sec", which every mRID of Stack.mrid does.
    "tso": {"org": "tso", "clearance": "OFFICIAL", "default_label": "org=tso", "owns": "sec"},
}
LINE = "ACLineSegment"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@dataclass
class Stack:
    prefix: str
    api: Api
    settings: Any
    driver: neo4j.Driver
    worker: subprocess.Popen[bytes]
    log: Path

    def topic(self, producer: str) -> str:
        return f"{self.prefix}.cim.ingest.{producer}"

    @property
    def deadletter_topic(self) -> str:
        return f"{self.prefix}.cim.deadletter"

    @property
    def audit_topic(self) -> str:
        return f"{self.prefix}.hub.audit"

    def mrid(self, name: str) -> str:
        return f"{self.prefix}-{name}-{uuid.uuid4().hex[:6]}"

    def token(self, user: str, org: str | None, clearance: str, *roles: str) -> str:
        return self.api.token(user, org, clearance, tuple(roles))

    def post(self, token: str, *events: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"{self.api.base}/ingest",
            json=list(events),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def send(
        self, producer: str, event: dict[str, Any], headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        """Publish straight to a producer's topic, as any Kafka client may."""

        async def go() -> None:
            kafka = AIOKafkaProducer(**admin_options(self.settings.kafka_bootstrap))
            await kafka.start()
            try:
                await kafka.send_and_wait(
                    self.topic(producer),
                    json.dumps(event).encode(),
                    key=str(event["subject"]).encode(),
                    headers=headers or [],
                )
            finally:
                await kafka.stop()

        run(go())

    def settle(self, producer: str) -> None:
        """Wait until the worker has committed everything sent to ``producer``'s topic so far."""
        marker = self.mrid("marker")
        self.send(producer, event(producer, marker, 1, label=str(PRODUCERS[producer]["default_label"])))
        self.wait(lambda: self.node(marker) is not None, f"marker {marker} of {producer}")

    def wait(self, done: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.worker.poll() is None, self.log.read_text(errors="replace")[-3000:]
            if done():
                return
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}: {self.log.read_text(errors='replace')[-3000:]}")

    def node(self, mrid: str) -> dict[str, Any] | None:
        """The stored object: its Neo4j labels, label text, owner, version and name (None: absent)."""
        records, _, _ = self.driver.execute_query(
            cypher(
                "MATCH (n:Entity {mrid: $m}) OPTIONAL MATCH (s:SecurityLabel {id: n.@label}) "
                "RETURN labels(n) AS labels, s.expr AS label, n.@owner AS owner, n.@version AS version, "
                "n.name AS name"
            ),
            m=mrid,
        )
        return dict(records[0]) if records else None

    def read(self, mrid: str, token: str | None = None) -> dict[str, Any] | None:
        """The object as the GraphQL API shows it to the caller (None: not found, i.e. hidden)."""
        body = self.api.query(
            "query($m: ID!) { object(mrid: $m) { mrid name label } }", {"m": mrid}, token=token
        )
        assert "errors" not in body, body
        found: dict[str, Any] | None = body["data"]["object"]
        return found

    def records(
        self, topic: str, match: Callable[[dict[str, Any], dict[str, bytes]], bool], timeout_s: float = 30.0
    ) -> list[tuple[dict[str, Any], dict[str, bytes]]]:
        """Records of ``topic`` (JSON value, headers) that ``match``, waiting until there is one."""

        async def go() -> list[tuple[dict[str, Any], dict[str, bytes]]]:
            consumer = AIOKafkaConsumer(
                topic,
                **admin_options(self.settings.kafka_bootstrap),
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                group_id=None,
            )
            await consumer.start()
            found: list[tuple[dict[str, Any], dict[str, bytes]]] = []
            try:
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    batch = await consumer.getmany(timeout_ms=500)
                    for msgs in batch.values():
                        for msg in msgs:
                            value = json.loads(msg.value)
                            headers = dict(msg.headers)
                            if match(value, headers):
                                found.append((value, headers))
                    if found and not batch:
                        break
                return found
            finally:
                await consumer.stop()

        return list(run(go()))

    def audits(self, action: str, **fields: Any) -> list[dict[str, Any]]:
        """Audit records of ``action`` on the worker's audit topic whose fields include ``fields``."""
        return [
            value
            for value, _ in self.records(
                self.audit_topic,
                lambda v, _h: v.get("action") == action and all(v.get(k) == x for k, x in fields.items()),
            )
        ]

    def api_audits(self, action: str, **fields: Any) -> list[dict[str, Any]]:
        """Like :meth:`audits`, on the API's audit topic."""
        return [
            value
            for value, _ in self.records(
                self.api.settings.audit_topic,
                lambda v, _h: v.get("action") == action and all(v.get(k) == x for k, x in fields.items()),
            )
        ]

    def dead_letters(self, mrid: str, timeout_s: float = 30.0) -> list[dict[str, str]]:
        """Headers of the dead letters of ``mrid`` (reason, reason-class, source-topic ...), waiting up to
        ``timeout_s`` for a first one."""
        found = self.records(
            self.deadletter_topic,
            lambda v, _h: isinstance(v, dict) and v.get("subject") == mrid,
            timeout_s,
        )
        return [{k: v.decode() for k, v in headers.items()} for _, headers in found]


def event(
    producer: str,
    mrid: str,
    version: int,
    *,
    kind: str = "upsert",
    label: str | None = None,
    name: str | None = None,
    cls: str = LINE,
    references: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "source": producer,
        "type": kind,
        "subject": mrid,
        "time": datetime.now(UTC).isoformat(),
        "version": version,
        "class": cls,
    }
    if kind != "delete":
        ev["attributes"] = {"IdentifiedObject.name": name or f"{mrid} v{version}"}
    if label is not None:
        ev["label"] = label
    if references:
        ev["references"] = references
    return ev


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _create_topics(bootstrap: str, names: list[str]) -> None:
    async with topic_admin(admin_options(bootstrap)) as admin:
        await ensure_topics(admin, names, 1)


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    async with topic_admin(admin_options(bootstrap)) as admin:
        await delete_topics(admin, await topic_names(admin, prefix + "."))


@pytest.fixture(scope="module")
def stack(
    settings: Any, neo4j_driver: neo4j.Driver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    prefix = f"sec{uuid.uuid4().hex[:8]}"
    run(_create_topics(settings.kafka_bootstrap, [f"{prefix}.cim.ingest.{p}" for p in PRODUCERS]))
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {
        **os.environ,
        "HUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HUB_NEO4J_URI": settings.neo4j_uri,
        "HUB_NEO4J_USER": settings.neo4j_user,
        "HUB_NEO4J_PASSWORD": settings.neo4j_password,
        "HUB_INGEST_TOPIC_PREFIX": f"{prefix}.cim.ingest.",
        "HUB_DEADLETTER_TOPIC": f"{prefix}.cim.deadletter",
        "HUB_CHANGES_TOPIC": f"{prefix}.cim.changes",
        "HUB_AUDIT_TOPIC": f"{prefix}.hub.audit",
        "HUB_WORKER_ID": f"{prefix}-worker",
        "HUB_WORKER_WEB_PORT": "0",
        "HUB_METRICS_PORT": "0",
        "HUB_PRODUCERS": json.dumps(PRODUCERS),
        "HUB_BATCH_TIMEOUT_S": "0.1",
        "HUB_TOPIC_PARTITIONS": "1",
        "HUB_TOPIC_DISCOVERY_INTERVAL_S": "1.0",
    }
    # The worker signs in as its principal, whose ACLs follow these topic names.
    kafka.apply_service_acls(
        settings.model_copy(
            update={
                "ingest_topic_prefix": f"{prefix}.cim.ingest.",
                "deadletter_topic": f"{prefix}.cim.deadletter",
                "changes_topic": f"{prefix}.cim.changes",
                "audit_topic": f"{prefix}.hub.audit",
                "worker_id": f"{prefix}-worker",
            }
        )
    )
    api_settings = settings.model_copy(
        update={
            "ingest_topic_prefix": f"{prefix}.cim.ingest.",
            "producers": PRODUCERS,
            "label_cache_ttl_s": 0.0,
        }
    )
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "ingest.worker"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        with serve(api_settings) as api:
            yield Stack(prefix, api, settings, neo4j_driver, worker, log)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=30)
        neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)
        run(_delete_topics(settings.kafka_bootstrap, prefix))
