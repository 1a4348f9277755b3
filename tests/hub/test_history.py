"""Kept history at the writer: batches of upserts, deletes, re-creations and stale events, cut anywhere,
leave in Neo4j exactly the versions the reference model (tests/history_model.py) keeps, each a whole
state, beside a current graph the history does not change."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import neo4j
import pytest
from history_model import Step, versions

from hub.graph import ensure_schema, make_async_driver
from hub.graph_schema import (
    CLASS,
    DELETED,
    LABEL,
    OWNER,
    PRODUCER,
    RECORDED,
    REF_TARGETS,
    REF_TYPES,
    VALID_FROM,
    VERSION,
    cypher,
)
from hub.guard import Guard, LabelDirectory
from hub.history import REFERRERS, History
from hub.labels import Authorizations, LabelCache, label_id
from hub.state_cache import StateCache
from hub.write_policy import WriteRights
from hub.writer import Accepted, GraphWriter
from ontology.loader import load_ontology

pytestmark = pytest.mark.services

ONT = load_ontology()
T0 = datetime(2025, 1, 1, tzinfo=UTC)
RIGHTS = (WriteRights(Authorizations("SECRET", frozenset({"org=a", "org=b"})), declassify=True),)
LABELS = ["org=a", "org=b", "classification=PUBLIC"]


def _rel_key() -> tuple[str, str]:
    for assoc in ONT.associations_of("ACLineSegment").values():
        if assoc.target == "BaseVoltage" and not assoc.many:
            return assoc.rel_type, assoc.target
    raise AssertionError("the ontology has no ACLineSegment -> BaseVoltage association")


def stream(prefix: str, seed: int, objects: int = 6, events: int = 80) -> list[Step]:
    """Upserts (patches, removals, relabels, references), deletes, re-creations and stale events."""
    rng = random.Random(seed)
    rel_type, _ = _rel_key()
    version = {f"{prefix}o{i}": 0 for i in range(objects)}
    out: list[Step] = []
    for n in range(events):
        mrid = rng.choice(list(version))
        roll = rng.random()
        if roll < 0.1 and version[mrid] > 1:
            v = rng.randint(1, version[mrid])  # stale: not newer than what was applied
        else:
            v = version[mrid] = version[mrid] + rng.randint(1, 3)
        kind = "delete" if roll > 0.8 else "upsert"
        props: dict[str, Any] = {}
        rels: dict[str, list[str]] = {}
        if kind == "upsert":
            if rng.random() < 0.7:
                props["name"] = f"{mrid} e{n}"
            if rng.random() < 0.5:
                props["r"] = None if rng.random() < 0.3 else round(rng.uniform(0, 5), 3)
            if rng.random() < 0.3:
                rels[rel_type] = [f"{prefix}bv{rng.randint(0, 2)}"]
        out.append(
            Step(
                mrid,
                kind,
                v,
                "ACLineSegment",
                T0 + timedelta(minutes=rng.randint(0, 500)),
                rng.choice(LABELS),
                props,
                rels,
            )
        )
    return out


def accepted(s: Step) -> Accepted:
    target = _rel_key()[1]
    return Accepted(
        s.mrid,
        s.kind,
        s.version,
        s.cls,
        dict(s.props),
        {t: (target, list(m)) for t, m in s.rels.items()},
        label_id(s.label) if s.label else None,
        s.label,
        "p1",
        f"{s.mrid}-{s.kind}-{s.version}",
        s.time,
        rights=RIGHTS,
    )


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    new = asyncio.new_event_loop()
    yield new
    new.close()


@pytest.fixture(scope="module")
def async_driver(settings: Any, neo4j_driver: neo4j.Driver, loop: asyncio.AbstractEventLoop) -> Any:
    ensure_schema(neo4j_driver, settings.neo4j_database)
    driver = make_async_driver(settings)
    yield driver
    loop.run_until_complete(driver.close())


def _remove(driver: neo4j.Driver, prefix: str) -> None:
    """A test's objects, their versions and their reference index entries."""
    driver.execute_query(
        "MATCH (n) WHERE (n:Entity OR n:ObjectVersion) AND n.mrid STARTS WITH $p "
        "OR n:VersionReference AND n.source STARTS WITH $p DETACH DELETE n",
        p=prefix,
    )


