"""The test Kafka really stores and serves messages."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hub.kafka_clients import admin_options


async def test_message_produced_to_a_fresh_topic_is_consumed_back(
    kafka_bootstrap: str, fresh_topic: str
) -> None:
    key = uuid.uuid4().hex.encode()
    value = b'{"type": "upsert", "subject": "' + key + b'"}'
    headers = [("Security-Label", b"org=ngt")]

    producer = AIOKafkaProducer(**admin_options(kafka_bootstrap), acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(fresh_topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()
    assert sent.topic == fresh_topic
    assert sent.offset == 0

    consumer = AIOKafkaConsumer(
        fresh_topic,
        **admin_options(kafka_bootstrap),
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=20_000, max_records=10)
    finally:
        await consumer.stop()
    records = [record for batch in batches.values() for record in batch]
    assert len(records) == 1
    assert records[0].key == key
    assert records[0].value == value
    assert list(records[0].headers) == headers


async def test_topics_are_created_on_first_use(kafka_bootstrap: str, settings: object) -> None:
    # The worker relies on auto-creation for ingest topics of new producers.
    from hub.settings import Settings

    assert isinstance(settings, Settings)
    topic = f"test.auto.{uuid.uuid4().hex[:12]}"
    producer = AIOKafkaProducer(**admin_options(kafka_bootstrap))
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"x", key=b"k")
        partitions = await producer.partitions_for(topic)
    finally:
        await producer.stop()
    assert len(partitions) == settings.topic_partitions
