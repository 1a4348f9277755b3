// Country outlines under the graph in the geographic layout. The outlines ship with the page
// (Natural Earth via the world-atlas package) because no tile server is reachable from the hub's
// networks. They are drawn on a canvas below sigma's layers with the same camera: the map shares
// the graph's coordinate system (projection.ts), so one affine transform per frame places it.

import type Sigma from "sigma";
import { feature } from "topojson-client";
import type { Topology, GeometryCollection } from "topojson-specification";
import type { Feature, Geometry, Position } from "geojson";
import countriesUrl from "world-atlas/countries-50m.json?url";
import { lonLatToMap } from "./projection";
import { fitAndClear } from "./overlayCanvas";

// Europe and its surroundings: the demo networks are in Belgium, the Netherlands and Germany.
const REGION = { minLon: -32, maxLon: 48, minLat: 30, maxLat: 73 };

interface Outline {
  path: Path2D;
  name: string;
  labelAt: { x: number; y: number } | null;
}

let outlinesPromise: Promise<Outline[]> | null = null;

export function loadOutlines(): Promise<Outline[]> {
  outlinesPromise ??= fetch(countriesUrl)
    .then((r) => {
      if (!r.ok) throw new Error(`country outlines: HTTP ${r.status} for ${countriesUrl}`);
      return r.json() as Promise<Topology>;
    })
    .then((topo) => buildOutlines(topo));
  return outlinesPromise;
}

function ringInRegion(ring: Position[]): boolean {
  return ring.some(([lon, lat]) => lon >= REGION.minLon && lon <= REGION.maxLon && lat >= REGION.minLat && lat <= REGION.maxLat);
}

function buildOutlines(topo: Topology): Outline[] {
  const collection = feature(topo, topo.objects.countries as GeometryCollection);
  const out: Outline[] = [];
  for (const f of collection.features as Feature<Geometry, { name?: string }>[]) {
    const polys: Position[][][] =
      f.geometry.type === "Polygon"
        ? [f.geometry.coordinates]
        : f.geometry.type === "MultiPolygon"
          ? f.geometry.coordinates
          : [];
    const path = new Path2D();
    let any = false;
    let best: Position[] | null = null;
    for (const poly of polys) {
      for (const ring of poly) {
        if (!ringInRegion(ring)) continue;
        any = true;
        if (!best || ring.length > best.length) best = ring;
        ring.forEach(([lon, lat], i) => {
          const p = lonLatToMap(lon, lat);
          if (i === 0) path.moveTo(p.x, p.y);
          else path.lineTo(p.x, p.y);
        });
        path.closePath();
      }
    }
    if (!any) continue;
    out.push({ path, name: f.properties?.name ?? "", labelAt: best ? centroid(best) : null });
  }
  return out;
}

function centroid(ring: Position[]): { x: number; y: number } {
  let sx = 0;
  let sy = 0;
  for (const [lon, lat] of ring) {
    const p = lonLatToMap(lon, lat);
    sx += p.x;
    sy += p.y;
  }
  return { x: sx / ring.length, y: sy / ring.length };
}

export class Basemap {
  private readonly sigma: Sigma;
  private readonly canvas: HTMLCanvasElement;
  private readonly ctx: CanvasRenderingContext2D;
  private outlines: Outline[] = [];
  private visible = false;

  constructor(sigma: Sigma) {
    this.sigma = sigma;
    this.canvas = sigma.createCanvas("basemap", { beforeLayer: "edges" });
    this.canvas.dataset.testid = "basemap";
    this.ctx = this.canvas.getContext("2d") as CanvasRenderingContext2D;
    // Hidden, the layer costs nothing per frame (it was cleared when hidden).
    sigma.on("afterRender", () => {
      if (this.visible) this.draw();
    });
    sigma.on("resize", () => this.draw());
  }

  get loaded(): number {
    return this.outlines.length;
  }

  async show(): Promise<void> {
    this.visible = true;
    this.canvas.style.display = "block";
    if (this.outlines.length === 0) this.outlines = await loadOutlines();
    this.draw();
  }

  hide(): void {
    this.visible = false;
    this.canvas.style.display = "none";
  }

  draw(): void {
    const { width, height, ratio } = fitAndClear(this.canvas, this.ctx, this.sigma);
    const ctx = this.ctx;
    if (!this.visible || this.outlines.length === 0) return;
    // graph -> viewport is affine: read it off three points and draw the cached paths through it.
    const o = this.sigma.graphToViewport({ x: 0, y: 0 });
    const ex = this.sigma.graphToViewport({ x: 1, y: 0 });
    const ey = this.sigma.graphToViewport({ x: 0, y: 1 });
    const a = { x: ex.x - o.x, y: ex.y - o.y };
    const b = { x: ey.x - o.x, y: ey.y - o.y };
    const scale = Math.hypot(a.x, a.y);
    if (!isFinite(scale) || scale === 0) return;
    ctx.setTransform(ratio * a.x, ratio * a.y, ratio * b.x, ratio * b.y, ratio * o.x, ratio * o.y);
    ctx.fillStyle = "#eef2f0";
    ctx.strokeStyle = "#9aa5b1";
    ctx.lineWidth = 0.8 / scale;
    ctx.lineJoin = "round";
    for (const outline of this.outlines) {
      ctx.fill(outline.path);
      ctx.stroke(outline.path);
    }
    // Country names, only when zoomed in enough to read them without clutter.
    if (scale > 18) {
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.fillStyle = "#7b8794";
      ctx.font = "600 11px system-ui, sans-serif";
      ctx.textAlign = "center";
      for (const outline of this.outlines) {
        if (!outline.labelAt || !outline.name) continue;
        const p = this.sigma.graphToViewport(outline.labelAt);
        if (p.x < -50 || p.y < -50 || p.x > width + 50 || p.y > height + 50) continue;
        ctx.fillText(outline.name.toUpperCase(), p.x, p.y);
      }
    }
  }
}
