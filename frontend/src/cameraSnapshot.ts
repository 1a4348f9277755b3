// Panning and zooming over the last drawn picture, as web maps do while a map is dragged.
//
// With software WebGL a full drawing of many thousands of objects takes far longer than a frame. So while
// the camera moves (a drag, a wheel zoom, an animation, a script setting it frame by frame) the page does
// not draw the graph in every frame: it moves and scales the last picture with a CSS transform (from the
// camera the picture was drawn with to the camera now), which costs far less than a drawing. Only drawings
// slower than FAST_DRAW_MS are spared so: with a GPU the graph is drawn in every frame as before. A drawing
// that reaches the screen within MOVING_DRAW_MS is made again while the camera moves, at most every
// DRAW_INTERVAL_MS; a slower one is not made while the camera moves at all, since the page presents no frame
// until a drawing is on screen (a second or more for 20,000 objects with software WebGL): the last picture
// is moved until the camera stops. Once the camera has not moved for SETTLE_MS the graph is drawn in full
// for the camera where it stopped, so the picture at rest is always the full one. While it moves, a border
// the last picture did not cover stays empty until the next drawing.
//
// Sigma draws in the frame after every camera move (its camera listener schedules a render); that listener
// is replaced by this one, which decides per frame whether to draw or to move the last picture.

import type Sigma from "sigma";
import type { CameraState } from "sigma/types";

/** How long after a drawing is on screen the graph is drawn again while the camera keeps moving. */
const DRAW_INTERVAL_MS = 250;
/** A drawing that reaches the screen within this (two frames at 60 Hz: a GPU, or few objects) is cheap:
 * the graph is then drawn in every frame the camera moves, as sigma does, and no picture is moved. */
const FAST_DRAW_MS = 34;
/** A drawing that reaches the screen within this (three frames at 60 Hz) is made again while the camera
 * moves (every DRAW_INTERVAL_MS); a slower one would hold the page's frames for longer, and is made only
 * once the camera stops. */
const MOVING_DRAW_MS = 50;
/** How long the camera must be still before the full drawing at rest. */
const SETTLE_MS = 150;
/** Sigma's layer that receives the pointer: never moved, so that pointer positions stay true. */
const POINTER_LAYER = "mouse";

/** The affine map, as CSS `matrix(a, b, c, d, e, f)`, taking the viewport positions of the picture drawn
 * with camera `from` to where the camera `to` puts them. */
function cssMatrix(sigma: Sigma, from: CameraState, to: CameraState): string {
  const at = (x: number, y: number, cameraState: CameraState) => sigma.framedGraphToViewport({ x, y }, { cameraState });
  const p0 = at(0, 0, from);
  const px = at(1, 0, from);
  const py = at(0, 1, from);
  const q0 = at(0, 0, to);
  const qx = at(1, 0, to);
  const qy = at(0, 1, to);
  // M [u v] = [u' v'] with u, v the picture's images of the two unit vectors, u', v' the camera's now.
  const u = { x: px.x - p0.x, y: px.y - p0.y };
  const v = { x: py.x - p0.x, y: py.y - p0.y };
  const u2 = { x: qx.x - q0.x, y: qx.y - q0.y };
  const v2 = { x: qy.x - q0.x, y: qy.y - q0.y };
  const det = u.x * v.y - v.x * u.y;
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) return "";
  // Inverse of [u v]: 1/det * [[v.y, -v.x], [-u.y, u.x]].
  const a = (u2.x * v.y - v2.x * u.y) / det;
  const b = (u2.y * v.y - v2.y * u.y) / det;
  const c = (-u2.x * v.x + v2.x * u.x) / det;
  const d = (-u2.y * v.x + v2.y * u.x) / det;
  const e = q0.x - (a * p0.x + c * p0.y);
  const f = q0.y - (b * p0.x + d * p0.y);
  return `matrix(${a}, ${b}, ${c}, ${d}, ${e}, ${f})`;
}

