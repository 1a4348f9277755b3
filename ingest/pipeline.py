"""The worker's write pipeline: batches from every producer topic into the graph, effect-once, in order.

Per batch: check every record (:mod:`ingest.records`); send the invalid ones to the dead-letter topic;
write the valid ones in one Neo4j transaction (:mod:`hub.writer`); publish a change record per affected
object; then, and only then, acknowledge the batch's events so Faust may commit their offsets.

Events are taken with ``noack_take``: Faust's ``take()`` acknowledges a batch in a ``finally`` block even
when handling it raised, which would commit offsets of events never written. While the database is
unavailable the write is retried with back-off, so an outage delays events but never drops or
dead-letters them; a write that fails for any other reason is split until the event at fault is alone
(:func:`isolate`), and that event goes to the dead letters with the graph's reason while the others apply
(:mod:`ingest.store_errors`). Dead letters are made to fit the broker (:mod:`ingest.dead_letters`).
A worker killed at any point leaves its unacknowledged events to be redelivered, and every write is
idempotent and versioned, so redelivery changes nothing that was already applied.

Everything but the transaction itself overlaps with the previous batch's transaction: the agent starts
the write as a task and goes on taking and checking the next batch, reads the state its objects have and
folds it (:meth:`hub.writer.GraphWriter.prepare`, overlaid with what the batch being written will leave),
so that its transaction is a single statement, sent as an auto-commit transaction: one round trip to the
database per batch. Neither does the next transaction wait for the change records of the previous batch:
those are published in batch order, and acknowledging waits for the broker to confirm them, batch after
batch. Change records go out as one record batch per partition
(:class:`ingest.change_publisher.ChangePublisher`).

Every refusal (a dead-lettered event, with its reason) and every decision the fold made (ownership
claimed or refused, a label changed: old and new, by whom, declassified or not) is an audit record
(:mod:`hub.audit`), sent to ``settings.audit_topic``; the fold's are written only once their batch has
committed, so the trail never records a write that did not happen.

The stages of a batch (:class:`Stage`, kept in ``Batch.stage``)::

    events taken
         |
         v
      CHECKED ---------(nothing accepted, or the read-ahead failed)----+
         |                                                             |
         | read and folded against the state the batch before          |
         | will leave (WritePipeline._read_ahead)                      |
         v                                                             |
    FOLDED_AHEAD                                                       |
         |                                                             |
         | the batch before has committed (or nothing is in flight)    |
         v                                                             v
      WRITING <--- retried with back-off while Neo4j is unavailable; --+
         |         halved until the event at fault is alone (isolate)
         |                                         \
         | the transaction has committed            +--> FAILED (the task raised: the worker
         v                                                exits; the events come again)
     COMMITTED
         |
         | change records handed to the broker, after the batch before's
         v
     PUBLISHED
         |
         | dead letters and change records confirmed, and the batch before acknowledged
         v
    ACKNOWLEDGED  (Faust may commit the events' offsets)

Invariants:

- Transactions never overlap: a batch enters WRITING only once the batch before has left it (its
  ``written`` future is set), so each object's events are written in order.
- Offsets are acknowledged in batch order: a batch's acknowledgement waits for the one before's.
- Change records are published in batch order: a batch is PUBLISHED only after the one before.
- A plan folded ahead is used only if its predecessor committed exactly as planned (``Batch.exact``);
  otherwise, and on every retry, the batch is read and folded again inside an explicit transaction.
- At most one batch is WRITING and at most one more is CHECKED or FOLDED_AHEAD, waiting for it.
- Each partition's events enter batches in sequence: an event whose predecessors in its partition were
  dropped by the consumer is held back, unacknowledged, and the partition read again
  (:mod:`ingest.continuity`); so the offset committed never passes an event not applied or dead-lettered.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import neo4j
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faust.exceptions import ProducerSendError
from faust.types import TP, EventT, StreamT

from hub import audit, measurement_history
from hub.changes import ChangeRecord
from hub.dead_letter_headers import DECIDED_ON, DECIDED_ON_EVENT, DECIDED_ON_GRAPH, SENDER_REASONS
from hub.graph import ensure_schema_async, make_async_driver
from hub.kafka_clients import WORKER, aiokafka_options
from hub.kafka_topics import topic_names
from hub.logging import get_logger
from hub.settings import Settings
from hub.state_cache import StateCache
from hub.writer import Accepted, GraphWriter, Plan
from ingest import dead_letters, store_errors
from ingest.app import IngestApp
from ingest.change_publisher import ChangePublisher
from ingest.consumer import RewindingConsumer
from ingest.continuity import LINK
from ingest.metrics import (
    BATCH_DB_SECONDS,
    BATCH_DURATION,
    BATCH_SIZE,
    BATCH_WRITE_EVENTS,
    BATCH_WRITE_SECONDS,
    CHANGES_PUBLISHED,
    EVENTS_APPLIED,
    EVENTS_DEADLETTERED,
    EVENTS_HELD,
    EVENTS_IGNORED,
    EVENTS_STALE,
    FRESHNESS,
    LAG,
    SUBSCRIBED_TOPICS,
    WRITE_RETRIES,
)
from ingest.records import RecordChecker, Rejection, producer_of

log = get_logger("ingest.pipeline")

# How long a stopping worker waits for the batch in flight to commit (when the database is answering).
SHUTDOWN_GRACE_S = 10.0

# How long a committed batch holds back its change records for the next batch's statement to go out
# first. With one event loop, whatever runs first delays the other, and the database waits for the
# statement. The wait is bounded, not a wait for the statement itself: the next batch may be waiting out
# an outage (or for its connection) for any length of time, and the change records do not wait for that.
SEND_ORDER_WAIT_S = 0.05


class Stage(enum.Enum):
    """Where a batch is on its way through the pipeline (see the module's diagram)."""

    CHECKED = "checked"
    FOLDED_AHEAD = "folded ahead"
    WRITING = "writing"
    COMMITTED = "committed"
    PUBLISHED = "published"
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"


class Batch:
    """One batch on its way through the pipeline."""

    __slots__ = (
        "accepted",
        "basis",
        "epoch",
        "events",
        "exact",
        "pending",
        "plan",
        "sending",
        "stage",
        "started",
        "task",
        "written",
    )

    def __init__(
        self,
        events: Sequence[EventT],
        accepted: list[Accepted],
        pending: list[Awaitable[Any]],
        started: float,
    ) -> None:
        self.stage = Stage.CHECKED
        self.events = events
        self.accepted = accepted
        # Dead letters (and, once published, change records) the acknowledgement waits for.
        self.pending = pending
        self.started = started
        # Folded ahead of the transaction, on the assumption that ``basis`` commits as planned.
        self.plan: Plan | None = None
        self.basis: Batch | None = None
        # The state cache's epoch when the batch was folded ahead (see hub.state_cache).
        self.epoch = -1
        # Whether the transaction wrote ``plan`` as it was folded ahead (what a read-ahead relies on).
        self.exact = False
        # Set once the batch's transaction is over (committed or failed); the next one starts then.
        self.written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Set as the batch's write statement goes out.
        self.sending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # The batch's way from WRITING on (write, publish, hand over to the acknowledgement).
        self.task: asyncio.Task[None] | None = None


Outcome = tuple[list[Plan], list[tuple[Accepted, Rejection]]]


async def isolate(
    accepted: list[Accepted], exc: BaseException, write: Callable[[list[Accepted]], Awaitable[Plan]]
) -> Outcome:
    """After a failure that is not the database's (see :mod:`ingest.store_errors`): ``write`` the events
    in halves until the event at fault is alone, and reject it; the others apply. Halves go in order,
    which keeps each object's events in order. ``write`` commits one transaction or raises."""
    if len(accepted) == 1:
        event = accepted[0]
        reason = f"store: the graph refused the event: {store_errors.describe(exc)}"
        log.warning("event refused by the graph; dead-lettered", mrid=event.mrid, reason=reason)
        audit.record(
            "ingest.refused",
            subject=event.mrid,
            producer=event.producer,
            event_id=event.event_id,
            reason=reason,
        )
        return [], [(event, Rejection(reason, "store"))]
    log.info(
        "batch refused by the graph; splitting it to find the event at fault",
        events=len(accepted),
        error=store_errors.describe(exc),
    )
    mid = len(accepted) // 2
    plans: list[Plan] = []
    refused: list[tuple[Accepted, Rejection]] = []
    for half in (accepted[:mid], accepted[mid:]):
        try:
            plans.append(await write(half))
        except asyncio.CancelledError:
            raise
        except Exception as half_exc:
            half_plans, half_refused = await isolate(half, half_exc, write)
            plans += half_plans
            refused += half_refused
    return plans, refused


def record_lag(consumer: Any, last: dict[TP, int]) -> None:
    """Set each partition's lag behind its high-water mark from the last offset acknowledged there
    (``consumer``: Faust's or aiokafka's, both have ``highwater``).

    A rebalance may have taken a partition away since its events were read (it happens while their
    batch is written): the consumer then knows no high-water mark for it, and its lag is the new holder's
    to report. Acknowledging must not fail on that: a failed acknowledgement ends the worker (see
    :func:`ingest.agents.register`)."""
    for tp, offset in last.items():
        try:
            highwater = consumer.highwater(tp)
        except (AssertionError, KeyError):  # aiokafka asserts the partition is assigned
            continue
        if highwater is not None:
            LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - offset - 1))


