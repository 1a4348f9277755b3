"""The generic queries against a small hand-built whole-system graph, as three callers with different
clearances see it: objects, lists by superclass, counts, neighbourhood, paths, containment, dependencies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from graphkit import Api, Obj, Rel

from ontology.loader import load_ontology

pytestmark = pytest.mark.services

PUBLIC = "classification=PUBLIC"
NGT = "org=ngt"
OFFICIAL = "classification=OFFICIAL"
GAS = "org=nggt|classification=OFFICIAL"


def rel(qname: str) -> str:
    assoc = load_ontology().association_by_qname(qname)
    assert assoc is not None, qname
    return assoc.rel_type


@pytest.fixture
def scenario(run_id: str, graph_writer: Callable[[list[Obj], list[Rel]], None]) -> dict[str, str]:
    p = f"{run_id}-"
    ids = {
        k: p + k
        for k in (
            "sub",
            "vl",
            "bay",
            "brk",
            "line",
            "gu",
            "gu2",
            "esp",
            "n1",
            "n2",
            "n3",
            "pipe",
            "cs",
            "off1",
            "off2",
            "hub",
        )
    }
    objects = [
        Obj(ids["sub"], "Substation", PUBLIC, f"North {run_id}", x=1.0, y=50.0),
        Obj(ids["vl"], "VoltageLevel", PUBLIC, f"North 400 {run_id}", x=1.0, y=50.0),
        Obj(ids["bay"], "Bay", PUBLIC, f"Bay 1 {run_id}"),
        Obj(ids["brk"], "Breaker", NGT, f"Breaker {run_id}", {"open": False, "ratedCurrent": 2000.0}),
        Obj(ids["line"], "ACLineSegment", OFFICIAL, f"Line {run_id}", {"r": 0.12, "length": 42.5}),
        Obj(ids["gu"], "ThermalGeneratingUnit", PUBLIC, f"CCGT A {run_id}", {"maxOperatingP": 400.0}),
        Obj(ids["gu2"], "ThermalGeneratingUnit", NGT, f"CCGT B {run_id}", {"maxOperatingP": 250.0}),
        Obj(ids["esp"], "ElectricitySupplyPoint", PUBLIC, f"Supply {run_id}"),
        Obj(ids["n1"], "GasSource", GAS, f"Entry {run_id}", x=2.0, y=51.0),
        Obj(ids["n2"], "GasInnerNode", GAS, f"Junction {run_id}", x=3.0, y=52.0),
        Obj(ids["n3"], "GasSink", GAS, f"Exit {run_id}", x=4.0, y=53.0),
        Obj(ids["pipe"], "GasPipe", GAS, f"Pipe {run_id}", {"length": 12.0}),
        Obj(ids["cs"], "GasCompressorStation", GAS, f"Compressor {run_id}"),
        Obj(ids["off1"], "GasOfftake", GAS, f"Offtake A {run_id}"),
        Obj(ids["off2"], "GasOfftake", GAS, f"Offtake B {run_id}"),
        Obj(ids["hub"], "BaseVoltage", "group=bv-admins", f"Hidden hub {run_id}"),
    ]
    rels = [
        Rel(ids["vl"], rel("VoltageLevel.Substation"), ids["sub"]),
        Rel(ids["bay"], rel("Bay.VoltageLevel"), ids["vl"]),
        Rel(ids["brk"], rel("Equipment.EquipmentContainer"), ids["bay"]),
        Rel(ids["line"], rel("Equipment.EquipmentContainer"), ids["vl"]),
        Rel(ids["esp"], rel("Equipment.EquipmentContainer"), ids["vl"]),
        Rel(ids["esp"], rel("ElectricitySupplyPoint.GasCompressorStation"), ids["cs"]),
        Rel(ids["pipe"], rel("GasConnection.FromNode"), ids["n1"]),
        Rel(ids["pipe"], rel("GasConnection.ToNode"), ids["n2"]),
        Rel(ids["cs"], rel("GasConnection.FromNode"), ids["n2"]),
        Rel(ids["cs"], rel("GasConnection.ToNode"), ids["n3"]),
        Rel(ids["off1"], rel("GasOfftake.Node"), ids["n2"]),
        Rel(ids["off2"], rel("GasOfftake.Node"), ids["n3"]),
        Rel(ids["off1"], rel("GasOfftake.GeneratingUnits"), ids["gu"]),
        Rel(ids["off2"], rel("GasOfftake.GeneratingUnits"), ids["gu2"]),
        # The only short way from the breaker to the line runs through a node nobody may see.
        Rel(ids["brk"], rel("ConductingEquipment.BaseVoltage"), ids["hub"]),
        Rel(ids["line"], rel("ConductingEquipment.BaseVoltage"), ids["hub"]),
    ]
    graph_writer(objects, rels)
    return ids


@pytest.fixture
def tokens(api: Api) -> dict[str, str]:
    return {
        "admin": api.token("admin", "ngt", "SECRET", roles=("admin",), groups=("bv-admins",)),
        "public": api.token("pub", None, "PUBLIC"),
        "ngt": api.token("ngt", "ngt", "OFFICIAL"),
        "nggt": api.token("gas", "nggt", "PUBLIC"),
    }


def data(api: Api, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
    body = api.query(query, variables, token=token)
    assert "errors" not in body, body
    return body["data"]


OBJECT = "query($m: ID!) { object(mrid: $m) { mrid className label ... on Breaker { open ratedCurrent } } }"


def test_object_visible_hidden_missing(api: Api, scenario: dict[str, str], tokens: dict[str, str]) -> None:
    got = data(api, OBJECT, {"m": scenario["brk"]}, tokens["ngt"])["object"]
    assert got == {
        "mrid": scenario["brk"],
        "className": "Breaker",
        "label": NGT,
        "open": False,
        "ratedCurrent": 2000.0,
    }
    hidden = api.query(OBJECT, {"m": scenario["brk"]}, token=tokens["public"], raw=True)
    missing = api.query(OBJECT, {"m": scenario["brk"] + "-nope"}, token=tokens["public"], raw=True)
    assert hidden.status_code == missing.status_code == 200
    assert hidden.content == missing.content == b'{"data":{"object":null}}'


def test_objects_by_superclass_with_totals(
    api: Api, scenario: dict[str, str], tokens: dict[str, str], run_id: str
) -> None:
    q = """query($n: String) { objects(className: "ConductingEquipment", name: $n, first: 2) {
             totalCount pageInfo { hasNextPage endCursor } edges { node { mrid __typename } } } }"""
    admin = data(api, q, {"n": run_id}, tokens["admin"])["objects"]
    assert admin["totalCount"] == 3  # breaker, line, supply point
    assert admin["pageInfo"]["hasNextPage"] is True
    first_page = [e["node"]["mrid"] for e in admin["edges"]]
    q2 = """query($n: String, $a: String) {
             objects(className: "ConductingEquipment", name: $n, first: 2, after: $a) {
               totalCount pageInfo { hasNextPage } nodes { mrid } } }"""
    rest = data(api, q2, {"n": run_id, "a": admin["pageInfo"]["endCursor"]}, tokens["admin"])["objects"]
    assert rest["pageInfo"]["hasNextPage"] is False
    assert sorted(first_page + [n["mrid"] for n in rest["nodes"]]) == sorted(
        [scenario["brk"], scenario["line"], scenario["esp"]]
    )
    public = data(api, q, {"n": run_id}, tokens["public"])["objects"]
    assert public["totalCount"] == 1
    assert [e["node"]["mrid"] for e in public["edges"]] == [scenario["esp"]]


def test_objects_bbox_domain_and_page_cap(
    api: Api, scenario: dict[str, str], tokens: dict[str, str], run_id: str
) -> None:
    q = """query($n: String, $b: [Float!]) {
      objects(domain: GAS, name: $n, bbox: $b) { totalCount nodes { mrid } } }"""
    got = data(api, q, {"n": run_id, "b": [1.5, 50.5, 3.5, 52.5]}, tokens["nggt"])["objects"]
    assert sorted(n["mrid"] for n in got["nodes"]) == sorted([scenario["n1"], scenario["n2"]])
    assert got["totalCount"] == 2
    too_many = api.query("{ objects(first: 100000) { totalCount } }", token=tokens["admin"])
    assert too_many["data"] is None
    assert "first=100000 exceeds the maximum page size" in too_many["errors"][0]["message"]


def test_association_fields_respect_labels(
    api: Api, scenario: dict[str, str], tokens: dict[str, str]
) -> None:
    q = """query($m: ID!) { object(mrid: $m) { ... on EquipmentContainer { equipments { mrid } } } }"""
    admin = data(api, q, {"m": scenario["bay"]}, tokens["admin"])["object"]
    assert [e["mrid"] for e in admin["equipments"]] == [scenario["brk"]]
    public = data(api, q, {"m": scenario["bay"]}, tokens["public"])["object"]
    assert public["equipments"] == []
    q2 = """query($m: ID!) { object(mrid: $m) { ... on ConductingEquipment { baseVoltage { mrid } } } }"""
    assert data(api, q2, {"m": scenario["brk"]}, tokens["ngt"])["object"]["baseVoltage"] is None


def test_counts_only_visible(api: Api, scenario: dict[str, str], tokens: dict[str, str]) -> None:
    q = "query { counts(domain: GAS) { className count } }"
    public = {c["className"]: c["count"] for c in data(api, q, {}, tokens["public"])["counts"]}
    assert "GasOfftake" not in public or public["GasOfftake"] >= 0
    gas = {c["className"]: c["count"] for c in data(api, q, {}, tokens["nggt"])["counts"]}
    assert gas.get("GasOfftake", 0) - public.get("GasOfftake", 0) >= 2


def test_neighbourhood_never_through_hidden(
    api: Api, scenario: dict[str, str], tokens: dict[str, str]
) -> None:
    q = """query($m: ID!, $d: Int!) {
      neighbourhood(mrid: $m, depth: $d) { nodes { mrid } edges { source target type key } } }"""
    ngt = data(api, q, {"m": scenario["brk"], "d": 2}, tokens["ngt"])["neighbourhood"]
    mrids = {n["mrid"] for n in ngt["nodes"]}
    assert mrids == {scenario["brk"], scenario["bay"], scenario["vl"]}
    assert {(e["source"], e["target"], e["key"]) for e in ngt["edges"]} == {
        (scenario["brk"], scenario["bay"], "equipmentContainer"),
        (scenario["bay"], scenario["vl"], "voltageLevel"),
    }
    admin = data(api, q, {"m": scenario["brk"], "d": 2}, tokens["admin"])["neighbourhood"]
    assert {scenario["hub"], scenario["line"]} <= {n["mrid"] for n in admin["nodes"]}


def test_shortest_path_only_through_visible(
    api: Api, scenario: dict[str, str], tokens: dict[str, str]
) -> None:
    q = """query($a: ID!, $b: ID!) {
      shortestPath(from: $a, to: $b, via: ANY) { nodes { mrid } edges { source target } } }"""
    admin = data(api, q, {"a": scenario["brk"], "b": scenario["line"]}, tokens["admin"])["shortestPath"]
    assert [n["mrid"] for n in admin["nodes"]] == [scenario["brk"], scenario["hub"], scenario["line"]]
    official = api.token("o", "ngt", "OFFICIAL")
    around = data(api, q, {"a": scenario["brk"], "b": scenario["line"]}, official)["shortestPath"]
    assert [n["mrid"] for n in around["nodes"]] == [
        scenario["brk"],
        scenario["bay"],
        scenario["vl"],
        scenario["line"],
    ]
    assert (
        data(api, q, {"a": scenario["brk"], "b": scenario["line"]}, tokens["public"])["shortestPath"] is None
    )


@pytest.fixture
def wired(
    scenario: dict[str, str], run_id: str, graph_writer: Callable[[list[Obj], list[Rel]], None]
) -> dict[str, str]:
    """The scenario's unit A wired to the line: its machine and the line share a connectivity node through
    their terminals. Both also have a Location in the one coordinate system, and the line and the supply
    point share a voltage level: shorter ways that run through reference data."""
    ids = {**scenario, **{k: f"{run_id}-{k}" for k in ("sm", "t1", "cn", "t2", "loc1", "loc2", "crs")}}
    graph_writer(
        [
            Obj(ids["sm"], "SynchronousMachine", PUBLIC, f"Machine A {run_id}"),
            Obj(ids["t1"], "Terminal", PUBLIC, f"Machine A T1 {run_id}"),
            Obj(ids["cn"], "ConnectivityNode", PUBLIC, f"Node {run_id}"),
            Obj(ids["t2"], "Terminal", PUBLIC, f"Line T1 {run_id}"),
            Obj(ids["loc1"], "Location", PUBLIC, f"Site A {run_id}"),
            Obj(ids["loc2"], "Location", PUBLIC, f"Route {run_id}"),
            Obj(ids["crs"], "CoordinateSystem", PUBLIC, f"WGS84 {run_id}"),
        ],
        [
            Rel(ids["sm"], rel("RotatingMachine.GeneratingUnit"), ids["gu"]),
            Rel(ids["t1"], rel("Terminal.ConductingEquipment"), ids["sm"]),
            Rel(ids["t1"], rel("Terminal.ConnectivityNode"), ids["cn"]),
            Rel(ids["t2"], rel("Terminal.ConductingEquipment"), ids["line"]),
            Rel(ids["t2"], rel("Terminal.ConnectivityNode"), ids["cn"]),
            Rel(ids["loc1"], rel("Location.PowerSystemResources"), ids["gu"]),
            Rel(ids["loc2"], rel("Location.PowerSystemResources"), ids["line"]),
            Rel(ids["loc1"], rel("Location.CoordinateSystem"), ids["crs"]),
            Rel(ids["loc2"], rel("Location.CoordinateSystem"), ids["crs"]),
        ],
    )
    return ids


PATH = """query($a: ID!, $b: ID!, $via: PathVia!) {
  shortestPath(from: $a, to: $b, via: $via) { nodes { mrid className } edges { source target type } } }"""


def test_a_physical_path_runs_through_the_coupling_and_no_reference_data(
    api: Api, wired: dict[str, str], tokens: dict[str, str]
) -> None:
    ids = wired
    ends = {"a": ids["n1"], "b": ids["line"]}
    physical = data(api, PATH, {**ends, "via": "PHYSICAL"}, tokens["admin"])["shortestPath"]
    # Gas entry -> pipe -> junction <- offtake -> unit <- machine <- terminal -> node <- terminal -> line.
    assert [n["mrid"] for n in physical["nodes"]] == [
        ids[k] for k in ("n1", "pipe", "n2", "off1", "gu", "sm", "t1", "cn", "t2", "line")
    ]
    assert {e["type"] for e in physical["edges"]} <= {
        rel(q)
        for q in (
            "GasConnection.FromNode",
            "GasConnection.ToNode",
            "GasOfftake.Node",
            "GasOfftake.GeneratingUnits",
            "RotatingMachine.GeneratingUnit",
            "Terminal.ConductingEquipment",
            "Terminal.ConnectivityNode",
        )
    }
    # Along any relationship the shortest way is shorter, and it runs through a container or the
    # coordinate system: what the physical path must never do.
    anyway = data(api, PATH, {**ends, "via": "ANY"}, tokens["admin"])["shortestPath"]
    assert len(anyway["nodes"]) < len(physical["nodes"])
    assert {n["className"] for n in anyway["nodes"]} & {"VoltageLevel", "Location", "CoordinateSystem"}
    # The default is physical.
    default = data(
        api,
        "query($a: ID!, $b: ID!) { shortestPath(from: $a, to: $b) { nodes { mrid } } }",
        ends,
        tokens["admin"],
    )["shortestPath"]
    assert [n["mrid"] for n in default["nodes"]] == [n["mrid"] for n in physical["nodes"]]


def test_a_physical_path_only_through_visible_objects(
    api: Api, wired: dict[str, str], tokens: dict[str, str]
) -> None:
    # The line is OFFICIAL: PUBLIC callers have no path to it; ngt (OFFICIAL) has the same one as admin.
    ends = {"a": wired["n1"], "b": wired["line"], "via": "PHYSICAL"}
    assert data(api, PATH, ends, tokens["public"])["shortestPath"] is None
    seen = data(api, PATH, ends, tokens["ngt"])["shortestPath"]
    assert [n["mrid"] for n in seen["nodes"]][3:6] == [wired["off1"], wired["gu"], wired["sm"]]
    # Unit B is behind offtake B, which ngt may see, but its NGT label is not PUBLIC: the path through
    # the one visible unit is found, never one through a hidden object.
    hidden_unit = data(api, PATH, {**ends, "b": wired["gu2"]}, tokens["public"])["shortestPath"]
    assert hidden_unit is None


def test_a_physical_path_from_reference_data_is_refused_with_a_reason(
    api: Api, wired: dict[str, str], tokens: dict[str, str]
) -> None:
    body = api.query(PATH, {"a": wired["n1"], "b": wired["vl"], "via": "PHYSICAL"}, token=tokens["admin"])
    [error] = body["errors"]
    assert error["message"] == (
        f"{wired['vl']!r} is a VoltageLevel, which is not on the physical network (equipment, terminals, "
        "nodes, gas connections and what is attached to them); ask with via: ANY for a path along any "
        "relationship"
    )
    assert body["data"] == {"shortestPath": None}
    # Along any relationship there is one.
    anyway = data(api, PATH, {"a": wired["n1"], "b": wired["vl"], "via": "ANY"}, tokens["admin"])
    assert anyway["shortestPath"]["nodes"][-1]["mrid"] == wired["vl"]


def test_containment(api: Api, scenario: dict[str, str], tokens: dict[str, str]) -> None:
    q = """query($m: ID!) { containment(mrid: $m, depth: 3) { nodes { mrid } } }"""
    admin = {n["mrid"] for n in data(api, q, {"m": scenario["sub"]}, tokens["admin"])["containment"]["nodes"]}
    assert admin == {scenario[k] for k in ("sub", "vl", "bay", "brk", "line", "esp")}
    public = {
        n["mrid"] for n in data(api, q, {"m": scenario["sub"]}, tokens["public"])["containment"]["nodes"]
    }
    assert public == {scenario[k] for k in ("sub", "vl", "bay", "esp")}


def test_dependencies_both_ways(api: Api, scenario: dict[str, str], tokens: dict[str, str]) -> None:
    q = """query($m: ID!) { dependencies(mrid: $m) { root { mrid } dependents { mrid } capacityMW
             subgraph { nodes { mrid } } } }"""
    admin = data(api, q, {"m": scenario["n1"]}, tokens["admin"])["dependencies"]
    assert {d["mrid"] for d in admin["dependents"]} == {scenario["gu"], scenario["gu2"]}
    assert admin["capacityMW"] == pytest.approx(650.0)
    # Downstream only: from the junction the first offtake and, past the compressor, the second.
    from_cs = data(api, q, {"m": scenario["cs"]}, tokens["admin"])["dependencies"]
    assert {d["mrid"] for d in from_cs["dependents"]} == {scenario["gu2"]}
    gas = data(api, q, {"m": scenario["n1"]}, tokens["nggt"])["dependencies"]
    assert {d["mrid"] for d in gas["dependents"]} == {scenario["gu"]}  # gu2 is ngt-only
    assert gas["capacityMW"] == pytest.approx(400.0)
    hidden = api.query(q, {"m": scenario["n1"]}, token=tokens["public"], raw=True)
    missing = api.query(q, {"m": scenario["n1"] + "x"}, token=tokens["public"], raw=True)
    assert hidden.content == missing.content
    # From electricity, transitively: the substation's supply point powers the compressor, which moves
    # gas downstream to the second offtake, which supplies unit B.
    reverse = data(api, q, {"m": scenario["sub"]}, tokens["admin"])["dependencies"]
    assert [d["mrid"] for d in reverse["dependents"]] == [scenario["cs"], scenario["gu2"]]
    assert reverse["capacityMW"] == pytest.approx(250.0)


STEPS = """query($m: ID!) { dependencies(mrid: $m) { capacityMW
  steps { depth domain capacityMW dependents { mrid } } subgraph { nodes { mrid } } } }"""


def test_dependencies_step_by_step_through_visible_objects_only(
    api: Api, scenario: dict[str, str], tokens: dict[str, str]
) -> None:
    admin = data(api, STEPS, {"m": scenario["sub"]}, tokens["admin"])["dependencies"]
    assert admin["steps"] == [
        {"depth": 1, "domain": "GAS", "capacityMW": None, "dependents": [{"mrid": scenario["cs"]}]},
        {"depth": 2, "domain": "ELECTRICITY", "capacityMW": 250.0, "dependents": [{"mrid": scenario["gu2"]}]},
    ]
    # The way there is in the subgraph: supply point, compressor, the node it feeds, the offtake there.
    assert {scenario[k] for k in ("esp", "cs", "n3", "off2", "gu2")} <= {
        n["mrid"] for n in admin["subgraph"]["nodes"]
    }
    # Unit B is ngt's: an OFFICIAL caller of another organisation stops at the compressor, and learns
    # nothing of what lies beyond.
    other = api.token("other", "elsewhere", "OFFICIAL")
    seen = data(api, STEPS, {"m": scenario["sub"]}, other)["dependencies"]
    assert [[d["mrid"] for d in s["dependents"]] for s in seen["steps"]] == [[scenario["cs"]]]
    assert seen["capacityMW"] is None
    assert scenario["gu2"] not in {n["mrid"] for n in seen["subgraph"]["nodes"]}


UPSTREAM = """query($m: ID!) { dependencies(mrid: $m, direction: UPSTREAM) { root { mrid } capacityMW
  steps { depth domain capacityMW dependents { mrid } } subgraph { nodes { mrid } } } }"""


def test_dependencies_upstream_step_by_step_through_visible_objects_only(
    api: Api, scenario: dict[str, str], tokens: dict[str, str]
) -> None:
    # Unit B burns gas from the second offtake, fed past the compressor, which the substation's supply
    # point powers: unit -> offtake -> gas upstream -> compressor -> electricity supply.
    admin = data(api, UPSTREAM, {"m": scenario["gu2"]}, tokens["admin"])["dependencies"]
    assert admin["root"] == {"mrid": scenario["gu2"]}
    assert admin["steps"] == [
        {"depth": 1, "domain": "GAS", "capacityMW": None, "dependents": [{"mrid": scenario["off2"]}]},
        {"depth": 2, "domain": "ELECTRICITY", "capacityMW": None, "dependents": [{"mrid": scenario["esp"]}]},
    ]
    # The way there: the offtake's node, the compressor into it, the gas upstream of that, and what
    # contains the supply point; nothing downstream of the unit's gas (the first offtake's unit).
    nodes = {n["mrid"] for n in admin["subgraph"]["nodes"]}
    assert {scenario[k] for k in ("n3", "cs", "n2", "pipe", "n1", "esp", "vl", "sub")} <= nodes
    assert scenario["gu"] not in nodes
    # Unit A's gas comes from the entry alone: no compressor, no electricity on the way.
    first = data(api, UPSTREAM, {"m": scenario["gu"]}, tokens["admin"])["dependencies"]
    assert [[d["mrid"] for d in s["dependents"]] for s in first["steps"]] == [[scenario["off1"]]]
    # Cycle-safe and still downstream by default: the two directions from the compressor differ.
    down = data(api, STEPS, {"m": scenario["cs"]}, tokens["admin"])["dependencies"]
    up = data(api, UPSTREAM, {"m": scenario["cs"]}, tokens["admin"])["dependencies"]
    assert [[d["mrid"] for d in s["dependents"]] for s in down["steps"]] == [[scenario["gu2"]]]
    assert [[d["mrid"] for d in s["dependents"]] for s in up["steps"]] == [[scenario["esp"]]]
    # A caller who may not see the gas stops at the unit, and learns nothing beyond: the same answer
    # as for an object with no upstream at all.
    public = data(api, UPSTREAM, {"m": scenario["gu"]}, tokens["public"])["dependencies"]
    assert public["steps"] == [] and public["subgraph"]["nodes"] == [{"mrid": scenario["gu"]}]
    hidden = api.query(UPSTREAM, {"m": scenario["gu2"]}, token=tokens["public"], raw=True)
    missing = api.query(UPSTREAM, {"m": scenario["gu2"] + "x"}, token=tokens["public"], raw=True)
    assert hidden.content == missing.content


def test_me_and_ontology(api: Api, tokens: dict[str, str]) -> None:
    body = data(
        api,
        "{ me { subject org clearance roles anonymous } ontologyClasses { name domain } }",
        {},
        tokens["ngt"],
    )
    assert body["me"] == {
        "subject": "ngt",
        "org": "ngt",
        "clearance": "OFFICIAL",
        "roles": [],
        "anonymous": False,
    }
    names = {c["name"]: c["domain"] for c in body["ontologyClasses"]}
    assert names["GasPipe"] == "GAS" and names["ACLineSegment"] == "ELECTRICITY"


def test_relations_among_hidden_endpoint_as_missing(
    api: Api, scenario: dict[str, str], tokens: dict[str, str]
) -> None:
    q = """query($m: [ID!]!) {
      relationsAmong(mrids: $m) { nodes { mrid } edges { source target type key } } }"""
    wanted = [scenario["brk"], scenario["bay"], scenario["vl"], scenario["line"]]
    # The hub (BaseVoltage) is hidden from the grid operator: its edges to the breaker and the line are
    # left out exactly as those of an mRID that does not exist.
    with_hidden = api.query(q, {"m": [*wanted, scenario["hub"]]}, token=tokens["ngt"], raw=True)
    with_missing = api.query(q, {"m": [*wanted, scenario["hub"] + "-nope"]}, token=tokens["ngt"], raw=True)
    assert with_hidden.status_code == with_missing.status_code == 200
    assert with_hidden.content == with_missing.content
    got = with_hidden.json()["data"]["relationsAmong"]
    assert {n["mrid"] for n in got["nodes"]} == set(wanted)
    assert {(e["source"], e["target"], e["key"]) for e in got["edges"]} == {
        (scenario["brk"], scenario["bay"], "equipmentContainer"),
        (scenario["bay"], scenario["vl"], "voltageLevel"),
        (scenario["line"], scenario["vl"], "equipmentContainer"),
    }
    # Whoever may see the hub gets its relationships among the same objects.
    admin = data(api, q, {"m": [*wanted, scenario["hub"]]}, tokens["admin"])["relationsAmong"]
    assert (scenario["brk"], scenario["hub"]) in {(e["source"], e["target"]) for e in admin["edges"]}
    assert (scenario["line"], scenario["hub"]) in {(e["source"], e["target"]) for e in admin["edges"]}
