"""Consumers' data-quality flags go round trip to the producer and back: a real API server, real Neo4j, and
the producer's own feedback topic on real Kafka.

A consumer flags a product and one of its objects; the producer reads both from its feedback topic,
acknowledges one, resolves it, rejects the other with a reason; the consumer sees each status, and the
product's quality counts the flags still open. A hidden object cannot be flagged, and the refusal is word
for word the one for an object that does not exist; a caller without the producer's role cannot move a
flag, and is told what it would be told of a flag that does not exist.
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

from hub.kafka_clients import admin_options
from hub.kafka_topics import delete_topics, topic_admin, topic_names
from ontology.loader import load_ontology

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
            Obj(f"{producer}-open", "GasPipe", "classification=PUBLIC", name="open pipe"),
            Obj(f"{producer}-own", "GasPipe", "org=ngt", name="ngt's pipe"),
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


def _error(answer: dict[str, Any]) -> str:
    assert answer.get("data") is None or not any(answer["data"].values()), answer
    return str(answer["errors"][0]["message"])


def test_flags_go_round_trip_between_consumer_and_producer(
    portal: tuple[Api, str], kafka_bootstrap: str
) -> None:
    api, producer = portal
    consumer = api.token("carol", None, "PUBLIC")
    insider = api.token("ivan", "ngt", "OFFICIAL")
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
    assert (
        api.query(OPEN, {"id": producer}, token=consumer)["data"]["dataProduct"]["quality"]["openFlags"] == 2
    )
    assert (
        api.query(OPEN, {"id": producer}, token=insider)["data"]["dataProduct"]["quality"]["openFlags"] == 3
    )

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
    # Only the insider's flag is still open.
    assert (
        api.query(OPEN, {"id": producer}, token=consumer)["data"]["dataProduct"]["quality"]["openFlags"] == 0
    )
    assert (
        api.query(OPEN, {"id": producer}, token=insider)["data"]["dataProduct"]["quality"]["openFlags"] == 1
    )
