"""Rendering figures of the planners' page in Chromium: frames per second while panning and zooming N objects
on screen, and the time to load the objects of one class into the view.

Run ``python -m bench.page_render`` with the front end built (``npm run build`` in ``frontend/``) and Neo4j
and Kafka reachable through the ``HUB_*`` settings (as for the other benchmarks). It starts the API (serving
the built page) as a subprocess on a free port, and drives Debian's Chromium (``/usr/bin/chromium``,
headless, WebGL through the SwiftShader software rasteriser: no GPU) with Playwright.

- Load: ``--load`` ConnectivityNode objects (mRIDs starting ``bench-page-``, replaced on each run, placed on
  a lattice over Europe) are written straight into Neo4j; the page signs in
  as the development user ``hub.admin`` and loads the class from the catalogue. Measured: the time from the
  click until every object is in the view (pages of objects read through the API and drawn), and until the
  edges among them are drawn too (the relationships among the objects on screen, ``relationsAmong``).
- Frames: for each ``--sizes`` N, N objects (and N - 1 edges) are put into the page's graph directly (no
  API: this measures drawing only), fitted to the screen, and the camera pans and zooms continuously for
  ``--seconds``: by script with the page's snapshots off (the camera set in every frame and the graph
  drawn in full in every frame), by script with them on (the last picture moved by a CSS transform, the
  graph redrawn while moving only if drawings are fast: frontend/src/cameraSnapshot.ts), and with the
  mouse as a person pans and zooms (drags and wheel turns, through Playwright). Frames presented are
  counted with ``requestAnimationFrame``, drawings of the graph with sigma's ``afterRender``; the figures
  are both per second over the run, and the slowest second.

Writes ``bench/results/<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from neo4j import GraphDatabase

from hub import count_keys
from hub.graph import ensure_schema
from hub.graph_schema import cypher
from hub.labels import intern
from hub.settings import Settings, get_settings
from ontology.loader import load_ontology

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CHROMIUM = "/usr/bin/chromium"
# As the page's end-to-end tests run it: headless, WebGL through SwiftShader.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]
PREFIX = "bench-page-"
CLASS = "ConnectivityNode"
VIEWPORT = {"width": 1440, "height": 900}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lattice(n: int) -> list[tuple[float, float]]:
    """``n`` positions over western Europe (longitude, latitude), row by row."""
    side = max(1, int(n**0.5))
    return [(-4.0 + 20.0 * (i % side) / side, 43.0 + 12.0 * (i // side) / side) for i in range(n)]


def write_class(settings: Settings, n: int) -> None:
    """``n`` public ConnectivityNodes with positions (replacing the last run's)."""
    ont = load_ontology()
    label_id, expr = intern("classification=PUBLIC")
    rows = [
        {"mrid": f"{PREFIX}{i:06d}", "name": f"Node {i}", "x": x, "y": y}
        for i, (x, y) in enumerate(lattice(n))
    ]
    labels = ":".join(f"`{x}`" for x in ont.neo4j_labels(CLASS))
    driver = GraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password))
    db = settings.neo4j_database
    try:
        ensure_schema(driver, db)
        while True:
            records, _, _ = driver.execute_query(
                "MATCH (n:Entity) WHERE n.mrid STARTS WITH $p WITH n LIMIT 20000 DETACH DELETE n "
                "RETURN count(*) AS c",
                p=PREFIX,
                database_=db,
            )
            if records[0]["c"] == 0:
                break
        driver.execute_query(
            "MERGE (l:SecurityLabel {id: $id}) SET l.expr = $expr", id=label_id, expr=expr, database_=db
        )
        for k in range(0, n, 5000):
            driver.execute_query(
                cypher(
                    f"UNWIND $rows AS r CREATE (n:Entity:{labels} {{mrid: r.mrid}}) SET n.name = r.name, "
                    "n.@class = $cls, n.@domain = $domain, n.@version = 1, n.@owner = 'bench', "
                    "n.@producer = 'bench', n.@updated = datetime(), n.@label = $label, "
                    f"n.@x = r.x, n.@y = r.y SET {count_keys.assignment('n')} {count_keys.listed('n')}"
                ),
                rows=rows[k : k + 5000],
                cls=CLASS,
                domain=ont.domain(CLASS),
                label=label_id,
                database_=db,
            )
    finally:
        driver.close()


