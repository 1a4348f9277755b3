"""The ingest worker end to end: real Kafka, real Neo4j, the worker as a real process.

A generated stream (electricity and gas, duplicates, out-of-order versions, deletes followed by stale
upserts, references before their targets, measurements, labels in events and headers, invalid events of
every kind) goes through the worker; the graph it leaves must equal what an oracle in this file computes
from the event list, one event at a time, from the rules alone. The dead-letter topic must hold exactly
the invalid events, each with its reason. The same must hold when the worker is SIGKILLed mid-stream and
restarted, and when Neo4j stops for a while and comes back.

Each test has its own topic prefix, consumer group and mRID prefix, so tests (and other people's tests)
on the shared services do not see each other's data.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import neo4j
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families
from write_model import Model, Node, expected_graph

from devstack.services import kafka
from hub import kafka_topics
from hub.graph_schema import CLASS, COUNT_KEY, EVENT_ID, LABEL, OWNER, PRODUCER, VERSION, X, Y
from hub.kafka_clients import admin_options
from hub.kafka_topics import ensure_topics, topic_admin, topic_names
from hub.labels import canonical, label_id
from hub.writer import Accepted
from ontology.loader import load_ontology

REPO = Path(__file__).resolve().parents[2]
ONT = load_ontology()
STUB_LABEL = label_id("role=admin")
MAX_BYTES = 4096
PARTITIONS = 3

ELEC_CLASSES = [
    "BaseVoltage",
    "ACLineSegment",
    "Terminal",
    "ConnectivityNode",
    "ThermalGeneratingUnit",
    "Location",
    "PositionPoint",
]
GAS_CLASSES = [
    "GasInnerNode",
    "GasSource",
    "GasSink",
    "GasPipe",
    "GasCompressorStation",
    "GasOfftake",
    "GasMeasurement",
]
SIMPLE_TYPES = {"float", "int", "bool", "string"}
COORDS = {("GasNode.longitude", "GasNode.latitude"), ("PositionPoint.xPosition", "PositionPoint.yPosition")}
COORD_QNAMES = {q for pair in COORDS for q in pair}


# ------------------------------------------------------------------------------------ generation


@dataclass
class Produced:
    producer: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    invalid: str | None = None  # expected reason class when the event must be dead-lettered
    event: dict[str, Any] | None = None  # the parsed event of a valid record
    label: str | None = None  # the label text the event carries (body or header), None = default


@dataclass
class Scenario:
    prefix: str
    producers: dict[str, dict[str, str | bool]]
    records: list[Produced] = field(default_factory=list)

    def topic(self, producer: str) -> str:
        return f"{self.prefix}.cim.ingest.{producer}"


def _attr_value(rng: random.Random, qname: str, datatype: str) -> Any:
    if datatype == "float":
        value = round(rng.uniform(-500, 500), 3)
        # Producers send CIM numbers as text too ("4.250000").
        return f"{value:.6f}" if rng.random() < 0.2 else value
    if datatype == "int":
        return rng.randint(0, 1000)
    if datatype == "bool":
        return rng.random() < 0.5
    return f"{qname.split('.')[-1]}-{rng.randint(0, 10**6)}"


def _settable(cls: str) -> list[tuple[str, str]]:
    return sorted(
        (q, a.datatype)
        for q, a in ONT.attributes_of(cls).items()
        if a.datatype in SIMPLE_TYPES and q != "IdentifiedObject.mRID" and q not in COORD_QNAMES
    )


def generate(prefix: str, seed: int, per_class: int = 60) -> Scenario:
    """Several thousand events; the per-object sequences are scripted, their interleaving is random."""
    rng = random.Random(seed)
    elec, gas = f"{prefix}-elec", f"{prefix}-gas"
    # Both may declassify: the stream relabels objects at random, widening as often as narrowing (the
    # write check's refusals have tests of their own, in tests/security/).
    producers: dict[str, dict[str, str | bool]] = {
        elec: {
            "org": "ngt",
            "clearance": "OFFICIAL",
            "owns": f"{prefix}e-",
            "default_label": "org=neso|org=ngt",
            "declassify": True,
        },
        gas: {"org": "gasco", "clearance": "OFFICIAL-SENSITIVE", "owns": f"{prefix}g-", "declassify": True},
    }
    sc = Scenario(prefix, producers)
    objects: dict[str, list[str]] = {}
    never_published: dict[str, list[str]] = {}
    for cls in ELEC_CLASSES + GAS_CLASSES:
        owner = "e" if ONT.domain(cls) == "Electricity" else "g"
        objects[cls] = [f"{prefix}{owner}-{cls}-{i}" for i in range(per_class)]
        never_published[cls] = [f"{prefix}{owner}-{cls}-ghost{i}" for i in range(3)]
    referenced_classes: set[str] = set()
    for cls in objects:
        for assoc in ONT.associations_of(cls).values():
            referenced_classes.update(c for c in objects if ONT.is_a(c, assoc.target))
    # Objects of classes nobody references may be deleted and recreated: no edge to them depends on the
    # interleaving of different partitions.
    recreatable = set(objects) - referenced_classes
    labels = {
        elec: ["org=ngt", "org=neso|org=ngt", "classification=OFFICIAL&org=ngt"],
        gas: ["org=gasco", "classification=OFFICIAL-SENSITIVE|org=gasco"],
    }
    ghost_used: dict[str, str] = {}  # ghost mRID -> the association qname that alone refers to it
    t0 = datetime(2025, 6, 1, tzinfo=UTC)

    def refs(cls: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for qname, assoc in sorted(ONT.associations_of(cls).items()):
            candidates = [c for c in objects if ONT.is_a(c, assoc.target)]
            if not candidates or rng.random() < 0.3:
                continue
            picks = []
            for _ in range(rng.randint(1, 3) if assoc.many else 1):
                tcls = rng.choice(candidates)
                if rng.random() < 0.08:
                    ghosts = [g for g in never_published[tcls] if ghost_used.get(g, qname) == qname]
                    if ghosts:
                        ghost = rng.choice(ghosts)
                        ghost_used[ghost] = qname
                        picks.append(ghost)
                        continue
                picks.append(rng.choice(objects[tcls]))
            out[qname] = picks if assoc.many else picks[0]
        return out

    def attrs(cls: str, full: bool) -> dict[str, Any]:
        settable = _settable(cls)
        chosen = settable if full else rng.sample(settable, k=min(len(settable), rng.randint(1, 3)))
        out = {q: _attr_value(rng, q, dt) for q, dt in chosen if full or rng.random() < 0.9}
        if not full and out and rng.random() < 0.2:
            out[rng.choice(list(out))] = None  # removal
        for xq, yq in COORDS:
            if xq in ONT.attributes_of(cls) and (full or rng.random() < 0.3):
                x, y = round(rng.uniform(-5, 15), 5), round(rng.uniform(45, 58), 5)
                string = ONT.attributes_of(cls)[xq].datatype == "string"
                out[xq], out[yq] = (str(x), str(y)) if string else (x, y)
        return out

    def event(producer: str, cls: str, mrid: str, kind: str, version: int, **body: Any) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "source": producer,
            "type": kind,
            "subject": mrid,
            "time": (t0 + timedelta(seconds=version)).isoformat(),
            "version": version,
            "class": cls,
            **body,
        }

    def valid(producer: str, ev: dict[str, Any]) -> list[Produced]:
        headers: list[tuple[str, bytes]] = []
        label = None
        if ev["type"] == "upsert":
            roll = rng.random()
            if roll < 0.3:
                label = ev["label"] = rng.choice(labels[producer])
            elif roll < 0.5:
                label = rng.choice(labels[producer])
                headers.append(("Security-Label", label.encode()))
        value = json.dumps(ev).encode()
        return [Produced(producer, ev["subject"].encode(), value, headers, None, ev, label)]

    sequences: list[list[Produced]] = []
    for cls, mrids in objects.items():
        producer = elec if ONT.domain(cls) == "Electricity" else gas
        for mrid in mrids:
            seq: list[Produced] = []
            version = 0

            def nxt(step: int = 1) -> int:
                nonlocal version
                version += step
                return version

            if rng.random() < 0.1:  # a measurement before the object exists: ignored
                seq += valid(
                    producer, event(producer, cls, mrid, "measurement", nxt(), attributes=attrs(cls, False))
                )
            seq += valid(
                producer,
                event(
                    producer, cls, mrid, "upsert", nxt(), attributes=attrs(cls, True), references=refs(cls)
                ),
            )
            for _ in range(rng.randint(0, 4)):
                roll = rng.random()
                if roll < 0.55:
                    body: dict[str, Any] = {"attributes": attrs(cls, False)}
                    if rng.random() < 0.4:
                        body["references"] = refs(cls)
                    seq += valid(
                        producer, event(producer, cls, mrid, "upsert", nxt(rng.randint(1, 3)), **body)
                    )
                elif roll < 0.8:
                    seq += valid(
                        producer,
                        event(
                            producer,
                            cls,
                            mrid,
                            "measurement",
                            nxt(),
                            attributes={q: v for q, v in attrs(cls, False).items() if q not in COORD_QNAMES},
                        ),
                    )
                else:
                    seq += valid(
                        producer, event(producer, cls, mrid, "upsert", nxt(), attributes=attrs(cls, False))
                    )
                    seq.append(seq[-1])  # exact duplicate
            roll = rng.random()
            if roll < 0.15:  # delete, then a late older upsert that must not resurrect it
                old = version
                seq += valid(producer, event(producer, cls, mrid, "delete", nxt(2)))
                seq += valid(
                    producer, event(producer, cls, mrid, "upsert", old + 1, attributes=attrs(cls, True))
                )
                if cls in recreatable and rng.random() < 0.5:  # a newer upsert brings it back
                    seq += valid(
                        producer,
                        event(
                            producer,
                            cls,
                            mrid,
                            "upsert",
                            nxt(),
                            attributes=attrs(cls, True),
                            references=refs(cls),
                        ),
                    )
            elif roll < 0.3 and len(seq) >= 2:  # two versions arrive swapped: the older is stale
                i = rng.randrange(len(seq) - 1)
                seq[i], seq[i + 1] = seq[i + 1], seq[i]
            sequences.append(seq)

    invalid: list[Produced] = []

    def bad(
        producer: str,
        reason: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        invalid.append(Produced(producer, key, value, headers or [], reason))

    named = [c for c in ELEC_CLASSES if "IdentifiedObject.name" in ONT.attributes_of(c)]
    for i in range(12):
        cls = rng.choice(named)
        mrid = rng.choice(objects[cls])
        base = event(elec, cls, mrid, "upsert", 1000 + i, attributes={"IdentifiedObject.name": f"bad{i}"})
        bad(elec, "json", b'{"id": "broken' + str(i).encode(), mrid.encode())
        bad(elec, "class", json.dumps({**base, "class": "NoSuchClass"}).encode(), mrid.encode())
        bad(
            elec,
            "attribute",
            json.dumps({**base, "attributes": {"IdentifiedObject.name": "x", "Nope.nothing": 1}}).encode(),
            mrid.encode(),
        )
        bad(elec, "label", json.dumps({**base, "label": "org=ngt&|org=x"}).encode(), mrid.encode())
        bad(elec, "label", json.dumps({**base, "label": "org=gasco"}).encode(), mrid.encode())
        bad(elec, "label", json.dumps(base).encode(), mrid.encode(), [("Security-Label", b"role=(")])
        bad(
            elec,
            "size",
            json.dumps({**base, "attributes": {"IdentifiedObject.name": "x" * MAX_BYTES}}).encode(),
            mrid.encode(),
        )
        bad(
            elec,
            "envelope",
            json.dumps({k: v for k, v in base.items() if k != "version"}).encode(),
            mrid.encode(),
        )
        # The gas producer writing an electricity mRID, and claiming to be someone else.
        gbase = {**base, "source": gas}
        bad(gas, "ownership", json.dumps(gbase).encode(), mrid.encode())
        bad(gas, "source", json.dumps(base).encode(), mrid.encode())
        line = rng.choice(objects["ACLineSegment"])
        bad(
            elec,
            "attribute",
            json.dumps(
                event(
                    elec,
                    "ACLineSegment",
                    line,
                    "upsert",
                    2000 + i,
                    attributes={"ACLineSegment.r": "not-a-number"},
                )
            ).encode(),
            line.encode(),
        )

    # Interleave: each object's events stay in order, objects and invalid records mix at random.
    streams = [list(s) for s in sequences] + [[x] for x in invalid]
    while streams:
        i = rng.randrange(len(streams))
        sc.records.append(streams[i].pop(0))
        if not streams[i]:
            streams.pop(i)
    return sc


# ---------------------------------------------------------------------------------------- oracle


def _convert(datatype: str, value: Any) -> Any:
    if value is None:
        return None
    if datatype == "float":
        return float(value)
    return value


def accepted_of(sc: Scenario, rec: Produced) -> Accepted:
    """A valid record as the writer receives it: ontology keys, converted values, the label it gets."""
    ev = rec.event
    assert ev is not None
    cls = ev["class"]
    attrs = ONT.attributes_of(cls)
    given = ev.get("attributes", {})
    props = {attrs[qname].key: _convert(attrs[qname].datatype, value) for qname, value in given.items()}
    for xq, yq in COORDS:
        if given.get(xq) is not None and given.get(yq) is not None:
            props[X] = float(given[xq])
            props[Y] = float(given[yq])
    rels: dict[str, tuple[str, list[str]]] = {}
    for qname, value in ev.get("references", {}).items():
        assoc = ONT.associations_of(cls)[qname]
        rels[assoc.rel_type] = (assoc.target, [value] if isinstance(value, str) else list(value))
    config = sc.producers[rec.producer]
    text = canonical(str(rec.label or config.get("default_label") or f"org={config['org']}"))
    return Accepted(
        mrid=ev["subject"],
        kind=ev["type"],
        version=ev["version"],
        cls=cls,
        props=props,
        rels=rels,
        label_id=label_id(text),
        label_text=text,
        producer=rec.producer,
        event_id=ev["id"],
        event_time=datetime.fromisoformat(ev["time"]),
    )


def oracle(sc: Scenario) -> tuple[dict[str, Node], set[tuple[str, str, str]]]:
    """The graph the rules say the valid events leave, applied one at a time in stream order (the
    stream's refused writes are its invalid records, which never reach the model)."""
    model = Model(ONT)
    for rec in sc.records:
        if rec.invalid is None:
            model.apply(accepted_of(sc, rec))
    return model.nodes, model.edges


BOOKKEEPING = {VERSION, LABEL, OWNER, CLASS, PRODUCER, EVENT_ID, X, Y, COUNT_KEY}


def read_graph(driver: neo4j.Driver, prefix: str) -> tuple[dict[str, Any], set[tuple[str, str, str]]]:
    records, _, _ = driver.execute_query(
        "MATCH (n:Entity) WHERE n.mrid STARTS WITH $p "
        "RETURN n.mrid AS m, labels(n) AS ls, properties(n) AS ps",
        p=prefix,
    )
    nodes = {
        r["m"]: (
            set(r["ls"]),
            {k: v for k, v in r["ps"].items() if not k.startswith("_") or k in BOOKKEEPING},
        )
        for r in records
    }
    records, _, _ = driver.execute_query(
        "MATCH (a:Entity)-[x]-(b:Entity) WHERE a.mrid STARTS WITH $p RETURN a.mrid AS a, type(x) AS t, "
        "b.mrid AS b, startNode(x) = a AS out",
        p=prefix,
    )
    edges = {(r["a"], r["t"], r["b"]) for r in records if r["out"]}
    return nodes, edges


def assert_graph_matches(driver: neo4j.Driver, sc: Scenario) -> None:
    nodes, edges = oracle(sc)
    want = expected_graph(nodes)
    got, got_edges = read_graph(driver, sc.prefix)
    missing = sorted(set(want) - set(got))[:5]
    extra = sorted(set(got) - set(want))[:5]
    assert not missing and not extra, (
        f"{len(set(want) - set(got))} nodes missing, e.g. {missing}; {len(set(got) - set(want))} unexpected, "
        f"e.g. {extra}"
    )
    diffs = [(m, want[m], got[m]) for m in sorted(want) if want[m] != got[m]]
    assert not diffs, f"{len(diffs)} nodes differ, first: {diffs[:3]}"
    assert got_edges == edges, (
        f"edges missing {sorted(edges - got_edges)[:5]}, extra {sorted(got_edges - edges)[:5]}"
    )
    kinds = {n.status for n in nodes.values()}
    assert kinds == {"live", "stub", "dead"}, f"the stream should exercise every node state, got {kinds}"


# ------------------------------------------------------------------------------------ Kafka helpers


def run(coro: Any) -> Any:
    return asyncio.new_event_loop().run_until_complete(coro)


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    async with topic_admin(admin_options(bootstrap)) as admin:
        await ensure_topics(admin, names, partitions)


async def delete_topics(bootstrap: str, prefix: str) -> None:
    async with topic_admin(admin_options(bootstrap)) as admin:
        await kafka_topics.delete_topics(admin, await topic_names(admin, prefix + "."))


async def produce(bootstrap: str, sc: Scenario, records: list[Produced]) -> None:
    producer = AIOKafkaProducer(**admin_options(bootstrap), acks="all", max_request_size=4 * MAX_BYTES)
    await producer.start()
    try:
        futures = [
            await producer.send(sc.topic(r.producer), r.value, key=r.key, headers=r.headers) for r in records
        ]
        await producer.flush()
        for fut in futures:
            await fut
    finally:
        await producer.stop()


async def group_done(bootstrap: str, group: str, topics: list[str]) -> tuple[int, int]:
    """(committed, end) offsets summed over the topics' partitions for the worker's consumer group."""
    admin = AIOKafkaAdminClient(**admin_options(bootstrap))
    consumer = AIOKafkaConsumer(**admin_options(bootstrap))
    await admin.start()
    await consumer.start()
    try:
        described = await admin.describe_topics(topics)
        parts = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
        assert len(parts) == len(topics) * PARTITIONS, described
        end = await consumer.end_offsets(parts)
        try:
            committed = await admin.list_consumer_group_offsets(group, partitions=parts)
        except KafkaError as exc:
            # A broker that has just started has no group coordinator for a moment: nothing committed yet.
            if not exc.retriable:
                raise
            committed = {}
        done = sum(max(0, committed[tp].offset) if tp in committed else 0 for tp in parts)
        return done, sum(end.values())
    finally:
        await consumer.stop()
        await admin.close()


async def read_topic(bootstrap: str, topic: str, expect: int, timeout_s: float = 60.0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        **admin_options(bootstrap),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
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


# ---------------------------------------------------------------------------------- the worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerProcess:
    """``python -m ingest.worker`` with the test's settings; stdout/stderr kept in a log file."""

    def __init__(
        self,
        settings: Any,
        sc: Scenario,
        log_dir: Path,
        neo4j_uri: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.env = {
            **os.environ,
            "HUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HUB_NEO4J_URI": neo4j_uri or settings.neo4j_uri,
            "HUB_NEO4J_USER": settings.neo4j_user,
            "HUB_NEO4J_PASSWORD": settings.neo4j_password,
            "HUB_INGEST_TOPIC_PREFIX": f"{sc.prefix}.cim.ingest.",
            "HUB_DEADLETTER_TOPIC": f"{sc.prefix}.cim.deadletter",
            "HUB_CHANGES_TOPIC": f"{sc.prefix}.cim.changes",
            "HUB_WORKER_ID": f"{sc.prefix}-worker",
            "HUB_WORKER_WEB_PORT": "0",
            "HUB_METRICS_PORT": "0",
            "HUB_PRODUCERS": json.dumps(sc.producers),
            "HUB_MAX_EVENT_BYTES": str(MAX_BYTES),
            "HUB_BATCH_SIZE": "200",
            "HUB_BATCH_TIMEOUT_S": "0.2",
            "HUB_TOPIC_PARTITIONS": str(PARTITIONS),
            "HUB_WORKER_SESSION_TIMEOUT_S": "6",
            **(env or {}),
        }
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        # The worker signs in as its principal, whose ACLs follow these topic names.
        kafka.apply_service_acls(
            settings.model_copy(
                update={
                    "ingest_topic_prefix": f"{sc.prefix}.cim.ingest.",
                    "deadletter_topic": f"{sc.prefix}.cim.deadletter",
                    "changes_topic": f"{sc.prefix}.cim.changes",
                    "worker_id": f"{sc.prefix}-worker",
                }
            )
        )

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"worker-{self.starts}.log", "wb")  # noqa: SIM115 - owned by the process
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
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def terminate(self, timeout_s: float) -> bool:
        """SIGTERM; True if the worker exited by itself within ``timeout_s``."""
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("worker-*.log")))


