"""The ingest app's Kafka transport: Faust's aiokafka transport, keeping every partition's events in an
unbroken sequence across rebalances (:mod:`ingest.continuity`), rewinding partitions that have nothing
committed after a rebalance, and (optionally) with a cheaper hand-off per message.

Faust drops events it has fetched but not handed to the agent whenever the group rebalances (it clears
the stream buffers, and a fetch that comes back while the flow is stopped is thrown away), and relies on
seeking every partition back to its committed offset to read them again. The Kafka client seeks only
partitions whose committed offset is above zero: a partition with nothing committed yet (a producer
topic the worker has just discovered) stays where the dropped fetch left it, so its dropped events are
never read; the worker reads nothing more there, and acknowledging later events would commit past them.
:class:`RewindingConsumer` seeks such a partition back to its beginning, which is where a worker with
nothing committed starts (``auto_offset_reset`` is earliest); the events read again are skipped by the
writer, which knows each partition's position.

Seeking back is not enough: records fetched before the seek can still reach Faust's drain after it, and
the drain then dropped the events read again and committed past them (:mod:`ingest.continuity` has the
details). So :class:`LinkingThread` gives every record it fetches its link (where in the log it follows,
taken in the Kafka client's thread, where fetches and seeks run one after another), the message made
of it keeps the link, and :class:`RewindingConsumer` turns off the drain's filter by read offset (and
with it Faust's gaps), lets the pipeline read a partition again from a given offset
(:meth:`RewindingConsumer.rewind`), and commits the offset after the last event acknowledged, which the
pipeline's gate keeps in sequence. Two crashes on the same path are avoided: the high-water mark of a
partition a subscription change has just unassigned is None, not the client's assertion, and a commit
asked for while no partition is assigned is skipped.

The hand-off:

Faust's consumer hands every fetched message to the agents' buffers through
``Service.wait_first(callback(message), suspend_flow.wait())``, which wraps each of the two and the
service's stopped and crashed events in a task, waits for the first, and cancels the other three: four
tasks and three cancellations per message, more CPU than checking the event itself. Yet the callback
almost always completes without waiting (there is room in the buffer). :class:`IngestConsumer` runs the
first awaitable of ``wait_first`` up to its first suspension, on the spot; only if it has to wait does
the call go through mode's ``wait_first``, with the coroutine carried on from where it stopped. The
outcome is the same as mode's in both cases: the callback's result, an exception it raised, or
"stopped" when the service has stopped or crashed. One difference: the eager part runs in the caller's
context rather than a task's copy of it, which matters only to a callback that sets context variables
(Faust's message callback sets none).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Coroutine, Generator, Mapping
from typing import Any, ClassVar

from aiokafka.consumer.fetcher import OffsetResetStrategy
from aiokafka.errors import IllegalStateError, KafkaError
from faust.transport.consumer import RecordMap
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, ConsumerT, Message
from faust.types.tuples import ConsumerMessage
from mode.services import Service, WaitArgT, WaitResults
from mode.utils.times import Seconds

from hub.logging import get_logger
from ingest.continuity import LINK, Continuity

log = get_logger("ingest.consumer")


@types.coroutine
def _carry_on(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """Continue ``coro``, suspended on ``waiting_on``, as if it had run in the awaiting task all along:
    what the event loop sends or throws in is passed on to it."""
    while True:
        try:
            sent = yield waiting_on
        except BaseException as exc:  # cancellation included: it belongs to ``coro``
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def _continued(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    # mode wraps what it waits for with ensure_future, which takes coroutines, not generators.
    return await _carry_on(coro, waiting_on)


def _close(waitables: tuple[WaitArgT, ...]) -> None:
    for other in waitables:
        if inspect.iscoroutine(other):
            other.close()  # never started: closing it is all the clean-up it needs


class EagerWaitFirst(Service):
    """A mode service whose ``wait_first`` runs the first coroutine eagerly (see the module's text)."""

    async def wait_first(self, *coros: WaitArgT, timeout: Seconds | None = None) -> WaitResults:
        if timeout is not None:
            return await super().wait_first(*coros, timeout=timeout)
        first = coros[0] if coros else None
        if not inspect.iscoroutine(first) or self._stopped.is_set() or self._crashed.is_set():
            return await super().wait_first(*coros)
        try:
            waiting_on = first.send(None)
        except StopIteration as stop:
            _close(coros[1:])
            if self._stopped.is_set() or self._crashed.is_set():
                return WaitResults([], [], True)
            return WaitResults([first], [stop.value], False)
        except BaseException:
            _close(coros[1:])
            raise
        carried = _continued(first, waiting_on)
        results = await super().wait_first(carried, *coros[1:])
        return WaitResults(
            [first if done is carried else done for done in results.done], results.results, results.stopped
        )


class _Unfiltered(dict[Any, Any]):
    """Faust's per-partition read offsets, by which its drain drops records below the highest one it
    delivered and takes a jump above it for a gap to commit past: this one never knows an offset, so
    every fetched record goes on to the pipeline's gate (see :mod:`ingest.continuity`)."""

    def __getitem__(self, tp: Any) -> None:
        return None

    def __setitem__(self, tp: Any, offset: Any) -> None:
        return None


class LinkingThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's thread running the Kafka client, noting where each fetch of a partition started: where its
    previous fetch left it, or where it was last sought to (see :mod:`ingest.continuity`). Fetches and
    seeks run on this thread's loop, one after another, so the position is exact."""

    def __init__(self, consumer: RewindingConsumer, **kwargs: Any) -> None:
        super().__init__(consumer, **kwargs)
        self.continuity = consumer.continuity
        # Per partition: (the client's state of the partition, the position the next fetch starts at).
        self._next: dict[Any, tuple[Any, int | None]] = {}

    async def on_start(self) -> None:
        await super().on_start()
        fetcher = self._ensure_consumer()._fetcher
        seek_to = fetcher.seek_to
        request_offset_reset = fetcher.request_offset_reset

        def seek_to_noted(tp: Any, offset: int) -> None:
            seek_to(tp, offset)
            self._sought(fetcher, tp, offset)

        def request_offset_reset_noted(tps: Any, strategy: int) -> Any:
            waiter = request_offset_reset(tps, strategy)
            for tp in tps:
                # From the beginning: nothing lies before the first record.
                self._sought(fetcher, tp, 0 if strategy == OffsetResetStrategy.EARLIEST else None)
            return waiter

        # On this consumer's own fetcher: every seek and reset goes through one of the two.
        fetcher.seek_to = seek_to_noted
        fetcher.request_offset_reset = request_offset_reset_noted

    def _state(self, fetcher: Any, tp: Any) -> Any:
        assignment = fetcher._subscriptions.subscription and fetcher._subscriptions.subscription.assignment
        return assignment.state_value(tp) if assignment is not None else None

    def _sought(self, fetcher: Any, tp: Any, position: int | None) -> None:
        eras = self.continuity.eras
        eras[tp] = eras.get(tp, 0) + 1
        self._next[tp] = (self._state(fetcher, tp), position)

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        # Faust's commit keeps the partitions still assigned and commits them; when a subscription change
        # has just unassigned them all it asks the client to commit nothing, and the client raises (no
        # partitions assigned): the thread crashed, the worker with it. Not committing loses nothing.
        assigned = self.assignment()
        if not any(tp in assigned for tp in offsets):
            return False
        return bool(await super()._commit(offsets))

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: set[TP],
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> RecordMap:
        records = await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        # No suspension since the records were taken: the positions are where they left them.
        fetcher = consumer._fetcher
        eras = self.continuity.eras
        for tp, batch in records.items():
            if not batch:
                continue
            state = self._state(fetcher, tp)
            noted = self._next.get(tp)
            # A state the client made afresh (a new assignment): it set the position by itself.
            start = noted[1] if noted is not None and state is not None and noted[0] is state else None
            Continuity.link(batch, start, eras.get(tp, 0))
            if state is not None and state.has_valid_position:
                self._next[tp] = (state, state.position)
        return records


class RewindingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, seeking partitions with nothing committed back to their beginning
    wherever Faust seeks to the committed offsets (see the module's text), noting where every fetched
    record follows, and committing only what :mod:`ingest.continuity` says is applied."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.continuity = Continuity()
        super().__init__(*args, **kwargs)
        self._read_offset = _Unfiltered()

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return LinkingThread(self, loop=self.loop, beacon=self.beacon)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        for tp, offset in committed.items():
            self.continuity.start(tp, offset)
        fresh = [tp for tp, offset in committed.items() if offset is None or offset <= 0]
        if fresh:
            try:
                await self._thread.seek_to_beginning(*fresh)
            except IllegalStateError:
                # Taken away by a rebalance meanwhile: the next assignment seeks again.
                return committed
            log.info(
                "partitions with nothing committed read again from their beginning",
                partitions=sorted(f"{tp.topic}#{tp.partition}" for tp in fresh),
            )
        return committed

    async def rewind(self, tp: TP, offset: int) -> None:
        """Read ``tp`` again from ``offset``: events from there on were dropped before reaching the
        pipeline (see :mod:`ingest.continuity`)."""
        try:
            await self._thread.seek_wait({tp: offset})
        except (IllegalStateError, AssertionError, KafkaError, TimeoutError) as exc:
            # Taken away by a rebalance (which seeks to the committed offsets), or not reachable.
            self.continuity.rewind_failed(tp)
            log.info(
                "partition not read again",
                partition=f"{tp.topic}#{tp.partition}",
                offset=offset,
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        log.info("partition read again", partition=f"{tp.topic}#{tp.partition}", offset=offset)

    def _to_message(self, tp: TP, record: Any) -> ConsumerMessage:
        message = super()._to_message(tp, record)
        setattr(message, LINK, getattr(record, LINK, None))
        return message

    def highwater(self, tp: TP) -> int | None:  # type: ignore[override]
        """The partition's high-water mark; None when it is not assigned (any more).

        Faust's ``getmany`` asks for it while handing over each record it fetched; when the conductor
        changes the subscription, the Kafka client unassigns every partition at once, before the
        rebalance stops the flow, and asserts in ``highwater``: the drain crashed and the worker with it.
        Such records are stale (:mod:`ingest.continuity` holds them back)."""
        try:
            return super().highwater(tp)
        except (AssertionError, IllegalStateError):
            return None

    def ack(self, message: Message) -> bool:
        acked = super().ack(message)
        if acked:
            self.continuity.acknowledged(message.tp, message.offset)
        return acked

    def _new_offset(self, tp: TP) -> int | None:
        # Faust's acknowledged offsets and gaps are not used: see ingest.continuity.
        acked = self._acked.get(tp)
        if acked:
            acked.clear()
            self._acked_index[tp].clear()
        return self.continuity.committable(tp)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        return None


class IngestConsumer(EagerWaitFirst, RewindingConsumer):
    """The rewinding consumer with the eager ``wait_first``."""


class RewindingTransport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[ConsumerT]] = RewindingConsumer


class IngestTransport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[ConsumerT]] = IngestConsumer
