"""The Faust application of the ingest worker: one consumer group reading every producer's topic.

Every worker process with the same ``settings.worker_id`` joins one consumer group, so partitions are
shared between them. Values and keys stay raw bytes: the worker decodes and validates them itself so that
an undecodable record becomes a dead letter with its original bytes instead of a crashed stream.

Faust's own ``pattern=`` subscription is not wired through to the Kafka consumer (the consumer subscribes
to the named topics only), so the worker finds producer topics itself (:mod:`hub.kafka_topics`
lists the cluster's topics), and :func:`subscribe` points the ingest channel at every topic under the
prefix and asks Faust to resubscribe. The discovery timer in :mod:`ingest.agents` runs it every few
seconds, so a new producer's topic is picked up without code or restart.
"""

from __future__ import annotations

from collections.abc import Iterable

import faust

from hub.kafka_clients import WORKER, faust_credentials
from hub.settings import Settings, get_settings
from ingest.consumer import IngestTransport


def create_app(settings: Settings) -> faust.App:
    web_port = settings.worker_web_port
    faust_dir = settings.state_dir / "faust"
    faust_dir.mkdir(parents=True, exist_ok=True)  # Faust makes its own folder, not the parents
    app = faust.App(
        settings.worker_id,
        broker=[f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",") if host.strip()],
        broker_credentials=faust_credentials(settings, WORKER),
        store="memory://",
        # Faust keeps a data folder even with in-memory tables; in the state folder, not wherever the
        # worker was started.
        datadir=str(faust_dir / "{conf.name}-data"),
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        # Faust's Cython stream iterator takes events already waiting in the buffer without a round
        # through the event loop for each (opt-in in faust-streaming; the worker tests cover it).
        cython_optimizations=True,
        # Offsets of acknowledged events only; the agent acknowledges after the graph transaction commits.
        broker_commit_interval=settings.worker_commit_interval_s,
        # Many batches ahead: see settings.worker_buffer_events.
        stream_buffer_maxsize=max(settings.worker_buffer_events, 4 * settings.batch_size),
        producer_acks=-1,
        # Never block a rebalance or shutdown on events not yet written: they are not acknowledged, so
        # their offsets are not committed and they come again (the writes are idempotent).
        stream_wait_empty=False,
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.worker_session_timeout_s / 4),
        topic_partitions=settings.topic_partitions,
        # No leader-election topic: the worker has no tables and no leader-only work.
        topic_disable_leader=True,
        web_enabled=web_port > 0,
        web_port=web_port if web_port > 0 else 6066,
        web_bind="127.0.0.1",
        # Picks up new partitions of subscribed topics within seconds.
        consumer_metadata_max_age_ms=int(settings.topic_discovery_interval_s * 1000),
    )
    if settings.worker_eager_consumer:
        # Before anything asks for the transport (creating a topic does): see ingest.consumer.
        app.transport = IngestTransport(app.conf.broker_consumer, app)
    return app


settings = get_settings()
app = create_app(settings)
# Filled with the producer topics present at start and extended by discovery (see module docstring).
ingest_topic = app.topic(key_serializer="raw", value_serializer="raw")
# A new topic list is applied after this pause (Faust's default of 45 s coalesces agent restarts; here the
# only source of changes is discovery, which already runs at a slow pace).
if settings.worker_fast_resubscribe:
    app.topics._resubscribe_sleep_lock_seconds = settings.topic_discovery_interval_s  # type: ignore[attr-defined]


def subscribe(topics: Iterable[str]) -> bool:
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
    prefix = settings.ingest_topic_prefix
    for channel in list(app.topics):
        names = list(getattr(channel, "topics", None) or ())
        if channel is not ingest_topic and names and all(n.startswith(prefix) for n in names):
            channel.topics = list(wanted)
            app.topics.discard(channel)
            app.topics.add(channel)
    return True
