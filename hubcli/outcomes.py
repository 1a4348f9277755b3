"""What became of each event ``hub produce --wait`` sent: applied, dead-lettered, or passed without change.

Every sent event is known by where the broker put it (partition and offset of the producer's topic),
which the send's acknowledgement tells. The worker reports on it in one of two places:

* a dead letter, whose ``source-topic``/``-partition``/``-offset`` headers name exactly that record, with
  the reason (see :mod:`ingest.dead_letters`);
* a change record on the change feed, which carries the event's ``id``, its producer and the object's
  mRID (see :class:`hub.changes.ChangeRecord`): the event was applied.

Both topics are read from their ends as they were before the first event was sent, so only the worker's
answers to this call count. Some events get neither: the worker folds the events of one object in a
batch into one change that names the last of them, and writes nothing for an event whose version is not
newer than the stored one (stale, or a repetition). So the wait ends when the worker's consumer group
(``HUB_WORKER_ID``) has committed offsets past every sent event: the worker publishes an event's dead
letter and change records before it commits the event, so by then every answer is on the broker. An
event without one is then *superseded* (a newer version of its object was written meanwhile, usually by a
later event of the call: folded together with it, or stale behind it) or *unchanged* (no change for any
other reason). Events the worker has not
committed when ``--wait-timeout`` runs out are reported *unknown* (no worker running, or one far behind).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from hub.changes import ChangeRecord
from hub.kafka_clients import aiokafka_options
from hub.settings import Settings
from hubcli.deadletters import POLL_MS, READER, partitions, read_error, reader
from ingest import dead_letters
from ingest.producer import Encoded

# How often the worker group's committed offsets are looked at while waiting.
PROGRESS_EVERY_S: Final = 1.0


class Outcome(StrEnum):
    applied = "applied"
    dead_lettered = "dead-lettered"
    superseded = "superseded"
    unchanged = "unchanged"
    unknown = "unknown"
    rejected_locally = "rejected-locally"


# What each outcome means, for the summary.
MEANING: Final = {
    Outcome.applied: "a change record names it",
    Outcome.dead_lettered: "the worker refused it",
    Outcome.superseded: "no change of its own: a newer version of its object was written meanwhile",
    Outcome.unchanged: "the worker passed it without a change: stale (not newer than the stored version) "
    "or ignored",
    Outcome.unknown: "the worker had not reached it when the wait ended",
    Outcome.rejected_locally: "never sent: the local checks refused it",
}


@dataclass(eq=False)  # one per event, told apart by identity (two sends of one event are two)
class Tracked:
    """One event of the call and, once known, what became of it."""

    event_id: str | None
    subject: str | None
    mrid: str | None
    class_name: str | None
    version: int | None
    partition: int | None = None
    offset: int | None = None
    outcome: Outcome = Outcome.unknown
    reason_class: str | None = None
    reason: str | None = None
    change: str | None = None
    # For a superseded event: the version and event id of the change that took its place.
    by: tuple[int, str | None] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.event_id,
            "subject": self.subject,
            "class": self.class_name,
            "version": self.version,
            "partition": self.partition,
            "offset": self.offset,
            "outcome": self.outcome.value,
            "reason_class": self.reason_class,
            "reason": self.reason,
            "change": self.change,
            "superseded_by": None if self.by is None else {"version": self.by[0], "id": self.by[1]},
        }


def event_id_of(value: bytes) -> str | None:
    """The ``id`` of an encoded envelope (None when it has none that is text)."""
    try:
        body = json.loads(value)
    except ValueError:
        return None
    found = body.get("id") if isinstance(body, dict) else None
    return found if isinstance(found, str) else None


class OutcomeWatch:
    """Follows the events of one call on ``topic`` to their outcomes; see the module's notes.

    :meth:`start` before the first send (it marks where the answers begin), :meth:`sent` for each send,
    :meth:`wait` after the last one is acknowledged.
    """

    def __init__(self, settings: Settings, topic: str, producer: str) -> None:
        self.settings = settings
        self.topic = topic
        self.producer = producer
        self.events: list[Tracked] = []
        self._deliveries: list[tuple[Tracked, Awaitable[Any]]] = []
        self._at: dict[tuple[int, int], Tracked] = {}
        self._by_id: dict[tuple[str, str], list[Tracked]] = {}
        self._keys: set[bytes] = set()
        # Per mRID: the newest change record of the window, (version, event id).
        self._latest: dict[str, tuple[int, str | None]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._watched = (settings.changes_topic, settings.deadletter_topic)

    # ------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        consumer = reader(self.settings)
        self._consumer = consumer
        admin = AIOKafkaAdminClient(**aiokafka_options(self.settings, READER))
        self._admin = admin
        try:
            await consumer.start()
            await admin.start()
            await self._assign(at_start=True)
        except (KafkaError, OSError) as exc:
            raise read_error(exc, self.settings, self._what()) from None

    def _what(self) -> str:
        changes, dead = self._watched
        return f"HUB_CHANGES_TOPIC={changes!r} and HUB_DEADLETTER_TOPIC={dead!r}"

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        admin, self._admin = self._admin, None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()

    async def _assign(self, at_start: bool = False) -> bool:
        """Assign the partitions of the change feed and the dead letters not yet assigned; True when all
        exist. Those there at the start are read from their ends then; those that turn up later (the
        worker creates its topics on first use) from their beginnings: all they hold came after."""
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
        )
        self.events.append(tracked)
        self._deliveries.append((tracked, delivery))
        self._keys.add(encoded.key)
        if tracked.event_id is not None and tracked.mrid is not None:
            self._by_id.setdefault((tracked.event_id, tracked.mrid), []).append(tracked)

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

    def _placed(self) -> None:
        """Where each acknowledged event lies (every delivery is done once the producer has flushed)."""
        for tracked, delivery in self._deliveries:
            meta = delivery.result()  # type: ignore[attr-defined]
            tracked.partition, tracked.offset = meta.partition, meta.offset
            self._at[(meta.partition, meta.offset)] = tracked
        self._deliveries = []

    # ------------------------------------------------------------------------------------- waiting

    async def wait(self, timeout_s: float, progress: Callable[[int, int], None]) -> None:
        """Read the answers until the worker has committed every sent event (or ``timeout_s`` passed),
        calling ``progress(settled, total)`` as they come."""
        self._placed()
        consumer = self._consumer
        assert consumer is not None
        total = len(self._at)
        pending = {t for t in self._at.values() if t.outcome is Outcome.unknown}
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
                    passed = complete and await self._committed()
                    if passed:
                        # Every answer is on the broker: read up to the ends as they are now, and stop.
                        ends = await consumer.end_offsets(list(consumer.assignment()))
                        while pending and not await self._reached(ends):
                            await self._read(pending)
                        break
        except (KafkaError, OSError) as exc:
            raise read_error(exc, self.settings, self._what()) from None
        if passed:
            for tracked in pending:
                newer = self._latest.get(tracked.mrid) if tracked.mrid is not None else None
                if newer is not None and tracked.version is not None and newer[0] > tracked.version:
                    tracked.outcome, tracked.by = Outcome.superseded, newer
                else:
                    tracked.outcome = Outcome.unchanged
            pending.clear()
        progress(total - len(pending), total)

    async def _reached(self, ends: dict[TopicPartition, int]) -> bool:
        consumer = self._consumer
        assert consumer is not None
        return all([await consumer.position(tp) >= end for tp, end in ends.items()])

    async def _committed(self) -> bool:
        """Whether the worker's group has committed offsets past every sent event."""
        admin = self._admin
        assert admin is not None
        last: dict[int, int] = {}
        for partition, offset in self._at:
            last[partition] = max(offset, last.get(partition, -1))
        parts = [TopicPartition(self.topic, p) for p in last]
        committed = await admin.list_consumer_group_offsets(self.settings.worker_id, partitions=parts)
        return all(tp in committed and committed[tp].offset > last[tp.partition] for tp in parts)

    async def _read(self, pending: set[Tracked]) -> None:
        consumer = self._consumer
        assert consumer is not None
        if not consumer.assignment():
            # Neither topic exists yet; a consumer without partitions would wait for one for good.
            await asyncio.sleep(POLL_MS / 1000)
            return
        fetched = await consumer.getmany(timeout_ms=POLL_MS)
        for tp, records in fetched.items():
            for record in records:
                if tp.topic == self.settings.changes_topic:
                    self._change(record, pending)
                else:
                    self._dead_letter(record, pending)

    def _change(self, record: ConsumerRecord[bytes, bytes], pending: set[Tracked]) -> None:
        # Keyed by mRID: most of the feed (other producers' objects) is passed over without parsing.
        if record.key not in self._keys or record.value is None:
            return
        try:
            change = ChangeRecord.from_json(record.value)
        except (ValueError, KeyError, TypeError):
            return  # not a change record the API would read either
        newest = self._latest.get(change.mrid)
        if newest is None or change.version >= newest[0]:
            self._latest[change.mrid] = (change.version, change.event_id)
        if change.event_id is None or change.producer != self.producer:
            return
        matches = [t for t in self._by_id.get((change.event_id, change.mrid), ()) if t in pending]
        # One id sent twice for one object: the change names the version it wrote.
        exact = [t for t in matches if t.version == change.version] or matches
        for tracked in exact:
            tracked.outcome, tracked.change = Outcome.applied, change.change
            pending.discard(tracked)

    def _dead_letter(self, record: ConsumerRecord[bytes, bytes], pending: set[Tracked]) -> None:
        letter = dead_letters.read(record.key, record.value, list(record.headers or ()))
        if letter.source is None or letter.source[0] != self.topic:
            return
        tracked = self._at.get((letter.source[1], letter.source[2]))
        if tracked is None or tracked not in pending:
            return  # another call's event, or a second refusal after a redelivery
        tracked.outcome = Outcome.dead_lettered
        tracked.reason_class, tracked.reason = letter.reason_class, letter.reason
        pending.discard(tracked)

    # ------------------------------------------------------------------------------------- results

    def counts(self) -> dict[Outcome, int]:
        found = {outcome: 0 for outcome in Outcome}
        for tracked in self.events:
            found[tracked.outcome] += 1
        return found
