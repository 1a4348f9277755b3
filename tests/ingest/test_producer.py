"""The producer client and ``hub produce`` against the real Kafka: what lands on the topic is read back."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from typer.testing import CliRunner

from hub.events import Event, normalise_mrid
from hub.kafka_clients import admin_options
from hub.kafka_topics import delete_topics, topic_admin, topic_names
from hub.validation import validate_event
from ingest.gaslib import convert_gaslib
from ingest.producer import LABEL_HEADER, HubProducer, Pacer, ProducerError, produce
from ingest.producer_onboarding import add_producer
from ontology.loader import load_ontology

pytestmark = pytest.mark.services

GASLIB_11 = Path(__file__).resolve().parents[3] / "shared" / "data" / "gas" / "GasLib-11" / "GasLib-11.net"
TIME = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
# A prefix no worker subscribes to, so these events never reach a graph other tests look at.
PREFIX = "test.produce."


@pytest.fixture
def produce_settings(settings: Any, tmp_path: Path) -> Iterator[Any]:
    """Settings whose ingest topics live under a private prefix; the topics made are deleted afterwards."""
    isolated = settings.model_copy(
        update={
            "ingest_topic_prefix": PREFIX,
            "topic_partitions": 2,
            "producers_file": tmp_path / "producers.json",
        }
    )
    yield isolated
    asyncio.run(_delete_prefixed(settings.kafka_bootstrap))


async def _delete_prefixed(bootstrap: str) -> None:
    async with topic_admin(admin_options(bootstrap)) as admin:
        await delete_topics(admin, await topic_names(admin, PREFIX))


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list[Any]:
    """Every record of ``topic`` from the start, once ``expected`` have arrived (or the timeout passed)."""

    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(
            topic,
            **admin_options(bootstrap),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        try:
            while len(records) < expected and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for part in batch.values():
                    records.extend(part)
            # Anything beyond what was expected would be a duplicate or a stray event: give it a moment.
            extra = await consumer.getmany(timeout_ms=1000)
            for part in extra.values():
                records.extend(part)
        finally:
            await consumer.stop()
        return records

    return asyncio.run(run())


def producer_id(settings: Any) -> str:
    """A new producer, added as `hub producers add` adds one: it publishes as its own principal."""
    pid = f"p{uuid.uuid4().hex[:10]}"
    asyncio.run(add_producer(settings, pid))
    return pid


def test_gaslib_events_land_keyed_by_mrid_with_the_label_header(produce_settings: Any) -> None:
    pid = producer_id(produce_settings)
    ontology = load_ontology()
    events = list(convert_gaslib(GASLIB_11, source=pid, time=TIME, ontology=ontology))
    assert len(events) > 15  # 11 nodes and their connections

    stats = produce(
        events,
        pid,
        settings=produce_settings,
        ontology=ontology,
        label_header="classification=OFFICIAL",
        batch_size=7,
    )

    assert stats.sent == len(events) and stats.rejected == 0
    assert stats.topic == f"{PREFIX}{pid}"
    records = read_topic(produce_settings.kafka_bootstrap, stats.topic, len(events))
    assert len(records) == len(events)
    by_subject = {e.subject: e for e in events}
    seen = set()
    for record in records:
        body = json.loads(record.value)
        sent = Event.model_validate(body)
        assert record.key.decode() == normalise_mrid(sent.subject)
        assert sent == by_subject[sent.subject]
        assert dict(record.headers)[LABEL_HEADER] == b"classification=OFFICIAL"
        # What a worker will read validates the same way the producer checked it.
        assert validate_event(record.value, ontology).class_name == sent.class_
        seen.add(sent.subject)
    assert seen == set(by_subject)
    # Both partitions are used, and every version of one object would follow its key to one partition.
    assert len({r.partition for r in records}) == 2


def test_invalid_events_are_rejected_locally_and_never_sent(produce_settings: Any) -> None:
    pid = producer_id(produce_settings)
    good = {
        "id": "e1",
        "source": pid,
        "type": "upsert",
        "subject": "sub-1",
        "time": TIME.isoformat(),
        "version": 3,
        "class": "Substation",
        "attributes": {"IdentifiedObject.name": "North"},
        "label": "classification=PUBLIC",
    }
    wrong_source = {**good, "id": "e2", "subject": "sub-2", "source": "someone-else"}
    unknown_class = {**good, "id": "e3", "subject": "sub-3", "class": "FluxCapacitor"}
    bad_attribute = {**good, "id": "e4", "subject": "sub-4", "attributes": {"ACLineSegment.r": "0.1"}}
    bad_label = {**good, "id": "e5", "subject": "sub-5", "label": "org=a&org=b|org=c"}

    stats = produce(
        [good, wrong_source, unknown_class, bad_attribute, bad_label], pid, settings=produce_settings
    )

    assert (stats.sent, stats.rejected) == (1, 4)
    reasons = {r.subject: r.reason for r in stats.rejections}
    assert "someone-else" in reasons["sub-2"]
    assert "FluxCapacitor" in reasons["sub-3"]
    assert "ACLineSegment.r" in reasons["sub-4"]
    assert "org=a&org=b|org=c" in reasons["sub-5"]
    records = read_topic(produce_settings.kafka_bootstrap, stats.topic, 1)
    assert [r.key for r in records] == [b"sub-1"]
    assert not records[0].headers  # no header option given: the event's own label travels in the body
    assert json.loads(records[0].value)["label"] == "classification=PUBLIC"


def test_rate_limit_paces_the_stream(produce_settings: Any) -> None:
    pid = producer_id(produce_settings)
    events = [
        {
            "id": f"e{i}",
            "source": pid,
            "type": "upsert",
            "subject": f"sub-{i}",
            "time": TIME.isoformat(),
            "version": 1,
            "class": "Substation",
            "attributes": {"IdentifiedObject.name": f"S{i}"},
        }
        for i in range(60)
    ]
    began = time.monotonic()
    stats = produce(events, pid, settings=produce_settings, rate=100.0, batch_size=10)
    elapsed = time.monotonic() - began
    assert stats.sent == 60
    # 60 events at 100/s cannot leave in less than 0.59 s, however fast the machine is.
    assert elapsed >= 0.59
    assert len(read_topic(produce_settings.kafka_bootstrap, stats.topic, 60)) == 60


def test_pacer_and_options_reject_bad_values(settings: Any) -> None:
    with pytest.raises(ProducerError, match="rate = -5"):
        Pacer(-5)
    with pytest.raises(ProducerError, match="producer_id = 'Bad Id'"):
        HubProducer("Bad Id", settings=settings, validate=False)
    with pytest.raises(ProducerError, match=re.escape("label_header = 'a&b|c'")):
        HubProducer("fine", settings=settings, validate=False, label_header="a&b|c")


def test_hub_produce_command_publishes_a_gaslib_file(produce_settings: Any, monkeypatch: Any) -> None:
    from hub.settings import get_settings
    from hubcli.main import app

    monkeypatch.setenv("HUB_INGEST_TOPIC_PREFIX", PREFIX)
    get_settings.cache_clear()
    try:
        pid = producer_id(produce_settings)
        result = CliRunner().invoke(
            app,
            [
                "produce",
                str(GASLIB_11),
                "--producer",
                pid,
                "--label-header",
                "org=" + pid,
                "--version",
                "5",
                "--rate",
                "500",
            ],
        )
    finally:
        monkeypatch.delenv("HUB_INGEST_TOPIC_PREFIX")
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    expected = list(convert_gaslib(GASLIB_11, source=pid, time=TIME, version=5))
    assert f"{PREFIX}{pid}" in result.output and "GasLib-11.net" in result.output
    records = read_topic(produce_settings.kafka_bootstrap, f"{PREFIX}{pid}", len(expected))
    assert sorted(r.key.decode() for r in records) == sorted(e.subject for e in expected)
    assert {json.loads(r.value)["version"] for r in records} == {5}
    assert {dict(r.headers)[LABEL_HEADER] for r in records} == {f"org={pid}".encode()}


def test_hub_produce_names_a_missing_path_and_bad_format(tmp_path: Path) -> None:
    from hubcli.main import app

    missing = tmp_path / "nope.net"
    result = CliRunner().invoke(app, ["produce", str(missing), "--producer", "x", "--dry-run"])
    assert result.exit_code != 0 and "nope.net" in result.output
    odd = tmp_path / "model.bin"
    odd.write_bytes(b"\0")
    result = CliRunner().invoke(app, ["produce", str(odd), "--producer", "x", "--dry-run"])
    assert result.exit_code != 0 and ".bin" in result.output
