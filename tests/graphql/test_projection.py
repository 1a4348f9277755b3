"""Fetch only what is asked: a query reads the properties its selection names, and returns the same
values for them as a read of every property does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from graphkit import Api, Obj, Rel

from hub import guard as guard_module
from ontology.loader import load_ontology

pytestmark = pytest.mark.services

PUBLIC = "classification=PUBLIC"
HIDDEN = "group=projection-admins"


def rel(qname: str) -> str:
    assoc = load_ontology().association_by_qname(qname)
    assert assoc is not None, qname
    return assoc.rel_type


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The Cypher every guarded read of the in-process API sends, in order."""
    queries: list[str] = []
    original = guard_module.Guard.read

    async def recording(self: Any, cypher: str, params: Any = None) -> list[dict[str, Any]]:
        queries.append(cypher)
        return await original(self, cypher, params)

    monkeypatch.setattr(guard_module.Guard, "read", recording)
    yield queries


@pytest.fixture
def lines(run_id: str, graph_writer: Callable[[list[Obj], list[Rel]], None]) -> dict[str, Obj]:
    objects = [
        Obj(
            f"{run_id}-line-{i:02d}",
            "ACLineSegment",
            HIDDEN if i % 5 == 0 else PUBLIC,
            f"Line {i} {run_id}",
            {"r": 0.1 * i, "x": 0.3 * i, "length": 10.0 + i, "bch": 1e-6 * i, "shortName": f"L{i}"},
            x=float(i),
            y=50.0,
        )
        for i in range(12)
    ]
    objects.append(Obj(f"{run_id}-vl", "VoltageLevel", PUBLIC, f"VL {run_id}", {"highVoltageLimit": 420.0}))
    objects.append(Obj(f"{run_id}-sub", "Substation", PUBLIC, f"Sub {run_id}", {"shortName": "S"}))
    rels = [Rel(f"{run_id}-vl", rel("VoltageLevel.Substation"), f"{run_id}-sub")]
    rels += [
        Rel(o.mrid, rel("Equipment.EquipmentContainer"), f"{run_id}-vl")
        for o in objects
        if o.cls == "ACLineSegment"
    ]
    graph_writer(objects, rels)
    return {o.mrid: o for o in objects}


PAGE = """query($n: String) { objects(className: "ACLineSegment", name: $n, first: 100) {
  nodes { mrid name ... on ACLineSegment { length r } } } }"""
# The same page with every attribute listed: that field reads all properties, as every query did before.
FULL = """query($n: String) { objects(className: "ACLineSegment", name: $n, first: 100) {
  nodes { mrid name label version attributes { key } ... on ACLineSegment { length r x bch } } } }"""


def _objects_query(sent: list[str]) -> str:
    found = [q for q in sent if q.startswith("MATCH (n:`ACLineSegment`)")]
    assert len(found) == 1, sent
    return found[0]


def test_a_projected_page_reads_only_the_selected_properties_and_returns_the_same_values(
    api: Api, lines: dict[str, Obj], run_id: str, sent: list[str]
) -> None:
    token = api.token(clearance="PUBLIC")
    projected = api.query(PAGE, {"n": run_id}, token=token)["data"]["objects"]["nodes"]
    cypher = _objects_query(sent)
    assert ".*" not in cypher
    for key in ("mrid", "name", "length", "r", "_class"):
        assert f".`{key}`" in cypher, cypher
    for key in ("x", "bch", "shortName", "_label", "_version"):
        assert f".`{key}`" not in cypher, cypher

    sent.clear()
    full = api.query(FULL, {"n": run_id}, token=token)["data"]["objects"]["nodes"]
    assert "n {.*}" in _objects_query(sent)

    visible = sorted(m for m, o in lines.items() if o.cls == "ACLineSegment" and o.label == PUBLIC)
    assert [n["mrid"] for n in projected] == visible
    assert projected == [{k: n[k] for k in ("mrid", "name", "length", "r")} for n in full]
    for node in projected:
        props = lines[node["mrid"]].props or {}
        assert (node["length"], node["r"]) == (props["length"], props["r"])
        assert node["name"] == lines[node["mrid"]].name


