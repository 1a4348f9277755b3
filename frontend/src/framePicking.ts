// Sigma finds the object under the pointer by drawing every object a second time, each in a colour of its
// own, into an off-screen picture ("picking"), in every frame. While the camera moves (a drag, a wheel zoom,
// an animation, a script moving it) nobody hovers or clicks an object, so that second drawing is skipped
// then; shortly after the camera stops one more frame is drawn with it. With software WebGL the picking pass
// is a large part of a frame's cost.

import type Sigma from "sigma";

// What the picking pass hangs on: a program's off-screen program (sigma.js 3, rendering/program.ts), alone
// or inside a compound program.
interface PickCarrier {
  pickProgram?: unknown;
  programs?: PickCarrier[];
}

const SETTLE_MS = 150;

export class FramePicking {
  private readonly sigma: Sigma;
  private readonly parked = new Map<PickCarrier, unknown>();
  private settleTimer: number | undefined;
  private lastCamera: { x: number; y: number; ratio: number; angle: number } | null = null;
  /** Frames drawn without the picking pass (for tests and tooling). */
  skipped = 0;

  constructor(sigma: Sigma) {
    this.sigma = sigma;
    sigma.on("beforeRender", () => this.beforeRender());
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

  private restore(): void {
    for (const [p, pick] of this.parked) p.pickProgram = pick;
    this.parked.clear();
  }

  /** After the camera stopped: one more frame with the picking pass, if the last one lacked it. */
  private settle(): void {
    if (this.parked.size === 0) return;
    if (this.sigma.getCamera().isAnimated() || this.mouseMoving()) {
      this.settleTimer = window.setTimeout(() => this.settle(), SETTLE_MS);
      return;
    }
    this.sigma.scheduleRender();
  }
}
