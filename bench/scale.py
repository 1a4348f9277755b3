"""Benchmark of the hub at scale, each figure beside its baseline measured in the same run.

Run ``python -m bench.scale`` (or ``python -m bench`` for every benchmark). ``--scale`` sets the number
of objects (default 1,000,000); ``--quick`` is a small, short run for checks. Writes
``bench/results/scale.json`` and ``scale.md`` (``--name`` names them otherwise, e.g. ``scale-1m``).
Each query's figures come with the ratio of the guarded time to the unguarded Cypher's (p50 and p95);
the machine's load average and available memory are sampled through the run and reported with it.

The benchmark runs its own Kafka and Neo4j (state folder ``.hub-bench/``, ports 25092/25687) so that it
never touches a demo or a test run, and a worker and an API as child processes, as in production.

1. **Bulk load**: a synthetic whole-system network (:mod:`bench.synthetic`) of ``--scale`` objects.
   *Baseline*: a plain batched Cypher load of the same objects by the plain loader of
   :mod:`bench.pipeline` (one ``UNWIND`` ``MERGE`` for the nodes and one for the relationships per batch,
   dynamic labels and types, 5,000 objects per transaction: what a one-off loader script does, with no
   Kafka, no validation, no versions, no label checks, no change feed). *Hub*: the same events
   published to Kafka first, then applied by one ingest worker; events per second from the worker's
   first to its last committed offset. Neo4j starts empty (fresh data folder) for each.
2. **Freshness** at a steady 1,000 and 10,000 events per second (producer paced): measurement events on
   objects of the loaded graph; freshness = commit time minus event time, read from the change feed.
   *Baseline*: Kafka transport alone, the time until a plain consumer of the same topic receives each
   event. A rate the worker cannot sustain shows as growing freshness and an applied rate below offered.
3. **Queries** on the loaded graph through the GraphQL API (with the access guard, a caller cleared
   OFFICIAL of organisation ``neso``), each beside the equivalent raw Cypher sent with the Python driver.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.graph_schema import cypher
from hub.name_search import NameSearch
from hub.one_record import Columns
from ontology.loader import load_ontology

if TYPE_CHECKING:
    from devstack.services.layout import ServiceName

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
BENCH_PRODUCER = "bench"
# The benchmark's own services: never the demo's (default ports) nor the tests' (.hub-test).
BENCH_ENV = {
    "HUB_STATE_DIR": str(ROOT / ".hub-bench"),
    "HUB_KAFKA_BOOTSTRAP": "127.0.0.1:25092",
    "HUB_KAFKA_CONTROLLER_PORT": "25093",
    "HUB_NEO4J_URI": "bolt://127.0.0.1:25687",
    "HUB_API_PORT": "25800",
    "HUB_METRICS_PORT": "0",
    "HUB_WORKER_WEB_PORT": "0",
    "HUB_NEO4J_HEAP": "2g",
    "HUB_NEO4J_PAGECACHE": "2g",
    "HUB_KAFKA_HEAP": "1g",
    "HUB_LOG_LEVEL": "WARNING",
    "HUB_PRODUCERS": json.dumps(
        {BENCH_PRODUCER: {"org": "bench", "clearance": "SECRET", "default_label": "classification=OFFICIAL"}}
    ),
}
QUERY_USER = {"user": "bench.reader", "org": "neso", "clearance": "OFFICIAL"}


def configure_environment() -> None:
    """Point the hub's settings at the benchmark services (values already in the environment win)."""
    for key, value in BENCH_ENV.items():
        os.environ.setdefault(key, value)
    from hub.settings import get_settings

    get_settings.cache_clear()


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    from hub.settings import get_settings

    s = get_settings()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "neo4j": s.neo4j_version,
        "kafka": s.kafka_version,
        "neo4j_heap": s.neo4j_heap,
        "neo4j_pagecache": s.neo4j_pagecache,
        "worker_batch_size": s.batch_size,
        "topic_partitions": s.topic_partitions,
    }


class MachineSampler:
    """Load average and available memory every ``every_s`` seconds in a background thread, so a run on a
    shared machine says how busy it was while it ran (not only at its end)."""

    def __init__(self, every_s: float = 10.0) -> None:
        import threading

        self.every_s = every_s
        # (seconds since the start, 1-minute load average, GiB available)
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._began = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="machine-sampler", daemon=True)

    @staticmethod
    def available_gib() -> float:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable"):
                    return round(int(line.split()[1]) / 1024 / 1024, 2)
        return float("nan")

    def sample(self) -> None:
        self.samples.append(
            (round(time.monotonic() - self._began, 1), round(os.getloadavg()[0], 2), self.available_gib())
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every_s)

    def __enter__(self) -> MachineSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()

    def summary(self) -> dict[str, Any]:
        loads = [x[1] for x in self.samples]
        avail = [x[2] for x in self.samples]
        return {
            "every_s": self.every_s,
            "load_1min": {
                "min": min(loads, default=None),
                "median": round(statistics.median(loads), 2) if loads else None,
                "max": max(loads, default=None),
            },
            "available_gib": {
                "start": avail[0] if avail else None,
                "min": min(avail, default=None),
                "end": avail[-1] if avail else None,
            },
            "samples": self.samples,
        }


