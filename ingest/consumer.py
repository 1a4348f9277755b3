"""The ingest app's Kafka transport: Faust's aiokafka transport, rewinding partitions that have nothing
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

from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, ConsumerT
from mode.services import Service, WaitArgT, WaitResults
from mode.utils.times import Seconds

from hub.logging import get_logger

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


class RewindingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, seeking partitions with nothing committed back to their beginning
    wherever Faust seeks to the committed offsets (see the module's text)."""

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
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


class IngestConsumer(EagerWaitFirst, RewindingConsumer):
    """The rewinding consumer with the eager ``wait_first``."""


class RewindingTransport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[ConsumerT]] = RewindingConsumer


class IngestTransport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[ConsumerT]] = IngestConsumer
