"""``hub access export`` against real Kafka: the audit topic's access records of a period, as JSON lines,
written by the audit publisher the API runs; records of other actions and outside the period left out."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from hub import audit
from hub.kafka_clients import admin_options
from hub.kafka_topics import ensure_topics, topic_admin
from hub.settings import get_settings
from hubcli.main import app

pytestmark = pytest.mark.services


@pytest.fixture
def audit_topic(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    topic = f"export-{uuid.uuid4().hex[:8]}.audit"

    async def create() -> None:
        async with topic_admin(admin_options(settings.kafka_bootstrap)) as admin:
            await ensure_topics(admin, [topic], 2)

    asyncio.run(create())
    monkeypatch.setenv("HUB_AUDIT_TOPIC", topic)
    get_settings.cache_clear()
    yield topic
    monkeypatch.undo()
    get_settings.cache_clear()


async def _publish(settings: Any, topic: str, old: dict[str, Any]) -> None:
    """Records through the audit publisher, as the API writes them, and one of last year."""
    producer = AIOKafkaProducer(**admin_options(settings.kafka_bootstrap))
    await producer.start()

    async def sender() -> AIOKafkaProducer:
        return producer

    publisher = audit.AuditPublisher(topic, sender)
    publisher.start()
    try:
        await producer.send_and_wait(topic, json.dumps(old).encode())
        audit.record("access.requested", subject="alice", issuer="iss", request="r1", product="ngt")
        audit.record("label.changed", subject="m1", producer="ngt", old="a", new="b")
        audit.record("access.used", subject="alice", issuer="iss", grants=["r1"], rows=3)
        await asyncio.sleep(1.0)
    finally:
        await publisher.stop()
        await producer.stop()


def test_export_writes_the_access_records_of_the_period(
    settings: Any, audit_topic: str, tmp_path: Path
) -> None:
    old_time = datetime.now(UTC) - timedelta(days=365)
    old = {"time": old_time.isoformat(), "action": "access.approved", "request": "r0"}
    started = datetime.now(UTC) - timedelta(seconds=1)
    asyncio.run(_publish(settings, audit_topic, old))
    out = tmp_path / "access.jsonl"
    result = CliRunner().invoke(app, ["access", "export", "--from", started.isoformat(), "-o", str(out)])
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(e["action"] for e in got) == ["access.requested", "access.used"]
    assert {e.get("request") for e in got} == {"r1", None}

    # A period that holds only last year's record (its own time, not the record's arrival, decides).
    result = CliRunner().invoke(
        app,
        [
            "access",
            "export",
            "--from",
            (old_time - timedelta(minutes=1)).isoformat(),
            "--to",
            (old_time + timedelta(minutes=1)).isoformat(),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    # Kafka's offsets-for-times finds records by arrival: the old record arrived now, so from a time
    # before it every later record is read and filtered by its own time.
    assert lines == [old]


@pytest.mark.parametrize(
    ("args", "named"), [(["--from", "yesterday"], "--from"), (["--from", "1d", "--to", "soon"], "--to")]
)
def test_a_period_that_is_not_a_time_is_refused_naming_its_option(args: list[str], named: str) -> None:
    result = CliRunner().invoke(app, ["access", "export", *args])
    assert result.exit_code == 2, result.output
    assert f"{named} '{args[-1]}' is neither a time" in result.output
