"""Property-based leak test: random labelled graphs, random callers, every query shape, against real Neo4j.

Each response is compared with an oracle that computes the answer in Python from the generated graph and
the caller's attributes (with its own evaluation of the label pool, not the guard's Cypher). Hidden and
missing objects must give byte-identical responses, counts and page totals must match the visible set,
and no path, neighbourhood or dependency report may step onto a hidden node.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from graphkit import Api, Obj, Rel, write_graph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.graph_schema import cypher
from hub.labels import LEVELS, evaluate, parse
from ontology.loader import load_ontology

pytestmark = pytest.mark.services

ONT = load_ontology()
RANK = {level: i for i, level in enumerate(LEVELS)}


def _rel(qname: str) -> str:
    assoc = ONT.association_by_qname(qname)
    assert assoc is not None, qname
    return assoc.rel_type


CLASSES = [
    "Substation",
    "VoltageLevel",
    "Bay",
    "Breaker",
    "ACLineSegment",
    "ThermalGeneratingUnit",
    "BaseVoltage",
    "ElectricitySupplyPoint",
    "GasInnerNode",
    "GasSource",
    "GasPipe",
    "GasCompressorStation",
    "GasOfftake",
]
# Associations the generator may draw, by qname: (owner class, target class) must fit the ontology.
ASSOCIATIONS = [
    "VoltageLevel.Substation",
    "Bay.VoltageLevel",
    "Equipment.EquipmentContainer",
    "ConductingEquipment.BaseVoltage",
    "GasConnection.FromNode",
    "GasConnection.ToNode",
    "GasOfftake.Node",
    "GasOfftake.GeneratingUnits",
    "ElectricitySupplyPoint.GasCompressorStation",
]
CONTAINMENT = {
    _rel(q) for q in ("VoltageLevel.Substation", "Bay.VoltageLevel", "Equipment.EquipmentContainer")
}
FROM_NODE, TO_NODE, AT_NODE = (
    _rel("GasConnection.FromNode"),
    _rel("GasConnection.ToNode"),
    _rel("GasOfftake.Node"),
)
COUPLING = {_rel("GasOfftake.GeneratingUnits"), _rel("ElectricitySupplyPoint.GasCompressorStation")}


@dataclass(frozen=True)
class Who:
    clearance: str
    org: str | None
    groups: tuple[str, ...]
    roles: tuple[str, ...]


def label_pool(t: str) -> list[tuple[str, Callable[[Who], bool]]]:
    """Label expressions over this run's tokens, each with the oracle's own idea of who may see it."""
    return [
        ("classification=PUBLIC", lambda w: True),
        ("classification=OFFICIAL", lambda w: RANK[w.clearance] >= 1),
        ("classification=SECRET", lambda w: RANK[w.clearance] >= 3),
        (f"org={t}a", lambda w: w.org == f"{t}a"),
        (f"org={t}b", lambda w: w.org == f"{t}b"),
        (f"group={t}g", lambda w: f"{t}g" in w.groups),
        (f"org={t}a|classification=SECRET", lambda w: w.org == f"{t}a" or RANK[w.clearance] >= 3),
        (f"org={t}b&classification=OFFICIAL", lambda w: w.org == f"{t}b" and RANK[w.clearance] >= 1),
        (f"(org={t}a|org={t}b)&group={t}g", lambda w: w.org in (f"{t}a", f"{t}b") and f"{t}g" in w.groups),
        ("role=admin", lambda w: "admin" in w.roles),
    ]


@dataclass
class Graph:
    nodes: dict[str, tuple[str, int, float | None]]  # mrid -> (class, label index, maxOperatingP)
    edges: list[tuple[str, str, str]]  # (source, type, target)


@st.composite
def graphs(draw: st.DrawFn, prefix: str) -> Graph:
    n = draw(st.integers(min_value=2, max_value=10))
    nodes: dict[str, tuple[str, int, float | None]] = {}
    for i in range(n):
        cls = draw(st.sampled_from(CLASSES))
        power = draw(st.sampled_from([100.0, 250.0, 400.0])) if cls == "ThermalGeneratingUnit" else None
        nodes[f"{prefix}{i:02d}"] = (cls, draw(st.integers(0, 9)), power)
    ids = list(nodes)
    edges: set[tuple[str, str, str]] = set()
    pairs = draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=3 * n))
    for a, b in pairs:
        if a == b:
            continue
        for qname in ASSOCIATIONS:
            assoc = ONT.association_by_qname(qname)
            assert assoc is not None
            if ONT.is_a(nodes[a][0], assoc.owner) and ONT.is_a(nodes[b][0], assoc.target):
                edges.add((a, assoc.rel_type, b))
                break
    return Graph(nodes, sorted(edges))


def callers(t: str) -> st.SearchStrategy[Who]:
    return st.builds(
        Who,
        clearance=st.sampled_from(LEVELS),
        org=st.sampled_from([None, f"{t}a", f"{t}b"]),
        groups=st.sampled_from([(), (f"{t}g",)]),
        roles=st.sampled_from([(), ("admin",)]),
    )


# ------------------------------------------------------------------------------------------ oracle


class Oracle:
    def __init__(self, g: Graph, who: Who, pool: list[tuple[str, Callable[[Who], bool]]]) -> None:
        self.g = g
        self.visible = {m for m, (_, li, _) in g.nodes.items() if pool[li][1](who)}
        self.out: dict[str, list[tuple[str, str]]] = {m: [] for m in g.nodes}
        self.inc: dict[str, list[tuple[str, str]]] = {m: [] for m in g.nodes}
        for s, t, d in g.edges:
            self.out[s].append((t, d))
            self.inc[d].append((t, s))

    def undirected(self, m: str) -> set[str]:
        return {d for _, d in self.out[m]} | {s for _, s in self.inc[m]}

    def bfs(self, root: str, depth: int, step: Callable[[str], set[str]]) -> set[str]:
        if root not in self.visible:
            return set()
        seen, frontier = {root}, [root]
        for _ in range(depth):
            nxt = []
            for m in frontier:
                for x in step(m):
                    if x in self.visible and x not in seen:
                        seen.add(x)
                        nxt.append(x)
            frontier = nxt
        return seen

    def induced(self, nodes: set[str]) -> set[tuple[str, str, str]]:
        return {(s, d, t) for s, t, d in self.g.edges if s in nodes and d in nodes}

    def distance(self, a: str, b: str) -> int | None:
        if a not in self.visible or b not in self.visible:
            return None
        dist = {a: 0}
        queue = deque([a])
        while queue:
            m = queue.popleft()
            for x in self.undirected(m):
                if x in self.visible and x not in dist:
                    dist[x] = dist[m] + 1
                    queue.append(x)
        return dist.get(b)

    def contained(self, root: str, depth: int) -> set[str]:
        return self.bfs(root, depth, lambda m: {s for t, s in self.inc[m] if t in CONTAINMENT})

    def region(self, start: str) -> set[str]:
        """What ``start`` supplies within its domain: gas downstream, or what an electricity object holds."""
        if ONT.domain(self.g.nodes[start][0]) == "Gas":

            def down(m: str) -> set[str]:
                gas = {s for t, s in self.inc[m] if t in (FROM_NODE, AT_NODE)} | {
                    d for t, d in self.out[m] if t == TO_NODE
                }
                return {x for x in gas if ONT.domain(self.g.nodes[x][0]) == "Gas"}

            return self.bfs(start, 10_000, down)
        return self.contained(start, 4)

    def dependents(self, root: str) -> set[str]:
        """Across the couplings, transitively: each step's region's coupled objects in the other domain
        that were not reached before, until a step reaches nothing new."""
        if root not in self.visible:
            return set()
        reached, found, frontier = {root}, set(), [root]
        while frontier:
            other = "Electricity" if ONT.domain(self.g.nodes[frontier[0]][0]) == "Gas" else "Gas"
            coupled = {
                d
                for start in frontier
                for m in self.region(start)
                for t, d in self.out[m]
                if t in COUPLING and d in self.visible and ONT.domain(self.g.nodes[d][0]) == other
            }
            frontier = sorted(coupled - reached)
            reached |= coupled
            found |= set(frontier)
        return found


# --------------------------------------------------------------------------------------------- test

counter = itertools.count()
_primed: set[str] = set()


def _prime_labels(driver: Any, api: Api, t: str, pool: list[tuple[str, Callable[[Who], bool]]]) -> None:
    """Store the run's labels once and wait out the API's label-table cache, as a new producer label would."""
    if t in _primed:
        return
    from hub.labels import intern

    rows = [dict(zip(("id", "expr"), intern(text), strict=True)) for text, _ in pool]
    driver.execute_query(
        "UNWIND $rows AS r MERGE (l:SecurityLabel {id: r.id}) SET l.expr = r.expr", rows=rows
    )
    time.sleep(api.settings.label_cache_ttl_s + 0.3)
    _primed.add(t)


def _ok(api: Api, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
    body = api.query(query, variables, token=token)
    assert "errors" not in body, body
    return body["data"]


def _global_counts(driver: Any, who: Who) -> tuple[dict[str, int], frozenset[tuple[Any, ...]]]:
    records, _, _ = driver.execute_query(
        cypher(
            "MATCH (n:Entity) WHERE n.@class IS NOT NULL "
            "OPTIONAL MATCH (l:SecurityLabel {id: n.@label}) "
            "RETURN n.@class AS cls, n.@label AS lid, l.expr AS expr, count(*) AS c, max(n.mrid) AS top"
        )
    )
    from hub.labels import Authorizations

    auths = Authorizations.from_claims(
        clearance=who.clearance, org=who.org, roles=who.roles, groups=who.groups
    )
    counts: dict[str, int] = {}
    for r in records:
        if r["expr"] is not None and evaluate(parse(r["expr"]), auths):
            counts[r["cls"]] = counts.get(r["cls"], 0) + r["c"]
    return counts, frozenset((r["cls"], r["lid"], r["c"], r["top"]) for r in records)


# HUB_SECURITY_EXAMPLES sets the example count, as for tests/security/test_write_properties.py: the
# suite's default keeps CI short; a long run on demand is e.g. HUB_SECURITY_EXAMPLES=10000.
@settings(
    max_examples=int(os.environ.get("HUB_SECURITY_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_query_shape_matches_the_oracle(
    api: Api, neo4j_driver: Any, run_id: str, data: st.DataObject
) -> None:
    t = run_id
    pool = label_pool(t)
    _prime_labels(neo4j_driver, api, t, pool)
    prefix = f"{t}x{next(counter)}-"
    g = data.draw(graphs(prefix), label="graph")
    who = data.draw(callers(t), label="caller")
    objects = [
        Obj(m, cls, pool[li][0], f"{prefix} n{m[-2:]}", {"maxOperatingP": p} if p is not None else None)
        for m, (cls, li, p) in g.nodes.items()
    ]
    write_graph(
        neo4j_driver,
        ONT,
        objects,
        [Rel(s, ty, d) for s, ty, d in g.edges],
        label_ttl_s=api.settings.label_cache_ttl_s,
    )
    try:
        _check(api, neo4j_driver, g, who, Oracle(g, who, pool), prefix, data)
    finally:
        neo4j_driver.execute_query("MATCH (n:Entity) WHERE n.mrid STARTS WITH $p DETACH DELETE n", p=prefix)


def _check(api: Api, driver: Any, g: Graph, who: Who, o: Oracle, prefix: str, data: st.DataObject) -> None:
    token = api.token("leak", who.org, who.clearance, who.roles, who.groups)
    mrids = sorted(g.nodes)

    # one object: visible ones come back, hidden ones answer exactly like missing ones
    q_obj = "query($m: ID!) { object(mrid: $m) { mrid className label } }"
    missing = api.query(q_obj, {"m": prefix + "zz"}, token=token, raw=True).content
    for m in mrids:
        resp = api.query(q_obj, {"m": m}, token=token, raw=True)
        if m in o.visible:
            got = resp.json()["data"]["object"]
            assert got["mrid"] == m and got["className"] == g.nodes[m][0]
        else:
            assert resp.content == missing

    # lists by (super)class, paged, with totals; plus association fields through the batch loaders
    cls = data.draw(
        st.sampled_from(
            [
                "IdentifiedObject",
                "ConductingEquipment",
                "EquipmentContainer",
                "GasObject",
                "GasNode",
                "GeneratingUnit",
            ]
        ),
        label="className",
    )
    want = sorted(m for m in o.visible if ONT.is_a(g.nodes[m][0], cls))
    q_list = """query($c: String, $n: String, $a: String) {
      objects(className: $c, name: $n, first: 3, after: $a) {
      totalCount pageInfo { hasNextPage endCursor } nodes { mrid
        ... on ConductingEquipment { baseVoltage { mrid } }
        ... on EquipmentContainer { equipments { mrid } }
        ... on GasNode { outgoingConnections { mrid } offtakes { mrid } }
        ... on GasOfftake { generatingUnits { mrid } } } } }"""
    seen: list[str] = []
    after = None
    while True:
        page = _ok(api, q_list, {"c": cls, "n": prefix, "a": after}, token)["objects"]
        assert page["totalCount"] == len(want)
        for node in page["nodes"]:
            seen.append(node["mrid"])
            for key, (rel_qname, forward) in {
                "baseVoltage": ("ConductingEquipment.BaseVoltage", True),
                "equipments": ("Equipment.EquipmentContainer", False),
                "outgoingConnections": ("GasConnection.FromNode", False),
                "offtakes": ("GasOfftake.Node", False),
                "generatingUnits": ("GasOfftake.GeneratingUnits", True),
            }.items():
                if key not in node:
                    continue
                rt = _rel(rel_qname)
                m = node["mrid"]
                linked = (
                    {d for ty, d in o.out[m] if ty == rt}
                    if forward
                    else {s for ty, s in o.inc[m] if ty == rt}
                )
                expect = sorted(linked & o.visible)
                value = node[key]
                got = (
                    sorted(x["mrid"] for x in value)
                    if isinstance(value, list)
                    else ([value["mrid"]] if value else [])
                )
                assert got == expect, (key, m)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == want

    # search by the example's own name token
    hits = _ok(api, "query($t: String!) { search(text: $t, first: 50) { mrid } }", {"t": prefix}, token)[
        "search"
    ]
    assert sorted(h["mrid"] for h in hits) == sorted(o.visible)

    # neighbourhood to a random depth
    root = data.draw(st.sampled_from(mrids), label="root")
    depth = data.draw(st.integers(0, 3), label="depth")
    q_nb = """query($m: ID!, $d: Int!) {
      neighbourhood(mrid: $m, depth: $d) { nodes { mrid } edges { source target type } } }"""
    nb = _ok(api, q_nb, {"m": root, "d": depth}, token)["neighbourhood"]
    reach = o.bfs(root, depth, o.undirected)
    assert {n["mrid"] for n in nb["nodes"]} == reach
    assert {(e["source"], e["target"], e["type"]) for e in nb["edges"]} == o.induced(reach)

    # shortest path through visible objects only
    a, b = data.draw(st.sampled_from(mrids), label="from"), data.draw(st.sampled_from(mrids), label="to")
    q_path = """query($a: ID!, $b: ID!) {
      shortestPath(from: $a, to: $b, via: ANY) { nodes { mrid } edges { source target } } }"""
    path = _ok(api, q_path, {"a": a, "b": b}, token)["shortestPath"]
    dist = o.distance(a, b)
    if dist is None:
        assert path is None
    else:
        nodes = [n["mrid"] for n in path["nodes"]]
        assert len(nodes) == dist + 1 and nodes[0] == a and nodes[-1] == b
        assert set(nodes) <= o.visible
        for x, y in itertools.pairwise(nodes):
            assert y in o.undirected(x)
    # Along the physical network (the default): never through a hidden object, never longer than
    # the shortest way along any relationship; a hidden end answers exactly as a missing one.
    q_phys = """query($a: ID!, $b: ID!) { shortestPath(from: $a, to: $b) { nodes { mrid } } }"""
    phys = api.query(q_phys, {"a": a, "b": b}, token=token)
    if phys.get("errors"):
        [error] = phys["errors"]
        assert "not on the physical network" in error["message"]
        assert a in o.visible and b in o.visible  # the class of what one cannot see is never named
    elif phys["data"]["shortestPath"] is not None:
        nodes = [n["mrid"] for n in phys["data"]["shortestPath"]["nodes"]]
        assert set(nodes) <= o.visible and nodes[0] == a and nodes[-1] == b
        assert dist is not None and len(nodes) >= dist + 1
    if a not in o.visible or b not in o.visible:
        ends = {"a": a if a in o.visible else prefix + "zz", "b": b if b in o.visible else prefix + "zz"}
        assert (
            api.query(q_phys, {"a": a, "b": b}, token=token, raw=True).content
            == api.query(q_phys, ends, token=token, raw=True).content
        )

    # containment and cross-domain dependencies
    q_ct = "query($m: ID!) { containment(mrid: $m, depth: 3) { nodes { mrid } } }"
    ct = _ok(api, q_ct, {"m": root}, token)["containment"]
    assert {n["mrid"] for n in ct["nodes"]} == o.contained(root, 3)
    q_dep = """query($m: ID!) {
      dependencies(mrid: $m) { root { mrid } dependents { mrid } capacityMW subgraph { nodes { mrid } } } }"""
    dep = _ok(api, q_dep, {"m": root}, token)["dependencies"]
    expect_dep = o.dependents(root)
    assert {d["mrid"] for d in dep["dependents"]} == expect_dep
    assert {n["mrid"] for n in dep["subgraph"]["nodes"]} <= o.visible
    powers = [p for d in expect_dep if (p := g.nodes[d][2]) is not None]
    assert dep["capacityMW"] == (pytest.approx(sum(powers)) if powers else None)
    if root not in o.visible:
        assert dep["root"] is None
        assert (
            api.query(q_dep, {"m": root}, token=token, raw=True).content
            == api.query(q_dep, {"m": prefix + "zz"}, token=token, raw=True).content
        )

    # counts over the whole graph (other tests may write meanwhile: retry until a stable snapshot)
    for _attempt in range(5):
        before, snap1 = _global_counts(driver, who)
        got_counts = {
            c["className"]: c["count"]
            for c in _ok(api, "{ counts { className count } }", {}, token)["counts"]
        }
        _, snap2 = _global_counts(driver, who)
        if snap1 == snap2:
            assert got_counts == before
            break
    else:
        pytest.fail("the graph kept changing under the counts check")
