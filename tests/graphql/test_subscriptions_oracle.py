"""Property test of the shared fan-out of ``changes``: random feeds of change records (random objects,
classes, labels, relabels and deletes) on a real Kafka change topic, random subscribers (tokens of random
clearance and organisation, random ``classNames`` / ``domain`` / ``mrids`` filters) on a real API, and what
each subscription delivers compared with an oracle over the feed.

The oracle, per record in topic order: outside the subscriber's filter, nothing; a delete, or an object
relabelled away from the subscriber (visible under its previous label, not under the new one), is told as
``delete`` when the subscriber could see the object before or sees it now; otherwise the record's own
change when the subscriber may see its label, and nothing when it may not (:func:`hub.labels.evaluate`
of the label against the token's authorizations).

The records are written to the change topic directly (the worker's part is tested elsewhere), so an
example takes seconds. HUB_SECURITY_EXAMPLES sets the example count, as for the other property tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from graphkit import Api, serve
from hubql.cursors import CursorCodec, cursor_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_subscriptions import _create_topics
from test_subscriptions_security import Socket, end_offsets, until

from devstack.services.async_run import run_coroutine
from hub.kafka_clients import admin_options
from hub.labels import Authorizations, evaluate, intern, parse
from ontology.loader import load_ontology

pytestmark = pytest.mark.services

ONT = load_ontology()
LABELS = [
    "classification=PUBLIC",
    "classification=OFFICIAL",
    "classification=SECRET",
    "org=oracle-a",
    "classification=OFFICIAL&org=oracle-b",
]
# Two electricity classes (one the other's descendant would make classNames widen) and one of gas.
CLASSES = ["ACLineSegment", "Breaker", "GasPipe"]
PRODUCER = "oracle-producer"
# The GraphQL Domain values and the ontology's domains they name.
DOMAINS = {"ELECTRICITY": "Electricity", "GAS": "Gas"}
QUERY = """subscription($after: String, $classNames: [String!], $domain: Domain, $mrids: [ID!]) {
  changes(after: $after, classNames: $classNames, domain: $domain, mrids: $mrids) {
    cursor mrid className change version } }"""


@dataclass
class Stack:
    api: Api
    topic: str
    prefix: str
    bootstrap: str
    codec: CursorCodec


@pytest.fixture(scope="module")
def stack(settings: Any, neo4j_driver: Any) -> Iterator[Stack]:
    prefix = f"suborc-{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.cim.changes"
    run_coroutine(_create_topics(settings.kafka_bootstrap, [topic]))
    # The label table holds every label of the feed before any record names it (the worker writes the
    # label node in the batch that first uses it).
    neo4j_driver.execute_query(
        "UNWIND $labels AS l MERGE (s:SecurityLabel {id: l.id}) SET s.expr = l.expr",
        labels=[{"id": i, "expr": t} for i, t in (intern(x) for x in LABELS)],
    )
    api_settings = settings.model_copy(update={"changes_topic": topic})
    with serve(api_settings) as api:
        yield Stack(api, topic, prefix, settings.kafka_bootstrap, CursorCodec(cursor_key(api_settings)))


@dataclass(frozen=True)
class Record:
    mrid: str
    cls: str
    change: str
    version: int
    label: str
    prev: str | None


@dataclass(frozen=True)
class Subscriber:
    clearance: str
    org: str | None
    classes: tuple[str, ...] | None
    domain: str | None
    mrids: tuple[int, ...] | None


def feeds() -> st.SearchStrategy[list[tuple[int, int, str, str]]]:
    """(object, class, change, label) steps; versions and previous labels follow from the order."""
    return st.lists(
        st.tuples(
            st.integers(0, 5),
            st.integers(0, len(CLASSES) - 1),
            st.sampled_from(["upsert", "upsert", "upsert", "delete"]),
            st.sampled_from(LABELS),
        ),
        min_size=1,
        max_size=30,
    )


subscribers = st.builds(
    Subscriber,
    clearance=st.sampled_from(["PUBLIC", "OFFICIAL", "SECRET"]),
    org=st.sampled_from([None, "oracle-a", "oracle-b"]),
    classes=st.none() | st.lists(st.sampled_from(CLASSES), min_size=1, max_size=2, unique=True).map(tuple),
    domain=st.sampled_from([None, None, "ELECTRICITY", "GAS"]),
    mrids=st.none() | st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True).map(tuple),
)


def build_feed(prefix: str, steps: list[tuple[int, int, str, str]]) -> list[Record]:
    """Records as the worker writes them: an object keeps its class, versions rise, each record carries
    the label it had before (none after a delete or for a new object)."""
    out: list[Record] = []
    state: dict[str, tuple[str, int, str | None]] = {}  # mrid -> class, version, current label
    for obj, cls_index, change, label in steps:
        mrid = f"{prefix}-o{obj}"
        cls, version, current = state.get(mrid, (CLASSES[cls_index], 0, None))
        if change == "delete" and current is None:
            continue  # nothing to delete
        if change == "delete":
            # As the worker tells a delete: the label the object had, before and "after".
            out.append(Record(mrid, cls, change, version + 1, current or label, current))
            state[mrid] = (cls, version + 1, None)
        else:
            out.append(Record(mrid, cls, change, version + 1, label, current))
            state[mrid] = (cls, version + 1, label)
    return out


def wire(record: Record) -> bytes:
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {
            "mrid": record.mrid,
            "class": record.cls,
            "change": record.change,
            "version": record.version,
            "label_id": intern(record.label)[0],
            "time": now,
            "event_time": now,
            "event_id": f"{record.mrid}-v{record.version}",
            "producer": PRODUCER,
            "prev_label_id": intern(record.prev)[0] if record.prev is not None else None,
        }
    ).encode()


def oracle(sub: Subscriber, prefix: str, feed: list[Record]) -> dict[str, list[tuple[str, int]]]:
    """Per object, the (change, version) a subscriber must be told, in order."""
    auths = Authorizations.from_claims(clearance=sub.clearance, org=sub.org)
    wanted_classes = set().union(*(ONT.descendants(c) for c in sub.classes)) if sub.classes else None
    mrids = {f"{prefix}-o{i}" for i in sub.mrids} if sub.mrids is not None else None
    told: dict[str, list[tuple[str, int]]] = {}
    for r in feed:
        if mrids is not None and r.mrid not in mrids:
            continue
        if wanted_classes is not None and r.cls not in wanted_classes:
            continue
        if sub.domain is not None and ONT.domain(r.cls) != DOMAINS[sub.domain]:
            continue
        visible = evaluate(parse(r.label), auths)
        was = r.prev is not None and evaluate(parse(r.prev), auths)
        if r.change == "delete" or not visible:
            if visible or was:
                told.setdefault(r.mrid, []).append(("delete", r.version))
            continue
        told.setdefault(r.mrid, []).append((r.change, r.version))
    return told


async def _run(stack: Stack, feed: list[Record], subs: list[Subscriber], example: str) -> None:
    start = await end_offsets(stack)
    api = stack.api
    sockets: list[Socket] = []
    try:
        for i, sub in enumerate(subs):
            user = f"{example}-s{i}"
            ws = Socket(api.ws_url, api.token(user, sub.org, sub.clearance))
            await ws.__aenter__()
            sockets.append(ws)
            # Sealed for the caller the API knows: the token's issuer and subject.
            principal = f"{stack.api.settings.oidc_issuer} {user}"
            variables: dict[str, Any] = {"after": stack.codec.seal(stack.topic, principal, start)}
            if sub.classes is not None:
                variables["classNames"] = list(sub.classes)
            if sub.domain is not None:
                variables["domain"] = sub.domain
            if sub.mrids is not None:
                variables["mrids"] = [f"{example}-o{m}" for m in sub.mrids]
            await ws.subscribe("1", variables, QUERY)
        # The subscriptions reach the shared reader at the topic's end, then the feed is written.
        await asyncio.sleep(1.0)
        producer = AIOKafkaProducer(**admin_options(stack.bootstrap))
        await producer.start()
        try:
            for r in feed:
                await producer.send(stack.topic, wire(r), key=r.mrid.encode())
            await producer.flush()
        finally:
            await producer.stop()
        expected = [oracle(sub, example, feed) for sub in subs]
        counts = [sum(len(v) for v in e.values()) for e in expected]
        await until(
            lambda: (
                all(len(ws.received["1"]) >= n for ws, n in zip(sockets, counts, strict=True))
                or any(ws.errors for ws in sockets)
            ),
            60,
            "every subscriber's changes",
        )
        await asyncio.sleep(1.0)  # anything beyond the expected would arrive now
        for ws, sub, want in zip(sockets, subs, expected, strict=True):
            assert not ws.errors, (sub, ws.errors)
            got: dict[str, list[tuple[str, int]]] = {}
            for c in ws.received["1"]:
                got.setdefault(c["mrid"], []).append((c["change"], int(c["version"])))
            assert got == want, (sub, feed)
    finally:
        for ws in sockets:
            await ws.__aexit__(None, None, None)


@settings(
    max_examples=int(os.environ.get("HUB_SECURITY_EXAMPLES", "10")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=feeds(), subs=st.lists(subscribers, min_size=1, max_size=4))
def test_each_subscription_delivers_what_an_oracle_of_the_feed_says(
    stack: Stack, steps: list[tuple[int, int, str, str]], subs: list[Subscriber]
) -> None:
    example = f"{stack.prefix}-{uuid.uuid4().hex[:6]}"
    run_coroutine(_run(stack, build_feed(example, steps), subs, example))
