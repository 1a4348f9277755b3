"""End-to-end tests of the planners' graph explorer in headless Chromium against the real API, worker,
Kafka and Neo4j (fixtures in conftest.py)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any


def _suggestions(page: Any, text: str) -> set[str]:
    page.fill('[data-testid="search-input"]', text)
    page.wait_for_selector(
        '[data-testid="search-suggestion"], [data-testid="search-no-results"]', timeout=20_000
    )
    # The list is replaced when the answer for the full text arrives; wait until it settles.
    time.sleep(0.6)
    return set(
        page.eval_on_selector_all('[data-testid="search-suggestion"]', "els => els.map(e => e.dataset.mrid)")
    )


def test_clearances_see_different_graphs(browser_page: Any, hub_stack: Any, network: Any, ui: Any) -> None:
    page = browser_page
    m = network.mrids

    ui.sign_in(page, hub_stack.base_url, "public.analyst")
    assert page.text_content('[data-testid="user-clearance"]') == "PUBLIC"
    public_hits = _suggestions(page, network.tag)
    ui.open_and_expand(page, network.names["emden"], m["emden"], {m["emden"], m["pipe1"]})
    time.sleep(1)
    public_graph = ui.graph_nodes(page)
    page.screenshot(path=str(hub_stack.logs["api"].parent / "clearance-public.png"))

    page.click('[data-testid="sign-out"]')
    page.wait_for_selector('[data-testid="demo-user"][data-user="hub.admin"]')
    page.click('[data-testid="demo-user"][data-user="hub.admin"]')
    page.wait_for_selector('[data-testid="sign-in-dialog"]', state="hidden")
    assert page.text_content('[data-testid="user-clearance"]') == "SECRET"
    admin_hits = _suggestions(page, network.tag)
    ui.open_and_expand(page, network.names["emden"], m["emden"], {m["emden"], m["pipe1"], m["pipe2"]})
    time.sleep(1)
    admin_graph = ui.graph_nodes(page)

    # Same search, different answers: the SECRET objects exist only for the cleared caller.
    assert m["werne"] not in public_hits and m["pipe2"] not in public_hits
    assert {m["emden"], m["aachen"], m["pipe1"]} <= public_hits
    assert {m["emden"], m["aachen"], m["werne"], m["pipe1"], m["pipe2"]} <= admin_hits
    # Same expansion, different graphs.
    assert public_graph == {m["emden"], m["pipe1"]}
    assert admin_graph == {m["emden"], m["pipe1"], m["pipe2"]}
    assert not page.errors


def test_search_open_expand_shows_attributes(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    page = browser_page
    m = network.mrids
    ui.sign_in(page, hub_stack.base_url, "grid.planner")
    ui.search_and_open(page, network.names["pipe1"], m["pipe1"])
    assert page.text_content('[data-testid="detail-class"]') == "GasPipe"
    assert page.text_content('[data-testid="detail-name"]') == network.names["pipe1"]
    assert page.text_content('[data-testid="detail-label"]').strip() == "classification=PUBLIC"
    assert page.text_content('[data-testid="detail-producer"]') == "fe-test"
    assert page.text_content('[data-testid="detail-version"]') == "1"

    page.click('[data-testid="action-expand"]')
    ui.wait_for_nodes(page, {m["pipe1"], m["emden"], m["aachen"]})

    length = page.locator('[data-testid="attr-length"]')
    assert length.locator('[data-testid="attr-value"]').text_content() == "52.3"
    assert length.locator('[data-testid="attr-unit"]').text_content() == "km"
    diameter = page.locator('[data-testid="attr-diameter"]')
    assert diameter.locator('[data-testid="attr-value"]').text_content() == "900"
    assert diameter.locator('[data-testid="attr-unit"]').text_content() == "mm"

    # The associations are links; following one opens the node at the other end.
    page.wait_for_selector(f'[data-testid="assoc-link"][data-mrid="{m["aachen"]}"]')
    page.click(f'[data-testid="assoc-link"][data-mrid="{m["aachen"]}"]')
    page.wait_for_function(
        "m => document.querySelector('[data-testid=detail-mrid]')?.textContent === m", arg=m["aachen"]
    )
    assert page.locator('[data-testid="attr-pressureMax"] [data-testid="attr-unit"]').text_content() == "bar"
    assert page.locator('[data-testid="attr-pressureMax"] [data-testid="attr-value"]').text_content() == "70"
    # The legend lists what is on screen, by class.
    legend = set(
        page.eval_on_selector_all('[data-testid="legend-item"]', "els => els.map(e => e.dataset.class)")
    )
    assert {"GasPipe", "GasNode"} <= legend
    # ... and what the lines' and the live flash's colours mean.
    kinds = page.eval_on_selector_all('[data-testid="edge-key"]', "els => els.map(e => e.dataset.kind)")
    assert kinds == ["relationship", "highlight", "changed"]
    assert not page.errors


def test_kafka_event_appears_live(browser_page: Any, hub_stack: Any, network: Any, ui: Any) -> None:
    page = browser_page
    m = network.mrids
    tag = network.tag
    # Objects of this test only, so the shared network stays as the other tests expect it.
    live_node, old_pipe, new_pipe = f"fe{tag}-live-node", f"fe{tag}-live-pipe1", f"fe{tag}-live-pipe2"
    public = "classification=PUBLIC"
    hub_stack.publish(
        [
            network.event(
                live_node,
                "GasNode",
                1,
                {"IdentifiedObject.name": f"Live node {tag}", "GasNode.pressureMax": 60.0},
                label=public,
            ),
            network.event(
                old_pipe,
                "GasPipe",
                1,
                {"IdentifiedObject.name": f"Live pipe one {tag}"},
                {"GasConnection.FromNode": live_node, "GasConnection.ToNode": m["emden"]},
                label=public,
            ),
        ]
    )
    deadline = time.monotonic() + 60
    query = "query($m: ID!) { object(mrid: $m) { version } }"
    while hub_stack.gql(query, {"m": old_pipe})["object"] is None:
        assert time.monotonic() < deadline, "the worker did not write the live test objects"
        time.sleep(0.5)

    ui.sign_in(page, hub_stack.base_url, "grid.planner")
    ui.open_and_expand(page, f"Live node {tag}", live_node, {live_node, old_pipe})
    page.wait_for_selector('[data-testid="live-status"][data-state="live"]', timeout=20_000)
    time.sleep(1.5)  # let the page subscribe to what it now shows

    new_name = f"Live node renamed {tag}"
    published = time.monotonic()
    hub_stack.publish(
        [
            network.event(
                live_node,
                "GasNode",
                2,
                {"IdentifiedObject.name": new_name, "GasNode.pressureMax": 61.5},
                label=public,
            ),
            network.event(
                new_pipe,
                "GasPipe",
                1,
                {"IdentifiedObject.name": f"Live pipe two {tag}", "GasPipe.length": 9.5},
                {"GasConnection.FromNode": live_node, "GasConnection.ToNode": m["aachen"]},
                label=public,
            ),
        ]
    )
    # The changed object updates in place, in the detail panel and on the canvas.
    page.wait_for_function(
        "n => document.querySelector('[data-testid=detail-name]')?.textContent === n",
        arg=new_name,
        timeout=15_000,
    )
    seen_after = time.monotonic() - published
    assert page.evaluate("m => window.__hub.graph.getNodeAttribute(m, 'label')", live_node) == new_name
    assert (
        page.locator('[data-testid="attr-pressureMax"] [data-testid="attr-value"]').text_content() == "61.5"
    )
    assert page.text_content('[data-testid="detail-version"]') == "2"
    # The new neighbour of the expanded object appears.
    ui.wait_for_nodes(page, {new_pipe}, timeout_s=15)
    assert seen_after < 15
    assert page.evaluate("() => window.__hub.app.live.received") >= 1
    assert not page.errors


def test_geographic_layout_places_objects_by_coordinates(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    page = browser_page
    m = network.mrids
    ui.sign_in(page, hub_stack.base_url, "hub.admin")
    ui.open_and_expand(page, network.names["emden"], m["emden"], {m["pipe1"], m["pipe2"]})
    ui.search_and_open(page, network.names["aachen"], m["aachen"])
    ui.search_and_open(page, network.names["werne"], m["werne"])
    ui.wait_for_nodes(page, {m["emden"], m["aachen"], m["werne"]})

    page.click('[data-testid="layout-geo"]')
    page.wait_for_selector('[data-testid="stage"][data-layout="geo"]')
    time.sleep(1.5)  # the nodes animate to their places
    page.wait_for_function("() => window.__hub.app.view.basemap.loaded > 0", timeout=20_000)

    pos = page.evaluate(
        """ms => Object.fromEntries(ms.map(m => {
             const s = window.__hub.sigma;
             const d = s.getNodeDisplayData(m);
             return [m, s.framedGraphToViewport(d)];
           }))""",
        [m["emden"], m["aachen"], m["werne"]],
    )
    e, a, w = pos[m["emden"]], pos[m["aachen"]], pos[m["werne"]]
    # North is up: Emden (53.4 N) above Werne (51.7 N) above Aachen (50.8 N).
    assert e["y"] < w["y"] < a["y"]
    # East is right: Aachen (6.1 E) left of Emden (7.2 E) left of Werne (7.6 E).
    assert a["x"] < e["x"] < w["x"]
    # Distances keep their proportions (same scale on both axes, Mercator stretch within a few %).
    dx_px = w["x"] - a["x"]
    dy_px = a["y"] - e["y"]
    lon_span = network.points["werne"][0] - network.points["aachen"][0]
    lat_span = network.points["emden"][1] - network.points["aachen"][1]
    merc = math.log(math.tan(math.pi / 4 + math.radians(network.points["emden"][1]) / 2)) - math.log(
        math.tan(math.pi / 4 + math.radians(network.points["aachen"][1]) / 2)
    )
    expected_ratio = math.radians(lon_span) / merc
    assert abs((dx_px / dy_px) / expected_ratio - 1) < 0.05, (dx_px, dy_px, lat_span)
    # Every placed node is inside the canvas.
    width, height = page.evaluate(
        "() => [window.__hub.sigma.getDimensions().width, window.__hub.sigma.getDimensions().height]"
    )
    for p in (e, a, w):
        assert 0 <= p["x"] <= width and 0 <= p["y"] <= height
    # The outline map is drawn under the graph.
    painted = page.evaluate(
        """() => {
             const c = document.querySelector('[data-testid="basemap"]');
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let n = 0; for (let i = 3; i < d.length; i += 4 * 7) if (d[i] > 0) n++;
             return n;
           }"""
    )
    assert painted > 1000
    assert not page.errors


def test_dependency_and_shortest_path(browser_page: Any, hub_stack: Any, network: Any, ui: Any) -> None:
    page = browser_page
    m = network.mrids
    ui.sign_in(page, hub_stack.base_url, "hub.admin")
    ui.search_and_open(page, network.names["offtake"], m["offtake"])
    page.click('[data-testid="action-dependencies"]')
    page.wait_for_selector('[data-testid="deps-list"]', timeout=20_000)
    deps = set(page.eval_on_selector_all('[data-testid="deps-link"]', "els => els.map(e => e.dataset.mrid)"))
    assert m["unit"] in deps
    assert "451" in page.text_content('[data-testid="deps-capacity"]')

    ui.search_and_open(page, network.names["werne"], m["werne"])
    page.click('[data-testid="action-path-from"]')
    ui.search_and_open(page, network.names["aachen"], m["aachen"])
    page.click('[data-testid="action-path-to"]')
    page.wait_for_selector('[data-testid="path-tool"][data-result]', timeout=20_000)
    steps = int(page.get_attribute('[data-testid="path-tool"]', "data-result") or "-1")
    # Werne -pipe2- Emden -pipe1- Aachen: four relationships.
    assert steps == 4
    highlighted = set(page.evaluate("() => [...window.__hub.app.view.highlightNodes]"))
    assert {m["werne"], m["pipe2"], m["emden"], m["pipe1"], m["aachen"]} == highlighted
    assert not page.errors


def test_expired_token_and_unreachable_api_are_explained(browser_page: Any, hub_stack: Any) -> None:
    page = browser_page
    page.goto(hub_stack.base_url)
    page.wait_for_selector('[data-testid="sign-in-dialog"]')
    page.fill('[data-testid="token-input"]', "not-a-valid-token")
    page.click('[data-testid="sign-in-submit"]')
    page.wait_for_selector('[data-testid="sign-in-error"]:not([hidden])', timeout=20_000)
    assert "token" in (page.text_content('[data-testid="sign-in-error"]') or "").lower()
    assert page.is_visible('[data-testid="sign-in-dialog"]')

    # With the API gone the page says so instead of going blank.
    page.route("**/graphql", lambda route: route.abort("connectionrefused"))
    page.click('[data-testid="demo-user"][data-user="grid.planner"]')
    page.wait_for_selector('[data-testid="sign-in-error"]:not([hidden])')
    text = (page.text_content('[data-testid="sign-in-error"]') or "").lower()
    assert "cannot be reached" in text
    assert page.is_visible('[data-testid="topbar"]')


def test_two_relationships_between_one_pair_are_both_drawn(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    """A pipe that leaves and returns to one node (a bypass loop) joins that pair twice: both edges show."""
    page = browser_page
    loop, name = f"fe{network.tag}-loop", f"Bypass loop {network.tag}"
    node = network.mrids["aachen"]
    hub_stack.publish(
        [
            network.event(
                loop,
                "GasPipe",
                1,
                {"IdentifiedObject.name": name, "GasPipe.length": 0.4},
                {"GasConnection.FromNode": node, "GasConnection.ToNode": node},
                label="classification=PUBLIC",
            )
        ]
    )
    deadline = time.monotonic() + 60
    while hub_stack.gql("query($m: ID!) { object(mrid: $m) { mrid } }", {"m": loop})["object"] is None:
        assert time.monotonic() < deadline, "the worker did not write the loop within 60 s"
        time.sleep(0.5)
    ui.sign_in(page, hub_stack.base_url, "grid.planner")
    # A relationship alone between its two objects is drawn straight.
    ui.open_and_expand(page, network.names["pipe1"], network.mrids["pipe1"], {network.mrids["pipe1"], node})
    single = page.evaluate(
        """m => window.__hub.graph.outEdges(m).map(e => {
             const x = window.__hub.graph.getEdgeAttributes(e); return [x.type, x.curvature]; })""",
        network.mrids["pipe1"],
    )
    assert single and all(s == ["arrow", 0] for s in single), single
    ui.open_and_expand(page, name, loop, {loop, node})
    page.wait_for_function(
        "([a, b]) => window.__hub.graph.directedEdges(a, b).length === 2", arg=[loop, node], timeout=20_000
    )
    drawn = page.evaluate(
        """([a, b]) => window.__hub.graph.directedEdges(a, b).map(e => {
             const x = window.__hub.graph.getEdgeAttributes(e);
             return [x.relType, x.type, x.curvature]; })""",
        [loop, node],
    )
    assert len({r for r, _, _ in drawn}) == 2, drawn  # the pipe's two ends: FromNode and ToNode
    assert all(t == "curvedArrow" for _, t, _ in drawn)
    assert len({c for _, _, c in drawn}) == 2, "parallel edges must not lie on top of each other"
    assert not page.errors


def test_a_class_load_asked_for_while_another_loads_is_queued(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    page = browser_page
    m = network.mrids
    ui.sign_in(page, hub_stack.base_url, "hub.admin")
    page.wait_for_selector('[data-testid="load-class-GasNode"]', timeout=20_000)
    page.wait_for_selector('[data-testid="load-class-GasPipe"]', timeout=20_000)
    # Both in one task, so the second click certainly comes while the first class is loading.
    page.evaluate(
        """() => { for (const c of ["GasNode", "GasPipe"])
                     document.querySelector(`[data-testid="load-class-${c}"]`).click(); }"""
    )
    ui.wait_for_nodes(page, {m["emden"], m["aachen"], m["werne"], m["pipe1"], m["pipe2"]}, timeout_s=60)
    assert not page.errors


def test_a_fault_of_the_page_is_told_in_a_sentence_not_a_library_message(
    browser_page: Any, hub_stack: Any, ui: Any
) -> None:
    page = browser_page
    ui.sign_in(page, hub_stack.base_url, "grid.planner")
    # What a library throws (as graphology did for a second edge between one pair) reaches the person
    # as a sentence; the library's words stay in the console.
    page.evaluate(
        "() => window.__hub.app.report(new Error("
        '\'Graph.addDirectedEdgeWithKey: an edge linking "a" to "b" already exists.\'))'
    )
    toast = page.locator('[data-testid="toast"]').last
    toast.wait_for(timeout=10_000)
    text = toast.text_content() or ""
    assert "fault in the page itself" in text and "Graph." not in text, text


def test_the_on_screen_count_follows_the_domain_filter(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    page = browser_page
    m = network.mrids
    ui.sign_in(page, hub_stack.base_url, "grid.planner")
    ui.open_and_expand(page, network.names["pipe1"], m["pipe1"], {m["pipe1"], m["emden"], m["aachen"]})
    count = '[data-testid="screen-count"]'
    total = page.evaluate("() => window.__hub.graph.order")
    page.wait_for_function(f"() => document.querySelector('{count}').dataset.shown === '{total}'")
    assert page.text_content(count) == f"{total} objects"

    page.uncheck('[data-testid="filter-domain-GAS"]')  # everything on screen is gas
    page.wait_for_function(f"() => document.querySelector('{count}').dataset.shown === '0'")
    assert page.text_content(count) == f"0 of {total} objects shown"
    page.check('[data-testid="filter-domain-GAS"]')
    page.wait_for_function(f"() => document.querySelector('{count}').dataset.shown === '{total}'")
    assert not page.errors


def test_objects_carry_their_names_without_a_hover(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    page = browser_page
    m = network.mrids
    ui.sign_in(page, hub_stack.base_url, "grid.planner")
    ui.open_and_expand(page, network.names["pipe1"], m["pipe1"], {m["pipe1"], m["emden"], m["aachen"]})
    page.click('[data-testid="zoom-fit"]')
    page.mouse.move(1, 1)  # away from the canvas: no hovered object
    # sigma's set of the labels it drew in its last frame (the label grid decides which fit).
    page.wait_for_function("() => window.__hub.sigma.displayedNodeLabels.size >= 2", timeout=20_000)
    assert not page.errors


def test_a_physical_path_from_gas_to_a_line_passes_the_offtake_and_no_reference_data(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    """Emden's gas reaches a line through the Aachen offtake, its unit, the unit's machine and their
    terminals; every object also has a Location in one coordinate system, a shorter way that the path
    takes only when asked to follow any relationship."""
    page, m, t = browser_page, network.mrids, network.tag
    ids = {k: f"fe{t}-{k}" for k in ("sm", "t1", "cn", "t2", "line", "loc1", "loc2", "crs")}

    def named(key: str, cls: str, name: str, refs: dict[str, Any] | None = None) -> dict[str, Any]:
        attrs = {"IdentifiedObject.name": f"{name} {t}"}
        return network.event(ids[key], cls, 1, attrs, refs or {}, label="classification=PUBLIC")

    hub_stack.publish(
        [
            named("crs", "CoordinateSystem", "WGS84"),
            named("line", "ACLineSegment", "Line Aachen"),
            named(
                "sm", "SynchronousMachine", "Machine Aachen", {"RotatingMachine.GeneratingUnit": m["unit"]}
            ),
            named("cn", "ConnectivityNode", "Node"),
            *(
                named(
                    term,
                    "Terminal",
                    term,
                    {"Terminal.ConductingEquipment": ids[eq], "Terminal.ConnectivityNode": ids["cn"]},
                )
                for term, eq in (("t1", "sm"), ("t2", "line"))
            ),
            *(
                named(
                    loc,
                    "Location",
                    loc,
                    {"Location.CoordinateSystem": ids["crs"], "Location.PowerSystemResources": [psr]},
                )
                for loc, psr in (("loc1", m["unit"]), ("loc2", ids["line"]))
            ),
        ]
    )
    deadline = time.monotonic() + 60
    for mrid in ids.values():
        while hub_stack.gql("query($m: ID!) { object(mrid: $m) { mrid } }", {"m": mrid})["object"] is None:
            assert time.monotonic() < deadline, f"the worker did not write {mrid} within 60 s"
            time.sleep(0.5)

    def path_to_line() -> set[str]:
        ui.search_and_open(page, network.names["emden"], m["emden"])
        page.click('[data-testid="action-path-from"]')
        ui.search_and_open(page, f"Line Aachen {t}", ids["line"])
        page.click('[data-testid="action-path-to"]')
        page.wait_for_selector('[data-testid="path-tool"][data-result]', timeout=20_000)
        return set(page.evaluate("() => [...window.__hub.app.view.highlightNodes]"))

    ui.sign_in(page, hub_stack.base_url, "grid.planner")
    physical = path_to_line()
    assert physical == {
        m["emden"], m["pipe1"], m["aachen"], m["offtake"], m["unit"],
        ids["sm"], ids["t1"], ids["cn"], ids["t2"], ids["line"],
    }  # fmt: skip
    assert page.get_attribute('[data-testid="path-tool"]', "data-result") == "9"
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts" / "frontend"
    artifacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artifacts / "physical-path.png"))

    page.click('[data-testid="path-clear"]')
    page.check('[data-testid="path-any"]')
    anyway = path_to_line()
    assert {ids["crs"], ids["loc1"], ids["loc2"]} <= anyway
    assert len(anyway) < len(physical)
    assert not page.errors


def test_dependencies_from_a_substation_reach_the_gas_fired_unit_behind_its_compressor(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    """A substation's supply point powers a compressor that moves Emden's gas to Aachen, where the
    offtake supplies the CCGT: the report goes substation -> compressor -> unit, step by step."""
    page, m, t = browser_page, network.mrids, network.tag
    ids = {k: f"fe{t}-dep-{k}" for k in ("sub", "vl", "esp", "cs")}
    names = {
        "sub": f"Substation Emden {t}",
        "vl": f"Emden 110 kV {t}",
        "esp": f"Supply {t}",
        "cs": f"Compressor {t}",
    }

    def publish(key: str, cls: str, refs: dict[str, Any]) -> dict[str, Any]:
        attrs = {"IdentifiedObject.name": names[key]}
        return network.event(ids[key], cls, 1, attrs, refs, label="classification=PUBLIC")

    hub_stack.publish(
        [
            publish("sub", "Substation", {}),
            publish("vl", "VoltageLevel", {"VoltageLevel.Substation": ids["sub"]}),
            publish(
                "cs",
                "GasCompressorStation",
                {"GasConnection.FromNode": m["emden"], "GasConnection.ToNode": m["aachen"]},
            ),
            publish(
                "esp",
                "ElectricitySupplyPoint",
                {
                    "Equipment.EquipmentContainer": ids["vl"],
                    "ElectricitySupplyPoint.GasCompressorStation": ids["cs"],
                },
            ),
        ]
    )
    deadline = time.monotonic() + 60
    for mrid in ids.values():
        while hub_stack.gql("query($m: ID!) { object(mrid: $m) { mrid } }", {"m": mrid})["object"] is None:
            assert time.monotonic() < deadline, f"the worker did not write {mrid} within 60 s"
            time.sleep(0.5)

    ui.sign_in(page, hub_stack.base_url, "grid.planner")
    ui.search_and_open(page, names["sub"], ids["sub"])
    page.click('[data-testid="action-dependencies"]')
    page.wait_for_selector('[data-testid="deps-list"]', timeout=20_000)
    steps = page.eval_on_selector_all('[data-testid="deps-step"]', "els => els.map(e => e.textContent)")
    assert steps == ["Step 1: 1 gas asset", "Step 2: 1 electricity asset, 451 MW at stake"]
    linked = page.eval_on_selector_all('[data-testid="deps-link"]', "els => els.map(e => e.dataset.mrid)")
    assert linked == [ids["cs"], m["unit"]]
    assert "451" in (page.text_content('[data-testid="deps-capacity"]') or "")
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts" / "frontend"
    artifacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artifacts / "dependencies-transitive.png"))

    # The other way: what the unit depends on, back through its offtake and the gas upstream of Aachen
    # to the compressor and the supply point that powers it.
    ui.search_and_open(page, network.names["unit"], m["unit"])
    page.click('[data-testid="action-upstream"]')
    page.wait_for_selector(
        '[data-testid="detail-dependencies"][data-direction="UPSTREAM"] [data-testid="deps-list"]',
        timeout=20_000,
    )
    upstream = page.eval_on_selector_all('[data-testid="deps-link"]', "els => els.map(e => e.dataset.mrid)")
    assert m["offtake"] in upstream and ids["esp"] in upstream, upstream
    assert upstream.index(m["offtake"]) < upstream.index(ids["esp"])
    page.screenshot(path=str(artifacts / "dependencies-upstream.png"))
    assert not page.errors
