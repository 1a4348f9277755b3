"""Ingest pipeline benchmark: topic -> worker -> committed graph, beside a plain batched UNWIND loader.

``python -m bench.pipeline [--events N] [--rounds R] [--warmup-events W] [--rate R] [--stream-seconds S]
[--contract [on|both]]`` (``--contract``: the worker holds every event to a data contract promising each
class and attribute the benchmark writes, see :func:`write_contract`; ``--contract both``: every round
runs the pipeline twice, without the contract and with it, beside the same raw load, so the two are
compared with each other and with raw in one run)

Two measurements, each taken for the pipeline and for the raw baseline in the same run, on the same
kind of events (upserts of electricity and gas objects with their attributes and references, new mRIDs
per phase so both sides do the same create work):

* sustained throughput, in ``R`` rounds after an untimed warm-up of ``W`` events a side (so that round 1
  does not pay for planning and compiling one side's statements while the other's are warm). A round is
  a raw load and a pipeline run back to back (which goes first alternates), so that the load of a shared
  machine, which drifts over minutes, weighs on both sides of a round alike; every round starts from the
  same database (the previous round's objects are removed, untimed). The headline ratio is the median
  of the rounds' ratios.
  - raw: N events (JSON bytes, fresh mRIDs) written with plain batched ``UNWIND`` statements, writing
    the same labels, properties, bookkeeping and edges, with no Kafka, no validation, no version rule,
    no ownership or label checks, no change feed. Two plain loaders run in the first round (one
    statement per class and per relationship type; one statement for all nodes and one for all edges
    with dynamic labels and types); the faster is the baseline of every round.
  - pipeline: N events already in a fresh topic, a fresh worker process started on it; events per second
    between batch commits read from the change feed (each change record carries its batch's commit
    time), so Kafka's offset-commit interval does not blur the span.
  - both rates are sustained rates: they leave out the first tenth of the events (for the pipeline, the
    worker joining its consumer group and first fetching from each partition, which a running worker
    does once; the raw loader is timed the same way).
  - CPU per event of every process involved (Neo4j, Kafka, the worker, the loader), read from ``/proc``
    over each span: a figure far less swayed by a noisy machine than a rate, and one that shows where
    the time goes.
* with ``--contract both``, a round is a raw load and two pipeline runs, one worker without contracts and
  one with the benchmark's contract (``HUB_CONTRACTS_DIR``), on the same generated events (same seed, own
  mRIDs and topics); the three take turns going first. Each variant keeps its own worker between rounds
  (the other variant's worker sits idle on its drained topic meanwhile), and the freshness stream is sent
  to each variant's worker back to back. The contract run's dead-letter topic is counted: an event that
  broke the contract would be dead-lettered instead of written, and the rate would not compare.
* freshness: events arrive at a fixed rate (below both throughputs), stamped with their send time;
  freshness is commit time minus that time. The pipeline's commit times come from the change feed; the
  baseline takes the same rate from an in-process queue and batches with the worker's size and time
  bound.

Results go to ``bench/results/pipeline.json`` and ``.md``. Settings (Kafka, Neo4j, batch size) come from
``HUB_*`` variables as everywhere; the services must be running (``hub services up``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import queue
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import neo4j
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError

from devstack.services import kafka
from devstack.services.layout import StateLayout
from devstack.services.process import recorded_pid
from hub import kafka_topics
from hub.graph import cypher_name, ensure_schema, label_clause, make_driver
from hub.graph_schema import cypher
from hub.kafka_clients import admin_options
from hub.kafka_topics import ensure_topics, topic_admin, topic_names
from hub.labels import label_id
from hub.settings import Settings, get_settings
from ontology.loader import load_ontology

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLASSES = (
    "BaseVoltage",
    "Substation",
    "VoltageLevel",
    "ACLineSegment",
    "Terminal",
    "ConnectivityNode",
    "ThermalGeneratingUnit",
    "SynchronousMachine",
    "GasInnerNode",
    "GasSource",
    "GasSink",
    "GasPipe",
    "GasCompressorStation",
    "GasOfftake",
    "GasMeasurement",
)
SIMPLE = {"float", "int", "bool", "string"}
RAW_LABEL = label_id("org=bench")
# Both sides' rates leave out the first tenth of a run's events: a worker's start (joining the consumer
# group, the first fetches from each partition) happens once in its life, not per batch.
SETTLE = 0.1


def log(message: str) -> None:
    print(f"[bench.pipeline {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ events


def generate(n: int, prefix: str, producer: str, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``n`` upserts over the benchmark classes; references point at objects of the same run."""
    ont = load_ontology()
    rng = random.Random(seed)
    classes = [c for c in CLASSES if c in ont.classes]
    per_class = max(1, n // len(classes))
    attrs = {
        c: [
            (q, a.datatype)
            for q, a in ont.attributes_of(c).items()
            if a.datatype in SIMPLE and q != "IdentifiedObject.mRID"
        ][:8]
        for c in classes
    }
    targets: dict[str, list[str]] = {}
    for c in classes:
        for assoc in ont.associations_of(c).values():
            targets[assoc.qname] = [t for t in classes if ont.is_a(t, assoc.target)]
    for i in range(n):
        cls = classes[i % len(classes)]
        body: dict[str, Any] = {}
        for q, dt in attrs[cls]:
            body[q] = (
                round(rng.uniform(0, 400), 3)
                if dt == "float"
                else rng.randint(0, 99)
                if dt == "int"
                else rng.random() < 0.5
                if dt == "bool"
                else f"{cls}-{i}"
            )
        refs: dict[str, Any] = {}
        for assoc in ont.associations_of(cls).values():
            options = targets.get(assoc.qname) or []
            if options and rng.random() < 0.7:
                t = rng.choice(options)
                ref = f"{prefix}-{t}-{rng.randrange(per_class)}"
                refs[assoc.qname] = [ref] if assoc.many else ref
        yield {
            "id": uuid.uuid4().hex,
            "source": producer,
            "type": "upsert",
            "subject": f"{prefix}-{cls}-{i // len(classes)}",
            "time": datetime.now(UTC).isoformat(),
            "version": 1,
            "class": cls,
            "attributes": body,
            "references": refs,
        }


def write_contract(folder: Path, producer: str) -> Path:
    """A data contract for the benchmark's producer (hub/contracts.py) that every generated event keeps:
    each class promised with every attribute :func:`generate` sets, numbers within the ranges it draws
    from and the name required where it is set, so that the worker checks each event against it."""
    ont = load_ontology()
    schema = []
    for cls in (c for c in CLASSES if c in ont.classes):
        props: list[dict[str, Any]] = []
        simple = [
            (q, a)
            for q, a in ont.attributes_of(cls).items()
            if a.datatype in SIMPLE and q != "IdentifiedObject.mRID"
        ]
        for q, a in simple[:8]:
            prop: dict[str, Any] = {"name": q, "logicalType": LOGICAL[a.datatype]}
            if a.datatype == "float":
                prop["logicalTypeOptions"] = {"minimum": 0, "maximum": 400}
            elif a.datatype == "int":
                prop["logicalTypeOptions"] = {"minimum": 0, "maximum": 99}
            elif q == "IdentifiedObject.name":
                prop["required"] = True
            props.append(prop)
        schema.append({"name": cls, "properties": props})
    contract = {
        "apiVersion": "v3.2.0",
        "kind": "DataContract",
        "id": f"urn:energy-hub:contract:{producer}",
        "name": "Benchmark stream",
        "version": "1.0.0",
        "status": "active",
        "description": {"purpose": "The pipeline benchmark's events.", "limitations": "Synthetic."},
        "team": {"name": "bench"},
        "support": [{"channel": "email", "url": "mailto:bench@example.test"}],
        "slaProperties": [
            {"property": "frequency", "value": 1, "unit": "s"},
            {"property": "latency", "value": 1, "unit": "s"},
        ],
        "customProperties": [
            {"property": "producer", "value": producer},
            {"property": "defaultLabel", "value": "org=bench"},
            {"property": "maximumLabel", "value": "org=bench"},
            {"property": "licence", "value": "https://creativecommons.org/licenses/by/4.0/"},
            {"property": "sensitivity", "value": "OE-SB"},
        ],
        "schema": schema,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))
    return folder


