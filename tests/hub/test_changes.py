"""Change records: the fast encoding and partitioning the worker uses, and batched publishing to Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference_murmur2
from hypothesis import given
from hypothesis import strategies as st

from hub.changes import ChangePublisher, ChangeRecord, murmur2, partition_of
from hub.kafka_clients import ADMIN, admin_options

NOW = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def test_murmur2_matches_the_kafka_client() -> None:
    rng = random.Random(3)
    for length in range(0, 120):
        for _ in range(10):
            key = bytes(rng.randrange(256) for _ in range(length))
            assert murmur2(key) == reference_murmur2(key), key
    keys = [f"obj-{i}".encode() for i in range(500)] + [os.urandom(37) for _ in range(100)]
    partitioner = DefaultPartitioner()
    for n in (1, 3, 4, 12):
        parts = list(range(n))
        assert [partition_of(k, n) for k in keys] == [partitioner(k, parts, parts) for k in keys]


texts = st.text(max_size=40)


@given(
    mrid=texts,
    cls=texts,
    change=st.sampled_from(["upsert", "delete", "measurement", "stub"]),
    version=st.integers(0, 2**62),
    label=st.none() | st.integers(-(2**63), 2**63 - 1),
    event_time=st.none() | st.datetimes(timezones=st.just(UTC)) | st.datetimes(),
    event_id=st.none() | texts,
    producer=st.none() | texts,
    prev_label=st.none() | st.integers(-(2**63), 2**63 - 1),
)
def test_fast_encoding_is_byte_for_byte_the_json_encoding(
    mrid: str,
    cls: str,
    change: Any,
    version: int,
    label: int | None,
    event_time: datetime | None,
    event_id: str | None,
    producer: str | None,
    prev_label: int | None,
) -> None:
    record = ChangeRecord(mrid, cls, change, version, label, NOW, event_time, event_id, producer, prev_label)
    assert record.to_json_fast() == record.to_json()
    assert record.to_json_fast(NOW.isoformat()) == record.to_json()
    if event_time is None or event_time.tzinfo is not None:
        assert ChangeRecord.from_json(record.to_json_fast()) == record


def test_the_folds_record_goes_on_the_wire_only_once_stamped_with_its_commit_time() -> None:
    # The writer's fold makes the record before its batch commits; the worker stamps it afterwards.
    folded = ChangeRecord("m1", "ACLineSegment", "upsert", 3, 7, None, NOW, "e1", "p", 5)
    with pytest.raises(ValueError, match=r"'m1'.*time=None"):
        folded.to_json()
    with pytest.raises(ValueError, match=r"'m1'.*time=None"):
        folded.to_json_fast()
    record = folded.stamped(NOW)
    assert record.time == NOW and record[:5] == folded[:5] and record[6:] == folded[6:]
    assert json.loads(record.to_json()) == {
        "mrid": "m1",
        "class": "ACLineSegment",
        "change": "upsert",
        "version": 3,
        "label_id": 7,
        "time": NOW.isoformat(),
        "event_time": NOW.isoformat(),
        "event_id": "e1",
        "producer": "p",
        "prev_label_id": 5,
    }
    assert ChangeRecord.from_json(record.to_json_fast()) == record


def test_publisher_sends_each_record_to_its_key_partition_in_order(
    kafka_bootstrap: str, topic_factory: Any
) -> None:
    topic = topic_factory("changes", partitions=3)
    records = [
        ChangeRecord(
            f"m{i % 40}", "ACLineSegment", "upsert", i, 7, NOW, NOW - timedelta(seconds=i), f"e{i}", "p"
        )
        for i in range(400)
    ]

    async def run() -> list[tuple[int, bytes, bytes]]:
        # A small batch limit makes the publisher split partitions over several record batches.
        # The test's own topic: written as the admin (the worker principal writes only the hub's topics).
        publisher = ChangePublisher(kafka_bootstrap, max_batch_bytes=4096, principal=ADMIN)
        try:
            futures = await publisher.publish(topic, records)
            for fut in futures:
                await fut
        finally:
            await publisher.stop()
        consumer = AIOKafkaConsumer(topic, **admin_options(kafka_bootstrap), auto_offset_reset="earliest")
        await consumer.start()
        got: list[tuple[int, bytes, bytes]] = []
        try:
            while len(got) < len(records):
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
                for tp, messages in batch.items():
                    got.extend((tp.partition, m.key, m.value) for m in messages)
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(run())
    assert len(got) == len(records)
    for partition, key, _value in got:
        assert partition == partition_of(key, 3)
    # Per key, the records arrive in publishing order with the bytes of the plain encoding.
    for mrid in {r.mrid for r in records}:
        sent = [r.to_json() for r in records if r.mrid == mrid]
        assert [v for _p, k, v in got if k == mrid.encode()] == sent
