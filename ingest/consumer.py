"""The ingest app's Kafka transport: Faust's aiokafka transport, with a cheaper hand-off per message.

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
from collections.abc import Coroutine, Generator
from typing import Any, ClassVar

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import ConsumerT
from mode.services import Service, WaitArgT, WaitResults
from mode.utils.times import Seconds


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


class IngestConsumer(EagerWaitFirst, faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with the eager ``wait_first``."""


class IngestTransport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[ConsumerT]] = IngestConsumer
