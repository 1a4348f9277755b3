"""What became of each event ``hub produce --wait`` sent: applied, dead-lettered, or passed without change.

The outcomes and how records settle them are the core's (:mod:`hub.outcomes`); this module reads the
records for one call. Both topics are read from their ends as they were before the first event was sent,
so only the worker's answers to this call count. The wait ends when the worker's consumer group
(``HUB_WORKER_ID``) has committed offsets past every sent event; events still without an answer then are
*superseded* or *unchanged*. Events the worker has not committed when ``--wait-timeout`` runs out are
reported *unknown* (no worker running, or one far behind).

Who reads. The operator (the ``admin`` credentials in the state folder) reads the change feed, the shared
dead-letter topic and the worker group's progress. A process given a producer's own credentials
(``HUB_KAFKA_USERNAME=producer-<id>``) may read none of these: it reads that producer's own dead-letter
topic only (:mod:`hubcli.deadletters`), so it learns which events were dead-lettered and why, and reports
every other event *unknown* when ``--wait-timeout`` ends (applied, superseded or unchanged are told apart
by the change feed and the worker's progress, which hold every producer's events).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from hub.kafka_clients import aiokafka_options
from hub.outcomes import MEANING, Ledger, Outcome, Tracked, committed_past, event_id_of, last_offsets
from hub.settings import Settings
from hubcli.deadletters import POLL_MS, ReadError, partitions, read_error, reader, reading_as
from ingest.producer import Encoded

__all__ = ["MEANING", "Outcome", "OutcomeWatch", "Tracked"]

# How often the worker group's committed offsets are looked at while waiting.
PROGRESS_EVERY_S: Final = 1.0


class OutcomeWatch:
    """Follows the events of one call on ``topic`` to their outcomes; see the module's notes.

    :meth:`start` before the first send (it marks where the answers begin), :meth:`sent` for each send,
    :meth:`wait` after the last one is acknowledged.
    """

    def __init__(self, settings: Settings, topic: str, producer: str) -> None:
        self.settings = settings
        self.topic = topic
        self.producer = producer
        self.reading = reading_as(settings)
        if self.reading.producer is not None and self.reading.producer != producer:
            raise ReadError(
                f"HUB_KAFKA_USERNAME={settings.kafka_username!r} reads the dead letters of producer "
                f"{self.reading.producer!r} only, not those of {producer!r}"
            )
        self.events: list[Tracked] = []
        self._deliveries: list[tuple[Tracked, Awaitable[Any]]] = []
        self._ledger = Ledger()
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        letters = self.reading.deadletter_topic(settings)
        # A producer reads its own dead letters only; the change feed is the operator's.
        self._watched = (letters,) if self.reading.producer else (settings.changes_topic, letters)

    @property
    def as_producer(self) -> bool:
        """Whether the call reads as the producer (its dead letters only; see the module's notes)."""
        return self.reading.producer is not None

    # ------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        consumer = reader(self.settings, self.reading.principal)
        self._consumer = consumer
        admin = AIOKafkaAdminClient(**aiokafka_options(self.settings, self.reading.principal))
        self._admin = admin
        try:
            await consumer.start()
            await admin.start()
            await self._assign(at_start=True)
        except (KafkaError, OSError) as exc:
            raise read_error(exc, self.settings, self._what(), self.reading.principal) from None

    def _what(self) -> str:
        return " and ".join(repr(t) for t in self._watched)

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        admin, self._admin = self._admin, None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()

    async def _assign(self, at_start: bool = False) -> bool:
        """Assign the partitions of the watched topics not yet assigned; True when all exist. Those there
        at the start are read from their ends then; those that turn up later (the worker creates its
        topics on first use) from their beginnings: all they hold came after."""
        consumer, admin = self._consumer, self._admin
        assert consumer is not None and admin is not None
        held = set(consumer.assignment())
        found = [tp for topic in self._watched for tp in await partitions(admin, topic)]
        new = [tp for tp in found if tp not in held]
        if new:
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
        return {tp.topic for tp in found} == set(self._watched)

    # ------------------------------------------------------------------------------------- sending

    def sent(self, encoded: Encoded, delivery: Awaitable[Any]) -> None:
        """Note an event handed to the producer; ``delivery`` resolves to where the broker put it."""
        tracked = Tracked(
            event_id_of(encoded.value),
            encoded.subject,
            encoded.key.decode(),
            encoded.class_name,
            encoded.version,
            topic=self.topic,
            producer=self.producer,
        )
        self.events.append(tracked)
        self._deliveries.append((tracked, delivery))

    def rejected(self, event: object, reason: str, subject: str | None) -> None:
        """Note an event the local checks refused (it is reported, never sent)."""
        body = event if isinstance(event, dict) else None
        raw_id = body.get("id") if body is not None else None
        self.events.append(
            Tracked(
                raw_id if isinstance(raw_id, str) else None,
                subject,
                None,
                str(body.get("class")) if body is not None and "class" in body else None,
                None,
                outcome=Outcome.rejected_locally,
                reason=reason,
            )
        )

    def _placed(self) -> list[Tracked]:
        """Where each acknowledged event lies (every delivery is done once the producer has flushed)."""
        placed = []
        for tracked, delivery in self._deliveries:
            meta = delivery.result()  # type: ignore[attr-defined]
            tracked.partition, tracked.offset = meta.partition, meta.offset
            self._ledger.track(tracked)
            placed.append(tracked)
        self._deliveries = []
        return placed

    # ------------------------------------------------------------------------------------- waiting

    async def wait(self, timeout_s: float, progress: Callable[[int, int], None]) -> None:
        """Read the answers until the worker has committed every sent event (or ``timeout_s`` passed),
        calling ``progress(settled, total)`` as they come."""
        placed = self._placed()
        consumer = self._consumer
        assert consumer is not None
        total = len(placed)
        pending = {t for t in placed if t.outcome is Outcome.unknown}
        deadline = time.monotonic() + timeout_s
        looked = 0.0
        passed = False  # the worker has committed every sent event
        try:
            complete = await self._assign()
            while pending and time.monotonic() < deadline:
                await self._read(pending)
                progress(total - len(pending), total)
                if time.monotonic() - looked >= PROGRESS_EVERY_S:
                    looked = time.monotonic()
                    if not complete:
                        complete = await self._assign()
                    # A producer may not see the worker's progress: it reads until the deadline.
                    passed = complete and not self.as_producer and await self._committed(placed)
                    if passed:
                        # Every answer is on the broker: read up to the ends as they are now, and stop.
                        ends = await consumer.end_offsets(list(consumer.assignment()))
                        while pending and not await self._reached(ends):
                            await self._read(pending)
                        break
        except (KafkaError, OSError) as exc:
            raise read_error(exc, self.settings, self._what(), self.reading.principal) from None
        if passed:
            for tracked in pending:
                self._ledger.passed(tracked)
            pending.clear()
        progress(total - len(pending), total)

    async def _reached(self, ends: dict[TopicPartition, int]) -> bool:
        consumer = self._consumer
        assert consumer is not None
        return all([await consumer.position(tp) >= end for tp, end in ends.items()])

    async def _committed(self, placed: list[Tracked]) -> bool:
        """Whether the worker's group has committed offsets past every sent event."""
        admin = self._admin
        assert admin is not None
        last = last_offsets(placed)
        return await committed_past(admin, self.settings.worker_id, last) == set(last)

    async def _read(self, pending: set[Tracked]) -> None:
        consumer = self._consumer
        assert consumer is not None
        if not consumer.assignment():
            # No watched topic exists yet; a consumer without partitions would wait for one for good.
            await asyncio.sleep(POLL_MS / 1000)
            return
        fetched = await consumer.getmany(timeout_ms=POLL_MS)
        for tp, records in fetched.items():
            for record in records:
                if tp.topic == self.settings.changes_topic:
                    pending.difference_update(self._ledger.change(record.key, record.value))
                else:
                    settled = self._ledger.dead_letter(record.key, record.value, list(record.headers or ()))
                    if settled is not None:
                        pending.discard(settled)

    # ------------------------------------------------------------------------------------- results

    def counts(self) -> dict[Outcome, int]:
        found = {outcome: 0 for outcome in Outcome}
        for tracked in self.events:
            found[tracked.outcome] += 1
        return found