def stored_versions(driver: neo4j.Driver, prefix: str) -> dict[str, list[dict[str, Any]]]:
    records, _, _ = driver.execute_query(
        cypher(
            "MATCH (v:ObjectVersion) WHERE v.mrid STARTS WITH $p "
            "RETURN v {.*} AS v ORDER BY v.mrid, v.@version"
        ),
        p=prefix,
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["v"]["mrid"], []).append(r["v"])
    return out


@pytest.mark.parametrize(
    ("seed", "folded"), [(1, "read"), (2, "read"), (3, "read"), (4, "read"), (5, "ahead"), (6, "ahead")]
)
def test_kept_versions_equal_the_model_however_the_stream_is_batched(
    seed: int,
    folded: str,
    async_driver: Any,
    neo4j_driver: neo4j.Driver,
    loop: asyncio.AbstractEventLoop,
    settings: Any,
) -> None:
    # "read": each batch read and folded in its transaction (versions built on the stored ones);
    # "ahead": folded as the worker folds, ahead of the batch before's commit and through the state
    # cache, so versions are built in the fold on the versions it wrote before.
    prefix = f"th{uuid.uuid4().hex[:8]}-"
    steps = stream(prefix, seed)
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(steps)), 7))
    batches = [steps[a:b] for a, b in zip([0, *cuts], [*cuts, len(steps)], strict=True)]
    writer = GraphWriter(ONT)

    async def run() -> None:
        for batch in batches:
            async with async_driver.session(database=settings.neo4j_database) as session:
                await session.execute_write(writer.apply, [accepted(s) for s in batch])

    async def run_ahead() -> None:
        db = settings.neo4j_database
        cache = StateCache(100)
        events = [[accepted(s) for s in batch] for batch in batches]
        async with async_driver.session(database=db) as reader:
            plan = await writer.prepare(reader, events[0], None, cache)
        for k in range(len(events)):
            async with async_driver.session(database=db) as session:
                tx = await session.begin_transaction()
                await writer.write(tx, plan)
                following = None
                if k + 1 < len(events):
                    async with async_driver.session(database=db) as reader:
                        following = await writer.prepare(reader, events[k + 1], plan, cache)
                await tx.commit()
            cache.remember(plan.after, cache.epoch)
            if following is not None:
                plan = following
        # Built in the fold, not read back: the state cache knew the objects' latest versions.
        assert any(s.kept is not None for s in plan.after.values())

    try:
        loop.run_until_complete(run() if folded == "read" else run_ahead())
        model = versions(steps)
        stored = stored_versions(neo4j_driver, prefix)
        assert set(stored) == {m for m, kept in model.items() if kept}
        for mrid, kept in model.items():
            got = stored.get(mrid, [])
            assert [v[VERSION] for v in got] == [v.version for v in kept], mrid
            for g, want in zip(got, kept, strict=True):
                assert g[DELETED] is want.deleted
                assert g[CLASS] == want.cls
                assert g.get(LABEL) == (label_id(want.label) if want.label else None)
                # The product the version belongs to, as the guard's grant predicate reads it.
                assert g[OWNER] == g[PRODUCER] == "p1", (mrid, g[VERSION])
                assert g[VALID_FROM] == int(want.valid_from.timestamp() * 1000)
                attrs = {k: v for k, v in g.items() if not k.startswith("_") and k != "mrid"}
                assert attrs == want.props, (mrid, g[VERSION])
                refs: dict[str, list[str]] = {}
                for t, m in zip(g[REF_TYPES], g[REF_TARGETS], strict=True):
                    refs.setdefault(t, []).append(m)
                assert refs == want.refs, (mrid, g[VERSION])
        # Every kept version's references are in the reference index with that version's label and
        # owner, though only versions that state references or change the label write entries.
        records, _, _ = neo4j_driver.execute_query(
            cypher(
                "MATCH (x:VersionReference) WHERE x.source STARTS WITH $p "
                "RETURN x.source AS s, x.target AS t, x.@label AS l, x.@owner AS o"
            ),
            p=prefix,
        )
        index = {(r["s"], r["t"], r["l"], r["o"]) for r in records}
        needed = {
            (mrid, t, g[LABEL], g[OWNER])
            for mrid, got in stored.items()
            for g in got
            if not g[DELETED]
            for t in g[REF_TARGETS]
        }
        assert needed <= index
        assert needed, "the stream states references"
        # The current graph is the highest version of each object.
        records, _, _ = neo4j_driver.execute_query(
            cypher(
                "MATCH (n:Entity) WHERE n.mrid STARTS WITH $p AND NOT n:Stub "
                "RETURN n.mrid AS m, n.@version AS v"
            ),
            p=prefix,
        )
        assert {r["m"]: r["v"] for r in records} == {m: kept[-1].version for m, kept in model.items() if kept}
    finally:
        _remove(neo4j_driver, prefix)


