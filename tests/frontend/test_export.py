"""Export of the current view: MicroGrid's substations and lines, published through Kafka and the worker and
loaded into the page, saved as CSV (every object in view with its attributes, as the API gives them), as
GeoJSON (the objects with a WGS84 geometry, in Belgium and the Netherlands; the others only counted) and
as PNG (the map's canvas layers in one picture). Each file is downloaded from Chromium and parsed here."""

from __future__ import annotations

import csv
import io
import json
import re
import struct
import time
import zlib
from pathlib import Path
from typing import Any

from tests.microgrid import microgrid_events

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "frontend"
PUBLIC = "classification=PUBLIC"
BENELUX = (2.5, 7.3, 49.5, 53.6)
FIXED = ["mrid", "class", "domain", "name", "label"]
# The moment of export in the file name: hub-view-2026-12-06_18-42-07Z.csv
NAME = r"hub-view-\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}Z\."


def inside(box: tuple[float, float, float, float], lon: float, lat: float) -> bool:
    return box[0] <= lon <= box[1] and box[2] <= lat <= box[3]


def _wait_written(hub_stack: Any, mrids: list[str], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    for mrid in mrids:
        while hub_stack.gql("query($m: ID!) { object(mrid: $m) { mrid } }", {"m": mrid})["object"] is None:
            assert time.monotonic() < deadline, f"the worker did not write {mrid} within {timeout_s} s"
            time.sleep(0.5)


def _load_class(page: Any, cls: str, mrids: set[str]) -> None:
    page.click(f'[data-testid="load-class-{cls}"]')
    page.wait_for_function(
        "ms => ms.every(m => window.__hub.graph.hasNode(m))", arg=sorted(mrids), timeout=60_000
    )
    page.wait_for_selector('[data-testid="progress"]', state="hidden", timeout=60_000)


def _download(page: Any, button: str, ext: str, timeout_s: float = 120) -> tuple[str, bytes]:
    """Clicks an export button and returns the suggested file name and the bytes Chromium saved."""
    with page.expect_download(timeout=timeout_s * 1000) as info:
        page.click(f'[data-testid="{button}"]')
    download = info.value
    assert download.failure() is None, download.failure()
    name = download.suggested_filename
    assert re.fullmatch(NAME + re.escape(ext), name), name
    return name, Path(download.path()).read_bytes()


def _cell(value: Any) -> str:
    """How the API's JSON value of an attribute reads in the CSV."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _png_pixels(data: bytes) -> tuple[int, int, set[bytes], list[bytearray]]:
    """Decodes an 8-bit RGB(A) PNG (what a canvas encodes): width, height, a sample of its colours, rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    pos, idat, ihdr = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in chunk {kind!r}"
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 4 if colour == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    assert len(raw) == height * (stride + 1)
    prev = bytearray(stride)
    colours: set[bytes] = set()
    rows: list[bytearray] = []
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        if y % 4 == 0:  # every fourth row and column is plenty to tell a picture from a blank
            for x in range(0, width, 4):
                colours.add(bytes(line[x * bpp : x * bpp + 3]))
        prev = line
        rows.append(line)
    return width, height, colours, [bytearray(b for i, b in enumerate(r) if i % bpp < 3) for r in rows]


def _near(a: bytes | bytearray, b: bytes, tolerance: int = 24) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def test_export_csv_geojson_and_png_of_microgrid(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    page = browser_page
    prefix = f"fe{hub_stack.tag}-mgx-"
    events = microgrid_events("fe-test", prefix, PUBLIC)
    hub_stack.publish(events)
    by = {(e.class_, e.attributes.get("IdentifiedObject.name")): str(e.subject) for e in events}
    brussels = by[("Substation", "PP_Brussels")]
    subs = {str(e.subject) for e in events if e.class_ == "Substation"}
    lines = {str(e.subject) for e in events if e.class_ == "ACLineSegment"}
    dop = next(str(e.subject) for e in events if e.class_ == "DiagramObjectPoint")
    # A substation whose name needs quoting in CSV and is not ASCII; it has no location.
    odd_name = 'Écluse "Nord", Gent\nveld 2'
    odd = f"{prefix}odd-substation"
    hub_stack.publish(
        [network.event(odd, "Substation", 1, {"IdentifiedObject.name": odd_name}, label=PUBLIC)]
    )
    last = {e.class_: str(e.subject) for e in events}
    _wait_written(hub_stack, [*last.values(), *subs, *lines, odd])

    ui.sign_in(page, hub_stack.base_url, "hub.admin")
    # Nothing on the canvas: the page says so in a sentence and saves nothing.
    page.click('[data-testid="export-csv"]')
    toast = page.locator('[data-testid="toast"].error', has_text="Nothing to export")
    toast.wait_for(timeout=10_000)
    assert "no object is in view" in (toast.text_content() or "")
    _load_class(page, "Substation", subs | {odd})
    _load_class(page, "ACLineSegment", lines)
    ui.search_and_open(page, dop, dop)  # a diagram-layout point: schematic x/y, no geography
    ui.wait_for_nodes(page, {dop})
    on_screen = ui.graph_nodes(page)
    # No filter hides anything: the view is every object on the canvas, as the count on the left says.
    page.wait_for_function(
        "n => document.querySelector('[data-testid=screen-count]').dataset.shown === String(n)",
        arg=len(on_screen),
    )

    # CSV: one row per object in view, the attributes as columns, values as the API gives them.
    _, data = _download(page, "export-csv", "csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    header, body = rows[0], rows[1:]
    assert header[:5] == FIXED
    keys = {h.split(" [")[0]: i for i, h in enumerate(header)}
    assert "IdentifiedObject.name" in keys and len(header) > len(FIXED) + 3, header
    assert len(body) == len(on_screen) and {r[0] for r in body} == on_screen
    assert all(len(r) == len(header) for r in body)
    by_row = {r[0]: r for r in body}
    assert by_row[odd][1:4] == ["Substation", "ELECTRICITY", odd_name]
    api = hub_stack.gql(
        "query($m: ID!) { object(mrid: $m) { className domain name label attributes { qname value unit } } }",
        {"m": brussels},
    )["object"]
    row = by_row[brussels]
    assert row[1:5] == [api["className"], api["domain"], api["name"], api["label"]]
    assert api["attributes"], api
    for a in api["attributes"]:
        cell = row[keys[a["qname"]]]
        if isinstance(a["value"], float):
            assert float(cell) == a["value"], (a, cell)
        else:
            assert cell == _cell(a["value"]), (a, cell)
    for a in api["attributes"]:
        if a["unit"]:
            assert f"{a['qname']} [{a['unit']}]" in header
    page.wait_for_selector('[data-testid="toast"]:has-text("Saved")')
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "export-csv.png"))

    # PNG of the topology: sigma's WebGL nodes are in the picture, each at its place on screen.
    page.wait_for_function("() => !window.__hub.app.view.forceRunning", timeout=30_000)
    time.sleep(0.8)  # the camera settles
    marks = page.evaluate(
        """() => {
             const s = window.__hub.sigma, out = [], r = window.devicePixelRatio || 1;
             window.__hub.graph.forEachNode((n) => {
               const d = s.getNodeDisplayData(n);
               if (!d || d.hidden || d.type !== 'circle') return;
               const p = s.framedGraphToViewport(d);
               out.push([Math.round(p.x * r), Math.round(p.y * r), d.color]);
             });
             return out;
           }"""
    )
    _, data = _download(page, "export-png", "png")
    width, height, colours, pixels = _png_pixels(data)
    assert width > 0 and height > 0 and len(colours) > 5, (width, height, len(colours))
    inside_png = [(x, y, c) for x, y, c in marks if 0 <= x < width and 0 <= y < height]
    assert len(inside_png) >= 10, marks
    hits = sum(
        _near(pixels[y][3 * x : 3 * x + 3], bytes.fromhex(c.lstrip("#")[:6])) for x, y, c in inside_png
    )
    # Nodes may overlap one another: most, not all, show their own colour at their centre.
    assert hits >= 0.7 * len(inside_png), (hits, len(inside_png))
    page.screenshot(path=str(ARTIFACTS / "export-topology-png.png"))
    (ARTIFACTS / "export-topology-view.png").write_bytes(data)

    # The view is what the filters leave: with lines hidden, the CSV holds no line.
    page.uncheck('[data-testid="filter-class-ACLineSegment"]')
    shown = page.evaluate("() => window.__hub.graph.filterNodes((n, a) => a.className !== 'ACLineSegment')")
    _, data = _download(page, "export-csv", "csv")
    body = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))[1:]
    assert {r[0] for r in body} == set(shown) and len(body) == len(shown) < len(on_screen)
    assert all(r[1] != "ACLineSegment" for r in body)
    page.check('[data-testid="filter-class-ACLineSegment"]')

    # GeoJSON, from the map: every object in view with a WGS84 geometry, the others counted, never placed.
    page.click('[data-testid="layout-geo"]')
    page.wait_for_selector('[data-testid="stage"][data-layout="geo"]')
    page.wait_for_function("() => window.__hub.app.view.basemap.loaded > 0", timeout=20_000)
    time.sleep(1.5)  # the nodes animate to their places
    geometries = page.evaluate(
        "() => { const o = {}; window.__hub.graph.forEachNode((n, a) => { o[n] = a.geometry; }); return o; }"
    )
    positioned = {m for m, g in geometries.items() if g is not None}
    _, data = _download(page, "export-geojson", "geojson")
    fc = json.loads(data.decode("utf-8"))
    assert fc["type"] == "FeatureCollection"
    features = fc["features"]
    assert {f["id"] for f in features} == positioned and len(features) == len(positioned)
    assert (
        fc["objectsWithoutGeometry"] == len(on_screen) - len(positioned) >= 2
    )  # the odd substation, the point
    ids = {f["properties"]["mrid"] for f in features}
    assert dop not in ids and odd not in ids
    assert lines <= ids and brussels in ids
    for f in features:
        assert f["type"] == "Feature"
        assert set(f["properties"]) == {"mrid", "class", "name", "label", "domain"}
        g = f["geometry"]
        points = [g["coordinates"]] if g["type"] == "Point" else g["coordinates"]
        assert g["type"] in ("Point", "LineString") and points, g
        assert all(len(p) == 2 and all(isinstance(v, (int, float)) for v in p) for p in points), g
        if f["id"].startswith(prefix):
            assert all(inside(BENELUX, lon, lat) for lon, lat in points), f
        if f["id"] in lines:
            assert g["type"] == "LineString" and len(points) >= 2, f
    b = next(f for f in features if f["id"] == brussels)
    assert b["properties"] == {
        "mrid": brussels,
        "class": "Substation",
        "name": "PP_Brussels",
        "label": api["label"],
        "domain": "ELECTRICITY",
    }
    page.screenshot(path=str(ARTIFACTS / "export-geojson.png"))

    # PNG of the map: the outlines, the lines' geometry and the nodes composited into one picture.
    _, data = _download(page, "export-png", "png")
    width, height, colours, _ = _png_pixels(data)
    canvas = page.evaluate(
        "() => { const c = document.querySelector('[data-testid=basemap]'); return [c.width, c.height]; }"
    )
    assert [width, height] == canvas and width > 0 and height > 0
    assert len(colours) > 20, f"the picture has only {len(colours)} colours"
    # The basemap's land fill and the map's sea (the stage's background) are in the picture.
    assert bytes.fromhex("eef2f0") in colours and bytes.fromhex("dde9f3") in colours
    page.screenshot(path=str(ARTIFACTS / "export-png.png"))
    (ARTIFACTS / "export-view.png").write_bytes(data)
    assert not page.errors
