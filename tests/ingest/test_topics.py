"""Pointing the worker's ingest channel at the producer topics: a new topic is subscribed, and one the
conductor has not subscribed yet is asked for again at the next discovery (Faust drops a change flagged
while the group rebalances)."""

from __future__ import annotations

import uuid
from typing import Any

from ingest.app import build_app


async def test_a_topic_the_conductor_has_not_subscribed_is_asked_for_again(settings: Any) -> None:
    # The worker's app as the test services configure it (its Kafka credentials); nothing is started.
    run = uuid.uuid4().hex[:8]
    ingest_app = build_app(settings.model_copy(update={"worker_id": f"topics-{run}"}))
    a, b = f"{settings.ingest_topic_prefix}{run}a", f"{settings.ingest_topic_prefix}{run}b"
    conductor = ingest_app.app.topics
    # Before start only the template is pointed at the topics.
    assert ingest_app.subscribe([a])
    # As the agent's stream does: iterating the template registers a clone of it with the conductor,
    # which subscribes what its channels name (its own step when the worker starts or resubscribes).
    clone = ingest_app.ingest_topic.__aiter__()
    await conductor._update_indices()
    assert ingest_app.subscribed(a)
    assert not ingest_app.subscribe([a])

    # A new topic: the clone is pointed at it too, and the change flagged.
    assert ingest_app.subscribe([a, b])
    assert sorted(clone.topics) == [a, b]
    # The conductor did not act on it (a rebalance was under way): asked again at every discovery...
    assert not ingest_app.subscribed(b)
    assert ingest_app.subscribe([a, b])
    assert ingest_app.subscribe([b, a])
    # ...until it has subscribed it.
    await conductor._update_indices()
    assert ingest_app.subscribed(b)
    assert not ingest_app.subscribe([a, b])