def wait_until_done(bootstrap: str, sc: Scenario, worker: WorkerProcess, timeout_s: float = 300.0) -> None:
    topics = [sc.topic(p) for p in sc.producers]
    deadline = time.monotonic() + timeout_s
    last = (-1, -1)
    while time.monotonic() < deadline:
        assert worker.alive(), f"the worker exited: {worker.logs()[-3000:]}"
        last = run(group_done(bootstrap, f"{sc.prefix}-worker", topics))
        if last[0] == last[1]:
            return
        time.sleep(1.0)
    pytest.fail(
        f"worker did not commit everything in {timeout_s}s (committed/end {last}): {worker.logs()[-3000:]}"
    )


def assert_dead_letters(bootstrap: str, sc: Scenario) -> None:
    invalid = [r for r in sc.records if r.invalid is not None]
    got = run(read_topic(bootstrap, f"{sc.prefix}.cim.deadletter", len(invalid)))
    # Delivery is at least once: a batch replayed after a kill may dead-letter its records again.
    seen: dict[tuple[bytes, str], set[str]] = {}
    for msg in got:
        headers = {k: v.decode() for k, v in msg.headers}
        assert headers["reason"], msg
        assert headers["source-topic"] in {sc.topic(p) for p in sc.producers}
        assert int(headers["source-partition"]) >= 0 and int(headers["source-offset"]) >= 0
        seen.setdefault((msg.value, headers["reason-class"]), set()).add(
            f"{headers['source-topic']}/{headers['source-partition']}/{headers['source-offset']}"
        )
    want: dict[tuple[bytes, str], int] = {}
    for r in invalid:
        want[(r.value, r.invalid or "")] = want.get((r.value, r.invalid or ""), 0) + 1
    assert set(seen) == set(want), (
        f"dead letters differ: missing {[k for k in want if k not in seen][:3]}, "
        f"unexpected {[k for k in seen if k not in want][:3]}"
    )
    # Each invalid record once (distinct source offsets), replays aside.
    assert all(len(seen[k]) == n for k, n in want.items())