LOGICAL = {"float": "number", "int": "integer", "bool": "boolean", "string": "string"}


# -------------------------------------------------------------------------------------- baseline


class PlainLoader:
    """What a simple script would do: decode, group by class, one UNWIND per class and per relationship.

    It writes the same graph as the worker (labels, attributes, the bookkeeping properties, edges, bare
    nodes for references) so that the comparison measures what Kafka and the worker add, not a thinner
    graph; it skips what the worker checks (validation, versions, ownership, labels, change feed)."""

    name = "per-class statements"

    def __init__(self, driver: neo4j.Driver, database: str) -> None:
        self.driver = driver
        self.database = database
        self.ont = load_ontology()
        self._node_cypher: dict[str, str] = {}
        self._rel_cypher: dict[str, str] = {}

    def node_cypher(self, cls: str) -> str:
        if cls not in self._node_cypher:
            self._node_cypher[cls] = cypher(
                "UNWIND $rows AS r MERGE (n:Entity {mrid: r.mrid}) "
                f"SET {label_clause('n', self.ont.neo4j_labels(cls))}, n += r.p, n.@version = r.v, "
                "n.@class = $cls, n.@domain = $domain, n.@owner = r.pr, n.@producer = r.pr, "
                "n.@event_id = r.e, n.@event_time = datetime(r.t), n.@updated = datetime(), n.@label = $label"
            )
        return self._node_cypher[cls]

    def rel_cypher(self, rel_type: str) -> str:
        if rel_type not in self._rel_cypher:
            self._rel_cypher[rel_type] = (
                "UNWIND $rows AS r MATCH (s:Entity {mrid: r.s}) MERGE (t:Entity {mrid: r.t}) "
                f"MERGE (s)-[:{cypher_name(rel_type)}]->(t)"
            )
        return self._rel_cypher[rel_type]

    def load(self, raw: list[bytes]) -> None:
        nodes: dict[str, list[dict[str, Any]]] = defaultdict(list)
        rels: dict[str, list[dict[str, str]]] = defaultdict(list)
        ont = self.ont
        for value in raw:
            ev = json.loads(value)
            cls = ev["class"]
            attrs = ont.attributes_of(cls)
            props = {attrs[q].key: v for q, v in ev["attributes"].items()}
            nodes[cls].append(
                {
                    "mrid": ev["subject"],
                    "p": props,
                    "v": ev["version"],
                    "pr": ev["source"],
                    "e": ev["id"],
                    "t": ev["time"],
                }
            )
            assocs = ont.associations_of(cls)
            for q, target in ev["references"].items():
                for t in [target] if isinstance(target, str) else target:
                    rels[assocs[q].rel_type].append({"s": ev["subject"], "t": t})

        def work(tx: neo4j.ManagedTransaction) -> None:
            for cls, rows in nodes.items():
                tx.run(
                    self.node_cypher(cls), rows=rows, cls=cls, domain=self.ont.domain(cls), label=RAW_LABEL
                ).consume()
            for rel_type, rows in rels.items():
                tx.run(self.rel_cypher(rel_type), rows=rows).consume()

        with self.driver.session(database=self.database) as session:
            session.execute_write(work)