class Api:
    """The API as a subprocess serving the built page, in development mode (its demo users sign in)."""

    def __init__(self, settings: Settings) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "HUB_NEO4J_URI": settings.neo4j_uri,
            "HUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HUB_STATE_DIR": str(settings.state_dir),
            "HUB_API_HOST": "127.0.0.1",
            "HUB_API_PORT": str(self.port),
            "HUB_DEV_MODE": "true",
            "HUB_METRICS_PORT": "-1",
            # A shared, busy machine: a page of objects must not be cut off by the default 10 s deadline.
            "HUB_QUERY_TIMEOUT_S": "60",
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "graphql")]),
        }
        self.log = open(Path(tempfile.gettempdir()) / "hub-page-render-api.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from hubql.processes import run; run()"],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 300
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the API exited with code {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=3) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the API did not answer within 300 s; see {self.log.name}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def sign_in(page: Any, url: str) -> None:
    page.goto(url)
    user = '[data-testid="demo-user"][data-user="hub.admin"]'
    page.wait_for_selector(user, timeout=60_000)
    page.click(user)
    page.wait_for_selector('[data-testid="sign-in-dialog"]', state="hidden", timeout=60_000)


# The page's own measures (frontend/src/timing.ts: API requests' wait, body and parse; a class load's inserts
# and first drawing) and the browser's resource timing of each API request, since ``t0``, in milliseconds
# from it. For a request, ``wait`` runs from sending it to the first byte of the answer (on this machine
# the server's time: browser and API share the loopback), ``body`` from there to the last byte.
TIMELINE = """
(t0) => ({
  measures: performance.getEntriesByType("measure")
    .filter((m) => m.name.startsWith("hub:") && m.startTime >= t0)
    .map((m) => ({ name: m.name.slice(4), start: m.startTime - t0, ms: m.duration })),
  requests: performance.getEntriesByType("resource")
    .filter((r) => r.name.endsWith("/graphql") && r.startTime >= t0)
    .map((r) => ({ start: r.startTime - t0, wait: r.responseStart - r.requestStart,
                   body: r.responseEnd - r.responseStart, bytes: r.encodedBodySize,
                   sent_bytes: r.transferSize - r.encodedBodySize })),
})
"""


def _rounded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


def measure_load(page: Any, url: str, n: int) -> dict[str, Any]:
    sign_in(page, url)
    button = f'[data-testid="load-class-{CLASS}"]'
    page.wait_for_selector(button, timeout=60_000)
    # Let the sign-in's own requests (catalogue, counts, live feed) settle, so the load is measured alone.
    page.wait_for_function("() => document.querySelector('[data-testid=\"busy\"]').hidden", timeout=60_000)
    page.wait_for_timeout(1000)
    started = page.evaluate("() => performance.now()")
    page.click(button)
    page.wait_for_function("n => window.__hub.graph.order >= n", arg=n, timeout=300_000, polling=20)
    in_view = page.evaluate("() => performance.now()")
    page.wait_for_selector('[data-testid="progress"]', state="hidden", timeout=300_000)
    connected = page.evaluate("() => performance.now()")
    page.wait_for_timeout(500)  # the last drawing's measure
    timeline = page.evaluate(TIMELINE, started)
    return {
        "objects": n,
        "objects_in_view_s": round((in_view - started) / 1000, 3),
        "with_edges_s": round((connected - started) / 1000, 3),
        "measures": _rounded(timeline["measures"]),
        "requests": _rounded(timeline["requests"]),
    }


INJECT = """
([n, lon0, lat0]) => {
  const app = window.__hub.app;
  app.view.stopForce();
  app.model.graph.clear();
  const side = Math.max(1, Math.floor(Math.sqrt(n)));
  for (let i = 0; i < n; i++) {
    const lon = lon0 + (20 * (i % side)) / side, lat = lat0 + (12 * Math.floor(i / side)) / side;
    app.model.upsertNode({
      mrid: `frame-${i}`, className: "ConnectivityNode", domain: "ELECTRICITY", name: `Node ${i}`,
      label: "classification=PUBLIC", geometry: { type: "Point", coordinates: [lon, lat] }, level: null,
    });
    const g = app.model.graph;
    g.mergeNodeAttributes(`frame-${i}`, { x: i % side, y: Math.floor(i / side), fx: null, fy: null });
    const edge = { source: `frame-${i - 1}`, target: `frame-${i}`, type: "BENCH", key: "bench" };
    if (i > 0) app.model.addEdge(edge);
  }
  app.view.stopForce();
  app.view.refresh();
  app.view.fit();
  return app.model.graph.order;
}
"""

