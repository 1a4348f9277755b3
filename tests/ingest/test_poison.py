"""Poison events never stop ingest: real Kafka, real Neo4j, the worker as a real process.

Each test puts an event the worker must refuse in front of good events from the same and another
producer, and checks that the refused one lands in the dead-letter topic with its reason while every
other event is applied: a version beyond 64 bits, a value Neo4j itself refuses (a uniqueness constraint
the test adds), events near and beyond the size limit, messages without a key or keyed by another
object. A worker waiting out a Neo4j outage still stops on SIGTERM.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import neo4j
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from devstack.services import kafka
from hub.kafka_clients import admin_options
from hub.kafka_topics import delete_topics, ensure_topics, topic_admin, topic_names

REPO = Path(__file__).resolve().parents[2]
CLASS = "AccumulatorValue"  # used by no other worker test, so the constraint below meets only ours
BIG = 1_100_000
STOP_WITHIN_S = 8.0  # the test producer's request limit: room for a record beyond max_event_bytes


def run(coro: Any) -> Any:
    return asyncio.new_event_loop().run_until_complete(coro)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stream:
    """The test's producers, topics and worker settings (its own prefix, group and mRIDs)."""

    prefix: str
    producers: dict[str, dict[str, str]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    def topic(self, producer: str) -> str:
        return f"{self.prefix}.cim.ingest.{producer}"

    @property
    def a(self) -> str:
        return f"{self.prefix}-a"

    @property
    def b(self) -> str:
        return f"{self.prefix}-b"

    def mrid(self, producer: str, name: str) -> str:
        return f"{self.producers[producer]['owns']}{name}"

    def event(self, producer: str, name: str, **overrides: Any) -> dict[str, Any]:
        mrid = self.mrid(producer, name)
        version = self.versions.get(mrid, 0) + 1
        self.versions[mrid] = version
        event: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "source": producer,
            "type": "upsert",
            "subject": mrid,
            "time": "2026-01-01T00:00:00Z",
            "version": version,
            "class": CLASS,
            "attributes": {"IdentifiedObject.name": name},
        }
        event.update(overrides)
        return event


@pytest.fixture
def stream(kafka_bootstrap: str, neo4j_driver: neo4j.Driver) -> Iterator[Stream]:
    prefix = f"p{uuid.uuid4().hex[:8]}"
    st = Stream(prefix)
    st.producers = {
        st.a: {"org": "ngt", "clearance": "OFFICIAL", "owns": f"{prefix}a-"},
        st.b: {"org": "gasco", "clearance": "OFFICIAL", "owns": f"{prefix}b-"},
    }
    # One partition each: "behind" the poison means behind it in its partition.
    run(_create_topics(kafka_bootstrap, [st.topic(p) for p in st.producers]))
    yield st
    neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)
    run(_delete_topics(kafka_bootstrap, prefix))


async def _create_topics(bootstrap: str, names: list[str]) -> None:
    async with topic_admin(admin_options(bootstrap)) as admin:
        await ensure_topics(admin, names, 1)


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    async with topic_admin(admin_options(bootstrap)) as admin:
        await delete_topics(admin, await topic_names(admin, prefix + "."))


Record = tuple[str, bytes | None, bytes]  # topic, key, value


def keyed(st: Stream, producer: str, event: dict[str, Any]) -> Record:
    return (st.topic(producer), event["subject"].encode(), json.dumps(event).encode())


async def _produce(bootstrap: str, records: list[Record]) -> None:
    producer = AIOKafkaProducer(**admin_options(bootstrap), acks="all", max_request_size=BIG)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await producer.flush()
        for fut in futures:
            await fut
    finally:
        await producer.stop()


async def _progress(bootstrap: str, group: str, topics: list[str]) -> tuple[int, int]:
    """(committed, end) offsets of the worker's group, summed over the topics."""
    admin = AIOKafkaAdminClient(**admin_options(bootstrap))
    consumer = AIOKafkaConsumer(**admin_options(bootstrap))
    await admin.start()
    await consumer.start()
    try:
        parts = [TopicPartition(t, 0) for t in topics]
        end = await consumer.end_offsets(parts)
        deadline = time.monotonic() + 30
        while True:
            try:
                committed = await admin.list_consumer_group_offsets(group, partitions=parts)
                break
            except KafkaError as exc:
                # A broker that has just started has no group coordinator for a moment.
                if not exc.retriable or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        done = sum(max(0, committed[tp].offset) if tp in committed else 0 for tp in parts)
        return done, sum(end.values())
    finally:
        await consumer.stop()
        await admin.close()


