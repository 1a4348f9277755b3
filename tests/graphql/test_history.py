"""Kept history and as-of queries end to end: events through real Kafka and the real ingest worker into
Neo4j, read through the API by callers of two clearances, compared with the reference model
(tests/history_model.py) that replays the events up to each instant.

* a stream with updates, relabels, deletes and re-creations: ``object(asOf)`` at every instant where
  anything changes (and between), ``objects(asOf)``, ``history`` and ``changes`` equal the model for each
  caller;
* a late arrival (a newer version whose valid time is earlier than an applied one): ``recordedAsOf`` before
  it shows what the hub knew then, after it the correction; the current graph keeps the newest version;
* a leak test (hypothesis): two objects whose versions agree on everything a caller may see and differ in
  the hidden ones (contents and labels, the current version's included) read byte-identically for that
  caller, whatever the current label.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import neo4j
import pytest
from aiokafka import AIOKafkaProducer
from graphkit import Api, serve
from history_model import Step, Version, state_at, versions, visible_versions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_subscriptions import _create_topics, worker

from hub.kafka_clients import admin_options

pytestmark = pytest.mark.services

T0 = datetime(2025, 3, 1, tzinfo=UTC)
PUBLIC, OFFICIAL, SECRET = "classification=PUBLIC", "classification=OFFICIAL", "classification=SECRET"
LABELS = [PUBLIC, OFFICIAL, SECRET]
CLEARANCE = {"public": "PUBLIC", "official": "OFFICIAL"}
SEES = {
    "public": lambda label: label == PUBLIC,
    "official": lambda label: label in (PUBLIC, OFFICIAL),
}
NAME = "IdentifiedObject.name"
# The association of the tests' references, by relationship type (by class and type where types share).
REFERENCE = {
    "BASE_VOLTAGE": "ConductingEquipment.BaseVoltage",
    "EQUIPMENT_CONTAINER": "Equipment.EquipmentContainer",
    "SUBSTATION": "VoltageLevel.Substation",
    "CONDUCTING_EQUIPMENT": "Terminal.ConductingEquipment",
    "CONNECTIVITY_NODE": "Terminal.ConnectivityNode",
    "FROM_NODE": "GasConnection.FromNode",
    "TO_NODE": "GasConnection.ToNode",
    "POWERS_COMPRESSOR_STATION": "ElectricitySupplyPoint.GasCompressorStation",
    "SUPPLIES_GAS_TO": "GasOfftake.GeneratingUnits",
    ("GasStorage", "AT_NODE"): "GasStorage.Node",
    ("GasOfftake", "AT_NODE"): "GasOfftake.Node",
}
# Attributes other than the name the tests state, by key.
ATTRIBUTE = {"maxOperatingP": "GeneratingUnit.maxOperatingP"}
MANY = {"SUPPLIES_GAS_TO"}
CONTAINMENT = """query($m: ID!, $t: DateTime) {
  containment(mrid: $m, depth: 3, asOf: $t) { nodes { mrid } edges { source target type } } }"""
NEIGHBOURHOOD = """query($m: ID!, $d: Int, $t: DateTime, $r: DateTime) {
  neighbourhood(mrid: $m, depth: $d, asOf: $t, recordedAsOf: $r) {
    nodes { mrid } edges { source target type } } }"""

OBJECT = """query($m: ID!, $t: DateTime, $r: DateTime) {
  object(mrid: $m, asOf: $t, recordedAsOf: $r) { mrid name version label className } }"""
OBJECTS = """query($n: String, $t: DateTime, $r: DateTime, $after: String) {
  objects(name: $n, asOf: $t, recordedAsOf: $r, first: 50, after: $after) {
    nodes { mrid name version label } pageInfo { hasNextPage endCursor } totalCount } }"""
HISTORY = """query($m: ID!, $r: DateTime) {
  history(mrid: $m, recordedAsOf: $r) {
    mrid version className label producer eventId validFrom recordedAt deleted
    attributes { key value } references { type target } } }"""
HISTORY_PAGE = (
    """query($m: ID!, $after: Long) { history(mrid: $m, first: 1, afterVersion: $after) { version } }"""
)
CHANGES = """query($f: DateTime!, $t: DateTime!, $c: String, $after: String) {
  changes(from: $f, to: $t, className: $c, first: 50, after: $after) {
    changes { mrid className change changedKeys before { version name: attributes { key value } }
              after { version name: attributes { key value } } }
    hasNextPage endCursor } }"""


@dataclass
class Env:
    api: Api
    prefix: str
    bootstrap: str
    driver: neo4j.Driver
    tokens: dict[str, str]

    def publish(self, steps: list[Step]) -> None:
        asyncio.run(_send(self.bootstrap, f"{self.prefix}.cim.ingest.p1", steps))

    def wait_for_versions(self, mrid_prefix: str, count: int, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        found = -1
        while time.monotonic() < deadline:
            records, _, _ = self.driver.execute_query(
                "MATCH (v:ObjectVersion) WHERE v.mrid STARTS WITH $p RETURN count(v) AS c", p=mrid_prefix
            )
            found = records[0]["c"]
            if found >= count:
                # The stale events of the stream come after the last version; let them go by too.
                time.sleep(0.5)
                return
            time.sleep(0.2)
        raise AssertionError(f"{found} of {count} versions of {mrid_prefix} kept after {timeout_s} s")

    def query(self, caller: str, text: str, variables: dict[str, Any]) -> Any:
        body = self.api.query(text, variables, token=self.tokens[caller])
        assert "errors" not in body, body
        return body["data"]


def _event(s: Step) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "id": f"{s.mrid}-{s.kind}-{s.version}",
        "source": "p1",
        "type": s.kind,
        "subject": s.mrid,
        "time": s.time.isoformat(),
        "version": s.version,
        "class": s.cls,
    }
    if s.kind == "upsert":
        ev["attributes"] = {NAME: s.props["name"]} if "name" in s.props else {}
        ev["attributes"].update({ATTRIBUTE[k]: v for k, v in s.props.items() if k != "name"})
        ev["label"] = s.label
        if s.rels:
            ev["references"] = {
                REFERENCE.get((s.cls, t)) or REFERENCE[t]: targets if t in MANY else targets[0]
                for t, targets in s.rels.items()
            }
    return ev


async def _send(bootstrap: str, topic: str, steps: list[Step]) -> None:
    producer = AIOKafkaProducer(**admin_options(bootstrap))
    await producer.start()
    try:
        for s in steps:
            await producer.send(topic, json.dumps(_event(s)).encode(), key=s.mrid.encode())
        await producer.flush()
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def env(settings: Any, neo4j_driver: neo4j.Driver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    prefix = f"hist-{os.urandom(4).hex()}"
    asyncio.run(
        _create_topics(settings.kafka_bootstrap, [f"{prefix}.cim.changes", f"{prefix}.cim.ingest.p1"])
    )
    log = tmp_path_factory.mktemp("history") / "worker.log"
    with serve(settings) as api, worker(settings, prefix, log) as proc:
        tokens = {name: api.token(name, "elsewhere", clearance) for name, clearance in CLEARANCE.items()}
        yield Env(api, prefix, settings.kafka_bootstrap, neo4j_driver, tokens)
        assert proc.poll() is None, Path(log).read_text()[-3000:]
    neo4j_driver.execute_query(
        "MATCH (n) WHERE (n:Entity OR n:ObjectVersion) AND n.mrid STARTS WITH $p DETACH DELETE n", p=prefix
    )


# ------------------------------------------------------------------------------------------- the model


def _stream(mrid_prefix: str) -> list[Step]:
    """Updates, relabels, deletes, re-creations and a stale event over five objects; times not in
    version order across objects, every upsert naming the object (so each state shows its version)."""
    o = [f"{mrid_prefix}o{i}" for i in range(5)]
    m = timedelta(minutes=1)
    plan: list[tuple[str, str, int, int, str]] = [
        # mrid, kind, version, minute, label
        (o[0], "upsert", 1, 0, PUBLIC),
        (o[1], "upsert", 1, 1, OFFICIAL),
        (o[2], "upsert", 1, 2, PUBLIC),
        (o[0], "upsert", 2, 5, OFFICIAL),
        (o[1], "upsert", 2, 6, PUBLIC),
        (o[3], "upsert", 1, 7, SECRET),
        (o[2], "delete", 2, 8, PUBLIC),
        (o[0], "upsert", 3, 10, PUBLIC),
        (o[3], "upsert", 2, 11, PUBLIC),
        (o[2], "upsert", 3, 12, OFFICIAL),  # re-created
        (o[1], "delete", 3, 13, PUBLIC),
        (o[4], "upsert", 1, 14, PUBLIC),
        (o[1], "upsert", 5, 15, PUBLIC),  # re-created
        (o[0], "upsert", 2, 16, SECRET),  # stale: not kept, the current graph ignores it too
        (o[4], "upsert", 2, 17, OFFICIAL),
        (o[3], "delete", 3, 18, PUBLIC),
        (o[2], "upsert", 4, 19, PUBLIC),
    ]
    return [
        Step(
            mrid,
            kind,
            v,
            "ACLineSegment",
            T0 + minute * m,
            label,
            {"name": f"{mrid} v{v}"} if kind == "upsert" else {},
            recorded=1,
        )
        for mrid, kind, v, minute, label in plan
    ]


def _late(mrid_prefix: str) -> list[Step]:
    """A newer version of o4 whose valid time is before its applied version 2 (minute 17), and one of o0
    valid before its version 3."""
    return [
        Step(
            f"{mrid_prefix}o4",
            "upsert",
            3,
            "ACLineSegment",
            T0 + timedelta(minutes=15, seconds=30),
            PUBLIC,
            {"name": f"{mrid_prefix}o4 v3"},
            recorded=2,
        ),
        Step(
            f"{mrid_prefix}o0",
            "upsert",
            4,
            "ACLineSegment",
            T0 + timedelta(minutes=9),
            PUBLIC,
            {"name": f"{mrid_prefix}o0 v4"},
            recorded=2,
        ),
    ]


def _instants(steps: list[Step]) -> list[datetime]:
    times = sorted({s.time for s in steps})
    out = [times[0] - timedelta(minutes=1)]
    for t in times:
        out += [t, t + timedelta(seconds=20)]
    return out


def _shown(v: Version | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {
        "mrid": v.mrid,
        "name": v.props.get("name"),
        "version": v.version,
        "label": v.label,
        "className": v.cls,
    }


def _recorded_time(env: Env, mrid_prefix: str) -> datetime:
    """When the hub recorded the stream's first part: the latest recorded time among its versions."""
    records, _, _ = env.driver.execute_query(
        "MATCH (v:ObjectVersion) WHERE v.mrid STARTS WITH $p RETURN max(v._recorded) AS r", p=mrid_prefix
    )
    return datetime.fromtimestamp(records[0]["r"] / 1000, UTC)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


