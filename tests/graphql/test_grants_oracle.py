"""Property test of access grants through the API: a small graph of two producers' objects (and a third's),
random sequences of requests, approvals (some short), rejections, revocations, expiries and relabelling
writes, and after every step, for three consumers, the object list and its total, single objects, a
neighbourhood and a shortest path compared with an oracle computed in Python from the consumer's token and
its live grants, each applied to its own product's objects only (:func:`hub.labels.evaluate`).

Each consumer also holds a ``changes`` subscription through the API's websocket for the whole sequence. The
test tells the change topic of every relabelling write, as the worker would, and after every step sends a
record of a public sentinel object: once each subscriber has been handed it, the subscription has been
handed everything the step caused (one partition; and what a change of grants shows or hides is told
before the next record). Then, for every object, the last change the subscriber was told says present
(upsert) exactly when the oracle says the consumer sees it, and no upsert ever told of an object the oracle
hid at the time it arrived (within the 2-second bound a grant's expiry has to take effect).

HUB_SECURITY_EXAMPLES sets the example count, as for the other property tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from graphkit import Api, Obj, Rel, serve, write_graph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_grants import (
    APPROVE,
    BOUND_S,
    CONTRACTS,
    LEAN,
    LICENCE,
    REJECT,
    REQUEST,
    REVOKE,
    _topics,
    ok,
    until,
)
from test_subscriptions import Subscriber

from devstack.demo.producers import PRODUCER_CONFIG
from hub.changes import ChangeRecord
from hub.kafka_clients import admin_options
from hub.labels import Authorizations, evaluate, intern, parse
from ontology.loader import load_ontology

pytestmark = pytest.mark.services

ONT = load_ontology()
LABELS = [
    "classification=PUBLIC",
    "classification=OFFICIAL&org=ngt",
    "classification=OFFICIAL&org=nggt",
    "classification=OFFICIAL&(org=neso|org=ngt)",
    "classification=OFFICIAL&org=ngt&org=nggt",
    "classification=SECRET&org=ngt",  # a grant never raises a clearance
]
PRODUCTS = ("ngt", "nggt")
SHORT_S = 3.0
REL_SUB = ONT.association_by_qname("VoltageLevel.Substation")
REL_VL = ONT.association_by_qname("Bay.VoltageLevel")
REL_EQ = ONT.association_by_qname("Equipment.EquipmentContainer")
T = TypeVar("T")


@dataclass
class Node:
    mrid: str
    cls: str
    owner: str
    label: str


class Changes:
    """The change topic as the test tells it, and the consumers' subscriptions to the API's ``changes``;
    both on an event loop of their own thread, while the steps and checks run on the test's."""

    def __init__(self, bootstrap: str, topic: str, sentinel: str) -> None:
        self.topic, self.sentinel = topic, sentinel
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def producer() -> AIOKafkaProducer:
            made = AIOKafkaProducer(**admin_options(bootstrap))  # made on the loop it runs on
            await made.start()
            return made

        self.producer = self.run(producer())
        self.version = 0
        self.subs: dict[str, Subscriber] = {}
        # Per consumer: what it saw when it subscribed, and how many of its changes were checked already.
        self.initial: dict[str, set[str]] = {}
        self.checked: dict[str, int] = {}

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.shut()
        self.run(self.producer.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _send(self, record: ChangeRecord) -> None:
        await self.producer.send_and_wait(self.topic, record.to_json(), key=record.mrid.encode())

    def tell(self, node: Node, prev_label: str, version: int) -> None:
        """The change record the worker publishes for a write that relabelled ``node`` (its owner's)."""
        record = ChangeRecord(
            node.mrid,
            node.cls,
            "upsert",
            version,
            intern(node.label)[0],
            datetime.now(UTC),
            None,
            None,
            node.owner,
            intern(prev_label)[0],
        )
        self.run(self._send(record))

    def open(self, w: World) -> None:
        """Each consumer subscribes to the changes of the test's objects and the sentinel."""
        variables = {"mrids": [*sorted(w.nodes), self.sentinel]}

        async def start() -> None:
            for name, (token, _) in w.consumers.items():
                self.subs[name] = sub = Subscriber(w.api.ws_url, token, variables, LEAN)
                sub.start()
            for sub in self.subs.values():
                await asyncio.wait_for(sub.ready.wait(), 30)

        self.run(start())
        now = time.time()
        self.initial = {name: visible(w, name, now) for name in self.subs}
        self.checked = dict.fromkeys(self.subs, 0)
        self.sync()  # every subscription is registered

    def shut(self) -> None:
        async def stop() -> None:
            for sub in self.subs.values():
                await sub.stop()

        self.run(stop())
        self.subs = {}

    def sync(self) -> None:
        """Returns once every subscriber has been handed a sentinel record sent now (sent again while
        none has arrived: a subscription still registering misses records sent before)."""

        async def sentinel() -> None:
            self.version += 1
            first = self.version
            deadline = time.monotonic() + 30
            while True:
                label = intern(LABELS[0])[0]
                now = datetime.now(UTC)
                await self._send(
                    ChangeRecord(
                        self.sentinel, "Substation", "upsert", self.version, label, now, None, None, "test"
                    )
                )
                again = time.monotonic() + 2.0
                while time.monotonic() < again:
                    for sub in self.subs.values():
                        assert not sub.errors, sub.errors
                    if all(
                        any(
                            c["mrid"] == self.sentinel and c["version"] >= first
                            for c in reversed(sub.received)
                        )
                        for sub in self.subs.values()
                    ):
                        return
                    await asyncio.sleep(0.02)
                assert time.monotonic() < deadline, "a subscriber was not handed the sentinel"
                self.version += 1

        self.run(sentinel())


@dataclass
class World:
    api: Api
    driver: Any
    prefix: str
    nodes: dict[str, Node]
    edges: list[tuple[str, str, str]]
    consumers: dict[str, tuple[str, Authorizations]]  # name -> (token, what the token alone holds)
    officers: dict[str, str]  # product -> an officer's token
    audit_topic: str
    changes: Changes
    # request id -> (consumer, product, status, granted attributes, granted until)
    requests: dict[str, list[Any]] = field(default_factory=dict)

    def neighbours(self, m: str) -> set[str]:
        return {t for s, _, t in self.edges if s == m} | {s for s, _, t in self.edges if t == m}


def _write(w: World, nodes: list[Node], version: int = 1) -> None:
    for owner in {n.owner for n in nodes}:
        write_graph(
            w.driver,
            ONT,
            [
                Obj(n.mrid, n.cls, n.label, f"{w.prefix} {n.mrid}", version=version)
                for n in nodes
                if n.owner == owner
            ],
            [],
            producer=owner,
        )


@pytest.fixture(scope="module")
def world(settings: Any, neo4j_driver: Any) -> Iterator[World]:
    prefix = f"go{uuid.uuid4().hex[:8]}"
    changes, audit_topic = f"{prefix}.cim.changes", f"{prefix}.audit"
    asyncio.run(_topics(settings.kafka_bootstrap, [changes, audit_topic]))
    common = {
        "changes_topic": changes,
        "audit_topic": audit_topic,
        "contracts_dir": CONTRACTS,
        "producers": PRODUCER_CONFIG,
        "api_metrics_port": 0,
    }
    with serve(settings.model_copy(update=common)) as api:
        specs = [
            ("s1", "Substation", "ngt"),
            ("v1", "VoltageLevel", "ngt"),
            ("b1", "Bay", "ngt"),
            ("v2", "VoltageLevel", "nggt"),
            ("b2", "Bay", "nggt"),
            ("k2", "Breaker", "nggt"),
            ("s3", "Substation", "neso"),
        ]
        nodes = {
            f"{prefix}-{m}": Node(f"{prefix}-{m}", c, o, LABELS[i % 4]) for i, (m, c, o) in enumerate(specs)
        }
        p = prefix + "-"
        assert REL_SUB and REL_VL and REL_EQ
        edges = [
            (p + "v1", REL_SUB.rel_type, p + "s1"),
            (p + "b1", REL_VL.rel_type, p + "v1"),
            (p + "v2", REL_SUB.rel_type, p + "s1"),
            (p + "b2", REL_VL.rel_type, p + "v2"),
            (p + "k2", REL_EQ.rel_type, p + "b1"),
            (p + "v2", REL_SUB.rel_type, p + "s3"),
        ]
        consumers = {
            name: (
                api.token(f"{prefix}-{name}", org, clearance),
                Authorizations(clearance, frozenset({f"org={org}"})),
            )
            for name, org, clearance in (
                ("dno", "dno", "OFFICIAL"),
                ("genco", "genco", "OFFICIAL"),
                ("low", "dno", "PUBLIC"),
            )
        }
        officers = {
            product: api.token(f"{prefix}-officer-{product}", product, "OFFICIAL", roles=("data-officer",))
            for product in PRODUCTS
        }
        w = World(
            api,
            neo4j_driver,
            prefix,
            nodes,
            edges,
            consumers,
            officers,
            audit_topic,
            Changes(settings.kafka_bootstrap, changes, f"{p}prime0"),  # prime0 is public
        )
        # Every label of the pool known to the API before the first example (a new label is hidden until
        # the label table is read again).
        write_graph(
            neo4j_driver,
            ONT,
            [Obj(f"{p}prime{i}", "Substation", label) for i, label in enumerate(LABELS)],
            [],
            label_ttl_s=api.settings.label_cache_ttl_s,
        )
        _write(w, list(nodes.values()))
        write_graph(neo4j_driver, ONT, [], [Rel(s, t, d) for s, t, d in edges])
        try:
            yield w
        finally:
            w.changes.close()
            neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=p)


