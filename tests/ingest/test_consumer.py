"""The ingest consumer's eager ``wait_first`` gives what mode's gives, in every case the consumer meets.

Compared side by side with mode's own ``Service.wait_first``: a coroutine that finishes at once, one that
waits and then finishes, one that is overtaken by another waitable (and must see the cancellation), one
that raises before or after waiting, and a service that has stopped. The worker tests run the consumer
itself against Kafka and Neo4j.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

import pytest
from mode import Service

from ingest.consumer import EagerWaitFirst, IngestConsumer


class Eager(EagerWaitFirst):
    pass


class Plain(Service):
    pass


# Classes, not instances: a mode service binds to the event loop it first runs on, and each test has one.
KINDS = pytest.mark.parametrize("kind", [Eager, Plain], ids=["eager", "mode"])


@KINDS
async def test_a_coroutine_that_does_not_wait(kind: type[Service]) -> None:
    service = kind()

    async def now() -> str:
        return "done"

    other_started = False

    async def other() -> None:
        nonlocal other_started
        other_started = True
        await asyncio.sleep(10)

    work = now()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine was never awaited" would be one
        result = await service.wait_first(work, other())
        gc.collect()
    assert result.done == [work]
    assert result.results == ["done"]
    assert result.stopped is False
    await asyncio.sleep(0)
    # mode starts the other waitable as a task and cancels it; the eager path never starts it.
    if isinstance(service, EagerWaitFirst):
        assert other_started is False


@KINDS
async def test_a_coroutine_that_waits_then_finishes(kind: type[Service]) -> None:
    service = kind()
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def later() -> int:
        steps.append("before")
        await asyncio.sleep(0)  # a bare suspension
        steps.append("between")
        value = await gate
        steps.append("after")
        return value * 2

    work = later()
    asyncio.get_running_loop().call_later(0.05, gate.set_result, 21)
    result = await service.wait_first(work, asyncio.sleep(5))
    assert result.done == [work]
    assert result.results == [42]
    assert result.stopped is False
    assert steps == ["before", "between", "after"]


@KINDS
async def test_a_waiting_coroutine_overtaken_is_cancelled_inside(kind: type[Service]) -> None:
    service = kind()
    seen: list[str] = []
    flag = asyncio.Event()

    async def blocked() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    async def signal() -> str:
        await flag.wait()
        return "signal"

    asyncio.get_running_loop().call_later(0.05, flag.set)
    sig = signal()
    result = await service.wait_first(blocked(), sig)
    assert result.done == [sig]
    assert result.results == ["signal"]
    await asyncio.sleep(0.01)
    assert seen == ["cancelled", "finally"]


@KINDS
@pytest.mark.parametrize("waits_first", [False, True])
async def test_an_exception_comes_through(kind: type[Service], waits_first: bool) -> None:
    service = kind()

    async def failing() -> None:
        if waits_first:
            await asyncio.sleep(0.01)
        raise ValueError("bad message")

    with pytest.raises(ValueError, match="bad message"):
        await service.wait_first(failing(), asyncio.sleep(5))


@KINDS
# mode cancels the waitables it wrapped before they ever ran, and Python warns about those.
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
async def test_a_stopped_service_reports_stopped(kind: type[Service]) -> None:
    service = kind()
    ran: list[bool] = []

    async def quick() -> None:
        ran.append(True)

    await service.stop()
    result = await service.wait_first(quick(), asyncio.sleep(5))
    assert result.stopped is True
    assert result.done == []


async def test_cancelling_the_waiter_cancels_the_carried_coroutine() -> None:
    service = Eager()
    seen: list[str] = []
    started = asyncio.Event()

    async def blocked() -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    waiter = asyncio.create_task(service.wait_first(blocked(), asyncio.sleep(10)))
    await started.wait()
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.sleep(0.01)
    assert seen == ["cancelled"]


def test_the_ingest_app_consumes_with_the_eager_consumer(kafka_bootstrap: str) -> None:
    # The app signs in to Kafka as the worker, whose credentials exist once the services are up.
    from ingest.app import process_app

    consumer: Any = process_app().app.consumer
    assert isinstance(consumer, IngestConsumer)


def test_with_the_shim_off_the_ingest_app_uses_fausts_own_consumer(
    kafka_bootstrap: str, tmp_path: Any
) -> None:
    # HUB_WORKER_EAGER_CONSUMER=false: Faust's consumer as published, mode's wait_first untouched.
    from faust.transport.drivers import aiokafka as faust_aiokafka

    from hub.settings import get_settings
    from ingest.app import create_app

    settings = get_settings().model_copy(update={"worker_eager_consumer": False, "worker_id": "shim-off"})
    consumer: Any = create_app(settings).consumer
    assert isinstance(consumer, faust_aiokafka.Consumer)
    assert not isinstance(consumer, EagerWaitFirst)
    assert type(consumer).wait_first is Service.wait_first
    on = get_settings().model_copy(update={"worker_id": "shim-on"})
    assert isinstance(create_app(on).consumer, IngestConsumer)
