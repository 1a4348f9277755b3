"""The demo through the real stack: its worker and API processes, the network published by five
producers, applied by the worker, seen differently by two demo users, and the live feed applied too."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from rdflib import Graph, URIRef

from devstack.demo.network import DemoNetwork, build_network
from devstack.demo.orchestrator import (
    DEMO_INSECURE_SETTINGS,
    add_demo_producers,
    producer_clients,
    publish_network,
    wait_applied,
)
from devstack.demo.producers import CONTRACTS_DIR, PRODUCER_CONFIG, PRODUCER_IDS, producers_json
from devstack.demo.simulator import Simulator
from devstack.demo.stack import DemoStack, child_env, graphql
from devstack.services import kafka
from hub.auth import DEMO_USERS, mint_token
from hub.graph_schema import cypher
from hub.labels import Authorizations, evaluate, parse
from ontology.loader import load_ontology
from ontology.model import HUB_NS
from tests.devstack.demo.test_demo_users import readme_counts

pytestmark = pytest.mark.services


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token(settings: Any, user: str) -> str:
    u = next(d for d in DEMO_USERS if d.user == user)
    return mint_token(u.user, u.org, u.clearance, u.roles, u.groups, settings=settings)


@pytest.fixture
def demo_stack(settings: Any, clean_graph: Any, tmp_path: Any) -> Iterator[DemoStack]:
    """The demo's worker and API processes on private topics (no other test's worker reads them)."""
    run = uuid.uuid4().hex[:8]
    isolated = settings.model_copy(
        update={
            "ingest_topic_prefix": f"demo{run}.ingest.",
            "changes_topic": f"demo{run}.changes",
            "deadletter_topic": f"demo{run}.deadletter",
            "api_port": _free_port(),
            "worker_id": f"demo-test-{run}",
            # The demo's producers are added here, not to the producers file every test process reads.
            "producers_file": tmp_path / "producers.json",
        }
    )
    kafka.apply_service_acls(isolated)
    env = child_env(
        isolated,
        {
            "HUB_PRODUCERS": producers_json(),
            # As `hub demo` runs its worker: every event held to its producer's data contract.
            "HUB_CONTRACTS_DIR": str(CONTRACTS_DIR),
            "HUB_WORKER_ID": f"demo-test-{run}",
            "HUB_WORKER_WEB_PORT": "0",
            "HUB_METRICS_PORT": "0",
            # What `hub demo` gives its API (the hub's defaults would refuse the demo's callers).
            **DEMO_INSECURE_SETTINGS,
        },
    )
    stack = DemoStack(isolated, env, tmp_path / "logs")
    # As `hub demo` does: the producers' topics exist before the worker starts.
    asyncio.run(add_demo_producers(isolated))
    try:
        stack.start(lambda _msg: None, timeout_s=180)
        yield stack
    finally:
        stack.stop()


def expected_visible(network: DemoNetwork, user: str) -> set[str]:
    """The demo's objects ``user`` may see, by evaluating each object's label here."""
    u = next(d for d in DEMO_USERS if d.user == user)
    auths = Authorizations.from_claims(clearance=u.clearance, org=u.org, roles=u.roles, groups=u.groups)
    visible = set()
    for pid, events in network.events.items():
        for event in events:
            text = event.label or network.header_label(pid) or PRODUCER_CONFIG[pid]["default_label"]
            if evaluate(parse(text), auths):
                visible.add(event.subject)
    return visible


OBJECTS = """query($after: String) { objects(first: 2000, after: $after) {
  edges { node { mrid } } pageInfo { hasNextPage endCursor } } }"""


def visible_mrids(base: str, token: str) -> set[str]:
    """Every object the caller sees, through the API's paged object list."""
    found: set[str] = set()
    after = None
    while True:
        page = graphql(base, OBJECTS, token, {"after": after})["objects"]
        found.update(edge["node"]["mrid"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


def _publish(network: DemoNetwork, settings: Any, ontology: Any) -> None:
    async def run() -> None:
        await add_demo_producers(settings)
        producers = producer_clients(network, settings, ontology)
        for producer in producers.values():
            await producer.start()
        try:
            stats = await publish_network(network, producers)
        finally:
            for producer in producers.values():
                await producer.stop()
        assert {pid: s.sent for pid, s in stats.items()} == {
            pid: len(network.events[pid]) for pid in PRODUCER_IDS
        }

    asyncio.run(run())


def test_demo_network_through_the_stack(demo_stack: DemoStack, neo4j_driver: Any, settings: Any) -> None:
    ontology = load_ontology()
    network = build_network(ontology)
    assert set(network.events) == set(PRODUCER_IDS)
    assert all(network.events[pid] for pid in PRODUCER_IDS)
    classes = network.classes()
    assert classes["GasOfftake"] >= 1 and classes["ElectricitySupplyPoint"] == classes["GasCompressorStation"]
    assert classes["ThermalGeneratingUnit"] >= 1

    _publish(network, demo_stack.settings, ontology)
    base = demo_stack.api_base
    operator = _token(settings, "ops.engineer")
    waiting = wait_applied(base, operator, network.count(), 180.0, demo_stack.check, lambda _m: None)
    seen = asyncio.run(waiting)
    assert seen >= network.count()

    # Every published object is in the graph at the published version, owned by its producer. (The test
    # database may hold the demo's objects from an earlier run, visible already: wait for the version.)
    want = {pid: len(network.events[pid]) for pid in PRODUCER_IDS}
    deadline = time.monotonic() + 180
    while True:
        records, _, _ = neo4j_driver.execute_query(
            cypher(
                "MATCH (n:Entity) WHERE n.mrid IN $mrids AND n.@version = $version "
                "RETURN n.@owner AS owner, count(*) AS n"
            ),
            mrids=list(network.objects),
            version=network.version,
        )
        got = {r["owner"]: r["n"] for r in records}
        if got == want or time.monotonic() > deadline:
            break
        demo_stack.check()
        time.sleep(1.0)
    assert got == want

    # Two demo users, two different graphs, each exactly what the labels allow them (the test graph may
    # hold other objects too, so only the demo's objects are compared).
    # The graph holds every object now, but an API process learns a label the worker interned only when its
    # label directory is next read (at most label_cache_ttl_s later; until then the objects stay hidden, never
    # shown): each user's view is asked again until that bound has surely passed.
    seen_by = {}
    for user in (d.user for d in DEMO_USERS):
        want = expected_visible(network, user)
        settle = time.monotonic() + 5 * demo_stack.settings.label_cache_ttl_s + 5.0
        while True:
            visible = visible_mrids(base, _token(settings, user)) & set(network.objects)
            if visible == want or time.monotonic() > settle:
                break
            time.sleep(demo_stack.settings.label_cache_ttl_s)
        assert visible == want, user
        seen_by[user] = len(visible)
    assert seen_by["public.analyst"] < seen_by["grid.planner"] < seen_by["ops.engineer"] == network.count()
    # Exactly the README's demo-user table, here through the running API.
    assert {user: (n, network.count()) for user, n in seen_by.items()} == readme_counts()
    # As the README's table says: the administrator's SECRET clearance does not open what is labelled
    # for named organisations only (no role is a superuser), so it sees less than the system operator.
    assert seen_by["hub.admin"] < seen_by["ops.engineer"]

    # The demo's API publishes the contracts as a catalogue: the generator's product only for callers
    # cleared OFFICIAL (its metadata label), every other one for anyone.
    products = {}
    for user in ("public.analyst", "ops.engineer"):
        answer = httpx.get(
            f"{base}/catalog",
            headers={"Accept": "text/turtle", "Authorization": f"Bearer {_token(settings, user)}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        g = Graph().parse(data=answer.text, format="turtle")
        products[user] = {str(p) for p in g.objects(None, URIRef(HUB_NS + "#producer"))}
    assert products == {"public.analyst": set(PRODUCER_IDS) - {"genco"}, "ops.engineer": set(PRODUCER_IDS)}

    compressor = next(m for m, (_, cls) in network.objects.items() if cls == "GasCompressorStation")
    query = "query($m: ID!) { object(mrid: $m) { mrid label } }"
    assert graphql(base, query, _token(settings, "public.analyst"), {"m": compressor})["object"] is None
    assert graphql(base, query, _token(settings, "grid.planner"), {"m": compressor})["object"] is None
    shown = graphql(base, query, _token(settings, "gas.planner"), {"m": compressor})["object"]
    assert shown == {"mrid": compressor, "label": "classification=OFFICIAL-SENSITIVE|org=nggt"}

    # The coupling is in the graph: the offtake supplies a gas-fired unit.
    offtake = next(m for m, (_, cls) in network.objects.items() if cls == "GasOfftake")
    sub = graphql(
        base,
        "query($m: ID!) { neighbourhood(mrid: $m, depth: 1) { nodes { mrid className } "
        "edges { source target type } } }",
        operator,
        {"m": offtake},
    )["neighbourhood"]
    supplied = {
        e["target"] for e in sub["edges"] if e["type"] == "SUPPLIES_GAS_TO" and e["source"] == offtake
    }
    assert supplied and {n["className"] for n in sub["nodes"] if n["mrid"] in supplied} == {
        "ThermalGeneratingUnit"
    }

    # The live feed: a few seconds of changes, each applied at its newer version.
    sim = Simulator(network, ontology, seed=7, outage_chance=0.05, switch_chance=0.05)

    async def feed() -> None:
        producers = producer_clients(network, demo_stack.settings, ontology, batch_size=50)
        for producer in producers.values():
            await producer.start()
        try:
            await sim.run(producers, rate=40.0, stop=asyncio.Event(), duration_s=3.0)
        finally:
            for producer in producers.values():
                await producer.stop()

    asyncio.run(feed())
    assert sim.stats.total >= 60
    changed = dict(sim.last_version)
    deadline = time.monotonic() + 60
    while True:
        records, _, _ = neo4j_driver.execute_query(
            cypher(
                "UNWIND $changes AS c MATCH (n:Entity {mrid: c.mrid}) WHERE n.@version = c.version "
                "RETURN count(n) AS n"
            ),
            changes=[{"mrid": m, "version": v} for m, v in changed.items()],
        )
        if records[0]["n"] == len(changed) or time.monotonic() > deadline:
            break
        # A worker that died is reported with its log, not as changes that never arrived.
        demo_stack.check()
        time.sleep(0.5)
    assert records[0]["n"] == len(changed), (
        f"{records[0]['n']} of {len(changed)} live changes applied within 60 s "
        f"({sim.stats.total} sent); the worker's log is in the report"
    )