def assert_change_feed(bootstrap: str, sc: Scenario) -> None:
    nodes, _ = oracle(sc)
    got = run(read_topic(bootstrap, f"{sc.prefix}.cim.changes", len(nodes)))
    last: dict[str, dict[str, Any]] = {}
    for msg in got:
        record = json.loads(msg.value)
        assert msg.key.decode() == record["mrid"]
        last[record["mrid"]] = record
    assert set(last) == set(nodes)
    for mrid, node in nodes.items():
        change = last[mrid]
        assert change["version"] == node.version, (mrid, change)
        assert change["change"] == {"dead": "delete", "stub": "stub"}.get(node.status, change["change"])
        # A delete reaches those who could see the object before it: it carries that label.
        expected = node.gone_label if node.status == "dead" else node.label
        assert change["label_id"] == expected, (mrid, change)


# ------------------------------------------------------------------------------------------- tests


@pytest.fixture
def scenario(settings: Any, kafka_bootstrap: str, neo4j_driver: neo4j.Driver) -> Iterator[Scenario]:
    prefix = f"w{uuid.uuid4().hex[:8]}"
    sc = generate(prefix, seed=int(prefix[1:], 16))
    run(create_topics(kafka_bootstrap, [sc.topic(p) for p in sc.producers], PARTITIONS))
    yield sc
    neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)
    run(delete_topics(kafka_bootstrap, prefix))


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """Worker logs; pytest keeps the last runs' temporary folders for a look after a failure."""
    return tmp_path