def test_history_off_keeps_no_versions(
    async_driver: Any, neo4j_driver: neo4j.Driver, loop: asyncio.AbstractEventLoop, settings: Any
) -> None:
    prefix = f"th{uuid.uuid4().hex[:8]}-"
    writer = GraphWriter(ONT, history=False)

    async def run() -> None:
        async with async_driver.session(database=settings.neo4j_database) as session:
            await session.execute_write(writer.apply, [accepted(s) for s in stream(prefix, 9, events=10)])

    try:
        loop.run_until_complete(run())
        assert stored_versions(neo4j_driver, prefix) == {}
        records, _, _ = neo4j_driver.execute_query(
            "MATCH (n:Entity) WHERE n.mrid STARTS WITH $p RETURN count(n) AS c", p=prefix
        )
        assert records[0]["c"] > 0
    finally:
        _remove(neo4j_driver, prefix)


def test_versions_kept_as_datetimes_are_converted_by_the_schema_step_and_read_alike(
    async_driver: Any, neo4j_driver: neo4j.Driver, loop: asyncio.AbstractEventLoop, settings: Any
) -> None:
    """An older hub kept valid-from and recorded times as datetimes: the schema step turns them into the
    epoch milliseconds the writer keeps now, and the readers give the same times either way."""
    prefix = f"th{uuid.uuid4().hex[:8]}-"
    db = settings.neo4j_database
    writer = GraphWriter(ONT, history=True)
    caller = Guard(
        async_driver,
        db,
        LabelDirectory(async_driver, db, 60.0),
        Authorizations("SECRET", frozenset({"org=a", "org=b"})),
        10.0,
        LabelCache(),
    )
    history = History(caller, ONT, max_page_size=1000)

    async def write() -> None:
        async with async_driver.session(database=db) as session:
            await session.execute_write(writer.apply, [accepted(s) for s in stream(prefix, 11, events=30)])

    async def read() -> dict[str, list[tuple[int, datetime, datetime]]]:
        out = {}
        for mrid in stored_versions(neo4j_driver, prefix):
            got = await history.versions(mrid)
            out[mrid] = [(v[VERSION], v[VALID_FROM], v[RECORDED]) for v in got]
        return out

    try:
        loop.run_until_complete(write())
        kept = stored_versions(neo4j_driver, prefix)
        millis = {m: [(v[VALID_FROM], v[RECORDED]) for v in vs] for m, vs in kept.items()}
        assert all(isinstance(t, int) for vs in millis.values() for pair in vs for t in pair)
        before = loop.run_until_complete(read())
        assert sum(len(v) for v in before.values()) > 0
        assert all(isinstance(t, datetime) for vs in before.values() for v in vs for t in v[1:])

        # The same versions as an older hub kept them, and the schema step run again.
        neo4j_driver.execute_query(
            cypher(
                "MATCH (v:ObjectVersion) WHERE v.mrid STARTS WITH $p "
                "SET v.@valid_from = datetime({epochMillis: v.@valid_from}), "
                "v.@recorded = datetime({epochMillis: v.@recorded})"
            ),
            p=prefix,
        )
        neo4j_driver.execute_query("MATCH (m:SchemaMigration) DELETE m")
        ensure_schema(neo4j_driver, db)

        converted = stored_versions(neo4j_driver, prefix)
        assert {m: [(v[VALID_FROM], v[RECORDED]) for v in vs] for m, vs in converted.items()} == millis
        assert loop.run_until_complete(read()) == before
    finally:
        _remove(neo4j_driver, prefix)


