"""Database hits of the writer's statement for one batch, with and without kept history.

``python -m bench.history_profile --objects 500`` writes ``objects`` new lines (four attributes and a
reference each) in one batch, then updates them all (one attribute each) in a second batch, each under
``PROFILE``, once with history off and once on, and prints the total database hits of each. The second
batch is folded the way the worker folds it: with the state the first batch left known (the state cache),
and, for comparison, read from the graph (a cold cache). Objects are removed afterwards. With
``--rounds R`` it then times the two batches (no ``PROFILE``, warm cache) R times, off and on alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import uuid
from datetime import UTC, datetime
from typing import Any

import neo4j

from hub.graph import ensure_schema, make_async_driver
from hub.graph_schema import cypher
from hub.labels import Authorizations, label_id
from hub.settings import Settings
from hub.state_cache import StateCache
from hub.write_policy import WriteRights
from hub.writer import REPLAN_SKIP, Accepted, GraphWriter, Plan
from ontology.loader import load_ontology

RIGHTS = (WriteRights(Authorizations("SECRET", frozenset({"org=a"})), declassify=True),)


def _tree(plan: Any, depth: int = 0) -> None:
    # HUB_PROFILE_TREE=1 prints each operator's database hits.
    if os.environ.get("HUB_PROFILE_TREE"):
        print(
            "  " * depth,
            plan["operatorType"],
            plan.get("dbHits"),
            plan.get("args", {}).get("Details", "")[:80],
        )
        for c in plan.get("children", []):
            _tree(c, depth + 1)


def _hits(plan: Any) -> int:
    return int(plan.get("dbHits", 0)) + sum(_hits(c) for c in plan.get("children", []))


def _rel(ont: Any) -> tuple[str, str]:
    for assoc in ont.associations_of("ACLineSegment").values():
        if assoc.target == "BaseVoltage" and not assoc.many:
            return assoc.rel_type, assoc.target
    raise SystemExit("the ontology has no ACLineSegment -> BaseVoltage association")


def _event(
    mrid: str, version: int, props: dict[str, Any], rels: dict[str, tuple[str, list[str]]]
) -> Accepted:
    return Accepted(
        mrid, "upsert", version, "ACLineSegment", props, rels, label_id("org=a"), "org=a", "p1",
        f"{mrid}-{version}", datetime.now(UTC), rights=RIGHTS,
    )  # fmt: skip


class _Profiled:
    """Runs the writer's statement (as :meth:`GraphWriter.write` sends it) under ``PROFILE``."""

    def __init__(self, session: neo4j.AsyncSession) -> None:
        self.session = session
        self.hits = 0

    async def run(self, query: str, params: dict[str, Any]) -> neo4j.AsyncResult:
        result = await self.session.run("PROFILE " + query.removeprefix(REPLAN_SKIP), params)
        summary = await result.consume()
        self.hits = _hits(summary.profile or {})
        _tree(summary.profile or {})
        return result


async def _profile(session: neo4j.AsyncSession, writer: GraphWriter, plan: Plan) -> int:
    profiled = _Profiled(session)
    await writer.write(profiled, plan)  # type: ignore[arg-type]
    return profiled.hits


def _batches(prefix: str, objects: int, rel: tuple[str, str]) -> tuple[list[Accepted], list[Accepted]]:
    """``objects`` new lines, and an update of one attribute of each."""
    rel_type, target = rel
    create = [
        _event(f"{prefix}{i}", 1, {"name": f"line {i}", "r": 0.1, "x": 0.2, "length": 1.0},
               {rel_type: (target, [f"{prefix}bv{i % 5}"])})
        for i in range(objects)
    ]  # fmt: skip
    return create, [_event(f"{prefix}{i}", 2, {"r": 0.3}, {}) for i in range(objects)]


async def _remove(session: neo4j.AsyncSession, prefix: str) -> None:
    await session.run(
        "MATCH (n) WHERE (n:Entity OR n:ObjectVersion) AND n.mrid STARTS WITH $p DETACH DELETE n", p=prefix
    )


async def _timed(driver: neo4j.AsyncDriver, database: str, ont: Any, objects: int, rounds: int) -> None:
    """The statement's time in the database (as it reports it) per batch, history off and on alternating
    within each round (a busy machine weighs on both alike); medians over the rounds."""
    times: dict[tuple[bool, str], list[float]] = {}
    rel = _rel(ont)
    for _ in range(rounds):
        for history in (False, True):
            prefix = f"hp{uuid.uuid4().hex[:8]}-"
            writer = GraphWriter(ont, history=history)
            cache = StateCache(objects * 4)
            create, update = _batches(prefix, objects, rel)
            async with driver.session(database=database) as session:
                for name, events in (("create", create), ("update", update)):
                    plan = await writer.prepare(session, events, None, cache)
                    await writer.write(session, plan)
                    cache.remember(plan.after, cache.epoch)
                    times.setdefault((history, name), []).append(plan.db_seconds)
                await _remove(session, prefix)
    for (history, name), seconds in sorted(times.items()):
        print(
            f"history={'on' if history else 'off'} {name}: {statistics.median(seconds) * 1000:.0f} ms "
            f"a batch in the database (median of {len(seconds)})"
        )


async def main(objects: int, rounds: int) -> None:
    settings = Settings()
    ont = load_ontology()
    sync = neo4j.GraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password))
    ensure_schema(sync, settings.neo4j_database)
    driver = make_async_driver(settings)
    try:
        for history in (False, True):
            prefix = f"hp{uuid.uuid4().hex[:8]}-"
            writer = GraphWriter(ont, history=history, replan_skip=False)
            cache = StateCache(objects * 4)
            create, update = _batches(prefix, objects, _rel(ont))
            async with driver.session(database=settings.neo4j_database) as session:
                plan = await writer.prepare(session, create, None, cache)
                created = await _profile(session, writer, plan)
                cache.remember(plan.after, cache.epoch)
                warm = await writer.prepare(session, update, None, cache)
                cold = await writer.prepare(session, update, None, None)
                updated = await _profile(session, writer, warm)
                # The same update again would be stale: back to version 1, to profile the cold plan.
                await session.run(
                    cypher("MATCH (v:ObjectVersion) WHERE v.mrid STARTS WITH $p AND v.@version = 2 DELETE v"),
                    p=prefix,
                )
                await session.run(
                    cypher("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p SET n.@version = 1"), p=prefix
                )
                updated_cold = await _profile(session, writer, cold)
                await _remove(session, prefix)
            print(
                f"history={'on' if history else 'off'}: create {created} db hits, update (state known) "
                f"{updated}, update (state read) {updated_cold}"
            )
        if rounds:
            # Warm: the statements planned once before timing.
            await _timed(driver, settings.neo4j_database, ont, objects, 1)
            await _timed(driver, settings.neo4j_database, ont, objects, rounds)
    finally:
        await driver.close()
        sync.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=0, help="also time the statement over this many rounds")
    args = parser.parse_args()
    asyncio.run(main(args.objects, args.rounds))
