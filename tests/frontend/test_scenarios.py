"""A scenario in the explorer, end to end in headless Chromium against the real API, worker, Kafka and Neo4j
(fixtures in conftest.py): the picker lists the scenario, choosing it shows the view in the scenario with
what it adds, removes and changes marked and a legend, the detail panel lists a changed object's values in
the base and in the scenario, a path asked there is the scenario's (to the pipe only it holds), and "Live"
brings the live view back unmarked."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "frontend"

PUBLIC = "classification=PUBLIC"
PRODUCER = "fe-test"  # the frontend stack's producer (conftest.PRODUCER_ID)

CREATE = """mutation($n: String!, $l: String!, $p: [String!]!) {
  createScenario(name: $n, label: $l, producers: $p) { id } }"""
COMPARE = """query($s: String!) { compare(scenario: $s, first: 50) { changes { mrid change } } }"""


def _in(scenario: str, event: dict[str, Any]) -> dict[str, Any]:
    """The event, written into the scenario instead of the live graph."""
    return {**event, "scenario": scenario}


def _deleted(event: dict[str, Any]) -> dict[str, Any]:
    """The event as a delete of its object."""
    return {**event, "type": "delete", "attributes": {}, "references": {}}


def _mark(page: Any, mrid: str) -> Any:
    return page.evaluate(
        """m => window.__hub.graph.hasNode(m)
          ? (window.__hub.graph.getNodeAttribute(m, 'scenarioChange') ?? null) : 'absent'""",
        mrid,
    )


def _colour(page: Any, mrid: str) -> str:
    return str(page.evaluate("m => window.__hub.graph.getNodeAttribute(m, 'color')", mrid))


def test_a_scenario_picked_in_the_page_marks_what_it_adds_removes_and_changes(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    page = browser_page
    tag = network.tag
    node, far, kept, changed, removed, added = (
        f"fe{tag}-sc-{n}" for n in ("node", "far", "kept", "changed", "removed", "added")
    )
    name = f"Scenario node {tag}"
    ends = {"GasConnection.FromNode": node, "GasConnection.ToNode": far}

    def pipe(mrid: str, version: int, title: str, length: float) -> dict[str, Any]:
        attrs = {"IdentifiedObject.name": title, "GasPipe.length": length}
        return network.event(mrid, "GasPipe", version, attrs, ends, label=PUBLIC)

    hub_stack.publish(
        [
            network.event(
                node,
                "GasNode",
                1,
                {"IdentifiedObject.name": name, "GasNode.longitude": 8.0, "GasNode.latitude": 51.0},
                label=PUBLIC,
            ),
            network.event(
                far,
                "GasNode",
                1,
                {
                    "IdentifiedObject.name": f"Scenario far {tag}",
                    "GasNode.longitude": 8.4,
                    "GasNode.latitude": 51.3,
                },
                label=PUBLIC,
            ),
            pipe(kept, 1, f"Kept pipe {tag}", 5.0),
            pipe(changed, 1, f"Old pipe {tag}", 10.0),
            pipe(removed, 1, f"Doomed pipe {tag}", 20.0),
        ]
    )
    deadline = time.monotonic() + 60
    query = "query($m: ID!) { object(mrid: $m) { version } }"
    while any(hub_stack.gql(query, {"m": m})["object"] is None for m in (node, far, kept, changed, removed)):
        assert time.monotonic() < deadline, "the worker did not write the live objects"
        time.sleep(0.5)

    scenario = hub_stack.gql(CREATE, {"n": f"Reinforcement {tag}", "l": PUBLIC, "p": [PRODUCER]})[
        "createScenario"
    ]["id"]
    hub_stack.publish(
        [
            _in(scenario, pipe(changed, 2, f"Uprated pipe {tag}", 12.5)),
            _in(scenario, pipe(added, 1, f"New pipe {tag}", 7.0)),
            _in(scenario, _deleted(pipe(removed, 2, f"Doomed pipe {tag}", 20.0))),
        ]
    )
    want = {changed: "updated", added: "created", removed: "deleted"}
    deadline = time.monotonic() + 60
    while True:
        got = {c["mrid"]: c["change"] for c in hub_stack.gql(COMPARE, {"s": scenario})["compare"]["changes"]}
        if got == want:
            break
        assert time.monotonic() < deadline, f"the worker did not write the scenario: compare says {got}"
        time.sleep(0.5)
    # The live graph is untouched.
    assert hub_stack.gql(query, {"m": added})["object"] is None

    ui.sign_in(page, hub_stack.base_url, "grid.planner")
    # Expanded: the node and its pipes (the far node is a hop further).
    ui.open_and_expand(page, name, node, {node, kept, changed, removed})
    picker = '[data-testid="scenario-picker"]'
    page.wait_for_selector(f'{picker} option[value="{scenario}"]', state="attached", timeout=20_000)
    assert page.eval_on_selector(picker, "el => el.value") == ""
    assert page.eval_on_selector(picker, "el => el.options[0].textContent") == "Live"
    assert page.is_hidden('[data-testid="scenario-legend"]')
    assert {m: _mark(page, m) for m in (changed, removed, added)} == {
        changed: None,
        removed: None,
        added: "absent",
    }
    live_colour = _colour(page, changed)
    page.wait_for_timeout(1000)  # let the layout settle for the picture
    page.screenshot(path=str(ARTIFACTS / "scenario-picker.png"))

    # Picking the scenario: the new pipe appears, each difference is marked, the rest is as it was.
    page.select_option(picker, scenario)
    page.wait_for_function(
        """m => window.__hub.graph.hasNode(m)
          && window.__hub.graph.getNodeAttribute(m, 'scenarioChange') === 'created'""",
        arg=added,
        timeout=40_000,
    )
    marks = {m: _mark(page, m) for m in (node, kept, changed, removed, added)}
    assert marks == {
        node: None,
        kept: None,
        changed: "updated",
        removed: "deleted",
        added: "created",
    }
    colours = {m: _colour(page, m) for m in (node, kept, added, removed, changed)}
    slate = "#94a3b8"
    assert colours == {node: slate, kept: slate, added: "#16a34a", removed: "#cbd5e1", changed: "#f59e0b"}
    # The removed pipe is drawn hollow, from the base, with its relationship to the node.
    assert page.evaluate("p => window.__hub.graph.getNodeAttribute(p, 'type')", removed) == "ring"
    assert page.evaluate("([a, b]) => window.__hub.graph.areNeighbors(a, b)", [removed, node])
    assert (
        page.evaluate("p => window.__hub.graph.getNodeAttribute(p, 'label')", changed)
        == f"Uprated pipe {tag}"
    )
    assert page.is_disabled('[data-testid="time-slider"]')
    legend = page.eval_on_selector_all(
        '[data-testid="scenario-legend-item"]',
        """els => els.map(e => [
          e.dataset.change, e.querySelector('.cls').textContent, e.querySelector('.n').textContent])""",
    )
    assert legend == [["created", "Added", "1"], ["deleted", "Removed", "1"], ["updated", "Changed", "1"]]
    assert page.text_content('[data-testid="scenario-legend-unchanged"]') == "As in the base"

    # The changed pipe's values in the base and in the scenario.
    page.evaluate("p => window.__hub.app.select(p)", changed)
    page.wait_for_selector('[data-testid="scenario-diff"][data-change="updated"]', timeout=40_000)
    rows = page.eval_on_selector_all(
        '[data-testid="scenario-diff-row"]',
        """els => els.map(e => [
          e.querySelector('[data-testid=scenario-diff-before]').textContent,
          e.querySelector('[data-testid=scenario-diff-after]').textContent,
        ])""",
    )
    assert [f"Old pipe {tag}", f"Uprated pipe {tag}"] in rows
    assert len(rows) == 2 and any(r[0].startswith("10") and r[1].startswith("12.5") for r in rows), rows
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "scenario-compare.png"))

    # A path asked in the scenario goes through it: to the pipe that only the scenario holds (the live
    # graph has no such object, so no path to it), and the request names the scenario.
    asked: list[dict[str, Any]] = []

    def record(request: Any) -> None:
        body = request.post_data if request.method == "POST" else None
        if body and '"ShortestPath"' in body:
            asked.append(json.loads(body))

    def open_detail(mrid: str) -> None:
        page.evaluate("p => window.__hub.app.select(p)", mrid)
        page.wait_for_function(
            "m => document.querySelector('[data-testid=detail-mrid]')?.textContent === m",
            arg=mrid,
            timeout=40_000,
        )

    page.on("request", record)
    open_detail(node)
    page.click('[data-testid="action-path-from"]')
    open_detail(added)
    page.click('[data-testid="action-path-to"]')
    page.wait_for_selector('[data-testid="path-tool"][data-result]', timeout=40_000)
    assert page.get_attribute('[data-testid="path-tool"]', "data-result") == "1"
    assert set(page.evaluate("() => [...window.__hub.app.view.highlightNodes]")) == {node, added}
    assert [a["variables"]["scenario"] for a in asked] == [scenario], asked
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "scenario-path.png"))
    page.remove_listener("request", record)
    page.evaluate("() => window.__hub.app.clearHighlight()")

    # "Live": the scenario's new pipe goes, the removed one is an ordinary object again, nothing is marked.
    page.select_option(picker, "")
    page.wait_for_function("m => !window.__hub.graph.hasNode(m)", arg=added, timeout=40_000)
    marks = {m: _mark(page, m) for m in (changed, removed, added)}
    assert marks == {changed: None, removed: None, added: "absent"}
    assert _colour(page, changed) == live_colour and _colour(page, node) != slate
    assert page.evaluate("p => window.__hub.graph.getNodeAttribute(p, 'type')", removed) != "ring"
    assert page.evaluate("p => window.__hub.graph.getNodeAttribute(p, 'label')", changed) == f"Old pipe {tag}"
    assert page.is_hidden('[data-testid="scenario-legend"]')
    assert page.is_enabled('[data-testid="time-slider"]')
    assert not page.errors
