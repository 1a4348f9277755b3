"""A failed demo test shows the end of its worker's and API's logs, so that a failure seen once (in CI,
say) can be read from its report rather than only rerun."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from devstack.demo.stack import DemoStack
from devstack.services.process import log_tail

LOG_LINES = {"worker": 120, "api": 40}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.failed and report.when in ("call", "setup"):
        stacks = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, DemoStack)]
        for stack in stacks:
            for name, lines in LOG_LINES.items():
                log = stack.log_dir / f"demo-{name}.log"
                title = f"demo {name} log: last {lines} lines of {log}"
                report.sections.append((title, log_tail(log, lines)))
    return report
