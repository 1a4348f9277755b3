"""Scenarios end to end: the CGMES MicroGrid base model published to the live graph with ``hub produce``,
a scenario created on it, and an IEC 61970-552 difference model published into the scenario with
``hub produce --scenario``, all through real Kafka, the real ingest worker and Neo4j, read through the API:

* the scenario's graph is the base with the difference model applied (a changed attribute and reference,
  added objects, removed objects), computed here from the files themselves;
* the live graph is untouched (nodes, properties, edges and kept versions alike);
* ``compare`` lists exactly the difference model's changes, each with its base and scenario state;
* labels: a scenario whose label the caller may not see is answered exactly as a missing one, and an
  object published into a scenario above the caller's clearance is absent for it there;
* ids: every reference is the id the hub assigned; names are display names, so creating one under the name
  of a scenario the caller may not see is answered as under a fresh name, and a hidden scenario's id is
  answered exactly as a random one.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import neo4j
import pytest
from graphkit import Api, serve
from typer.testing import CliRunner

from hub.events import EventType
from hub.settings import get_settings
from hub.validation import validate_event
from hubcli.main import app
from ingest.cgmes import convert_cgmes
from ingest.difference import convert_difference
from ingest.producer_onboarding import add_producer
from ontology.loader import load_ontology
from tests.ingest.test_poison import Stream, Worker, _delete_topics

pytestmark = pytest.mark.services

BASE = Path(__file__).resolve().parents[3] / "shared" / "data" / "cgmes" / "2.4.15" / "MicroGrid-BaseCase"
DIFFERENCE = (
    Path(__file__).resolve().parents[1] / "ingest" / "data" / "MicroGrid_BE_EQ_difference_cgmes2415.xml"
)
PUBLIC, OFFICIAL = "classification=PUBLIC", "classification=OFFICIAL"
BASE_VERSION, DIFFERENCE_VERSION = 100, 200

CREATE = """mutation($n: String!, $l: String!, $p: [String!]!) {
  createScenario(name: $n, label: $l, producers: $p) { id name owner label producers baseTime } }"""
DELETE = """mutation($i: ID!) { deleteScenario(id: $i) }"""
SCENARIO = """query($i: ID!) { scenario(id: $i) { id name label } scenarios { id name } }"""
OBJECT = """query($m: ID!, $s: String) {
  object(mrid: $m, scenario: $s) { mrid name version label updated } }"""
OBJECTS = """query($s: String, $a: String) {
  objects(scenario: $s, first: 500, after: $a) {
    nodes { mrid name version className } pageInfo { hasNextPage endCursor } } }"""
STATE = "label producer attributes { key value } references { type target }"
COMPARE = f"""query($s: String!, $a: String) {{
  compare(scenario: $s, first: 50, after: $a) {{
    changes {{ mrid className change changedKeys before {{ {STATE} }} after {{ {STATE} }} }}
    hasNextPage endCursor }} }}"""
NEIGHBOURHOOD = """query($m: ID!, $s: String) {
  neighbourhood(mrid: $m, depth: 1, scenario: $s) { nodes { mrid } edges { source target type } } }"""


@dataclass
class Env:
    api: Api
    prefix: str
    producer: str
    worker: Worker
    bootstrap: str
    driver: neo4j.Driver
    folder: Path
    tokens: dict[str, str]

    def produce(self, *args: str) -> None:
        result = CliRunner().invoke(app, ["produce", "--producer", self.producer, *args])
        assert result.exit_code == 0, result.output
        self.worker.wait_until_done(self.bootstrap)

    def post(self, caller: str, text: str, variables: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = self.api.query(text, variables, token=self.tokens[caller])
        return body

    def query(self, caller: str, text: str, variables: dict[str, Any]) -> Any:
        body = self.post(caller, text, variables)
        assert "errors" not in body, body
        return body["data"]

    def objects(self, caller: str, scenario: str | None) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        after = None
        while True:
            page = self.query(caller, OBJECTS, {"s": scenario, "a": after})["objects"]
            found.update((n["mrid"], n) for n in page["nodes"])
            if not page["pageInfo"]["hasNextPage"]:
                return found
            after = page["pageInfo"]["endCursor"]

    def compare(self, caller: str, scenario: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after = None
        while True:
            page = self.query(caller, COMPARE, {"s": scenario, "a": after})["compare"]
            found += page["changes"]
            if not page["hasNextPage"]:
                return found
            after = page["endCursor"]


def _forget_microgrid(driver: neo4j.Driver, mrids: list[str]) -> None:
    driver.execute_query(
        "MATCH (n) WHERE (n:Entity OR n:ObjectVersion OR n:ScenarioVersion) AND n.mrid IN $m DETACH DELETE n",
        m=mrids,
    )


@pytest.fixture(scope="module")
def env(settings: Any, neo4j_driver: neo4j.Driver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    prefix = f"sc{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("scenarios")
    topic_prefix = f"{prefix}.cim.ingest."
    producer = f"{prefix}-tso"
    isolated = settings.model_copy(
        update={
            "ingest_topic_prefix": topic_prefix,
            "topic_partitions": 1,
            "producers_file": folder / "p.json",
        }
    )
    asyncio.run(add_producer(isolated, producer))
    # The command reads its settings from the environment, as it does when run by hand.
    os.environ["HUB_INGEST_TOPIC_PREFIX"] = topic_prefix
    get_settings.cache_clear()
    ontology = load_ontology()
    mrids = [e.subject for e in convert_cgmes(sorted(BASE.glob("*.xml")), source=producer, ontology=ontology)]
    mrids += [e.subject for e in _difference_events(producer)]
    # The MicroGrid's mRIDs are fixed: whatever an earlier run left of them goes first.
    _forget_microgrid(neo4j_driver, mrids)
    stream = Stream(prefix, {producer: {"org": "tso", "clearance": "OFFICIAL"}})
    worker = Worker(settings, stream, folder)
    worker.start()
    try:
        with serve(settings) as api:
            tokens = {
                "official": api.token("planner", "elsewhere", "OFFICIAL"),
                "public": api.token("viewer", "elsewhere", "PUBLIC"),
            }
            yield Env(api, prefix, producer, worker, settings.kafka_bootstrap, neo4j_driver, folder, tokens)
        assert worker.proc is not None and worker.proc.poll() is None, worker.logs()[-3000:]
    finally:
        worker.stop()
        del os.environ["HUB_INGEST_TOPIC_PREFIX"]
        get_settings.cache_clear()
        _forget_microgrid(neo4j_driver, mrids)
        neo4j_driver.execute_query(
            "MATCH (n) WHERE (n:Entity OR n:ObjectVersion OR n:ScenarioVersion) AND n.mrid STARTS WITH $p "
            "DETACH DELETE n",
            p=prefix,
        )
        neo4j_driver.execute_query("MATCH (s:Scenario) WHERE s.name STARTS WITH $p DETACH DELETE s", p=prefix)
        asyncio.run(_delete_topics(settings.kafka_bootstrap, prefix))


def _difference_events(producer: str) -> list[Any]:
    ontology = load_ontology()
    classes = {
        e.subject: e.class_
        for e in convert_cgmes(sorted(BASE.glob("*.xml")), source=producer, ontology=ontology)
    }
    return list(
        convert_difference(
            DIFFERENCE, source=producer, version=DIFFERENCE_VERSION, ontology=ontology, classes=classes
        )
    )


def _typed(event: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """An event's attributes (property key -> stored value, None: removed) and references, as the hub
    validates them."""
    valid = validate_event(event.to_json_dict(), load_ontology())
    return dict(valid.properties), {t: list(m) for t, m in valid.relationships.items()}


def _live_snapshot(driver: neo4j.Driver, mrids: list[str]) -> list[Any]:
    records, _, _ = driver.execute_query(
        "MATCH (n:Entity) WHERE n.mrid IN $m OPTIONAL MATCH (n)-[r]->(t) "
        "WITH n, collect([type(r), t.mrid]) AS out "
        "OPTIONAL MATCH (v:ObjectVersion {mrid: n.mrid}) "
        "RETURN n.mrid AS m, labels(n) AS l, properties(n) AS p, out, count(v) AS versions ORDER BY m",
        m=mrids,
    )
    return [(r["m"], sorted(r["l"]), r["p"], sorted(map(tuple, r["out"])), r["versions"]) for r in records]


def test_a_difference_model_as_a_scenario_is_the_base_with_its_changes_and_leaves_the_live_graph(
    env: Env,
) -> None:
    ontology = load_ontology()
    base_events = list(convert_cgmes(sorted(BASE.glob("*.xml")), source=env.producer, ontology=ontology))
    base = {e.subject: e for e in base_events}
    env.produce(str(BASE), "--label", PUBLIC, "--version", str(BASE_VERSION))
    mrids = sorted(base)
    live_before = _live_snapshot(env.driver, mrids)
    assert len(live_before) == len(base)

    name = f"{env.prefix}-plan"
    made = env.query("official", CREATE, {"n": name, "l": PUBLIC, "p": [env.producer]})["createScenario"]
    assert made["name"] == name and made["label"] == PUBLIC and made["producers"] == [env.producer]
    sid = made["id"]
    env.produce(
        str(DIFFERENCE),
        "--scenario",
        sid,
        "--base",
        str(BASE),
        "--label",
        PUBLIC,
        "--version",
        str(DIFFERENCE_VERSION),
    )

    # What the difference model states, from the file: upserts (changed or added) and deletes.
    changes = _difference_events(env.producer)
    deleted = {e.subject for e in changes if e.type is EventType.DELETE}
    upserted = {e.subject: e for e in changes if e.type is EventType.UPSERT}
    added = set(upserted) - set(base)
    changed = set(upserted) & set(base)
    assert deleted and added and changed and deleted <= set(base)

    # The live graph is untouched: the same nodes, properties, edges and kept versions.
    assert _live_snapshot(env.driver, sorted(set(mrids) | added)) == live_before
    live = env.objects("official", None)
    assert {m for m in live if m in base or m in added} == set(base)
    assert all(live[m]["version"] == BASE_VERSION for m in base)

    # The scenario's graph: the base less what the difference removes, plus what it adds.
    inside = env.objects("official", sid)
    ours = {m: n for m, n in inside.items() if m in base or m in added}
    assert set(ours) == (set(base) - deleted) | added
    for m, node in ours.items():
        props = _typed(base[m])[0] if m in base else {}
        if m in upserted:
            props = {**props, **_typed(upserted[m])[0]}
        assert node["version"] == (DIFFERENCE_VERSION if m in upserted else BASE_VERSION), (m, node)
        assert node["className"] == (upserted[m] if m in upserted else base[m]).class_, (m, node)
        assert node["name"] == props.get("name"), (m, node)

    # compare lists exactly the difference model's changes, each state being the base's and the base's
    # with the difference's patch applied.
    listed = env.compare("official", sid)
    assert [c["mrid"] for c in listed] == sorted(deleted | added | changed)
    kinds = {c["mrid"]: c["change"] for c in listed}
    assert kinds == {
        **dict.fromkeys(deleted, "deleted"),
        **dict.fromkeys(added, "created"),
        **dict.fromkeys(changed, "updated"),
    }
    present = set(ours)
    for c in listed:
        m = c["mrid"]
        before_props, before_refs = _typed(base[m]) if m in base else ({}, {})
        if m in deleted:
            assert c["after"] is None
        else:
            props, refs = _typed(upserted[m])
            after_props = {k: v for k, v in {**before_props, **props}.items() if v is not None}
            after_refs = {**{t: v for t, v in before_refs.items() if t not in refs}, **refs}
            assert _attributes(c["after"]) == _ontology_attributes(after_props), m
            assert _references(c["after"]) == _present(after_refs, present), m
            assert c["after"]["label"] == PUBLIC
            assert c["changedKeys"] == sorted(
                k
                for k in _ontology_attributes(before_props).keys() | _ontology_attributes(after_props).keys()
                if before_props.get(k) != after_props.get(k)
            ), m
        if m in added:
            assert c["before"] is None
        else:
            assert _attributes(c["before"]) == _ontology_attributes(before_props), m
            assert _references(c["before"]) == _present(before_refs, set(base)), m

    # A neighbourhood in the scenario follows the scenario's references: the added line's terminals
    # reach it there, and it is nowhere in the live graph.
    line = next(m for m in added if upserted[m].class_ == "ACLineSegment")
    around = env.query("official", NEIGHBOURHOOD, {"m": line, "s": sid})["neighbourhood"]
    terminals = {m for m in added if upserted[m].class_ == "Terminal"}
    assert terminals <= {n["mrid"] for n in around["nodes"]}
    assert {(e["source"], e["target"]) for e in around["edges"]} >= {(t, line) for t in terminals}
    assert env.query("official", NEIGHBOURHOOD, {"m": line, "s": None})["neighbourhood"]["nodes"] == []


def _ontology_attributes(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if not k.startswith("_")}


def _attributes(state: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: a["value"] for a in state["attributes"]}


def _references(state: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in state["references"]:
        out.setdefault(r["type"], []).append(r["target"])
    return {t: sorted(v) for t, v in out.items()}


def _present(refs: dict[str, list[str]], present: set[str]) -> dict[str, list[str]]:
    """References to objects that exist there (no reference shows to what is absent)."""
    kept = {t: sorted(m for m in targets if m in present) for t, targets in refs.items()}
    return {t: v for t, v in kept.items() if v}


def test_a_hidden_scenario_is_a_missing_one_and_a_hidden_object_in_a_scenario_is_absent(env: Env) -> None:
    secret_name = f"{env.prefix}-secret"
    made = env.query("official", CREATE, {"n": secret_name, "l": OFFICIAL, "p": [env.producer]})
    secret = made["createScenario"]["id"]
    seen = env.query("official", SCENARIO, {"i": secret})
    assert seen["scenario"] == {"id": secret, "name": secret_name, "label": OFFICIAL}
    assert secret in {s["id"] for s in seen["scenarios"]}
    unseen = env.query("public", SCENARIO, {"i": secret})
    assert unseen["scenario"] is None and secret not in {s["id"] for s in unseen["scenarios"]}
    some_object = next(iter(env.objects("public", None)))
    hidden_answers = [
        env.post("public", OBJECT, {"m": some_object, "s": secret}),
        env.post("public", COMPARE, {"s": secret, "a": None}),
        env.post("public", OBJECTS, {"s": secret, "a": None}),
    ]
    assert all("does not exist" in json.dumps(a) for a in hidden_answers), hidden_answers
    # Only the owner deletes it; then the same questions get byte-identical answers.
    refused = env.post("public", DELETE, {"i": secret})
    assert "does not exist" in json.dumps(refused)
    assert env.query("official", DELETE, {"i": secret}) == {"deleteScenario": True}
    missing_answers = [
        env.post("public", OBJECT, {"m": some_object, "s": secret}),
        env.post("public", COMPARE, {"s": secret, "a": None}),
        env.post("public", OBJECTS, {"s": secret, "a": None}),
    ]
    assert [json.dumps(a, sort_keys=True) for a in hidden_answers] == [
        json.dumps(a, sort_keys=True) for a in missing_answers
    ]

    # An object published into a public scenario with a label above the viewer's clearance, and one
    # with a public label: the viewer sees only the public one there.
    opened = env.query("official", CREATE, {"n": f"{env.prefix}-open", "l": PUBLIC, "p": [env.producer]})
    open_id = opened["createScenario"]["id"]
    lines = env.folder / "into-scenario.jsonl"
    events = [
        {
            "id": f"{which}-{uuid.uuid4().hex[:6]}",
            "source": env.producer,
            "type": "upsert",
            "subject": f"{env.prefix}-{which}",
            "time": "2026-01-01T00:00:00Z",
            "version": 1,
            "class": "EnergyConsumer",
            "attributes": {"IdentifiedObject.name": which},
            "label": label,
        }
        for which, label in (("hidden", OFFICIAL), ("shown", PUBLIC))
    ]
    lines.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    env.produce(str(lines), "--scenario", open_id)
    hidden, shown = f"{env.prefix}-hidden", f"{env.prefix}-shown"

    official = env.objects("official", open_id)
    public = env.objects("public", open_id)
    assert hidden in official and shown in official
    assert hidden not in public and shown in public
    assert env.query("public", OBJECT, {"m": hidden, "s": open_id}) == {"object": None}
    assert env.post("public", OBJECT, {"m": hidden, "s": open_id}) == env.post(
        "public", OBJECT, {"m": f"{env.prefix}-never-published", "s": open_id}
    )
    found = env.query("official", OBJECT, {"m": hidden, "s": open_id})["object"]
    assert found["label"] == OFFICIAL
    # A state in a scenario was last updated when the hub recorded it (not at the epoch).
    updated = datetime.fromisoformat(found["updated"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - updated).total_seconds()) < 3600, found
    assert {c["mrid"] for c in env.compare("official", open_id)} == {hidden, shown}
    assert {c["mrid"] for c in env.compare("public", open_id)} == {shown}
    # Nothing of either reached the live graph.
    assert env.query("official", OBJECT, {"m": hidden, "s": None}) == {"object": None}
    assert env.query("official", OBJECT, {"m": shown, "s": None}) == {"object": None}


def test_names_and_ids_tell_nothing_of_scenarios_the_caller_may_not_see(env: Env) -> None:
    taken, fresh = f"{env.prefix}-plan-2027", f"{env.prefix}-fresh"
    made = env.query("official", CREATE, {"n": taken, "l": OFFICIAL, "p": [env.producer]})
    hidden = made["createScenario"]["id"]
    assert env.query("public", SCENARIO, {"i": hidden})["scenario"] is None

    # Under the hidden scenario's name and under a fresh one: the same kind of answer, both created.
    answers = [env.post("public", CREATE, {"n": n, "l": PUBLIC, "p": []}) for n in (taken, fresh)]
    assert all("errors" not in a for a in answers), answers
    same, other = (a["data"]["createScenario"] for a in answers)
    assert (same["name"], other["name"]) == (taken, fresh)
    assert {k: v for k, v in same.items() if k not in ("id", "name", "baseTime")} == {
        k: v for k, v in other.items() if k not in ("id", "name", "baseTime")
    }
    assert same["label"] == PUBLIC and same["owner"] != made["createScenario"]["owner"]
    ids = [hidden, same["id"], other["id"]]
    assert len(set(ids)) == 3 and all(re.fullmatch(r"scn-[0-9a-f]{32}", i) for i in ids), ids
    # Two scenarios of one name, each its own: the viewer sees its own; the official sees both.
    assert env.query("public", SCENARIO, {"i": same["id"]})["scenario"] == {
        "id": same["id"],
        "name": taken,
        "label": PUBLIC,
    }
    everything = env.query("official", SCENARIO, {"i": hidden})["scenarios"]
    assert {(s["id"], s["name"]) for s in everything} >= {(hidden, taken), (same["id"], taken)}

    # A hidden scenario's id and a random one are answered byte for byte alike.
    some_object = next(iter(env.objects("public", None)))

    def answers_about(scenario_id: str) -> list[str]:
        asked = [
            (OBJECT, {"m": some_object, "s": scenario_id}),
            (OBJECTS, {"s": scenario_id, "a": None}),
            (COMPARE, {"s": scenario_id, "a": None}),
            (NEIGHBOURHOOD, {"m": some_object, "s": scenario_id}),
            (SCENARIO, {"i": scenario_id}),
            (DELETE, {"i": scenario_id}),
            (PATH, {"a": some_object, "b": some_object, "s": scenario_id}),
            (DEPENDENCIES, {"m": some_object, "s": scenario_id}),
            (CONTAINMENT, {"m": some_object, "s": scenario_id}),
            (HISTORY, {"m": some_object, "s": scenario_id}),
        ]
        return [json.dumps(env.post("public", q, v), sort_keys=True) for q, v in asked]

    of_hidden = answers_about(hidden)
    of_random = answers_about(f"scn-{uuid.uuid4().hex}")
    assert of_hidden == of_random
    refusals = [of_hidden[i] for i in (0, 1, 2, 3, 5, 6, 7, 8, 9)]
    assert all("the scenario does not exist" in a for a in refusals), refusals
    # The hidden one is still there for its owner.
    assert env.query("official", SCENARIO, {"i": hidden})["scenario"]["name"] == taken


# --------------------------------------------------------------------------- walks and history in a scenario

PATH = """query($a: ID!, $b: ID!, $s: String) {
  shortestPath(from: $a, to: $b, scenario: $s) { nodes { mrid } edges { source target type } } }"""
DEPENDENCIES = """query($m: ID!, $s: String) {
  dependencies(mrid: $m, scenario: $s) {
    root { mrid } capacityMW steps { depth domain capacityMW dependents { mrid } }
    subgraph { nodes { mrid } edges { source target type } } } }"""
CONTAINMENT = """query($m: ID!, $s: String) {
  containment(mrid: $m, scenario: $s) { nodes { mrid } edges { source target type } } }"""
RELATIONS = """query($ms: [ID!]!, $s: String) {
  relationsAmong(mrids: $ms, scenario: $s) { nodes { mrid } edges { source target type } } }"""
HISTORY = """query($m: ID!, $s: String) {
  history(mrid: $m, scenario: $s) { mrid version label deleted references { type target } } }"""


def _gas_event(
    env: Env,
    mrid: str,
    cls: str,
    version: int,
    label: str = PUBLIC,
    references: dict[str, Any] | None = None,
    kind: str = "upsert",
    **attributes: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": f"{mrid}-{kind}-{version}-{uuid.uuid4().hex[:6]}",
        "source": env.producer,
        "type": kind,
        "subject": mrid,
        "time": "2026-01-01T00:00:00Z",
        "version": version,
        "class": cls,
    }
    if kind == "upsert":
        event["attributes"] = {"IdentifiedObject.name": mrid, **attributes}
        event["label"] = label
        if references:
            event["references"] = references
    return event


def _publish(env: Env, name: str, events: list[dict[str, Any]], *args: str) -> None:
    lines = env.folder / f"{name}.jsonl"
    lines.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    env.produce(str(lines), *args)


def _path(env: Env, caller: str, a: str, b: str, scenario: str | None) -> list[str] | None:
    got = env.query(caller, PATH, {"a": a, "b": b, "s": scenario})["shortestPath"]
    return None if got is None else [n["mrid"] for n in got["nodes"]]


def _dependents(env: Env, caller: str, root: str, scenario: str | None) -> list[str]:
    report = env.query(caller, DEPENDENCIES, {"m": root, "s": scenario})["dependencies"]
    return sorted(d["mrid"] for s in report["steps"] for d in s["dependents"])


def test_paths_dependencies_and_history_follow_the_scenario_and_leave_the_live_graph(env: Env) -> None:
    """A small gas network in the live graph: node 0 -> node 1 (a pipe), node 2 with an offtake that
    supplies a generating unit, and no pipe from node 1 to node 2. One scenario adds that pipe, one removes
    the first pipe, one adds the pipe with a label the public caller does not satisfy, one holds nothing."""
    p = f"{env.prefix}-gas"
    gn0, gn1, gn2, gc01, gc12, off, gu = (
        f"{p}-gn0",
        f"{p}-gn1",
        f"{p}-gn2",
        f"{p}-gc01",
        f"{p}-gc12",
        f"{p}-off",
        f"{p}-gu",
    )
    _publish(
        env,
        "gas-live",
        [
            _gas_event(env, gn0, "GasNode", 1),
            _gas_event(env, gn1, "GasNode", 1),
            _gas_event(env, gn2, "GasNode", 1),
            _gas_event(
                env,
                gc01,
                "GasConnection",
                1,
                references={"GasConnection.FromNode": gn0, "GasConnection.ToNode": gn1},
            ),
            _gas_event(env, gu, "GeneratingUnit", 1, **{"GeneratingUnit.maxOperatingP": 400.0}),
            _gas_event(
                env,
                off,
                "GasOfftake",
                1,
                references={"GasOfftake.Node": gn2, "GasOfftake.GeneratingUnits": [gu]},
            ),
        ],
    )

    def live() -> list[str]:
        """The live graph's answers to the queries the scenarios change, for both callers."""
        return [
            json.dumps(env.post(c, q, v), sort_keys=True)
            for c in ("official", "public")
            for q, v in (
                (PATH, {"a": gn0, "b": gn2, "s": None}),
                (PATH, {"a": gn0, "b": gn1, "s": None}),
                (DEPENDENCIES, {"m": gn0, "s": None}),
                (HISTORY, {"m": gc01, "s": None}),
            )
        ]

    live_answers = live()
    assert _path(env, "official", gn0, gn1, None) == [gn0, gc01, gn1]
    assert _path(env, "official", gn0, gn2, None) is None
    assert gu not in _dependents(env, "official", gn0, None)

    def scenario(suffix: str) -> str:
        made = env.query(
            "official", CREATE, {"n": f"{env.prefix}-{suffix}", "l": PUBLIC, "p": [env.producer]}
        )
        return str(made["createScenario"]["id"])

    added, removed, hidden, empty = (scenario(s) for s in ("added", "removed", "hidden", "empty"))
    pipe = {"GasConnection.FromNode": gn1, "GasConnection.ToNode": gn2}
    _publish(
        env, "gas-added", [_gas_event(env, gc12, "GasConnection", 2, references=pipe)], "--scenario", added
    )
    _publish(
        env, "gas-removed", [_gas_event(env, gc01, "GasConnection", 2, kind="delete")], "--scenario", removed
    )
    _publish(
        env,
        "gas-hidden",
        [_gas_event(env, gc12, "GasConnection", 2, label=OFFICIAL, references=pipe)],
        "--scenario",
        hidden,
    )

    # The added pipe makes a path exist in its scenario, and what the offtake supplies a dependent.
    for caller in ("official", "public"):
        assert _path(env, caller, gn0, gn2, added) == [gn0, gc01, gn1, gc12, gn2]
        assert _dependents(env, caller, gn0, added) == [gu]
    report = env.query("public", DEPENDENCIES, {"m": gn0, "s": added})["dependencies"]
    assert report["capacityMW"] == 400.0
    assert {n["mrid"] for n in report["subgraph"]["nodes"]} >= {gn0, gc01, gn1, gc12, gn2, off, gu}
    among = env.query("public", RELATIONS, {"ms": [gn1, gc12, gn2, gc01], "s": added})["relationsAmong"]
    assert {n["mrid"] for n in among["nodes"]} == {gn1, gc12, gn2, gc01}
    assert {(e["source"], e["target"]) for e in among["edges"]} == {(gc12, gn1), (gc12, gn2), (gc01, gn1)}
    live_among = env.query("public", RELATIONS, {"ms": [gn1, gc12, gn2, gc01], "s": None})["relationsAmong"]
    assert {n["mrid"] for n in live_among["nodes"]} == {gn1, gn2, gc01}
    # The removed pipe takes the live graph's path away in its scenario.
    assert _path(env, "official", gn0, gn1, removed) is None
    assert _path(env, "official", gn0, gn1, empty) == [gn0, gc01, gn1]
    # The pipe above the public caller's clearance: the official caller goes through it, the public
    # caller gets byte for byte what it gets in a scenario without that version.
    assert _path(env, "official", gn0, gn2, hidden) == [gn0, gc01, gn1, gc12, gn2]
    assert _dependents(env, "official", gn0, hidden) == [gu]
    for q, v in (
        (PATH, {"a": gn0, "b": gn2}),
        (PATH, {"a": gn1, "b": gc12}),
        (DEPENDENCIES, {"m": gn0}),
        (DEPENDENCIES, {"m": gc12}),
        (CONTAINMENT, {"m": gc12}),
        (HISTORY, {"m": gc12}),
        (RELATIONS, {"ms": [gn1, gc12, gn2]}),
    ):
        assert env.post("public", q, {**v, "s": hidden}) == env.post("public", q, {**v, "s": empty}), (q, v)
    assert env.query("public", HISTORY, {"m": gc12, "s": hidden})["history"] == []

    # history in a scenario: the base's versions, then the scenario's own.
    base_version = {"mrid": gc01, "version": 1, "label": PUBLIC, "deleted": False}
    got = env.query("public", HISTORY, {"m": gc01, "s": removed})["history"]
    assert [{k: h[k] for k in base_version} for h in got] == [
        base_version,
        {**base_version, "version": 2, "deleted": True},
    ]
    got = env.query("official", HISTORY, {"m": gc12, "s": hidden})["history"]
    assert [(h["version"], h["label"]) for h in got] == [(2, OFFICIAL)]
    assert (
        env.query("official", HISTORY, {"m": gc01, "s": empty})["history"]
        == env.query("official", HISTORY, {"m": gc01, "s": None})["history"]
    )

    # The live graph answers as before the scenarios existed.
    assert live() == live_answers


