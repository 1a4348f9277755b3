"""Start an ingest worker process: ``hub worker`` or ``python -m ingest.worker``.

Before Faust starts, the worker checks the producers' data contracts (a folder that does not lint stops
it, with status 2 and every problem logged), waits for Kafka, creates the dead-letter and change topics if
missing, and subscribes to the producer topics that exist (it waits for the first one: an empty
subscription is not allowed by Kafka). Settings come from ``HUB_*`` variables like everywhere else.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import threading
import time

from hub.contracts import ContractBook, ContractError
from hub.kafka_clients import WORKER, aiokafka_options
from hub.kafka_topics import ensure_topics, topic_admin, topic_names
from hub.logging import configure_logging, get_logger, json_handler
from hub.metrics_server import start_metrics_server
from hub.producers import ProducerConfigError, ProducerRegistry
from hub.settings import Settings, get_settings
from ingest.metrics import SUBSCRIBED_TOPICS

log = get_logger("ingest.worker")

# Every event allocates dozens of short-lived objects (decoded JSON, rows, records); with the default
# threshold of 700 the collector runs every few events, and its older-generation passes walk the whole
# heap of the Kafka, Neo4j and Faust clients. Objects alive after start-up are frozen out of it.
GC_YOUNG_THRESHOLD = 50_000


def shutdown_deadline(timeout_s: float) -> threading.Timer:
    """Arm a hard bound on the shutdown that a stop signal began: past it, the process exits.

    Faust closes its Kafka consumer gracefully, and the Kafka client waits for every connection's
    ``connection_lost``; over TLS that waits for the broker's answer to each close, up to the event
    loop's 30 s SSL shutdown timeout when a long-poll fetch is in flight. Exiting then loses nothing:
    the agent acknowledges events only after their batch commits, and whatever was not committed is
    delivered again (every write is idempotent)."""

    def expire() -> None:
        log.warning("shutdown exceeded its bound; exiting", worker_shutdown_timeout_s=timeout_s)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(0)

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    timer.start()
    return timer


async def _topics(settings: Settings) -> list[str]:
    """Create the worker's output topics if they are missing (a cluster may forbid auto-creation), the
    configured producers' dead-letter topics among them, then list the producers' topics."""
    async with topic_admin(aiokafka_options(settings, WORKER), request_timeout_ms=10_000) as admin:
        await ensure_topics(
            admin,
            [
                settings.deadletter_topic,
                settings.changes_topic,
                settings.audit_topic,
                *(settings.producer_deadletter_topic(p) for p in sorted(settings.producers)),
            ],
            settings.topic_partitions,
        )
        return await topic_names(admin, settings.ingest_topic_prefix)


def _prepare(settings: Settings) -> list[str]:
    waited_since = time.monotonic()
    announced = False
    while True:
        try:
            topics = asyncio.run(_topics(settings))
        except Exception as exc:
            log.warning(
                "kafka not reachable yet",
                bootstrap=settings.kafka_bootstrap,
                error=f"{type(exc).__name__}: {exc}",
            )
            topics = []
        if topics:
            return topics
        if not announced:
            log.info("waiting for the first ingest topic", prefix=settings.ingest_topic_prefix)
            announced = True
        time.sleep(
            min(settings.topic_discovery_interval_s, 5.0) if time.monotonic() - waited_since < 600 else 10.0
        )


def _check_contracts(settings: Settings) -> None:
    """Stop before reading any event when the contracts to enforce do not lint: enforcing some of them, or
    none, would let through events the operator meant to refuse."""
    if settings.contracts_dir is None or not settings.contracts_enforce:
        return
    from ontology.loader import load_ontology

    try:
        book = ContractBook.from_folder(
            settings.contracts_dir, load_ontology(), ProducerRegistry.from_settings(settings)
        )
    except (ContractError, ProducerConfigError) as exc:
        log.error("the data contracts do not lint; the worker does not start", error=str(exc))
        raise SystemExit(2) from None
    log.info(
        "data contracts enforced",
        folder=str(settings.contracts_dir),
        contracts={p: c.version for p, c in book.contracts.items()},
    )


def run(settings: Settings | None = None) -> None:
    """Run one worker until SIGINT/SIGTERM."""
    settings = settings or get_settings()
    configure_logging(settings)
    if settings.metrics_port >= 0:
        port = start_metrics_server(settings.metrics_port, settings.metrics_host)
        log.info("metrics served", host=settings.metrics_host, port=port)
    _check_contracts(settings)
    topics = _prepare(settings)
    if settings.worker_event_loop == "uvloop":
        # Before Faust creates its loop. Faust's wake-ups, timers and socket reads cost less CPU per
        # event on libuv; the worker's CPU is what limits it beside Neo4j on a small machine.
        try:
            import uvloop
        except ImportError:  # not built for this platform (Windows)
            log.warning("uvloop is not installed; using the standard event loop")
        else:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    from faust import Worker

    from ingest import agents
    from ingest.app import process_app

    ingest_app = process_app()
    # The agent, the audit task, the discovery timer and the rebalance handlers, on the app.
    agents.register(ingest_app)
    app = ingest_app.app
    ingest_app.subscribe(topics)
    SUBSCRIBED_TOPICS.set(len(topics))
    log.info("worker starting", group=settings.worker_id, topics=topics, batch_size=settings.batch_size)
    level = settings.log_level.upper()
    app.conf.loghandlers = [json_handler()]
    grace = settings.worker_shutdown_timeout_s

    class BoundedWorker(Worker):
        """Faust's worker with a bound on the shutdown a SIGTERM or SIGINT starts."""

        def _schedule_shutdown(self, signum: signal.Signals) -> None:
            if not getattr(self, "_signal_stop_time", None):
                shutdown_deadline(grace)
            super()._schedule_shutdown(signum)

    worker = BoundedWorker(
        app,
        loglevel=level,
        # Faust installs its own colour handler unless told otherwise; keep our JSON lines.
        logging_config={
            "version": 1,
            "disable_existing_loggers": False,
            "root": {"level": level, "handlers": []},
        },
        redirect_stdouts=False,
        quiet=True,
    )
    # Faust's terminal spinner, kept at levels of WARNING and above, sets the root logger to DEBUG and
    # spins on every record: each debug line of the Kafka and Neo4j clients would be built and handled.
    # The worker logs JSON lines, never to a terminal.
    worker.spinner = None
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    worker.execute_from_commandline()


def main() -> None:
    logging.captureWarnings(True)
    run()


if __name__ == "__main__":
    main()