def test_nested_objects_and_a_single_object_are_projected_too(
    api: Api, lines: dict[str, Obj], run_id: str, sent: list[str]
) -> None:
    token = api.token(clearance="PUBLIC")
    query = """query($m: ID!) { object(mrid: $m) { mrid ... on VoltageLevel { highVoltageLimit
      substation { name } equipments { mrid ... on ACLineSegment { length } } } } }"""
    found = api.query(query, {"m": f"{run_id}-vl"}, token=token)["data"]["object"]
    assert found["highVoltageLimit"] == 420.0
    assert found["substation"] == {"name": f"Sub {run_id}"}
    visible = sorted(m for m, o in lines.items() if o.cls == "ACLineSegment" and o.label == PUBLIC)
    assert sorted(e["mrid"] for e in found["equipments"]) == visible
    assert all(e["length"] == (lines[e["mrid"]].props or {})["length"] for e in found["equipments"])
    cypher = next(q for q in sent if q.startswith("OPTIONAL MATCH (n:Entity {mrid: $mrid})"))
    assert ".*" not in cypher
    assert ".`highVoltageLimit`" in cypher and ".`length`" in cypher and ".`name`" in cypher
    assert ".`shortName`" not in cypher and ".`bch`" not in cypher

    # Below the prefetch depth, the batch loader projects the same way (and answers the same).
    deep = """query($m: ID!) { object(mrid: $m) { ... on Substation { voltageLevels { equipments {
      ... on ACLineSegment { equipmentContainer { ... on VoltageLevel { substation { name shortName } } } }
    } } } } }"""
    sent.clear()
    subs = api.query(deep, {"m": f"{run_id}-sub"}, token=token)["data"]["object"]["voltageLevels"]
    names = {e["equipmentContainer"]["substation"]["name"] for vl in subs for e in vl["equipments"] if e}
    assert names == {f"Sub {run_id}"}
    assert not any(".*" in q for q in sent), sent


def test_graph_views_read_the_name_and_point_only_when_selected(
    api: Api, lines: dict[str, Obj], run_id: str, sent: list[str]
) -> None:
    token = api.token(clearance="PUBLIC")
    lean = """query($m: ID!) { neighbourhood(mrid: $m, depth: 1) { nodes { mrid className } } }"""
    rich = """query($m: ID!) { neighbourhood(mrid: $m, depth: 1) {
      nodes { mrid className name label point { x y } } edges { source target key } } }"""
    first = api.query(lean, {"m": f"{run_id}-vl"}, token=token)["data"]["neighbourhood"]["nodes"]
    assert sent and not any(".`name`" in q or "_x" in q for q in sent), sent
    sent.clear()
    full = api.query(rich, {"m": f"{run_id}-vl"}, token=token)["data"]["neighbourhood"]["nodes"]
    assert any(".name" in q or ".`name`" in q for q in sent), sent
    assert first == [{"mrid": n["mrid"], "className": n["className"]} for n in full]
    by_mrid = {n["mrid"]: n for n in full}
    visible = [m for m, o in lines.items() if o.label == PUBLIC]
    assert sorted(by_mrid) == sorted(visible)
    for mrid in visible:
        o = lines[mrid]
        assert by_mrid[mrid]["name"] == o.name
        assert by_mrid[mrid]["point"] == ({"x": o.x, "y": o.y} if o.x is not None else None)


def test_a_typed_page_is_projected_and_reads_its_associations_in_the_same_query(
    api: Api, lines: dict[str, Obj], run_id: str, sent: list[str]
) -> None:
    token = api.token(clearance="PUBLIC")
    query = """query($n: String!) { acLineSegments(where: {name: {contains: $n}}, first: 100) {
      nodes { mrid length equipmentContainer { mrid ... on VoltageLevel { highVoltageLimit } } } } }"""
    nodes = api.query(query, {"n": run_id}, token=token)["data"]["acLineSegments"]["nodes"]
    visible = sorted(m for m, o in lines.items() if o.cls == "ACLineSegment" and o.label == PUBLIC)
    assert [n["mrid"] for n in nodes] == visible
    for node in nodes:
        assert node["length"] == (lines[node["mrid"]].props or {})["length"]
        assert node["equipmentContainer"] == {"mrid": f"{run_id}-vl", "highVoltageLimit": 420.0}
    # One query: the page's own properties, its container's beside them (no batch load per level).
    assert len(sent) == 1, sent
    assert ".*" not in sent[0]
    assert ".`length`" in sent[0] and ".`highVoltageLimit`" in sent[0]
    assert ".`r`" not in sent[0] and ".`shortName`" not in sent[0]