# ------------------------------------------------- typed queries, aggregates, counts and search in a scenario

TYPED_PAGE = """query($p: ID!, $s: String, $a: String, $min: Float) {
  acLineSegments(where: {mrid: {startsWith: $p}, length: {gte: $min}},
                 orderBy: [{field: length, direction: DESC}], first: 2, after: $a, scenario: $s) {
    totalCount edges { cursor node { mrid name version label length } }
    pageInfo { hasNextPage endCursor } } }"""
TYPED_BY_NAME = """query($p: ID!, $s: String) {
  acLineSegments(where: {mrid: {startsWith: $p}}, orderBy: [{field: name}], scenario: $s) {
    nodes { mrid } } }"""
AGGREGATE = """query($p: ID!, $s: String) {
  acLineSegmentAggregate(where: {mrid: {startsWith: $p}}, groupBy: version, scenario: $s) {
    count sum { length } max { length } groups { key count sum { length } } } }"""
COUNTS = """query($s: String) { counts(scenario: $s) { className count } }"""
SEARCH = """query($t: String!, $s: String, $f: Boolean) {
  search(text: $t, scenario: $s, fuzzy: $f) { mrid name } }"""
MEASUREMENTS = """query($m: ID!, $s: String) { measurementHistory(mrid: $m, scenario: $s) { key } }"""
RELATION_FILTER = """query($p: ID!, $s: String) {
  some: acLineSegments(where: {mrid: {startsWith: $p}, baseVoltage: {some: {}}}, scenario: $s) {
    totalCount }
  none: acLineSegments(where: {mrid: {startsWith: $p}, baseVoltage: {none: {}}}, scenario: $s) {
    totalCount } }"""


