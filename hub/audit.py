"""The audit trail: one record per security decision, to the log and to a Kafka audit topic.

Security decisions are refusals (a token refused, an event or request refused), label changes (old and
new label, who made them) and ownership decisions (who came to own an mRID, who was refused it). Each is
recorded with :func:`record`, which writes the record as a structured log line at once (logger
``hub.audit``) and, in a process that runs an :class:`AuditPublisher`, queues it for the audit topic
(``settings.audit_topic``). The queue is bounded: a broker that is down never blocks the caller or grows
memory without bound; records that do not fit are counted as dropped and are still in the log.

Audit records are for operators. Nothing a caller can reach reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import orjson
import structlog
from prometheus_client import Counter

log = structlog.get_logger("hub.audit")

RECORDS = Counter("hub_audit_records_total", "Audit records written", ["action"])
DROPPED = Counter("hub_audit_records_dropped_total", "Audit records not queued for the audit topic")

QUEUE_LIMIT: Final = 10_000
# Records handed to the producer before waiting for their acknowledgements.
SEND_BATCH: Final = 500

_queue: asyncio.Queue[dict[str, Any]] | None = None


def record(action: str, /, **fields: Any) -> dict[str, Any]:
    """Record one security decision; ``action`` is a short dotted name (``token.refused``,
    ``ingest.refused``, ``label.changed``, ``ownership.claimed`` ...). Returns the record."""
    entry: dict[str, Any] = {"time": datetime.now(UTC).isoformat(), "action": action, **fields}
    RECORDS.labels(action).inc()
    log.info("audit", **entry)
    queue = _queue
    if queue is not None:
        try:
            queue.put_nowait(entry)
        except asyncio.QueueFull:
            DROPPED.inc()
    return entry


class _Sender(Protocol):
    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Awaitable[Any]: ...


class AuditPublisher:
    """Drains the process's audit records to the audit topic while it runs (one per process).

    Records waiting in the queue go out together: each is handed to the producer without waiting, then
    the publisher waits for all of their acknowledgements, so the client batches them into few requests.
    Waiting for each record in turn cost a broker round trip per record, which fell behind (and dropped
    records) whenever decisions came faster than a few hundred a second.
    """

    def __init__(self, topic: str, sender: Callable[[], Awaitable[_Sender]]) -> None:
        self.topic = topic
        self._sender = sender
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        global _queue
        _queue = asyncio.Queue(QUEUE_LIMIT)
        self._task = asyncio.get_running_loop().create_task(self._run(_queue))

    async def _run(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        producer: _Sender | None = None
        while True:
            batch = [await queue.get()]
            while len(batch) < SEND_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            messages = [
                (orjson.dumps(entry, default=str), str(entry.get("subject") or entry.get("producer") or ""))
                for entry in batch
            ]
            while messages:
                try:
                    if producer is None:
                        producer = await self._sender()
                    acks = [
                        await producer.send(self.topic, value, key.encode() or None)
                        for value, key in messages
                    ]
                    results = await asyncio.gather(*acks, return_exceptions=True)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("audit topic unavailable; retrying", error=f"{type(exc).__name__}: {exc}")
                    producer = None
                    await asyncio.sleep(1.0)
                    continue
                retry = []
                for message, result in zip(messages, results, strict=True):
                    if not isinstance(result, BaseException):
                        continue
                    if getattr(result, "retriable", False):
                        retry.append(message)
                    else:
                        # A record the broker will never take (too large, say) must not hold up the
                        # others; it is still in the log.
                        DROPPED.inc()
                        log.error(
                            "audit record refused by the broker",
                            error=f"{type(result).__name__}: {result}",
                            size=len(message[0]),
                        )
                messages = retry
                if messages:
                    log.warning("audit records not acknowledged; retrying", count=len(messages))
                    await asyncio.sleep(1.0)

    async def stop(self) -> None:
        global _queue
        _queue = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
