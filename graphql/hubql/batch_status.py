"""What became of each event of an HTTP ingest batch: ``GET /ingest/batches/{id}``.

``POST /ingest`` answers 202 with ``Location: /ingest/batches/{id}``; the status lists each event of the
batch, in the order posted, with its outcome: ``applied``, ``dead-lettered`` (with the reason class and
reason), ``superseded``, ``unchanged``, or ``pending`` while the worker has not got through it. The outcomes
are settled by the core's ledger (:mod:`hub.outcomes`), from one reader per API process of the change feed
and the shared dead-letter topic (read as the ``api`` principal, from their ends as they were when the
first batch came) and of the worker group's committed offsets.

With several API processes (``hub api --processes N``) a batch is kept by the process that accepted it,
whose tag starts the id; the others ask it (:mod:`hubql.peers`).

Only the caller who posted a batch (the same token subject) reads its status: any other caller, and any
id that is not a batch's, get one and the same 404. Batch ids are random (128 bits), not counters, so
they tell nothing of other callers' batches either.

A refusal that judged the object's stored state (its current label, its owner) is told to the HTTP caller
without the stored label or owner: the caller is a producer's member, and may not be able to see the
object. The full reason stays in the dead letters, for the operator.

Memory stays bounded: a batch is kept ``HUB_INGEST_BATCH_TTL_S`` after it was accepted, and at most
``HUB_INGEST_MAX_BATCHES`` batches are kept (the oldest go first), each of at most
``HUB_INGEST_MAX_BATCH`` events.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from hub.dead_letter_headers import SENDER_REASONS
from hub.kafka_clients import API, KafkaCredentialsError, aiokafka_options
from hub.kafka_topics import partition_ids
from hub.outcomes import Ledger, Outcome, Tracked, last_offsets
from hub.settings import Settings

log = structlog.get_logger(__name__)

STATUS_PATH: Final = "/ingest/batches/"
# How long one poll waits for records, and how often the worker's progress is looked at.
POLL_MS: Final = 500
PROGRESS_EVERY_S: Final = 1.0


@dataclass
class Batch:
    subject: str
    accepted_at: float
    events: list[Tracked] = field(default_factory=list)

    def to_json(self, batch_id: str) -> dict[str, Any]:
        events = [_event_json(i, t) for i, t in enumerate(self.events)]
        counts: dict[str, int] = {}
        for e in events:
            counts[e["outcome"]] = counts.get(e["outcome"], 0) + 1
        return {
            "id": batch_id,
            "complete": "pending" not in counts,
            "counts": counts,
            "events": events,
        }


def _event_json(index: int, t: Tracked) -> dict[str, Any]:
    outcome = "pending" if t.outcome is Outcome.unknown else t.outcome.value
    reason = t.reason
    if t.outcome is Outcome.dead_lettered and t.reason_class in SENDER_REASONS:
        # The caller's own mistakes of these classes were refused before the batch was accepted.
        reason = SENDER_REASONS[t.reason_class]
    body: dict[str, Any] = {
        "index": index,
        "id": t.event_id,
        "subject": t.subject,
        "version": t.version,
        "outcome": outcome,
    }
    if t.outcome is Outcome.dead_lettered:
        body["reason_class"] = t.reason_class
        body["reason"] = reason
    if t.outcome is Outcome.superseded and t.by is not None:
        body["superseded_by"] = {"version": t.by[0], "id": t.by[1]}
    return body


class BatchOutcomes:
    """The batches of this API process and the reader that settles their events."""

    def __init__(self, settings: Settings, id_prefix: str = "") -> None:
        self.settings = settings
        # What this process's batch ids start with (the tag of one of several processes, hubql.peers).
        self.id_prefix = id_prefix
        self.batches: OrderedDict[str, Batch] = OrderedDict()
        self._ledger = Ledger()
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        # Held while a batch is being sent and placed, and while fetched records are settled: a record
        # about an event is never looked at before the event is in the ledger.
        self._dispatch = asyncio.Lock()
        self._watched = (settings.changes_topic, settings.deadletter_topic)
        # Events whose partitions the worker has committed past, settled once the reader has read the
        # watched topics up to where they ended then.
        self._passing: list[tuple[list[Tracked], dict[TopicPartition, int]]] = []
        self._queued: set[Tracked] = set()

    # ------------------------------------------------------------------------------------ lifecycle

    async def _start(self) -> None:
        async with self._start_lock:
            if self._task is not None:
                return
            consumer = AIOKafkaConsumer(
                **aiokafka_options(self.settings, API), group_id=None, enable_auto_commit=False
            )
            admin = AIOKafkaAdminClient(**aiokafka_options(self.settings, API), request_timeout_ms=10_000)
            await consumer.start()
            try:
                await admin.start()
            except BaseException:
                await consumer.stop()
                raise
            self._consumer, self._admin = consumer, admin
            try:
                await self._assign(at_start=True)
            except BaseException:
                self._consumer = self._admin = None
                await consumer.stop()
                await admin.close()
                raise
            self._task = asyncio.create_task(self._run(), name="ingest-batch-outcomes")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        admin, self._admin = self._admin, None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()

    async def _assign(self, at_start: bool = False) -> None:
        """Assign the watched partitions not yet assigned: from their ends at the start (only answers to
        batches after it count), from their beginnings when they turn up later (all they hold is new)."""
        consumer, admin = self._consumer, self._admin
        assert consumer is not None and admin is not None
        held = set(consumer.assignment())
        found = [TopicPartition(t, p) for t in self._watched for p in await partition_ids(admin, t)]
        new = [tp for tp in found if tp not in held]
        if not new:
            return
        positions = {tp: await consumer.position(tp) for tp in held}
        consumer.assign([*held, *new])
        for tp, offset in positions.items():
            consumer.seek(tp, offset)
        if at_start:
            ends = await consumer.end_offsets(new)
            for tp in new:
                consumer.seek(tp, ends[tp])
        else:
            await consumer.seek_to_beginning(*new)

    # ------------------------------------------------------------------------------------- batches

    @asynccontextmanager
    async def sending(self) -> AsyncIterator[None]:
        """Around sending a batch and :meth:`record`-ing it: the reader is running (from before the
        first record is sent) and holds back what it fetches until the batch is in the ledger. A reader
        that cannot start does not stop ingest: the batch is accepted, and its events stay pending (the
        reader is tried again with the next batch)."""
        try:
            await self._start()
        except (KafkaError, OSError, KafkaCredentialsError) as exc:
            log.warning(
                "ingest batch outcomes cannot be read; the batch's events stay pending", error=repr(exc)
            )
        async with self._dispatch:
            yield

    def record(self, subject: str, events: Iterable[Tracked]) -> str:
        """Keep a batch the broker has acknowledged (each event placed); returns its id."""
        self._expire()
        batch_id = self.id_prefix + secrets.token_urlsafe(16)
        batch = Batch(subject, time.monotonic(), list(events))
        for tracked in batch.events:
            self._ledger.track(tracked)
        self.batches[batch_id] = batch
        while len(self.batches) > max(1, self.settings.ingest_max_batches):
            _, oldest = self.batches.popitem(last=False)
            self._ledger.forget(oldest.events)
        return batch_id

    def status(self, subject: str, batch_id: str) -> dict[str, Any] | None:
        """The batch's status for ``subject``; None when there is no such batch *for this caller*."""
        self._expire()
        batch = self.batches.get(batch_id)
        if batch is None or not secrets.compare_digest(batch.subject.encode(), subject.encode()):
            return None
        return batch.to_json(batch_id)

    def _expire(self) -> None:
        horizon = time.monotonic() - self.settings.ingest_batch_ttl_s
        while self.batches:
            batch_id, oldest = next(iter(self.batches.items()))
            if oldest.accepted_at > horizon:
                return
            del self.batches[batch_id]
            self._ledger.forget(oldest.events)

    # ------------------------------------------------------------------------------------- reading

    async def _run(self) -> None:
        looked = 0.0
        while True:
            try:
                await self._step()
                if time.monotonic() - looked >= PROGRESS_EVERY_S:
                    looked = time.monotonic()
                    await self._assign()
                    await self._progress()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                # The broker away, or the topics not there yet: outcomes stay pending meanwhile.
                log.warning("ingest batch outcomes: reading failed; retrying", error=repr(exc))
                await asyncio.sleep(PROGRESS_EVERY_S)

    async def _step(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        if not consumer.assignment():
            await asyncio.sleep(POLL_MS / 1000)
            return
        fetched = await consumer.getmany(timeout_ms=POLL_MS)
        async with self._dispatch:
            for tp, records in fetched.items():
                for record in records:
                    if tp.topic == self.settings.changes_topic:
                        self._ledger.change(record.key, record.value)
                    else:
                        self._ledger.dead_letter(record.key, record.value, list(record.headers or ()))
            await self._settle_passed()

    async def _settle_passed(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        waiting = []
        for events, ends in self._passing:
            if all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                for tracked in events:
                    self._ledger.passed(tracked)
                self._queued.difference_update(events)
            else:
                waiting.append((events, ends))
        self._passing = waiting

    async def _progress(self) -> None:
        """Note the pending events the worker has committed past (see :mod:`hub.outcomes`)."""
        consumer, admin = self._consumer, self._admin
        assert consumer is not None and admin is not None
        pending = [t for b in self.batches.values() for t in b.events if t.outcome is Outcome.unknown]
        if not pending or {tp.topic for tp in consumer.assignment()} != set(self._watched):
            return
        parts = list(last_offsets(pending))
        try:
            committed = await admin.list_consumer_group_offsets(self.settings.worker_id, partitions=parts)
        except KafkaError as exc:
            if not exc.retriable:  # no group coordinator yet on a new broker: ask again next round
                raise
            return
        # Per event: one is past once the group's commit is past its offset.
        done = [
            t
            for t in pending
            if t not in self._queued
            and (tp := TopicPartition(t.topic or "", t.partition or 0)) in committed
            and t.offset is not None
            and committed[tp].offset > t.offset
        ]
        if done:
            self._queued.update(done)
            ends = await consumer.end_offsets(list(consumer.assignment()))
            self._passing.append((done, ends))
