"""Consumers' data-quality flags go round trip to the producer and back: a real API server, real Neo4j, and
the producer's own feedback topic on real Kafka.

A consumer flags a product and one of its objects; the producer reads both from its feedback topic,
acknowledges one, resolves it, rejects the other with a reason; the consumer sees each status, and the
product's quality counts the flags still open. A hidden object cannot be flagged, and the refusal is word
for word the one for an object that does not exist; a caller without the producer's role cannot move a
flag, and is told what it would be told of a flag that does not exist.

The count of open flags is the same figure in GraphQL, the DCAT catalogue (a DQV measurement) and CKAN's
extras (``package_show`` and ``package_search``), for each of two callers of different clearance: equal
to an oracle over the flags the test raised and the objects each caller may see, and different between
the two.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from graphkit import Api, Obj, delete_prefix, serve, write_graph
from hubql.catalog import DCAT, DQV, HUB
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import RDF

from hub.caller import Caller
from hub.kafka_clients import admin_options
from hub.kafka_topics import delete_topics, topic_admin, topic_names
from hub.labels import evaluate, parse
from ontology.loader import load_ontology

PUBLIC = "classification=PUBLIC"
OWN = "org=ngt"
# Where the count of open flags is told: GraphQL, the catalogue, and two CKAN actions.
VIEWS = ("graphql", "catalog", "package_show", "package_search")

FLAG = """
mutation Flag($product: ID!, $subject: String, $description: String!) {
  flagDataQuality(product: $product, subject: $subject, description: $description) {
    id product subject description status reason reporter
  }
}
"""
MOVE = """
mutation Move($id: ID!, $status: QualityFlagStatus!, $reason: String) {
  setQualityFlagStatus(id: $id, status: $status, reason: $reason) { id status reason updatedBy }
}
"""
MINE = """
query Mine($product: ID) { qualityFlags(product: $product) { id status reason subject } }
"""
ONE = "query One($id: ID!) { qualityFlag(id: $id) { id status } }"
OPEN = "query Open($id: ID!) { dataProduct(id: $id) { quality { openFlags objects } } }"


def contract(producer: str) -> dict[str, Any]:
    return {
        "apiVersion": "v3.2.0",
        "kind": "DataContract",
        "id": f"urn:test:contract:{producer}",
        "name": "Pipes",
        "version": "1.0.0",
        "status": "active",
        "description": {"purpose": "Pipes for a test.", "limitations": "None."},
        "team": {"name": "Test team"},
        "support": [{"channel": "email", "url": "mailto:pipes@example.test"}],
        "slaProperties": [
            {"property": "frequency", "value": 1, "unit": "h"},
            {"property": "latency", "value": 10, "unit": "m"},
        ],
        "customProperties": [
            {"property": "producer", "value": producer},
            {"property": "defaultLabel", "value": "org=ngt"},
            {"property": "maximumLabel", "value": "classification=OFFICIAL&org=ngt"},
            {"property": "licence", "value": "https://creativecommons.org/licenses/by/4.0/"},
            {"property": "sensitivity", "value": "OE-O"},
        ],
        "schema": [
            {"name": "GasPipe", "properties": [{"name": "IdentifiedObject.name", "logicalType": "string"}]}
        ],
    }


@pytest.fixture
def portal(
    settings: Any, neo4j_driver: Any, tmp_path: Path, kafka_bootstrap: str
) -> Iterator[tuple[Api, str]]:
    producer = f"fb{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "pipes.yaml").write_text(yaml.safe_dump(contract(producer), sort_keys=False))
    write_graph(
        neo4j_driver,
        load_ontology(),
        [
            Obj(f"{producer}-open", "GasPipe", PUBLIC, name="open pipe"),
            Obj(f"{producer}-own", "GasPipe", OWN, name="ngt's pipe"),
        ],
        [],
        producer=producer,
        label_ttl_s=settings.label_cache_ttl_s,
    )
    update = {
        "contracts_dir": folder,
        "producers": {producer: {"org": "ngt", "clearance": "OFFICIAL", "owns": f"{producer}-"}},
        "feedback_topic": f"{producer}.feedback",
    }
    try:
        with serve(settings.model_copy(update=update)) as api:
            yield api, producer
    finally:
        delete_prefix(neo4j_driver, producer)
        neo4j_driver.execute_query("MATCH (f:QualityFlag {product: $p}) DELETE f", p=producer)
        asyncio.run(_delete_topics(kafka_bootstrap, producer))


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    async with topic_admin(admin_options(bootstrap)) as admin:
        await delete_topics(admin, await topic_names(admin, prefix + "."))


async def _read(bootstrap: str, topic: str, expect: int) -> list[dict[str, Any]]:
    """The producer's view: every record of its feedback topic, until ``expect`` have come."""
    consumer = AIOKafkaConsumer(**admin_options(bootstrap), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        found: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(found) < expect and loop.time() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500)
            for msg in batch.get(tp, []):
                record = json.loads(msg.value)
                assert msg.key.decode() == record["flag"]["id"]
                found.append(record)
        return found
    finally:
        await consumer.stop()