# The eager consumer is a shim over mode's internals (docs/performance.md); off, Faust's own consumer
# must end the stream in the same graph.
@pytest.mark.parametrize("eager", [True, False], ids=["eager-consumer", "fausts-consumer"])
def test_stream_ends_as_the_oracle_graph(
    scenario: Scenario,
    settings: Any,
    kafka_bootstrap: str,
    neo4j_driver: neo4j.Driver,
    log_dir: Path,
    eager: bool,
) -> None:
    sc = scenario
    assert len(sc.records) > 3000
    metrics_port = free_port()
    # Every batch counts as slow here, so each one's write shows in the log with its database time.
    env = {
        "HUB_METRICS_PORT": str(metrics_port),
        "HUB_WORKER_SLOW_WRITE_S": "0",
        "HUB_WORKER_EAGER_CONSUMER": str(eager).lower(),
    }
    worker = WorkerProcess(settings, sc, log_dir, env=env)
    worker.start()
    try:
        run(produce(kafka_bootstrap, sc, sc.records))
        wait_until_done(kafka_bootstrap, sc, worker)
        assert_graph_matches(neo4j_driver, sc)
        assert_dead_letters(kafka_bootstrap, sc)
        assert_change_feed(kafka_bootstrap, sc)
        # Alone in its group, the worker held every partition and kept objects' states between batches.
        assert cache_states(worker) == ["on"]
        assert_batch_write_times(worker, metrics_port, sc)
        assert worker.terminate(20.0), "the worker did not stop on SIGTERM"
    finally:
        worker.stop()