class WritePipeline:
    """Moves the agent's batches through their stages (see the module's docstring). It coordinates:
    the folding and writing are :class:`hub.writer.GraphWriter`'s, the change records
    :class:`ingest.change_publisher.ChangePublisher`'s; it holds the driver, the checker, the state cache
    and the batches in flight."""

    def __init__(self, ingest_app: IngestApp) -> None:
        from ontology.loader import load_ontology

        self.settings: Settings = ingest_app.settings
        self.app = ingest_app.app
        self.ingest_topic = ingest_app.ingest_topic
        settings = self.settings
        self.ontology = load_ontology()
        self.checker = RecordChecker(self.ontology, settings)
        self.writer = GraphWriter(
            self.ontology,
            database=settings.neo4j_database,
            replan_skip=settings.writer_replan_skip,
            history=settings.writer_history,
            sample_interval_s=settings.measurement_history_interval_s,
        )
        self.driver: neo4j.AsyncDriver | None = None
        self.publisher = ChangePublisher(settings.kafka_bootstrap, settings=settings, principal=WORKER)
        self.cache = StateCache(settings.worker_state_cache)
        # Whether this worker holds every partition of every ingest topic: the graph's only writer.
        self.sole_writer = False
        # The last batch handed to a writing task (WRITING or after).
        self.last: Batch | None = None
        # A batch CHECKED or FOLDED_AHEAD, waiting for the one before it to commit.
        self.waiting: Batch | None = None
        # The last batch's acknowledgement (PUBLISHED, waiting to be ACKNOWLEDGED).
        self.acking: asyncio.Task[None] | None = None
        self.schema_ready = False
        # Whether a write or a dead letter is waiting out an outage (Neo4j or the broker unavailable):
        # on shutdown such a wait is not waited for.
        self.outage = False
        # Dead letters on their way to the broker (see _deliver).
        self.deliveries: set[asyncio.Task[None]] = set()
        # Partitions being read again (see _admit).
        self.rewinds: set[asyncio.Future[None]] = set()
        # "<topic>#<partition>" by partition: named on every event, made once.
        self.sources: dict[tuple[str, int], str] = {}

    async def consume(self, stream: StreamT) -> None:
        """The agent's loop: take batches from ``stream`` and submit them, until the stream ends or the
        agent is stopped; then stop (see :meth:`stop`)."""
        settings = self.settings
        try:
            # noack_take exists on faust's Stream but not on its StreamT protocol.
            taken = stream.noack_take(settings.batch_size, within=settings.batch_timeout_s)  # type: ignore[attr-defined]
            async for events in taken:
                await self.submit(stream, events)
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Let the write in flight finish so its offsets can be committed on the way out; but not a write
        or dead letter waiting out an outage, which may never finish: a worker told to stop stops, and
        the batch's events, unacknowledged, come again."""
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        inflight = self.last.task if self.last is not None else None
        for task in (inflight, self.acking):
            if task is None or task.done():
                continue
            if not self.outage:
                try:
                    await asyncio.wait_for(
                        asyncio.shield(task), timeout=max(0.0, deadline - time.monotonic())
                    )
                    continue
                except (TimeoutError, asyncio.CancelledError):
                    pass
            task.cancel()
            log.warning("shutdown left a batch unacknowledged; it will be redelivered")
        for pending in [*self.deliveries, *self.rewinds]:
            pending.cancel()
        # A later batch, if the agent is started again, starts a chain of its own.
        self.acking = None
        self.last = None
        try:
            await self.publisher.stop()
        except Exception as exc:
            log.warning("stopping the worker's Kafka clients failed", error=f"{type(exc).__name__}: {exc}")

    def ready_driver(self) -> neo4j.AsyncDriver | None:
        """The worker's Neo4j driver once the graph's schema is ensured (for upkeep beside the writes)."""
        return self.driver if self.schema_ready else None

    async def _driver(self) -> neo4j.AsyncDriver:
        if self.driver is None:
            self.driver = make_async_driver(self.settings)
        if not self.schema_ready:
            await ensure_schema_async(self.driver, self.settings.neo4j_database)
            self.schema_ready = True
        return self.driver

    async def submit(self, stream: StreamT, events: Sequence[EventT]) -> None:
        """Check ``events`` and fold them now; write them once the previous batch is written."""
        started = time.perf_counter()
        events = self._admit(events)
        if not events:
            return
        accepted: list[Accepted] = []
        pending: list[Awaitable[Any]] = []
        check = self.checker.check
        sources = self.sources
        for i, event in enumerate(events):
            if i % 64 == 63:
                # Checking is CPU work; let the write in flight read its responses meanwhile.
                await asyncio.sleep(0)
            msg = event.message
            result = check(msg.topic, msg.key, msg.value, msg.headers, event)
            if isinstance(result, Rejection):
                pending.append(await self._dead_letter(event, result))
            else:
                # The writer stores each partition's offset with the batch and skips what it already holds.
                where = (msg.topic, msg.partition)
                source = sources.get(where)
                if source is None:
                    source = sources[where] = f"{msg.topic}#{msg.partition}"
                result.source = source
                result.offset = msg.offset
                accepted.append(result)
        batch = Batch(events, accepted, pending, started)
        previous = self.last
        if accepted:
            await self._read_ahead(batch, previous)
        self.waiting = batch
        if previous is not None:
            waits: list[asyncio.Future[None]] = [previous.written]
            if previous.task is not None:
                waits.append(previous.task)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if previous.task is not None and previous.task.done() and previous.task.exception():
                previous.task.result()  # a failed batch ends the worker; its events come again
        batch.task = asyncio.create_task(self._commit(stream, batch, previous))
        self.last = batch
        self.waiting = None

    async def _read_ahead(self, batch: Batch, previous: Batch | None) -> None:
        """Fold ``batch`` against the state its transaction will find (see :meth:`GraphWriter.prepare`)."""
        basis = previous if previous is not None and not previous.written.done() else None
        if basis is not None and not basis.accepted:
            basis = None  # it writes nothing
        if basis is not None and basis.plan is None:
            return  # the batch being written was not folded ahead: nothing to overlay yet
        try:
            driver = await self._driver()
            cache = self.cache if self.sole_writer and self.cache.capacity else None
            batch.epoch = self.cache.epoch
            async with driver.session(database=self.settings.neo4j_database) as session:
                batch.plan = await self.writer.prepare(
                    session, batch.accepted, basis.plan if basis is not None else None, cache
                )
            batch.basis = basis
            batch.stage = Stage.FOLDED_AHEAD
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the transaction reads for itself, with retries
            log.debug("read-ahead failed", error=f"{type(exc).__name__}: {exc}")
            batch.plan = None

    def _admit(self, events: Sequence[EventT]) -> Sequence[EventT]:
        """The events that continue their partition's sequence (see :mod:`ingest.continuity`); the others
        are held back, never acknowledged, and their partition is read again from its first offset not
        admitted."""
        consumer = self.app.consumer
        if not isinstance(consumer, RewindingConsumer):
            return events
        admit = consumer.continuity.admit
        admitted: list[EventT] = []
        held: dict[TP, int] = {}
        for event in events:
            msg = event.message
            verdict = admit(msg.tp, msg.offset, getattr(msg, LINK, None))
            if verdict is True:
                admitted.append(event)
                continue
            held[msg.tp] = held.get(msg.tp, 0) + 1
            if verdict is not None:
                log.warning(
                    "events skipped by the consumer; the partition is read again from the first one",
                    topic=msg.topic,
                    partition=msg.partition,
                    offset=verdict,
                    next=msg.offset,
                )
                task = asyncio.ensure_future(consumer.rewind(msg.tp, verdict))
                self.rewinds.add(task)
                task.add_done_callback(self.rewinds.discard)
        if held:
            EVENTS_HELD.inc(sum(held.values()))
            log.debug(
                "events held back until their partition is read again",
                partitions={f"{tp.topic}#{tp.partition}": n for tp, n in held.items()},
            )
        return admitted if held else events

    def reassigned(self, held: set[TP] | None) -> None:
        """After a rebalance: whether the worker, holding ``held`` (None: revoked), is the only writer.
        The cache starts afresh either way (another worker may have written meanwhile)."""
        self.cache.clear()
        sole = held is not None and bool(self.ingest_topic.topics)
        for topic in self.ingest_topic.topics if held is not None else ():
            count = self.app.consumer.topic_partitions(topic)
            if count is None or not held or any(TP(topic, p) not in held for p in range(count)):
                sole = False
                break
        if sole != self.sole_writer:
            log.info("state cache " + ("on: this worker holds every partition" if sole else "off"))
        self.sole_writer = sole

    async def _commit(self, stream: StreamT, batch: Batch, previous: Batch | None) -> None:
        """The batch's way from WRITING to PUBLISHED; FAILED if it raises (the worker exits then)."""
        batch.stage = Stage.WRITING
        try:
            await self._write_and_publish(stream, batch, previous)
        except BaseException:
            batch.stage = Stage.FAILED
            raise

    async def _write_and_publish(self, stream: StreamT, batch: Batch, previous: Batch | None) -> None:
        if not batch.accepted:
            batch.sending.set_result(None)  # nothing to write
        writing = time.perf_counter()
        try:
            plans, poisoned = await self._write(batch) if batch.accepted else ([], [])
        finally:
            if not batch.written.done():
                batch.written.set_result(None)
        batch.stage = Stage.COMMITTED
        write_s = time.perf_counter() - writing
        if batch.accepted:
            self._observe_write(batch, plans, write_s)
        if batch.accepted:
            if batch.exact and len(plans) == 1:
                if self.sole_writer:
                    self.cache.remember(plans[0].after, batch.epoch)
            else:
                # Written otherwise than folded ahead: what later batches read meanwhile may be stale.
                self.cache.clear()
        # The next batch's statement goes to Neo4j before this one's change records are made (see
        # SEND_ORDER_WAIT_S).
        successor = self.waiting
        if successor is not None and not successor.sending.done():
            await asyncio.wait([successor.sending], timeout=SEND_ORDER_WAIT_S)
        committed = datetime.now(UTC)
        pending = batch.pending
        for ev, rejection in poisoned:
            pending.append(await self._dead_letter(ev.ref, rejection, audited=True))
        records: list[ChangeRecord] = []
        for plan in plans:
            # Committed: the fold's decisions happened.
            for action, fields in plan.audits:
                audit.record(action, **fields)
            for ev, reason, reason_class, headers in plan.rejected:
                # Refused against the stored state: the producer's copy withholds its label and owner.
                pending.append(
                    await self._dead_letter(
                        ev.ref, Rejection(reason, reason_class, headers), audited=True, stored_state=True
                    )
                )
            for c in plan.changes:
                records.append(c.stamped(committed))
                if c.event_time is not None:
                    FRESHNESS.observe((committed - c.event_time).total_seconds())
            for kind, n in plan.applied.items():
                EVENTS_APPLIED.labels(kind).inc(n)
            for kind, n in plan.stale.items():
                EVENTS_STALE.labels(kind).inc(n)
            if plan.ignored:
                EVENTS_IGNORED.labels("no-live-node").inc(plan.ignored)
            if plan.replayed:
                EVENTS_IGNORED.labels("replayed").inc(plan.replayed)
        # The change feed keeps batch order: the previous batch's records go out first.
        if previous is not None and previous.task is not None:
            await previous.task
        pending.extend(await self.publisher.publish(self.settings.changes_topic, records))
        batch.stage = Stage.PUBLISHED
        acking = self.acking
        if acking is not None and acking.done():
            acking.result()  # a batch whose records the broker refused ends the worker here
        self.acking = asyncio.create_task(
            self._acknowledge(acking, stream, batch, len(records), plans, write_s)
        )

    def _observe_write(self, batch: Batch, plans: list[Plan], write_s: float) -> None:
        """Per-batch database time in the metrics, and a warning for a slow write: a batch that takes
        seconds where it takes tens of milliseconds (a bad plan, a supernode) shows at once."""
        db_s = sum(plan.db_seconds for plan in plans)
        BATCH_WRITE_SECONDS.observe(write_s)
        BATCH_DB_SECONDS.observe(db_s)
        BATCH_WRITE_EVENTS.observe(len(batch.accepted))
        if write_s >= self.settings.worker_slow_write_s:
            log.warning(
                "slow batch write",
                events=len(batch.accepted),
                write_s=round(write_s, 3),
                db_s=round(db_s, 3),
                folded_ahead=batch.exact,
                threshold_s=self.settings.worker_slow_write_s,
            )

    async def _acknowledge(
        self,
        previous: asyncio.Task[None] | None,
        stream: StreamT,
        batch: Batch,
        n_changes: int,
        plans: list[Plan],
        write_s: float,
    ) -> None:
        """Acknowledge the batch's events once their dead letters and change records are on the broker,
        and after the previous batch's acknowledgement (offsets move on in order)."""
        events, n_accepted = batch.events, len(batch.accepted)
        for fut in batch.pending:
            await fut
        if previous is not None:
            await previous
        CHANGES_PUBLISHED.inc(n_changes)
        last: dict[TP, int] = {}
        for event in events:
            await stream.ack(event)
            tp = event.message.tp
            last[tp] = max(last.get(tp, -1), event.message.offset)
        record_lag(self.app.consumer, last)
        BATCH_SIZE.observe(len(events))
        batch.stage = Stage.ACKNOWLEDGED
        BATCH_DURATION.observe(time.perf_counter() - batch.started)
        log.debug(
            "batch committed",
            events=len(events),
            accepted=n_accepted,
            changes=n_changes,
            dead_letters=len(events) - n_accepted + sum(len(p.rejected) for p in plans),
            write_s=round(write_s, 4),
            db_s=round(sum(p.db_seconds for p in plans), 4),
        )

    async def _write(self, batch: Batch) -> Outcome:
        """Write ``batch`` in one transaction: its read-ahead plan if that still holds, else read and
        fold afresh inside the transaction; if the graph refuses it, find the event at fault
        (:func:`isolate`)."""
        ahead = batch.plan
        if ahead is not None and batch.basis is not None and not batch.basis.exact:
            ahead = None
        # Consulted: dropped, so that a batch does not keep every batch before it alive through theirs.
        batch.basis = None
        try:
            plan = await self._transact(batch.accepted, ahead, batch.sending)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return await isolate(batch.accepted, exc, self._transact)
        batch.exact = plan is ahead
        return [plan], []

    async def _transact(
        self,
        accepted: list[Accepted],
        ahead: Plan | None = None,
        sending: asyncio.Future[None] | None = None,
    ) -> Plan:
        """Write ``accepted`` in one transaction, retrying until Neo4j takes it (``ahead``, their plan
        folded ahead, on the first attempt); raise what the graph refuses for any other reason.
        ``sending`` is set as the statement goes out."""
        attempt = 0
        while True:
            try:
                # Outside the statement's error handling: failing to connect or to check the schema is
                # never an event's fault.
                driver = await self._driver()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt = await self._backoff(attempt, exc)
                continue
            try:
                # No execute_write: this loop owns the retrying, so every failure is logged and counted,
                # whatever the outage's length.
                async with driver.session(database=self.settings.neo4j_database) as session:
                    if sending is not None and not sending.done():
                        sending.set_result(None)
                    if ahead is not None and attempt == 0:
                        # A plan folded ahead is one statement: written as an auto-commit transaction,
                        # whose reply comes once it has committed, the batch costs the database one
                        # round trip instead of three (begin, run, commit), and the agent's loop one
                        # wake-up instead of three while the next batch is being checked.
                        plan = ahead
                        await self.writer.write(session, plan)
                    else:
                        tx = await session.begin_transaction()
                        try:
                            plan = await self.writer.apply(tx, accepted)
                            await tx.commit()
                        finally:
                            if not tx.closed():
                                await tx.close()
                if attempt:
                    self.outage = False
                    log.info("neo4j write succeeded after retries", attempts=attempt + 1)
                return plan
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if store_errors.unavailable(exc):
                    attempt = await self._backoff(attempt, exc)
                    continue
                raise

    async def _backoff(self, attempt: int, exc: BaseException) -> int:
        WRITE_RETRIES.inc()
        self.outage = True
        delay = min(self.settings.worker_retry_max_backoff_s, 0.2 * 2**attempt)
        log.warning(
            "neo4j write failed; retrying",
            attempt=attempt + 1,
            delay_s=delay,
            error=f"{type(exc).__name__}: {exc}",
        )
        if isinstance(exc, neo4j.exceptions.ServiceUnavailable | OSError) and self.driver is not None:
            # A restarted database: start over with fresh connections (and check the schema again).
            driver, self.driver, self.schema_ready = self.driver, None, False
            try:
                await driver.close()
            except Exception as close_exc:
                log.debug("closing the old driver failed", error=str(close_exc))
        await asyncio.sleep(delay)
        return attempt + 1

    async def _dead_letter(
        self, event: EventT, rejection: Rejection, *, audited: bool = False, stored_state: bool = False
    ) -> Awaitable[Any]:
        """Send ``event`` to the dead letters; ``audited``: the refusal has its audit record already;
        ``stored_state``: the fold refused it against the object's stored label or owner, which the
        producer's own copy does not name (see :data:`hub.dead_letter_headers.SENDER_REASONS`)."""
        msg = event.message
        EVENTS_DEADLETTERED.labels(rejection.reason_class).inc()
        if not audited:
            # The same action names as the fold's refusals (hub.writer), whichever stage refused.
            audit.record(
                "ownership.refused" if rejection.reason_class == "ownership" else "write.refused",
                reason=rejection.reason,
                reason_class=rejection.reason_class,
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                mrid=msg.key.decode(errors="replace") if isinstance(msg.key, bytes) else None,
            )
        source = (msg.topic, msg.partition, msg.offset)
        limit = self.app.conf.producer_max_request_size
        decided = DECIDED_ON_GRAPH if stored_state or rejection.reason_class == "store" else DECIDED_ON_EVENT
        extra = (*rejection.headers, (DECIDED_ON, decided.encode()))
        letter = dead_letters.build(
            msg.key, msg.value, rejection.reason, rejection.reason_class, source, limit, extra
        )
        copies = [(self.settings.deadletter_topic, letter)]
        sender = self._sender(msg.topic)
        if sender is not None:
            told = SENDER_REASONS.get(rejection.reason_class) if stored_state else None
            own = letter
            if told is not None:
                own = dead_letters.build(msg.key, msg.value, told, rejection.reason_class, source, limit)
            copies.append((self.settings.producer_deadletter_topic(sender), own))
        task = asyncio.ensure_future(self._deliver_all(copies))
        self.deliveries.add(task)
        task.add_done_callback(self.deliveries.discard)
        return task

    def _sender(self, topic: str) -> str | None:
        """The configured producer whose topic ``topic`` is (its dead letters are its to read), or None:
        a record on a topic no configured producer owns goes to the operator's topic only."""
        producer = producer_of(topic, self.settings.ingest_topic_prefix)
        return producer if producer is not None and producer in self.checker.registry else None

    async def _deliver_all(self, copies: list[tuple[str, dead_letters.DeadLetter]]) -> None:
        await asyncio.gather(*(self._deliver(letter, topic) for topic, letter in copies))

    async def _deliver(self, letter: dead_letters.DeadLetter, topic: str) -> None:
        """Send one dead letter. A broker that cannot be reached is waited for, as Neo4j is: nothing is
        acknowledged meanwhile, so nothing is lost. A record the topic refuses (its own size limit
        below the producer's, say) is sent again without key and value, whose headers still point at the
        original; if even that is refused, the loss is logged and audited and the stream goes on,
        because retrying a refusal would stop every producer's events behind it for good."""
        attempt = 0
        fallback = False
        while True:
            try:
                sent = await self.app.producer.send(
                    topic, letter.key, letter.value, None, None, letter.headers
                )
                await sent
                if attempt:
                    self.outage = False
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Faust wraps some of the Kafka client's errors; the client's own says what happened.
                cause = exc.__cause__ if isinstance(exc, ProducerSendError) and exc.__cause__ else exc
                where = dict(letter.headers)
                source = (
                    f"{where.get('source-topic', b'').decode()}/{where.get('source-partition', b'').decode()}"
                    f"/{where.get('source-offset', b'').decode()}"
                )
                error = f"{type(cause).__name__}: {cause}"
                if dead_letters.send_retriable(cause):
                    delay = min(self.settings.worker_retry_max_backoff_s, 0.2 * 2**attempt)
                    log.warning(
                        "dead-letter topic unavailable; retrying", source=source, delay_s=delay, error=error
                    )
                    attempt += 1
                    self.outage = True
                    await asyncio.sleep(delay)
                elif not fallback:
                    log.warning(
                        "dead-letter topic refused the record; sending it without key and value",
                        source=source,
                        error=error,
                    )
                    letter, fallback = dead_letters.minimal(letter), True
                else:
                    log.error(
                        "DEAD LETTER LOST: the dead-letter topic refused it; the original is still at "
                        "its source",
                        source=source,
                        topic=topic,
                        error=error,
                    )
                    audit.record(
                        "ingest.dead_letter_lost",
                        subject=source,
                        topic=topic,
                        reason=where.get("reason", b"").decode(errors="replace"),
                        error=error,
                    )
                    return


