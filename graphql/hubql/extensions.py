"""Audit log and metrics for every GraphQL operation, and the parse cache.

One structured log line per operation: caller, operation name, a hash of the variables (never the values,
which may name objects), rows returned, objects the guard withheld, duration and outcome. The count of
withheld objects goes to the operators' log only: not to the response and not to a metric, since a
counter of hidden objects that anyone can read before and after a query tells hidden from missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from strawberry.extensions import ParserCache, SchemaExtension

from hub import audit

log = structlog.get_logger("hub.audit")

OPERATIONS = Counter("hub_api_operations_total", "GraphQL operations", ["type", "outcome"])
DURATION = Histogram(
    "hub_api_operation_seconds",
    "GraphQL operation duration",
    ["type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ROWS = Counter("hub_api_rows_returned_total", "Objects returned by GraphQL operations")


def variables_hash(variables: dict[str, Any] | None) -> str | None:
    if not variables:
        return None
    text = json.dumps(variables, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CachedParsing(ParserCache):
    """Strawberry's parse cache (documents shared by every request, keyed by text and token limit), except
    that a document that does not parse is left to Strawberry's own parsing, which reports the error
    inside the operation like any other (the cache would raise it past the other extensions)."""

    def on_parse(self) -> Iterator[None]:
        ec = self.execution_context
        try:
            ec.graphql_document = self.cached_parse_document(ec.query, **ec.parse_options)
        except Exception:
            ec.graphql_document = None
        yield


class AuditExtension(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            yield
        except BaseException as exc:  # cancellation (a client gone) included
            failure = exc
            raise
        finally:
            # Even an operation that raised through the extensions leaves its line.
            self._audit(time.perf_counter() - started, failure)

    def _audit(self, elapsed: float, failure: BaseException | None) -> None:
        ec = self.execution_context
        ctx = ec.context
        guard = getattr(ctx, "guard", None)
        caller = getattr(ctx, "caller", None)
        result = ec.result
        errors: list[Any] = list(getattr(result, "errors", None) or []) if result is not None else []
        try:
            op_type = ec.operation_type.value
        except Exception:  # the document did not parse: there is no operation type
            op_type = "invalid"
        # A subscription ends by being cancelled when its client completes it or goes away: that is how
        # it ends normally, not an error (its rows are in its own "subscription ended" line).
        if failure is not None and not (
            op_type == "subscription" and isinstance(failure, asyncio.CancelledError)
        ):
            errors.append(failure)
        outcome = "error" if errors else "ok"
        rows = guard.stats.rows if guard is not None else 0
        withheld = guard.stats.withheld if guard is not None else 0
        OPERATIONS.labels(op_type, outcome).inc()
        DURATION.labels(op_type).observe(elapsed)
        ROWS.inc(rows)
        grants = guard.grants if guard is not None else ()
        if grants and op_type != "subscription":
            # Evidence of use: the grants that added to what this operation could read, and what it read.
            audit.record(
                "access.used",
                subject=getattr(caller, "subject", None),
                issuer=getattr(caller, "issuer", None),
                grants=list(grants),
                # Per grant, the distinct objects read that only that grant made visible.
                objects_by_grant=guard.granted_counts() if guard is not None else {},
                operation=ec.operation_name,
                operation_type=op_type,
                rows=rows,
                outcome=outcome,
            )
        log.info(
            "graphql operation",
            subject=getattr(caller, "subject", None),
            org=getattr(caller, "org", None),
            operation=ec.operation_name,
            operation_type=op_type,
            variables_hash=variables_hash(ec.variables),
            rows=rows,
            withheld=withheld,
            queries=guard.stats.queries if guard is not None else 0,
            duration_ms=round(elapsed * 1000, 2),
            outcome=outcome,
            errors=[getattr(e, "message", None) or str(e) or type(e).__name__ for e in errors][:5],
        )
