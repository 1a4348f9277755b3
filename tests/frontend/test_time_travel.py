"""The explorer at a past time, end to end in headless Chromium against the real API, worker, Kafka and
Neo4j (fixtures in conftest.py): the time slider shows the view as it was before an update, "Now" brings
the current view back, and the detail panel lists the object's kept versions with what each changed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "frontend"

PUBLIC = "classification=PUBLIC"


def _at(event: dict[str, Any], moment: datetime) -> dict[str, Any]:
    """The event, stating when it holds from (its valid time)."""
    return {**event, "time": moment.isoformat()}


def _slide_to(page: Any, moment: datetime) -> None:
    """Moves the slider as a user drags it (input events), to ``moment`` (to the minute)."""
    page.eval_on_selector(
        '[data-testid="time-slider"]',
        """(el, at) => { el.value = String(at); el.dispatchEvent(new Event("input", { bubbles: true })); }""",
        int(moment.timestamp()) // 60 * 60,
    )


def test_the_time_slider_shows_the_view_before_an_update_and_the_panel_lists_the_history(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    page = browser_page
    tag = network.tag
    node, far, pipe1, pipe2 = (f"fe{tag}-tt-{n}" for n in ("node", "far", "pipe1", "pipe2"))
    now = datetime.now(UTC)
    first, update = now - timedelta(hours=3), now - timedelta(hours=1)
    name = f"Time node {tag}"
    hub_stack.publish(
        [
            _at(
                network.event(
                    node,
                    "GasNode",
                    1,
                    {
                        "IdentifiedObject.name": name,
                        "GasNode.longitude": 7.0,
                        "GasNode.latitude": 52.0,
                        "GasNode.pressureMax": 70.0,
                    },
                    label=PUBLIC,
                ),
                first,
            ),
            _at(
                network.event(
                    far,
                    "GasNode",
                    1,
                    {
                        "IdentifiedObject.name": f"Time far {tag}",
                        "GasNode.longitude": 7.5,
                        "GasNode.latitude": 52.5,
                    },
                    label=PUBLIC,
                ),
                first,
            ),
            _at(
                network.event(
                    pipe1,
                    "GasPipe",
                    1,
                    {"IdentifiedObject.name": f"Time pipe {tag}", "GasPipe.length": 10.0},
                    {"GasConnection.FromNode": node, "GasConnection.ToNode": far},
                    label=PUBLIC,
                ),
                first,
            ),
            # An hour ago: the pipe renamed and lengthened, and a second pipe laid from the node.
            _at(
                network.event(
                    pipe1,
                    "GasPipe",
                    2,
                    {"IdentifiedObject.name": f"Time pipe renamed {tag}", "GasPipe.length": 12.5},
                    label=PUBLIC,
                ),
                update,
            ),
            _at(
                network.event(
                    pipe2,
                    "GasPipe",
                    1,
                    {"IdentifiedObject.name": f"Time pipe two {tag}"},
                    {"GasConnection.FromNode": node, "GasConnection.ToNode": far},
                    label=PUBLIC,
                ),
                update,
            ),
        ]
    )
    deadline = time.monotonic() + 60
    query = "query($m: ID!, $p: ID!) { object(mrid: $m) { version } pipe: object(mrid: $p) { version } }"
    while True:
        got = hub_stack.gql(query, {"m": pipe2, "p": pipe1})
        if got["object"] is not None and (got["pipe"] or {}).get("version") == 2:
            break
        assert time.monotonic() < deadline, "the worker did not write the time-travel test objects"
        time.sleep(0.5)

    ui.sign_in(page, hub_stack.base_url, "grid.planner")
    ui.open_and_expand(page, name, node, {node, pipe1, pipe2})
    now_view = ui.graph_nodes(page)
    assert {node, pipe1, pipe2} <= now_view
    assert page.text_content('[data-testid="time-label"]') == "now"

    # Half way between the first versions and the update: the second pipe did not exist yet.
    _slide_to(page, update - timedelta(minutes=30))
    page.wait_for_function("p => !window.__hub.graph.hasNode(p)", arg=pipe2, timeout=40_000)
    then = ui.graph_nodes(page)
    assert {node, pipe1} <= then and pipe2 not in then
    assert page.get_attribute('[data-testid="time-label"]', "data-iso")
    # The pipe carries the name it had then.
    assert page.evaluate("p => window.__hub.graph.getNodeAttribute(p, 'label')", pipe1) == f"Time pipe {tag}"
    assert page.is_enabled('[data-testid="time-now"]')
    page.wait_for_timeout(1500)  # let the layout settle for the picture
    page.screenshot(path=str(ARTIFACTS / "time-slider.png"))

    # Before anything of the test existed: the view is empty.
    _slide_to(page, first - timedelta(minutes=30))
    page.wait_for_function("n => !window.__hub.graph.hasNode(n)", arg=node, timeout=40_000)

    # "Now" brings back everything that was on screen, as it is now.
    page.click('[data-testid="time-now"]')
    ui.wait_for_nodes(page, {node, pipe1, pipe2})
    assert ui.graph_nodes(page) == now_view
    assert page.text_content('[data-testid="time-label"]') == "now"
    assert (
        page.evaluate("p => window.__hub.graph.getNodeAttribute(p, 'label')", pipe1)
        == f"Time pipe renamed {tag}"
    )

    # The pipe's history: both versions, newest first, with when each held and what it changed.
    page.evaluate("p => window.__hub.app.select(p)", pipe1)
    page.wait_for_selector('[data-testid="history-version"][data-version="1"]', timeout=40_000)
    rows = page.eval_on_selector_all(
        '[data-testid="history-version"]',
        """els => els.map(e => ({
          version: e.dataset.version,
          effect: e.dataset.inEffect,
          validFrom: e.querySelector('[data-testid=history-valid-from]').dataset.iso,
          changed: e.querySelector('[data-testid=history-changed]').textContent,
        }))""",
    )
    assert [r["version"] for r in rows] == ["2", "1"]
    assert [r["effect"] for r in rows] == ["true", "false"]
    assert datetime.fromisoformat(rows[0]["validFrom"]) == update.replace(
        microsecond=update.microsecond // 1000 * 1000
    )
    assert rows[0]["changed"] == "changed length, name"
    assert rows[1]["changed"] == "created"
    page.screenshot(path=str(ARTIFACTS / "object-history.png"))
    assert not page.errors