def _open_oracle(caller: Caller, producer: str, flags: dict[str, tuple[str | None, str]]) -> int:
    """The flags still open or acknowledged that ``caller`` may be told of: product-wide ones, and those on
    objects whose label it satisfies (``flags``: id -> subject, status, as the test raised and moved them)."""
    labels = {f"{producer}-open": PUBLIC, f"{producer}-own": OWN}
    return sum(
        1
        for subject, status in flags.values()
        if status in ("OPEN", "ACKNOWLEDGED")
        and (subject is None or evaluate(parse(labels[subject]), caller.authorizations))
    )


def _open_figures(api: Api, producer: str, token: str) -> dict[str, int]:
    """The product's open flags as each view tells ``token``'s caller: GraphQL, the catalogue's DQV
    measurement, and the CKAN package's extras as ``package_show`` and ``package_search`` give them."""
    quality = api.query(OPEN, {"id": producer}, token=token)["data"]["dataProduct"]["quality"]
    figures = {"graphql": quality["openFlags"]}
    answer = api.client.get(
        f"{api.base}/catalog", headers={"Authorization": f"Bearer {token}", "Accept": "text/turtle"}
    )
    assert answer.status_code == 200, answer.text
    g = Graph().parse(data=answer.text, format="turtle")
    ds = URIRef(f"{api.base}/catalog/datasets/{producer}")
    assert (ds, RDF.type, DCAT.Dataset) in g
    values = [
        g.value(m, DQV.value)
        for m in g.objects(ds, DQV.hasQualityMeasurement)
        if g.value(m, DQV.isMeasurementOf) == HUB.openFlags
    ]
    assert len(values) == 1 and isinstance(values[0], Literal), values
    figures["catalog"] = values[0].toPython()
    # ckanapi sends the token as the bare header value.
    ckan = {"Authorization": token}
    shown = api.client.get(f"{api.base}/api/3/action/package_show", params={"id": producer}, headers=ckan)
    assert shown.status_code == 200, shown.text
    found = api.client.get(
        f"{api.base}/api/action/package_search", params={"fq": f"name:{producer}"}, headers=ckan
    )
    assert found.status_code == 200, found.text
    assert found.json()["result"]["count"] == 1
    for view, package in (
        ("package_show", shown.json()["result"]),
        ("package_search", found.json()["result"]["results"][0]),
    ):
        extras = {e["key"]: e["value"] for e in package["extras"]}
        figures[view] = int(extras["open_flags"])
    return figures


def _error(answer: dict[str, Any]) -> str:
    assert answer.get("data") is None or not any(answer["data"].values()), answer
    return str(answer["errors"][0]["message"])


