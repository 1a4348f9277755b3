"""The typed root fields per class: every where operator, relationship filters, sorting across pages,
aggregates and the cost budget, against a small hand-built graph seen by callers of different clearances."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from graphkit import Api, Obj, Rel

from ontology.loader import load_ontology

pytestmark = pytest.mark.services

PUBLIC = "classification=PUBLIC"
NGT = "org=ngt"
HIDDEN = "group=bv-admins"


def rel(qname: str) -> str:
    assoc = load_ontology().association_by_qname(qname)
    assert assoc is not None, qname
    return assoc.rel_type


@pytest.fixture
def ids(run_id: str, graph_writer: Callable[[list[Obj], list[Rel]], None]) -> dict[str, str]:
    p = f"{run_id}-"
    k = {
        n: p + n
        for n in (
            "u1",
            "u2",
            "u3",
            "u4",
            "u5",
            "coal",
            "gas1",
            "gas2",
            "l1",
            "l2",
            "l3",
            "bv400",
            "bv132",
            "bvx",
        )
    }
    tgu = "ThermalGeneratingUnit"
    objects = [
        Obj(
            k["u1"],
            tgu,
            PUBLIC,
            f"Alpha {run_id}",
            {"maxOperatingP": 400.0, "genControlSource": "onAGC", "inService": True},
        ),
        Obj(
            k["u2"],
            tgu,
            PUBLIC,
            f"Bravo {run_id}",
            {"maxOperatingP": 250.0, "genControlSource": "offAGC", "inService": False},
        ),
        Obj(k["u3"], tgu, NGT, f"Charlie {run_id}", {"maxOperatingP": 250.0, "genControlSource": "onAGC"}),
        Obj(k["u4"], tgu, PUBLIC, f"Delta {run_id}", {"maxOperatingP": 90.0}),
        Obj(k["u5"], tgu, PUBLIC, f"Echo {run_id}", {}),
        Obj(k["coal"], "FossilFuel", PUBLIC, f"Coal {run_id}", {"fossilFuelType": "coal"}),
        Obj(k["gas1"], "FossilFuel", PUBLIC, f"Gas A {run_id}", {"fossilFuelType": "gas"}),
        Obj(k["gas2"], "FossilFuel", NGT, f"Gas B {run_id}", {"fossilFuelType": "gas"}),
        Obj(k["l1"], "ACLineSegment", PUBLIC, f"Line 1 {run_id}", {"length": 42.5}),
        Obj(k["l2"], "ACLineSegment", PUBLIC, f"Line 2 {run_id}", {"length": 12.0}),
        Obj(k["l3"], "ACLineSegment", PUBLIC, f"Line 3 {run_id}", {"length": 30.0}),
        Obj(k["bv400"], "BaseVoltage", PUBLIC, f"400 kV {run_id}", {"nominalVoltage": 400.0}),
        Obj(k["bv132"], "BaseVoltage", PUBLIC, f"132 kV {run_id}", {"nominalVoltage": 132.0}),
        Obj(k["bvx"], "BaseVoltage", HIDDEN, f"Hidden 400 kV {run_id}", {"nominalVoltage": 400.0}),
    ]
    fuel = rel("FossilFuel.ThermalGeneratingUnit")
    bv = rel("ConductingEquipment.BaseVoltage")
    rels = [
        Rel(k["coal"], fuel, k["u1"]),
        Rel(k["gas1"], fuel, k["u2"]),
        Rel(k["gas2"], fuel, k["u3"]),
        Rel(k["gas2"], fuel, k["u1"]),  # u1 burns coal, and gas only as NGT sees it
        Rel(k["l1"], bv, k["bv400"]),
        Rel(k["l2"], bv, k["bv132"]),
        Rel(k["l3"], bv, k["bvx"]),  # its base voltage is hidden from all but bv-admins
    ]
    graph_writer(objects, rels)
    return k


@pytest.fixture
def tokens(api: Api) -> dict[str, str]:
    return {
        "public": api.token("pub", None, "PUBLIC"),
        "ngt": api.token("ngt", "ngt", "OFFICIAL"),
        "admin": api.token("admin", "ngt", "SECRET", roles=("admin",), groups=("bv-admins",)),
    }


def data(api: Api, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
    body = api.query(query, variables, token=token)
    assert "errors" not in body, body
    return body["data"]


def errors(api: Api, query: str, variables: dict[str, Any], token: str) -> list[str]:
    body = api.query(query, variables, token=token)
    assert body.get("errors"), body
    return [e["message"] for e in body["errors"]]


UNITS = """query($where: ThermalGeneratingUnitWhere, $order: [ThermalGeneratingUnitSort!], $first: Int,
                 $after: String) {
  thermalGeneratingUnits(where: $where, orderBy: $order, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { mrid maxOperatingP } } } }"""


def units(api: Api, ids: dict[str, str], where: dict[str, Any], token: str) -> list[str]:
    scoped = {"AND": [{"mrid": {"startsWith": ids["u1"][:-2]}}, where]}
    got = data(api, UNITS, {"where": scoped, "first": 100}, token)["thermalGeneratingUnits"]
    mrids = [e["node"]["mrid"] for e in got["edges"]]
    assert got["totalCount"] == len(mrids)
    return [m.rsplit("-", 1)[1] for m in mrids]


def test_attribute_operators(api: Api, ids: dict[str, str], tokens: dict[str, str]) -> None:
    t = tokens["public"]
    assert units(api, ids, {}, t) == ["u1", "u2", "u4", "u5"]  # u3 is NGT's
    assert units(api, ids, {"maxOperatingP": {"eq": 250.0}}, t) == ["u2"]
    assert units(api, ids, {"maxOperatingP": {"in": [90.0, 400.0]}}, t) == ["u1", "u4"]
    assert units(api, ids, {"maxOperatingP": {"gt": 90.0}}, t) == ["u1", "u2"]
    assert units(api, ids, {"maxOperatingP": {"gte": 90.0, "lt": 400.0}}, t) == ["u2", "u4"]
    assert units(api, ids, {"maxOperatingP": {"lte": 250.0}}, t) == ["u2", "u4"]
    assert units(api, ids, {"maxOperatingP": {"isNull": True}}, t) == ["u5"]
    assert units(api, ids, {"maxOperatingP": {"isNull": False}}, t) == ["u1", "u2", "u4"]
    assert units(api, ids, {"name": {"contains": "ravo"}}, t) == ["u2"]
    assert units(api, ids, {"name": {"startsWith": "D"}}, t) == ["u4"]
    assert units(api, ids, {"genControlSource": {"eq": "onAGC"}}, t) == ["u1"]
    assert units(api, ids, {"mrid": {"in": [ids["u2"], ids["u3"]]}}, t) == ["u2"]
    assert units(api, ids, {"inService": {"eq": True}}, t) == ["u1"]
    assert units(api, ids, {"inService": {"eq": False}}, t) == ["u2"]
    assert units(api, ids, {"inService": {"isNull": True}}, t) == ["u4", "u5"]
    assert units(api, ids, {"genControlSource": {"in": ["offAGC", "x"]}}, t) == ["u2"]
    assert units(api, ids, {"mrid": {"eq": ids["u3"]}}, tokens["ngt"]) == ["u3"]


def test_logic_and_generic_fields(api: Api, ids: dict[str, str], tokens: dict[str, str]) -> None:
    t = tokens["ngt"]
    assert units(api, ids, {"OR": [{"maxOperatingP": {"eq": 90.0}}, {"name": {"startsWith": "E"}}]}, t) == [
        "u4",
        "u5",
    ]
    # A missing value compares false, and NOT of that is true: u5 (no capacity) is "not above 100".
    assert units(api, ids, {"NOT": {"maxOperatingP": {"gt": 100.0}}}, t) == ["u4", "u5"]
    assert units(api, ids, {"label": {"eq": NGT}}, t) == ["u3"]
    assert units(api, ids, {"label": {"in": [PUBLIC]}, "maxOperatingP": {"gt": 300.0}}, t) == ["u1"]
    assert units(api, ids, {"domain": {"eq": "ELECTRICITY"}, "producer": {"eq": "test"}}, t) == [
        "u1",
        "u2",
        "u3",
        "u4",
        "u5",
    ]
    assert units(api, ids, {"domain": {"in": ["GAS"]}}, t) == []
    assert units(api, ids, {"updated": {"gt": "2000-01-01T00:00:00+00:00"}, "version": {"eq": 1}}, t) == [
        "u1",
        "u2",
        "u3",
        "u4",
        "u5",
    ]
    assert units(api, ids, {"updated": {"lt": "2000-01-01T00:00:00+00:00"}}, t) == []


def test_relationship_filters_see_only_visible_objects(
    api: Api, ids: dict[str, str], tokens: dict[str, str]
) -> None:
    gas = {"fossilFuelType": {"eq": "gas"}}
    pub, ngt = tokens["public"], tokens["ngt"]
    # u1's gas fuel is NGT's: to the public caller u1 burns coal only.
    assert units(api, ids, {"fossilFuels": {"some": gas}}, pub) == ["u2"]
    assert units(api, ids, {"fossilFuels": {"some": gas}}, ngt) == ["u1", "u2", "u3"]
    assert units(api, ids, {"fossilFuels": {"none": gas}}, pub) == ["u1", "u4", "u5"]
    assert units(api, ids, {"fossilFuels": {"none": gas}}, ngt) == ["u4", "u5"]
    # all: true with no (visible) fuel at all; u3's only fuel is hidden from the public caller.
    assert units(api, ids, {"fossilFuels": {"all": gas}}, pub) == ["u2", "u4", "u5"]
    assert units(api, ids, {"fossilFuels": {"all": gas}}, ngt) == ["u2", "u3", "u4", "u5"]
    assert units(api, ids, {"fossilFuels": {"single": {}}}, pub) == ["u1", "u2"]
    assert units(api, ids, {"fossilFuels": {"single": {}}}, ngt) == ["u2", "u3"]

    lines = """query($w: ACLineSegmentWhere) { acLineSegments(where: $w) { totalCount nodes { mrid } } }"""
    scope = {"mrid": {"startsWith": ids["l1"][:-2]}}
    above = {"AND": [scope, {"baseVoltage": {"some": {"nominalVoltage": {"gte": 400.0}}}}]}
    none_above = {"AND": [scope, {"baseVoltage": {"none": {"nominalVoltage": {"gte": 400.0}}}}]}
    for token, want_above, want_none in (
        (pub, [ids["l1"]], [ids["l2"], ids["l3"]]),
        (tokens["admin"], [ids["l1"], ids["l3"]], [ids["l2"]]),
    ):
        got = data(api, lines, {"w": above}, token)["acLineSegments"]
        assert [n["mrid"] for n in got["nodes"]] == want_above and got["totalCount"] == len(want_above)
        got = data(api, lines, {"w": none_above}, token)["acLineSegments"]
        assert [n["mrid"] for n in got["nodes"]] == want_none


def test_hidden_and_missing_objects_give_identical_answers(
    api: Api, ids: dict[str, str], tokens: dict[str, str]
) -> None:
    q = """query($m: ID!) {
      baseVoltages(where: {mrid: {eq: $m}}) { totalCount pageInfo { hasNextPage endCursor } nodes { mrid } }
      baseVoltageAggregate(where: {mrid: {eq: $m}}, groupBy: name) {
        count sum { nominalVoltage } groups { key } }
      acLineSegments(where: {baseVoltage: {some: {mrid: {eq: $m}}}}) { totalCount nodes { mrid } } }"""
    hidden = api.query(q, {"m": ids["bvx"]}, token=tokens["public"], raw=True)
    missing = api.query(q, {"m": ids["bvx"] + "-nope"}, token=tokens["public"], raw=True)
    assert hidden.status_code == missing.status_code == 200
    assert hidden.content == missing.content
    assert b"errors" not in hidden.content
    seen = data(api, q, {"m": ids["bvx"]}, tokens["admin"])
    assert seen["baseVoltages"]["totalCount"] == 1 and seen["acLineSegments"]["totalCount"] == 1


def test_sorting_is_stable_across_pages(api: Api, ids: dict[str, str], tokens: dict[str, str]) -> None:
    scope = {"mrid": {"startsWith": ids["u1"][:-2]}}
    order = [{"field": "maxOperatingP", "direction": "DESC"}]
    seen: list[str] = []
    after = None
    for _ in range(10):
        got = data(api, UNITS, {"where": scope, "order": order, "first": 2, "after": after}, tokens["ngt"])[
            "thermalGeneratingUnits"
        ]
        seen += [e["node"]["mrid"].rsplit("-", 1)[1] for e in got["edges"]]
        assert got["totalCount"] == 5
        if not got["pageInfo"]["hasNextPage"]:
            break
        after = got["pageInfo"]["endCursor"]
    # Largest first, ties (u2, u3 at 250) by mRID, missing values last.
    assert seen == ["u1", "u2", "u3", "u4", "u5"]

    ascending = [{"field": "maxOperatingP"}, {"field": "name", "direction": "DESC"}]
    got = data(api, UNITS, {"where": scope, "order": ascending, "first": 3}, tokens["ngt"])
    page = got["thermalGeneratingUnits"]
    assert [e["node"]["mrid"].rsplit("-", 1)[1] for e in page["edges"]] == ["u4", "u3", "u2"]
    rest = data(
        api,
        UNITS,
        {"where": scope, "order": ascending, "first": 3, "after": page["edges"][1]["cursor"]},
        tokens["ngt"],
    )["thermalGeneratingUnits"]
    assert [e["node"]["mrid"].rsplit("-", 1)[1] for e in rest["edges"]] == ["u2", "u1", "u5"]

    # A cursor made for one order is refused for another, with a message naming the argument.
    message = errors(
        api, UNITS, {"where": scope, "first": 1, "after": page["pageInfo"]["endCursor"]}, tokens["ngt"]
    )
    assert "after" in message[0] and "orderBy" in message[0]


def _audited(api: Api, query: str, variables: dict[str, Any], token: str) -> tuple[dict[str, Any], int]:
    """The answer and how many guarded queries the operation ran (from its audit line)."""
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        got = data(api, query, variables, token)
    audit = [e for e in logs if e["event"] == "graphql operation"]
    return got, audit[-1]["queries"]


def test_total_count_comes_from_the_pages_own_query(
    api: Api, ids: dict[str, str], tokens: dict[str, str]
) -> None:
    scope = {"mrid": {"startsWith": ids["u1"][:-2]}}
    order = [{"field": "maxOperatingP", "direction": "DESC"}]
    page = """query($where: ThermalGeneratingUnitWhere, $order: [ThermalGeneratingUnitSort!], $first: Int,
                    $after: String) {
      thermalGeneratingUnits(where: $where, orderBy: $order, first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor }
        nodes { mrid fossilFuels { mrid fossilFuelType } } } }"""
    first = {"where": scope, "order": order, "first": 2}
    for caller, count, fuels in (("ngt", 5, {"coal", "gas"}), ("public", 4, {"coal"})):
        got, queries = _audited(api, page, first, tokens[caller])
        conn = got["thermalGeneratingUnits"]
        # The rows, their association and the total of every page: one statement.
        assert queries == 1, caller
        assert conn["totalCount"] == count and len(conn["nodes"]) == 2
        assert {f["fossilFuelType"] for f in conn["nodes"][0]["fossilFuels"]} == fuels
        # Past the last object: no rows, and still the count of all pages (hidden ones not in it).
        last = None
        while True:
            step = data(api, UNITS, {**first, "after": last}, tokens[caller])["thermalGeneratingUnits"]
            if not step["pageInfo"]["hasNextPage"]:
                last = step["pageInfo"]["endCursor"]
                break
            last = step["pageInfo"]["endCursor"]
        got, queries = _audited(api, page, {**first, "after": last}, tokens[caller])
        conn = got["thermalGeneratingUnits"]
        assert (conn["totalCount"], conn["nodes"], conn["pageInfo"]["hasNextPage"]) == (count, [], False)
        assert queries == 1

    # A filter no visible object passes: count 0 in the same one query, as for one that matches nothing.
    nothing = {"where": {"AND": [scope, {"name": {"eq": f"Charlie {ids['u1'][:-3]}"}}]}, "first": 2}
    public, queries = _audited(api, page, nothing, tokens["public"])
    assert queries == 1
    absent = {"where": {"AND": [scope, {"name": {"eq": "no such name"}}]}, "first": 2}
    assert public == data(api, page, absent, tokens["public"])
    assert public["thermalGeneratingUnits"]["totalCount"] == 0

    # Not asked for the count: nothing counts it.
    rows_only = "{ thermalGeneratingUnits(first: 2) { nodes { mrid } } }"
    _, queries = _audited(api, rows_only, {}, tokens["ngt"])
    assert queries == 1


def test_sorting_by_update_time_pages_through_ties(
    api: Api, ids: dict[str, str], tokens: dict[str, str]
) -> None:
    # The units were written in one statement: one update time (to the nanosecond), so mRIDs decide, and
    # the cursors carry the time with its nanoseconds.
    scope = {"mrid": {"startsWith": ids["u1"][:-2]}}
    order = [{"field": "updated", "direction": "DESC"}, {"field": "version"}]
    seen: list[str] = []
    after = None
    while True:
        got = data(api, UNITS, {"where": scope, "order": order, "first": 2, "after": after}, tokens["ngt"])
        conn = got["thermalGeneratingUnits"]
        seen += [e["node"]["mrid"].rsplit("-", 1)[1] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert seen == ["u1", "u2", "u3", "u4", "u5"]


def test_plain_order_cursors_are_the_objects_cursors(
    api: Api, ids: dict[str, str], tokens: dict[str, str]
) -> None:
    scope = {"mrid": {"startsWith": ids["u1"][:-2]}}
    typed = data(api, UNITS, {"where": scope, "first": 2}, tokens["public"])["thermalGeneratingUnits"]
    generic = data(
        api,
        'query($n: String) { objects(className: "ThermalGeneratingUnit", name: $n, first: 2) '
        "{ pageInfo { endCursor } } }",
        {"n": ids["u1"].split("-")[0]},
        tokens["public"],
    )["objects"]
    assert typed["pageInfo"]["endCursor"] == generic["pageInfo"]["endCursor"]


AGG = """query($w: ThermalGeneratingUnitWhere, $g: ThermalGeneratingUnitField) {
  thermalGeneratingUnitAggregate(where: $w, groupBy: $g) {
    count min { maxOperatingP } max { maxOperatingP } avg { maxOperatingP } sum { maxOperatingP }
    groups { key count sum { maxOperatingP } max { maxOperatingP } } } }"""


def test_aggregates_count_only_visible_objects(api: Api, ids: dict[str, str], tokens: dict[str, str]) -> None:
    scope = {"mrid": {"startsWith": ids["u1"][:-2]}}
    pub = data(api, AGG, {"w": scope, "g": "genControlSource"}, tokens["public"])[
        "thermalGeneratingUnitAggregate"
    ]
    assert pub["count"] == 4
    assert pub["min"] == {"maxOperatingP": 90.0} and pub["max"] == {"maxOperatingP": 400.0}
    assert pub["sum"] == {"maxOperatingP": 740.0}
    assert pub["avg"]["maxOperatingP"] == pytest.approx(740.0 / 3)
    assert pub["groups"] == [
        {"key": "offAGC", "count": 1, "sum": {"maxOperatingP": 250.0}, "max": {"maxOperatingP": 250.0}},
        {"key": "onAGC", "count": 1, "sum": {"maxOperatingP": 400.0}, "max": {"maxOperatingP": 400.0}},
        {"key": None, "count": 2, "sum": {"maxOperatingP": 90.0}, "max": {"maxOperatingP": 90.0}},
    ]
    ngt = data(api, AGG, {"w": scope, "g": "genControlSource"}, tokens["ngt"])[
        "thermalGeneratingUnitAggregate"
    ]
    assert ngt["count"] == 5 and ngt["sum"] == {"maxOperatingP": 990.0}
    assert ngt["groups"][1] == {
        "key": "onAGC",
        "count": 2,
        "sum": {"maxOperatingP": 650.0},
        "max": {"maxOperatingP": 400.0},
    }
    # Capacity of the units fed by gas, as each caller sees the fuels.
    gas = {"AND": [scope, {"fossilFuels": {"some": {"fossilFuelType": {"eq": "gas"}}}}]}
    assert data(api, AGG, {"w": gas}, tokens["public"])["thermalGeneratingUnitAggregate"]["sum"] == {
        "maxOperatingP": 250.0
    }
    got = data(api, AGG, {"w": gas}, tokens["ngt"])["thermalGeneratingUnitAggregate"]
    assert got["sum"] == {"maxOperatingP": 900.0} and got["groups"] == []
    by_fuel = """query($w: ThermalGeneratingUnitWhere) {
      thermalGeneratingUnitAggregate(where: $w, groupByRelated: "fossilFuels.fossilFuelType") {
        groups { key count sum { maxOperatingP } } } }"""
    # u1 burns coal, and gas as NGT sees it: once in each of its groups, never twice in one.
    assert data(api, by_fuel, {"w": scope}, tokens["public"])["thermalGeneratingUnitAggregate"]["groups"] == [
        {"key": "coal", "count": 1, "sum": {"maxOperatingP": 400.0}},
        {"key": "gas", "count": 1, "sum": {"maxOperatingP": 250.0}},
        {"key": None, "count": 2, "sum": {"maxOperatingP": 90.0}},
    ]
    assert data(api, by_fuel, {"w": scope}, tokens["ngt"])["thermalGeneratingUnitAggregate"]["groups"] == [
        {"key": "coal", "count": 1, "sum": {"maxOperatingP": 400.0}},
        {"key": "gas", "count": 3, "sum": {"maxOperatingP": 900.0}},
        {"key": None, "count": 2, "sum": {"maxOperatingP": 90.0}},
    ]
    bad = 'query { thermalGeneratingUnitAggregate(groupByRelated: "fossilFuels.nope") { count } }'
    assert "nope" in errors(api, bad, {}, tokens["public"])[0]
    empty = {"AND": [scope, {"maxOperatingP": {"gt": 10_000.0}}]}
    got = data(api, AGG, {"w": empty}, tokens["ngt"])["thermalGeneratingUnitAggregate"]
    assert (
        got["count"] == 0 and got["sum"] == {"maxOperatingP": None} and got["min"] == {"maxOperatingP": None}
    )


def test_cost_and_limits_refuse_before_running(api: Api, tokens: dict[str, str]) -> None:
    # Six levels of relationship filters: 5 + 10 + ... + 160 on top of the page.
    deep = """{ acLineSegments(where: {baseVoltage: {some: {conductingEquipment: {some: {baseVoltage: {some:
               {conductingEquipment: {all: {baseVoltage: {none: {conductingEquipment: {single:
               {name: {eq: "x"}}}}}}}}}}}}}}, first: 5000) { totalCount nodes { mrid } } }"""
    message = errors(api, deep, {}, tokens["public"])
    assert "costs" in message[0] and "HUB_MAX_OPERATION_COST" in message[0]
    many = (
        "{ "
        + " ".join(
            f"a{i}: acLineSegments(where: {{baseVoltage: {{some: "
            "{conductingEquipment: {some: {}}}}}, first: 1000) { nodes { mrid } }"
            for i in range(12)
        )
        + " }"
    )
    assert "costs" in errors(api, many, {}, tokens["public"])[0]
    big = "{ acLineSegments(first: 100000) { nodes { mrid } } }"
    assert "maximum page size" in errors(api, big, {}, tokens["public"])[0]
    # Through a variable the cost rule cannot see the depth: the resolver refuses it before any Cypher.
    q = "query($w: ACLineSegmentWhere) { acLineSegments(where: $w, first: 1) { nodes { mrid } } }"
    w: dict[str, Any] = {"name": {"eq": "x"}}
    for _ in range(4):
        w = {"baseVoltage": {"some": {"conductingEquipment": {"some": w}}}}
    assert "HUB_MAX_FILTER_DEPTH" in errors(api, q, {"w": w}, tokens["public"])[0]
    wide = {"OR": [{"name": {"eq": str(i)}} for i in range(60)]}
    assert "HUB_MAX_FILTER_TERMS" in errors(api, q, {"w": wide}, tokens["public"])[0]
    bad_label = {"label": {"eq": "classification=((("}}
    assert "label" in errors(api, q, {"w": bad_label}, tokens["public"])[0]
    # In a scenario a page or an aggregate costs 10 more (it reads every object's state there): as many
    # aggregates as the budget holds run live, and are refused by their cost in a scenario, before the
    # scenario is even looked for.
    fits = api.settings.max_operation_cost // 10

    def aggregates(argument: str) -> str:
        return (
            "{ " + " ".join(f"a{i}: acLineSegmentAggregate{argument} {{ count }}" for i in range(fits)) + " }"
        )

    assert "errors" not in api.query(aggregates(""), {}, token=tokens["public"])
    in_scenario = aggregates(f'(scenario: "scn-{"0" * 32}")')
    assert "costs" in errors(api, in_scenario, {}, tokens["public"])[0]
    one = '{ acLineSegmentAggregate(scenario: "scn-%s") { count } }' % ("0" * 32)
    assert "the scenario does not exist" in errors(api, one, {}, tokens["public"])[0]
