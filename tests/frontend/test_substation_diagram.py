"""The substation view: MicroGrid's PP_Amsterdam, published through Kafka and the worker, drawn by the page
as a single-line diagram (voltage levels as bands, buses as busbars, the breaker with its state, the
transformers with their windings' voltages, lines and loads leaving), redrawn when the breaker opens, and
only with what the caller may see."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.microgrid import microgrid_events

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "frontend"
PUBLIC = "classification=PUBLIC"
SECRET = "classification=SECRET"


def _wait_written(hub_stack: Any, mrids: list[str], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    for mrid in mrids:
        while hub_stack.gql("query($m: ID!) { object(mrid: $m) { mrid } }", {"m": mrid})["object"] is None:
            assert time.monotonic() < deadline, f"the worker did not write {mrid} within {timeout_s} s"
            time.sleep(0.5)


def _elements(page: Any) -> list[dict[str, str]]:
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll(
                  '[data-testid=substation-diagram] [data-testid=sld-element]')].map(e => ({...e.dataset}))"""
        )
    )


def test_a_substation_is_drawn_as_a_single_line_diagram_with_live_switch_states(
    browser_page: Any, hub_stack: Any, ui: Any
) -> None:
    page = browser_page
    prefix = f"fe{hub_stack.tag}-sld-"
    events = microgrid_events("fe-test", prefix, PUBLIC)
    by = {(e.class_, e.attributes.get("IdentifiedObject.name")): e for e in events}
    amsterdam = str(by[("Substation", "PP_Amsterdam")].subject)
    breaker = by[("Breaker", "B1")]
    # One of the substation's transformers is labelled SECRET: a caller not cleared for it gets a
    # diagram without it, as if it were not there.
    hidden = by[("PowerTransformer", "NL_TR2_3")]
    events = [e.model_copy(update={"label": SECRET}) if e is hidden else e for e in events]
    hub_stack.publish(events)
    _wait_written(hub_stack, [str(e.subject) for e in events[-20:]] + [amsterdam, str(breaker.subject)])

    ui.sign_in(page, hub_stack.base_url, "hub.admin")
    ui.search_and_open(page, "PP_Amsterdam", amsterdam)
    page.click('[data-testid="action-diagram"]')
    page.wait_for_selector('[data-testid="substation-diagram"] [data-testid="sld"]', timeout=30_000)
    assert page.text_content('[data-testid="sld-title"]') == "PP_Amsterdam: single-line diagram"

    # Voltage levels as bands, highest voltage on top, each with its buses drawn as busbars.
    levels = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=sld-level]')].map(e => Number(e.dataset.kv))"
    )
    assert len(levels) >= 2 and levels == sorted(levels, reverse=True), levels
    assert page.locator('[data-testid="sld-busbar"]').count() >= 2
    elements = _elements(page)
    kinds = {e["kind"] for e in elements}
    assert {"switch", "transformer", "line"} <= kinds, kinds
    # The breaker with its state (MicroGrid's equipment profile has it normally closed).
    sw = next(e for e in elements if e["mrid"] == str(breaker.subject))
    assert sw["class"] == "Breaker" and sw["open"] == "false"
    # Transformers join buses of two levels, each side labelled with its winding's rated voltage.
    transformers = {e["mrid"]: e for e in elements if e["kind"] == "transformer"}
    assert str(hidden.subject) in transformers
    assert all(len(set(t["windings"].split("/"))) >= 2 for t in transformers.values()), transformers

    # Live: the breaker opens, and the diagram redraws it open.
    version = int(breaker.version) + 1
    opened = {
        "id": str(uuid.uuid4()),
        "source": "fe-test",
        "type": "measurement",
        "subject": str(breaker.subject),
        "time": datetime.now(UTC).isoformat(),
        "version": version,
        "class": "Breaker",
        "attributes": {"Switch.open": True},
    }
    hub_stack.publish([opened])
    page.wait_for_selector(
        f'[data-testid="sld-element"][data-mrid="{breaker.subject}"][data-open="true"]', timeout=60_000
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "substation_diagram_breaker_opened.png"))

    # A caller not cleared SECRET: the same substation without the SECRET transformer.
    page.click('[data-testid="sld-close"]')
    page.wait_for_selector('[data-testid="substation-diagram"]', state="hidden")
    page.click('[data-testid="sign-out"]')
    ui.sign_in(page, hub_stack.base_url, "grid.planner")
    ui.search_and_open(page, "PP_Amsterdam", amsterdam)
    page.click('[data-testid="action-diagram"]')
    page.wait_for_selector('[data-testid="substation-diagram"] [data-testid="sld"]', timeout=30_000)
    seen = {e["mrid"] for e in _elements(page)}
    assert str(hidden.subject) not in seen and str(breaker.subject) in seen
    assert str(hidden.subject) not in page.content()
