"""Admission of GraphQL operations over HTTP: one deadline for the whole operation, a cap on the
operations one caller has running at once, and a cap on the operations the process runs at once.

The deadline (``query_timeout_s``) runs from the moment the operation arrives: time spent waiting for a
place, parsing, every Cypher statement and serialising the answer all count. Each statement also runs
under Neo4j's transaction timeout, so an operation whose statements are each quick but many, or whose
Python side is slow, still ends on time, with an error that says so.

The caller cap (``max_concurrent_operations``) is per caller: a token's issuer and subject, or the client
address for anonymous callers. A caller at its cap is refused at once (HTTP 429 with ``Retry-After``) rather
than queued, so one caller cannot pile up work that slows everyone else down.

The process cap (``api_max_running_operations``) is what keeps latency flat when many callers arrive at
once. Without it every request starts at once and all of them share the database and the event loop, so
each takes longer the more there are: under load the API answered late (seconds to tens of seconds)
instead of answering some at once and refusing the rest. With it, an operation waits at most
``api_admission_wait_s`` for a place; if none frees up in that time it is refused with HTTP 503 and a
``Retry-After``, within that wait, and the operations already admitted keep their speed. The refusal
depends only on how many operations are running, never on what they read.

Subscriptions have caps of their own per socket and per caller (``max_subscriptions_*``) and no deadline.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from prometheus_client import Counter as MetricCounter
from strawberry.types import ExecutionResult

from graphql import GraphQLError
from hub import audit

log = structlog.get_logger(__name__)

# Refusals by reason: the counts depend only on how busy the API is, never on data.
REFUSED = MetricCounter(
    "hub_api_operations_refused_total", "GraphQL operations refused on admission", ["reason"]
)

TOO_MANY_REQUESTS = 429
SERVICE_UNAVAILABLE = 503


class TooBusy(Exception):
    """The caller already has as many operations running as allowed."""


class Saturated(Exception):
    """The process has as many operations running as allowed and none finished within the wait."""


class Admission:
    """Per-process bookkeeping of running operations (one event loop; no lock needed).

    ``max_total`` of 0 means no process cap (a test of the caller cap alone, or a deployment that caps
    work in front of the API)."""

    def __init__(
        self, max_running: int, deadline_s: float, *, max_total: int = 0, wait_s: float = 0.0
    ) -> None:
        self.max_running = max_running
        self.deadline_s = deadline_s
        self.max_total = max_total
        self.wait_s = wait_s
        self._running: Counter[str] = Counter()
        self._places = asyncio.Semaphore(max_total) if max_total > 0 else None

    @contextmanager
    def slot(
        self, key: str, *, what: str = "operations", setting: str = "HUB_MAX_CONCURRENT_OPERATIONS"
    ) -> Iterator[None]:
        if self._running[key] >= self.max_running:
            audit.record("operation.refused", subject=key, reason=f"too many {what}", limit=self.max_running)
            REFUSED.labels("caller_cap").inc()
            raise TooBusy(
                f"caller {key!r} already has {self._running[key]} {what} running, the most allowed "
                f"at once ({setting}={self.max_running}); retry when one has finished"
            )
        self._running[key] += 1
        try:
            yield
        finally:
            self._running[key] -= 1
            if not self._running[key]:
                del self._running[key]

    async def place(self, key: str, wait_s: float) -> bool:
        """Take one of the process's places, waiting at most ``wait_s``; False: none came free."""
        if self._places is None:
            return True
        if not self._places.locked():
            await self._places.acquire()
            return True
        try:
            async with asyncio.timeout(max(wait_s, 0.0)):
                await self._places.acquire()
            return True
        except TimeoutError:
            audit.record("operation.refused", subject=key, reason="api saturated", limit=self.max_total)
            REFUSED.labels("saturated").inc()
            return False

    def leave(self) -> None:
        if self._places is not None:
            self._places.release()

    def running(self, key: str) -> int:
        return self._running[key]

    def retry_after_s(self) -> int:
        """What a refused caller is told to wait: about one wait, at least the one second HTTP can say."""
        return max(1, math.ceil(self.wait_s))


def caller_key(context: Any) -> str:
    """Whose operation this is: the verified principal (issuer and subject), or the client address of an
    anonymous caller."""
    caller = getattr(context, "caller", None)
    if caller is not None and not caller.anonymous:
        return f"subject:{caller.principal}"
    return f"anonymous@{getattr(context, 'client', None) or 'unknown'}"


def refused(
    message: str, context: Any = None, status: int | None = None, retry_after_s: int = 1
) -> ExecutionResult:
    """A refusal as a GraphQL answer; over HTTP (the context has a response) with ``status`` and
    ``Retry-After``, so that clients and proxies can tell "come back later" from a failed query."""
    response = getattr(context, "response", None)
    if status is not None and response is not None:
        response.status_code = status
        response.headers["Retry-After"] = str(retry_after_s)
    return ExecutionResult(data=None, errors=[GraphQLError(message)])


async def admit(admission: Admission, context: Any, run: Any) -> ExecutionResult:
    """Run ``run()`` (the operation) inside the caller's slot and a place of the process's, all under
    the one deadline that starts now."""
    key = caller_key(context)
    started = time.monotonic()
    try:
        with admission.slot(key):
            wait_s = min(admission.wait_s, admission.deadline_s)
            if not await admission.place(key, wait_s):
                return refused(
                    f"the hub is running as many operations as it allows at once "
                    f"(HUB_API_MAX_RUNNING_OPERATIONS={admission.max_total}) and none finished within "
                    f"{admission.wait_s:g} s (HUB_API_ADMISSION_WAIT_S); retry after "
                    f"{admission.retry_after_s()} s",
                    context,
                    SERVICE_UNAVAILABLE,
                    admission.retry_after_s(),
                )
            try:
                remaining = admission.deadline_s - (time.monotonic() - started)
                async with asyncio.timeout(max(remaining, 0.0)):
                    result: ExecutionResult = await run()
                    return result
            finally:
                admission.leave()
    except TooBusy as exc:
        return refused(str(exc), context, TOO_MANY_REQUESTS, 1)
    except TimeoutError:
        log.warning("graphql operation passed its deadline", caller=key, deadline_s=admission.deadline_s)
        return refused(
            f"the operation did not finish within its deadline of {admission.deadline_s:g} s "
            "(HUB_QUERY_TIMEOUT_S); ask for less or narrow the filters"
        )