# ------------------------------------------------------------------------------------------------ oracle


def visible(w: World, consumer: str, now: float) -> set[str]:
    _, auths = w.consumers[consumer]
    extra: dict[str, set[str]] = {}
    for who, product, status, attrs, granted_until in w.requests.values():
        if who == consumer and status == "approved" and granted_until > now:
            extra.setdefault(product, set()).update(attrs)
    out = set()
    for n in w.nodes.values():
        label = parse(n.label)
        if evaluate(label, auths) or (
            n.owner in extra
            and evaluate(label, Authorizations(auths.classification, auths.attributes | extra[n.owner]))
        ):
            out.add(n.mrid)
    return out


def bfs(w: World, root: str, depth: int, seen: set[str]) -> set[str]:
    if root not in seen:
        return set()
    reach, frontier = {root}, deque([(root, 0)])
    while frontier:
        m, d = frontier.popleft()
        if d == depth:
            continue
        for x in w.neighbours(m) & seen:
            if x not in reach:
                reach.add(x)
                frontier.append((x, d + 1))
    return reach


def distance(w: World, a: str, b: str, seen: set[str]) -> int | None:
    if a not in seen or b not in seen:
        return None
    dist, frontier = {a: 0}, deque([a])
    while frontier:
        m = frontier.popleft()
        for x in w.neighbours(m) & seen:
            if x not in dist:
                dist[x] = dist[m] + 1
                frontier.append(x)
    return dist.get(b)


