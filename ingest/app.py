"""The Faust application of the ingest worker: one consumer group reading every producer's topic.

Every worker process with the same ``settings.worker_id`` joins one consumer group, so partitions are
shared between them. Values and keys stay raw bytes: the worker decodes and validates them itself so that
an undecodable record becomes a dead letter with its original bytes instead of a crashed stream.

Importing this module builds nothing: :func:`build_app` makes an app (and its state folder) from the
settings it is given, and :func:`process_app` is the one app of a worker process, built on first use
from the process's settings (:func:`ingest.agents.register` registers the agents on it). Which topics the
ingest channel reads is :mod:`ingest.topics`' business.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import faust
from faust.types import TopicT

from hub.kafka_clients import WORKER, faust_credentials
from hub.settings import Settings, get_settings
from ingest import topics
from ingest.consumer import IngestTransport, RewindingTransport


def create_app(settings: Settings) -> faust.App:
    """The worker's Faust app configured from ``settings``; makes its data folder in the state folder."""
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
    # Before anything asks for the transport (creating a topic does): see ingest.consumer.
    transport = IngestTransport if settings.worker_eager_consumer else RewindingTransport
    app.transport = transport(app.conf.broker_consumer, app)
    return app


@dataclass(frozen=True)
class IngestApp:
    """A worker's Faust app with the channel its agent reads, and the settings both were built from."""

    settings: Settings
    app: faust.App
    # Filled with the producer topics present at start and extended by discovery (ingest.topics).
    ingest_topic: TopicT

    def subscribe(self, names: Iterable[str]) -> bool:
        """Point the ingest channel at ``names``; True if the conductor was asked to (re)subscribe."""
        return topics.subscribe(self.app, self.ingest_topic, names, self.settings.ingest_topic_prefix)

    def subscribed(self, name: str) -> bool:
        """Whether the consumer has been told to read topic ``name``."""
        return topics.subscribed(self.app, name)


def build_app(settings: Settings) -> IngestApp:
    """A worker's app and its ingest channel (reading no topic until :meth:`IngestApp.subscribe`)."""
    app = create_app(settings)
    ingest_topic = app.topic(key_serializer="raw", value_serializer="raw")
    # A new topic list is applied after this pause (Faust's default of 45 s coalesces agent restarts; here
    # the only source of changes is discovery, which already runs at a slow pace).
    if settings.worker_fast_resubscribe:
        app.topics._resubscribe_sleep_lock_seconds = settings.topic_discovery_interval_s  # type: ignore[attr-defined]
    return IngestApp(settings, app, ingest_topic)


@cache
def process_app() -> IngestApp:
    """The worker process's app, built on the first call from the process's settings (``HUB_*``)."""
    return build_app(get_settings())
