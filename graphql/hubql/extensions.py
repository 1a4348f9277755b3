"""Audit log and metrics for every GraphQL operation.

One structured log line per operation: caller, operation name, a hash of the variables (never the values,
which may name objects), rows returned, objects the guard withheld, duration and outcome. The counts of
withheld objects go to the log and metrics only, never to the response.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from strawberry.extensions import SchemaExtension

log = structlog.get_logger("hub.audit")

OPERATIONS = Counter("hub_api_operations_total", "GraphQL operations", ["type", "outcome"])
DURATION = Histogram(
    "hub_api_operation_seconds",
    "GraphQL operation duration",
    ["type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ROWS = Counter("hub_api_rows_returned_total", "Objects returned by GraphQL operations")
WITHHELD = Counter("hub_api_objects_withheld_total", "Objects the access guard withheld from callers")


def variables_hash(variables: dict[str, Any] | None) -> str | None:
    if not variables:
        return None
    text = json.dumps(variables, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class AuditExtension(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        ec = self.execution_context
        elapsed = time.perf_counter() - started
        ctx = ec.context
        guard = getattr(ctx, "guard", None)
        caller = getattr(ctx, "caller", None)
        result = ec.result
        errors = list(getattr(result, "errors", None) or []) if result is not None else []
        try:
            op_type = ec.operation_type.value
        except Exception:  # the document did not parse: there is no operation type
            op_type = "invalid"
        outcome = "error" if errors else "ok"
        rows = guard.stats.rows if guard is not None else 0
        withheld = guard.stats.withheld if guard is not None else 0
        OPERATIONS.labels(op_type, outcome).inc()
        DURATION.labels(op_type).observe(elapsed)
        ROWS.inc(rows)
        WITHHELD.inc(withheld)
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
            errors=[e.message for e in errors][:5],
        )
