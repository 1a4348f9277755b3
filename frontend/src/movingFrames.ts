// What a frame draws while the camera moves (a drag, a wheel zoom, an animation, a script moving it).
//
// Sigma finds the object under the pointer by drawing every object a second time, each in a colour of its
// own, into an off-screen picture ("picking"), in every frame. While the camera moves nobody hovers or clicks
// an object, so that second drawing is skipped then; shortly after the camera stops one more frame is drawn
// with it. And while sigma itself leaves edges and names out (hideEdgesOnMove, hideLabelsOnMove: a drag, a
// wheel zoom, an animation), the canvases that would hold them (edges, names, hovered and selected objects)
// are taken out of the page's layers, so that the browser does not compose empty pictures in every frame.
// With software WebGL both are a large part of a frame's cost. Meanwhile the object under the pointer is not
// looked up either (the hovered object stays as it was): the picking picture is not drawn then, the picture
// on screen may be the last one moved (cameraSnapshot.ts), and reading the picking picture back waits for any
// drawing under way.

import type Sigma from "sigma";

// What the picking pass hangs on: a program's off-screen program (sigma.js 3, rendering/program.ts), alone
// or inside a compound program.
interface PickCarrier {
  pickProgram?: unknown;
  programs?: PickCarrier[];
}

// Sigma's lookup of the object under the pointer (a read of the picking picture), and the hovered object.
interface Picking {
  getNodeAtPosition(position: { x: number; y: number }): string | null;
  hoveredNode: string | null;
}

const SETTLE_MS = 150;
// Sigma's canvases that hold edges, and names with hovered and selected objects.
const EDGE_LAYERS = ["edges"] as const;
const LABEL_LAYERS = ["labels", "hovers", "hoverNodes"] as const;

export class MovingFrames {
  private readonly sigma: Sigma;
  private readonly parked = new Map<PickCarrier, unknown>();
  private settleTimer: number | undefined;
  private lastCamera: { x: number; y: number; ratio: number; angle: number } | null = null;
  /** Frames drawn without the picking pass (for tests and tooling). */
  skipped = 0;
  /** Whether the camera still moves by a measure of another module (cameraSnapshot.ts: a camera move not
   * drawn yet); the frame with the picking pass waits for it too. */
  stillMoving: () => boolean = () => false;

  constructor(sigma: Sigma) {
    this.sigma = sigma;
    sigma.on("beforeRender", () => this.beforeRender());
    const picking = sigma as unknown as Picking;
    const lookUp = picking.getNodeAtPosition.bind(sigma);
    picking.getNodeAtPosition = (position) =>
      this.parked.size > 0 || this.stillMoving() ? picking.hoveredNode : lookUp(position);
  }

  /** Whether the camera is moving: as sigma itself decides for hideEdgesOnMove (a drag, a wheel zoom, an
   * animation), or moved since the last frame however it was moved (a script setting it frame by frame). */
  private moving(): boolean {
    const camera = this.sigma.getCamera();
    const { x, y, ratio, angle } = camera.getState();
    const last = this.lastCamera;
    const moved = last !== null && (last.x !== x || last.y !== y || last.ratio !== ratio || last.angle !== angle);
    return moved || camera.isAnimated() || this.mouseMoving();
  }

  private mouseMoving(): boolean {
    const mouse = this.sigma.getMouseCaptor();
    return mouse.isMoving || mouse.draggedEvents > 0 || mouse.currentWheelDirection !== 0;
  }

  private carriers(): PickCarrier[] {
    const programs = (this.sigma as unknown as { nodePrograms?: Record<string, PickCarrier> }).nodePrograms ?? {};
    const out: PickCarrier[] = [];
    const add = (p: PickCarrier) => {
      if (p.programs) p.programs.forEach(add);
      else if ("pickProgram" in p) out.push(p);
    };
    Object.values(programs).forEach(add);
    return out;
  }

  private beforeRender(): void {
    const moving = this.moving();
    this.lastCamera = this.sigma.getCamera().getState();
    // As sigma decides whether to leave edges and names out of this frame.
    const sigmaMoving = this.sigma.getCamera().isAnimated() || this.mouseMoving();
    this.showLayers(EDGE_LAYERS, !(sigmaMoving && this.sigma.getSetting("hideEdgesOnMove")));
    this.showLayers(LABEL_LAYERS, !(sigmaMoving && this.sigma.getSetting("hideLabelsOnMove")));
    if (moving) {
      for (const p of this.carriers()) {
        if (p.pickProgram) {
          this.parked.set(p, p.pickProgram);
          p.pickProgram = null;
        }
      }
      this.skipped++;
      window.clearTimeout(this.settleTimer);
      this.settleTimer = window.setTimeout(() => this.settle(), SETTLE_MS);
    } else {
      this.restore();
    }
  }

  private showLayers(layers: readonly string[], shown: boolean): void {
    const canvases = this.sigma.getCanvases();
    for (const id of layers) {
      const canvas = canvases[id];
      if (canvas && canvas.hidden === shown) canvas.hidden = !shown;
    }
  }

  private restore(): void {
    for (const [p, pick] of this.parked) p.pickProgram = pick;
    this.parked.clear();
  }

  /** After the camera stopped: one more frame with the picking pass, if the last one lacked it. */
  private settle(): void {
    if (this.parked.size === 0) return;
    if (this.sigma.getCamera().isAnimated() || this.mouseMoving() || this.stillMoving()) {
      this.settleTimer = window.setTimeout(() => this.settle(), SETTLE_MS);
      return;
    }
    this.sigma.scheduleRender();
  }
}