PAN_AND_ZOOM = """
(seconds) => new Promise((done) => {
  const camera = window.__hub.sigma.getCamera();
  const start = performance.now();
  const frames = [];
  window.__benchRenders = 0;
  window.__hub.sigma.on("afterRender", () => window.__benchRenders++);
  function frame(now) {
    const t = (now - start) / 1000;
    frames.push(now);
    // Pan in a circle and zoom in and out (from the whole graph to a quarter of it and back).
    camera.setState({ x: 0.5 + 0.25 * Math.cos(t * 1.3), y: 0.5 + 0.25 * Math.sin(t * 1.3),
                      ratio: Math.pow(2, -1 + Math.cos(t * 0.9)), angle: 0 });
    if (t < seconds) requestAnimationFrame(frame);
    else done(frames);
  }
  requestAnimationFrame(frame);
})
"""


COUNT_FRAMES = """
(seconds) => {
  const start = performance.now();
  window.__benchFrames = [];
  window.__benchRenders = 0;
  window.__hub.sigma.on("afterRender", () => window.__benchRenders++);
  function frame(now) {
    window.__benchFrames.push(now);
    if ((now - start) / 1000 < seconds) requestAnimationFrame(frame);
  }
  requestAnimationFrame(frame);
}
"""


def drag_and_wheel(page: Any, seconds: float) -> list[float]:
    """Pans by dragging the canvas in circles and zooms with the wheel, as a person does, for ``seconds``,
    counting the frames drawn meanwhile; returns their times."""
    page.evaluate(COUNT_FRAMES, seconds)
    cx, cy = VIEWPORT["width"] / 2, VIEWPORT["height"] / 2
    start = time.monotonic()
    step = 0
    page.mouse.move(cx, cy)
    page.mouse.down()
    while time.monotonic() - start < seconds:
        step += 1
        angle = step * 0.3
        page.mouse.move(cx + 150 * math.cos(angle), cy + 150 * math.sin(angle))
        if step % 20 == 0:
            page.mouse.up()
            page.mouse.wheel(0, -300 if (step // 20) % 2 else 300)
            page.mouse.down()
    page.mouse.up()
    page.wait_for_function("s => performance.now() - window.__benchFrames[0] >= s * 1000", arg=seconds)
    frames: list[float] = page.evaluate("() => window.__benchFrames")
    return frames


def measure_frames(
    page: Any, url: str, n: int, seconds: float, mouse: bool = False, snapshots: bool = True
) -> dict[str, Any]:
    sign_in(page, url)
    # Snapshots off: sigma draws the graph in every frame the camera moves (frontend/src/cameraSnapshot.ts).
    page.evaluate("on => { window.__hub.app.view.snapshot.enabled = on; }", snapshots)
    order = page.evaluate(INJECT, [n, -4.0, 43.0])
    page.wait_for_timeout(1000)
    frames: list[float] = drag_and_wheel(page, seconds) if mouse else page.evaluate(PAN_AND_ZOOM, seconds)
    renders: int = page.evaluate("() => window.__benchRenders")
    span = (frames[-1] - frames[0]) / 1000 if len(frames) > 1 else 0.0
    per_second: dict[int, int] = {}
    for f in frames:
        per_second[int((f - frames[0]) // 1000)] = per_second.get(int((f - frames[0]) // 1000), 0) + 1
    whole = [c for s, c in per_second.items() if s < int(span)]
    gaps = [b - a for a, b in itertools.pairwise(frames)]
    by = "mouse" if mouse else "camera"
    return {
        "objects": order,
        "by": by if snapshots else f"{by}-full",
        "edges": max(0, order - 1),
        "seconds": round(span, 2),
        "frames": len(frames),
        "fps": round((len(frames) - 1) / span, 1) if span else 0.0,
        # Frames in which sigma drew the graph (the camera moved): by mouse, not every frame moves it.
        "drawn_per_s": round(renders / span, 1) if span else 0.0,
        "slowest_second_fps": min(whole) if whole else None,
        "longest_frame_ms": round(max(gaps), 1) if gaps else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from devstack.page_build import ensure_page

    settings = get_settings()
    RESULTS.mkdir(parents=True, exist_ok=True)
    ensure_page(REPO / "frontend")
    if args.load:
        write_class(settings, args.load)
    from devstack.services import kafka

    # The API signs in to Kafka as its principal (for the change feed), whose ACLs follow the settings.
    kafka.apply_service_acls(settings)
    api = Api(settings)
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
        },
        "browser": f"{CHROMIUM} {' '.join(CHROMIUM_ARGS)}",
        "viewport": VIEWPORT,
    }
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport=VIEWPORT)
                page = context.new_page()
                result["renderer"] = page.evaluate(
                    """() => { const gl = document.createElement('canvas').getContext('webgl');
                       const x = gl && gl.getExtension('WEBGL_debug_renderer_info');
                       return x ? gl.getParameter(x.UNMASKED_RENDERER_WEBGL) : (gl ? 'webgl' : 'none'); }"""
                )
                result["frames"] = []
                for n in args.sizes:
                    for mouse, snapshots in ((False, False), (False, True), (True, True)):
                        frames_page = context.new_page()
                        result["frames"].append(
                            measure_frames(frames_page, api.url, n, args.seconds, mouse, snapshots)
                        )
                        frames_page.close()
                try:
                    if args.load:
                        result["load"] = measure_load(page, api.url, args.load)
                except Exception as exc:  # a busy machine can miss the timeouts; say so in the results
                    result["load"] = {"objects": args.load, "error": f"{type(exc).__name__}: {exc}"[:300]}
            finally:
                browser.close()
    finally:
        api.stop()
    result["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def _before(name: str) -> dict[str, Any] | None:
    """Earlier figures to compare with (``bench/results/<name>.json``), if kept."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _load_steps(load: dict[str, Any]) -> list[str]:
    """The load's timeline: the page's own measures and each API request's wait and size."""
    if not load.get("measures"):
        return []
    lines = [
        "",
        "Where the load's time went (the page's `hub:*` performance measures, milliseconds from the click; "
        "an API request's `answer` is from sending it to the first byte of the answer, which on this "
        "machine, browser and API on the loopback, is the server's time):",
        "",
        "| step | starts at | takes |",
        "|---|---:|---:|",
    ]
    for m in load["measures"]:
        lines.append(f"| `{m['name']}` | {m['start']:,.0f} ms | {m['ms']:,.0f} ms |")
    if load.get("requests"):
        lines += ["", "| API request at | server (wait) | body | answer size |", "|---:|---:|---:|---:|"]
        for r in load["requests"]:
            lines.append(
                f"| {r['start']:,.0f} ms | {r['wait']:,.0f} ms | {r['body']:,.0f} ms | {r['bytes']:,} bytes |"
            )
    return lines


MOVED_BY = {
    "camera-full": "script, no snapshots (camera set every frame: the graph drawn in full in every frame)",
    "camera": "script, snapshots (camera set every frame: last picture moved, graph redrawn while moving "
    "only if a drawing takes under 50 ms)",
    "mouse": "mouse, snapshots (drags and wheel zooms: as by script; in full, edges and names, at rest)",
}
# Rows measured before the page moved its last picture between drawings were script rows drawn in full.
OLD_BY = {"camera-full": "camera", "camera": "", "mouse": "mouse"}


def write_results(result: dict[str, Any], out: str, before_name: str = "page-render-before") -> None:
    (RESULTS / f"{out}.json").write_text(json.dumps(result, indent=2) + "\n")
    load = result.get("load", {"objects": 0, "error": "not asked for (--load 0)"})
    before = _before(before_name)
    old_fps = {(f["objects"], f.get("by", "camera")): f["fps"] for f in before["frames"]} if before else {}
    # Earlier runs with rows without snapshots name their rows as this one does.
    same_rows = any(by == "camera-full" for _, by in old_fps)
    old_load = before.get("load", {}) if before else {}
    lines = [
        "# Page rendering in Chromium",
        "",
        f"Measured {result['when']} by `python -m bench.page_render {result.get('command', '')}`.".replace(
            " `.", "`."
        ),
        "",
        f"Browser: Debian's Chromium, headless, WebGL renderer `{result['renderer']}` (software: no GPU), "
        f"viewport {result['viewport']['width']}x{result['viewport']['height']}.",
        f"Machine: {result['machine']['cpus']} cores, **shared** with other work while this ran "
        f"(load average {result['machine']['load_average_before']} before, "
        f"{result['machine']['load_average_after']} after), so every figure is a floor for this machine.",
    ]
    if before:
        lines.append(
            f"Before: {before['when']} (`bench/results/{before_name}.json`, load average "
            f"{before['machine']['load_average_before']} before, "
            f"{before['machine']['load_average_after']} after)."
        )
    lines += [
        "",
        "## Panning and zooming",
        "",
        "| objects on screen | edges | moved by | frames presented per s (goal) | before | graph drawn per s "
        "| slowest second | longest frame |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for f in result["frames"]:
        goal = "30" if f["objects"] <= 5000 else "10"
        by = f.get("by", "camera")
        was = old_fps.get((f["objects"], by if same_rows else OLD_BY.get(by, by)), "")
        lines.append(
            f"| {f['objects']:,} | {f['edges']:,} | {MOVED_BY[by]} | {f['fps']} ({goal}) | {was} "
            f"| {f.get('drawn_per_s', '')} | {f['slowest_second_fps']} fps | {f['longest_frame_ms']} ms |"
        )
    lines += [
        "",
        "## Loading one class into the view",
        "",
        (
            f"{load['objects']:,} objects of one class ({CLASS}), from the catalogue's button: all in the "
            f"view after **{load['objects_in_view_s']} s** (goal 2 s; before "
            f"{old_load.get('objects_in_view_s', '?')} s), with the edges among them after "
            f"{load['with_edges_s']} s (before {old_load.get('with_edges_s', '?')} s)."
        )
        if "error" not in load
        else f"{load['objects']:,} objects of one class ({CLASS}): not measured, {load['error']}",
        *_load_steps(load),
        "",
        "Goals: 5,000 objects at 30 fps or more, 20,000 at 10 fps or more, 5,000 loaded in 2 s or less. "
        "A GPU would take the drawing off the CPU: with SwiftShader every WebGL draw call (nodes, edges and "
        "the name labels the page keeps legible) is rasterised on the same two cores as the page's scripts, "
        "and here as everything else on the machine, so these figures say little about a planner's desktop. "
        "Most of a frame's cost is not the page's scripts (sigma's render call takes a few milliseconds) "
        "but the WebGL work SwiftShader does after it on the CPU, where drawing objects as instances of one "
        "shape (sigma's programs) costs far more per object than plain lists of triangles: the page draws "
        "sigma's programs unrolled (frontend/src/unrolledPrograms.ts, the same shaders and picture). "
        "While the camera moves (a drag, a wheel zoom, an animation, a script moving it) the page skips "
        "sigma's picking pass (every object drawn a second time off screen to find what is under the "
        "pointer) and draws it again once the camera stops. With snapshots (the page's default, "
        "frontend/src/cameraSnapshot.ts) the page does not draw the graph in every frame while the camera "
        "moves: it moves and scales the last drawn picture with a CSS transform, as web maps do while "
        "dragged; if the last drawing reached the screen within 50 ms it draws the graph anew 250 ms after "
        "it, objects only (edges and names left out, however the camera is moved, a script included), "
        "else not until the camera stops (a slower drawing would hold the page's frames); and it draws in "
        "full, edges and names included, 150 ms after the camera stops. 'Frames presented per s' counts "
        "frames with "
        "requestAnimationFrame (a frame showing the last picture moved counts; moved by the mouse, a "
        "frame without a camera move counts too); 'graph drawn per s' counts sigma's drawings of the "
        "graph. The rows 'no snapshots' turn snapshots off: the camera set by script in every frame, the "
        "graph, edges and names included, is drawn in full in every frame (the figure of earlier rounds). "
        "A class load reads its objects in pages of up to 5,000 with only what drawing them needs "
        "(`ClassPage`), draws them, then reads their places, levels and the relationships among everything "
        "on screen in one request (`PlacesAndRelations`); the query deadline was raised to 60 s for the run.",
        "",
    ]
    (RESULTS / f"{out}.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[5000, 20000], help="none: no frame figures")
    parser.add_argument("--load", type=int, default=5000, help="0: no load figure")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", default="page-render")
    parser.add_argument("--before", default="page-render-before", help="earlier results to compare with")
    args = parser.parse_args()
    result = run(args)
    result["command"] = " ".join(sys.argv[1:])
    write_results(result, args.out, args.before)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