class DynamicLoader(PlainLoader):
    """The same plain script with Neo4j 5.26's dynamic labels and types: one UNWIND for all nodes and one
    for all relationships per batch, whatever the classes (usually the faster of the two)."""

    name = "dynamic labels, two statements"

    NODES = cypher(
        "UNWIND $rows AS r MERGE (n:Entity {mrid: r.mrid}) "
        "SET n:$($labels[r.c]), n += r.p, n.@version = r.v, n.@class = r.c, n.@domain = $domains[r.c], "
        "n.@owner = r.pr, n.@producer = r.pr, n.@event_id = r.e, n.@event_time = datetime(r.t), "
        "n.@updated = datetime(), n.@label = $label"
    )
    RELS = (
        "UNWIND $rows AS r MATCH (s:Entity {mrid: r.s}) MERGE (t:Entity {mrid: r.t}) "
        "MERGE (s)-[:$(r.ty)]->(t)"
    )

    def load(self, raw: list[bytes]) -> None:
        nodes: list[dict[str, Any]] = []
        rels: list[dict[str, str]] = []
        classes: set[str] = set()
        ont = self.ont
        for value in raw:
            ev = json.loads(value)
            cls = ev["class"]
            classes.add(cls)
            attrs = ont.attributes_of(cls)
            nodes.append(
                {
                    "mrid": ev["subject"],
                    "c": cls,
                    "p": {attrs[q].key: v for q, v in ev["attributes"].items()},
                    "v": ev["version"],
                    "pr": ev["source"],
                    "e": ev["id"],
                    "t": ev["time"],
                }
            )
            assocs = ont.associations_of(cls)
            for q, target in ev["references"].items():
                for t in [target] if isinstance(target, str) else target:
                    rels.append({"s": ev["subject"], "t": t, "ty": assocs[q].rel_type})
        labels = {c: list(ont.neo4j_labels(c)) for c in classes}
        domains = {c: ont.domain(c) for c in classes}

        def work(tx: neo4j.ManagedTransaction) -> None:
            tx.run(self.NODES, rows=nodes, labels=labels, domains=domains, label=RAW_LABEL).consume()
            tx.run(self.RELS, rows=rels).consume()

        with self.driver.session(database=self.database) as session:
            session.execute_write(work)


def cpu_seconds(pid: int | None) -> float:
    """User plus system CPU time of a process so far (Linux ``/proc``; NaN elsewhere or when gone)."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory so far, in MiB (Linux ``/proc``; NaN elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def service_pids(settings: Settings) -> dict[str, int | None]:
    """The launcher's Kafka and Neo4j processes (None when run some other way, e.g. by Docker)."""
    layout = StateLayout.of(settings.state_dir)
    return {name: recorded_pid(layout.pid_file(name), str(layout.root)) for name in ("neo4j", "kafka")}


