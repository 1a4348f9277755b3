"""Pointing the worker's ingest channel at the producer topics that exist.

Faust's own ``pattern=`` subscription is not wired through to the Kafka consumer (the consumer subscribes
to the named topics only), so the worker finds producer topics itself (:func:`hub.kafka_topics.topic_names`
lists the cluster's topics under the prefix), and :func:`subscribe` points the ingest channel at them and
asks Faust to resubscribe. The discovery timer (:meth:`ingest.pipeline.IngestProcess.discover`) runs it
every few seconds, so a new producer's topic is picked up without code or restart.

Faust's conductor drops a subscription change flagged while the group rebalances (it clears the flag and
waits for the next one), and a discovery that finds the same topics again flags nothing: a topic created
just as the worker joined its group (the demo creates its producers' topics while its worker starts)
would never be read. So a topic the conductor has not subscribed yet is flagged again at every discovery,
until it has.
"""

from __future__ import annotations

from collections.abc import Iterable

import faust
from faust.types import TopicT


def subscribe(app: faust.App, ingest_topic: TopicT, topics: Iterable[str], prefix: str) -> bool:
    """Point the ingest channel at ``topics``; True if the conductor was asked to (re)subscribe: the
    topics changed, or one of them is not subscribed yet (see the module's text).

    Iterating a topic makes Faust register an iterator clone of it with the conductor, and the clone is
    what the consumer's subscription is computed from. Before start only the template needs the names
    (the agent clones it); afterwards each registered ingest clone is updated, then removed and re-added,
    which is the conductor's public way to flag a subscription change. The template itself must never be
    registered: every message would be counted against a channel nobody reads, and never acknowledged.
    """
    wanted = sorted(set(topics))
    if wanted == sorted(ingest_topic.topics) and all(subscribed(app, t) for t in wanted):
        return False
    ingest_topic.topics = list(wanted)
    for channel in list(app.topics):
        names = list(getattr(channel, "topics", None) or ())
        if channel is not ingest_topic and names and all(n.startswith(prefix) for n in names):
            channel.topics = list(wanted)
            app.topics.discard(channel)
            app.topics.add(channel)
    return True


def subscribed(app: faust.App, topic: str) -> bool:
    """Whether the conductor has subscribed ``topic`` (it records every topic it subscribes, with acks)."""
    return app.topics.acks_enabled_for(topic)