def assert_batch_write_times(worker: WorkerProcess, metrics_port: int, sc: Scenario) -> None:
    """Each batch's write time and database time are in the metrics and in the slow-write log line."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels or (set(sample.labels) == {"le"} and sample.labels["le"] == "+Inf")
    }
    batches = samples["hub_batch_write_seconds_count"]
    assert batches > 0
    assert samples["hub_batch_db_seconds_count"] == batches
    assert samples["hub_batch_write_events_count"] == batches
    # Accepted events only: the checker's refusals never reach a transaction.
    assert 0 < samples["hub_batch_write_events_sum"] <= len(sc.records)
    assert samples["hub_batch_db_seconds_sum"] > 0
    # The database's own time is part of the transaction's (reported in whole milliseconds).
    assert samples["hub_batch_db_seconds_sum"] <= samples["hub_batch_write_seconds_sum"] + 0.001 * batches
    slow = [json.loads(line) for line in worker.logs().splitlines() if '"slow batch write"' in line]
    assert len(slow) == batches, (len(slow), batches)
    assert all(entry["db_s"] <= entry["write_s"] + 0.001 and entry["events"] > 0 for entry in slow)


def cache_states(worker: WorkerProcess) -> list[str]:
    """The worker's state-cache switches, in order, from its log lines."""
    found: list[str] = []
    for line in worker.logs().splitlines():
        if '"state cache ' in line:
            found.append("on" if '"state cache on' in line else "off")
    return found


def test_two_workers_share_the_stream_and_end_as_the_oracle_graph(
    scenario: Scenario, settings: Any, kafka_bootstrap: str, neo4j_driver: neo4j.Driver, log_dir: Path
) -> None:
    sc = scenario
    (log_dir / "a").mkdir()
    (log_dir / "b").mkdir()
    first = WorkerProcess(settings, sc, log_dir / "a")
    second = WorkerProcess(settings, sc, log_dir / "b")
    topics = [sc.topic(p) for p in sc.producers]
    first.start()
    try:
        half = len(sc.records) // 2
        run(produce(kafka_bootstrap, sc, sc.records[:half]))
        # The second joins while the first is writing: partitions move between them mid-stream.
        deadline = time.monotonic() + 120
        while run(group_done(kafka_bootstrap, f"{sc.prefix}-worker", topics))[0] == 0:
            assert time.monotonic() < deadline, f"nothing committed: {first.logs()[-3000:]}"
            time.sleep(0.2)
        second.start()
        # Once the group has rebalanced, the first no longer holds every partition.
        while cache_states(first)[-1:] != ["off"]:
            assert time.monotonic() < deadline + 120, f"no rebalance: {first.logs()[-3000:]}"
            time.sleep(0.2)
        run(produce(kafka_bootstrap, sc, sc.records[half:]))
        wait_until_done(kafka_bootstrap, sc, first)
        assert second.alive(), second.logs()[-3000:]
        assert_graph_matches(neo4j_driver, sc)
        assert_dead_letters(kafka_bootstrap, sc)
        # Neither keeps objects' states while the other may write them: the cache ends off in both.
        for worker in (first, second):
            states = cache_states(worker)
            assert not states or states[-1] == "off", (states, worker.logs()[-3000:])
    finally:
        first.stop()
        second.stop()