# ------------------------------------------------------------------------------------------------ checks

Q_LIST = """query($n: String) { objects(name: $n, first: 50) { totalCount nodes { mrid } } }"""
Q_OBJ = "query($m: ID!) { object(mrid: $m) { mrid label } }"
Q_NB = "query($m: ID!, $d: Int!) { neighbourhood(mrid: $m, depth: $d) { nodes { mrid } } }"
Q_PATH = "query($a: ID!, $b: ID!) { shortestPath(from: $a, to: $b, via: ANY) { nodes { mrid } } }"


def _ask(api: Api, query: str, variables: dict[str, Any], token: str) -> Any:
    got = api.query(query, variables, token=token)
    assert "errors" not in got, got
    return got["data"]


def check(w: World, data: st.DataObject) -> None:
    """Every consumer's answers equal the oracle's; redone once when a grant expired during the check."""
    mrids = sorted(w.nodes)
    picks = [
        (
            data.draw(st.sampled_from(mrids), label="object"),
            data.draw(st.sampled_from(mrids), label="root"),
            data.draw(st.integers(0, 2), label="depth"),
            data.draw(st.sampled_from(mrids), label="from"),
            data.draw(st.sampled_from(mrids), label="to"),
        )
        for _ in w.consumers
    ]
    for attempt in range(2):
        started = time.time()
        try:
            for (name, (token, _)), (one, root, depth, a, b) in zip(w.consumers.items(), picks, strict=True):
                seen = visible(w, name, started)
                page = _ask(w.api, Q_LIST, {"n": w.prefix}, token)["objects"]
                got = {n["mrid"] for n in page["nodes"]} & set(w.nodes)
                assert got == seen, (name, w.requests)
                primes = sum(1 for n in page["nodes"] if n["mrid"] not in w.nodes)
                assert page["totalCount"] == len(seen) + primes
                found = _ask(w.api, Q_OBJ, {"m": one}, token)["object"]
                assert (found is not None) == (one in seen), (name, one)
                if found is not None:
                    assert parse(found["label"]) == parse(w.nodes[one].label)
                nb = _ask(w.api, Q_NB, {"m": root, "d": depth}, token)["neighbourhood"]
                assert {n["mrid"] for n in (nb or {}).get("nodes", [])} == bfs(w, root, depth, seen)
                path = _ask(w.api, Q_PATH, {"a": a, "b": b}, token)["shortestPath"]
                dist = distance(w, a, b, seen)
                if dist is None:
                    assert path is None
                else:
                    nodes = [n["mrid"] for n in path["nodes"]]
                    assert len(nodes) == dist + 1 and set(nodes) <= seen
            return
        except AssertionError:
            ended = time.time()
            crossed = any(
                r[2] == "approved" and started - 0.5 <= r[4] <= ended + 0.5 for r in w.requests.values()
            )
            if attempt or not crossed:
                raise
            time.sleep(1.0)


