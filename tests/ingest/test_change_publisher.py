"""The change publisher: Kafka's partitioning of keys, and batched publishing of change records."""

from __future__ import annotations

import asyncio
import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference_murmur2

from hub.changes import ChangeRecord
from hub.kafka_clients import ADMIN, admin_options
from ingest.change_publisher import ChangePublisher, murmur2, partition_of

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