# ------------------------------------------------------------------------------------------- the tests


def test_as_of_history_and_changes_equal_the_replayed_stream(env: Env) -> None:
    p = f"{env.prefix}-a-"
    first = _stream(p)
    env.publish(first)
    env.wait_for_versions(p, sum(len(v) for v in versions(first).values()))
    recorded_1 = _recorded_time(env, p)
    late = _late(p)
    # The late events go in a batch of their own, recorded after the first part.
    time.sleep(1.0)
    env.publish(late)
    steps = first + late
    model = versions(steps)
    env.wait_for_versions(p, sum(len(v) for v in model.values()))

    instants = _instants(steps)
    for caller, sees in SEES.items():
        for recorded, r_time in ((None, None), (1, recorded_1)):
            for t in instants:
                for mrid, kept in model.items():
                    got = env.query(caller, OBJECT, {"m": mrid, "t": _iso(t), "r": _iso(r_time)})["object"]
                    assert got == _shown(state_at(kept, t, recorded, sees)), (caller, mrid, t, recorded)
                page = env.query(caller, OBJECTS, {"n": p, "t": _iso(t), "r": _iso(r_time)})["objects"]
                want = sorted(
                    (s for kept in model.values() if (s := _shown(state_at(kept, t, recorded, sees)))),
                    key=lambda s: s["mrid"],
                )
                assert page["nodes"] == [
                    {k: s[k] for k in ("mrid", "name", "version", "label")} for s in want
                ]
                assert page["totalCount"] == len(want)
            # Without asOf, recordedAsOf alone: the latest state the hub knew then.
            for mrid, kept in model.items():
                got = env.query(caller, OBJECT, {"m": mrid, "t": None, "r": _iso(r_time)})["object"]
                assert got == _shown(state_at(kept, None, recorded, sees))

        for mrid, kept in model.items():
            listed = env.query(caller, HISTORY, {"m": mrid, "r": None})["history"]
            want_versions = visible_versions(kept, sees)
            assert [(h["version"], h["deleted"], h["label"]) for h in listed] == [
                (v.version, v.deleted, v.label) for v in want_versions
            ]
            for h, v in zip(listed, want_versions, strict=True):
                assert datetime.fromisoformat(h["validFrom"]) == v.valid_from
                names = [a["value"] for a in h["attributes"] if a["key"] == "name"]
                assert names == ([] if v.deleted else [v.props["name"]])
            # a page of one after each version: the next visible one
            for i, v in enumerate(want_versions):
                paged = env.query(caller, HISTORY_PAGE, {"m": mrid, "after": v.version})["history"]
                assert [h["version"] for h in paged] == [w.version for w in want_versions[i + 1 : i + 2]]
            before = env.query(caller, HISTORY, {"m": mrid, "r": _iso(recorded_1)})["history"]
            assert [h["version"] for h in before] == [v.version for v in want_versions if v.recorded == 1]

        for a, b in [(instants[0], instants[-1]), (instants[3], instants[12]), (instants[10], instants[25])]:
            got = env.query(caller, CHANGES, {"f": _iso(a), "t": _iso(b), "c": "ACLineSegment"})["changes"]
            listed = [c for c in got["changes"] if c["mrid"].startswith(p)]
            want_changes = []
            for mrid, kept in sorted(model.items()):
                sa, sb = state_at(kept, a, None, sees), state_at(kept, b, None, sees)
                if (sa is None) != (sb is None) or (
                    sa is not None and sb is not None and sa.version != sb.version
                ):
                    kind = "created" if sa is None else "deleted" if sb is None else "updated"
                    want_changes.append((mrid, kind, sa.version if sa else None, sb.version if sb else None))
            assert [
                (
                    c["mrid"],
                    c["change"],
                    (c["before"] or {}).get("version"),
                    (c["after"] or {}).get("version"),
                )
                for c in listed
            ] == want_changes, (caller, a, b)

    # The late arrival: the current graph holds the newest version (o4 v3, o0 v4) as before history; as
    # known when the first part was recorded, minute 16 showed o4's version 1 and minute 9.5 o0's v2.
    o4, o0 = f"{p}o4", f"{p}o0"
    assert env.query("official", OBJECT, {"m": o4, "t": None, "r": None})["object"]["version"] == 3
    at = T0 + timedelta(minutes=16)
    then = env.query("official", OBJECT, {"m": o4, "t": _iso(at), "r": _iso(recorded_1)})["object"]
    now = env.query("official", OBJECT, {"m": o4, "t": _iso(at), "r": None})["object"]
    assert (then["version"], now["version"]) == (1, 3)
    at = T0 + timedelta(minutes=9, seconds=30)
    then = env.query("public", OBJECT, {"m": o0, "t": _iso(at), "r": _iso(recorded_1)})["object"]
    now = env.query("public", OBJECT, {"m": o0, "t": _iso(at), "r": None})["object"]
    # version 2 (OFFICIAL) is absent for the public caller; the correction (version 4) is public
    assert then is None and now["version"] == 4