def check_subscriptions(w: World) -> None:
    """What each consumer's subscription was told agrees with the oracle, once it was handed everything
    the step caused; redone once when a grant expired meanwhile."""
    ch = w.changes
    for attempt in range(2):
        started = time.time()
        ch.sync()
        now = time.time()
        try:
            for name, sub in ch.subs.items():
                n = len(sub.received)
                told = list(zip(sub.received_at[:n], sub.received[:n], strict=True))
                # No change that says present told of an object hidden when it arrived (a grant's expiry
                # takes effect within the bound: a record made just before may arrive up to it after).
                for at, c in told[ch.checked[name] :]:
                    if c["mrid"] in w.nodes and c["change"] != "delete":
                        assert c["mrid"] in visible(w, name, at - BOUND_S), (name, c, w.requests)
                ch.checked[name] = n
                # The last change told of each object says whether the consumer sees it now.
                shown = set(ch.initial[name])
                for _, c in told:
                    if c["mrid"] in w.nodes:
                        if c["change"] == "delete":
                            shown.discard(c["mrid"])
                        else:
                            shown.add(c["mrid"])
                assert shown == visible(w, name, now), (name, [c for _, c in told], w.requests)
            return
        except AssertionError:
            crossed = any(
                r[2] == "approved" and started - 0.5 <= r[4] <= now + 0.5 for r in w.requests.values()
            )
            if attempt or not crossed:
                raise


# ------------------------------------------------------------------------------------------------- steps

# Requests and approvals drawn more often than the rest, so that most examples hold live grants.
STEPS = st.sampled_from(
    ["request", "request", "approve", "approve", "approve_short", "reject", "revoke", "wait", "relabel"]
)
counter = iter(range(1_000_000))


def step(w: World, kind: str, data: st.DataObject) -> None:
    api = w.api
    pending = sorted(k for k, r in w.requests.items() if r[2] == "pending")
    if kind == "request":
        consumer = data.draw(st.sampled_from(sorted(w.consumers)), label="consumer")
        product = data.draw(st.sampled_from(PRODUCTS), label="product")
        got = api.query(
            REQUEST,
            {"product": product, "until": until(3600), "licence": LICENCE},
            token=w.consumers[consumer][0],
        )
        if "errors" not in got:
            r = got["data"]["requestAccess"]
            w.requests[r["id"]] = [consumer, product, "pending", (), 0.0]
    elif kind in ("approve", "approve_short") and pending:
        rid = data.draw(st.sampled_from(pending), label="request")
        product = w.requests[rid][1]
        variables: dict[str, Any] = {"id": rid}
        if kind == "approve_short":
            variables["until"] = until(SHORT_S)
        r = ok(api.query(APPROVE, variables, token=w.officers[product]), "approveAccessRequest")
        assert r["status"] == "APPROVED"
        w.requests[rid][2:] = ["approved", tuple(r["grantedAttributes"]), _seconds(r["grantedUntil"])]
    elif kind == "reject" and pending:
        rid = data.draw(st.sampled_from(pending), label="request")
        ok(api.query(REJECT, {"id": rid}, token=w.officers[w.requests[rid][1]]), "rejectAccessRequest")
        w.requests[rid][2] = "rejected"
    elif kind == "revoke":
        # Only grants well before their end (one that expires meanwhile could no longer be revoked).
        live = sorted(k for k, r in w.requests.items() if r[2] == "approved" and r[4] > time.time() + 1.0)
        if live:
            rid = data.draw(st.sampled_from(live), label="grant")
            ok(api.query(REVOKE, {"id": rid}, token=w.officers[w.requests[rid][1]]), "revokeGrant")
            w.requests[rid][2] = "revoked"
    elif kind == "wait":
        time.sleep(SHORT_S + 0.2)
    elif kind == "relabel":
        node = w.nodes[data.draw(st.sampled_from(sorted(w.nodes)), label="relabel")]
        prev, node.label = node.label, data.draw(st.sampled_from(LABELS), label="label")
        version = 2 + next(counter)
        _write(w, [node], version=version)
        w.changes.tell(node, prev, version)