async def _read_all(bootstrap: str, topic: str, expect: int, timeout_s: float = 60.0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        **admin_options(bootstrap),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=BIG,
        fetch_max_bytes=4 * BIG,
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for msgs in batch.values():
                out.extend(msgs)
            if len(out) >= expect and not batch:
                break
        return out
    finally:
        await consumer.stop()


class Worker:
    """``python -m ingest.worker`` with the stream's settings; its output in a log file."""

    def __init__(self, settings: Any, st: Stream, log_dir: Path, **env: str) -> None:
        self.st = st
        self.env = {
            **os.environ,
            "HUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HUB_NEO4J_URI": settings.neo4j_uri,
            "HUB_NEO4J_USER": settings.neo4j_user,
            "HUB_NEO4J_PASSWORD": settings.neo4j_password,
            "HUB_INGEST_TOPIC_PREFIX": f"{st.prefix}.cim.ingest.",
            "HUB_DEADLETTER_TOPIC": f"{st.prefix}.cim.deadletter",
            "HUB_CHANGES_TOPIC": f"{st.prefix}.cim.changes",
            "HUB_WORKER_ID": f"{st.prefix}-worker",
            "HUB_WORKER_WEB_PORT": "0",
            "HUB_METRICS_PORT": "0",
            "HUB_PRODUCERS": json.dumps(st.producers),
            "HUB_BATCH_SIZE": "50",
            "HUB_BATCH_TIMEOUT_S": "0.2",
            "HUB_TOPIC_PARTITIONS": "1",
            "HUB_WORKER_SESSION_TIMEOUT_S": "6",
            "HUB_WORKER_RETRY_MAX_BACKOFF_S": "1",
            **env,
        }
        # The worker signs in as its principal, whose ACLs follow these topic names.
        kafka.apply_service_acls(
            settings.model_copy(
                update={
                    "ingest_topic_prefix": f"{st.prefix}.cim.ingest.",
                    "deadletter_topic": f"{st.prefix}.cim.deadletter",
                    "changes_topic": f"{st.prefix}.cim.changes",
                    "worker_id": self.env["HUB_WORKER_ID"],
                }
            )
        )
        self.group = self.env["HUB_WORKER_ID"]
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"{self.group}-{self.starts}.log", "wb")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ingest.worker"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def logs(self) -> str:
        logs = sorted(self.log_dir.glob(f"{self.group}-*.log"))
        return "".join(p.read_text(errors="replace") for p in logs)

    def wait_until_done(self, bootstrap: str, timeout_s: float = 120.0) -> None:
        """Until the group has committed every record of the stream's topics."""
        topics = [self.st.topic(p) for p in self.st.producers]
        deadline = time.monotonic() + timeout_s
        last = (-1, -1)
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, f"worker exited: {self.logs()[-3000:]}"
            last = run(_progress(bootstrap, self.group, topics))
            if last[0] == last[1]:
                return
            time.sleep(1.0)
        pytest.fail(f"worker stalled: committed/end {last} after {timeout_s}s; log: {self.logs()[-4000:]}")


@pytest.fixture
def worker_factory(settings: Any, stream: Stream, tmp_path: Path) -> Iterator[Any]:
    made: list[Worker] = []

    def make(**env: str) -> Worker:
        worker = Worker(settings, stream, tmp_path, **env)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.stop()


def stored(driver: neo4j.Driver, prefix: str) -> dict[str, dict[str, Any]]:
    """Live objects of the stream: mRID -> properties."""
    records, _, _ = driver.execute_query(
        f"MATCH (n:{CLASS}) WHERE n.mrid STARTS WITH $p RETURN n.mrid AS m, properties(n) AS ps", p=prefix
    )
    return {r["m"]: r["ps"] for r in records}


def dead_letters(bootstrap: str, st: Stream, expect: int) -> list[tuple[dict[str, str], Any]]:
    msgs = run(_read_all(bootstrap, f"{st.prefix}.cim.deadletter", expect))
    return [({k: v.decode() for k, v in m.headers}, m) for m in msgs]