# ------------------------------------------------------------------------------------------- leak test

_versions = st.lists(
    st.tuples(st.sampled_from(["upsert", "upsert", "delete"]), st.sampled_from(LABELS), st.integers(0, 3)),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=int(os.environ.get("HUB_SECURITY_EXAMPLES", "10")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=_versions, hidden_label=st.sampled_from([OFFICIAL, SECRET]), data=st.data())
def test_a_version_hidden_then_is_hidden_now_whatever_the_current_label(
    env: Env, plan: list[tuple[str, str, int]], hidden_label: str, data: st.DataObject
) -> None:
    # Objects a and b: the same times and versions; where the public caller sees a's version, b's is the
    # same; where it does not, b's differs in contents and in which hidden label it has.
    run = os.urandom(3).hex()
    a, b = f"{env.prefix}-l{run}-a", f"{env.prefix}-l{run}-b"
    steps: list[Step] = []
    for i, (kind, label, salt) in enumerate(plan):
        t = T0 + timedelta(minutes=i)
        visible = label == PUBLIC
        other_label = label if visible else data.draw(st.sampled_from([OFFICIAL, SECRET]))
        steps.append(
            Step(a, kind, i + 1, "ACLineSegment", t, label, {"name": f"x{salt}"} if kind == "upsert" else {})
        )
        b_name = f"x{salt}" if visible else f"hidden{salt}-{hidden_label}"
        steps.append(
            Step(
                b, kind, i + 1, "ACLineSegment", t, other_label, {"name": b_name} if kind == "upsert" else {}
            )
        )
    env.publish(steps)
    model = versions(steps)
    env.wait_for_versions(f"{env.prefix}-l{run}-", sum(len(v) for v in model.values()))

    def view(mrid: str) -> list[Any]:
        out: list[Any] = [env.query("public", HISTORY, {"m": mrid, "r": None})]
        for i in range(-1, len(plan) + 1):
            t = T0 + timedelta(minutes=i, seconds=30)
            out.append(env.query("public", OBJECT, {"m": mrid, "t": _iso(t), "r": None}))
        return json.loads(json.dumps(out).replace(mrid, "MRID"))

    # recordedAt differs between objects only by when their batch committed: compare without it
    def scrub(v: Any) -> Any:
        for h in v[0]["history"]:
            h.pop("recordedAt")
            h.pop("eventId")
        return v

    seen_a, seen_b = scrub(view(a)), scrub(view(b))
    assert seen_a == seen_b
    # and the public caller's view is the model's
    kept = model.get(a, [])
    assert [h["version"] for h in seen_a[0]["history"]] == [
        v.version for v in visible_versions(kept, SEES["public"])
    ]
    for h in seen_a[0]["history"]:
        assert h["label"] == PUBLIC


# ------------------------------------------------------------------------------------------- neighbourhood


def _oracle_neighbourhood(
    model: dict[str, list[Version]], root: str, depth: int, t: datetime | None, sees: Any
) -> tuple[set[str], set[tuple[str, str, str]]]:
    live = {m: st for m, kept in model.items() if (st := state_at(kept, t, None, sees)) is not None}
    if root not in live:
        return set(), set()
    edges = {(m, x, ty) for m, st in live.items() for ty, xs in st.refs.items() for x in xs if x in live}
    nodes, frontier = {root}, {root}
    for _ in range(depth):
        frontier = {b for a, b, _ in edges if a in frontier} | {a for a, b, _ in edges if b in frontier}
        frontier -= nodes
        nodes |= frontier
    return nodes, {e for e in edges if e[0] in nodes and e[1] in nodes}


def test_neighbourhood_as_of_equals_the_replayed_stream(env: Env) -> None:
    p = f"{env.prefix}-n-"
    bv0, bv1, l0, l1, l2 = (f"{p}{n}" for n in ("bv0", "bv1", "l0", "l1", "l2"))
    m = timedelta(minutes=1)

    def line(mrid: str, v: int, minute: int, label: str, target: str) -> Step:
        return Step(
            mrid,
            "upsert",
            v,
            "ACLineSegment",
            T0 + minute * m,
            label,
            {"name": f"{mrid} v{v}"},
            {"BASE_VOLTAGE": [target]},
        )

    def bv(mrid: str, v: int, minute: int, label: str) -> Step:
        return Step(mrid, "upsert", v, "BaseVoltage", T0 + minute * m, label, {"name": f"{mrid} v{v}"})

    steps = [
        bv(bv0, 1, 0, PUBLIC),
        bv(bv1, 1, 1, OFFICIAL),
        line(l0, 1, 2, PUBLIC, bv0),
        line(l1, 1, 3, PUBLIC, bv1),
        line(l2, 1, 4, OFFICIAL, bv0),
        line(l0, 2, 5, PUBLIC, bv1),  # moves to bv1
        bv(bv1, 2, 6, PUBLIC),  # relabelled: public from here
        Step(bv0, "delete", 2, "BaseVoltage", T0 + 7 * m),
        line(l2, 2, 8, PUBLIC, bv1),
        bv(bv0, 3, 9, PUBLIC),  # re-created; l2 no longer refers to it
        line(l1, 2, 10, PUBLIC, bv0),
    ]
    env.publish(steps)
    model = versions(steps)
    env.wait_for_versions(p, sum(len(v) for v in model.values()))
    edges_seen: dict[str, int] = {}
    for caller, sees in SEES.items():
        for t in _instants(steps):
            for root in model:
                for depth in (1, 2):
                    got = env.query(caller, NEIGHBOURHOOD, {"m": root, "d": depth, "t": _iso(t), "r": None})
                    graph = got["neighbourhood"]
                    nodes = {n["mrid"] for n in graph["nodes"]}
                    edges = {(e["source"], e["target"], e["type"]) for e in graph["edges"]}
                    assert (nodes, edges) == _oracle_neighbourhood(model, root, depth, t, sees), (
                        caller,
                        root,
                        depth,
                        t,
                    )
                    edges_seen[caller] = edges_seen.get(caller, 0) + len(edges)
    # the instants cover graphs with references for both callers, and the public caller sees fewer
    assert 0 < edges_seen["public"] < edges_seen["official"]


def _oracle_containment(
    model: dict[str, list[Version]], root: str, t: datetime | None, sees: Any
) -> tuple[set[str], set[tuple[str, str, str]]]:
    live = {m: st for m, kept in model.items() if (st := state_at(kept, t, None, sees)) is not None}
    if root not in live:
        return set(), set()
    nodes, frontier, walked = {root}, {root}, set()
    for _ in range(3):
        found = {
            (m, x, ty) for m, st in live.items() for ty, xs in st.refs.items() for x in xs if x in frontier
        }
        walked |= found
        frontier = {m for m, _, _ in found} - nodes
        nodes |= frontier
    return nodes, walked


def test_containment_as_of_equals_the_replayed_stream(env: Env) -> None:
    p = f"{env.prefix}-c-"
    s0, vl0, vl1, l0, l1 = (f"{p}{n}" for n in ("s0", "vl0", "vl1", "l0", "l1"))
    m = timedelta(minutes=1)

    def obj(mrid: str, cls: str, v: int, minute: int, label: str, rels: dict[str, list[str]]) -> Step:
        return Step(mrid, "upsert", v, cls, T0 + minute * m, label, {"name": f"{mrid} v{v}"}, rels)

    steps = [
        obj(s0, "Substation", 1, 0, PUBLIC, {}),
        obj(vl0, "VoltageLevel", 1, 1, PUBLIC, {"SUBSTATION": [s0]}),
        obj(vl1, "VoltageLevel", 1, 2, OFFICIAL, {"SUBSTATION": [s0]}),
        obj(l0, "ACLineSegment", 1, 3, PUBLIC, {"EQUIPMENT_CONTAINER": [vl0]}),
        obj(l1, "ACLineSegment", 1, 4, PUBLIC, {"EQUIPMENT_CONTAINER": [vl1]}),
        obj(l0, "ACLineSegment", 2, 5, PUBLIC, {"EQUIPMENT_CONTAINER": [vl1]}),
        obj(vl1, "VoltageLevel", 2, 6, PUBLIC, {}),  # relabelled; still in s0 (a patch)
        Step(vl0, "delete", 2, "VoltageLevel", T0 + 7 * m),
        Step(l1, "delete", 2, "ACLineSegment", T0 + 8 * m),
        obj(l1, "ACLineSegment", 3, 9, OFFICIAL, {"EQUIPMENT_CONTAINER": [vl1]}),
    ]
    env.publish(steps)
    model = versions(steps)
    env.wait_for_versions(p, sum(len(v) for v in model.values()))
    sizes: dict[str, int] = {}
    for caller, sees in SEES.items():
        for t in _instants(steps):
            for root in model:
                graph = env.query(caller, CONTAINMENT, {"m": root, "t": _iso(t)})["containment"]
                nodes = {n["mrid"] for n in graph["nodes"]}
                edges = {(e["source"], e["target"], e["type"]) for e in graph["edges"]}
                assert (nodes, edges) == _oracle_containment(model, root, t, sees), (caller, root, t)
                sizes[caller] = sizes.get(caller, 0) + len(nodes)
    assert 0 < sizes["public"] < sizes["official"]


# ------------------------------------------------------------------------------------------- shortest path

PATH = """query($a: ID!, $b: ID!, $via: PathVia!, $t: DateTime) {
  shortestPath(from: $a, to: $b, via: $via, asOf: $t) { nodes { mrid } edges { source target type } } }"""
# The physical network's relationship types among the test's (the base voltage is reference data).
PHYSICAL_TYPES = {"CONDUCTING_EQUIPMENT", "CONNECTIVITY_NODE"}


def _live(model: dict[str, list[Version]], t: datetime | None, sees: Any) -> dict[str, Version]:
    return {m: st for m, kept in model.items() if (st := state_at(kept, t, None, sees)) is not None}


def _oracle_distance(
    model: dict[str, list[Version]], a: str, b: str, t: datetime | None, sees: Any, types: set[str] | None
) -> tuple[int | None, set[tuple[str, str, str]]]:
    """The length of a shortest path at t through objects the caller sees then (None: none), and the
    references that hold then (along which any such path must go)."""
    live = _live(model, t, sees)
    edges = {
        (m, x, ty)
        for m, st in live.items()
        for ty, xs in st.refs.items()
        for x in xs
        if x in live and (types is None or ty in types)
    }
    if a not in live or b not in live:
        return None, edges
    seen, frontier, hops = {a}, {a}, 0
    while frontier and b not in seen:
        frontier = (
            {y for x, y, _ in edges if x in frontier} | {x for x, y, _ in edges if y in frontier}
        ) - seen
        seen |= frontier
        hops += 1
    return (hops if b in seen else None), edges


def test_shortest_path_as_of_equals_the_replayed_stream(env: Env) -> None:
    p = f"{env.prefix}-p-"
    l0, l1, cn0, cn1, t0, t1, t2, t3, bv = (
        f"{p}{n}" for n in ("l0", "l1", "cn0", "cn1", "t0", "t1", "t2", "t3", "bv")
    )
    m = timedelta(minutes=1)

    def obj(
        mrid: str, cls: str, v: int, minute: int, label: str, rels: dict[str, list[str]] | None = None
    ) -> Step:
        return Step(mrid, "upsert", v, cls, T0 + minute * m, label, {"name": f"{mrid} v{v}"}, rels or {})

    def terminal(mrid: str, v: int, minute: int, line: str, node: str) -> Step:
        return obj(
            mrid, "Terminal", v, minute, PUBLIC, {"CONDUCTING_EQUIPMENT": [line], "CONNECTIVITY_NODE": [node]}
        )

    steps = [
        obj(l0, "ACLineSegment", 1, 0, PUBLIC),
        obj(l1, "ACLineSegment", 1, 0, PUBLIC),
        obj(cn0, "ConnectivityNode", 1, 1, OFFICIAL),  # in the middle of the path, hidden from the public
        terminal(t0, 1, 2, l0, cn0),
        terminal(t1, 1, 3, l1, cn0),
        obj(cn1, "ConnectivityNode", 1, 4, PUBLIC),
        terminal(t2, 1, 4, l0, cn1),
        terminal(t3, 1, 5, l1, cn1),  # a public path, through cn1
        obj(bv, "BaseVoltage", 1, 6, OFFICIAL),
        obj(l0, "ACLineSegment", 2, 6, PUBLIC, {"BASE_VOLTAGE": [bv]}),
        obj(l1, "ACLineSegment", 2, 7, PUBLIC, {"BASE_VOLTAGE": [bv]}),  # a shortcut, not physical
        obj(cn0, "ConnectivityNode", 2, 8, PUBLIC),  # relabelled: public from here
        Step(cn1, "delete", 2, "ConnectivityNode", T0 + 9 * m),
        obj(cn0, "ConnectivityNode", 3, 10, SECRET),  # hidden from both now: no path
        obj(cn1, "ConnectivityNode", 3, 11, OFFICIAL),  # re-created: the terminals' references hold again
    ]
    env.publish(steps)
    model = versions(steps)
    env.wait_for_versions(p, sum(len(v) for v in model.values()))
    found: dict[tuple[str, str], int] = {}
    for caller, sees in SEES.items():
        for t in _instants(steps):
            for via, types in (("PHYSICAL", PHYSICAL_TYPES), ("ANY", None)):
                for a, b in ((l0, l1), (l1, l0), (t0, t3), (l0, l0), (cn0, l1)):
                    want, holding = _oracle_distance(model, a, b, t, sees, types)
                    got = env.query(caller, PATH, {"a": a, "b": b, "via": via, "t": _iso(t)})["shortestPath"]
                    where = (caller, via, a, b, t)
                    if want is None:
                        assert got is None, where
                        continue
                    assert got is not None, where
                    nodes = [n["mrid"] for n in got["nodes"]]
                    edges = {(e["source"], e["target"], e["type"]) for e in got["edges"]}
                    # A path of the shortest length, from a to b, along references that hold then.
                    assert len(edges) == want and len(set(nodes)) == want + 1, where
                    assert {a, b} <= set(nodes) and edges <= holding, where
                    steps_from = {
                        x: {y for s, y, _ in edges if s == x} | {s for s, y, _ in edges if y == x}
                        for x in nodes
                    }
                    assert all(len(steps_from[x]) == (1 if x in (a, b) else 2) for x in nodes if a != b), (
                        where
                    )
                    found[(caller, via)] = found.get((caller, via), 0) + 1
    # Paths exist for both callers either way, and the public caller finds fewer.
    assert 0 < found[("public", "PHYSICAL")] < found[("official", "PHYSICAL")]
    assert 0 < found[("public", "ANY")] <= found[("official", "ANY")]


# ------------------------------------------------------------------------------------------- dependencies

DEPENDENCIES = """query($m: ID!, $t: DateTime, $d: DependencyDirection! = DOWNSTREAM) {
  dependencies(mrid: $m, asOf: $t, direction: $d) {
    root { mrid } capacityMW steps { depth domain capacityMW dependents { mrid } } } }"""
GAS, ELECTRICITY = "Gas", "Electricity"
DOMAIN_OF = {
    "Substation": ELECTRICITY,
    "ElectricitySupplyPoint": ELECTRICITY,
    "GeneratingUnit": ELECTRICITY,
    "GasNode": GAS,
    "GasStorage": GAS,
    "GasConnection": GAS,
    "GasCompressorStation": GAS,
    "GasOfftake": GAS,
}
COUPLINGS = {ELECTRICITY: {"POWERS_COMPRESSOR_STATION"}, GAS: {"SUPPLIES_GAS_TO"}}
COUPLING_OWNERS = {ELECTRICITY: "ElectricitySupplyPoint", GAS: "GasOfftake"}


def _oracle_dependencies(
    model: dict[str, list[Version]], root: str, t: datetime | None, sees: Any, upstream: bool = False
) -> tuple[str | None, list[tuple[int, str, list[str], float | None]]]:
    """The dependency steps at t over the replayed graph, by the rules the API documents: gas flows from
    a node into the connections leaving it and the objects attached at it, and from a connection to its
    to-node (an attached supplier first reaches its node); electricity reaches what its objects contain;
    couplings cross to the other domain, each object reached once. ``upstream``: the same ways back (a
    node is fed by the connections arriving at it and what is attached at it, a connection by its
    from-node; electricity by what contains it; couplings from their targets back to their owners)."""
    live = _live(model, t, sees)
    edges = {(m, x, ty) for m, st in live.items() for ty, xs in st.refs.items() for x in xs if x in live}

    def out(xs: set[str], ty: str) -> set[str]:
        return {y for x, y, k in edges if x in xs and k == ty}

    def into(xs: set[str], ty: str) -> set[str]:
        return {x for x, y, k in edges if y in xs and k == ty}

    def closure(start: set[str], grow: Any) -> set[str]:
        region, frontier = set(start), set(start)
        while frontier:
            frontier = grow(frontier) - region
            region |= frontier
        return region

    if root not in live:
        return None, []
    reached, frontier, domain = {root}, {root}, DOMAIN_OF[live[root].cls]
    steps: list[tuple[int, str, list[str], float | None]] = []
    while frontier:
        region: set[str] = set(frontier)
        for start in frontier:
            if domain == GAS:
                tops = {start}
                if upstream or live[start].cls != COUPLING_OWNERS[GAS]:
                    tops |= out({start}, "AT_NODE")

                def flow(xs: set[str]) -> set[str]:
                    if upstream:
                        return out(xs, "FROM_NODE") | into(xs, "TO_NODE") | into(xs, "AT_NODE")
                    return into(xs, "FROM_NODE") | out(xs, "TO_NODE") | into(xs, "AT_NODE")

                region |= closure(tops, lambda xs: {x for x in flow(xs) if DOMAIN_OF[live[x].cls] == GAS})
            elif upstream:
                region |= closure({start}, lambda xs: out(xs, "EQUIPMENT_CONTAINER"))
            else:
                region |= closure({start}, lambda xs: into(xs, "EQUIPMENT_CONTAINER"))
        other = GAS if domain == ELECTRICITY else ELECTRICITY
        if upstream:
            crossed = {x for ty in COUPLINGS[other] for x in into(region, ty)}
        else:
            crossed = {y for ty in COUPLINGS[domain] for y in out(region, ty)}
        found = {y for y in crossed if DOMAIN_OF[live[y].cls] == other} - reached
        if not found:
            break
        reached |= found
        stated = [float(live[y].props["maxOperatingP"]) for y in found if "maxOperatingP" in live[y].props]
        steps.append((len(steps) + 1, other, sorted(found), sum(stated) if stated else None))
        frontier, domain = found, other
    return root, steps


def test_dependencies_as_of_equal_the_replayed_stream(env: Env) -> None:
    p = f"{env.prefix}-d-"
    s0, esp, cs, gn0, gn1, gs, gc, off, gu, gu2 = (
        f"{p}{n}" for n in ("s0", "esp", "cs", "gn0", "gn1", "gs", "gc", "off", "gu", "gu2")
    )
    m = timedelta(minutes=1)

    def obj(
        mrid: str,
        cls: str,
        v: int,
        minute: int,
        label: str,
        rels: dict[str, list[str]] | None = None,
        **props: Any,
    ) -> Step:
        return Step(
            mrid, "upsert", v, cls, T0 + minute * m, label, {"name": f"{mrid} v{v}", **props}, rels or {}
        )

    steps = [
        obj(s0, "Substation", 1, 0, PUBLIC),
        obj(gn0, "GasNode", 1, 0, PUBLIC),
        obj(gn1, "GasNode", 1, 0, PUBLIC),
        obj(esp, "ElectricitySupplyPoint", 1, 1, PUBLIC, {"EQUIPMENT_CONTAINER": [s0]}),
        obj(cs, "GasCompressorStation", 1, 2, PUBLIC, {"TO_NODE": [gn0]}),
        obj(esp, "ElectricitySupplyPoint", 2, 2, PUBLIC, {"POWERS_COMPRESSOR_STATION": [cs]}),
        obj(gs, "GasStorage", 1, 2, PUBLIC, {"AT_NODE": [gn0]}),
        obj(gc, "GasConnection", 1, 3, OFFICIAL, {"FROM_NODE": [gn0], "TO_NODE": [gn1]}),  # hidden middle
        obj(gu, "GeneratingUnit", 1, 4, PUBLIC, maxOperatingP=400.0),
        obj(off, "GasOfftake", 1, 4, PUBLIC, {"AT_NODE": [gn1], "SUPPLIES_GAS_TO": [gu]}),
        obj(gc, "GasConnection", 2, 5, PUBLIC),  # relabelled: public from here
        obj(gu2, "GeneratingUnit", 1, 6, PUBLIC, maxOperatingP=300.0),
        obj(off, "GasOfftake", 2, 6, PUBLIC, {"SUPPLIES_GAS_TO": [gu, gu2]}),
        Step(gc, "delete", 3, "GasConnection", T0 + 7 * m),
        obj(gc, "GasConnection", 4, 8, PUBLIC, {"FROM_NODE": [gn0], "TO_NODE": [gn1]}),  # re-created
        obj(gu, "GeneratingUnit", 2, 9, OFFICIAL, maxOperatingP=450.0),
    ]
    env.publish(steps)
    model = versions(steps)
    env.wait_for_versions(p, sum(len(v) for v in model.values()))
    dependents: dict[tuple[str, str], int] = {}
    for caller, sees in SEES.items():
        for t, root, direction in itertools.product(
            _instants(steps), (s0, esp, cs, gn0, gs, off, gu), ("DOWNSTREAM", "UPSTREAM")
        ):
            variables = {"m": root, "t": _iso(t), "d": direction}
            report = env.query(caller, DEPENDENCIES, variables)["dependencies"]
            got_root = None if report["root"] is None else report["root"]["mrid"]
            got = [
                (
                    s["depth"],
                    s["domain"].capitalize(),
                    sorted(d["mrid"] for d in s["dependents"]),
                    s["capacityMW"],
                )
                for s in report["steps"]
            ]
            expected = _oracle_dependencies(model, root, t, sees, direction == "UPSTREAM")
            assert (got_root, got) == expected, (caller, root, t, direction)
            key = (caller, direction)
            dependents[key] = dependents.get(key, 0) + sum(len(s[2]) for s in got)
    for direction in ("DOWNSTREAM", "UPSTREAM"):
        assert 0 < dependents["public", direction] < dependents["official", direction], direction
