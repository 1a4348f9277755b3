"""Kafka topic administration: the one place that lists, creates, waits for and deletes topics.

The worker creates its output topics and finds the producers' topics, ``hub producers add`` creates a
producer's topic, the producer client checks its own, and the tests and benchmarks make and remove
theirs; all of them go through these functions.

The broker answers a creation per topic with an error *code* (aiokafka returns the response and raises
nothing for it): ``TOPIC_ALREADY_EXISTS`` means someone else created the topic first, which is what the
caller wanted; any other code is raised as :class:`TopicError` naming the topic and the error. A topic
just created has no partition leaders for a moment, and producing to it then fails, so creation waits for
them unless told not to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import NoError, TopicAlreadyExistsError, for_code

# The codes a creation may answer with and still leave the topic there.
_CREATED: Final = frozenset({NoError.errno, TopicAlreadyExistsError.errno})


class TopicError(RuntimeError):
    """A topic the broker would not create, or whose partitions got no leader in time."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"topic {topic!r}: {reason}")
        self.topic = topic


@asynccontextmanager
async def topic_admin(
    options: Mapping[str, Any], *, request_timeout_ms: int = 15_000
) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client built from a principal's client options (:mod:`hub.kafka_clients`), closed on exit."""
    admin = AIOKafkaAdminClient(**options, request_timeout_ms=request_timeout_ms)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def topic_names(admin: AIOKafkaAdminClient, prefix: str = "") -> list[str]:
    """The cluster's topics whose names start with ``prefix`` (longer than it), sorted."""
    return sorted(n for n in await admin.list_topics() if n.startswith(prefix) and len(n) > len(prefix))


async def ensure_topics(
    admin: AIOKafkaAdminClient,
    names: Iterable[str],
    partitions: int,
    *,
    wait_s: float | None = 10.0,
) -> list[str]:
    """Create those of ``names`` that are missing, with ``partitions`` partitions; returns the ones this
    call created. Waits up to ``wait_s`` for every named topic's partitions to have a leader (None: does
    not wait). :class:`TopicError` for a topic the broker refuses."""
    wanted = list(dict.fromkeys(names))
    existing = set(await admin.list_topics())
    missing = [n for n in wanted if n not in existing]
    created: list[str] = []
    if missing:
        response = await admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing]
        )
        for entry in response.topic_errors:
            # (topic, error_code) or, from version 1, (topic, error_code, error_message).
            topic, code = entry[0], entry[1]
            if code not in _CREATED:
                message = entry[2] if len(entry) > 2 and entry[2] else ""
                error = for_code(code).__name__
                raise TopicError(topic, f"creation refused: {error} (code {code}) {message}".rstrip())
            if code == NoError.errno:
                created.append(topic)
    if wait_s is not None and wanted:
        await wait_for_leaders(admin, wanted, wait_s)
    return created


async def wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 10.0) -> None:
    """Until every partition of ``names`` has a leader; :class:`TopicError` naming a topic that has none
    after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        waiting = [
            t["topic"]
            for t in described
            if t["error_code"] != 0 or not t["partitions"] or any(p["leader"] < 0 for p in t["partitions"])
        ]
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise TopicError(waiting[0], f"partitions got no leader within {timeout_s} s")
        await asyncio.sleep(0.1)


async def partition_ids(admin: AIOKafkaAdminClient, topic: str) -> list[int]:
    """The ids of ``topic``'s partitions, sorted (none: it does not exist)."""
    described = await admin.describe_topics([topic])
    return sorted(p["partition"] for t in described if t["error_code"] == 0 for p in t["partitions"])


async def delete_topics(admin: AIOKafkaAdminClient, names: Iterable[str]) -> None:
    """Delete ``names`` (those that exist); nothing to do for none."""
    wanted = list(names)
    if wanted:
        existing = set(await admin.list_topics())
        present = [n for n in wanted if n in existing]
        if present:
            await admin.delete_topics(present)