def test_sigkilled_worker_restarts_to_the_same_graph(
    scenario: Scenario, settings: Any, kafka_bootstrap: str, neo4j_driver: neo4j.Driver, log_dir: Path
) -> None:
    sc = scenario
    worker = WorkerProcess(settings, sc, log_dir)
    quarter = len(sc.records) // 4
    chunks = [sc.records[i * quarter : (i + 1) * quarter] for i in range(3)] + [sc.records[3 * quarter :]]
    topics = [sc.topic(p) for p in sc.producers]
    worker.start()
    try:
        for chunk in chunks:
            run(produce(kafka_bootstrap, sc, chunk))
            # Kill once some of this chunk is committed but not all of it: mid-stream, mid-batch.
            before = run(group_done(kafka_bootstrap, f"{sc.prefix}-worker", topics))[0]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done, end = run(group_done(kafka_bootstrap, f"{sc.prefix}-worker", topics))
                if done > before or done == end:
                    break
                time.sleep(0.2)
            time.sleep(random.uniform(0.0, 0.5))
            worker.kill()
            worker.start()
        wait_until_done(kafka_bootstrap, sc, worker)
        assert worker.starts == 5
        assert_graph_matches(neo4j_driver, sc)
        assert_dead_letters(kafka_bootstrap, sc)
    finally:
        worker.stop()


@pytest.fixture
def private_neo4j(settings: Any) -> Iterator[Any]:
    """A Neo4j of this test's own, so stopping it disturbs nobody else's tests."""
    from devstack.services import launcher

    state = Path(tempfile.mkdtemp(prefix="hub-neo4j-stop-"))
    own = settings.model_copy(
        update={
            "state_dir": state,
            "neo4j_uri": f"bolt://127.0.0.1:{free_port()}",
            "neo4j_heap": "512m",
            "neo4j_pagecache": "128m",
        }
    )
    launcher.ensure_up(own, ["neo4j"])
    try:
        yield own
    finally:
        launcher.stop(own, ["neo4j"])
        shutil.rmtree(state, ignore_errors=True)


def test_worker_waits_out_a_neo4j_outage(
    scenario: Scenario, settings: Any, kafka_bootstrap: str, private_neo4j: Any, log_dir: Path
) -> None:
    from devstack.services import launcher

    sc = scenario
    worker = WorkerProcess(settings, sc, log_dir, neo4j_uri=private_neo4j.neo4j_uri)
    topics = [sc.topic(p) for p in sc.producers]
    half = len(sc.records) // 2
    driver = neo4j.GraphDatabase.driver(
        private_neo4j.neo4j_uri, auth=(private_neo4j.neo4j_user, private_neo4j.neo4j_password)
    )
    worker.start()
    try:
        run(produce(kafka_bootstrap, sc, sc.records[:half]))
        deadline = time.monotonic() + 120
        while run(group_done(kafka_bootstrap, f"{sc.prefix}-worker", topics))[0] == 0:
            assert time.monotonic() < deadline, worker.logs()[-3000:]
            time.sleep(0.2)
        assert launcher.stop_service(private_neo4j, "neo4j")
        committed_while_down = run(group_done(kafka_bootstrap, f"{sc.prefix}-worker", topics))[0]
        run(produce(kafka_bootstrap, sc, sc.records[half:]))
        time.sleep(8)
        # Nothing can be committed while the database is away (one batch may have been in flight).
        done_during, end = run(group_done(kafka_bootstrap, f"{sc.prefix}-worker", topics))
        assert done_during < end
        assert done_during - committed_while_down <= 2 * 200 * PARTITIONS
        assert worker.alive()
        launcher.start_service(private_neo4j, "neo4j")
        wait_until_done(kafka_bootstrap, sc, worker)
        assert "neo4j write failed; retrying" in worker.logs()
        assert_graph_matches(driver, sc)
        assert_dead_letters(kafka_bootstrap, sc)
    finally:
        worker.stop()
        driver.close()


