"""Scenario events in the writer, against the real Neo4j: written as overlay versions of their scenario
(each the state it builds on with its patch applied), through the same write check as live writes plus
the scenario's own (it exists, lists the producer, and carries a label the producer satisfies), and never
touching the live graph."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import neo4j
import pytest

from hub.graph import ensure_schema, make_async_driver
from hub.graph_schema import DELETED, LABEL, OWNER, VERSION
from hub.guard import Guard, LabelDirectory
from hub.labels import Authorizations, LabelCache, label_id
from hub.scenarios import (
    NOT_FOUND,
    ScenarioError,
    ScenarioStore,
    create,
    delete,
    find,
    new_id,
    refused_scenario,
)
from hub.writer import Accepted, GraphWriter
from ontology.loader import load_ontology
from tests.hub.test_writer import ev

pytestmark = pytest.mark.services

WRITER = GraphWriter(load_ontology())


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    new = asyncio.new_event_loop()
    yield new
    new.close()


@pytest.fixture(scope="module")
def async_driver(settings: Any, neo4j_driver: neo4j.Driver, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    ensure_schema(neo4j_driver, settings.neo4j_database)
    driver = make_async_driver(settings)
    yield driver
    loop.run_until_complete(driver.close())


def into(scenario: str, e: Accepted) -> Accepted:
    return replace(e, scenario=scenario)


def test_scenario_events_are_checked_and_kept_apart_from_the_live_graph(
    async_driver: Any, neo4j_driver: neo4j.Driver, loop: asyncio.AbstractEventLoop, settings: Any
) -> None:
    prefix = f"ts{uuid.uuid4().hex[:8]}-"
    a, b, c, d = (prefix + x for x in "abcd")
    plan_name, closed = new_id(), new_id()
    store = ScenarioStore(async_driver, settings.neo4j_database)

    async def write(batch: list[Accepted]) -> Any:
        async with async_driver.session(database=settings.neo4j_database) as session:
            return await session.execute_write(WRITER.apply, batch)

    async def run() -> list[Any]:
        # The live graph: a and c of p1, d of p2.
        await write(
            [
                ev(a, "upsert", 1, props={"name": "a", "r": 1.0}),
                ev(c, "upsert", 1, props={"name": "c"}),
                ev(d, "upsert", 1, props={"name": "d"}, producer="p2"),
            ]
        )
        # Scenarios based on it: one p1 and p2 may publish into, one labelled beyond p2's attributes.
        await store.create(
            {
                "id": plan_name,
                "name": f"{prefix}plan",
                "owner": "o",
                LABEL: label_id("org=a"),
                "producers": ["p1", "p2"],
            },
            "org=a",
        )
        await store.create(
            {
                "id": closed,
                "name": f"{prefix}closed",
                "owner": "o",
                LABEL: label_id("org=b"),
                "producers": ["p2"],
            },
            "org=b",
        )
        # Names are display names: another scenario of the same name is a scenario of its own.
        await store.create(
            {
                "id": new_id(),
                "name": f"{prefix}closed",
                "owner": "x",
                LABEL: label_id("org=a"),
                "producers": [],
            },
            "org=a",
        )
        first = await write(
            [
                into(plan_name, ev(a, "upsert", 5, props={"r": 2.0})),
                into(plan_name, ev(b, "upsert", 5, props={"name": "b"})),
                into(plan_name, ev(c, "delete", 5)),
                into(plan_name, ev(a, "upsert", 4, props={"r": 9.0})),  # stale in the scenario
                into(plan_name, ev(d, "upsert", 5, props={"name": "mine"})),  # d is p2's
                into(plan_name, ev(prefix + "x", "upsert", 5, producer="p2", label="org=b")),  # beyond p2
                into(plan_name, ev(a, "measurement", 6, props={"r": 3.0})),
                into(plan_name, ev(prefix + "y", "upsert", 5, producer="p3", label="org=a")),  # not listed
                into(new_id(), ev(prefix + "z", "upsert", 5)),  # no such scenario
                into(closed, ev(prefix + "w", "upsert", 5, producer="p2")),
                ev(a, "upsert", 2, props={"name": "a2"}),  # a live write in the same batch
            ]
        )
        # A later batch builds on the scenario's own versions, folded ahead and written from a session.
        async with async_driver.session(database=settings.neo4j_database) as session:
            plan = await WRITER.prepare(
                session, [into(plan_name, ev(a, "upsert", 7, props={"name": "a in plan"}))], None
            )
            await WRITER.write(session, plan)
        return [first, plan]

    try:
        first, second = loop.run_until_complete(run())
        reasons = {(r.event.mrid, r.reason_class) for r in first.rejected}
        assert reasons == {
            (d, "ownership"),
            (prefix + "x", "label"),
            (a, "scenario"),
            (prefix + "y", "scenario"),
            (prefix + "z", "scenario"),
            (prefix + "w", "scenario"),
        }, [r.reason for r in first.rejected]
        # Missing, not listed and a label beyond the producer are told alike.
        told = {r.event.mrid: r.reason for r in first.rejected if r.event.mrid != a}
        for mrid in (prefix + "y", prefix + "z", prefix + "w"):
            event = next(r.event for r in first.rejected if r.event.mrid == mrid)
            assert told[mrid] == refused_scenario(event.scenario, event.producer)
        assert first.applied["scenario"] == 3 and first.stale["scenario"] == 1
        assert second.applied["scenario"] == 1 and not second.rejected

        records, _, _ = neo4j_driver.execute_query(
            "MATCH (v:ScenarioVersion) WHERE v.mrid STARTS WITH $p "
            "RETURN v.scenario AS s, v.mrid AS m, properties(v) AS p ORDER BY m, v." + VERSION,
            p=prefix,
        )
        kept = [(r["s"], r["m"], r["p"]) for r in records]
        assert [(s, m, p[VERSION]) for s, m, p in kept] == [
            (plan_name, a, 5),
            (plan_name, a, 7),
            (plan_name, b, 5),
            (plan_name, c, 5),
        ]
        # Whole states: the base's (as the live graph had it when the scenario was made) with the patch.
        assert kept[0][2]["name"] == "a" and kept[0][2]["r"] == 2.0 and kept[0][2][OWNER] == "p1"
        assert kept[1][2]["name"] == "a in plan" and kept[1][2]["r"] == 2.0
        assert kept[2][2]["name"] == "b" and kept[2][2][LABEL] == label_id("org=a")
        assert kept[3][2][DELETED] is True and "name" not in kept[3][2]

        # The live graph only has its own writes.
        live, _, _ = neo4j_driver.execute_query(
            "MATCH (n:Entity) WHERE n.mrid STARTS WITH $p RETURN n.mrid AS m, n.name AS name, n.r AS r, "
            "n:Tombstone AS gone ORDER BY m",
            p=prefix,
        )
        assert [(r["m"], r["name"], r["r"], r["gone"]) for r in live] == [
            (a, "a2", 1.0, False),
            (c, "c", None, False),
            (d, "d", None, False),
        ]
    finally:
        neo4j_driver.execute_query(
            "MATCH (n) WHERE (n:Entity OR n:ObjectVersion OR n:ScenarioVersion) AND n.mrid STARTS WITH $p "
            "DETACH DELETE n",
            p=prefix,
        )
        neo4j_driver.execute_query("MATCH (s:Scenario) WHERE s.name STARTS WITH $p DETACH DELETE s", p=prefix)


def test_a_deleted_scenario_takes_its_versions_with_it(
    async_driver: Any, neo4j_driver: neo4j.Driver, loop: asyncio.AbstractEventLoop, settings: Any
) -> None:
    prefix = f"ts{uuid.uuid4().hex[:8]}-"
    name = new_id()
    store = ScenarioStore(async_driver, settings.neo4j_database)

    async def run() -> None:
        await store.create(
            {
                "id": name,
                "name": f"{prefix}gone",
                "owner": "o",
                LABEL: label_id("org=a"),
                "producers": ["p1"],
            },
            "org=a",
        )
        async with async_driver.session(database=settings.neo4j_database) as session:
            await session.execute_write(WRITER.apply, [into(name, ev(prefix + "n", "upsert", 1))])
        await store.delete(name)

    try:
        loop.run_until_complete(run())
        records, _, _ = neo4j_driver.execute_query(
            "OPTIONAL MATCH (v:ScenarioVersion {scenario: $n}) WITH count(v) AS v "
            "OPTIONAL MATCH (s:Scenario {id: $n}) RETURN v, count(s) AS s",
            n=name,
        )
        assert (records[0]["v"], records[0]["s"]) == (0, 0)
    finally:
        neo4j_driver.execute_query("MATCH (s:Scenario) WHERE s.name STARTS WITH $p DETACH DELETE s", p=prefix)


def test_creating_and_deleting_scenarios_follows_the_owner_and_the_label(
    async_driver: Any, neo4j_driver: neo4j.Driver, loop: asyncio.AbstractEventLoop, settings: Any
) -> None:
    prefix = f"ts{uuid.uuid4().hex[:8]}-"
    db = settings.neo4j_database
    store = ScenarioStore(async_driver, db)
    directory = LabelDirectory(async_driver, db, 60.0)

    def guard(auths: Authorizations) -> Guard:
        return Guard(async_driver, db, directory, auths, 10.0, LabelCache())

    official = Authorizations("OFFICIAL")
    public = Authorizations("PUBLIC")

    async def refused(call: Any) -> str:
        try:
            await call
        except ScenarioError as exc:
            return str(exc)
        raise AssertionError("not refused")

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        name = f"{prefix}plan"
        made = await create(
            store,
            guard(official),
            name=name,
            owner="planner",
            authorizations=official,
            label="classification=OFFICIAL",
            producers=["p1", "p1", "p2"],
            base=None,
        )
        out["made"] = made
        out["seen by public"] = await find(guard(public), made.id)

        async def public_creates(display: str) -> Any:
            return await create(
                store,
                guard(public),
                name=display,
                owner="viewer",
                authorizations=public,
                label="classification=PUBLIC",
                producers=[],
                base=None,
            )

        # The name of a scenario the caller may not see, and a fresh one: the same answer, each created.
        out["same name"] = await public_creates(name)
        out["fresh name"] = await public_creates(f"{prefix}fresh")
        out["beyond"] = await refused(
            create(
                store,
                guard(public),
                name=f"{prefix}x",
                owner="viewer",
                authorizations=public,
                label="classification=OFFICIAL",
                producers=[],
                base=None,
            )
        )
        out["future"] = await refused(
            create(
                store,
                guard(official),
                name=f"{prefix}y",
                owner="planner",
                authorizations=official,
                label="classification=PUBLIC",
                producers=[],
                base=datetime.now(UTC) + timedelta(days=1),
            )
        )
        out["bad name"] = await refused(
            create(
                store,
                guard(official),
                name="  ",
                owner="planner",
                authorizations=official,
                label="classification=PUBLIC",
                producers=[],
                base=None,
            )
        )
        out["hidden delete"] = await refused(delete(store, guard(public), made.id, "viewer"))
        out["missing delete"] = await refused(delete(store, guard(public), new_id(), "viewer"))
        out["name delete"] = await refused(delete(store, guard(public), name, "viewer"))
        out["not owner"] = await refused(delete(store, guard(official), made.id, "someone"))
        await delete(store, guard(official), made.id, "planner")
        out["after delete"] = await find(guard(official), made.id)
        out["other still there"] = await find(guard(public), out["same name"].id)
        return out

    try:
        out = loop.run_until_complete(run())
        made = out["made"]
        assert (made.name, made.owner, made.producers, made.label_id) == (
            f"{prefix}plan",
            "planner",
            ("p1", "p2"),
            label_id("classification=OFFICIAL"),
        )
        assert made.id.startswith("scn-") and len(made.id) == 36
        assert made.created >= made.base
        assert out["seen by public"] is None
        same, fresh = out["same name"], out["fresh name"]
        assert (same.name, same.owner, fresh.name, fresh.owner) == (
            made.name,
            "viewer",
            f"{prefix}fresh",
            "viewer",
        )
        assert len({made.id, same.id, fresh.id}) == 3
        assert "you do not satisfy the label 'classification=OFFICIAL'" in out["beyond"]
        assert out["future"] == "baseTime must not be in the future"
        assert "scenario name must be 1 to" in out["bad name"]
        # A scenario the caller may not see is one that does not exist, in the same words; so is a name.
        assert out["hidden delete"] == out["missing delete"] == out["name delete"] == NOT_FOUND
        assert out["not owner"] == f"only the owner may delete scenario {made.id!r}"
        assert out["after delete"] is None
        assert out["other still there"] == same
    finally:
        neo4j_driver.execute_query("MATCH (s:Scenario) WHERE s.name STARTS WITH $p DETACH DELETE s", p=prefix)