class TopicWatch:
    """Lists the cluster's ingest topics with one admin client kept open between looks: a client made
    afresh each time costs a connection and a metadata exchange, every few seconds, on the loop that
    also feeds the agent."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.admin: AIOKafkaAdminClient | None = None

    async def topics(self) -> list[str]:
        if self.admin is None:
            admin = AIOKafkaAdminClient(**aiokafka_options(self.settings, WORKER), request_timeout_ms=10_000)
            await admin.start()
            self.admin = admin
        try:
            return await topic_names(self.admin, self.settings.ingest_topic_prefix)
        except Exception:
            admin, self.admin = self.admin, None
            try:
                await admin.close()
            except Exception as exc:
                log.debug("closing the admin client failed", error=str(exc))
            raise

    async def close(self) -> None:
        admin, self.admin = self.admin, None
        if admin is not None:
            await admin.close()


class IngestProcess:
    """What one worker process runs on its app: the write pipeline, the audit publisher and the topic
    watch. :func:`ingest.agents.register` builds it and registers its agent, task, timer and signal
    handlers on the app; nothing here is a module-level singleton."""

    def __init__(self, ingest_app: IngestApp) -> None:
        self.ingest_app = ingest_app
        self.settings = ingest_app.settings
        self.audit = audit.AuditPublisher(self.settings.audit_topic, self.audit_sender)
        self.watch = TopicWatch(self.settings)

    @cached_property
    def pipeline(self) -> WritePipeline:
        """Built on first use (the first batch or rebalance): it loads the ontology."""
        return WritePipeline(self.ingest_app)

    async def audit_sender(self) -> AIOKafkaProducer:
        """The Kafka producer of the audit topic (the one place the worker builds it)."""
        settings = self.settings
        producer = AIOKafkaProducer(
            **aiokafka_options(settings, WORKER), acks="all", client_id=f"{settings.worker_id}-audit"
        )
        await producer.start()
        return producer

    async def ingest(self, stream: StreamT) -> None:
        """The agent: the pipeline consumes ``stream``; the topic watch closes with it."""
        try:
            await self.pipeline.consume(stream)
        finally:
            try:
                await self.watch.close()
            except Exception as exc:
                log.warning(
                    "stopping the worker's Kafka clients failed", error=f"{type(exc).__name__}: {exc}"
                )

    def reassigned(self, held: set[TP] | None) -> None:
        """After a rebalance, the worker holding ``held`` (None: its partitions revoked)."""
        self.pipeline.reassigned(held)

    async def prune_measurements(self) -> None:
        """Delete measurement samples past their retention (hub/measurement_history.py). Every worker
        prunes; a failed round is logged and the next one catches up."""
        settings = self.settings
        # Only once the pipeline has written (it builds the driver and ensures the graph's schema).
        pipeline = self.__dict__.get("pipeline")
        driver = pipeline.ready_driver() if isinstance(pipeline, WritePipeline) else None
        if driver is None:
            return
        try:
            pruned = await measurement_history.prune(
                driver, settings.neo4j_database, datetime.now(UTC), settings.measurement_history_retention_s
            )
        except Exception as exc:
            log.warning("pruning measurement samples failed", error=f"{type(exc).__name__}: {exc}")
            return
        if pruned:
            log.info("measurement samples pruned", count=pruned)

    async def discover(self) -> None:
        """Subscribe to producer topics created since start.

        Topics of producers nobody configured are subscribed too: their events are dead-lettered, each
        with its reason and an audit record, rather than left unseen on the topic, where they would be
        applied the day a producer of that name is configured, long after they were published without
        any right to."""
        try:
            topics = await self.watch.topics()
        except Exception as exc:
            log.warning("topic discovery failed", error=f"{type(exc).__name__}: {exc}")
            return
        before = sorted(self.ingest_app.ingest_topic.topics)
        if topics and self.ingest_app.subscribe(topics):
            SUBSCRIBED_TOPICS.set(len(topics))
            if topics != before:
                log.info("ingest topics changed", topics=topics)
            else:
                log.info(
                    "ingest topics not subscribed yet; asked again",
                    topics=[t for t in topics if not self.ingest_app.subscribed(t)],
                )
