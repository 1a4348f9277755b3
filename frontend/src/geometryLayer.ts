// Lines and pipes drawn as their geometry on the map: a canvas between the country outlines and
// sigma's edges, sharing the graph's coordinate system (projection.ts), redrawn after every render.
// Each object whose geometry is a line string is drawn along its vertices in its level's colour
// (gridStyle.ts); its node stays at the line's centre as the handle to click.

import type Sigma from "sigma";
import type { GraphModel, NodeAttrs } from "./graphModel";
import { UNKNOWN_LEVEL, levelColor } from "./gridStyle";
import { fitAndClear } from "./overlayCanvas";

export class GeometryLayer {
  private readonly sigma: Sigma;
  private readonly model: GraphModel;
  private readonly canvas: HTMLCanvasElement;
  private readonly ctx: CanvasRenderingContext2D;
  private readonly isShown: (a: NodeAttrs) => boolean;
  private visible = false;
  // Objects drawn on the last frame, for tests and tooling.
  drawn = 0;
  emphasised: Set<string> | null = null;

  constructor(sigma: Sigma, model: GraphModel, isShown: (a: NodeAttrs) => boolean) {
    this.sigma = sigma;
    this.model = model;
    this.isShown = isShown;
    this.canvas = sigma.createCanvas("geometry", { beforeLayer: "edges" });
    this.canvas.dataset.testid = "geometry-layer";
    this.ctx = this.canvas.getContext("2d") as CanvasRenderingContext2D;
    // Hidden, the layer costs nothing per frame (it was cleared when hidden).
    sigma.on("afterRender", () => {
      if (this.visible) this.draw();
    });
    sigma.on("resize", () => this.draw());
  }

  show(): void {
    this.visible = true;
    this.canvas.style.display = "block";
    this.draw();
  }

  hide(): void {
    this.visible = false;
    this.drawn = 0;
    this.canvas.style.display = "none";
  }

  draw(): void {
    const { ratio } = fitAndClear(this.canvas, this.ctx, this.sigma);
    const ctx = this.ctx;
    this.drawn = 0;
    if (!this.visible) return;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    this.model.graph.forEachNode((n, a) => {
      if (!a.path || a.path.length < 2 || !this.isShown(a)) return;
      const dim = this.emphasised !== null && !this.emphasised.has(n);
      ctx.strokeStyle = dim ? "#e2e8f0" : (levelColor(a.kv, a.bar) ?? UNKNOWN_LEVEL);
      ctx.lineWidth = a.domain === "GAS" ? 2.5 : 3;
      ctx.beginPath();
      a.path.forEach((p, i) => {
        const v = this.sigma.graphToViewport(p);
        if (i === 0) ctx.moveTo(v.x, v.y);
        else ctx.lineTo(v.x, v.y);
      });
      ctx.stroke();
      this.drawn++;
    });
  }
}
