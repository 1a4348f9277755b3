"""Load benchmark of a running hub: query clients and change subscribers at once, while ingest runs.

Run it against ``hub demo`` (development mode, for the demo users' tokens at ``/dev/tokens``), started
with the feed rate wanted, e.g. ``hub demo --rate 200``::

    python -m bench.load --clients 20 --subscribers 20 --duration 120 --name demo-n20

Settings come from ``HUB_*`` as for the demo (its Kafka and Neo4j): the benchmark reads the change topic
itself, as the operator, to know what each subscriber should have received.

- **Clients** (``--clients N``): N closed-loop clients, round robin over the demo users, each sending the
  page's own operations (``graphql/operations/``) one after another: an object, a page of 100, a name
  search, a depth-2 neighbourhood, dependencies and counts. Reported per operation: requests/s, p50 /
  p95 / p99 latency, and errors by kind (503 or 429 refusals, deadlines, other GraphQL errors, transport).
- **Subscribers** (``--subscribers S``): S ``changes`` subscriptions over websockets, round robin over the
  demo users and over filters (none, one domain, a class and its subclasses; every second one selects
  ``node``). Per subscriber: the records it should have received in the measured window (the change topic
  filtered by its filter and by what its user may see, labels evaluated by :mod:`hub.labels`, as a
  subscriber is told of deletes and relabels away), those it received, missed and received unexpectedly,
  gap markers, and the delivery lag (receipt time minus the change's commit time) beside the worker's
  freshness (commit time minus event time) over the same records.

The measured window starts ``--warmup`` seconds after everything is connected and ends ``--duration``
seconds later; records committed in it are compared after a drain of ``--drain`` seconds.
Writes ``bench/results/load-<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets
from aiokafka import AIOKafkaConsumer, TopicPartition
from graphql.language import FragmentDefinitionNode, Visitor

from graphql import DocumentNode, FragmentSpreadNode, OperationDefinitionNode, parse, print_ast, visit
from hub.changes import ChangeRecord
from hub.graph import make_async_driver
from hub.guard import LabelDirectory
from hub.kafka_clients import ADMIN, aiokafka_options
from hub.kafka_topics import partition_ids, topic_admin
from hub.labels import Authorizations, LabelCache
from hub.settings import Settings, get_settings
from ontology.loader import load_ontology

RESULTS = Path(__file__).resolve().parent / "results"
OPERATIONS = Path(__file__).resolve().parents[1] / "graphql" / "operations"
# The query mix: the page's operations, each with how its variables are chosen.
MIX = ("ObjectDetail", "ObjectsPage", "Search", "Neighbourhood", "Dependencies", "Counts")
SEARCH_TEXTS = ("a", "e", "BE", "NL", "node", "line", "Station", "1")
SUBSCRIPTION = """subscription Load($classNames: [String!], $domain: Domain) {
  changes(classNames: $classNames, domain: $domain) { cursor mrid className change version time%s } }"""
FILTERS: tuple[dict[str, Any], ...] = (
    {},
    {"domain": "GAS"},
    {"domain": "ELECTRICITY"},
    {"classNames": ["ConductingEquipment"]},
    {"classNames": ["Measurement"]},
)


def _spreads(node: Any) -> list[str]:
    """Names of the fragments spread in ``node``."""
    names: list[str] = []

    class Spreads(Visitor):
        def enter_fragment_spread(self, spread: FragmentSpreadNode, *_: Any) -> None:
            names.append(spread.name.value)

    visit(node, Spreads())
    return names


def documents() -> dict[str, str]:
    """Each operation of ``graphql/operations/`` as a document of its own with the fragments it uses."""
    nodes = [d for f in sorted(OPERATIONS.glob("*.graphql")) for d in parse(f.read_text()).definitions]
    fragments = {d.name.value: d for d in nodes if isinstance(d, FragmentDefinitionNode)}
    out: dict[str, str] = {}
    for op in nodes:
        if not isinstance(op, OperationDefinitionNode) or op.name is None:
            continue
        used: dict[str, FragmentDefinitionNode] = {}
        todo: list[Any] = [op]
        while todo:
            for name in _spreads(todo.pop()):
                if name not in used:
                    used[name] = fragments[name]
                    todo.append(fragments[name])
        out[op.name.value] = print_ast(DocumentNode(definitions=(op, *used.values())))
    return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# --- clients ----------------------------------------------------------------------------------------


@dataclass
class OpStats:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def error_kind(response: httpx.Response) -> str | None:
    if response.status_code in (429, 503):
        return f"refused {response.status_code}"
    if response.status_code != 200:
        return f"http {response.status_code}"
    errors = response.json().get("errors") or []
    if not errors:
        return None
    message = str(errors[0].get("message", ""))
    return "deadline" if "deadline" in message else "graphql error"


class Clients:
    def __init__(
        self, base: str, users: list[dict[str, Any]], docs: dict[str, str], mrids: list[str]
    ) -> None:
        self.base, self.users, self.docs, self.mrids = base, users, docs, mrids
        self.stats: dict[str, OpStats] = defaultdict(OpStats)
        self.measuring = False

    def variables(self, op: str, rng: random.Random) -> dict[str, Any]:
        if op in ("ObjectDetail", "Neighbourhood", "Dependencies"):
            extra = {"depth": 2} if op == "Neighbourhood" else {}
            return {"mrid": rng.choice(self.mrids), **extra}
        if op == "ObjectsPage":
            return {"first": 100}
        if op == "Search":
            return {"text": rng.choice(SEARCH_TEXTS), "first": 15}
        return {}

    async def client(self, index: int, stop: asyncio.Event) -> None:
        rng = random.Random(index)
        user = self.users[index % len(self.users)]
        headers = {"Authorization": f"Bearer {user['token']}"}
        async with httpx.AsyncClient(base_url=self.base, timeout=60) as http:
            while not stop.is_set():
                op = rng.choice(MIX)
                body = {"query": self.docs[op], "operationName": op, "variables": self.variables(op, rng)}
                started = time.monotonic()
                try:
                    response = await http.post("/graphql", json=body, headers=headers)
                    kind = error_kind(response)
                except httpx.HTTPError as exc:
                    kind = f"transport {type(exc).__name__}"
                    await asyncio.sleep(0.5)
                elapsed = time.monotonic() - started
                if self.measuring:
                    stats = self.stats[op]
                    stats.latencies.append(elapsed)
                    if kind is not None:
                        stats.errors[kind] += 1


# --- subscribers ------------------------------------------------------------------------------------


@dataclass
class Subscriber:
    index: int
    user: dict[str, Any]
    variables: dict[str, Any]
    with_node: bool
    received: list[tuple[str, int, float, datetime]] = field(default_factory=list)
    gaps: int = 0
    errors: list[str] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, ws_url: str, stop: asyncio.Event) -> None:
        query = SUBSCRIPTION % (" node { mrid name label }" if self.with_node else "")
        try:
            async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"], max_size=None) as ws:  # type: ignore[list-item]
                init = {
                    "type": "connection_init",
                    "payload": {"Authorization": f"Bearer {self.user['token']}"},
                }
                await ws.send(json.dumps(init))
                await ws.recv()
                payload = {"query": query, "variables": self.variables}
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
                self.ready.set()
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 1.0)
                    except TimeoutError:
                        continue
                    now = time.time()
                    message = json.loads(raw)
                    if message["type"] == "next":
                        change = message["payload"]["data"]["changes"]
                        if change["change"] == "gap":
                            self.gaps += 1
                            continue
                        committed = datetime.fromisoformat(change["time"])
                        self.received.append((change["mrid"], int(change["version"]), now, committed))
                    elif message["type"] in ("error", "complete"):
                        self.errors.append(json.dumps(message)[:300])
                        return
        except Exception as exc:  # a benchmark reports what went wrong instead of stopping
            self.errors.append(f"{type(exc).__name__}: {exc}")
            self.ready.set()


class Oracle:
    """What each subscriber should receive: the change topic, filtered as the API filters it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        ontology = load_ontology()
        self.descendants = {
            name: ontology.descendants(name) for name in ("ConductingEquipment", "Measurement")
        }
        self.domain_of = {name: c.domain for name, c in ontology.classes.items()}
        self.records: list[ChangeRecord] = []
        self.cache = LabelCache()

    async def read(self, stop: asyncio.Event, ready: asyncio.Event) -> None:
        s = self.settings
        options = aiokafka_options(s, ADMIN)
        # Asked of an admin client: a consumer knows the partitions only of topics it already reads.
        async with topic_admin(options) as admin:
            partitions = await partition_ids(admin, s.changes_topic)
        consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
        await consumer.start()
        try:
            if not partitions:
                topic = s.changes_topic
                raise RuntimeError(f"the change topic {topic!r} has no partitions (HUB_CHANGES_TOPIC)")
            tps = [TopicPartition(s.changes_topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            for tp, end in (await consumer.end_offsets(tps)).items():
                consumer.seek(tp, end)
            ready.set()
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                for messages in batch.values():
                    for msg in messages:
                        self.records.append(ChangeRecord.from_json(msg.value or b""))
        finally:
            await consumer.stop()

    def matches(self, record: ChangeRecord, variables: dict[str, Any]) -> bool:
        if "domain" in variables:
            return self.domain_of.get(record.class_) == variables["domain"].title()
        if "classNames" in variables:
            return record.class_ in self.descendants[variables["classNames"][0]]
        return True

    async def expected(self, subscriber: Subscriber, labels: dict[int, str]) -> set[tuple[str, int]]:
        u = subscriber.user
        auths = Authorizations.from_claims(
            clearance=u.get("clearance"),
            org=u.get("org"),
            roles=u.get("roles", ()),
            groups=u.get("groups", ()),
        )
        visible = self.cache.visible(labels, auths)
        out = set()
        for r in self.records:
            if not self.matches(r, subscriber.variables):
                continue
            now = r.label_id is not None and r.label_id in visible
            before = r.prev_label_id is not None and r.prev_label_id in visible
            if now or before:
                out.add((r.mrid, r.version))
        return out


# --- run --------------------------------------------------------------------------------------------


async def sample_mrids(base: str, token: str, docs: dict[str, str]) -> list[str]:
    """The first 500 objects by mRID; on a machine so busy that a page of 500 runs past the API's deadline,
    the same objects a page of 100 at a time (the query mix is not affected)."""
    headers = {"Authorization": f"Bearer {token}"}
    out: list[str] = []
    after: str | None = None
    size = 500
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        while len(out) < 500:
            variables = {"first": min(size, 500 - len(out)), "after": after}
            body = {"query": docs["ObjectsPage"], "operationName": "ObjectsPage", "variables": variables}
            response = await http.post("/graphql", json=body, headers=headers)
            response.raise_for_status()
            data = response.json().get("data")
            if data is None:
                if size == 100:
                    raise RuntimeError(f"no sample of objects: {response.json().get('errors')}")
                size = 100
                continue
            page = data["objects"]
            out += [e["node"]["mrid"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
    return out


async def run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    base = args.api.rstrip("/")
    ws_url = base.replace("http", "ws", 1) + "/graphql"
    docs = documents()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        users = (await http.get("/dev/tokens")).raise_for_status().json()["users"]
    # Objects to ask for, as the user who sees the most (others may be refused some: also a real load).
    widest = max(users, key=lambda u: (u.get("clearance") or "", len(u.get("roles", []))))
    mrids = await sample_mrids(base, widest["token"], docs)
    clients = Clients(base, users, docs, mrids)
    subscribers = [
        # Users and filters combined differently on each pass over the users.
        Subscriber(
            i, users[i % len(users)], FILTERS[(i + i // len(users)) % len(FILTERS)], with_node=i % 2 == 1
        )
        for i in range(args.subscribers)
    ]
    oracle = Oracle(settings)
    stop_clients, stop_subs, stop_feed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    feed_ready = asyncio.Event()
    feed_task = asyncio.create_task(oracle.read(stop_feed, feed_ready))
    ready_task = asyncio.create_task(feed_ready.wait())
    await asyncio.wait([feed_task, ready_task], return_when=asyncio.FIRST_COMPLETED)
    if feed_task.done():
        feed_task.result()  # the feed could not be read: say why
    sub_tasks = [asyncio.create_task(s.run(ws_url, stop_subs)) for s in subscribers]
    await asyncio.gather(*(s.ready.wait() for s in subscribers))
    client_tasks = [asyncio.create_task(clients.client(i, stop_clients)) for i in range(args.clients)]
    print(f"connected: {args.clients} clients, {args.subscribers} subscribers; warming up {args.warmup:g} s")
    await asyncio.sleep(args.warmup)
    window_start = datetime.now(UTC)
    clients.measuring = True
    started = time.monotonic()
    await asyncio.sleep(args.duration)
    measured_s = time.monotonic() - started
    clients.measuring = False
    window_end = datetime.now(UTC)
    stop_clients.set()
    await asyncio.gather(*client_tasks)
    print(f"measured {measured_s:.0f} s; draining {args.drain:g} s for late deliveries")
    await asyncio.sleep(args.drain)
    stop_subs.set()
    await asyncio.gather(*sub_tasks)
    stop_feed.set()
    await feed_task

    in_window = [r for r in oracle.records if r.time is not None and window_start <= r.time < window_end]
    oracle.records = in_window
    freshness = [(r.time - r.event_time).total_seconds() for r in in_window if r.time and r.event_time]
    driver = make_async_driver(settings)
    try:
        directory = LabelDirectory(driver, settings.neo4j_database, 0.0)
        labels = dict(await directory.current())
    finally:
        await driver.close()

    ops: dict[str, dict[str, Any]] = {}
    for op, stats in sorted(clients.stats.items()):
        lat = stats.latencies
        ops[op] = {
            "requests": len(lat),
            "rps": len(lat) / measured_s,
            "p50_ms": 1000 * (pct(lat, 0.5) or 0),
            "p95_ms": 1000 * (pct(lat, 0.95) or 0),
            "p99_ms": 1000 * (pct(lat, 0.99) or 0),
            "errors": dict(stats.errors),
        }
    subs = []
    for s in subscribers:
        expected = await oracle.expected(s, labels)
        got = {
            (m, v): (now, committed)
            for m, v, now, committed in s.received
            if window_start <= committed < window_end
        }
        lags = [now - committed.timestamp() for now, committed in got.values()]
        subs.append(
            {
                "user": s.user["user"],
                "filter": s.variables or "none",
                "node": s.with_node,
                "expected": len(expected),
                "received": len(expected & got.keys()),
                "missed": len(expected - got.keys()),
                "unexpected": len(got.keys() - expected),
                "gaps": s.gaps,
                "lag_p50_s": pct(lags, 0.5),
                "lag_p99_s": pct(lags, 0.99),
                "errors": s.errors,
            }
        )
    total = sum(o["requests"] for o in ops.values())
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "api": base,
        "clients": args.clients,
        "subscribers": args.subscribers,
        "measured_s": measured_s,
        "requests_per_s": total / measured_s,
        "feed_records": len(in_window),
        "feed_rate_per_s": len(in_window) / measured_s,
        "worker_freshness_p50_s": pct(freshness, 0.5),
        "worker_freshness_p99_s": pct(freshness, 0.99),
        "operations": ops,
        "subscriptions": subs,
    }


def fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def write_results(result: dict[str, Any], name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"load-{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    lines = [
        f"# Load: {result['clients']} query clients, {result['subscribers']} subscribers ({result['when']})",
        "",
        f"Machine: {result['machine']['cpus']} CPUs, load average {result['machine']['load_average']}; "
        f"API {result['api']}; measured {result['measured_s']:.0f} s.",
        "",
        f"Change feed: {result['feed_records']} records, {result['feed_rate_per_s']:.1f}/s; worker freshness "
        f"p50 {fmt(result['worker_freshness_p50_s'], ' s')}, "
        f"p99 {fmt(result['worker_freshness_p99_s'], ' s')}.",
        f"Queries: {result['requests_per_s']:.1f} requests/s in all.",
        "",
        "| operation | requests | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for op, o in result["operations"].items():
        errors = ", ".join(f"{k}: {v}" for k, v in o["errors"].items()) or "none"
        lines.append(
            f"| {op} | {o['requests']} | {o['rps']:.1f} | {o['p50_ms']:.0f} | {o['p95_ms']:.0f} | "
            f"{o['p99_ms']:.0f} | {errors} |"
        )
    lines += [
        "",
        "| # | user | filter | node | expected | received | missed | unexpected | gaps | lag p50 s "
        "| lag p99 s |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, s in enumerate(result["subscriptions"]):
        lines.append(
            f"| {i} | {s['user']} | {json.dumps(s['filter']) if s['filter'] != 'none' else 'none'} | "
            f"{'yes' if s['node'] else 'no'} | {s['expected']} | {s['received']} | {s['missed']} | "
            f"{s['unexpected']} | {s['gaps']} | {fmt(s['lag_p50_s'])} | {fmt(s['lag_p99_s'])} |"
        )
    failures = [(i, e) for i, s in enumerate(result["subscriptions"]) for e in s["errors"]]
    if failures:
        lines += ["", "Subscriber errors:", *(f"- {i}: {e}" for i, e in failures)]
    path = RESULTS / f"load-{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="the running hub's API")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--subscribers", type=int, default=20)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--drain", type=float, default=10.0)
    parser.add_argument("--name", default="load")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args, get_settings()))
    path = write_results(result, args.name)
    print(path.read_text())
    return result


if __name__ == "__main__":
    main()