def good_events(st: Stream, n: int, tag: str) -> tuple[list[Record], set[str]]:
    """``n`` plain upserts from each producer; their mRIDs."""
    records: list[Record] = []
    for producer in (st.a, st.b):
        for i in range(n):
            records.append(keyed(st, producer, st.event(producer, f"{tag}{i}")))
    return records, {st.mrid(p, f"{tag}{i}") for p in (st.a, st.b) for i in range(n)}


# ------------------------------------------------------------------------------------------- tests


def test_a_version_beyond_64_bits_is_dead_lettered_and_the_rest_apply_across_a_restart(
    stream: Stream, worker_factory: Any, kafka_bootstrap: str, neo4j_driver: neo4j.Driver
) -> None:
    st = stream
    poison = st.event(st.a, "poison", version=2**64)
    before, before_mrids = good_events(st, 5, "before")
    after, after_mrids = good_events(st, 20, "after")
    run(_produce(kafka_bootstrap, [*before, keyed(st, st.a, poison), *after]))
    worker = worker_factory()
    worker.start()
    worker.wait_until_done(kafka_bootstrap)
    worker.kill()
    # A worker starting from the beginning meets the poison again (a new group has no offsets), and
    # events produced meanwhile wait behind it.
    more, more_mrids = good_events(st, 5, "more")
    run(_produce(kafka_bootstrap, more))
    again = worker_factory(HUB_WORKER_ID=f"{st.prefix}-again")
    again.start()
    again.wait_until_done(kafka_bootstrap)
    assert set(stored(neo4j_driver, st.prefix)) == before_mrids | after_mrids | more_mrids
    letters = dead_letters(kafka_bootstrap, st, 2)
    assert len(letters) == 2, letters  # once per group
    for headers, msg in letters:
        assert headers["reason-class"] == "envelope"
        assert "version" in headers["reason"] and str(2**64) in headers["reason"], headers["reason"]
        assert msg.value == json.dumps(poison).encode()


@pytest.fixture
def unique_short_name(neo4j_driver: neo4j.Driver, stream: Stream) -> Iterator[str]:
    """A uniqueness constraint on the class's shortName: a second object with the same value is a value
    that passes validation and that Neo4j itself refuses."""
    name = f"poison_{stream.prefix}"
    neo4j_driver.execute_query(f"CREATE CONSTRAINT {name} FOR (n:{CLASS}) REQUIRE n.shortName IS UNIQUE")
    yield name
    neo4j_driver.execute_query(f"DROP CONSTRAINT {name} IF EXISTS")


def test_a_value_the_graph_refuses_is_isolated_and_dead_lettered(
    stream: Stream,
    worker_factory: Any,
    unique_short_name: str,
    kafka_bootstrap: str,
    neo4j_driver: neo4j.Driver,
) -> None:
    st = stream
    same = {"IdentifiedObject.shortName": f"{st.prefix}-same"}
    first = st.event(st.a, "first", attributes={"IdentifiedObject.name": "first", **same})
    second = st.event(st.a, "second", attributes={"IdentifiedObject.name": "second", **same})
    before, before_mrids = good_events(st, 10, "before")
    middle, middle_mrids = good_events(st, 10, "middle")
    after, after_mrids = good_events(st, 10, "after")
    # All in one go: the refused event sits inside a batch with good events on both sides.
    run(
        _produce(
            kafka_bootstrap,
            [*before, keyed(st, st.a, first), *middle, keyed(st, st.a, second), *after],
        )
    )
    worker = worker_factory()
    worker.start()
    worker.wait_until_done(kafka_bootstrap)
    graph = stored(neo4j_driver, st.prefix)
    assert set(graph) == before_mrids | middle_mrids | after_mrids | {first["subject"]}
    assert graph[first["subject"]]["shortName"] == same["IdentifiedObject.shortName"]
    letters = dead_letters(kafka_bootstrap, st, 1)
    assert len(letters) == 1, letters
    headers, msg = letters[0]
    assert headers["reason-class"] == "store"
    assert "ConstraintValidationFailed" in headers["reason"], headers["reason"]
    assert msg.value == json.dumps(second).encode()
    assert "splitting it to find the event at fault" in worker.logs()