def _seconds(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


@settings(
    max_examples=int(os.environ.get("HUB_SECURITY_EXAMPLES", "6")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_answers_and_subscriptions_follow_the_token_and_live_grants_scoped_to_their_products(
    world: World, data: st.DataObject
) -> None:
    w = world
    # Each example starts with no live grant for anyone.
    for rid, r in w.requests.items():
        if r[2] == "approved" and r[4] > time.time():
            ok(w.api.query(REVOKE, {"id": rid}, token=w.officers[r[1]]), "revokeGrant")
            r[2] = "revoked"
        elif r[2] == "pending":
            ok(w.api.query(REJECT, {"id": rid}, token=w.officers[r[1]]), "rejectAccessRequest")
            r[2] = "rejected"
    w.changes.open(w)
    try:
        check(w, data)
        check_subscriptions(w)
        for kind in [
            "request",
            "approve",
            *data.draw(st.lists(STEPS, min_size=3, max_size=8), label="steps"),
        ]:
            step(w, kind, data)
            check(w, data)
            check_subscriptions(w)
    finally:
        w.changes.shut()


async def _used(settings: Any, topic: str, grants: set[str], operation: str) -> dict[str, Any]:
    """The ``access.used`` record of ``operation`` naming ``grants``."""
    consumer = AIOKafkaConsumer(
        topic, **admin_options(settings.kafka_bootstrap), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    entry = json.loads(record.value)
                    if (
                        entry["action"] == "access.used"
                        and entry.get("operation") == operation
                        and set(entry["grants"]) == grants
                    ):
                        return dict(entry)
    finally:
        await consumer.stop()
    raise AssertionError(f"no access.used record for {operation}")


def test_access_used_says_per_grant_how_many_returned_objects_it_made_visible(
    world: World, settings: Any
) -> None:
    w = world
    p = w.prefix + "-"
    # Labels chosen for the evidence: ngt's grant shows v1 and b1, nggt's grant shows v2 and k2; s1 and b2
    # are public; s3 (neso's, labelled for ngt) is shown by neither.
    for m, label in {
        "s1": LABELS[0],
        "v1": LABELS[1],
        "b1": LABELS[1],
        "v2": LABELS[2],
        "b2": LABELS[0],
        "k2": LABELS[2],
        "s3": LABELS[1],
    }.items():
        w.nodes[p + m].label = label
    _write(w, list(w.nodes.values()), version=2 + next(counter))
    name = f"{w.prefix}-evidence"
    token = w.api.token(name, "dno", "OFFICIAL")
    w.consumers["evidence"] = (token, Authorizations("OFFICIAL", frozenset({"org=dno"})))
    rids: dict[str, str] = {}
    try:
        for product in PRODUCTS:
            r = ok(
                w.api.query(
                    REQUEST, {"product": product, "until": until(3600), "licence": LICENCE}, token=token
                ),
                "requestAccess",
            )
            ok(w.api.query(APPROVE, {"id": r["id"]}, token=w.officers[product]), "approveAccessRequest")
            rids[product] = r["id"]
        listed = w.api.query(
            "query Evidence($n: String) { objects(name: $n, first: 50) { totalCount nodes { mrid } } }",
            {"n": w.prefix},
            token=token,
            operation_name="Evidence",
        )
        assert "errors" not in listed, listed
        got = {n["mrid"] for n in listed["data"]["objects"]["nodes"]}
        assert {p + m for m in ("s1", "v1", "b1", "v2", "b2", "k2")} <= got and p + "s3" not in got
        entry = asyncio.run(_used(settings, w.audit_topic, set(rids.values()), "Evidence"))
        assert entry["objects_by_grant"] == {rids["ngt"]: 2, rids["nggt"]: 2}
        assert entry["rows"] == len(got)
        # A typed page with two levels of associations, in its one row: v1, and b1 two levels down, by
        # ngt's grant; v2 by nggt's (b2 is public; s3, neso's, is shown by neither).
        typed = w.api.query(
            "query EvidenceTyped($m: [ID!]) { substations(where: {mrid: {in: $m}}) "
            "{ totalCount nodes { mrid voltageLevels { mrid bays { mrid } } } } }",
            {"m": [p + "s1", p + "s3"]},
            token=token,
            operation_name="EvidenceTyped",
        )
        assert "errors" not in typed, typed
        assert [n["mrid"] for n in typed["data"]["substations"]["nodes"]] == [p + "s1"]
        entry = asyncio.run(_used(settings, w.audit_topic, set(rids.values()), "EvidenceTyped"))
        assert entry["objects_by_grant"] == {rids["ngt"]: 2, rids["nggt"]: 1}
    finally:
        for rid in rids.values():
            w.api.query(REVOKE, {"id": rid}, token=w.officers["ngt" if rid == rids.get("ngt") else "nggt"])
        del w.consumers["evidence"]