def _node_appears(driver: neo4j.Driver, mrid: str, worker: WorkerProcess, timeout_s: float) -> float:
    """Seconds until ``mrid`` is a live node; fails after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        assert worker.alive(), f"the worker exited: {worker.logs()[-3000:]}"
        records, _, _ = driver.execute_query(
            "MATCH (n:Entity {mrid: $m}) WHERE NOT n:Stub RETURN count(n) AS c", m=mrid
        )
        if records[0]["c"]:
            return time.monotonic() - started
        time.sleep(0.5)
    pytest.fail(f"{mrid} was not applied within {timeout_s} s: {worker.logs()[-3000:]}")


# Subscribing to a new topic within the discovery interval is a shim over Faust's conductor
# (docs/performance.md); off, Faust's own 45 s pause applies and the topic is still read.
@pytest.mark.parametrize("fast", [True, False], ids=["fast-resubscribe", "fausts-resubscribe"])
def test_a_producer_topic_created_while_the_worker_runs_is_read(
    settings: Any, kafka_bootstrap: str, neo4j_driver: neo4j.Driver, log_dir: Path, fast: bool
) -> None:
    prefix = f"d{uuid.uuid4().hex[:8]}"
    early, late = f"{prefix}-early", f"{prefix}-late"
    config: dict[str, str | bool] = {"org": "ngt", "clearance": "OFFICIAL", "owns": f"{prefix}-"}
    sc = Scenario(prefix, {early: dict(config), late: dict(config)})

    def record(producer: str, mrid: str) -> Produced:
        event = {
            "id": str(uuid.uuid4()),
            "source": producer,
            "type": "upsert",
            "subject": mrid,
            "time": "2026-12-01T10:00:00Z",
            "version": 1,
            "class": "Substation",
            "attributes": {"IdentifiedObject.name": mrid},
        }
        return Produced(producer, mrid.encode(), json.dumps(event).encode(), [], event=event)

    run(create_topics(kafka_bootstrap, [sc.topic(early)], 1))
    env = {"HUB_WORKER_FAST_RESUBSCRIBE": str(fast).lower(), "HUB_TOPIC_DISCOVERY_INTERVAL_S": "1"}
    worker = WorkerProcess(settings, sc, log_dir, env=env)
    worker.start()
    try:
        run(produce(kafka_bootstrap, sc, [record(early, f"{prefix}-a")]))
        _node_appears(neo4j_driver, f"{prefix}-a", worker, 120.0)
        run(create_topics(kafka_bootstrap, [sc.topic(late)], 1))
        run(produce(kafka_bootstrap, sc, [record(late, f"{prefix}-b")]))
        # Within a few discovery intervals with the shim; after Faust's 45 s pause without it.
        _node_appears(neo4j_driver, f"{prefix}-b", worker, 30.0 if fast else 150.0)
    finally:
        worker.stop()
        neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)
        run(delete_topics(kafka_bootstrap, prefix))


def test_a_worker_whose_agent_fails_exits_rather_than_reading_nothing(
    settings: Any, kafka_bootstrap: str, neo4j_driver: neo4j.Driver, log_dir: Path
) -> None:
    """Faust restarts a failed agent, but the restarted one is handed no events (its stream is not the
    one the conductor feeds): the worker would run on, reading nothing, its last batch unacknowledged.
    It exits instead, with an error status, so that whoever runs it sees the failure and starts it again
    (its unacknowledged events come again). Made to fail here by a change-feed topic that refuses the
    worker's change records."""
    prefix = f"f{uuid.uuid4().hex[:8]}"
    producer = f"{prefix}-p"
    config: dict[str, str | bool] = {"org": "ngt", "clearance": "OFFICIAL", "owns": f"{prefix}-"}
    sc = Scenario(prefix, {producer: config})

    def record(mrid: str) -> Produced:
        event = {
            "id": str(uuid.uuid4()),
            "source": producer,
            "type": "upsert",
            "subject": mrid,
            "time": "2026-12-01T10:00:00Z",
            "version": 1,
            "class": "Substation",
            "attributes": {"IdentifiedObject.name": mrid},
        }
        return Produced(producer, mrid.encode(), json.dumps(event).encode(), [], event=event)

    async def refusing_changes_topic() -> None:
        async with topic_admin(admin_options(kafka_bootstrap)) as admin:
            await admin.create_topics(
                [NewTopic(f"{prefix}.cim.changes", 1, 1, topic_configs={"max.message.bytes": "64"})]
            )

    run(create_topics(kafka_bootstrap, [sc.topic(producer)], 1))
    run(refusing_changes_topic())
    worker = WorkerProcess(settings, sc, log_dir)
    worker.start()
    try:
        run(produce(kafka_bootstrap, sc, [record(f"{prefix}-0")]))
        _node_appears(neo4j_driver, f"{prefix}-0", worker, 120.0)
        # One batch after another: a batch whose change records were refused fails, and the agent finds
        # that out when it hands on the next one.
        assert worker.proc is not None
        deadline = time.monotonic() + 120
        n = 0
        while worker.proc.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"the worker ran on after its agent failed: {worker.logs()[-3000:]}")
            n += 1
            run(produce(kafka_bootstrap, sc, [record(f"{prefix}-{n}")]))
            time.sleep(2.0)
        assert worker.proc.returncode != 0, worker.logs()[-3000:]
        assert "Crashed reason=" in worker.logs()
    finally:
        worker.stop()
        neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)
        run(delete_topics(kafka_bootstrap, prefix))


def _substation(producer: str, mrid: str) -> Produced:
    event = {
        "id": str(uuid.uuid4()),
        "source": producer,
        "type": "upsert",
        "subject": mrid,
        "time": "2026-12-01T10:00:00Z",
        "version": 1,
        "class": "Substation",
        "attributes": {"IdentifiedObject.name": mrid},
    }
    return Produced(producer, mrid.encode(), json.dumps(event).encode(), [], event=event)


def _applied_per_producer(driver: neo4j.Driver, prefix: str, producers: list[str]) -> dict[str, int]:
    records, _, _ = driver.execute_query(
        "UNWIND $ps AS p OPTIONAL MATCH (n:Entity) WHERE n.mrid STARTS WITH p + '-' AND NOT n:Stub "
        "RETURN p, count(n) AS c",
        ps=producers,
    )
    return {r["p"]: r["c"] for r in records}


# A burst of producer topics appearing while the worker writes a steady stream: each new topic makes the
# group rebalance with batches in flight, some of them several times over (discovery runs every second).
STEADY_EVENTS = 6_000
STEADY_CHUNK = 100
BURST_TOPICS = 5
BURST_EVENTS = 60
BURST_SPACING_CHUNKS = 2


