"""Property-based leak test of the typed queries: random filters, orders and aggregates over one seeded graph,
as two callers of different clearances, each answer against an oracle computed in Python over only the
objects that caller may see.

The graph is units and their fuels at four labels (one hidden from both callers), related in both
directions, so relationship filters (some / none / all / single, nested two deep) reach hidden objects; the
oracle simply does not know them. Every page of a random order is read with a random page size through the
cursors, and must give the oracle's order; totals and aggregates (per group too, grouped by the units' own
attributes or by the type of the fuels each caller may see) must be the oracle's.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import pytest
from graphkit import Api, Obj, Rel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ontology.loader import load_ontology

pytestmark = pytest.mark.services

PUBLIC, OFFICIAL, NGT, HIDDEN = "classification=PUBLIC", "classification=OFFICIAL", "org=ngt", "group=nobody"
LABELS = (PUBLIC, OFFICIAL, NGT, HIDDEN)
# Who sees what, written out (not the guard's evaluation).
SEES = {"public": {PUBLIC}, "ngt": {PUBLIC, OFFICIAL, NGT}}
UNIT, FUEL = "ThermalGeneratingUnit", "FossilFuel"
CAPACITIES = (None, 50.0, 100.0, 250.0, 400.0)
CONTROLS = (None, "onAGC", "offAGC")
FUELS = ("coal", "gas", "oil")
NAMES = ("Alpha", "Bravo", "alpha", "Delta", "Echo", "Foxtrot")
RELATED_GROUP = "fossilFuels.fossilFuelType"


def _fuel_rel() -> str:
    assoc = load_ontology().association_by_qname("FossilFuel.ThermalGeneratingUnit")
    assert assoc is not None
    return assoc.rel_type


@pytest.fixture
def world(run_id: str, graph_writer: Callable[[list[Obj], list[Rel]], None]) -> dict[str, Any]:
    rng = random.Random(16)
    prefix = f"{run_id}-"
    units = {
        f"{prefix}u{i:02d}": {
            "label": rng.choice(LABELS),
            "name": rng.choice(NAMES),
            "maxOperatingP": rng.choice(CAPACITIES),
            "genControlSource": rng.choice(CONTROLS),
        }
        for i in range(14)
    }
    fuels = {
        f"{prefix}f{i:02d}": {
            "label": rng.choice(LABELS),
            "name": rng.choice(NAMES),
            "fossilFuelType": rng.choice(FUELS),
        }
        for i in range(10)
    }
    feeds = sorted({(f, u) for f in fuels for u in rng.sample(sorted(units), rng.randint(1, 5))})

    def props(o: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        return {k: o[k] for k in keys if o[k] is not None}

    objects = [
        Obj(m, UNIT, o["label"], o["name"], props(o, ("maxOperatingP", "genControlSource")))
        for m, o in units.items()
    ] + [Obj(m, FUEL, o["label"], o["name"], props(o, ("fossilFuelType",))) for m, o in fuels.items()]
    graph_writer(objects, [Rel(f, _fuel_rel(), u) for f, u in feeds])
    return {"prefix": prefix, "units": units, "fuels": fuels, "feeds": feeds}


# ------------------------------------------------------------------------------------------ the oracle


def _compare(value: Any, op: str, operand: Any) -> bool:
    if op == "isNull":
        return (value is None) == operand
    if value is None:
        return False
    if op == "eq":
        return bool(value == operand)
    if op == "in":
        return value in operand
    if op == "contains":
        return operand in value
    if op == "startsWith":
        return bool(value.startswith(operand))
    return bool(
        {"lt": value < operand, "lte": value <= operand, "gt": value > operand, "gte": value >= operand}[op]
    )


class Oracle:
    def __init__(self, world: dict[str, Any], caller: str) -> None:
        sees = SEES[caller]
        self.units = {m: dict(o, mrid=m) for m, o in world["units"].items() if o["label"] in sees}
        self.fuels = {m: dict(o, mrid=m) for m, o in world["fuels"].items() if o["label"] in sees}
        # (association field, mRID) -> the visible objects at its other end
        self.related: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for f, u in world["feeds"]:
            if f in self.fuels and u in self.units:
                self.related.setdefault(("fossilFuels", u), []).append(self.fuels[f])
                self.related.setdefault(("thermalGeneratingUnit", f), []).append(self.units[u])

    def holds(self, obj: dict[str, Any], where: dict[str, Any]) -> bool:
        for key, value in where.items():
            if key == "AND":
                ok = all(self.holds(obj, w) for w in value)
            elif key == "OR":
                ok = any(self.holds(obj, w) for w in value)
            elif key == "NOT":
                ok = not self.holds(obj, value)
            elif key in ("fossilFuels", "thermalGeneratingUnit"):
                others = self.related.get((key, obj["mrid"]), [])
                ok = True
                for op, sub in value.items():
                    n = sum(self.holds(o, sub) for o in others)
                    ok = ok and {"some": n > 0, "none": n == 0, "all": n == len(others), "single": n == 1}[op]
            else:
                ok = all(_compare(obj.get(key), op, operand) for op, operand in value.items())
            if not ok:
                return False
        return True

    def page(self, where: dict[str, Any], order: list[tuple[str, bool]]) -> list[str]:
        items = sorted((u for u in self.units.values() if self.holds(u, where)), key=lambda u: u["mrid"])
        for key, descending in reversed(order):
            present = [u for u in items if u.get(key) is not None]
            present.sort(key=lambda u: u[key], reverse=descending)
            items = present + [u for u in items if u.get(key) is None]
        return [u["mrid"] for u in items]

    def aggregate(self, where: dict[str, Any], group_by: str | None) -> dict[str, Any]:
        matching = [u for u in self.units.values() if self.holds(u, where)]

        def summary(us: list[dict[str, Any]]) -> dict[str, Any]:
            values = [u["maxOperatingP"] for u in us if u.get("maxOperatingP") is not None]
            return {
                "count": len(us),
                "min": min(values) if values else None,
                "max": max(values) if values else None,
                "sum": sum(values) if values else None,
                "avg": sum(values) / len(values) if values else None,
            }

        groups: dict[Any, list[dict[str, Any]]] = {}
        if group_by == RELATED_GROUP:
            for u in matching:
                fuels = self.related.get(("fossilFuels", u["mrid"]), [])
                for key in {f.get("fossilFuelType") for f in fuels} or {None}:
                    groups.setdefault(key, []).append(u)
        elif group_by is not None:
            for u in matching:
                groups.setdefault(u.get(group_by), []).append(u)
        keys = sorted(k for k in groups if k is not None) + ([None] if None in groups else [])
        return {"all": summary(matching), "groups": [(k, summary(groups[k])) for k in keys]}


# --------------------------------------------------------------------------------------- random queries


def leaves(cls: str) -> st.SearchStrategy[dict[str, Any]]:
    names = st.sampled_from(NAMES)
    common = [
        st.builds(lambda v: {"name": {"eq": v}}, names),
        st.builds(lambda v: {"name": {"startsWith": v[:2]}}, names),
        st.builds(lambda v: {"name": {"contains": v[-2:]}}, names),
        st.builds(lambda v: {"label": {"eq": v}}, st.sampled_from(LABELS)),
        st.builds(lambda v: {"label": {"in": v}}, st.lists(st.sampled_from(LABELS), max_size=2)),
    ]
    if cls == UNIT:
        numbers = st.sampled_from([c for c in CAPACITIES if c is not None] + [75.0])
        specific = [
            st.builds(
                lambda op, v: {"maxOperatingP": {op: v}},
                st.sampled_from(["eq", "lt", "lte", "gt", "gte"]),
                numbers,
            ),
            st.builds(lambda v: {"maxOperatingP": {"in": v}}, st.lists(numbers, max_size=3)),
            st.builds(lambda v: {"maxOperatingP": {"isNull": v}}, st.booleans()),
            st.builds(lambda v: {"genControlSource": {"eq": v}}, st.sampled_from(CONTROLS[1:])),
            st.builds(lambda v: {"genControlSource": {"isNull": v}}, st.booleans()),
        ]
    else:
        specific = [
            st.builds(lambda v: {"fossilFuelType": {"eq": v}}, st.sampled_from(FUELS)),
            st.builds(lambda v: {"fossilFuelType": {"in": v}}, st.lists(st.sampled_from(FUELS), max_size=2)),
        ]
    return st.one_of(*common, *specific)


def _combine(items: list[dict[str, Any]], how: str) -> dict[str, Any]:
    if how == "merge":
        # One object with every field of the items (a field given twice: its operators together).
        merged: dict[str, dict[str, Any]] = {}
        for item in items:
            for k, v in item.items():
                merged[k] = {**merged.get(k, {}), **v}
        return merged
    if how == "NOT":
        return {"NOT": _combine(items, "merge")}
    return {how: items}


HOW = st.sampled_from(["merge", "AND", "OR", "NOT"])


def wheres(cls: str, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Filters on ``cls``: at the top always with a relationship filter (they are what may reach hidden
    objects), beneath it anything down to an empty filter (which makes some / none / all / single count
    the related objects themselves)."""
    other, key = (FUEL, "fossilFuels") if cls == UNIT else (UNIT, "thermalGeneratingUnit")
    relation = st.builds(
        lambda op, w: {key: {op: w}},
        st.sampled_from(["some", "none", "all", "single"]),
        st.deferred(lambda: wheres(other, depth + 1)),
    )
    if depth >= 2:
        return st.one_of(st.just({}), st.builds(_combine, st.lists(leaves(cls), min_size=1, max_size=2), HOW))
    if depth == 0:
        return st.builds(
            lambda rels, rest, how: _combine(rels + rest, how),
            st.lists(relation, min_size=1, max_size=2),
            st.lists(leaves(cls), max_size=2),
            HOW,
        )
    single = st.one_of(relation, leaves(cls))
    return st.one_of(st.just({}), st.builds(_combine, st.lists(single, min_size=1, max_size=2), HOW))


