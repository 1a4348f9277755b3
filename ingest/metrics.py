"""Prometheus metrics of the ingest worker, served on ``settings.metrics_port`` by :mod:`hub.metrics_server`.

Metric names carry the ``hub_`` prefix; label values are small closed sets (event type, reason class,
topic/partition) so the series count stays bounded.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter("hub_events_applied_total", "Events whose effect was written to the graph", ["type"])
EVENTS_STALE = Counter(
    "hub_events_stale_total",
    "Events ignored because their version was not newer than the stored one",
    ["type"],
)
EVENTS_IGNORED = Counter(
    "hub_events_ignored_total",
    "Valid events with nothing to apply to (measurement without a live node)",
    ["reason"],
)
EVENTS_HELD = Counter(
    "hub_events_held_total",
    "Events held back because events before them in their partition were dropped by the consumer "
    "(they are read again, in order)",
)
EVENTS_DEADLETTERED = Counter(
    "hub_events_deadlettered_total", "Invalid events sent to the dead-letter topic", ["reason"]
)
CHANGES_PUBLISHED = Counter("hub_changes_published_total", "Change records published after commit")
BATCH_SIZE = Histogram(
    "hub_batch_events",
    "Events per ingest batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
)
BATCH_DURATION = Histogram(
    "hub_batch_duration_seconds",
    "Time to write one batch: transaction, change feed and acknowledgement",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
# Per-batch database time: a batch of 500 events takes tens of milliseconds; a bad plan or a supernode
# makes it seconds, which these show at once (buckets up to a minute for that reason).
_WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0)
BATCH_WRITE_SECONDS = Histogram(
    "hub_batch_write_seconds",
    "Wall time of one batch's write transaction as the worker sees it, retries included",
    buckets=_WRITE_BUCKETS,
)
BATCH_DB_SECONDS = Histogram(
    "hub_batch_db_seconds",
    "Time Neo4j reports for one batch's write statement (available plus consumed)",
    buckets=_WRITE_BUCKETS,
)
BATCH_WRITE_EVENTS = Histogram(
    "hub_batch_write_events",
    "Events one batch's write transaction carries (accepted events only)",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
)
FRESHNESS = Histogram(
    "hub_freshness_seconds",
    "Commit time minus the event's observation time",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0),
)
WRITE_RETRIES = Counter(
    "hub_neo4j_write_retries_total", "Batch transactions retried because Neo4j failed or was unreachable"
)
LAG = Gauge(
    "hub_ingest_lag",
    "Messages behind the partition's high-water mark after the last batch",
    ["topic", "partition"],
)
SUBSCRIBED_TOPICS = Gauge("hub_ingest_topics", "Ingest topics the worker is subscribed to")
