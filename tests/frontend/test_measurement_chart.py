"""Measurements over time in the detail panel: a gas meter's readings, published through Kafka while the
test plays the demo's simulator (a reading a second, drifting), are kept by the worker as samples and drawn
by the page as charts of values with their units against time, which grow while the readings come in,
without reloading."""

from __future__ import annotations

import math
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "frontend"
PUBLIC = "classification=PUBLIC"


def _reading(mrid: str, version: int, step: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "source": "fe-test",
        "type": "measurement",
        "subject": mrid,
        "time": datetime.now(UTC).isoformat(),
        "version": version,
        "class": "GasMeasurement",
        "attributes": {
            "GasMeasurement.pressure": round(52.0 + 3.0 * math.sin(step / 3.0), 3),
            "GasMeasurement.flow": round(120.0 + 10.0 * math.cos(step / 4.0), 3),
        },
    }


def _points(page: Any, key: str) -> int:
    found = page.evaluate(
        "k => document.querySelector(`[data-testid=measurement-chart][data-key=${k}]`)"
        "?.dataset.points ?? '0'",
        key,
    )
    return int(found)


def test_the_detail_panel_charts_readings_that_grow_while_the_simulator_runs(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    page = browser_page
    mrid = f"fe{hub_stack.tag}-meter"
    name = f"Meter {hub_stack.tag}"
    hub_stack.publish(
        [
            network.event(
                mrid,
                "GasMeasurement",
                1,
                {
                    "IdentifiedObject.name": name,
                    "GasMeasurement.pressure": 52.0,
                    "GasMeasurement.flow": 120.0,
                },
                label=PUBLIC,
            )
        ]
    )
    deadline = time.monotonic() + 120
    while hub_stack.gql("query($m: ID!) { object(mrid: $m) { mrid } }", {"m": mrid})["object"] is None:
        assert time.monotonic() < deadline, "the worker did not write the meter"
        time.sleep(0.5)

    ui.sign_in(page, hub_stack.base_url, "hub.admin")
    ui.search_and_open(page, mrid, mrid)
    # No reading kept yet: no charts.
    assert page.locator('[data-testid="detail-measurements"]').is_hidden()

    version, step = 1, 0

    def simulate(until: Any, timeout_s: float = 90) -> None:
        """A reading a second until ``until()`` holds."""
        nonlocal version, step
        stop = time.monotonic() + timeout_s
        while not until():
            assert time.monotonic() < stop, "the chart did not grow"
            version += 1
            step += 1
            hub_stack.publish([_reading(mrid, version, step)])
            time.sleep(1.0)

    simulate(lambda: _points(page, "pressure") >= 3)
    first = _points(page, "pressure")
    simulate(lambda: _points(page, "pressure") >= first + 4)
    grown = _points(page, "pressure")
    assert grown >= first + 4

    # Both measured attributes, each with its unit, the latest reading as the chart's headline.
    charts = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid=measurement-chart]')].map(c => ({
              key: c.dataset.key, last: c.querySelector('[data-testid=measurement-last]').textContent,
              line: c.querySelector('polyline.series').getAttribute('points').split(' ').length }))"""
    )
    by_key = {c["key"]: c for c in charts}
    assert set(by_key) == {"pressure", "flow"}, charts
    assert by_key["pressure"]["last"].endswith(" bar") and by_key["flow"]["last"].endswith(" 1000m3/h")
    assert by_key["pressure"]["line"] >= grown
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator('[data-testid="detail-measurements"]').scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "measurement-chart.png"))