ORDER_KEYS = ("maxOperatingP", "name", "genControlSource", "mrid")
orders = st.lists(st.tuples(st.sampled_from(ORDER_KEYS), st.booleans()), max_size=3, unique_by=lambda t: t[0])

PAGE = """query($w: ThermalGeneratingUnitWhere, $o: [ThermalGeneratingUnitSort!], $first: Int,
            $after: String) {
  thermalGeneratingUnits(where: $w, orderBy: $o, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } nodes { mrid } } }"""
AGG = """query($w: ThermalGeneratingUnitWhere, $g: ThermalGeneratingUnitField, $r: String) {
  thermalGeneratingUnitAggregate(where: $w, groupBy: $g, groupByRelated: $r) {
    count min { maxOperatingP } max { maxOperatingP } avg { maxOperatingP } sum { maxOperatingP }
    groups { key count min { maxOperatingP } max { maxOperatingP } avg { maxOperatingP }
             sum { maxOperatingP } }
  } }"""


def _ask(api: Api, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
    body = api.query(query, variables, token=token)
    assert "errors" not in body, (body, variables)
    return body["data"]


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return bool(abs(a - b) <= 1e-9 * max(1.0, abs(b)))


def _same_summary(got: dict[str, Any], want: dict[str, Any]) -> bool:
    return got["count"] == want["count"] and all(
        _close(got[f]["maxOperatingP"], want[f]) for f in ("min", "max", "sum", "avg")
    )


@settings(
    max_examples=int(os.environ.get("HUB_SECURITY_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    where=wheres(UNIT),
    order=orders,
    size=st.integers(1, 6),
    group_by=st.sampled_from([None, "genControlSource", "maxOperatingP", "name", RELATED_GROUP]),
)
def test_typed_queries_answer_as_over_visible_objects_only(
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
    for caller, token in tokens.items():
        oracle = Oracle(world, caller)
        want = oracle.page(where, order)
        got: list[str] = []
        after = None
        while True:
            page = _ask(api, PAGE, {"w": scoped, "o": sort, "first": size, "after": after}, token)
            conn = page["thermalGeneratingUnits"]
            assert conn["totalCount"] == len(want), (caller, where)
            got += [n["mrid"] for n in conn["nodes"]]
            if not conn["pageInfo"]["hasNextPage"]:
                break
            after = conn["pageInfo"]["endCursor"]
            assert len(got) <= len(want), (caller, where, order)
        assert got == want, (caller, where, order)

        grouping = {"r": group_by} if group_by == RELATED_GROUP else {"g": group_by}
        agg = _ask(api, AGG, {"w": scoped, **grouping}, token)["thermalGeneratingUnitAggregate"]
        expected = oracle.aggregate(where, group_by)
        assert _same_summary(agg, expected["all"]), (caller, where, agg, expected)
        assert [g["key"] for g in agg["groups"]] == [k for k, _ in expected["groups"]], (caller, where)
        for g, (_, summary) in zip(agg["groups"], expected["groups"], strict=True):
            assert _same_summary(g, summary), (caller, where, group_by, g, summary)