class CpuMeter:
    """CPU seconds of named processes (and of this one) between two readings."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids

    def read(self) -> dict[str, float]:
        out = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        out["bench"] = time.process_time()
        return out

    @staticmethod
    def per_event_us(start: dict[str, float], end: dict[str, float], events: int) -> dict[str, float]:
        return {k: (end[k] - start[k]) / max(1, events) * 1e6 for k in start}


def baseline_throughput(
    loader: PlainLoader, events: list[bytes], batch: int, meter: CpuMeter
) -> tuple[float, dict[str, float]]:
    """Events per second over the last part of the run (see :data:`SETTLE`), timed like the
    pipeline's: from the end of the batch that holds the first event past the settling share; and CPU
    microseconds per event by process over the whole load."""
    before = meter.read()
    settled: tuple[float, int] | None = None
    settle_at = int(len(events) * SETTLE)
    for i in range(0, len(events), batch):
        loader.load(events[i : i + batch])
        if settled is None and i + batch > settle_at:
            settled = (time.perf_counter(), min(len(events), i + batch))
    assert settled is not None
    ended = time.perf_counter()
    eps = (len(events) - settled[1]) / max(1e-9, ended - settled[0])
    return eps, CpuMeter.per_event_us(before, meter.read(), len(events))


def baseline_freshness(
    loader: PlainLoader, events: list[dict[str, Any]], rate: float, batch: int, timeout_s: float
) -> list[float]:
    """Events arrive at ``rate`` per second; batches close at ``batch`` events or ``timeout_s``."""
    inbox: queue.Queue[tuple[float, bytes] | None] = queue.Queue()

    def feed() -> None:
        start = time.perf_counter()
        for i, ev in enumerate(events):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.time()
            ev = {**ev, "time": datetime.fromtimestamp(sent, UTC).isoformat()}
            inbox.put((sent, json.dumps(ev).encode()))
        inbox.put(None)

    threading.Thread(target=feed, daemon=True).start()
    fresh: list[float] = []
    done = False
    while not done:
        pending: list[tuple[float, bytes]] = []
        deadline = None
        while len(pending) < batch:
            wait: float | None = None if deadline is None else max(0.0, deadline - time.perf_counter())
            try:
                item = inbox.get(timeout=wait)
            except queue.Empty:
                break
            if item is None:
                done = True
                break
            pending.append(item)
            if deadline is None:
                deadline = time.perf_counter() + timeout_s
        if pending:
            loader.load([raw for _, raw in pending])
            committed = time.time()
            fresh.extend(committed - sent for sent, _ in pending)
    return fresh


# -------------------------------------------------------------------------------------- pipeline


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    async with topic_admin(admin_options(bootstrap)) as admin:
        await ensure_topics(admin, [name], partitions)


async def produce(bootstrap: str, topic: str, events: list[dict[str, Any]], rate: float | None) -> None:
    producer = AIOKafkaProducer(**admin_options(bootstrap), acks="all", linger_ms=5)
    await producer.start()
    try:
        start = time.perf_counter()
        futures = []
        for i, ev in enumerate(events):
            if rate is not None:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                ev = {**ev, "time": datetime.now(UTC).isoformat()}
            futures.append(await producer.send(topic, json.dumps(ev).encode(), key=ev["subject"].encode()))
        await producer.flush()
        for fut in futures:
            await fut
    finally:
        await producer.stop()


class OffsetWatch:
    """How far a consumer group has committed on a topic, and the topic's end; one set of clients for
    the whole watch, so that polling costs the machine next to nothing."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.group = group
        self.topic = topic
        self.admin = AIOKafkaAdminClient(**admin_options(bootstrap))
        self.consumer = AIOKafkaConsumer(**admin_options(bootstrap))
        self.parts: list[TopicPartition] = []

    async def __aenter__(self) -> OffsetWatch:
        await self.admin.start()
        await self.consumer.start()
        described = await self.admin.describe_topics([self.topic])
        self.parts = [TopicPartition(self.topic, p["partition"]) for t in described for p in t["partitions"]]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def committed_and_end(self) -> tuple[int, int]:
        end = await self.consumer.end_offsets(self.parts)
        try:
            committed = await self.admin.list_consumer_group_offsets(self.group, partitions=self.parts)
        except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError):
            # A group the worker has only just joined may have no coordinator yet: nothing is committed.
            return 0, sum(end.values())
        done = sum(max(0, committed[tp].offset) for tp in self.parts if tp in committed)
        return done, sum(end.values())