@dataclass
class Line:
    """An ACLineSegment as the oracle keeps it."""

    name: str
    length: float | None
    label: str
    version: int


def _line_event(env: Env, mrid: str, line: Line, kind: str = "upsert") -> dict[str, Any]:
    attributes: dict[str, Any] = {"IdentifiedObject.name": line.name}
    if line.length is not None:
        attributes["Conductor.length"] = line.length
    return _gas_event(env, mrid, "ACLineSegment", line.version, label=line.label, kind=kind, **attributes)


def _sees(caller: str, label: str) -> bool:
    return caller == "official" or label == PUBLIC


def _by_length(lines: dict[str, Line]) -> list[str]:
    """The typed page's order: length descending, missing lengths last, ties by mRID."""
    return sorted(lines, key=lambda m: (lines[m].length is None, -(lines[m].length or 0.0), m))


def test_typed_queries_aggregates_counts_and_search_read_the_scenario_and_leave_the_live_graph(
    env: Env,
) -> None:
    """Live lines (one above the public caller's clearance); a scenario that adds a line and a consumer,
    changes a line's length and name, raises another's label above the public caller's clearance and
    deletes a third; an empty scenario on the same base. Every query's answer in the scenario equals the
    oracle's (the base with the scenario's changes, as each caller may see it), the live graph's answers
    stay as they were, and a hidden scenario is refused exactly as a missing one."""
    p = f"{env.prefix}-tq"
    word = env.prefix  # a word of every name here, and of no other object's
    base = {
        f"{p}-l1": Line(f"{word} tqline north", 10.0, PUBLIC, 1),
        f"{p}-l2": Line(f"{word} tqline south", 30.0, PUBLIC, 1),
        f"{p}-l3": Line(f"{word} tqline east", 20.0, PUBLIC, 1),
        f"{p}-l4": Line(f"{word} tqline west", None, PUBLIC, 1),
        f"{p}-l5": Line(f"{word} tqline centre long", 40.0, OFFICIAL, 1),
    }
    _publish(env, "typed-live", [_line_event(env, m, line) for m, line in base.items()])

    def live() -> list[str]:
        """The live graph's answers to every query the scenario changes, for both callers."""
        return [
            json.dumps(env.post(c, q, v), sort_keys=True)
            for c in ("official", "public")
            for q, v in (
                (TYPED_PAGE, {"p": p, "s": None, "a": None, "min": None}),
                (TYPED_BY_NAME, {"p": p, "s": None}),
                (AGGREGATE, {"p": p, "s": None}),
                (COUNTS, {"s": None}),
                (SEARCH, {"t": f"{word} tql", "s": None, "f": False}),
            )
        ]

    live_answers = live()

    def scenario(suffix: str, label: str = PUBLIC) -> str:
        made = env.query("official", CREATE, {"n": f"{env.prefix}-{suffix}", "l": label, "p": [env.producer]})
        return str(made["createScenario"]["id"])

    plan, empty, hidden = scenario("typed-plan"), scenario("typed-empty"), scenario("typed-hidden", OFFICIAL)
    added, consumer = f"{p}-l6", f"{p}-ec"
    changes = {
        added: Line(f"{word} tqline new", 25.0, PUBLIC, 1),
        f"{p}-l1": Line(f"{word} tqline north upgraded", 50.0, PUBLIC, 2),
        f"{p}-l2": Line(f"{word} tqline south", 30.0, OFFICIAL, 2),
    }
    deleted = f"{p}-l3"
    _publish(
        env,
        "typed-plan",
        [
            *(_line_event(env, m, line) for m, line in changes.items()),
            _line_event(env, deleted, Line("", None, PUBLIC, 2), kind="delete"),
            _gas_event(env, consumer, "EnergyConsumer", 1, **{"IdentifiedObject.name": f"{word} load"}),
        ],
        "--scenario",
        plan,
    )
    _publish(env, "typed-hidden", [_line_event(env, added, changes[added])], "--scenario", hidden)
    in_plan = {m: line for m, line in {**base, **changes}.items() if m != deleted}

    def oracle(caller: str, lines: dict[str, Line]) -> dict[str, Line]:
        return {m: line for m, line in lines.items() if _sees(caller, line.label)}

    def page_through(caller: str, scenario_id: str | None, least: float | None) -> tuple[list[Any], set[int]]:
        nodes: list[Any] = []
        totals: set[int] = set()
        after = None
        while True:
            got = env.query(caller, TYPED_PAGE, {"p": p, "s": scenario_id, "a": after, "min": least})
            page = got["acLineSegments"]
            totals.add(page["totalCount"])
            nodes += [e["node"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                return nodes, totals
            after = page["pageInfo"]["endCursor"]

    for caller in ("official", "public"):
        for scenario_id, lines in ((plan, in_plan), (empty, base)):
            seen = oracle(caller, lines)
            # Typed pages: the oracle's objects in the order asked for, page by page, with its total.
            for least in (None, 20.0):
                wanted = {
                    m: line
                    for m, line in seen.items()
                    if least is None or (line.length is not None and line.length >= least)
                }
                nodes, totals = page_through(caller, scenario_id, least)
                assert [n["mrid"] for n in nodes] == _by_length(wanted), (caller, scenario_id, least)
                assert totals == {len(wanted)}
                for n in nodes:
                    line = wanted[n["mrid"]]
                    assert (n["name"], n["length"], n["label"], n["version"]) == (
                        line.name,
                        line.length,
                        line.label,
                        line.version,
                    ), n
            by_name = env.query(caller, TYPED_BY_NAME, {"p": p, "s": scenario_id})["acLineSegments"]
            assert [n["mrid"] for n in by_name["nodes"]] == sorted(seen, key=lambda m: (seen[m].name, m))

            # Aggregates: overall and per version.
            agg = env.query(caller, AGGREGATE, {"p": p, "s": scenario_id})["acLineSegmentAggregate"]
            lengths = [line.length for line in seen.values() if line.length is not None]
            assert agg["count"] == len(seen)
            assert agg["sum"]["length"] == sum(lengths) and agg["max"]["length"] == max(lengths)
            versions = sorted({line.version for line in seen.values()})
            assert [(g["key"], g["count"], g["sum"]["length"]) for g in agg["groups"]] == [
                (
                    v,
                    sum(1 for line in seen.values() if line.version == v),
                    sum(line.length or 0.0 for line in seen.values() if line.version == v) or None,
                )
                for v in versions
            ], agg

            # Search: the exact mRID first, then names in which every word starts a word, shortest first.
            hits = env.query(caller, SEARCH, {"t": f"{word} tql", "s": scenario_id, "f": False})["search"]
            assert [h["mrid"] for h in hits] == sorted(seen, key=lambda m: (len(seen[m].name), m))
            fuzzy = env.query(caller, SEARCH, {"t": f"{word} tqlime", "s": scenario_id, "f": True})["search"]
            assert [h["mrid"] for h in fuzzy] == [h["mrid"] for h in hits]
            north = env.query(caller, SEARCH, {"t": f"{word} nor up", "s": scenario_id, "f": False})["search"]
            assert [h["mrid"] for h in north] == ([f"{p}-l1"] if scenario_id == plan else [])
            exact = env.query(caller, SEARCH, {"t": deleted, "s": scenario_id, "f": False})["search"]
            assert [h["mrid"] for h in exact] == ([] if scenario_id == plan else [deleted])

        # Counts: the scenario's per class less the empty scenario's (the same base) are the changes.
        def counts(caller: str, scenario_id: str) -> dict[str, int]:
            got = env.query(caller, COUNTS, {"s": scenario_id})["counts"]
            return {c["className"]: c["count"] for c in got}

        planned, unplanned = counts(caller, plan), counts(caller, empty)
        delta = {c: planned.get(c, 0) - unplanned.get(c, 0) for c in planned.keys() | unplanned.keys()}
        lines_delta = len(oracle(caller, in_plan)) - len(oracle(caller, base))
        assert {c: d for c, d in delta.items() if d} == {
            c: d for c, d in {"ACLineSegment": lines_delta, "EnergyConsumer": 1}.items() if d
        }, delta

    # The public caller sees the raised line nowhere in the scenario, and in the hidden-label scenario's
    # place it is refused exactly as in a scenario that does not exist.
    assert f"{p}-l2" not in {n["mrid"] for n in page_through("public", plan, None)[0]}
    stranger = f"scn-{uuid.uuid4().hex}"
    for q, v in (
        (TYPED_PAGE, {"p": p, "a": None, "min": None}),
        (TYPED_BY_NAME, {"p": p}),
        (AGGREGATE, {"p": p}),
        (COUNTS, {}),
        (SEARCH, {"t": f"{word} tql", "f": False}),
        (MEASUREMENTS, {"m": f"{p}-l1"}),
    ):
        refused = env.post("public", q, {**v, "s": hidden})
        assert "the scenario does not exist" in json.dumps(refused), (q, refused)
        assert json.dumps(refused, sort_keys=True) == json.dumps(
            env.post("public", q, {**v, "s": stranger}), sort_keys=True
        ), q
    # The official caller sees the hidden scenario, which holds one added line.
    got = page_through("official", hidden, None)[0]
    assert [n["mrid"] for n in got] == _by_length(oracle("official", {**base, added: changes[added]}))

    # What a scenario cannot answer is refused in words that say why.
    readings = env.post("public", MEASUREMENTS, {"m": f"{p}-l1", "s": plan})
    assert "a scenario holds planned changes to objects, never readings" in json.dumps(readings), readings
    # Relationship filters read the states there: no line here names a base voltage.
    for caller in ("official", "public"):
        related = env.query(caller, RELATION_FILTER, {"p": p, "s": plan})
        assert related["some"]["totalCount"] == 0
        assert related["none"]["totalCount"] == len(oracle(caller, in_plan))

    # The live graph answers as before the scenarios existed.
    assert live() == live_answers
