"""The guarded Cypher of the typed queries uses the indexes the hub keeps: a look-up by mRID, a page filtered
by mRIDs or by name, their counts and aggregates start from an index seek, never from a scan of a label or
of all nodes, with the guard's label filter in place (checked on the planner's EXPLAIN plans)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from hub.aggregates import aggregate_query
from hub.filters import FilterCompiler, FilterLimits
from hub.graph import ensure_schema
from hub.guard import Guard
from hub.labels import intern
from hub.ordering import sort_keys
from hub.reader import Reader
from hub.typed_pages import Query, match, page_query
from ontology.loader import load_ontology

pytestmark = pytest.mark.services

ONT = load_ontology()
SCANS = ("NodeByLabelScan", "AllNodesScan", "UnionNodeByLabelsScan", "IntersectionNodeByLabelsScan")


def _links() -> dict[str, dict[str, Any]]:
    """The association fields per class, as the API's object types show them."""
    from hubql.types import build_types

    return build_types(ONT).links


READER = Reader(
    cast(Guard, None),  # only builds Cypher here; nothing is read through it
    ONT,
    max_page_size=5000,
    max_depth=4,
    max_path_length=16,
    max_subgraph_nodes=5000,
)
COMPILER = FilterCompiler(ONT, _links(), FilterLimits(max_depth=3, max_terms=50, max_list=5000))
VISIBLE = sorted({intern("classification=PUBLIC")[0], intern("org=ngt")[0]})


def _operators(plan: Any) -> list[tuple[str, str]]:
    args = plan.get("args", {}) if isinstance(plan, dict) else {}
    found = [(str(plan["operatorType"]).split("@")[0], str(args.get("Details", "")))]
    for child in plan.get("children", []):
        found += _operators(child)
    return found


def _plan(driver: Any, database: str, text: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    assert "$visible" in text  # the guard's filter is part of what is planned
    _, summary, _ = driver.execute_query(
        "EXPLAIN " + text, {**params, "visible": VISIBLE}, database_=database
    )
    return _operators(summary.plan)


@pytest.fixture(scope="module")
def indexed(neo4j_driver: Any, settings: Any) -> str:
    ensure_schema(neo4j_driver, settings.neo4j_database)
    neo4j_driver.execute_query("CALL db.awaitIndexes(300)", database_=settings.neo4j_database)
    return str(settings.neo4j_database)


def _seeks(ops: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(op, details) for op, details in ops if "IndexSeek" in op]


def test_lookup_by_mrid_seeks_the_unique_index(neo4j_driver: Any, indexed: str) -> None:
    query = Query("ACLineSegment", {"mrid": {"eq": "some-line"}})
    text, params = page_query(READER, COMPILER, query, 10, None)
    ops = _plan(neo4j_driver, indexed, text, params)
    assert any(op == "NodeUniqueIndexSeek" and "mrid" in d for op, d in ops), ops
    assert not [op for op, _ in ops if op in SCANS], ops


def test_filtered_sorted_page_count_and_aggregate_seek_an_index(neo4j_driver: Any, indexed: str) -> None:
    where = {
        "mrid": {"in": ["a", "b", "c"]},
        "maxOperatingP": {"gt": 100.0},
        "fossilFuels": {"some": {"fossilFuelType": {"eq": "gas"}}},
    }
    query = Query(
        "ThermalGeneratingUnit", where, sort_keys(ONT, "ThermalGeneratingUnit", [("maxOperatingP", True)])
    )
    page_text, page_params = page_query(READER, COMPILER, query, 100, None)
    # The page with its total count: one match, which seeks, then counted and paged.
    total_text, total_params = page_query(READER, COMPILER, query, 100, None, total=True)
    count_text, count_params = match(READER, COMPILER, query)
    agg_text, agg_params, _ = aggregate_query(
        READER, COMPILER, query, {"sum": ["maxOperatingP"]}, "genControlSource"
    )
    for text, params in (
        (page_text, page_params),
        (total_text, total_params),
        (count_text + " RETURN count(n) AS count", count_params),
        (agg_text, agg_params),
    ):
        ops = _plan(neo4j_driver, indexed, text, params)
        assert any("mrid" in d for _, d in _seeks(ops)), ops
        assert not [op for op, _ in ops if op in SCANS], ops


def test_name_prefix_page_seeks_the_name_index(neo4j_driver: Any, indexed: str) -> None:
    query = Query("Substation", {"name": {"startsWith": "North"}})
    text, params = page_query(READER, COMPILER, query, 100, None)
    ops = _plan(neo4j_driver, indexed, text, params)
    assert any("name" in d for _, d in _seeks(ops)), ops
    assert not [op for op, _ in ops if op in SCANS], ops


def test_unfiltered_page_count_and_aggregate_seek_their_objects_by_the_visible_count_keys(
    neo4j_driver: Any, indexed: str
) -> None:
    # Nothing pins an index down: the query starts from the count keys of the class (hub/count_keys.py),
    # filtered by the guard, and seeks their objects in the keys' index; the class's objects are never
    # scanned, and their labels and owners are not read (the guard's filter is on the keys).
    query = Query(
        "ACLineSegment", {"length": {"gte": 20.0}}, sort_keys(ONT, "ACLineSegment", [("length", True)])
    )
    total_text, total_params = page_query(READER, COMPILER, query, 100, None, total=True)
    agg_text, agg_params, _ = aggregate_query(READER, COMPILER, query, {"sum": ["length"]}, None)
    for text, params in ((total_text, total_params), (agg_text, agg_params)):
        ops = _plan(neo4j_driver, indexed, text, params)
        assert any("_count_key" in d for _, d in _seeks(ops)), ops
        assert [(op, d) for op, d in ops if op in SCANS and "CountKey" not in d] == [], ops
        assert "n._label" not in text and "n._owner" not in text, text
