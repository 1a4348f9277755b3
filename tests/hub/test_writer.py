"""The batch writer: the fold's decisions, and the graph it leaves in the real Neo4j.

The property test applies random event sequences to Neo4j in random batch splits and compares the graph
with a sequential model written here from the rules in DESIGN.md / the contracts, one event at a time,
without the writer's batch folding.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import neo4j
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from write_model import Model, Node, expected_graph, expected_last_changes

from hub.graph import ensure_schema, make_async_driver
from hub.graph_schema import CLASS, COUNT_KEY, EVENT_ID, LABEL, OWNER, PRODUCER, VERSION, cypher
from hub.labels import Authorizations, label_id
from hub.state_cache import StateCache
from hub.write_policy import WriteRights
from hub.writer import (
    CLAIMS_PER_AUDIT_RECORD,
    DEAD,
    LIVE,
    STUB_LABEL_ID,
    STUBBED,
    Accepted,
    GraphWriter,
    Stored,
    fold,
)
from ontology.loader import load_ontology

ONT = load_ontology()
T0 = datetime(2025, 1, 1, tzinfo=UTC)
LINE_LABELS = set(ONT.neo4j_labels("ACLineSegment"))
WRITER = GraphWriter(ONT)
# The writers of these tests. p1 may do anything the write check allows and may declassify; p2 holds
# org=a only and may not declassify, so it may publish org=a and org=b|org=a but never widen org=a to
# org=b|org=a; p3 is cleared OFFICIAL and holds no org, so it can neither see nor assign org= labels.
RIGHTS = {
    "p1": (WriteRights(Authorizations("SECRET", frozenset({"org=a", "org=b"})), declassify=True),),
    "p2": (WriteRights(Authorizations("PUBLIC", frozenset({"org=a"}))),),
    "p3": (WriteRights(Authorizations("OFFICIAL", frozenset())),),
}


def ev(
    mrid: str,
    kind: str,
    version: int,
    cls: str = "ACLineSegment",
    props: dict[str, Any] | None = None,
    rels: dict[str, tuple[str, list[str]]] | None = None,
    producer: str = "p1",
    label: str = "org=a",
) -> Accepted:
    return Accepted(
        mrid,
        kind,
        version,
        cls,
        props or {},
        rels or {},
        label_id(label),
        label,
        producer,
        f"{mrid}-{kind}-{version}",
        T0,
        rights=RIGHTS.get(producer, RIGHTS["p1"]),
    )


def live(version: int, owner: str = "p1", cls: str = "ACLineSegment") -> Stored:
    return Stored(LIVE, version, owner, cls, ("Entity", *ONT.neo4j_labels(cls)), label_id("org=a"))


# ------------------------------------------------------------------------------------------ fold


def test_the_statements_pin_their_plan_unless_told_not_to() -> None:
    assert WRITER.read_state_query.startswith("CYPHER replan=skip\n")
    assert WRITER.write_query.startswith("CYPHER replan=skip\n")
    replanned = GraphWriter(ONT, replan_skip=False)
    assert WRITER.write_query == "CYPHER replan=skip\n" + replanned.write_query
    assert WRITER.read_state_query == "CYPHER replan=skip\n" + replanned.read_state_query
    assert "replan" not in replanned.write_query + replanned.read_state_query


def test_duplicates_and_out_of_order_versions_are_stale_and_last_version_wins() -> None:
    plan = fold(
        [
            ev("a", "upsert", 1, props={"r": 1.0}),
            ev("a", "upsert", 3, props={"r": 3.0}),
            ev("a", "upsert", 2, props={"r": 2.0}),
            ev("a", "upsert", 3, props={"r": 9.0}),
        ],
        {},
        ONT,
    )
    assert plan.applied["upsert"] == 2 and plan.stale["upsert"] == 2
    [row] = plan.upserts
    assert row["c"] == "ACLineSegment"
    assert row["v"] == 3 and row["p"] == {"r": 3.0}
    assert [c.change for c in plan.changes] == ["upsert"]


def test_stored_version_makes_older_events_stale() -> None:
    plan = fold(
        [ev("a", "upsert", 4), ev("a", "delete", 5), ev("a", "measurement", 5)],
        {"a": live(5)},
        ONT,
    )
    assert plan.stale == {"upsert": 1, "delete": 1, "measurement": 1}
    assert not plan.upserts and not plan.deletes and not plan.changes


def test_delete_then_stale_upsert_leaves_a_tombstone() -> None:
    plan = fold([ev("a", "upsert", 1), ev("a", "delete", 3), ev("a", "upsert", 2)], {}, ONT)
    assert plan.stale["upsert"] == 1
    assert not plan.upserts
    [row] = plan.deletes
    assert row["v"] == 3
    assert [(c.change, c.version) for c in plan.changes] == [("delete", 3)]


def test_change_records_carry_the_label_from_before_the_batch() -> None:
    # A subscriber who could see the object under its old label and cannot under the new one must be
    # told it is gone (as for a delete): the record names both labels.
    plan = fold(
        [
            ev("a", "upsert", 2, label="org=b"),
            ev("b", "delete", 2),
            ev("n", "upsert", 1, label="org=b"),
        ],
        {"a": live(1), "b": live(1)},
        ONT,
    )
    got = {c.mrid: (c.change, c.label_id, c.prev_label_id) for c in plan.changes}
    assert got == {
        "a": ("upsert", label_id("org=b"), label_id("org=a")),
        "b": ("delete", label_id("org=a"), label_id("org=a")),
        "n": ("upsert", label_id("org=b"), None),
    }


def test_newer_upsert_after_delete_recreates_from_empty() -> None:
    plan = fold(
        [
            ev("a", "upsert", 2, props={"r": 1.0, "x": 2.0}),
            ev("a", "delete", 3),
            ev("a", "upsert", 4, props={"x": 5.0}),
        ],
        {"a": live(1)},
        ONT,
    )
    [deleted] = plan.deletes
    assert deleted["v"] == 3
    [row] = plan.upserts
    assert row["c"] == "ACLineSegment"
    assert row["p"] == {"x": 5.0} and row["v"] == 4


def test_delete_record_carries_the_label_the_object_had_before_the_delete() -> None:
    # Subscribers only get records whose label they may see: a delete must reach exactly those who
    # could see the object, so its record carries the label from before the delete, not the tombstone's.
    plan = fold(
        [
            ev("a", "delete", 2),
            ev("b", "upsert", 2, label="org=b"),
            ev("b", "delete", 3),
            ev("s", "delete", 1),
            ev("n", "delete", 1),
            ev("d", "delete", 4),
        ],
        {
            "a": live(1),
            "b": live(1),
            "s": Stored(STUBBED, 0, None, "BaseVoltage", ("Entity", "Stub", "BaseVoltage"), STUB_LABEL_ID),
            "d": Stored(DEAD, 3, "p1", "ACLineSegment", ("Entity", "Tombstone"), None),
        },
        ONT,
    )
    got = {c.mrid: (c.change, c.version, c.label_id) for c in plan.changes}
    assert got == {
        "a": ("delete", 2, label_id("org=a")),
        # Relabelled in the batch, then deleted: those who could see it last.
        "b": ("delete", 3, label_id("org=b")),
        # An already deleted object was visible to nobody.
        "d": ("delete", 4, None),
    }
    # A stub and an object nobody published are not deleted: there is nothing of anyone's to delete.
    assert plan.ignored == 2 and not plan.rejected


def test_first_producer_owns_and_others_are_rejected() -> None:
    plan = fold(
        [
            ev("a", "upsert", 1, producer="p1"),
            ev("a", "upsert", 2, producer="p2"),
            ev("b", "delete", 9, producer="p3"),
        ],
        {"b": live(1, owner="p1")},
        ONT,
    )
    assert [(r[0].mrid, r[0].producer) for r in plan.rejected] == [("a", "p2"), ("b", "p3")]
    assert "owned by producer 'p1'" in plan.rejected[0][1]
    assert plan.applied["upsert"] == 1 and not plan.deletes


def test_a_delete_of_an_absent_object_or_a_stub_claims_nothing() -> None:
    stub = Stored(STUBBED, 0, None, "BaseVoltage", ("Entity", "Stub", "BaseVoltage"), STUB_LABEL_ID)
    plan = fold(
        [
            ev("n", "delete", 99, producer="p2"),
            ev("s", "delete", 99, producer="p2"),
            # The real owner's first versions, lower than the delete's, still apply.
            ev("n", "upsert", 1, producer="p1"),
            ev("s", "upsert", 1, cls="BaseVoltage", producer="p1"),
        ],
        {"s": stub},
        ONT,
    )
    assert plan.ignored == 2 and not plan.deletes and not plan.rejected
    assert {r["mrid"]: r["v"] for r in plan.upserts} == {"n": 1, "s": 1}
    assert {m: s.owner for m, s in plan.after.items()} == {"n": "p1", "s": "p1"}
    claims = [f for action, f in plan.audits if action == "ownership.claimed"]
    assert [(c["mrid"], f["producer"], c["was_stub"]) for f in claims for c in f["claims"]] == [
        ("n", "p1", False),
        ("s", "p1", True),
    ]


def test_a_bulk_load_claims_every_mrid_in_few_audit_records() -> None:
    plan = fold([ev(f"m{i}", "upsert", 1) for i in range(250)], {}, ONT)
    records = [f for action, f in plan.audits if action == "ownership.claimed"]
    assert [len(r["claims"]) for r in records] == [CLAIMS_PER_AUDIT_RECORD, CLAIMS_PER_AUDIT_RECORD, 50]
    assert [c["mrid"] for r in records for c in r["claims"]] == [f"m{i}" for i in range(250)]
    assert {r["producer"] for r in records} == {"p1"}


def test_the_write_check_refuses_and_audits() -> None:
    secret = "classification=SECRET&org=a"
    plan = fold(
        [
            # p2 (org=a, PUBLIC) cannot see a SECRET object: no relabel, no measurement, no delete.
            ev("x", "upsert", 2, producer="p2", label="org=a"),
            ev("x", "measurement", 3, producer="p2"),
            ev("x", "delete", 4, producer="p2"),
            # ... nor label its own object above what it holds, nor widen org=a.
            ev("y", "upsert", 2, producer="p2", label=secret),
            ev("y", "upsert", 3, producer="p2", label="org=b|org=a"),
            # p1 may declassify: allowed, and recorded as a declassification.
            ev("z", "upsert", 2, producer="p1", label="org=b|org=a"),
        ],
        {
            "x": Stored(LIVE, 1, "p2", "ACLineSegment", ("Entity", *LINE_LABELS), label_id(secret)),
            "y": live(1, owner="p2"),
            "z": live(1, owner="p1"),
        },
        ONT,
        WRITER.book,
    )
    reasons = [(r.event.mrid, r.event.version, r.reason_class, r.reason) for r in plan.rejected]
    assert [r[:3] for r in reasons] == [
        ("x", 2, "label"),
        ("x", 3, "label"),
        ("x", 4, "label"),
        ("y", 2, "label"),
        ("y", 3, "label"),
    ]
    assert "current label 'classification=SECRET&org=a'" in reasons[0][3]
    assert "new label 'classification=SECRET&org=a'" in reasons[3][3]
    assert "widens" in reasons[4][3] and "mRID 'y'" in reasons[4][3]
    assert [r["mrid"] for r in plan.upserts] == ["z"] and not plan.deletes and not plan.measurements
    refused = [f for action, f in plan.audits if action == "write.refused"]
    assert [(f["mrid"], f["version"], f["producer"]) for f in refused] == [
        ("x", 2, "p2"),
        ("x", 3, "p2"),
        ("x", 4, "p2"),
        ("y", 2, "p2"),
        ("y", 3, "p2"),
    ]
    [changed] = [f for action, f in plan.audits if action == "label.changed"]
    assert (changed["mrid"], changed["old_label"], changed["new_label"], changed["declassified"]) == (
        "z",
        "org=a",
        "org=b|org=a",
        True,
    )


def test_a_stored_label_the_writer_cannot_read_refuses_the_write() -> None:
    unknown = Stored(LIVE, 1, "p1", "ACLineSegment", ("Entity", *LINE_LABELS), 12345)
    plan = fold([ev("u", "upsert", 2)], {"u": unknown}, ONT)
    [refusal] = plan.rejected
    assert "stored label (id 12345) of mRID 'u' is unknown" in refusal.reason and not plan.upserts


def test_measurement_needs_a_live_node() -> None:
    plan = fold(
        [
            ev("a", "measurement", 1, props={"r": 1.0}),
            ev("s", "measurement", 1),
            ev("b", "measurement", 2, props={"r": 2.0}),
        ],
        {
            "s": Stored(STUBBED, 0, None, "ConductingEquipment", ("Entity", "Stub"), STUB_LABEL_ID),
            "b": live(1),
        },
        ONT,
    )
    assert plan.ignored == 2
    assert [r["mrid"] for r in plan.measurements] == ["b"]
    assert [c.change for c in plan.changes] == ["measurement"]


def test_reference_before_target_makes_a_stub_and_target_later_in_batch_does_not() -> None:
    ref = {"BASE_VOLTAGE": ("BaseVoltage", ["bv1"])}
    plan = fold([ev("a", "upsert", 1, rels=ref)], {}, ONT)
    assert plan.stubs == {"bv1": "BaseVoltage"}
    assert [(c.mrid, c.change) for c in plan.changes] == [("a", "upsert"), ("bv1", "stub")]
    assert plan.rels == [{"s": "a", "v": 1, "r": {"BASE_VOLTAGE": ["bv1"]}}]

    plan = fold([ev("a", "upsert", 1, rels=ref), ev("bv1", "upsert", 1, cls="BaseVoltage")], {}, ONT)
    assert plan.stubs == {}


def test_edges_to_objects_deleted_in_the_batch() -> None:
    ref = {"BASE_VOLTAGE": ("BaseVoltage", ["bv1"])}
    bv = live(1, cls="BaseVoltage")
    # Referenced, then deleted: the edge goes with the target.
    plan = fold(
        [ev("a", "upsert", 1, rels=ref), ev("bv1", "delete", 2, cls="BaseVoltage")],
        {"bv1": bv},
        ONT,
    )
    assert plan.rels == [{"s": "a", "v": 1, "r": {"BASE_VOLTAGE": []}}]
    # Deleted, then referenced: no edge to a tombstone.
    plan = fold(
        [ev("bv1", "delete", 2, cls="BaseVoltage"), ev("a", "upsert", 1, rels=ref)],
        {"bv1": bv},
        ONT,
    )
    assert plan.rels == [{"s": "a", "v": 1, "r": {"BASE_VOLTAGE": []}}]
    # Deleted, recreated, then referenced: the edge stands.
    plan = fold(
        [
            ev("bv1", "delete", 2, cls="BaseVoltage"),
            ev("bv1", "upsert", 3, cls="BaseVoltage"),
            ev("a", "upsert", 1, rels=ref),
        ],
        {"bv1": bv},
        ONT,
    )
    assert plan.rels == [{"s": "a", "v": 1, "r": {"BASE_VOLTAGE": ["bv1"]}}]
    # A stored tombstone is never a target.
    plan = fold(
        [ev("a", "upsert", 1, rels=ref)],
        {"bv1": Stored(DEAD, 2, "p1", "BaseVoltage", ("Entity", "Tombstone"), None)},
        ONT,
    )
    assert plan.rels == [{"s": "a", "v": 1, "r": {"BASE_VOLTAGE": []}}] and not plan.stubs


# ------------------------------------------------------------------------------- sequential model


# The write check's rules for the labels and writers of these tests, written out by hand: which labels
# each writer satisfies, and the one change that widens visibility (org=a to org=b|org=a).
LABEL_TEXT = {label_id(t): t for t in ("org=a", "org=b|org=a")}
SATISFIES = {"p1": {"org=a", "org=b|org=a"}, "p2": {"org=a", "org=b|org=a"}, "p3": set()}
DECLASSIFIES = {"p1": True, "p2": False, "p3": False}


def allowed(e: Accepted, node: Node | None) -> bool:
    current = LABEL_TEXT[node.label] if node is not None and node.status == "live" and node.label else None
    new = e.label_text if e.kind == "upsert" else None
    held = SATISFIES[e.producer]
    if (current is not None and current not in held) or (new is not None and new not in held):
        return False
    return not (current == "org=a" and new == "org=b|org=a" and not DECLASSIFIES[e.producer])


def read_graph(driver: neo4j.Driver, prefix: str) -> tuple[dict[str, Any], set[tuple[str, str, str]]]:
    records, _, _ = driver.execute_query(
        "MATCH (n:Entity) WHERE n.mrid STARTS WITH $p "
        "RETURN n.mrid AS m, labels(n) AS ls, properties(n) AS ps",
        p=prefix,
    )
    nodes = {r["m"]: (set(r["ls"]), r["ps"]) for r in records}
    records, _, _ = driver.execute_query(
        "MATCH (a:Entity)-[x]->(b:Entity) WHERE a.mrid STARTS WITH $p "
        "RETURN a.mrid AS a, type(x) AS t, b.mrid AS b",
        p=prefix,
    )
    return nodes, {(r["a"], r["t"], r["b"]) for r in records}


COMPARED = ("mrid", VERSION, LABEL, OWNER, CLASS, PRODUCER, EVENT_ID, COUNT_KEY)


def comparable(nodes: dict[str, Any], model_props: dict[str, Any]) -> dict[str, Any]:
    """Stored properties limited to ontology keys and the compared bookkeeping."""
    result = {}
    for mrid, (labels, props) in nodes.items():
        kept = {k: v for k, v in props.items() if not k.startswith("_") or k in COMPARED}
        result[mrid] = (labels, {k: v for k, v in kept.items() if v is not None})
    return result


# ------------------------------------------------------------------------------ against Neo4j

MRIDS = ["a", "b", "c", "bv", "t"]
CLASS_OF = {
    "a": "ACLineSegment",
    "b": "ACLineSegment",
    "c": "BaseVoltage",
    "bv": "BaseVoltage",
    "t": "Terminal",
}


@st.composite
def events(draw: Any) -> list[Accepted]:
    out = []
    for i in range(draw(st.integers(1, 25))):
        mrid = draw(st.sampled_from(MRIDS))
        kind = draw(st.sampled_from(["upsert", "upsert", "upsert", "delete", "measurement"]))
        version = draw(st.integers(1, 8))
        cls = CLASS_OF[mrid]
        props: dict[str, Any] = {}
        rels: dict[str, tuple[str, list[str]]] = {}
        if kind != "delete":
            if draw(st.booleans()):
                props["name"] = draw(st.sampled_from([None, "x", "y"]))
            if cls == "ACLineSegment" and draw(st.booleans()):
                props["r"] = draw(st.sampled_from([None, 0.5, 1.5]))
        if kind == "upsert" and cls == "ACLineSegment" and draw(st.booleans()):
            rels["BASE_VOLTAGE"] = ("BaseVoltage", draw(st.sampled_from([[], ["bv"], ["c"], ["zz"]])))
        if kind == "upsert" and cls == "Terminal" and draw(st.booleans()):
            rels["CONDUCTING_EQUIPMENT"] = (
                "ConductingEquipment",
                draw(st.sampled_from([["a"], ["b"], ["yy"]])),
            )
        producer = draw(st.sampled_from(["p1", "p1", "p1", "p2", "p3"]))
        label = draw(st.sampled_from(["org=a", "org=b|org=a"]))
        e = ev(mrid, kind, version, cls, props, rels, producer, label)
        e.event_id = f"{i}"
        out.append(e)
    return out


@pytest.fixture(scope="module")
def loop() -> Any:
    new = asyncio.new_event_loop()
    yield new
    new.close()


@pytest.fixture(scope="module")
def async_driver(settings: Any, neo4j_driver: neo4j.Driver, loop: asyncio.AbstractEventLoop) -> Any:
    ensure_schema(neo4j_driver, settings.neo4j_database)
    driver = make_async_driver(settings)
    yield driver
    loop.run_until_complete(driver.close())


def prefixed(events_: list[Accepted], prefix: str) -> list[Accepted]:
    out = []
    for e in events_:
        rels = {rt: (c, [prefix + t for t in ts]) for rt, (c, ts) in e.rels.items()}
        out.append(
            Accepted(
                prefix + e.mrid,
                e.kind,
                e.version,
                e.cls,
                dict(e.props),
                rels,
                e.label_id,
                e.label_text,
                e.producer,
                e.event_id,
                e.event_time,
                rights=e.rights,
            )
        )
    return out


def scenario(evs: list[Accepted], cuts: list[int]) -> tuple[str, Model, list[list[Accepted]]]:
    """A fresh mRID prefix, the one-event-at-a-time model of ``evs``, and ``evs`` (prefixed) cut into
    batches at ``cuts``."""
    prefix = f"tw{uuid.uuid4().hex[:10]}-"
    model = Model(ONT, allowed)
    for e in evs:
        model.apply(e)
    real = prefixed(evs, prefix)
    bounds = sorted({0, len(real), *[min(c, len(real)) for c in cuts]})
    return prefix, model, [real[lo:hi] for lo, hi in itertools.pairwise(bounds)]


def assert_graph_is_model(neo4j_driver: neo4j.Driver, model: Model, prefix: str) -> None:
    nodes, edges = read_graph(neo4j_driver, prefix)
    assert comparable(nodes, {}) == expected_graph(model.nodes, prefix)
    assert edges == {(prefix + a, t, prefix + b) for a, t, b in model.edges}
    assert_count_keys_listed(neo4j_driver, prefix)


def assert_count_keys_listed(neo4j_driver: neo4j.Driver, prefix: str) -> None:
    """Every count key an object holds is listed, with the class, label and owner it holds (the typed
    pages start from the list: an unlisted key's objects would be missing, a wrong one's misjudged)."""
    records, _, _ = neo4j_driver.execute_query(
        f"MATCH (n:Entity) WHERE n.mrid STARTS WITH $p AND n.{COUNT_KEY} IS NOT NULL "
        f"OPTIONAL MATCH (k:CountKey {{key: n.{COUNT_KEY}}}) "
        f"RETURN n.mrid AS m, [n.{CLASS}, n.{LABEL}, n.{OWNER}] AS held, "
        f"[k.{CLASS}, k.{LABEL}, k.{OWNER}] AS listed",
        p=prefix,
    )
    assert [r for r in records if r["held"] != r["listed"]] == []


# The statements with their first plan pinned (replan=skip, the default) and planned as Neo4j likes
# (HUB_WRITER_REPLAN_SKIP=false) leave the same graph.
@pytest.mark.parametrize(
    "writer", [WRITER, GraphWriter(ONT, replan_skip=False)], ids=["replan-skip", "replanned"]
)
@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(evs=events(), cuts=st.lists(st.integers(0, 25), max_size=4))
def test_batches_in_neo4j_equal_events_applied_one_by_one(
    writer: GraphWriter,
    evs: list[Accepted],
    cuts: list[int],
    async_driver: Any,
    neo4j_driver: neo4j.Driver,
    loop: asyncio.AbstractEventLoop,
    settings: Any,
) -> None:
    prefix, model, batches = scenario(evs, cuts)
    last: dict[str, tuple[str | None, int, int | None]] = {}

    async def run() -> None:
        for batch in batches:
            async with async_driver.session(database=settings.neo4j_database) as session:
                plan = await session.execute_write(writer.apply, batch)
            for c in plan.changes:
                kind = c.change if c.change in ("delete", "stub") else None
                last[c.mrid] = (kind, c.version, c.label_id)

    loop.run_until_complete(run())
    try:
        assert last == expected_last_changes(model.nodes, prefix)
        assert_graph_is_model(neo4j_driver, model, prefix)
        labels, _, _ = neo4j_driver.execute_query(
            "MATCH (s:SecurityLabel) WHERE s.id IN $ids RETURN s.id AS id, s.expr AS e",
            ids=[n.label for n in model.nodes.values() if n.label is not None],
        )
        assert {r["id"] for r in labels} == {n.label for n in model.nodes.values() if n.label is not None}
    finally:
        neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)


def test_security_labels_are_interned_once(
    async_driver: Any, neo4j_driver: neo4j.Driver, loop: asyncio.AbstractEventLoop, settings: Any
) -> None:
    prefix = f"tw{uuid.uuid4().hex[:10]}-"
    text = f"org=t{uuid.uuid4().hex[:6]}"
    batch = [ev(prefix + str(i), "upsert", 1, label=text) for i in range(5)]
    for e in batch:
        e.rights = (WriteRights(Authorizations("PUBLIC", frozenset({text}))),)

    async def run() -> None:
        for _ in range(2):
            async with async_driver.session(database=settings.neo4j_database) as session:
                await session.execute_write(WRITER.apply, batch)

    loop.run_until_complete(run())
    try:
        records, _, _ = neo4j_driver.execute_query(
            "MATCH (s:SecurityLabel {id: $id}) RETURN s.expr AS e", id=label_id(text)
        )
        assert [r["e"] for r in records] == [text]
    finally:
        neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)


def test_replayed_events_change_nothing(
    async_driver: Any, neo4j_driver: neo4j.Driver, loop: asyncio.AbstractEventLoop, settings: Any
) -> None:
    # A measurement ignored because its object did not exist yet must stay ignored when it is redelivered
    # after an older-versioned upsert created the object: versions alone would let it through.
    prefix = f"tw{uuid.uuid4().hex[:10]}-"
    source = f"{prefix}topic#0"
    mrid = prefix + "a"

    def at(e: Accepted, offset: int) -> Accepted:
        e.source, e.offset = source, offset
        return e

    def batch(with_new: bool) -> list[Accepted]:
        out = [
            at(ev(mrid, "measurement", 2, props={"r": 2.0}), 10),
            at(ev(mrid, "upsert", 1, props={"r": 1.0, "x": 1.0}), 11),
        ]
        return [*out, at(ev(mrid, "measurement", 3, props={"x": 3.0}), 12)] if with_new else out

    async def write(events_: list[Accepted]) -> Any:
        async with async_driver.session(database=settings.neo4j_database) as session:
            return await session.execute_write(WRITER.apply, events_)

    try:
        first = loop.run_until_complete(write(batch(False)))
        assert first.ignored == 1 and first.applied["upsert"] == 1 and first.replayed == 0
        again = loop.run_until_complete(write(batch(True)))
        assert again.replayed == 2 and again.ignored == 0 and again.applied == {"measurement": 1}
        assert [(c.mrid, c.change, c.version) for c in again.changes] == [(mrid, "measurement", 3)]
        records, _, _ = neo4j_driver.execute_query(
            cypher("MATCH (n:Entity {mrid: $m}) RETURN n.r AS r, n.x AS x, n.@version AS v"), m=mrid
        )
        assert [(r["r"], r["x"], r["v"]) for r in records] == [(1.0, 3.0, 3)]
        records, _, _ = neo4j_driver.execute_query(
            "MATCH (o:IngestOffset {source: $s}) RETURN o.offset AS o", s=source
        )
        assert [r["o"] for r in records] == [12]
        # An older position never moves the stored one back.
        loop.run_until_complete(write([at(ev(mrid, "measurement", 9, props={"x": 9.0}), 5)]))
        records, _, _ = neo4j_driver.execute_query(
            "MATCH (o:IngestOffset {source: $s}) RETURN o.offset AS o", s=source
        )
        assert [r["o"] for r in records] == [12]
    finally:
        neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)
        neo4j_driver.execute_query("MATCH (o:IngestOffset {source: $s}) DELETE o", s=source)


def test_a_plan_overtaken_by_another_writer_leaves_the_newer_edges_alone(
    async_driver: Any, neo4j_driver: neo4j.Driver, loop: asyncio.AbstractEventLoop, settings: Any
) -> None:
    # A worker that lost its partitions in a rebalance may write a batch folded before the new owner
    # moved the same objects on: its node rows fail the version rule, and its edge rows must too.
    prefix = f"tw{uuid.uuid4().hex[:10]}-"
    a, bv1, bv2, bv3 = (prefix + n for n in ("a", "bv1", "bv2", "bv3"))

    def to(target: str) -> dict[str, tuple[str, list[str]]]:
        return {"BASE_VOLTAGE": ("BaseVoltage", [target])}

    async def apply(events_: list[Accepted]) -> Any:
        async with async_driver.session(database=settings.neo4j_database) as session:
            return await session.execute_write(WRITER.apply, events_)

    async def write(plan: Any) -> None:
        async with async_driver.session(database=settings.neo4j_database) as session:
            await WRITER.write(session, plan)

    def edges() -> list[str]:
        records, _, _ = neo4j_driver.execute_query(
            "MATCH (:Entity {mrid: $m})-[:BASE_VOLTAGE]->(t) RETURN t.mrid AS t", m=a
        )
        return sorted(r["t"] for r in records)

    try:
        stale = WRITER.plan([ev(a, "upsert", 1, rels=to(bv1))], {}, {})
        loop.run_until_complete(apply([ev(a, "upsert", 2, rels=to(bv2))]))
        loop.run_until_complete(write(stale))
        assert edges() == [bv2]
        # Folded while the target was live, written after it was deleted: no edge to the tombstone.
        loop.run_until_complete(apply([ev(bv3, "upsert", 1, cls="BaseVoltage")]))
        stored = {bv3: live(1, cls="BaseVoltage"), a: live(2)}
        late = WRITER.plan([ev(a, "upsert", 3, rels=to(bv3))], stored, {})
        loop.run_until_complete(apply([ev(bv3, "delete", 2, cls="BaseVoltage")]))
        loop.run_until_complete(write(late))
        assert edges() == []
    finally:
        neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)


def test_a_write_checks_each_node_after_taking_its_lock(
    async_driver: Any, neo4j_driver: neo4j.Driver, loop: asyncio.AbstractEventLoop, settings: Any
) -> None:
    """Two writers at once, as in a rebalance: one publishes and deletes an object (its transaction still
    open), the other references it, having seen a stub. The referrer's statement waits for the node's
    lock and must then see the tombstone: before the writer took locks, it had checked "still a stub"
    before waiting and then put its class labels on the tombstone."""
    prefix = f"tw{uuid.uuid4().hex[:10]}-"
    target, referrer, other = prefix + "t", prefix + "r", prefix + "o"
    to_target = {"CONDUCTING_EQUIPMENT": ("ConductingEquipment", [target])}

    async def race() -> None:
        async with async_driver.session(database=settings.neo4j_database) as first:
            await first.execute_write(WRITER.apply, [ev(other, "upsert", 1, cls="Terminal", rels=to_target)])
        stub = Stored(STUBBED, 0, None, "ConductingEquipment", ("Entity", "Stub"), STUB_LABEL_ID)
        deleting = WRITER.plan([ev(target, "upsert", 1), ev(target, "delete", 2)], {target: stub}, {})
        referring = WRITER.plan(
            [ev(referrer, "upsert", 1, cls="Terminal", rels=to_target)], {target: stub}, {}
        )
        assert referring.stubs == {target: "ConductingEquipment"}
        async with (
            async_driver.session(database=settings.neo4j_database) as s1,
            async_driver.session(database=settings.neo4j_database) as s2,
        ):
            tx = await s1.begin_transaction()
            await WRITER.write(tx, deleting)  # holds the target's lock until it commits
            waiting = asyncio.ensure_future(WRITER.write(s2, referring))
            await asyncio.sleep(1.0)
            assert not waiting.done(), "the referrer did not wait for the lock"
            await tx.commit()
            await waiting

    try:
        loop.run_until_complete(race())
        records, _, _ = neo4j_driver.execute_query(
            "MATCH (n:Entity {mrid: $m}) RETURN labels(n) AS labels, n._lock AS lock", m=target
        )
        assert [(sorted(r["labels"]), r["lock"]) for r in records] == [(["Entity", "Tombstone"], None)]
        # And no edge to the tombstone from either referrer.
        records, _, _ = neo4j_driver.execute_query("MATCH (:Entity {mrid: $m})<-[x]-() RETURN x", m=target)
        assert records == []
    finally:
        neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)


def test_labels_a_new_state_does_not_carry_go_and_foreign_ones_stay(
    async_driver: Any, neo4j_driver: neo4j.Driver, loop: asyncio.AbstractEventLoop, settings: Any
) -> None:
    # A stub referenced as ConductingEquipment is published as a BaseVoltage: the stub's class labels go,
    # a label someone else put on the node stays (the writer removes only the ontology's labels and Stub),
    # and a delete then leaves Entity:Tombstone and the foreign label.
    prefix = f"tw{uuid.uuid4().hex[:10]}-"
    target, referrer = prefix + "s", prefix + "r"

    async def apply(events_: list[Accepted]) -> None:
        async with async_driver.session(database=settings.neo4j_database) as session:
            await session.execute_write(WRITER.apply, events_)

    def labels() -> list[str]:
        records, _, _ = neo4j_driver.execute_query(
            "MATCH (n:Entity {mrid: $m}) RETURN labels(n) AS l", m=target
        )
        return sorted(records[0]["l"])

    try:
        refs = {"CONDUCTING_EQUIPMENT": ("ConductingEquipment", [target])}
        loop.run_until_complete(apply([ev(referrer, "upsert", 1, cls="Terminal", rels=refs)]))
        neo4j_driver.execute_query("MATCH (n:Entity {mrid: $m}) SET n:NotOurs", m=target)
        assert labels() == sorted(["Entity", "Stub", "NotOurs", *ONT.neo4j_labels("ConductingEquipment")])
        loop.run_until_complete(apply([ev(target, "upsert", 1, cls="BaseVoltage")]))
        assert labels() == sorted(["Entity", "NotOurs", *ONT.neo4j_labels("BaseVoltage")])
        loop.run_until_complete(apply([ev(target, "delete", 2, cls="BaseVoltage")]))
        assert labels() == ["Entity", "NotOurs", "Tombstone"]
    finally:
        neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)


def same_state(a: Stored, b: Stored) -> bool:
    return (a.status, a.version, a.owner, a.cls, frozenset(a.labels), a.label_id) == (
        b.status,
        b.version,
        b.owner,
        b.cls,
        frozenset(b.labels),
        b.label_id,
    )


# With a state cache as the only writer keeps one (hub.state_cache): small, so that objects also drop out.
@pytest.mark.parametrize("cache_size", [None, 6], ids=["read", "cached"])
@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(evs=events(), cuts=st.lists(st.integers(0, 25), max_size=4))
def test_batches_folded_ahead_equal_events_applied_one_by_one(
    cache_size: int | None,
    evs: list[Accepted],
    cuts: list[int],
    async_driver: Any,
    neo4j_driver: neo4j.Driver,
    loop: asyncio.AbstractEventLoop,
    settings: Any,
) -> None:
    # The worker folds each batch while the one before is still uncommitted (GraphWriter.prepare): the
    # state it reads misses that batch, and the plan's predicted outcome has to fill the gap exactly.
    prefix, model, batches = scenario(evs, cuts)
    predicted_wrong: list[tuple[str, Stored, Stored | None]] = []
    cache = StateCache(cache_size) if cache_size is not None else None

    async def run() -> None:
        db = settings.neo4j_database
        async with async_driver.session(database=db) as reader:
            plan = await WRITER.prepare(reader, batches[0], None, cache)
        for k in range(len(batches)):
            async with async_driver.session(database=db) as session:
                tx = await session.begin_transaction()
                await WRITER.write(tx, plan)
                following = None
                if k + 1 < len(batches):
                    # Read while this batch's transaction is open and uncommitted.
                    async with async_driver.session(database=db) as reader:
                        following = await WRITER.prepare(reader, batches[k + 1], plan, cache)
                await tx.commit()
            if cache is not None:
                cache.remember(plan.after, cache.epoch)
            async with async_driver.session(database=db) as reader:
                stored, _ = await WRITER.read_state(reader, list(plan.after))
            for mrid, predicted in plan.after.items():
                found = stored.get(mrid)
                if found is None or not same_state(predicted, found):
                    predicted_wrong.append((mrid, predicted, found))
            if following is not None:
                plan = following

    loop.run_until_complete(run())
    try:
        assert predicted_wrong == []
        assert_graph_is_model(neo4j_driver, model, prefix)
    finally:
        neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)


# ------------------------------------------------------------------------------------------ plans


class _Profiling:
    """A transaction that runs every statement under ``PROFILE`` and keeps each profile: the plan
    Neo4j executes for the statement's text, the one in its query cache (``replan=skip`` pins it)."""

    def __init__(self, tx: Any) -> None:
        self.tx = tx
        self.profiles: list[dict[str, Any]] = []

    async def run(self, query: str, parameters: Any = None, **kwargs: Any) -> Any:
        return _ProfiledResult(await self.tx.run("PROFILE " + query, parameters, **kwargs), self.profiles)


