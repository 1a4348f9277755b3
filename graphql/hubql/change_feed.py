"""The API process's one reader of the change topic, fanning records out to every live subscription.

One Kafka consumer per process, started by the first subscription, reads ``cim.changes`` from the live end
and hands each record to every registered :class:`Tap` (a subscription's bounded queue) whose filter
matches. It is a member of a consumer group of its own (``hub-api.<topic>.<random>``), so the broker
shows it, but commits nothing: its positions live in memory and a rebalance seeks back to them.

A subscription that resumes from a cursor older than the shared reader's position first reads the gap
itself with a short-lived catch-up consumer (:meth:`ChangeFeed.catch_up`) and joins the shared reader
once it has reached it. Rewinding the shared reader instead would hold every other subscriber back, and
a resuming subscriber may be far behind; the catch-up consumer exists only while the gap lasts.

A slow subscriber never blocks the others: its queue is bounded, and when it fills the tap is dropped
from the shared reader; the subscription reads on from its last delivered position with a catch-up
reader (see :mod:`hubql.subscriptions`; nothing is lost, because positions move only past records that
were delivered).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from hub.changes import ChangeRecord, change_consumer
from hub.reader import ReadError
from hub.settings import Settings

log = structlog.get_logger(__name__)

CLIENT_ID = "hub-api-changes"
FETCH_RECORDS = 500


@dataclass(frozen=True, slots=True)
class Item:
    partition: int
    offset: int
    record: ChangeRecord


class SubscriberTooSlow(ReadError):
    """The subscriber's queue overflowed; it must read on from its last delivered position."""


def _parse(partition: int, offset: int, value: bytes | None) -> ChangeRecord | None:
    try:
        return ChangeRecord.from_json(value or b"")
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("unreadable change record skipped", partition=partition, offset=offset, error=str(exc))
        return None


class Tap:
    """One subscription's queue on the shared reader."""

    def __init__(self, wants: Callable[[ChangeRecord], bool], start: dict[int, int], limit: int) -> None:
        self._wants = wants
        # Next offset this subscription needs per partition: records before it were handled already
        # (by a catch-up reader), so they are dropped here.
        self._next = dict(start)
        self._limit = limit
        self._items: deque[Item] = deque()
        self._wake = asyncio.Event()
        self.overflowed = False

    def offer(self, item: Item) -> None:
        if self.overflowed or item.offset < self._next.get(item.partition, 0):
            return
        self._next[item.partition] = item.offset + 1
        if not self._wants(item.record):
            return
        if len(self._items) >= self._limit:
            # Keeping what is queued would only delay the error: the subscriber resumes from its cursor.
            self.overflowed = True
            self._items.clear()
        else:
            self._items.append(item)
        self._wake.set()

    async def get(self) -> Item:
        while not self._items and not self.overflowed:
            self._wake.clear()
            await self._wake.wait()
        if self.overflowed:
            raise SubscriberTooSlow(
                f"subscription_queue_size = {self._limit} changes were waiting for this subscription: "
                "it is too slow and was ended; subscribe again with the last cursor received"
            )
        return self._items.popleft()

    async def get_many(self) -> list[Item]:
        """Every item waiting (at least one): a subscriber that fell behind catches up in batches, each
        served with one read of the graph instead of one per record."""
        first = await self.get()
        items = [first, *self._items]
        self._items.clear()
        return items


class _Listener(ConsumerRebalanceListener):
    def __init__(self, feed: ChangeFeed) -> None:
        self.feed = feed

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.feed._assigned(assigned)