def test_flags_go_round_trip_between_consumer_and_producer(
    portal: tuple[Api, str], kafka_bootstrap: str
) -> None:
    api, producer = portal
    consumer = api.token("carol", None, "PUBLIC")
    insider = api.token("ivan", "ngt", "OFFICIAL")
    callers = {
        consumer: Caller("carol", org=None, clearance="PUBLIC"),
        insider: Caller("ivan", org="ngt", clearance="OFFICIAL"),
    }
    # What the test raised and moved, as the oracle of the open flags each caller may be told of.
    flags: dict[str, tuple[str | None, str]] = {}
    owner = api.token("pat", "ngt", "OFFICIAL", roles=(f"producer:{producer}",))
    topic = f"{producer}.feedback.{producer}"

    # The consumer flags the product and the one object it may see.
    whole = api.query(FLAG, {"product": producer, "description": "Lengths look like feet"}, token=consumer)
    pipe = api.query(
        FLAG,
        {"product": producer, "subject": f"{producer}-open", "description": "Name is wrong"},
        token=consumer,
    )
    whole_flag = whole["data"]["flagDataQuality"]
    pipe_flag = pipe["data"]["flagDataQuality"]
    assert whole_flag["status"] == pipe_flag["status"] == "OPEN"
    assert whole_flag["subject"] is None and pipe_flag["subject"] == f"{producer}-open"
    assert whole_flag["reporter"] == "carol"

    # A hidden object cannot be flagged, nor confirmed to exist: the same words as for a missing one.
    hidden = api.query(
        FLAG, {"product": producer, "subject": f"{producer}-own", "description": "x"}, token=consumer
    )
    missing = api.query(
        FLAG, {"product": producer, "subject": f"{producer}-none", "description": "x"}, token=consumer
    )
    assert _error(hidden) == _error(missing) == "no such object in this data product"
    # Nor can another product's object be flagged as this product's, nor a product nobody has.
    assert _error(api.query(FLAG, {"product": "nobody", "description": "x"}, token=consumer)) == (
        "no such data product"
    )
    # The insider, who sees it, may flag it.
    theirs = api.query(
        FLAG, {"product": producer, "subject": f"{producer}-own", "description": "Stale"}, token=insider
    )
    assert theirs["data"]["flagDataQuality"]["status"] == "OPEN"

    # The producer reads the three flags on its own topic.
    raised = asyncio.run(_read(kafka_bootstrap, topic, 3))
    assert [r["action"] for r in raised] == ["flag.raised"] * 3
    assert {r["flag"]["id"] for r in raised} == {
        whole_flag["id"],
        pipe_flag["id"],
        theirs["data"]["flagDataQuality"]["id"],
    }

    # Open flags as each caller counts them: the consumer does not count the one on the hidden object.
    # GraphQL, the catalogue and CKAN give each caller its oracle's figure, and the two callers differ.
    flags |= {
        whole_flag["id"]: (None, "OPEN"),
        pipe_flag["id"]: (f"{producer}-open", "OPEN"),
        theirs["data"]["flagDataQuality"]["id"]: (f"{producer}-own", "OPEN"),
    }
    raised_figures = {token: _open_figures(api, producer, token) for token in callers}
    for token, caller in callers.items():
        expected = _open_oracle(caller, producer, flags)
        assert raised_figures[token] == dict.fromkeys(VIEWS, expected), (caller, expected)
    assert raised_figures[consumer]["graphql"] == 2 and raised_figures[insider]["graphql"] == 3

    # Only the producer moves a flag; anyone else is told what a missing flag would tell them.
    refused = api.query(MOVE, {"id": pipe_flag["id"], "status": "RESOLVED"}, token=insider)
    unknown = api.query(MOVE, {"id": str(uuid.uuid4()), "status": "RESOLVED"}, token=insider)
    assert _error(refused) == _error(unknown) == "no such quality flag"
    # A rejection needs a reason.
    assert "needs a reason" in _error(
        api.query(MOVE, {"id": whole_flag["id"], "status": "REJECTED"}, token=owner)
    )

    acked = api.query(MOVE, {"id": pipe_flag["id"], "status": "ACKNOWLEDGED"}, token=owner)
    assert acked["data"]["setQualityFlagStatus"]["status"] == "ACKNOWLEDGED"
    resolved = api.query(MOVE, {"id": pipe_flag["id"], "status": "RESOLVED"}, token=owner)
    assert resolved["data"]["setQualityFlagStatus"] == {
        "id": pipe_flag["id"],
        "status": "RESOLVED",
        "reason": None,
        "updatedBy": "pat",
    }
    rejected = api.query(
        MOVE, {"id": whole_flag["id"], "status": "REJECTED", "reason": "Lengths are metres"}, token=owner
    )
    assert rejected["data"]["setQualityFlagStatus"]["reason"] == "Lengths are metres"
    # A resolved flag stays resolved.
    assert "cannot become" in _error(
        api.query(MOVE, {"id": pipe_flag["id"], "status": "REJECTED", "reason": "r"}, token=owner)
    )

    # Each answer reached the producer's topic too, in order.
    records = asyncio.run(_read(kafka_bootstrap, topic, 6))
    assert [r["action"] for r in records[3:]] == ["flag.acknowledged", "flag.resolved", "flag.rejected"]
    assert records[-1]["flag"]["reason"] == "Lengths are metres"

    # The consumer sees the status of its own flags, and only its own.
    mine = api.query(MINE, {"product": producer}, token=consumer)["data"]["qualityFlags"]
    assert {f["id"]: (f["status"], f["reason"]) for f in mine} == {
        pipe_flag["id"]: ("RESOLVED", None),
        whole_flag["id"]: ("REJECTED", "Lengths are metres"),
    }
    assert (
        api.query(ONE, {"id": theirs["data"]["flagDataQuality"]["id"]}, token=consumer)["data"]["qualityFlag"]
        is None
    )
    # The producer sees all three.
    assert len(api.query(MINE, {"product": producer}, token=owner)["data"]["qualityFlags"]) == 3
    # Only the insider's flag is still open, in every view.
    flags |= {pipe_flag["id"]: (f"{producer}-open", "RESOLVED"), whole_flag["id"]: (None, "REJECTED")}
    answered_figures = {token: _open_figures(api, producer, token) for token in callers}
    for token, caller in callers.items():
        expected = _open_oracle(caller, producer, flags)
        assert answered_figures[token] == dict.fromkeys(VIEWS, expected), (caller, expected)
    assert answered_figures[consumer]["catalog"] == 0 and answered_figures[insider]["catalog"] == 1