export class CameraSnapshot {
  private readonly sigma: Sigma;
  /** Off: sigma draws the graph in every frame the camera moves (as without this module). */
  enabled = true;
  /** Full drawings of the graph, and frames shown by moving the last picture (for tests and tooling). */
  drawings = 0;
  moved = 0;
  /** How long the last drawing took to reach the screen, and the limit under which drawings are cheap. */
  drawMs = 0;
  fastDrawMs = FAST_DRAW_MS;
  movingDrawMs = MOVING_DRAW_MS;
  drawIntervalMs = DRAW_INTERVAL_MS;
  private drawStartedAt = 0;
  private drawnWith: CameraState | null = null;
  private drawnAt = 0;
  private frame = 0;
  private settleTimer: number | undefined;

  constructor(sigma: Sigma) {
    this.sigma = sigma;
    const camera = sigma.getCamera();
    const own = (sigma as unknown as { activeListeners?: { camera?: () => void } }).activeListeners?.camera;
    if (own) camera.removeListener("updated", own);
    camera.on("updated", () => this.onCamera());
    sigma.on("beforeRender", () => {
      this.drawStartedAt = performance.now();
    });
    sigma.on("afterRender", () => {
      this.drawnWith = camera.getState();
      this.drawnAt = Infinity;
      this.drawings++;
      this.place("");
      // With software WebGL most of a drawing's cost comes after sigma's render call (rasterising it): the
      // interval to the next drawing counts from the first frame after it, once that cost is paid.
      requestAnimationFrame((now) => {
        if (this.drawnAt !== Infinity) return;
        this.drawnAt = now;
        this.drawMs = Math.max(0, now - this.drawStartedAt);
      });
    });
  }

  /** Whether the picture on screen is moved from where it was drawn (a full drawing is due). */
  get displaced(): boolean {
    return this.frame !== 0 || this.settleTimer !== undefined;
  }

  private onCamera(): void {
    if (!this.enabled || this.drawnWith === null || this.drawMs <= this.fastDrawMs) {
      this.sigma.scheduleRender();
      return;
    }
    window.clearTimeout(this.settleTimer);
    this.settleTimer = window.setTimeout(() => this.settle(), SETTLE_MS);
    if (this.frame === 0) this.frame = requestAnimationFrame((now) => this.step(now));
  }

  /** The full drawing at rest, once the camera is still: not while a camera move waits for its frame (on a
   * busy machine a frame can take longer than SETTLE_MS), an animation runs or the pointer drags. */
  private settle(): void {
    const mouse = this.sigma.getMouseCaptor();
    if (this.frame !== 0 || this.sigma.getCamera().isAnimated() || mouse.draggedEvents > 0) {
      this.settleTimer = window.setTimeout(() => this.settle(), SETTLE_MS);
      return;
    }
    this.settleTimer = undefined;
    this.sigma.scheduleRender();
  }

  private step(now: number): void {
    this.frame = 0;
    const drawnWith = this.drawnWith;
    const due = now - this.drawnAt >= this.drawIntervalMs && this.drawMs <= this.movingDrawMs;
    if (drawnWith === null || due) {
      this.drawMoving();
      return;
    }
    const matrix = cssMatrix(this.sigma, drawnWith, this.sigma.getCamera().getState());
    if (!matrix) {
      this.drawMoving();
      return;
    }
    this.moved++;
    this.place(matrix);
  }

  /** Draws the graph in this frame (sigma's render, which its public API only schedules for the next) as
   * sigma draws while a person drags: the objects only (hideEdgesOnMove, hideLabelsOnMove), however the
   * camera is moved, a script setting it included. Edges and names come back in the drawing at rest. */
  private drawMoving(): void {
    const mouse = this.sigma.getMouseCaptor();
    const was = mouse.isMoving;
    mouse.isMoving = true;
    try {
      (this.sigma as unknown as { render(): void }).render();
    } finally {
      mouse.isMoving = was;
    }
  }

  /** Moves every layer but the pointer's by `transform` (a CSS transform; "" puts them back). */
  private place(transform: string): void {
    const canvases = this.sigma.getCanvases();
    for (const [id, canvas] of Object.entries(canvases)) {
      if (id === POINTER_LAYER || canvas.style.transform === transform) continue;
      canvas.style.transformOrigin = "0 0";
      canvas.style.transform = transform;
    }
  }
}
