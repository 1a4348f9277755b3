"""The worker's Kafka topics: which are ingest topics, finding them, creating the output topics, and
pointing the ingest channel at the producer topics that exist.

Faust's own ``pattern=`` subscription is not wired through to the Kafka consumer (the consumer subscribes
to the named topics only), so the worker finds producer topics itself: :func:`discover_topics` lists the
cluster's topics, and :func:`subscribe` points the ingest channel at every topic under the prefix and
asks Faust to resubscribe. The discovery timer in :mod:`ingest.agents` runs it every few seconds, so a
new producer's topic is picked up without code or restart.
"""

from __future__ import annotations

from collections.abc import Iterable

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.types import TopicT

from hub.kafka_clients import WORKER, aiokafka_options
from hub.settings import Settings


def ingest_topics_in(names: Iterable[str], prefix: str) -> list[str]:
    return sorted(n for n in names if n.startswith(prefix) and len(n) > len(prefix))


async def discover_topics(settings: Settings, prefix: str) -> list[str]:
    admin = AIOKafkaAdminClient(**aiokafka_options(settings, WORKER), request_timeout_ms=10_000)
    await admin.start()
    try:
        return ingest_topics_in(await admin.list_topics(), prefix)
    finally:
        await admin.close()


async def ensure_topics(settings: Settings, names: Iterable[str], partitions: int) -> None:
    """Create the worker's output topics if they are missing (a cluster may forbid auto-creation)."""
    admin = AIOKafkaAdminClient(**aiokafka_options(settings, WORKER), request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names if n not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except Exception as exc:  # another worker created it first
                if "TopicAlreadyExists" not in type(exc).__name__ + str(exc):
                    raise
    finally:
        await admin.close()


def subscribe(app: faust.App, ingest_topic: TopicT, topics: Iterable[str], prefix: str) -> bool:
    """Point the ingest channel at ``topics``; True if that changed the subscription.

    Iterating a topic makes Faust register an iterator clone of it with the conductor, and the clone is
    what the consumer's subscription is computed from. Before start only the template needs the names
    (the agent clones it); afterwards each registered ingest clone is updated, then removed and re-added,
    which is the conductor's public way to flag a subscription change. The template itself must never be
    registered: every message would be counted against a channel nobody reads, and never acknowledged.
    """
    wanted = sorted(set(topics))
    if wanted == sorted(ingest_topic.topics):
        return False
    ingest_topic.topics = list(wanted)
    for channel in list(app.topics):
        names = list(getattr(channel, "topics", None) or ())
        if channel is not ingest_topic and names and all(n.startswith(prefix) for n in names):
            channel.topics = list(wanted)
            app.topics.discard(channel)
            app.topics.add(channel)
    return True