def test_events_near_and_beyond_the_size_limit_still_reach_the_dead_letters(
    stream: Stream, worker_factory: Any, kafka_bootstrap: str, neo4j_driver: neo4j.Driver
) -> None:
    st = stream
    limit = 1_000_000  # the worker's max_event_bytes, the default

    def padded(name: str, size: int) -> dict[str, Any]:
        event = st.event(st.a, name)
        event["attributes"]["IdentifiedObject.description"] = ""
        room = size - len(json.dumps(event).encode())
        event["attributes"]["IdentifiedObject.description"] = "x" * room
        assert len(json.dumps(event).encode()) == size
        return event

    # Within max_event_bytes but keyed by another object: refused after validation, and with its
    # headers larger than the worker's largest request (1,000,000 bytes).
    near = padded("near", limit - 20)
    beyond = padded("beyond", limit + 40_000)  # refused for its size; the broker took it (1 MiB)
    wrong_key = (st.topic(st.a), st.mrid(st.a, "someone-else").encode(), json.dumps(near).encode())
    good, good_mrids = good_events(st, 5, "good")
    run(_produce(kafka_bootstrap, [wrong_key, keyed(st, st.a, beyond), *good]))
    worker = worker_factory(HUB_MAX_EVENT_BYTES=str(limit))
    worker.start()
    worker.wait_until_done(kafka_bootstrap)
    assert set(stored(neo4j_driver, st.prefix)) == good_mrids
    letters = {h["reason-class"]: (h, m) for h, m in dead_letters(kafka_bootstrap, st, 2)}
    assert set(letters) == {"key", "size"}, letters
    for reason_class, original in (("key", wrong_key[2]), ("size", json.dumps(beyond).encode())):
        headers, msg = letters[reason_class]
        # Cut to fit, and saying so: the original's size and digest, and where the whole of it is.
        assert f"{len(original)} bytes" in headers["value-truncated"]
        assert original.startswith(msg.value) and len(msg.value) > limit - 10_000
        assert headers["source-topic"] == st.topic(st.a)


def test_messages_without_a_key_or_keyed_by_another_object_are_dead_lettered(
    stream: Stream, worker_factory: Any, kafka_bootstrap: str, neo4j_driver: neo4j.Driver
) -> None:
    st = stream
    unkeyed = st.event(st.a, "unkeyed")
    miskeyed = st.event(st.b, "miskeyed")
    good, good_mrids = good_events(st, 5, "good")
    run(
        _produce(
            kafka_bootstrap,
            [
                (st.topic(st.a), None, json.dumps(unkeyed).encode()),
                (st.topic(st.b), st.mrid(st.b, "good0").encode(), json.dumps(miskeyed).encode()),
                *good,
            ],
        )
    )
    worker = worker_factory()
    worker.start()
    worker.wait_until_done(kafka_bootstrap)
    assert set(stored(neo4j_driver, st.prefix)) == good_mrids
    letters = dead_letters(kafka_bootstrap, st, 2)
    got = {m.value: h for h, m in letters}
    assert set(got) == {json.dumps(unkeyed).encode(), json.dumps(miskeyed).encode()}, letters
    assert all(h["reason-class"] == "key" for h in got.values())
    assert "no key" in got[json.dumps(unkeyed).encode()]["reason"]
    assert "is not the event's subject" in got[json.dumps(miskeyed).encode()]["reason"]


def test_sigterm_stops_a_worker_waiting_out_a_neo4j_outage(
    stream: Stream, worker_factory: Any, kafka_bootstrap: str
) -> None:
    st = stream
    good, _ = good_events(st, 5, "waiting")
    run(_produce(kafka_bootstrap, good))
    # Nothing listens there: the worker retries its first batch for as long as it runs.
    worker = worker_factory(HUB_NEO4J_URI=f"bolt://127.0.0.1:{free_port()}")
    worker.start()
    deadline = time.monotonic() + 120
    while "neo4j write failed; retrying" not in worker.logs():
        assert time.monotonic() < deadline, worker.logs()[-3000:]
        assert worker.proc is not None and worker.proc.poll() is None, worker.logs()[-3000:]
        time.sleep(0.5)
    time.sleep(3)  # well into the retrying
    assert worker.proc is not None
    started = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    try:
        worker.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not stop within 60 s of SIGTERM: {worker.logs()[-3000:]}")
    took = time.monotonic() - started
    print(f"stopped {took:.1f} s after SIGTERM")
    assert took < STOP_WITHIN_S, f"stopped only {took:.1f} s after SIGTERM: {worker.logs()[-3000:]}"
    # Nothing was written, so nothing may have been acknowledged.
    done, end = run(_progress(kafka_bootstrap, f"{st.prefix}-worker", [st.topic(p) for p in st.producers]))
    assert (done, end) == (0, len(good))
