"""The write pipeline's bookkeeping against a real Kafka consumer."""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.types import TP
from prometheus_client import REGISTRY

from hub.kafka_clients import admin_options
from hub.kafka_topics import delete_topics, ensure_topics, topic_admin
from ingest.pipeline import record_lag


async def test_lag_of_a_partition_taken_away_by_a_rebalance_is_skipped(kafka_bootstrap: Any) -> None:
    """A batch acknowledged after a rebalance took one of its partitions away: that partition's lag is
    not this consumer's to report, and acknowledging goes on (it once stopped the agent for good)."""
    topic = f"lag{uuid.uuid4().hex[:8]}"
    options = admin_options(kafka_bootstrap)
    async with topic_admin(options) as admin:
        await ensure_topics(admin, [topic], 2)
    producer = AIOKafkaProducer(**options, acks="all")
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False, group_id=None)
    await producer.start()
    await consumer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(topic, b"x", partition=0, key=str(i).encode())
        # The pipeline names partitions as Faust does; the consumer here is aiokafka's own.
        held, gone = TP(topic, 0), TP(topic, 1)
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning(TopicPartition(topic, 0))
        read, deadline = 0, time.monotonic() + 60
        while read < 5:  # the high-water mark comes with fetched records
            assert time.monotonic() < deadline, f"read {read} of 5 records within 60 s"
            read += sum(len(r) for r in (await consumer.getmany(timeout_ms=2000)).values())

        record_lag(consumer, {held: 1, gone: 3})

        def lag(partition: int) -> float | None:
            return REGISTRY.get_sample_value("hub_ingest_lag", {"topic": topic, "partition": str(partition)})

        assert lag(0) == 3  # offsets 2, 3 and 4 still to come
        assert lag(1) is None
    finally:
        await consumer.stop()
        await producer.stop()
        async with topic_admin(options) as admin:
            await delete_topics(admin, [topic])