class _ProfiledResult:
    def __init__(self, result: Any, profiles: list[dict[str, Any]]) -> None:
        self.result = result
        self.profiles = profiles

    async def single(self, strict: bool = False) -> Any:
        record = await self.result.single(strict=strict)
        await self.consume()
        return record

    async def consume(self) -> Any:
        summary = await self.result.consume()
        self.profiles.append(summary.profile)
        return summary


def _operators(profile: dict[str, Any]) -> list[tuple[str, int]]:
    """(operator, db hits) of every operator of a profile."""
    found = [(str(profile["operatorType"]).split("@")[0], int(profile.get("dbHits", 0)))]
    for child in profile.get("children", []):
        found.extend(_operators(child))
    return found


def _mrid_index_size(driver: neo4j.Driver, database: str) -> int:
    """How many entries Neo4j's statistics (its last sample) say the mrid index holds."""
    records, _, _ = driver.execute_query(
        "CALL db.stats.retrieve('GRAPH COUNTS') YIELD data RETURN data.indexes AS indexes", database_=database
    )
    return next(
        int(i["totalSize"])
        for i in records[0]["indexes"]
        if i.get("labels") == ["Entity"] and i.get("properties") == ["mrid"]
    )


def test_statements_planned_on_a_fresh_index_seek_every_node(
    clean_graph: neo4j.Driver, loop: asyncio.AbstractEventLoop, settings: Any
) -> None:
    # A statement planned while the graph holds nodes but the freshly created mrid index's statistics
    # still say it is empty (a new database's first batches: ensure_schema has just made the index, and
    # Neo4j samples it again only some seconds after it has changed) found an edge's target by scanning
    # the whole index: with every estimate at 0 rows, a scan cost the planner no more than a seek.
    # replan=skip then kept that plan while the graph grew (an index scan per edge: a 500-event batch took
    # seconds at 15,000 nodes). Every lookup must be a seek whatever the statistics the statements are
    # planned under, so that a batch's db hits do not grow with the graph. Neo4j 5.26 chose the scan here
    # with a 512 MB page cache (HUB_NEO4J_PAGECACHE=512m, as in the issue) and the seek with the tests'
    # default 1 GB: there, this test guards the hints without the scan to catch.
    database = settings.neo4j_database
    grown = 2000
    driver = make_async_driver(settings)

    async def apply(writer: GraphWriter, batch: list[Accepted]) -> list[dict[str, Any]]:
        async with driver.session(database=database) as session:
            tx = await session.begin_transaction()
            # Stands in for the transaction (the writer only calls its run).
            profiling: Any = _Profiling(tx)
            await writer.apply(profiling, batch)
            await tx.commit()
            return profiling.profiles

    async def attempt(prefix: str) -> list[dict[str, Any]]:
        async with driver.session(database=database) as session:
            grow = [ev(f"{prefix}bv{i}", "upsert", 1, cls="BaseVoltage") for i in range(grown)]
            await session.execute_write(WRITER.apply, grow)
        # The statements are planned now (their text under PROFILE is new to Neo4j), and kept.
        to = {f"{prefix}l{i}": f"{prefix}bv{i * 19 % grown}" for i in range(100)}
        return await apply(
            GraphWriter(ONT),
            [
                ev(m, "upsert", 1, rels={"BASE_VOLTAGE": ("BaseVoltage", [t])}, label="org=b")
                for m, t in to.items()
            ],
        )

    stale = 0
    try:
        # The statistics are sampled again on Neo4j's own schedule: an attempt counts when they still
        # said the index was empty after its last batch (so also while that batch was planned).
        for _ in range(5):
            clean_graph.execute_query("MATCH (n) DETACH DELETE n", database_=database)
            for name in ("entity_mrid", "security_label_id", "ingest_offset_source"):
                clean_graph.execute_query(f"DROP CONSTRAINT {name} IF EXISTS", database_=database)
            for name in ("entity_label", "entity_class"):
                clean_graph.execute_query(f"DROP INDEX {name} IF EXISTS", database_=database)
            ensure_schema(clean_graph, database)
            clean_graph.execute_query("CALL db.clearQueryCaches()", database_=database)
            profiles = loop.run_until_complete(attempt(f"tw{uuid.uuid4().hex[:10]}-"))
            operators = [op for profile in profiles for op in _operators(profile)]
            assert [(name, hits) for name, hits in operators if "Scan" in name] == []
            # 100 lines and their 100 edges: about 30 db hits an object when every node is sought, the
            # graph's size (2,000) an edge when its target is scanned for.
            hits = sum(h for _, h in operators)
            assert hits < 10_000, (hits, sorted(operators, key=lambda op: -op[1])[:5])
            if _mrid_index_size(clean_graph, database) == 0:
                stale += 1
    finally:
        loop.run_until_complete(driver.close())
        clean_graph.execute_query("CALL db.clearQueryCaches()", database_=database)
    assert stale, "Neo4j sampled the new index before every attempt's batches: the case was not produced"