def store_size_gib() -> float | None:
    """Size of Neo4j's data folder in the benchmark's state folder (the loaded graph on disk)."""
    from devstack.services.layout import StateLayout
    from hub.settings import get_settings

    folder = StateLayout.of(get_settings().state_dir).data_dir("neo4j")
    if not folder.is_dir():
        return None
    total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return round(total / 1024**3, 2)


# ------------------------------------------------------------------------------------------ services


def services_up() -> list[ServiceName]:
    from devstack.services import launcher

    before = {s.name: s.ready for s in launcher.status()}
    started: list[ServiceName] = [name for name, ready in before.items() if not ready]
    if started:
        log(f"starting {', '.join(started)} (state folder {os.environ['HUB_STATE_DIR']})")
        launcher.ensure_up(None, started)
    return started


def fresh_neo4j() -> None:
    """An empty database: stop Neo4j, remove its data folder, start it again (faster than deleting)."""
    from devstack.services import launcher
    from devstack.services.layout import StateLayout
    from hub.graph import ensure_schema, make_driver
    from hub.settings import get_settings

    settings = get_settings()
    launcher.stop_service(settings, "neo4j")
    shutil.rmtree(StateLayout.of(settings.state_dir).data_dir("neo4j"), ignore_errors=True)
    launcher.start_service(settings, "neo4j")
    driver = make_driver(settings)
    try:
        ensure_schema(driver)
        # Constraints and indexes are built in the background; wait so the load does not race them.
        driver.execute_query("CALL db.awaitIndexes(300)")
    finally:
        driver.close()


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


def spawn(name: str, argv: list[str], env: dict[str, str]) -> Child:
    from hub.settings import get_settings

    state = Path(get_settings().state_dir)
    workdir = state / f"bench-{name}"
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = state / "logs" / f"bench-{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **env,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "graphql"), os.environ.get("PYTHONPATH", "")]),
    }
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
    return Child(name, process, log_path)


def stop_child(child: Child, timeout_s: float = 30.0) -> None:
    if child.process.poll() is None:
        child.process.terminate()
        try:
            child.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait(timeout=10)


# ----------------------------------------------------------------------------- baseline Cypher load