class ChangeFeed:
    """The shared reader of the change topic (one per API process)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.changes_topic
        self.queue_size = settings.subscription_queue_size
        self.group_id = f"hub-api.{self.topic}.{uuid.uuid4().hex[:12]}"
        # Next offset the shared reader hands out, per partition; a registering tap starts there.
        self.positions: dict[int, int] = {}
        # Live subscriptions per caller (issuer and subject) in this process (the caller checks the cap).
        self.per_caller: dict[str, int] = {}
        self._taps: set[Tap] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._initialised = False

    async def start(self) -> None:
        """Start the shared reader once and wait until it knows its positions."""
        async with self._lock:
            if self._consumer is None:
                consumer = change_consumer(
                    self.settings,
                    client_id=CLIENT_ID,
                    group_id=self.group_id,
                    auto_offset_reset="latest",
                )
                consumer.subscribe([self.topic], listener=_Listener(self))
                # Set first: the first assignment (and its listener call) may come within start().
                self._consumer = consumer
                try:
                    await consumer.start()
                except BaseException:
                    self._consumer = None
                    raise
                self._task = asyncio.get_running_loop().create_task(self._run(consumer))
                log.info("change feed started", topic=self.topic, group=self.group_id)
        await self._ready.wait()

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        if not self._initialised:
            # The first assignment starts at the live end: subscriptions see what happens from now on.
            ends = await consumer.end_offsets(list(assigned)) if assigned else {}
            for tp, end in ends.items():
                self.positions[tp.partition] = end
            self._initialised = True
        for tp in assigned:
            # A partition seen for the first time after the start was added later: all of it is new.
            consumer.seek(tp, self.positions.setdefault(tp.partition, 0))
        self._ready.set()

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=500, max_records=FETCH_RECORDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("change feed read failed; retrying", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)
                continue
            # No await from here to the end of the batch: a tap registering sees positions and queue
            # contents that agree.
            for tp, messages in batch.items():
                for msg in messages:
                    self.positions[tp.partition] = msg.offset + 1
                    record = _parse(tp.partition, msg.offset, msg.value)
                    if record is None:
                        continue
                    item = Item(tp.partition, msg.offset, record)
                    for tap in tuple(self._taps):
                        tap.offer(item)
                        if tap.overflowed:
                            self._taps.discard(tap)

    def register(self, wants: Callable[[ChangeRecord], bool], start: dict[int, int] | None) -> Tap:
        """A tap receiving every record after ``start`` (default: the shared reader's position)."""
        tap = Tap(wants, dict(self.positions) if start is None else start, self.queue_size)
        self._taps.add(tap)
        return tap

    def unregister(self, tap: Tap) -> None:
        self._taps.discard(tap)

    def behind(self, positions: dict[int, int]) -> bool:
        return any(positions.get(p, 0) < end for p, end in self.positions.items())

    async def catch_up(
        self, positions: dict[int, int], wants: Callable[[ChangeRecord], bool]
    ) -> AsyncGenerator[Item | Tap, None]:
        """Records from ``positions`` (advanced in place) up to the shared reader's position, read by a
        consumer of its own; ends by yielding the tap that continues from there."""
        consumer: AIOKafkaConsumer | None = None
        assigned: set[int] = set()
        try:
            while self.behind(positions):
                if consumer is None:
                    consumer = change_consumer(
                        self.settings, client_id=f"{CLIENT_ID}-catch-up", group_id=None
                    )
                    await consumer.start()
                if assigned != set(self.positions):
                    assigned = set(self.positions)
                    tps = [TopicPartition(self.topic, p) for p in sorted(assigned)]
                    consumer.assign(tps)
                    for tp in tps:
                        consumer.seek(tp, positions.get(tp.partition, 0))
                batch = await consumer.getmany(timeout_ms=500, max_records=FETCH_RECORDS)
                for tp, messages in batch.items():
                    for msg in messages:
                        positions[tp.partition] = msg.offset + 1
                        record = _parse(tp.partition, msg.offset, msg.value)
                        if record is not None and wants(record):
                            yield Item(tp.partition, msg.offset, record)
            # Checked and registered with no await in between: the tap takes over exactly where the
            # catch-up reader stopped (it drops what the catch-up reader read beyond the shared one).
            tap = self.register(wants, dict(positions))
            stopping: AIOKafkaConsumer | None = consumer
            consumer = None
            if stopping is not None:
                with contextlib.suppress(Exception):
                    await stopping.stop()
            yield tap
        finally:
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
