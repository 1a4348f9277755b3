"""A failed demo test shows the end of its worker's and API's logs, the worker's own counters and the
database's open transactions, so that a failure seen once (in CI, say) can be read from its report rather
than only rerun."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Generator
from typing import Any

import httpx
import pytest

from devstack.demo.stack import DemoStack
from devstack.services.process import log_tail

LOG_LINES = {"worker": 120, "api": 40}


def _worker_metrics(stack: DemoStack) -> str:
    """The worker's hub_* counters and gauges (batches, events applied, lag per partition)."""
    port = None
    with (stack.log_dir / "demo-worker.log").open(encoding="utf-8", errors="replace") as log:
        for line in log:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("event") == "metrics served":
                    port = entry.get("port")
                    break
    if port is None:
        return "(the worker logged no metrics port)"
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError as exc:
        return f"(no answer on the worker's metrics port {port}: {exc})"
    kept = [line for line in text.splitlines() if line.startswith("hub_")]
    return "\n".join(line for line in kept if "_bucket" not in line and "_created" not in line)


def _transactions(driver: Any) -> str:
    """The database's transactions, with what each waits for (a write blocked on a lock shows here)."""
    try:
        records, _, _ = driver.execute_query(
            "SHOW TRANSACTIONS YIELD transactionId, status, elapsedTime, currentQuery, clientAddress "
            "RETURN transactionId, status, toString(elapsedTime) AS elapsed, clientAddress, "
            "left(currentQuery, 160) AS query"
        )
    except Exception as exc:
        return f"(SHOW TRANSACTIONS failed: {exc})"
    return "\n".join(json.dumps(dict(r)) for r in records) or "(none)"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.failed and report.when in ("call", "setup"):
        funcargs = getattr(item, "funcargs", {})
        for stack in [v for v in funcargs.values() if isinstance(v, DemoStack)]:
            for name, lines in LOG_LINES.items():
                log = stack.log_dir / f"demo-{name}.log"
                title = f"demo {name} log: last {lines} lines of {log}"
                report.sections.append((title, log_tail(log, lines)))
            report.sections.append(("demo worker metrics", _worker_metrics(stack)))
            if "neo4j_driver" in funcargs:
                report.sections.append(("neo4j transactions", _transactions(funcargs["neo4j_driver"])))
    return report
