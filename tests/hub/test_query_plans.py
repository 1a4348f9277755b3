"""The guard never turns an indexed lookup into a scan: the plans of the reader's guarded queries (an object
by mRID, a page of a class, a name search) start from the same index as the same query without the label
filter, and none scans all nodes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from neo4j import AsyncGraphDatabase

from hub.graph import ensure_schema
from hub.guard import GRANTED_PARAM, VISIBLE_PARAM, Guard, LabelDirectory
from hub.labels import Authorizations, LabelCache
from hub.reader import Reader
from ontology.loader import load_ontology

pytestmark = pytest.mark.services

ONT = load_ontology()
# The guard's predicate (hub.guard.visible), replaced by true for the unguarded query.
GUARD_PREDICATE = re.compile(
    r"\((\w+)\._label IN \$" + VISIBLE_PARAM + r" OR \[\1\._owner, \1\._label\] IN \$" + GRANTED_PARAM + r"\)"
)


def operators(plan: Mapping[str, Any]) -> list[str]:
    """Every operator of a plan, its version suffix dropped (``NodeUniqueIndexSeek@neo4j``)."""
    found = [str(plan["operatorType"]).split("@")[0]]
    for child in plan.get("children", []):
        found += operators(child)
    return found


def plan_text(plan: Mapping[str, Any]) -> str:
    return repr(plan)


@dataclass
class ExplainingGuard(Guard):
    """Explains each query instead of running it: with the label filter, and with it replaced by true."""

    plans: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = field(default_factory=list)

    async def read(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        bound = {**(params or {}), VISIBLE_PARAM: [1, 2, 3], GRANTED_PARAM: [["ngt", 4], ["neso", 5]]}
        unguarded = GUARD_PREDICATE.sub("true", cypher)
        assert unguarded != cypher and f"${VISIBLE_PARAM}" not in unguarded
        guarded_plan = await self._explain(cypher, bound)
        unguarded_plan = await self._explain(unguarded, bound)
        self.plans.append((cypher, guarded_plan, unguarded_plan))
        return []

    async def _explain(self, cypher: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        _, summary, _ = await self.driver.execute_query(
            "EXPLAIN " + cypher, dict(params), database_=self.database
        )
        assert summary.plan is not None
        return summary.plan


@pytest.fixture(scope="module")
def explained(settings: Any, neo4j_driver: Any) -> Iterator[dict[str, tuple[str, Any, Any]]]:
    ensure_schema(neo4j_driver, settings.neo4j_database)

    async def run() -> dict[str, tuple[str, Any, Any]]:
        driver = AsyncGraphDatabase.driver(
            settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password)
        )
        try:
            db = settings.neo4j_database
            guard = ExplainingGuard(
                driver, db, LabelDirectory(driver, db, 60.0), Authorizations("PUBLIC"), 10.0, LabelCache()
            )
            reader = Reader(
                guard, ONT, max_page_size=5000, max_depth=2, max_path_length=4, max_subgraph_nodes=10
            )
            out = {}
            await reader.object("some-mrid", fields=frozenset({"name"}))
            out["object"] = guard.plans[-1]
            await reader.nodes_lite(["a", "b"])
            out["objects by mrid"] = guard.plans[-1]
            await reader.objects(class_name="ACLineSegment", first=1000, fields=frozenset({"name", "length"}))
            out["page"] = guard.plans[-1]
            await reader.objects(class_name="ACLineSegment", first=1000, after="bXJpZDph")
            out["page after a cursor"] = guard.plans[-1]
            await reader.search("north sub", 20)
            out["search"] = guard.plans[-1]
            await reader.search("nrth", 20, class_name="Substation", fuzzy=True)
            out["fuzzy search of a class"] = guard.plans[-1]
            await reader.counts(None)
            out["counts"] = guard.plans[-1]
            await reader.counts("Gas")
            out["counts of a domain"] = guard.plans[-1]
            return out
        finally:
            await driver.close()

    yield asyncio.run(run())


@pytest.mark.parametrize("query", ["object", "objects by mrid"])
def test_a_lookup_by_mrid_seeks_the_unique_index(explained: dict[str, Any], query: str) -> None:
    cypher, guarded, unguarded = explained[query]
    ops = operators(guarded)
    assert "NodeUniqueIndexSeek" in ops, (cypher, ops)
    assert "AllNodesScan" not in ops
    assert sorted(set(ops) & LEAVES) == sorted(set(operators(unguarded)) & LEAVES)


# Operators that find the first nodes of a plan (its leaves).
LEAVES = frozenset(
    {
        "AllNodesScan",
        "NodeByLabelScan",
        "NodeIndexScan",
        "NodeIndexSeek",
        "NodeUniqueIndexSeek",
        "NodeIndexSeekByRange",
        "NodeUniqueIndexSeekByRange",
        "ProcedureCall",
        "Argument",
    }
)


@pytest.mark.parametrize("query", ["page", "page after a cursor"])
def test_a_page_of_a_class_starts_from_the_class_and_never_scans_all_nodes(
    explained: dict[str, Any], query: str
) -> None:
    # A page of a class starts from the class's label (Neo4j's label index, the token lookup index), with
    # and without the label filter: the filter is checked on the class's nodes, never by a wider scan.
    cypher, guarded, unguarded = explained[query]
    ops = operators(guarded)
    assert "AllNodesScan" not in ops, (cypher, ops)
    assert "NodeByLabelScan" in ops or "NodeIndexSeek" in ops or "NodeIndexSeekByRange" in ops, ops
    assert sorted(set(ops) & LEAVES) == sorted(set(operators(unguarded)) & LEAVES)


@pytest.mark.parametrize("query", ["search", "fuzzy search of a class"])
def test_a_name_search_uses_the_full_text_index_and_the_unique_index(
    explained: dict[str, Any], query: str
) -> None:
    cypher, guarded, unguarded = explained[query]
    ops = operators(guarded)
    assert "AllNodesScan" not in ops and "NodeByLabelScan" not in ops, (cypher, ops)
    assert "ProcedureCall" in ops and "db.index.fulltext.queryNodes" in plan_text(guarded), ops
    assert "NodeUniqueIndexSeek" in ops, ops  # the exact mRID
    assert sorted(set(ops) & LEAVES) == sorted(set(operators(unguarded)) & LEAVES)


@pytest.mark.parametrize("query", ["counts", "counts of a domain"])
def test_counts_read_the_count_key_index_alone(explained: dict[str, Any], query: str) -> None:
    # The counts group the count keys' index entries and decide visibility per key (hub/count_keys.py):
    # no node's label or owner is read, so the guarded count costs what the unguarded one does.
    cypher, guarded, unguarded = explained[query]
    ops = operators(guarded)
    scans = [leaf for leaf in _leaves(guarded) if str(leaf["operatorType"]).startswith("NodeIndexScan")]
    assert len(scans) == 1 and "_count_key" in plan_text(scans[0]["args"]), (cypher, ops)
    assert "AllNodesScan" not in ops and "NodeByLabelScan" not in ops, ops
    assert "n._label" not in plan_text(guarded) and "n._owner" not in plan_text(guarded), plan_text(guarded)
    assert sorted(set(ops) & LEAVES) == sorted(set(operators(unguarded)) & LEAVES)


def _leaves(plan: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    children = plan.get("children", [])
    return [plan] if not children else [leaf for child in children for leaf in _leaves(child)]