async def topic_records(bootstrap: str, topic: str) -> int:
    """How many records ``topic`` has had (0 when it does not exist)."""
    consumer = AIOKafkaConsumer(**admin_options(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return 0
        parts = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


async def read_changes(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record on a change topic (until it has been quiet for two seconds)."""
    consumer = AIOKafkaConsumer(
        topic, **admin_options(bootstrap), auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000, max_records=10_000)
            if not batch:
                return out
            for msgs in batch.values():
                out.extend(json.loads(msg.value) for msg in msgs)
    finally:
        await consumer.stop()


def commit_span_rate(records: list[dict[str, Any]]) -> tuple[float, int]:
    """Events per second over the last part of the run (see :data:`SETTLE`), from upsert change
    records (one per event here: every event upserts a new object): from the commit of the batch that
    holds the first event past the settling share to the last commit, counting the events committed
    after the first of those."""
    times = sorted(datetime.fromisoformat(r["time"]).timestamp() for r in records if r["change"] == "upsert")
    if len(times) < 2:
        raise RuntimeError("the change feed holds too few upserts to time the worker")
    first = times[min(len(times) - 1, int(len(times) * SETTLE))]
    after_first = sum(1 for t in times if t > first)
    span = times[-1] - first
    if span <= 0:
        raise RuntimeError("every event was committed in one batch: give the benchmark more events")
    return after_first / span, len(times)


async def change_freshness(bootstrap: str, topic: str, since: float) -> list[float]:
    """Commit time minus event time of every change record of an event sent at or after ``since``."""
    out: list[float] = []
    for rec in await read_changes(bootstrap, topic):
        if rec["change"] == "stub" or not rec.get("event_time"):
            continue
        event_time = datetime.fromisoformat(rec["event_time"]).timestamp()
        if event_time >= since:
            out.append(datetime.fromisoformat(rec["time"]).timestamp() - event_time)
    return out


class Worker:
    def __init__(
        self, settings: Settings, prefix: str, producer: str, log_path: Path, contracts: Path | None = None
    ) -> None:
        self.group = f"{prefix}-worker"
        self.topic = f"{prefix}.cim.ingest.{producer}"
        self.changes_topic = f"{prefix}.cim.changes"
        self.env = {
            **os.environ,
            "HUB_INGEST_TOPIC_PREFIX": f"{prefix}.cim.ingest.",
            "HUB_DEADLETTER_TOPIC": f"{prefix}.cim.deadletter",
            "HUB_CHANGES_TOPIC": self.changes_topic,
            "HUB_WORKER_ID": self.group,
            "HUB_WORKER_WEB_PORT": "0",
            "HUB_METRICS_PORT": "0",
            "HUB_LOG_LEVEL": "WARNING",
            "HUB_PRODUCERS": json.dumps({producer: {"org": "bench", "clearance": "OFFICIAL"}}),
        }
        if contracts is not None:
            self.env["HUB_CONTRACTS_DIR"] = str(contracts)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        # The worker signs in as its principal, whose ACLs follow these topic names.
        kafka.apply_service_acls(
            settings.model_copy(
                update={
                    "ingest_topic_prefix": f"{prefix}.cim.ingest.",
                    "deadletter_topic": f"{prefix}.cim.deadletter",
                    "changes_topic": self.changes_topic,
                    "worker_id": self.group,
                }
            )
        )
        # The worker's peak resident memory once it has written a round's events (its buffer full).
        self.peak_rss_mb = float("nan")

    def start(self) -> None:
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ingest.worker"],
            cwd=ROOT,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def pipeline_throughput(
    settings: Settings, worker: Worker, topic: str, meter: CpuMeter, timeout_s: float
) -> tuple[float, dict[str, float]]:
    """Start ``worker`` on the events waiting in ``topic``; once it has committed them all, its rate from
    the change feed, and CPU microseconds per event by process over the same stretch."""
    worker.start()
    assert worker.proc is not None
    meter = CpuMeter({**meter.pids, "worker": worker.proc.pid})

    async def watch() -> tuple[tuple[int, dict[str, float]], tuple[int, dict[str, float]]]:
        async with OffsetWatch(settings.kafka_bootstrap, worker.group, topic) as offsets:
            first: tuple[int, dict[str, float]] | None = None
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                assert worker.proc is not None and worker.proc.poll() is None, (
                    "the worker exited; see its log"
                )
                done, end = await offsets.committed_and_end()
                if first is None and done > 0:
                    first = (done, meter.read())
                if first is not None and done >= end:
                    return first, (done, meter.read())
                await asyncio.sleep(0.25)
        raise TimeoutError(f"the worker did not finish in {timeout_s}s")

    (done0, cpu0), (done1, cpu1) = asyncio.run(watch())
    worker.peak_rss_mb = peak_rss_mb(worker.proc.pid)
    records = asyncio.run(read_changes(settings.kafka_bootstrap, worker.changes_topic))
    eps, _ = commit_span_rate(records)
    return eps, CpuMeter.per_event_us(cpu0, cpu1, done1 - done0)


def wait_committed(settings: Settings, worker: Worker, topic: str, timeout_s: float) -> None:
    async def watch() -> None:
        async with OffsetWatch(settings.kafka_bootstrap, worker.group, topic) as offsets:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                done, end = await offsets.committed_and_end()
                if done >= end:
                    return
                await asyncio.sleep(0.25)
        raise TimeoutError(f"the worker did not finish in {timeout_s}s")

    asyncio.run(watch())


def remove_nodes(driver: neo4j.Driver, settings: Settings, prefix: str) -> None:
    """Delete the objects (their kept versions too) and stored offsets of mRIDs and topics starting with
    ``prefix``."""
    while True:
        records, _, _ = driver.execute_query(
            "MATCH (n) WHERE ((n:Entity OR n:ObjectVersion) AND n.mrid STARTS WITH $p) OR (n:IngestOffset "
            "AND n.source STARTS WITH $p) WITH n LIMIT 20000 DETACH DELETE n RETURN count(*) AS c",
            p=prefix,
            database_=settings.neo4j_database,
        )
        if records[0]["c"] == 0:
            return


async def delete_topics(bootstrap: str, prefix: str) -> None:
    async with topic_admin(admin_options(bootstrap)) as admin:
        await kafka_topics.delete_topics(admin, await topic_names(admin, prefix))


# ------------------------------------------------------------------------------------------- main


def raw_round(
    loader: PlainLoader | None,
    driver: neo4j.Driver,
    settings: Settings,
    prefix: str,
    producer: str,
    n: int,
    meter: CpuMeter,
    variants: dict[str, float],
) -> tuple[PlainLoader, float, dict[str, float]]:
    """The raw side of a round; without a ``loader`` yet, both plain loaders run and the faster one is
    returned as the baseline of every round."""
    batch = settings.batch_size
    if loader is None:
        candidates: list[tuple[PlainLoader, float, dict[str, float]]] = []
        for side, variant in (("r", PlainLoader), ("s", DynamicLoader)):
            candidate = variant(driver, settings.neo4j_database)
            events = [json.dumps(e).encode() for e in generate(n, f"{prefix}{side}", producer)]
            eps, cpu = baseline_throughput(candidate, events, batch, meter)
            variants[candidate.name] = eps
            candidates.append((candidate, eps, cpu))
            log(f"raw ({candidate.name}): {eps:.0f} events/s; CPU us/event {fmt_cpu(cpu)}")
        return max(candidates, key=lambda c: c[1])
    events = [json.dumps(e).encode() for e in generate(n, f"{prefix}s", producer)]
    eps, cpu = baseline_throughput(loader, events, batch, meter)
    log(f"raw ({loader.name}): {eps:.0f} events/s; CPU us/event {fmt_cpu(cpu)}")
    return loader, eps, cpu


def pipeline_round(
    settings: Settings,
    prefix: str,
    producer: str,
    args: argparse.Namespace,
    meter: CpuMeter,
    worker_log: Path,
    previous: Worker | None,
    events: int | None = None,
    contracts: Path | None = None,
) -> tuple[Worker, float, dict[str, float]]:
    """The pipeline side of a round: events into a fresh topic, then a fresh worker on it (the previous
    round's worker is stopped first), holding events to the contracts in ``contracts`` when given."""
    worker = Worker(settings, prefix, producer, worker_log, contracts)
    asyncio.run(create_topic(settings.kafka_bootstrap, worker.topic, args.partitions))
    asyncio.run(
        produce(
            settings.kafka_bootstrap,
            worker.topic,
            list(generate(events or args.events, f"{prefix}p", producer)),
            None,
        )
    )
    if previous is not None:
        previous.stop()
    eps, cpu = pipeline_throughput(settings, worker, worker.topic, meter, args.timeout)
    side = "pipeline with contract" if contracts is not None else "pipeline"
    log(f"{side}: {eps:.0f} events/s; CPU us/event {fmt_cpu(cpu)}; worker peak {worker.peak_rss_mb:.0f} MiB")
    return worker, eps, cpu


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fmt_cpu(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}" for k, v in cpu.items() if v == v)  # NaN: process not visible


def write_results(result: dict[str, Any], name: str = "pipeline") -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    t, f = result["throughput"], result["freshness"]
    both = "contract_eps" in t
    machine = result["machine"]
    load = ""
    if "load_average_start" in machine:
        start, end = machine["load_average_start"], machine["load_average_end"]
        load = (
            f" Load average (1, 5, 15 min) at the start {start[0]:.2f}, {start[1]:.2f}, {start[2]:.2f}; "
            f"at the end {end[0]:.2f}, {end[1]:.2f}, {end[2]:.2f}."
        )
    if both:
        enforced = (
            "both: every round runs the pipeline without a data contract and with one (--contract both)"
        )
        shape = "a raw load and two pipeline runs (without and with the contract) back to back, taking turns"
    else:
        enforced = f"{'yes' if result.get('contract_enforced') else 'no'} (--contract)"
        shape = "a raw load and a pipeline run back to back, alternating"
    lines = [
        "# Ingest pipeline benchmark",
        "",
        f"Kafka security: {result.get('kafka_security', 'plaintext')} (HUB_KAFKA_SECURITY). Data contract "
        f"enforced by the worker: {enforced}.",
        "",
        f"Run {result['when']} on {machine['cpus']} CPUs ({machine['platform']}); "
        f"batch size {result['batch_size']}; {t['rounds']} rounds of {t['events']} events for throughput, "
        f"each {shape} which goes first, from the same "
        f"database; {f['events']} events at {f['rate']:.0f} "
        f"events/s for freshness.{load}",
        "",
    ]
    if both:
        lines += [
            "| measure | pipeline (Kafka -> worker -> Neo4j) | pipeline with contract "
            "| raw (batched UNWIND, no Kafka) | pipeline / raw | pipeline with contract / raw |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            f"| sustained events/s (median of rounds) | {t['pipeline_eps']:.0f} | {t['contract_eps']:.0f} "
            f"| {t['raw_eps']:.0f} | **{t['ratio']:.0%}** | **{t['contract_ratio']:.0%}** |",
            f"| freshness p50 (s) | {f['pipeline_p50_s']:.3f} | {f['contract_p50_s']:.3f} "
            f"| {f['raw_p50_s']:.3f} | | |",
            f"| freshness p99 (s) | {f['pipeline_p99_s']:.3f} | {f['contract_p99_s']:.3f} "
            f"| {f['raw_p99_s']:.3f} | | |",
            "",
            "Ratios are medians of the rounds' ratios. With the contract the pipeline ran at "
            f"{t['contract_to_pipeline']:.0%} of its rate without (median of the rounds' ratios). Events "
            "dead-lettered: "
            + ", ".join(f"{k} {v}" for k, v in result.get("dead_letters", {}).items())
            + " (every event keeps the contract; one dead-lettered would not be written). The freshness "
            "streams go one after another: raw, the pipeline without the contract, then with it.",
            "",
            "Rounds (CPU microseconds per event by process over the same stretch):",
            "",
            "| round | order | raw events/s | pipeline events/s | with contract events/s | pipeline / raw "
            "| with contract / raw | raw CPU us/event | pipeline CPU us/event | with contract CPU us/event |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |",
        ]
        for k, r in enumerate(t["per_round"], 1):
            lines.append(
                f"| {k} | {', '.join(r['order'])} | {r['raw_eps']:.0f} | {r['pipeline_eps']:.0f} "
                f"| {r['contract_eps']:.0f} | {r['ratio']:.0%} | {r['contract_ratio']:.0%} "
                f"| {fmt_cpu(r['raw_cpu_us'])} | {fmt_cpu(r['pipeline_cpu_us'])} "
                f"| {fmt_cpu(r['contract_cpu_us'])} |"
            )
    else:
        lines += [
            "| measure | pipeline (Kafka -> worker -> Neo4j) | raw (batched UNWIND, no Kafka) "
            "| pipeline / raw |",
            "| --- | ---: | ---: | ---: |",
            f"| sustained events/s (median of rounds) | {t['pipeline_eps']:.0f} | {t['raw_eps']:.0f} "
            f"| **{t['ratio']:.0%}** (median of the rounds' ratios) |",
            f"| freshness p50 (s) | {f['pipeline_p50_s']:.3f} | {f['raw_p50_s']:.3f} | |",
            f"| freshness p99 (s) | {f['pipeline_p99_s']:.3f} | {f['raw_p99_s']:.3f} | |",
            "",
            "Rounds (CPU microseconds per event by process over the same stretch):",
            "",
            "| round | raw events/s | pipeline events/s | pipeline / raw | raw CPU us/event "
            "| pipeline CPU us/event | worker peak memory |",
            "| ---: | ---: | ---: | ---: | --- | --- | ---: |",
        ]
        for k, r in enumerate(t["per_round"], 1):
            lines.append(
                f"| {k} | {r['raw_eps']:.0f} | {r['pipeline_eps']:.0f} | {r['ratio']:.0%} "
                f"| {fmt_cpu(r['raw_cpu_us'])} | {fmt_cpu(r['pipeline_cpu_us'])} "
                f"| {r.get('worker_peak_rss_mb', float('nan')):.0f} MiB |"
            )
    lines += [
        "",
        "The pipeline validates every event against the ontology, applies the version rule, labels and "
        "ownership, writes stubs for references, publishes a change record per object and commits Kafka "
        "offsets after the graph commit; the raw loader does none of that. Goal: pipeline >= 80% of raw.",
        "",
        "Raw is the faster of two plain loaders, each run on the same kind of events in the first round: "
        + ", ".join(f"{name} {eps:.0f} events/s" for name, eps in t.get("raw_variants_eps", {}).items())
        + ". Both rates leave out the first tenth of each run's events (a worker's start-up happens once); "
        "the pipeline's is taken between batch commits as the change feed records them. The machine is "
        "shared and its load noisy: compare figures of one round only.",
        "",
    ]
    (RESULTS / f"{name}.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup-events", type=int, default=10_000, help="per side, untimed; 0 for none")
    parser.add_argument("--rate", type=float, default=0.0, help="freshness rate (default: half of raw)")
    parser.add_argument("--stream-seconds", type=float, default=20.0)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--name", default="pipeline", help="results file name under bench/results/ (without extension)"
    )
    parser.add_argument(
        "--contract",
        nargs="?",
        const="on",
        default="off",
        choices=("off", "on", "both"),
        help="on: the worker enforces a data contract promising every benchmark class and attribute; "
        "both: every round runs the pipeline without it and with it, beside the same raw load",
    )
    args = parser.parse_args(argv)

    load_start = list(os.getloadavg())
    settings = get_settings()
    run_id = f"bp{uuid.uuid4().hex[:8]}"
    producer = f"{run_id}-bench"
    RESULTS.mkdir(parents=True, exist_ok=True)
    worker_log = RESULTS / "pipeline-worker.log.tmp"
    contracts_dir = (
        write_contract(RESULTS / f"{run_id}-contracts", producer) if args.contract != "off" else None
    )
    # The pipeline variants each round runs: its key in the results, its prefix's tag, its contracts.
    by_mode: dict[str, list[tuple[str, str, Path | None]]] = {
        "off": [("pipeline", "", None)],
        "on": [("pipeline", "", contracts_dir)],
        "both": [("pipeline", "", None), ("contract", "c", contracts_dir)],
    }
    variants = by_mode[args.contract]
    worker_log.unlink(missing_ok=True)
    driver = make_driver(settings)
    ensure_schema(driver, settings.neo4j_database)
    batch = settings.batch_size
    meter = CpuMeter(service_pids(settings))
    raw_variants: dict[str, float] = {}
    rounds: list[dict[str, Any]] = []
    workers: dict[str, Worker] = {}
    dead_letters: dict[str, int] = {key: 0 for key, _, _ in variants}
    try:
        if args.warmup_events:
            # Untimed: both sides' statements planned and compiled, the caches filled, before round 1.
            log(f"warm-up: {args.warmup_events} events each side")
            for side, variant in (("r", PlainLoader), ("s", DynamicLoader)):
                events = [
                    json.dumps(e).encode() for e in generate(args.warmup_events, f"{run_id}w{side}", producer)
                ]
                baseline_throughput(variant(driver, settings.neo4j_database), events, batch, meter)
            for key, tag, contracts in variants:
                workers[key], _, _ = pipeline_round(
                    settings,
                    f"{run_id}w{tag}",
                    producer,
                    args,
                    meter,
                    worker_log,
                    workers.get(key),
                    args.warmup_events,
                    contracts,
                )
            remove_nodes(driver, settings, f"{run_id}w")
        loader: PlainLoader | None = None
        sides = ["raw", *(key for key, _, _ in variants)]
        for k in range(args.rounds):
            prefix = f"{run_id}k{k}"
            log(f"round {k + 1}/{args.rounds}: {args.events} events, batch {batch}")
            # Each side goes first in turn, so none always meets the fuller database; raw goes first in
            # the first round, which chooses its loader.
            order = sides[k % len(sides) :] + sides[: k % len(sides)] if loader is not None else sides
            round_: dict[str, Any] = {}
            for side in order:
                if side == "raw":
                    loader, eps, cpu = raw_round(
                        loader, driver, settings, prefix, producer, args.events, meter, raw_variants
                    )
                    round_ |= {"raw_eps": eps, "raw_cpu_us": cpu}
                    continue
                tag, contracts = next((t, c) for key, t, c in variants if key == side)
                workers[side], eps, cpu = pipeline_round(
                    settings,
                    prefix + tag,
                    producer,
                    args,
                    meter,
                    worker_log,
                    workers.get(side),
                    None,
                    contracts,
                )
                round_ |= {
                    f"{side}_eps": eps,
                    f"{side}_cpu_us": cpu,
                    f"{side}_worker_peak_rss_mb": workers[side].peak_rss_mb,
                }
                letters = asyncio.run(
                    topic_records(settings.kafka_bootstrap, f"{prefix}{tag}.cim.deadletter")
                )
                dead_letters[side] += letters
                if letters:
                    log(f"{side}: {letters} events dead-lettered; see {worker_log}")
            for key, _, _ in variants:
                round_[f"{key}_ratio" if key != "pipeline" else "ratio"] = (
                    round_[f"{key}_eps"] / round_["raw_eps"]
                )
            # The first variant's figures under the names a run without --contract both has always used.
            round_["worker_peak_rss_mb"] = round_["pipeline_worker_peak_rss_mb"]
            round_["order"] = order
            rounds.append(round_)
            # Every round starts from the same database (untimed).
            remove_nodes(driver, settings, prefix)
        assert loader is not None and workers
        raw_eps = statistics.median(r["raw_eps"] for r in rounds)
        slowest = min(statistics.median(r[f"{key}_eps"] for r in rounds) for key, _, _ in variants)
        rate = args.rate or max(50.0, 0.5 * min(raw_eps, slowest))
        n_stream = int(rate * args.stream_seconds)
        log(f"freshness: {n_stream} events at {rate:.0f}/s")
        raw_fresh = baseline_freshness(
            loader,
            list(generate(n_stream, f"{run_id}g", producer, seed=11)),
            rate,
            batch,
            settings.batch_timeout_s,
        )
        fresh: dict[str, list[float]] = {}
        for key, tag, _ in variants:
            worker = workers[key]
            since = time.time()
            stream = list(generate(n_stream, f"{run_id}f{tag}", producer, seed=11))
            asyncio.run(produce(settings.kafka_bootstrap, worker.topic, stream, rate))
            wait_committed(settings, worker, worker.topic, args.timeout)
            fresh[key] = asyncio.run(change_freshness(settings.kafka_bootstrap, worker.changes_topic, since))
    finally:
        for worker in workers.values():
            worker.stop()
        if contracts_dir is not None:
            shutil.rmtree(contracts_dir, ignore_errors=True)
        log("removing the benchmark's nodes and topics")
        remove_nodes(driver, settings, run_id)
        driver.close()
        try:
            asyncio.run(delete_topics(settings.kafka_bootstrap, run_id))
        except Exception as exc:  # leftover topics cost disk, not correctness
            log(f"deleting the benchmark's topics failed: {type(exc).__name__}: {exc}")

    throughput: dict[str, Any] = {
        "events": args.events,
        "rounds": args.rounds,
        "pipeline_eps": statistics.median(r["pipeline_eps"] for r in rounds),
        "raw_eps": raw_eps,
        "ratio": statistics.median(r["ratio"] for r in rounds),
        "per_round": rounds,
        "raw_loader": loader.name,
        "raw_variants_eps": raw_variants,
    }
    freshness: dict[str, Any] = {
        "events": n_stream,
        "rate": rate,
        "pipeline_p50_s": pct(fresh["pipeline"], 0.5),
        "pipeline_p99_s": pct(fresh["pipeline"], 0.99),
        "raw_p50_s": pct(raw_fresh, 0.5),
        "raw_p99_s": pct(raw_fresh, 0.99),
        "pipeline_samples": len(fresh["pipeline"]),
        "raw_samples": len(raw_fresh),
        "pipeline_mean_s": statistics.fmean(fresh["pipeline"]) if fresh["pipeline"] else None,
    }
    if "contract" in fresh:
        throughput |= {
            "contract_eps": statistics.median(r["contract_eps"] for r in rounds),
            "contract_ratio": statistics.median(r["contract_ratio"] for r in rounds),
            "contract_to_pipeline": statistics.median(r["contract_eps"] / r["pipeline_eps"] for r in rounds),
        }
        freshness |= {
            "contract_p50_s": pct(fresh["contract"], 0.5),
            "contract_p99_s": pct(fresh["contract"], 0.99),
            "contract_samples": len(fresh["contract"]),
        }
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "kafka_security": settings.kafka_security,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # 1, 5 and 15 minute load averages when the run started and when it ended: how busy the
            # shared machine was.
            "load_average_start": load_start,
            "load_average_end": list(os.getloadavg()),
        },
        "batch_size": batch,
        "contract_enforced": args.contract != "off",
        "contract": args.contract,
        "dead_letters": dead_letters,
        "throughput": throughput,
        "freshness": freshness,
    }
    write_results(result, args.name)
    log(json.dumps(rounds) + " " + json.dumps(result["freshness"]))
    return result


if __name__ == "__main__":
    main()