def test_producer_topics_appearing_mid_stream_lose_no_event(
    settings: Any, kafka_bootstrap: str, neo4j_driver: neo4j.Driver, log_dir: Path
) -> None:
    prefix = f"r{uuid.uuid4().hex[:8]}"
    steady = f"{prefix}-steady"
    burst = [f"{prefix}-new{i}" for i in range(BURST_TOPICS)]
    config: dict[str, str | bool] = {"org": "ngt", "clearance": "OFFICIAL", "owns": f"{prefix}-"}
    sc = Scenario(prefix, {p: dict(config) for p in [steady, *burst]})
    expected = {steady: STEADY_EVENTS, **dict.fromkeys(burst, BURST_EVENTS)}

    run(create_topics(kafka_bootstrap, [sc.topic(steady)], PARTITIONS))
    env = {"HUB_TOPIC_DISCOVERY_INTERVAL_S": "1", "HUB_BATCH_SIZE": "100", "HUB_BATCH_TIMEOUT_S": "0.05"}
    worker = WorkerProcess(settings, sc, log_dir, env=env)
    worker.start()

    async def steady_stream() -> None:
        """The steady producer, chunk after chunk; the new topics come in a burst a third of the way in,
        one every ``BURST_SPACING_CHUNKS`` chunks (a few tenths of a second), so that discovery finds
        some of them together and some one after another, each time with batches in flight."""
        first_new = STEADY_EVENTS // STEADY_CHUNK // 3
        for n, start in enumerate(range(0, STEADY_EVENTS, STEADY_CHUNK)):
            chunk = range(start, start + STEADY_CHUNK)
            await produce(kafka_bootstrap, sc, [_substation(steady, f"{steady}-{i}") for i in chunk])
            k, due = divmod(n - first_new, BURST_SPACING_CHUNKS)
            if n >= first_new and not due and k < len(burst):
                new = burst[k]
                await create_topics(kafka_bootstrap, [sc.topic(new)], PARTITIONS)
                await produce(
                    kafka_bootstrap, sc, [_substation(new, f"{new}-{i}") for i in range(BURST_EVENTS)]
                )
            await asyncio.sleep(0.05)

    try:
        # The worker is writing before the stream goes on.
        run(produce(kafka_bootstrap, sc, [_substation(steady, f"{steady}-first")]))
        _node_appears(neo4j_driver, f"{steady}-first", worker, 120.0)
        run(steady_stream())
        expected[steady] += 1
        deadline = time.monotonic() + 180.0
        applied: dict[str, int] = {}
        while time.monotonic() < deadline:
            assert worker.alive(), f"the worker exited: {worker.logs()[-3000:]}"
            applied = _applied_per_producer(neo4j_driver, prefix, list(expected))
            if applied == expected:
                break
            time.sleep(1.0)
        assert applied == expected, (
            f"events not applied within the bound: applied {applied}, published {expected}; "
            f"{worker.logs()[-4000:]}"
        )
        # And their offsets committed: nothing would be read again by the next worker.
        wait_until_done(kafka_bootstrap, sc, worker, timeout_s=60.0)
    finally:
        worker.stop()
        neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)
        run(delete_topics(kafka_bootstrap, prefix))


def _ready_count(worker: WorkerProcess) -> int:
    """How many times the worker's consumer resumed reading after an assignment."""
    return worker.logs().count("Worker ready")


def test_a_worker_joining_and_leaving_mid_stream_loses_no_buffered_event(
    scenario: Scenario, settings: Any, kafka_bootstrap: str, neo4j_driver: neo4j.Driver, log_dir: Path
) -> None:
    """A second worker joins the group while the first has thousands of events fetched and buffered, and
    leaves again while the first has more: each time the group rebalances with events dropped from the
    buffers. The graph ends as the sequential oracle says and every offset is committed."""
    sc = scenario
    (log_dir / "a").mkdir()
    (log_dir / "b").mkdir()
    # Small batches: most of what was fetched waits in the buffers when the group rebalances.
    env = {"HUB_BATCH_SIZE": "25", "HUB_BATCH_TIMEOUT_S": "0.05"}
    first = WorkerProcess(settings, sc, log_dir / "a", env=env)
    second = WorkerProcess(settings, sc, log_dir / "b", env=env)
    topics = [sc.topic(p) for p in sc.producers]
    group = f"{sc.prefix}-worker"
    third = len(sc.records) // 3
    first.start()
    try:
        run(produce(kafka_bootstrap, sc, sc.records[:third]))
        deadline = time.monotonic() + 180
        while run(group_done(kafka_bootstrap, group, topics))[0] == 0:
            assert time.monotonic() < deadline, f"nothing committed: {first.logs()[-3000:]}"
            time.sleep(0.2)
        # Joins with most of the first third still buffered in the first worker.
        readies = _ready_count(first)
        run(produce(kafka_bootstrap, sc, sc.records[third : 2 * third]))
        second.start()
        while _ready_count(first) == readies or not _ready_count(second):
            assert time.monotonic() < deadline + 120, f"no rebalance: {first.logs()[-3000:]}"
            assert second.alive(), second.logs()[-3000:]
            time.sleep(0.1)
        # Leaves (a clean shutdown leaves the group at once) with the first holding buffered events.
        readies = _ready_count(first)
        run(produce(kafka_bootstrap, sc, sc.records[2 * third :]))
        assert second.terminate(30.0), "the second worker did not stop on SIGTERM"
        while _ready_count(first) == readies:
            assert time.monotonic() < deadline + 240, f"no rebalance on leaving: {first.logs()[-3000:]}"
            time.sleep(0.1)
        wait_until_done(kafka_bootstrap, sc, first)
        committed, end = run(group_done(kafka_bootstrap, group, topics))
        assert committed == end == len(sc.records)
        assert_graph_matches(neo4j_driver, sc)
        assert_dead_letters(kafka_bootstrap, sc)
    finally:
        first.stop()
        second.stop()
