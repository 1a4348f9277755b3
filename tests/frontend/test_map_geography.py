"""The map draws electricity: MicroGrid's substations and lines, published through Kafka and the worker,
loaded into the page and shown on the map at the WGS84 positions the API derives, lines along their
geometry and coloured by nominal voltage; objects without a position are counted, never guessed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.microgrid import microgrid_events

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "frontend"
PUBLIC = "classification=PUBLIC"
BELGIUM = (2.5, 6.5, 49.5, 51.5)
NETHERLANDS = (3.3, 7.3, 51.0, 53.6)
BENELUX = (2.5, 7.3, 49.5, 53.6)


def inside(box: tuple[float, float, float, float], lon: float, lat: float) -> bool:
    return box[0] <= lon <= box[1] and box[2] <= lat <= box[3]


def _load_class(page: Any, cls: str, mrids: set[str]) -> None:
    button = f'[data-testid="load-class-{cls}"]'
    page.wait_for_selector(button, timeout=30_000)
    page.click(button)
    page.wait_for_function(
        "ms => ms.every(m => window.__hub.graph.hasNode(m))", arg=sorted(mrids), timeout=60_000
    )
    page.wait_for_selector('[data-testid="progress"]', state="hidden", timeout=60_000)


def test_map_shows_microgrid_substations_and_lines_in_belgium_and_the_netherlands(
    browser_page: Any, hub_stack: Any, ui: Any
) -> None:
    page = browser_page
    prefix = f"fe{hub_stack.tag}-mg-"
    events = microgrid_events("fe-test", prefix, PUBLIC)
    hub_stack.publish(events)
    by = {(e.class_, e.attributes.get("IdentifiedObject.name")): str(e.subject) for e in events}
    subs = {name: by[("Substation", name)] for name in ("PP_Brussels", "Anvers", "PP_Amsterdam")}
    lines = {str(e.subject) for e in events if e.class_ == "ACLineSegment"}
    dop = next(str(e.subject) for e in events if e.class_ == "DiagramObjectPoint")
    # Keys spread events over partitions: wait for the last object of every class.
    last = {e.class_: str(e.subject) for e in events}
    deadline = time.monotonic() + 180
    for mrid in [*last.values(), *subs.values(), *lines]:
        while hub_stack.gql("query($m: ID!) { object(mrid: $m) { mrid } }", {"m": mrid})["object"] is None:
            assert time.monotonic() < deadline, f"the worker did not write {mrid} within 180 s"
            time.sleep(0.5)

    ui.sign_in(page, hub_stack.base_url, "hub.admin")
    _load_class(page, "Substation", set(subs.values()))
    _load_class(page, "ACLineSegment", lines)
    # A diagram-layout point: on the canvas, but never on the map.
    ui.search_and_open(page, dop, dop)
    ui.wait_for_nodes(page, {dop})

    page.click('[data-testid="layout-geo"]')
    page.wait_for_selector('[data-testid="stage"][data-layout="geo"]')
    page.wait_for_function("() => window.__hub.app.view.basemap.loaded > 0", timeout=20_000)
    time.sleep(1.5)  # the nodes animate to their places

    nodes = page.evaluate(
        """() => {
             const out = {};
             const s = window.__hub.sigma;
             window.__hub.graph.forEachNode((n, a) => {
               const d = s.getNodeDisplayData(n);
               out[n] = { cls: a.className, lon: a.lon, lat: a.lat, kv: a.kv, path: a.path,
                          geometry: a.geometry, hidden: Boolean(d && d.hidden), color: d ? d.color : null };
             });
             return out;
           }"""
    )
    # MicroGrid's substations sit in their countries, drawn in their voltage's colour.
    for name, box in (("PP_Brussels", BELGIUM), ("Anvers", BELGIUM), ("PP_Amsterdam", NETHERLANDS)):
        n = nodes[subs[name]]
        assert not n["hidden"] and inside(box, n["lon"], n["lat"]), (name, n)
        assert n["kv"] and n["kv"] > 0, (name, n)
    kv_colours = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('[data-testid=map-key-item]')]"
        ".map(e => [e.dataset.band, getComputedStyle(e.querySelector('.line-swatch')).backgroundColor]))"
    )
    assert {"kv-380", "kv-220", "kv-110", "bar-70"} <= set(kv_colours)
    # Every line is a line string through Belgium and the Netherlands, coloured by its voltage.
    for m in lines:
        n = nodes[m]
        assert n["geometry"]["type"] == "LineString", n
        assert all(inside(BENELUX, lon, lat) for lon, lat in n["geometry"]["coordinates"]), n
        assert n["kv"] and len(n["path"]) >= 2 and not n["hidden"], n
    # Everything placed on the map is in Belgium or the Netherlands.
    placed = [n for n in nodes.values() if n["lon"] is not None]
    assert len(placed) >= len(subs) + len(lines)
    assert all(inside(BENELUX, n["lon"], n["lat"]) for n in placed)
    # The diagram point has no geographic position: it is not drawn, and the page says so.
    assert nodes[dop]["lon"] is None and nodes[dop]["hidden"]
    note = page.locator('[data-testid="unplaced-count"]')
    assert note.is_visible()
    unplaced = sum(1 for n in nodes.values() if n["lon"] is None)
    assert int(note.get_attribute("data-count") or "0") == unplaced >= 1
    assert "no geographic position" in (note.text_content() or "")
    # Lines are drawn along their geometry on the map's own layer, and their pixels carry colour.
    drawn = page.evaluate("() => window.__hub.app.view.geometry.drawn")
    assert drawn >= len(lines)
    painted = page.evaluate(
        """() => {
             const c = document.querySelector('[data-testid="geometry-layer"]');
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let n = 0; for (let i = 0; i < d.length; i += 4 * 3) if (d[i + 3] > 0) n++;
             return n;
           }"""
    )
    assert painted > 200
    # The key counts the objects of each voltage band on screen.
    counts = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('[data-testid=map-key-item]')]"
        ".map(e => [e.dataset.band, Number(e.dataset.count)]))"
    )
    assert sum(v for k, v in counts.items() if k.startswith("kv-")) >= len(subs) + len(lines)
    # Names stay on the map without a hover: the label grid draws the substations' names (one per place:
    # other test runs' copies of MicroGrid share the positions).
    page.mouse.move(1, 1)
    page.wait_for_function(
        """names => {
             const g = window.__hub.graph;
             const shown = [...window.__hub.sigma.displayedNodeLabels]
               .map(n => g.getNodeAttribute(n, 'label'));
             return names.every(x => shown.includes(x));
           }""",
        arg=list(subs),
        timeout=20_000,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator('[data-testid="map-key"]').scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "map-geography.png"))
    assert not page.errors


def test_map_draws_pipes_along_their_nodes_coloured_by_pressure(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    """A pipe has no location of its own: the API draws it between its nodes, at the highest pressure of
    the two, and the map colours it and its nodes by pressure tier."""
    page, m = browser_page, network.mrids
    ui.sign_in(page, hub_stack.base_url, "hub.admin")
    ui.open_and_expand(page, network.names["emden"], m["emden"], {m["pipe1"], m["pipe2"]})
    ui.open_and_expand(page, network.names["aachen"], m["aachen"], {m["aachen"], m["offtake"]})
    ui.search_and_open(page, network.names["werne"], m["werne"])
    ui.wait_for_nodes(page, {m["werne"]})
    page.click('[data-testid="layout-geo"]')
    page.wait_for_selector('[data-testid="stage"][data-layout="geo"]')
    time.sleep(1.5)
    got = page.evaluate(
        """ms => Object.fromEntries(ms.map(m => {
             const a = window.__hub.graph.getNodeAttributes(m);
             const d = window.__hub.sigma.getNodeDisplayData(m);
             return [m, { bar: a.bar, geometry: a.geometry, color: d.color, hidden: Boolean(d.hidden) }];
           }))""",
        [m["emden"], m["aachen"], m["pipe1"], m["offtake"]],
    )
    emden, aachen = network.points["emden"], network.points["aachen"]
    pipe = got[m["pipe1"]]
    assert pipe["geometry"] == {"type": "LineString", "coordinates": [list(emden), list(aachen)]}
    assert pipe["bar"] == 84.0  # the higher of its nodes' maximum pressures (84 and 70 bar)
    # The offtake sits at its node.
    assert got[m["offtake"]]["geometry"] == {"type": "Point", "coordinates": [list(aachen)]}
    tier70 = "#78350f"
    assert got[m["emden"]]["color"] == tier70 and got[m["aachen"]]["color"] == tier70
    assert page.evaluate("() => window.__hub.app.view.geometry.drawn") >= 2
    counts = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('[data-testid=map-key-item]')]"
        ".map(e => [e.dataset.band, Number(e.dataset.count)]))"
    )
    assert counts["bar-70"] >= 4
    page.locator('[data-testid="map-key"]').scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "map-gas-pressure.png"))
    assert not page.errors