def test_walks_in_the_past_find_referrers_through_the_reference_index(
    async_driver: Any, neo4j_driver: neo4j.Driver, loop: asyncio.AbstractEventLoop, settings: Any
) -> None:
    """A line refers to a base voltage from its first version, labelled for org b; a patch that states no
    reference relabels it for org a, then further patches change its name only. Org a's walk from the
    base voltage finds the line as of the relabelling on, not before; the name patches add no entries to
    the reference index; the index, emptied, is rebuilt by the schema step; the lookup seeks its index."""
    prefix = f"th{uuid.uuid4().hex[:8]}-"
    db = settings.neo4j_database
    rel_type, target_cls = _rel_key()
    line, bv = f"{prefix}line", f"{prefix}bv"
    steps = [
        Step(bv, "upsert", 1, target_cls, T0, "classification=PUBLIC", {"name": "bv"}, {}),
        Step(line, "upsert", 1, "ACLineSegment", T0, "org=b", {"name": "l1"}, {rel_type: [bv]}),
        Step(line, "upsert", 2, "ACLineSegment", T0 + timedelta(hours=1), "org=a", {"name": "l2"}, {}),
        *(
            Step(line, "upsert", v, "ACLineSegment", T0 + timedelta(hours=v), "org=a", {"name": f"l{v}"}, {})
            for v in range(3, 6)
        ),
    ]
    writer = GraphWriter(ONT, history=True)
    org_a = Guard(
        async_driver,
        db,
        LabelDirectory(async_driver, db, 0.0),
        Authorizations("OFFICIAL", frozenset({"org=a"})),
        10.0,
        LabelCache(),
    )
    history = History(org_a, ONT, max_page_size=1000)

    async def write(batch: list[Step]) -> None:
        async with async_driver.session(database=db) as session:
            await session.execute_write(writer.apply, [accepted(s) for s in batch])

    async def around(at: datetime) -> set[str]:
        graph = await history.neighbourhood_at(bv, 1, None, at, None, max_depth=3, max_nodes=100)
        return set(graph.nodes)

    def entries() -> list[tuple[str, int]]:
        records, _, _ = neo4j_driver.execute_query(
            cypher("MATCH (x:VersionReference {source: $s}) RETURN x.target AS t, x.@label AS l ORDER BY l"),
            s=line,
        )
        return sorted((r["t"], r["l"]) for r in records)

    try:
        for step in steps:  # one batch each: every version after the first built on a stored one
            loop.run_until_complete(write([step]))
        assert entries() == sorted([(bv, label_id("org=b")), (bv, label_id("org=a"))])
        assert loop.run_until_complete(around(T0 + timedelta(minutes=30))) == {bv}
        assert loop.run_until_complete(around(T0 + timedelta(hours=1))) == {bv, line}
        assert loop.run_until_complete(around(T0 + timedelta(hours=9))) == {bv, line}

        neo4j_driver.execute_query("MATCH (x:VersionReference {source: $s}) DELETE x", s=line)
        assert loop.run_until_complete(around(T0 + timedelta(hours=9))) == {bv}
        neo4j_driver.execute_query("MATCH (m:SchemaMigration) DELETE m")
        ensure_schema(neo4j_driver, db)
        assert loop.run_until_complete(around(T0 + timedelta(hours=9))) == {bv, line}

        summary = neo4j_driver.execute_query(
            "EXPLAIN " + REFERRERS, frontier=[bv], visible=[], granted=[], database_=db
        ).summary
        assert "NodeIndexSeek" in str(summary.plan)
    finally:
        _remove(neo4j_driver, prefix)