def batched(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def baseline_load(n: int, seed: int, batch: int = 5000) -> dict[str, Any]:
    """The same events written by the plain loader of :mod:`bench.pipeline` (dynamic labels and types,
    two statements per batch: the faster of its two plain scripts), ``batch`` objects per transaction."""
    from bench.pipeline import DynamicLoader
    from bench.synthetic import generate
    from hub.graph import make_driver
    from hub.settings import get_settings

    settings = get_settings()
    driver = make_driver(settings)
    loader = DynamicLoader(driver, settings.neo4j_database)
    cypher_s = 0.0
    began = time.perf_counter()
    try:
        for chunk in batched(generate(n, seed), batch):
            raw = [json.dumps(e).encode() for e in chunk]
            started = time.perf_counter()
            loader.load(raw)
            cypher_s += time.perf_counter() - started
        wall = time.perf_counter() - began
        records, _, _ = driver.execute_query(
            cypher("MATCH (n:Entity) WHERE n.@class IS NOT NULL RETURN count(n) AS c")
        )
        loaded = int(records[0]["c"])
    finally:
        driver.close()
    return {
        "loader": f"bench.pipeline.DynamicLoader ({loader.name}), {batch} objects per transaction",
        "objects": n,
        "loaded": loaded,
        "wall_s": round(wall, 2),
        "cypher_s": round(cypher_s, 2),
        "objects_per_s": round(n / wall, 1),
        "objects_per_s_cypher_only": round(n / cypher_s, 1),
    }


# ------------------------------------------------------------------------------------- hub ingest


@dataclass
class Run:
    """Names private to one benchmark run, so earlier runs' topics and offsets never interfere."""

    tag: str

    @property
    def prefix(self) -> str:
        return f"bench{self.tag}.ingest."

    @property
    def topic(self) -> str:
        return f"{self.prefix}{BENCH_PRODUCER}"

    @property
    def changes(self) -> str:
        return f"bench{self.tag}.changes"

    @property
    def deadletter(self) -> str:
        return f"bench{self.tag}.deadletter"

    @property
    def group(self) -> str:
        return f"bench-worker-{self.tag}"

    def settings(self) -> Any:
        from hub.settings import get_settings

        return get_settings().model_copy(
            update={
                "ingest_topic_prefix": self.prefix,
                "changes_topic": self.changes,
                "deadletter_topic": self.deadletter,
                "worker_id": self.group,
            }
        )

    def worker_env(self) -> dict[str, str]:
        return {
            "HUB_INGEST_TOPIC_PREFIX": self.prefix,
            "HUB_CHANGES_TOPIC": self.changes,
            "HUB_DEADLETTER_TOPIC": self.deadletter,
            "HUB_WORKER_ID": self.group,
        }


async def produce_all(
    run: Run, events: Iterable[dict[str, Any]], rate: float | None = None, batch_size: int = 2000
) -> dict[str, Any]:
    from hub.kafka_clients import ADMIN
    from ingest.producer import HubProducer

    async with HubProducer(
        BENCH_PRODUCER,
        settings=run.settings(),
        principal=ADMIN,
        validate=False,
        rate=rate,
        batch_size=batch_size,
        linger_ms=20,
    ) as producer:
        stats = await producer.send_all(events)
    return {
        "sent": stats.sent,
        "seconds": round(stats.elapsed_s, 2),
        "events_per_s": round(stats.rate, 1),
        "bytes": stats.bytes,
    }


async def committed(bootstrap: str, group: str, topic: str) -> int:
    """Offsets of ``topic`` the consumer group has committed (0 before the group has joined)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import GroupCoordinatorNotAvailableError

    from hub.kafka_clients import admin_options

    admin = AIOKafkaAdminClient(**admin_options(bootstrap))
    await admin.start()
    try:
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        except GroupCoordinatorNotAvailableError:
            return 0
        return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0)
    finally:
        await admin.close()


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    from hub.kafka_clients import admin_options
    from hub.kafka_topics import partition_ids, topic_admin

    async with topic_admin(admin_options(bootstrap)) as admin:
        return await partition_ids(admin, topic)


def topic_end(bootstrap: str, topic: str) -> int:
    """How many records ``topic`` holds (sum of its partitions' end offsets; 0 if it does not exist)."""

    async def run() -> int:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        parts = await partitions_of(bootstrap, topic)
        if not parts:
            return 0
        from hub.kafka_clients import admin_options

        consumer = AIOKafkaConsumer(**admin_options(bootstrap), enable_auto_commit=False)
        await consumer.start()
        try:
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
            return sum(ends.values())
        finally:
            await consumer.stop()

    return asyncio.run(run())


def start_worker(run: Run) -> Child:
    from devstack.services import kafka

    # The worker signs in as its principal, whose ACLs follow the run's topic names.
    kafka.apply_service_acls(run.settings())
    child = spawn("worker", [sys.executable, "-m", "ingest.worker"], run.worker_env())
    return child


def _await_applied(
    worker: Child, bootstrap: str, run: Run, total: int, timeout_s: float
) -> tuple[float, int, float, int]:
    """Poll the group's committed offsets until all ``total`` events are committed (the worker commits
    only after the graph transaction), returning when it first and last moved."""
    t_first: float | None = None
    c_first = 0
    deadline = time.monotonic() + timeout_s
    done = 0
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise SystemExit(f"the worker exited ({worker.process.returncode}); see {worker.log}")
        done = asyncio.run(committed(bootstrap, run.group, run.topic))
        now = time.monotonic()
        if done > 0 and t_first is None:
            t_first, c_first = now, done
        if done >= total and t_first is not None:
            return t_first, c_first, now, done
        time.sleep(1.0)
    raise SystemExit(f"the worker applied {done:,} of {total:,} events in {timeout_s:.0f}s; see {worker.log}")


def live_objects() -> int:
    from hub.graph import make_driver

    driver = make_driver()
    try:
        records, _, _ = driver.execute_query(
            cypher("MATCH (n:Entity) WHERE n.@version > 0 AND n.@class IS NOT NULL RETURN count(n) AS c")
        )
        return int(records[0]["c"])
    finally:
        driver.close()


def worker_load(run: Run, n: int, seed: int, timeout_s: float) -> tuple[dict[str, Any], Child]:
    """Publish ``n`` events, then time one worker applying them (first to last committed offset)."""
    from bench.synthetic import generate
    from hub.settings import get_settings

    bootstrap = get_settings().kafka_bootstrap
    log(f"publishing {n:,} events to {run.topic}")
    produced = asyncio.run(produce_all(run, generate(n, seed)))
    log(f"published at {produced['events_per_s']:,.0f} events/s; starting the worker")
    worker = start_worker(run)
    try:
        t_first, c_first, done_at, done = _await_applied(worker, bootstrap, run, produced["sent"], timeout_s)
    except BaseException:
        stop_child(worker)
        raise
    end = done
    applied = end - c_first
    seconds = max(done_at - t_first, 1e-9)
    dead = topic_end(bootstrap, run.deadletter)
    live = live_objects()
    result = {
        "objects": n,
        "produce": produced,
        "applied_events": applied,
        "seconds": round(seconds, 2),
        "events_per_s": round(applied / seconds, 1),
        "dead_letters": dead,
        "live_objects": live,
        "note": "timed from the worker's first committed offset to its last (commit interval "
        f"{get_settings().worker_commit_interval_s:g}s)",
    }
    return result, worker


# --------------------------------------------------------------------------------------- freshness


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def freshness_step(
    run: Run,
    rate: float,
    duration_s: float,
    targets: list[tuple[str, str, str]],
    version_base: int,
    seed: int,
) -> dict[str, Any]:
    """Paced measurement events for ``duration_s``.

    Freshness: from the change feed (commit time minus event time). The worker folds a batch into one
    change per object, so the feed carries the latest event of each object per batch; the applied rate
    therefore comes from the worker's committed offsets, which move only after the graph commit.
    Baseline: Kafka transport, receive time at a plain consumer minus the record's create time.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from hub.kafka_clients import ADMIN
    from ingest.producer import HubProducer

    settings = run.settings()
    bootstrap = settings.kafka_bootstrap
    rng = random.Random(seed)
    n = int(rate * duration_s)
    prefix = f"fresh-{version_base}-"
    fresh: list[float] = []
    transport: list[float] = []

    async def tail(topic: str, on_record: Callable[[Any, float], None], stop: asyncio.Event) -> None:
        from hub.kafka_clients import admin_options

        consumer = AIOKafkaConsumer(
            **admin_options(bootstrap), enable_auto_commit=False, fetch_max_wait_ms=50
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
            if not tps:
                raise SystemExit(f"topic {topic!r} does not exist")
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                now = time.time()
                for records in batches.values():
                    for record in records:
                        on_record(record, now)
        finally:
            await consumer.stop()

    def on_change(record: Any, _now: float) -> None:
        change = json.loads(record.value)
        if str(change.get("event_id", "")).startswith(prefix) and change.get("change") == "measurement":
            fresh.append(_parse_time(change["time"]) - _parse_time(change["event_time"]))

    def on_ingest(record: Any, now: float) -> None:
        # No decoding: the producer's create time is the record timestamp (ms).
        transport.append(now - record.timestamp / 1000.0)

    stop = asyncio.Event()
    tails = [
        asyncio.create_task(tail(settings.changes_topic, on_change, stop)),
        asyncio.create_task(tail(run.topic, on_ingest, stop)),
    ]
    await asyncio.sleep(2.0)  # both tails positioned at the end before the first event
    start_committed = await committed(bootstrap, run.group, run.topic)

    def events() -> Iterator[dict[str, Any]]:
        for i in range(n):
            mrid, cls, qname = targets[rng.randrange(len(targets))]
            yield {
                "id": f"{prefix}{i}",
                "source": BENCH_PRODUCER,
                "type": "measurement",
                "subject": mrid,
                "time": datetime.now(UTC).isoformat(),
                "version": version_base + i,
                "class": cls,
                "attributes": {qname: round(rng.uniform(0.9, 1.1) * 100, 3)},
            }

    began = time.monotonic()
    async with HubProducer(
        BENCH_PRODUCER,
        settings=settings,
        principal=ADMIN,
        validate=False,
        rate=rate,
        batch_size=max(100, int(rate // 10)),
        linger_ms=5,
    ) as producer:
        stats = await producer.send_all(events())
    produce_s = time.monotonic() - began
    # Wait until the worker has committed every event (bounded: a saturated worker may take long).
    target = start_committed + stats.sent
    drain_deadline = time.monotonic() + max(30.0, 2 * duration_s)
    done = start_committed
    while time.monotonic() < drain_deadline:
        done = await committed(bootstrap, run.group, run.topic)
        if done >= target:
            break
        await asyncio.sleep(0.5)
    applied_s = time.monotonic() - began
    await asyncio.sleep(1.5)  # the change records of the last batch
    stop.set()
    for task in tails:
        with contextlib.suppress(Exception):
            await task
    applied = done - start_committed
    return {
        "offered_rate": rate,
        "duration_s": duration_s,
        "sent": stats.sent,
        "achieved_send_rate": round(stats.sent / produce_s, 1),
        "applied": applied,
        "applied_rate": round(applied / applied_s, 1) if applied_s else 0.0,
        "drained": done >= target,
        "change_records": len(fresh),
        "freshness_ms": {
            "p50": round(percentile(fresh, 0.5) * 1000, 1),
            "p99": round(percentile(fresh, 0.99) * 1000, 1),
            "max": round(max(fresh) * 1000, 1) if fresh else None,
        },
        "baseline_transport_ms": {
            "p50": round(percentile(transport, 0.5) * 1000, 1),
            "p99": round(percentile(transport, 0.99) * 1000, 1),
        },
    }


# ----------------------------------------------------------------------------------------- queries


def start_api() -> tuple[Child, str]:
    """The GraphQL API as a child process, as production runs it: no development mode, keys from a JWKS
    file (the development issuer's, whose key mints the bench's tokens), no metrics port to contend for.
    Returns the child and its base URL once it answers."""
    import httpx

    from hub.auth import DevIssuer
    from hub.settings import get_settings

    settings = get_settings()
    issuer = DevIssuer(settings)
    issuer.ensure()
    api_env = {"HUB_JWKS_FILE": str(issuer.jwks_path), "HUB_API_METRICS_PORT": "0"}
    api = spawn("api", [sys.executable, "-c", "from hubql.processes import run; run()"], api_env)
    base = f"http://{settings.api_host}:{settings.api_port}"
    deadline = time.monotonic() + 180
    while True:
        if api.process.poll() is not None:
            raise SystemExit(f"the API exited; see {api.log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return api, base
        if time.monotonic() > deadline:
            stop_child(api)
            raise SystemExit(f"the API did not start; see {api.log}")
        time.sleep(0.5)


def query_latencies(n: int, seed: int, repeats: int) -> dict[str, Any]:
    import httpx

    from bench.synthetic import _mrid as synthetic_mrid
    from bench.synthetic import load_tile
    from hub.auth import mint_token
    from hub.graph import make_driver
    from hub.settings import get_settings

    settings = get_settings()
    api, base = start_api()
    try:
        token = mint_token(QUERY_USER["user"], QUERY_USER["org"], QUERY_USER["clearance"], settings=settings)
        tile = load_tile()
        tiles = max(1, n // len(tile))
        rng = random.Random(seed)
        by_class: dict[str, list[str]] = defaultdict(list)
        for body in tile.events:
            by_class[body["class"]].append(body["subject"])

        # Objects the caller may see (OFFICIAL network data) in random tiles.
        def pick(cls: str) -> str:
            return synthetic_mrid(seed, rng.randrange(tiles), rng.choice(by_class[cls]))

        def pair() -> dict[str, Any]:
            # Two substations of one tile: a planner's path question is regional.
            t = rng.randrange(tiles)
            a, b = rng.sample(by_class["Substation"], 2)
            return {"a": synthetic_mrid(seed, t, a), "b": synthetic_mrid(seed, t, b)}

        name_search = NameSearch(load_ontology())
        names = [
            b["attributes"].get("IdentifiedObject.name", "")
            for b in tile.events
            if b["class"] == "Substation"
        ]

        def misspelt(text: str) -> str:
            """The text with one letter of its first long word dropped (a typing slip)."""
            words = text.split()
            k = next((i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()), None)
            if k is not None:
                words[k] = words[k][:2] + words[k][3:]
            return " ".join(words)

        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        driver = make_driver(settings)

        def gql(query: str, variables: dict[str, Any]) -> Any:
            response = client.post("/graphql", json={"query": query, "variables": variables})
            body = response.json()
            if response.status_code != 200 or body.get("errors"):
                raise SystemExit(f"GraphQL failed: {response.status_code} {str(body)[:500]}")
            return body["data"]

        # Each statement's columns, from its first run: from then on its rows come in one record, as the
        # guard reads them (hub/one_record.py), the fastest the driver gives.
        columns = Columns(4096)

        def run_cypher(query: str, params: dict[str, Any]) -> Any:
            prepared = columns.prepared(query)
            records, _, keys = driver.execute_query(
                prepared[0] if prepared else query, params, database_=settings.neo4j_database
            )
            return columns.answer(query, prepared, keys, records)

        cases: list[
            tuple[str, str, Callable[[], dict[str, Any]], str, Callable[[dict[str, Any]], dict[str, Any]]]
        ] = [
            (
                "object by mRID",
                "query($m: ID!) { object(mrid: $m) { mrid className name label version } }",
                lambda: {"m": pick("ACLineSegment")},
                cypher("MATCH (n:Entity {mrid: $m}) RETURN n.mrid, n.@class, n.name, n.@label, n.@version"),
                lambda v: {"m": v["m"]},
            ),
            (
                "page of 100 line segments",
                'query { objects(className: "ACLineSegment", first: 100) { edges { node { mrid name } } } }',
                dict,
                "MATCH (n:ACLineSegment) RETURN n.mrid, n.name ORDER BY n.mrid LIMIT 100",
                lambda v: {},
            ),
            (
                "search by name",
                "query($t: String!) { search(text: $t, first: 20) { mrid className name } }",
                lambda: {"t": f"{rng.choice(names)} #{rng.randrange(tiles)}"},
                # The same full-text query (hub.name_search) and exact-mRID seek, without the label filter.
                cypher(
                    "CALL () { MATCH (n:Entity {mrid: $t}) RETURN n, 0 AS rank UNION ALL "
                    "CALL db.index.fulltext.queryNodes($index, $q) YIELD node RETURN node AS n, 1 AS rank } "
                    "WITH n, min(rank) AS rank ORDER BY rank, size(coalesce(n.name, '')), n.mrid LIMIT 20 "
                    "RETURN n.mrid, n.@class, n.name"
                ),
                lambda v: {"t": v["t"], "index": name_search.index, "q": name_search.query(v["t"])},
            ),
            (
                "neighbourhood depth 2 of a substation",
                "query($m: ID!) { neighbourhood(mrid: $m, depth: 2) "
                "{ nodes { mrid } edges { source target } } }",
                lambda: {"m": pick("Substation")},
                "MATCH (a:Entity {mrid: $m})-[*1..2]-(b) RETURN DISTINCT b.mrid",
                lambda v: {"m": v["m"]},
            ),
            (
                "counts per class",
                "query { counts { className count } }",
                dict,
                cypher("MATCH (n:Entity) WHERE n.@class IS NOT NULL RETURN n.@class, count(*)"),
                lambda v: {},
            ),
            (
                "typed page: lines of at least 20 km, longest first, with totalCount",
                "query { acLineSegments(where: {length: {gte: 20}}, "
                "orderBy: [{field: length, direction: DESC}], first: 100) "
                "{ totalCount nodes { mrid name length } } }",
                dict,
                "CALL () { MATCH (n:ACLineSegment) WHERE n.length >= 20 RETURN count(n) AS total } "
                "MATCH (n:ACLineSegment) WHERE n.length >= 20 WITH total, n "
                "ORDER BY n.length DESC, n.mrid LIMIT 100 RETURN total, n.mrid, n.name, n.length",
                lambda v: {},
            ),
            (
                "aggregate: line count and length per base voltage (groupByRelated)",
                'query { acLineSegmentAggregate(groupByRelated: "baseVoltage.nominalVoltage") '
                "{ count sum { length } groups { key count sum { length } max { length } } } }",
                dict,
                "MATCH (n:ACLineSegment) OPTIONAL MATCH (n)-[:BASE_VOLTAGE]->(g:BaseVoltage) "
                "WITH DISTINCT n, g.nominalVoltage AS key "
                "RETURN key, count(n), sum(n.length), max(n.length) ORDER BY key",
                lambda v: {},
            ),
            (
                "search by name, fuzzy (one edit per word)",
                "query($t: String!) { search(text: $t, first: 20, fuzzy: true) { mrid className name } }",
                lambda: {"t": misspelt(f"{rng.choice(names)} #{rng.randrange(tiles)}")},
                cypher(
                    "CALL () { MATCH (n:Entity {mrid: $t}) RETURN n, 0 AS rank UNION ALL "
                    "CALL db.index.fulltext.queryNodes($index, $q) YIELD node RETURN node AS n, 1 AS rank } "
                    "WITH n, min(rank) AS rank ORDER BY rank, size(coalesce(n.name, '')), n.mrid LIMIT 20 "
                    "RETURN n.mrid, n.@class, n.name"
                ),
                lambda v: {
                    "t": v["t"],
                    "index": name_search.index,
                    "q": name_search.query(v["t"], fuzzy=True),
                },
            ),
            (
                "shortest path between two substations of one region",
                "query($a: ID!, $b: ID!) { shortestPath(from: $a, to: $b, via: ANY) { nodes { mrid } } }",
                pair,
                "MATCH (a:Entity {mrid: $a}), (b:Entity {mrid: $b}) "
                "MATCH p = shortestPath((a)-[*..16]-(b)) RETURN [x IN nodes(p) | x.mrid]",
                lambda v: {"a": v["a"], "b": v["b"]},
            ),
        ]
        results: dict[str, Any] = {}
        for name, gql_text, make_vars, cypher_text, to_params in cases:
            variables = [make_vars() for _ in range(repeats + 3)]
            for v in variables[:3]:  # warm-up: plans cached, pages in memory
                gql(gql_text, v)
                run_cypher(cypher_text, to_params(v))
            g_times, c_times = [], []
            case_began = time.monotonic()
            for k, v in enumerate(variables[3:]):
                if k >= 5 and time.monotonic() - case_began > 30.0:
                    break  # a slow query on a big graph: enough samples for p50 within the time budget
                began = time.perf_counter()
                gql(gql_text, v)
                g_times.append(time.perf_counter() - began)
                began = time.perf_counter()
                run_cypher(cypher_text, to_params(v))
                c_times.append(time.perf_counter() - began)
            results[name] = {
                "graphql_ms": {
                    "p50": round(percentile(g_times, 0.5) * 1000, 1),
                    "p95": round(percentile(g_times, 0.95) * 1000, 1),
                    "mean": round(statistics.fmean(g_times) * 1000, 1),
                },
                "cypher_ms": {
                    "p50": round(percentile(c_times, 0.5) * 1000, 1),
                    "p95": round(percentile(c_times, 0.95) * 1000, 1),
                    "mean": round(statistics.fmean(c_times) * 1000, 1),
                },
                "repeats": len(g_times),
            }
            results[name]["ratio"] = {
                q: round(percentile(g_times, f) / percentile(c_times, f), 2)
                for q, f in (("p50", 0.5), ("p95", 0.95))
            }
            log(
                f"  {name}: GraphQL p50 {results[name]['graphql_ms']['p50']} ms, "
                f"Cypher p50 {results[name]['cypher_ms']['p50']} ms, "
                f"ratio {results[name]['ratio']['p50']}x"
            )
        client.close()
        driver.close()
        return results
    finally:
        stop_child(api)


# ------------------------------------------------------------------------------------------ report


def write_markdown(result: dict[str, Any], path: Path) -> None:
    m = result["machine"]
    lines = [
        "# Scale benchmark",
        "",
        f"Run {result['started']} with `{result['command']}` in {result['total_s']:.0f} s.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB memory, Python {m['python']}, "
        f"{m['platform']}. Neo4j {m['neo4j']} (heap {m['neo4j_heap']}, page cache {m['neo4j_pagecache']}), "
        f"Kafka {m['kafka']} ({m['topic_partitions']} partitions per topic), ingest workers: "
        f"{m.get('ingest_workers', 1)} (batch size {m['worker_batch_size']}), all on the same shared "
        "machine.",
        "",
        f"Synthetic whole-system network of **{result['scale']:,} objects** (seed {result['seed']}).",
        "",
    ]
    if result.get("note"):
        lines += [result["note"], ""]
    if result.get("load_average"):
        lines += [f"Load average at the end: {', '.join(map(str, result['load_average']))}.", ""]
    busy = result.get("machine_during_run")
    if busy:
        load1, avail = busy["load_1min"], busy["available_gib"]
        lines += [
            f"During the run (sampled every {busy['every_s']:g} s): 1-minute load average min "
            f"{load1['min']}, median {load1['median']}, max {load1['max']}; available memory "
            f"{avail['start']} GiB at the start, {avail['min']} GiB at the lowest, {avail['end']} GiB at "
            f"the end. Neo4j store on disk after the load: {result.get('store_gib')} GiB.",
            "",
        ]
    shape = result.get("shape")
    if shape:
        lines += [
            "## Shape: synthetic against real",
            "",
            "| measure | real tile | synthetic sample |",
            "| --- | ---: | ---: |",
        ]
        real, syn = shape["real"], shape["synthetic"]
        lines.append(f"| objects | {real['objects']:,} | {syn['objects']:,} |")
        lines.append(f"| classes | {real['classes']} | {syn['classes']} |")
        for key in ("out_degree", "in_degree", "containment_depth"):
            for stat in ("mean", "p50", "p90", "p99", "max"):
                lines.append(
                    f"| {key.replace('_', ' ')} {stat} | {real[key].get(stat)} | {syn[key].get(stat)} |"
                )
        for dom, share in real["domain_share"].items():
            lines.append(f"| share {dom} | {share} | {syn['domain_share'].get(dom)} |")
        lines.append("")
    carried = result.get("carried", {})

    def origin(section: str) -> str:
        c = carried.get(section)
        return f" (from the run of {c['started']}, {c['scale']:,} objects)" if c else ""

    load = result.get("load")
    if load:
        base, hub = load["baseline"], load["hub"]
        lines += [
            f"## Bulk load{origin('load')}",
            "",
            "| loader | objects | seconds | objects/s |",
            "| --- | ---: | ---: | ---: |",
            f"| baseline: plain batched Cypher, end to end ({base['loader']}) | {base['objects']:,} | "
            f"{base['wall_s']} | "
            f"{base['objects_per_s']:,.0f} |",
            f"| baseline: Cypher time only | | {base['cypher_s']} | "
            f"{base['objects_per_s_cypher_only']:,.0f} |",
            f"| hub: Kafka publish (producer client) | {hub['produce']['sent']:,} | "
            f"{hub['produce']['seconds']} | "
            f"{hub['produce']['events_per_s']:,.0f} |",
            f"| hub: one worker applying (validate, label, version, fold, write, change feed) | "
            f"{hub['applied_events']:,} | {hub['seconds']} | {hub['events_per_s']:,.0f} |",
            "",
            f"The worker runs at **{hub['events_per_s'] / base['objects_per_s']:.2f}x** the plain load's "
            f"rate. Live objects after the load: {hub['live_objects']:,}; "
            f"dead letters: {hub['dead_letters']}.",
            "",
        ]
    this_load = result.get("hub_load")
    if this_load and (carried.get("load") or not load):
        produced = this_load["produce"]
        lines += [
            "## Load in this run",
            "",
            "| step | events | seconds | events/s |",
            "| --- | ---: | ---: | ---: |",
            f"| hub: Kafka publish (producer client) | {produced['sent']:,} | {produced['seconds']} | "
            f"{produced['events_per_s']:,.0f} |",
            f"| hub: ingest workers ({m.get('ingest_workers', 1)}) applying (validate, label, version, "
            f"fold, write, change feed) | {this_load['applied_events']:,} | {this_load['seconds']} | "
            f"{this_load['events_per_s']:,.0f} |",
            "",
            f"Live objects after the load: {this_load['live_objects']:,}; dead letters: "
            f"{this_load['dead_letters']}. The worker's time runs from its first committed offset to its "
            "last; other work shared the machine (see the load average above).",
            "",
        ]
    fresh = result.get("freshness")
    if fresh:
        lines += [
            f"## Freshness at a steady rate{origin('freshness')}",
            "",
            "| offered events/s | sent/s | applied/s | freshness p50 ms | p99 ms | max ms | "
            "baseline Kafka transport p50 ms | p99 ms |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for step in fresh:
            f, b = step["freshness_ms"], step["baseline_transport_ms"]
            lines.append(
                f"| {step['offered_rate']:,.0f} | {step['achieved_send_rate']:,.0f} | "
                f"{step['applied_rate']:,.0f} | {f['p50']} | {f['p99']} | {f['max']} | {b['p50']} | "
                f"{b['p99']} |"
            )
        lines += [
            "",
            "Freshness is commit time minus event time, from the change feed; the baseline is "
            "the same events' arrival at a plain Kafka consumer. A step the worker cannot keep up with "
            "shows an applied rate below the offered one and freshness growing over the step.",
            "",
        ]
    queries = result.get("queries")
    if queries:
        lines += [
            f"## Queries on the loaded graph{origin('queries')}",
            "",
            f"Caller: organisation `{QUERY_USER['org']}`, clearance {QUERY_USER['clearance']} (the guard "
            "filters every node); raw Cypher has no guard.",
            "",
            "| query | GraphQL p50 ms | p95 ms | raw Cypher p50 ms | p95 ms | ratio p50 | ratio p95 | runs |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, q in queries.items():
            ratio = q.get("ratio") or {
                k: round(q["graphql_ms"][k] / q["cypher_ms"][k], 2) for k in ("p50", "p95")
            }
            lines.append(
                f"| {name} | {q['graphql_ms']['p50']} | {q['graphql_ms']['p95']} | "
                f"{q['cypher_ms']['p50']} | {q['cypher_ms']['p95']} | {ratio['p50']}x | {ratio['p95']}x "
                f"| {q.get('repeats', '')} |"
            )
        lines += [
            "",
            "Ratio: GraphQL through the guard (HTTP end to end) over the unguarded Cypher (Python driver), "
            "at the same percentile of the same interleaved runs.",
            "",
        ]
    if result.get("analysis"):
        lines += ["## Notes on the figures", ""]
        for paragraph in result["analysis"]:
            lines += [paragraph, ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def carry_over(result: dict[str, Any], previous_path: Path, skipped: list[str]) -> None:
    """Sections a run skipped keep the previous run's figures, marked with that run's date and scale."""
    if not previous_path.is_file():
        return
    previous = json.loads(previous_path.read_text(encoding="utf-8"))
    result["carried"] = {}
    for section, part in (("load", "baseline"), ("freshness", "freshness"), ("queries", "queries")):
        if part in skipped and previous.get(section):
            result[section] = previous[section]
            origin = previous.get("carried", {}).get(section)
            result["carried"][section] = origin or {
                "started": previous["started"],
                "scale": previous["scale"],
            }


def render(out: Path, name: str, note: str, carry_from: Path | None, skipped: list[str]) -> dict[str, Any]:
    """``NAME.md`` written again from ``NAME.json``: a note added, skipped sections carried from another
    run's results (e.g. after a run by an earlier version of this script)."""
    path = out / f"{name}.json"
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if note:
        result["note"] = note
    if carry_from is not None:
        carry_over(result, carry_from, skipped)
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    write_markdown(result, out / f"{name}.md")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", type=int, default=1_000_000, help="objects in the synthetic network")
    parser.add_argument("--quick", action="store_true", help="small and short (checks, tests)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="scale", help="results file names: NAME.json and NAME.md")
    parser.add_argument("--note", default="", help="a sentence on the run, written under its heading")
    parser.add_argument(
        "--carry-from",
        type=Path,
        default=None,
        help="results whose sections this run skips are kept, marked (default: the previous NAME.json)",
    )
    parser.add_argument("--keep-services", action="store_true")
    parser.add_argument("--skip", nargs="*", default=[], choices=["baseline", "freshness", "queries"])
    parser.add_argument(
        "--no-load",
        action="store_true",
        help="queries only, on the graph the services hold (a kept run's; its objects give the scale)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="no run: write NAME.md again from NAME.json (with --note and --carry-from when given)",
    )
    args = parser.parse_args(argv)
    if args.render_only:
        return render(args.out, args.name, args.note, args.carry_from, args.skip)
    configure_environment()
    if args.no_load:
        args.skip = sorted({*args.skip, "baseline", "freshness"})
    scale = min(args.scale, 20_000) if args.quick else args.scale
    # Sized so that the full run (1,000,000 objects) ends within 30 minutes on a 2-core machine.
    fresh_steps = [(1000.0, 8.0), (10_000.0, 4.0)] if args.quick else [(1000.0, 30.0), (10_000.0, 15.0)]
    repeats = 5 if args.quick else 20
    began = time.monotonic()
    result: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.scale " + " ".join(argv if argv is not None else sys.argv[1:]),
        "scale": scale,
        "seed": args.seed,
        "quick": args.quick,
        "machine": machine(),
    }
    if args.note:
        result["note"] = args.note
    sampler = MachineSampler().__enter__()
    from bench import synthetic

    if not args.no_load:
        tile = synthetic.load_tile()
        domains = synthetic.domain_map()
        result["shape"] = {
            "real": synthetic.profile(tile.events, domains).summary(),
            "synthetic": synthetic.profile(
                synthetic.generate(min(scale, 200_000), args.seed), domains
            ).summary(),
        }
    started = services_up()
    worker: Child | None = None
    try:
        run = Run(uuid.uuid4().hex[:8])
        if args.no_load:
            scale = result["scale"] = live_objects()
            log(f"no load: {scale:,} live objects in the graph")
        if "baseline" not in args.skip:
            log("baseline: fresh Neo4j, plain batched Cypher load")
            fresh_neo4j()
            baseline = baseline_load(scale, args.seed)
            log(f"baseline: {baseline['objects_per_s']:,.0f} objects/s")
        else:
            baseline = None
        if not args.no_load:
            log("hub: fresh Neo4j, publish, then one worker")
            fresh_neo4j()
            hub_load, worker = worker_load(run, scale, args.seed, timeout_s=max(600.0, scale / 200))
            log(f"hub: worker {hub_load['events_per_s']:,.0f} events/s")
            result["store_gib"] = store_size_gib()
            result["load"] = {"baseline": baseline, "hub": hub_load} if baseline else None
            result["hub_load"] = hub_load
        if "freshness" not in args.skip:
            targets = synthetic.measurements(scale, args.seed)
            steps = []
            version = 10
            for rate, duration in fresh_steps:
                log(f"freshness at {rate:,.0f} events/s for {duration:.0f}s")
                step = asyncio.run(freshness_step(run, rate, duration, targets, version, args.seed))
                version += int(rate * duration) + 1
                log(
                    f"  p50 {step['freshness_ms']['p50']} ms, p99 {step['freshness_ms']['p99']} ms, "
                    f"applied {step['applied_rate']:,.0f}/s"
                )
                steps.append(step)
            result["freshness"] = steps
        if worker is not None:
            stop_child(worker)
            worker = None
        if "queries" not in args.skip:
            log("queries through the API beside raw Cypher")
            result["queries"] = query_latencies(scale, args.seed, repeats)
    finally:
        if worker is not None:
            stop_child(worker)
        if started and not args.keep_services:
            from devstack.services import launcher

            launcher.stop(None, started)
        sampler.__exit__()
    result["total_s"] = round(time.monotonic() - began, 1)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    result["machine_during_run"] = sampler.summary()
    result.setdefault("store_gib", store_size_gib())
    carry_over(result, args.carry_from or args.out / f"{args.name}.json", args.skip)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    write_markdown(result, args.out / f"{args.name}.md")
    log(f"done in {result['total_s']:.0f}s; results in {args.out / f'{args.name}.md'}")
    return result


if __name__ == "__main__":
    main()
