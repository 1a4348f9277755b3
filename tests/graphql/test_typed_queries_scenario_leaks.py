"""Property-based leak test of the typed queries in a scenario: random filters, orders and aggregates over one
seeded scenario, as two callers of different clearances, each answer against an oracle computed in Python
over only the states that caller may see there.

The base is units and the fuels that feed them at four labels (one hidden from both callers), kept as
versions beside the live graph; the scenario relabels some (also from a label a caller sees to one it does
not, and back), changes some attributes, points some fuels at other units, deletes some and adds others.
Each object is its scenario version if it has one, else its base version, judged by that version's own
label only: an object the scenario moves above a caller's clearance is absent for it, whatever its base
version's label, and one it moves below is present; a fuel relates to a unit when its state there names the
unit and both are visible there. Every page of a random order (filters over the units' own fields, or
with relationship filters through the fuels, nested two deep) is read with a random page size through the
cursors and must give the oracle's order; totals and aggregates (per group too, also grouped by the type
of the fuels each caller may see) must be the oracle's.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from graphkit import Api, Obj, Rel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.labels import intern
from tests.graphql.test_typed_queries_leaks import (
    CAPACITIES,
    CONTROLS,
    FUEL,
    FUELS,
    HOW,
    LABELS,
    NAMES,
    RELATED_GROUP,
    UNIT,
    Oracle,
    _ask,
    _combine,
    _fuel_rel,
    _same_summary,
    leaves,
    orders,
    wheres,
)

pytestmark = pytest.mark.services

PAGE = """query($w: ThermalGeneratingUnitWhere, $o: [ThermalGeneratingUnitSort!], $first: Int,
            $after: String, $s: String) {
  thermalGeneratingUnits(where: $w, orderBy: $o, first: $first, after: $after, scenario: $s) {
    totalCount pageInfo { hasNextPage endCursor } nodes { mrid name label maxOperatingP } } }"""
AGG = """query($w: ThermalGeneratingUnitWhere, $g: ThermalGeneratingUnitField, $r: String, $s: String) {
  thermalGeneratingUnitAggregate(where: $w, groupBy: $g, groupByRelated: $r, scenario: $s) {
    count min { maxOperatingP } max { maxOperatingP } avg { maxOperatingP } sum { maxOperatingP }
    groups { key count min { maxOperatingP } max { maxOperatingP } avg { maxOperatingP }
             sum { maxOperatingP } }
  } }"""
CREATE = """mutation($n: String!) {
  createScenario(name: $n, label: "classification=PUBLIC", producers: []) { id } }"""
ATTRIBUTES = ("name", "maxOperatingP", "genControlSource", "fossilFuelType")


def _fuel(rng: random.Random, units: list[str]) -> dict[str, Any]:
    return {
        "label": rng.choice(LABELS),
        "name": rng.choice(NAMES),
        "fossilFuelType": rng.choice(FUELS),
        "feeds": sorted(rng.sample(units, rng.randint(0, 4))),
    }


def _unit(rng: random.Random) -> dict[str, Any]:
    return {
        "label": rng.choice(LABELS),
        "name": rng.choice(NAMES),
        "maxOperatingP": rng.choice(CAPACITIES),
        "genControlSource": rng.choice(CONTROLS),
    }


@pytest.fixture
def world(
    api: Api, run_id: str, neo4j_driver: Any, graph_writer: Callable[[list[Obj], list[Rel]], None]
) -> Iterator[dict[str, Any]]:
    rng = random.Random(19)
    prefix = f"{run_id}-s"
    units = {f"{prefix}u{i:02d}": _unit(rng) for i in range(16)}
    fuels = {f"{prefix}f{i:02d}": _fuel(rng, sorted(units)) for i in range(10)}
    rel = _fuel_rel()

    def props(o: dict[str, Any]) -> dict[str, Any]:
        return {
            k: o[k] for k in ("maxOperatingP", "genControlSource", "fossilFuelType") if o.get(k) is not None
        }

    # The base: live objects (for their labels and bookkeeping), each kept as its one version, a fuel's
    # stating the units it feeds.
    graph_writer(
        [Obj(m, UNIT, o["label"], o["name"], props(o)) for m, o in units.items()]
        + [Obj(m, FUEL, o["label"], o["name"], props(o)) for m, o in fuels.items()],
        [],
    )
    neo4j_driver.execute_query(
        "MATCH (n:Entity) WHERE n.mrid STARTS WITH $p CREATE (v:ObjectVersion) SET v = properties(n) "
        "SET v._version = 1, v._deleted = false, v._valid_from = 0, v._recorded = timestamp(), "
        "v._ref_types = [t IN coalesce($feeds[n.mrid], []) | $rel], "
        "v._ref_targets = coalesce($feeds[n.mrid], []) "
        "REMOVE v._updated",
        p=prefix,
        feeds={m: o["feeds"] for m, o in fuels.items()},
        rel=rel,
    )
    token = api.token("planner", "ngt", "OFFICIAL")
    made = api.query(CREATE, {"n": f"{prefix}-plan"}, token=token)
    assert "errors" not in made, made
    scenario = made["data"]["createScenario"]["id"]

    # The scenario: relabel, change (a fuel: also the units it feeds), delete or keep each base object;
    # add a few.
    records, _, _ = neo4j_driver.execute_query(
        "MATCH (n:Entity) WHERE n.mrid STARTS WITH $p RETURN n._owner AS owner, n._domain AS domain LIMIT 1",
        p=prefix,
    )
    owner, domain = records[0]["owner"], records[0]["domain"]
    added_units = {f"{prefix}a{i:02d}": _unit(rng) for i in range(5)}
    every_unit = sorted({**units, **added_units})
    base: dict[str, tuple[str, dict[str, Any]]] = {
        **{m: (UNIT, o) for m, o in units.items()},
        **{m: (FUEL, o) for m, o in fuels.items()},
    }
    overlay: dict[str, tuple[str, dict[str, Any] | None]] = {}
    for m, (cls, o) in base.items():
        what = rng.choice(["keep", "relabel", "relabel", "change", "delete"])
        if what == "relabel":
            overlay[m] = (cls, {**o, "label": rng.choice(LABELS)})
        elif what == "change":
            fresh = _unit(rng) if cls == UNIT else _fuel(rng, every_unit)
            overlay[m] = (cls, {**fresh, "label": o["label"]})
        elif what == "delete":
            overlay[m] = (cls, None)
    overlay.update({m: (UNIT, o) for m, o in added_units.items()})
    overlay.update({f"{prefix}g{i:02d}": (FUEL, _fuel(rng, every_unit)) for i in range(3)})
    rows = []
    for m, (cls, o) in overlay.items():
        label = (o or base[m][1])["label"]  # a delete carries the label of what it deleted
        state = {k: o[k] for k in ATTRIBUTES if o.get(k) is not None} if o is not None else {}
        feeds = o.get("feeds", []) if o is not None else []
        rows.append(
            {
                "m": m,
                "props": {
                    **state,
                    "_class": cls,
                    "_domain": domain,
                    "_label": intern(label)[0],
                    "_owner": owner,
                    "_producer": owner,
                    "_version": 2,
                    "_deleted": o is None,
                    "_event_id": uuid.uuid4().hex,
                    "_ref_types": [rel] * len(feeds),
                    "_ref_targets": feeds,
                },
            }
        )
    neo4j_driver.execute_query(
        "UNWIND $rows AS r CREATE (v:ScenarioVersion) SET v = r.props, v.mrid = r.m, v.scenario = $s, "
        "v._recorded = datetime(), v._valid_from = datetime()",
        rows=rows,
        s=scenario,
    )
    # The states in the scenario, with their versions (the scenario's 2, the base's 1).
    states = {
        m: (cls, {**o, "version": 2 if m in overlay else 1})
        for m, (cls, o) in {**base, **overlay}.items()
        if o is not None
    }
    yield {
        "prefix": prefix,
        "scenario": scenario,
        "units": {m: o for m, (cls, o) in states.items() if cls == UNIT},
        "fuels": {
            m: {k: v for k, v in o.items() if k != "feeds"} for m, (cls, o) in states.items() if cls == FUEL
        },
        "feeds": sorted({(m, u) for m, (cls, o) in states.items() if cls == FUEL for u in o["feeds"]}),
    }
    neo4j_driver.execute_query(
        "MATCH (v) WHERE (v:ObjectVersion OR v:ScenarioVersion) AND v.mrid STARTS WITH $p DETACH DELETE v",
        p=prefix,
    )
    neo4j_driver.execute_query("MATCH (s:Scenario {id: $s}) DETACH DELETE s", s=scenario)


def own_fields() -> st.SearchStrategy[dict[str, Any]]:
    """Filters on the units' own fields (what a scenario's typed queries take)."""
    return st.one_of(
        st.just({}),
        st.builds(_combine, st.lists(leaves(UNIT), min_size=1, max_size=3), HOW),
        st.builds(
            lambda a, b: {"OR": [a, {"NOT": b}]},
            st.builds(_combine, st.lists(leaves(UNIT), min_size=1, max_size=2), HOW),
            leaves(UNIT),
        ),
    )


@settings(
    max_examples=int(os.environ.get("HUB_SECURITY_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    where=st.one_of(own_fields(), wheres(UNIT)),
    order=orders,
    size=st.integers(1, 6),
    group_by=st.sampled_from([None, "genControlSource", "maxOperatingP", "name", "version", RELATED_GROUP]),
)
def test_typed_queries_in_a_scenario_answer_as_over_the_states_each_caller_may_see_there(
    api: Api,
    world: dict[str, Any],
    where: dict[str, Any],
    order: list[tuple[str, bool]],
    size: int,
    group_by: str | None,
) -> None:
    scoped = {"AND": [{"mrid": {"startsWith": world["prefix"]}}, where]}
    sort = [{"field": k, "direction": "DESC" if d else "ASC"} for k, d in order]
    tokens = {"public": api.token("pub", None, "PUBLIC"), "ngt": api.token("ngt", "ngt", "OFFICIAL")}
    scenario = world["scenario"]
    for caller, token in tokens.items():
        oracle = Oracle(world, caller)
        want = oracle.page(where, order)
        got: list[dict[str, Any]] = []
        after = None
        while True:
            variables = {"w": scoped, "o": sort, "first": size, "after": after, "s": scenario}
            conn = _ask(api, PAGE, variables, token)["thermalGeneratingUnits"]
            assert conn["totalCount"] == len(want), (caller, where)
            got += conn["nodes"]
            if not conn["pageInfo"]["hasNextPage"]:
                break
            after = conn["pageInfo"]["endCursor"]
            assert len(got) <= len(want), (caller, where, order)
        assert [n["mrid"] for n in got] == want, (caller, where, order)
        for n in got:
            unit = world["units"][n["mrid"]]
            assert (n["name"], n["maxOperatingP"]) == (unit["name"], unit["maxOperatingP"]), n
            assert intern(n["label"]) == intern(unit["label"]), n

        grouping = {"r": group_by} if group_by == RELATED_GROUP else {"g": group_by}
        agg = _ask(api, AGG, {"w": scoped, **grouping, "s": scenario}, token)[
            "thermalGeneratingUnitAggregate"
        ]
        expected = oracle.aggregate(where, group_by)
        assert _same_summary(agg, expected["all"]), (caller, where, agg, expected)
        assert [g["key"] for g in agg["groups"]] == [k for k, _ in expected["groups"]], (caller, where)
        for g, (_, summary) in zip(agg["groups"], expected["groups"], strict=True):
            assert _same_summary(g, summary), (caller, where, group_by, g, summary)
