"""Admission of GraphQL operations over HTTP: a deadline for the whole operation and a cap on the
operations one caller has running at once.

The deadline (``query_timeout_s``) covers everything from parsing to the last resolver, on top of the
Neo4j transaction timeout each Cypher statement already runs under: an operation whose statements are
each quick but many, or whose Python side is slow, still ends on time, with an error that says so.

Subscriptions, which each hold a Kafka consumer for as long as they live, have a cap of their own per
caller (``max_subscriptions``) and no deadline.

The cap (``max_concurrent_operations``) is per caller: a token's subject, or the client address for
anonymous callers. A caller at the cap is refused at once rather than queued, so a caller cannot pile up
work that slows everyone else down; other callers are not affected.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from strawberry.types import ExecutionResult

from graphql import GraphQLError
from hub import audit

log = structlog.get_logger(__name__)


class TooBusy(Exception):
    """The caller already has as many operations running as allowed."""


class Admission:
    """Per-process bookkeeping of running operations (one event loop; no lock needed)."""

    def __init__(self, max_running: int, deadline_s: float) -> None:
        self.max_running = max_running
        self.deadline_s = deadline_s
        self._running: Counter[str] = Counter()

    @contextmanager
    def slot(
        self, key: str, *, what: str = "operations", setting: str = "HUB_MAX_CONCURRENT_OPERATIONS"
    ) -> Iterator[None]:
        if self._running[key] >= self.max_running:
            audit.record("operation.refused", subject=key, reason=f"too many {what}", limit=self.max_running)
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

    def running(self, key: str) -> int:
        return self._running[key]


def caller_key(context: Any) -> str:
    """Whose operation this is: the verified subject, or the client address of an anonymous caller."""
    caller = getattr(context, "caller", None)
    if caller is not None and not caller.anonymous:
        return f"subject:{caller.subject}"
    return f"anonymous@{getattr(context, 'client', None) or 'unknown'}"


def refused(message: str) -> ExecutionResult:
    return ExecutionResult(data=None, errors=[GraphQLError(message)])


async def admit(admission: Admission, context: Any, run: Any) -> ExecutionResult:
    """Run ``run()`` (the operation) inside the caller's slot and under the deadline."""
    key = caller_key(context)
    try:
        with admission.slot(key):
            async with asyncio.timeout(admission.deadline_s):
                result: ExecutionResult = await run()
                return result
    except TooBusy as exc:
        return refused(str(exc))
    except TimeoutError:
        log.warning("graphql operation passed its deadline", caller=key, deadline_s=admission.deadline_s)
        return refused(
            f"the operation did not finish within its deadline of {admission.deadline_s:g} s "
            "(HUB_QUERY_TIMEOUT_S); ask for less or narrow the filters"
        )
