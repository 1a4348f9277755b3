"""While the camera moves the page moves its last drawn picture and redraws the graph now and then, or, when
a drawing is slow, not at all (frontend/src/cameraSnapshot.ts); once the camera stops the picture is the full
one again."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "frontend"

# Moves the camera by script in every frame for ``seconds`` (a circle and a zoom out and back), ending where
# it started, and notes per frame whether the picture on screen was moved rather than drawn.
MOVE_AND_RETURN = """
(seconds) => new Promise((done) => {
  const sigma = window.__hub.sigma;
  const camera = sigma.getCamera();
  const start = camera.getState();
  const canvases = sigma.getCanvases();
  const t0 = performance.now();
  const snapshot = window.__hub.app.view.snapshot;
  const drawings = snapshot.drawings;
  let movedFrames = 0, edgeLayerHiddenFrames = 0, frames = 0, longFrames = 0, last = t0;
  function frame(now) {
    const t = (now - t0) / 1000;
    frames++;
    // A frame longer than the page's wait for the camera to settle (150 ms, a busy machine) may see a
    // drawing at rest in the middle of the move.
    if (now - last > 140) longFrames++;
    last = now;
    if (canvases.nodes.style.transform !== "") movedFrames++;
    if (canvases.edges.hidden) edgeLayerHiddenFrames++;
    if (t < seconds) {
      const k = Math.sin((Math.PI * t) / seconds);
      camera.setState({ x: start.x + 0.2 * k, y: start.y - 0.1 * k, ratio: start.ratio * (1 + k),
                        angle: start.angle });
      requestAnimationFrame(frame);
    } else {
      const drawingsWhileMoving = snapshot.drawings - drawings;
      camera.setState(start);
      done({ frames, movedFrames, edgeLayerHiddenFrames, drawingsWhileMoving, longFrames });
    }
  }
  requestAnimationFrame(frame);
})
"""

AT_REST = """
() => {
  const sigma = window.__hub.sigma;
  const canvases = sigma.getCanvases();
  return {
    transforms: Object.entries(canvases).filter(([, c]) => c.style.transform !== "").map(([id]) => id),
    edgesHidden: canvases.edges.hidden,
    labelsHidden: canvases.labels.hidden,
    labels: sigma.displayedNodeLabels.size,
    drawings: window.__hub.app.view.snapshot.drawings,
  };
}
"""

# How many pixels of two PNG pictures (base64) have no pixel of nearly the same colour (within 16 in every
# channel) at the same place or one pixel away in the other picture, counted both ways. A drawing placed a
# sub-pixel apart (the hovered node's own layer rounds its position) still matches; an edge, a name or a
# node missing from either picture does not.
PIXELS_DIFFER = """
async ([a, b]) => {
  const pixels = async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    return [ctx.getImageData(0, 0, bitmap.width, bitmap.height).data, bitmap.width, bitmap.height];
  };
  const [[x, w, h], [y, w2, h2]] = [await pixels(a), await pixels(b)];
  if (w !== w2 || h !== h2) return { size: w * h, different: w * h };
  const unmatched = (p, q) => {
    let n = 0;
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        const i = (r * w + c) * 4;
        let found = false;
        for (let dr = -1; dr <= 1 && !found; dr++) {
          for (let dc = -1; dc <= 1 && !found; dc++) {
            const rr = r + dr, cc = c + dc;
            if (rr < 0 || rr >= h || cc < 0 || cc >= w) continue;
            const j = (rr * w + cc) * 4;
            found = Math.max(Math.abs(p[i] - q[j]), Math.abs(p[i + 1] - q[j + 1]),
                             Math.abs(p[i + 2] - q[j + 2])) <= 16;
          }
        }
        if (!found) n++;
      }
    }
    return n;
  };
  return { size: w * h, different: unmatched(x, y) + unmatched(y, x) };
}
"""


def test_the_picture_after_the_camera_stops_is_the_full_one(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    page = browser_page
    m = network.mrids
    ui.sign_in(page, hub_stack.base_url, "hub.admin")
    ui.open_and_expand(page, network.names["emden"], m["emden"], {m["emden"], m["pipe1"], m["pipe2"]})
    page.wait_for_function("() => window.__hub.sigma.displayedNodeLabels.size >= 2", timeout=20_000)
    # Three objects draw fast, and a fast drawing is made in every frame: here every drawing counts as slow
    # but not too slow to be made while the camera moves, and (frames can be slow on a busy machine) the
    # graph is drawn once a second while the camera moves.
    page.evaluate(
        """() => Object.assign(window.__hub.app.view.snapshot,
                               { fastDrawMs: -1, movingDrawMs: 1e9, drawIntervalMs: 1000 })"""
    )
    # The force layout runs for a while after the expansion (and a camera move stops it): the picture to
    # compare with is taken once it has stopped, so that only the camera moves between the two.
    page.wait_for_function("() => !window.__hub.app.view.forceRunning", timeout=20_000)
    time.sleep(1.5)
    graph = page.locator('[data-testid="graph"]')
    before_picture = graph.screenshot()
    before = page.evaluate(AT_REST)
    assert before["transforms"] == [] and not before["edgesHidden"] and not before["labelsHidden"]

    moved_before = page.evaluate("() => window.__hub.app.view.snapshot.moved")
    moving = page.evaluate(MOVE_AND_RETURN, 3)
    assert moving["drawingsWhileMoving"] > 0
    # While it moved, frames showed the last picture moved, not a new drawing of the graph; the drawings
    # made while moving leave edges out.
    assert page.evaluate("() => window.__hub.app.view.snapshot.moved") > moved_before
    assert moving["movedFrames"] > 0
    assert moving["edgeLayerHiddenFrames"] > 0

    # At rest, where it started: every layer back in place and shown, edges and names drawn again, and
    # the picture as it was before the camera moved.
    page.wait_for_function(
        """() => { const c = window.__hub.sigma.getCanvases();
                   return Object.values(c).every((x) => x.style.transform === "") && !c.edges.hidden; }""",
        timeout=10_000,
    )
    time.sleep(1.0)
    after = page.evaluate(AT_REST)
    assert after["transforms"] == []
    assert not after["edgesHidden"] and not after["labelsHidden"]
    assert after["labels"] == before["labels"] >= 2
    assert after["drawings"] > before["drawings"]
    after_picture = graph.screenshot()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "camera-snapshot-before.png").write_bytes(before_picture)
    (ARTIFACTS / "camera-snapshot-after.png").write_bytes(after_picture)
    pictures = [base64.b64encode(p).decode() for p in (before_picture, after_picture)]
    differ = page.evaluate(PIXELS_DIFFER, pictures)
    # The same picture, drawn again by software WebGL: next to nothing may differ (a missing edge alone is
    # some 400 pixels).
    assert differ["size"] > 0
    assert differ["different"] <= differ["size"] * 0.0003, differ
    assert not page.errors


def test_a_slow_drawing_is_not_made_while_the_camera_moves(
    browser_page: Any, hub_stack: Any, network: Any, ui: Any
) -> None:
    """A drawing slower than a few frames would hold the page's frames: while the camera moves, the last
    picture is moved in every frame and the graph is not drawn at all; once it stops, the full picture."""
    page = browser_page
    m = network.mrids
    ui.sign_in(page, hub_stack.base_url, "hub.admin")
    ui.open_and_expand(page, network.names["emden"], m["emden"], {m["emden"], m["pipe1"], m["pipe2"]})
    page.wait_for_function("() => window.__hub.sigma.displayedNodeLabels.size >= 2", timeout=20_000)
    # Every drawing counts as too slow to be made while the camera moves.
    page.evaluate("() => Object.assign(window.__hub.app.view.snapshot, { fastDrawMs: -1, movingDrawMs: -1 })")
    page.wait_for_function("() => !window.__hub.app.view.forceRunning", timeout=20_000)
    time.sleep(1.5)
    before = page.evaluate(AT_REST)
    assert before["transforms"] == [] and not before["edgesHidden"] and not before["labelsHidden"]

    moving = page.evaluate(MOVE_AND_RETURN, 2)
    # No drawing while the camera moves (unless a frame outlasted the wait for the camera to settle): the
    # last picture moved in every frame but the first and last.
    assert moving["drawingsWhileMoving"] <= moving["longFrames"], moving
    assert moving["movedFrames"] >= moving["frames"] - 2 - moving["longFrames"], moving

    page.wait_for_function(
        """() => { const c = window.__hub.sigma.getCanvases();
                   return Object.values(c).every((x) => x.style.transform === "") && !c.edges.hidden; }""",
        timeout=10_000,
    )
    time.sleep(1.0)
    after = page.evaluate(AT_REST)
    assert after["transforms"] == []
    assert not after["edgesHidden"] and not after["labelsHidden"]
    assert after["labels"] == before["labels"] >= 2
    assert after["drawings"] > before["drawings"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator('[data-testid="graph"]').screenshot(path=str(ARTIFACTS / "camera-snapshot-slow-at-rest.png"))
    assert not page.errors
