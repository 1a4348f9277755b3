"""Topic administration against the real broker: creation by error code, leaders awaited, deletion."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from hub.kafka_clients import admin_options
from hub.kafka_topics import (
    TopicError,
    delete_topics,
    ensure_topics,
    partition_ids,
    topic_admin,
    topic_names,
)

pytestmark = pytest.mark.services


def test_topics_are_created_once_listed_and_deleted(kafka_bootstrap: str) -> None:
    prefix = f"kt{uuid.uuid4().hex[:10]}."
    names = [f"{prefix}a", f"{prefix}b"]

    async def run() -> None:
        async with topic_admin(admin_options(kafka_bootstrap)) as admin:
            assert await ensure_topics(admin, names, 3) == names
            # Leaders were awaited: a record goes to every partition at once.
            producer = AIOKafkaProducer(**admin_options(kafka_bootstrap), acks="all")
            await producer.start()
            try:
                for partition in range(3):
                    await producer.send_and_wait(names[0], b"v", key=b"k", partition=partition)
            finally:
                await producer.stop()
            assert await partition_ids(admin, names[0]) == [0, 1, 2]
            assert await topic_names(admin, prefix) == names
            # Present already: nothing is created, nothing fails.
            assert await ensure_topics(admin, names, 3) == []
            await delete_topics(admin, [*names, f"{prefix}never-created"])
            for _ in range(100):
                if not await topic_names(admin, prefix):
                    break
                await asyncio.sleep(0.1)
            assert await topic_names(admin, prefix) == []
            assert await partition_ids(admin, names[0]) == []

    asyncio.run(run())


def test_two_creators_racing_for_one_topic_both_succeed_and_one_created_it(kafka_bootstrap: str) -> None:
    name = f"kt{uuid.uuid4().hex[:10]}.raced"

    async def one() -> list[str]:
        async with topic_admin(admin_options(kafka_bootstrap)) as admin:
            return await ensure_topics(admin, [name], 2)

    async def run() -> list[list[str]]:
        return list(await asyncio.gather(one(), one(), one()))

    results = asyncio.run(run())
    # The broker's TOPIC_ALREADY_EXISTS answer is success for whoever lost the race.
    assert sorted(n for created in results for n in created) == [name]

    async def cleanup() -> None:
        async with topic_admin(admin_options(kafka_bootstrap)) as admin:
            await delete_topics(admin, [name])

    asyncio.run(cleanup())


def test_a_creation_the_broker_refuses_names_the_topic_and_the_error(kafka_bootstrap: str) -> None:
    # A name the broker never accepts (only letters, digits, '.', '_' and '-' are legal).
    bad = f"kt{uuid.uuid4().hex[:10]}.not legal!"

    async def run() -> None:
        async with topic_admin(admin_options(kafka_bootstrap)) as admin:
            await ensure_topics(admin, [bad], 1)

    with pytest.raises(
        TopicError, match=r"topic 'kt[0-9a-f]+\.not legal!': creation refused: InvalidTopicError"
    ):
        asyncio.run(run())
