// The canvas: sigma renders the graph model, reducers apply filters and highlights without
// touching the model, and the two layouts (force and geographic) move the same nodes.

import Graph from "graphology";
import Sigma from "sigma";
import {
  EdgeArrowHeadProgram,
  EdgeClampedProgram,
  NodeCircleProgram,
  createEdgeCompoundProgram,
  type EdgeProgramType,
} from "sigma/rendering";
import { animateNodes } from "sigma/utils";
import { NodeSquareProgram } from "@sigma/node-square";
import { createNodeBorderProgram } from "@sigma/node-border";
import { EdgeCurvedArrowProgram } from "@sigma/edge-curve";
import FA2Layout from "graphology-layout-forceatlas2/worker";
import forceAtlas2 from "graphology-layout-forceatlas2";
import type { EdgeAttrs, GraphModel, NodeAttrs } from "./graphModel";
import { Basemap } from "./basemap";
import { MovingFrames } from "./movingFrames";
import { CameraSnapshot } from "./cameraSnapshot";
import { GeometryLayer } from "./geometryLayer";
import { levelColor } from "./gridStyle";
import { lonLatToMap } from "./projection";
import { measure } from "./timing";
import { unrolled } from "./unrolledPrograms";

export type LayoutMode = "force" | "geo";

const DIM_NODE = "#e2e8f0";
const DIM_EDGE = "#f1f5f9";
export const HIGHLIGHT_EDGE = "#f97316";
export const FLASH = "#facc15";
const FLASH_MS = 3000;
// Belgium, the Netherlands and western Germany, in map coordinates (projection.ts).
const DEFAULT_REGION = {
  minX: 2.5,
  maxX: 15,
  minY: lonLatToMap(0, 49.5).y,
  maxY: lonLatToMap(0, 55).y,
};

export interface ViewListener {
  onClickNode(mrid: string, shift: boolean): void;
  onDoubleClickNode(mrid: string): void;
  onClickStage(): void;
  onLayoutState(running: boolean): void;
}

export class GraphView {
  readonly sigma: Sigma<NodeAttrs, EdgeAttrs>;
  readonly basemap: Basemap;
  readonly moving: MovingFrames;
  readonly snapshot: CameraSnapshot;
  readonly geometry: GeometryLayer;
  private readonly model: GraphModel;
  private readonly listener: ViewListener;
  private fa2: FA2Layout | null = null;
  private fa2Timer: number | undefined;
  private flashTimer: number | undefined;
  private focusCache: { focus: string; size: number; edges: Set<string> } | null = null;
  // What sigma watches while the graph changes in bulk (see `bulk`).
  private readonly detached = new Graph<NodeAttrs, EdgeAttrs>();
  mode: LayoutMode = "force";

  hiddenDomains = new Set<string>();
  hiddenClasses = new Set<string>();
  selected: string | null = null;
  hovered: string | null = null;
  pathStart: string | null = null;
  highlightNodes: Set<string> | null = null;
  highlightEdges: Set<string> | null = null;

  constructor(container: HTMLElement, model: GraphModel, listener: ViewListener) {
    this.model = model;
    this.listener = listener;
    const RingProgram = createNodeBorderProgram({
      borders: [
        { size: { value: 0.3 }, color: { attribute: "color" } },
        { size: { fill: true }, color: { value: "#ffffff" } },
      ],
    });
    this.sigma = new Sigma<NodeAttrs, EdgeAttrs>(model.graph, container, {
      // Sigma's programs drawn without instancing (unrolledPrograms.ts): the same picture, many times faster
      // with software WebGL. The arrow is sigma's EdgeArrowProgram (a line and its head) so unrolled.
      nodeProgramClasses: {
        circle: unrolled(NodeCircleProgram),
        square: unrolled(NodeSquareProgram),
        ring: unrolled(RingProgram),
      },
      edgeProgramClasses: {
        arrow: createEdgeCompoundProgram<NodeAttrs, EdgeAttrs>([
          unrolled(EdgeClampedProgram),
          unrolled(EdgeArrowHeadProgram),
        ] as EdgeProgramType<NodeAttrs, EdgeAttrs>[]),
        curvedArrow: unrolled(EdgeCurvedArrowProgram),
      },
      defaultNodeType: "circle",
      defaultEdgeType: "arrow",
      // Every object may carry its name; the label grid (labelDensity per labelGridCellSize) keeps them legible
      // at any zoom, so names do not wait for a hover. Zoomed far out (an object drawn smaller than the
      // threshold, in pixels) no name is drawn: none could be read there, and each costs a text draw.
      labelRenderedSizeThreshold: 4,
      labelDensity: 1,
      // While the camera moves (a drag, a wheel zoom, an animation) only the objects are drawn: edges and
      // names come back in the frame the camera stops, which keeps panning smooth on many thousands.
      hideEdgesOnMove: true,
      hideLabelsOnMove: true,
      labelGridCellSize: 120,
      labelFont: "Inter, system-ui, sans-serif",
      labelSize: 12,
      labelColor: { color: "#1f2933" },
      zIndex: true,
      minCameraRatio: 0.002,
      maxCameraRatio: 20,
      stagePadding: 40,
      nodeReducer: (node, data) => this.reduceNode(node, data),
      edgeReducer: (edge, data) => this.reduceEdge(edge, data),
    });
    this.moving = new MovingFrames(this.sigma as unknown as Sigma);
    this.snapshot = new CameraSnapshot(this.sigma as unknown as Sigma);
    this.moving.stillMoving = () => this.snapshot.displaced;
    // Relationship names are never drawn (sigma's renderEdgeLabels is off): their canvas, cleared in every
    // frame all the same, is left out of the page's layers.
    this.sigma.getCanvases().edgeLabels.style.display = "none";
    this.basemap = new Basemap(this.sigma as unknown as Sigma);
    this.basemap.hide();
    this.geometry = new GeometryLayer(this.sigma as unknown as Sigma, model, (a) => this.isShown(a));
    this.geometry.hide();
    this.sigma.on("clickNode", ({ node, event }) => {
      const original = event.original as MouseEvent;
      this.listener.onClickNode(node, Boolean(original.shiftKey));
    });
    this.sigma.on("doubleClickNode", (event) => {
      const { node } = event;
      event.preventSigmaDefault();
      this.listener.onDoubleClickNode(node);
    });
    this.sigma.on("clickStage", () => this.listener.onClickStage());
    // No layout runs while the person pans or zooms: the layout moves every object on every tick.
    this.sigma.on("downStage", () => this.stopForceForCamera());
    this.sigma.on("wheelStage", () => this.stopForceForCamera());
    this.sigma.on("enterNode", ({ node }) => {
      this.hovered = node;
      container.style.cursor = "pointer";
      this.refreshAround(node);
    });
    this.sigma.on("leaveNode", ({ node }) => {
      this.hovered = null;
      container.style.cursor = "";
      this.refreshAround(node);
    });
  }

  /** After the pointer entered or left an object: re-reads that object and its edges (the hovered object's
   * edges stand out, see reduceEdge), not every object (a second or more for 20,000 with software WebGL),
   * and draws once, in the next frame. */
  private refreshAround(node: string): void {
    const g = this.model.graph;
    if (!g.hasNode(node)) {
      this.sigma.scheduleRefresh();
      return;
    }
    this.sigma.refresh({ partialGraph: { nodes: [node], edges: g.edges(node) }, skipIndexation: true, schedule: true });
  }

  /** Whether an object on the canvas is drawn under the domain and class filters and the layout. */
  isShown(data: NodeAttrs): boolean {
    return this.passesFilters(data) && !(this.mode === "geo" && data.unplaced === true);
  }

  /** Whether the domain and class filters leave an object in the view, whatever the layout. */
  passesFilters(data: NodeAttrs): boolean {
    return !(this.hiddenDomains.has(data.domain) || this.hiddenClasses.has(data.className));
  }

  // The reducers run for every object whenever sigma re-reads the graph (not on camera moves): they
  // return the object's own attributes unless a filter, highlight or selection changes them, and look
  // nothing up in the graph per object.
  private reduceNode(node: string, data: NodeAttrs): Partial<NodeAttrs> & Record<string, unknown> {
    if (!this.isShown(data)) return { ...data, hidden: true };
    const geo = this.mode === "geo";
    const level = geo ? levelColor(data.kv, data.bar) : null;
    const special =
      level !== null ||
      (geo && data.path) ||
      this.highlightNodes !== null ||
      node === this.pathStart ||
      node === this.selected ||
      data.flashUntil > 0;
    if (!special) return data;
    const res: Record<string, unknown> = { ...data };
    if (geo) {
      // On the map an object takes the colour of its voltage or pressure (the map key), where known.
      if (level) res.color = level;
      // Lines and pipes are drawn along their geometry: their marker is a small handle at the centre.
      if (data.path) res.size = Math.max(3, data.size * 0.6);
    }
    if (this.highlightNodes && !this.highlightNodes.has(node)) {
      res.color = DIM_NODE;
      res.label = "";
      res.zIndex = 0;
    } else if (this.highlightNodes) {
      res.forceLabel = true;
      res.zIndex = 2;
      res.size = data.size * 1.3;
    }
    if (node === this.pathStart) {
      res.forceLabel = true;
      res.highlighted = true;
    }
    if (node === this.selected) {
      res.highlighted = true;
      res.forceLabel = true;
      res.size = data.size * 1.6;
      res.zIndex = 3;
    }
    if (data.flashUntil > Date.now()) {
      res.color = FLASH;
      res.size = data.size * 1.9;
      res.forceLabel = true;
      res.zIndex = 4;
    }
    return res;
  }

  /** The edges of the hovered or selected object, found once per object and graph size (not per edge). */
  private focusEdges(): Set<string> | null {
    const focus = this.hovered ?? this.selected;
    const g = this.model.graph;
    if (!focus || !g.hasNode(focus)) return null;
    const c = this.focusCache;
    if (c && c.focus === focus && c.size === g.size) return c.edges;
    const edges = new Set(g.edges(focus));
    this.focusCache = { focus, size: g.size, edges };
    return edges;
  }

  private reduceEdge(edge: string, data: EdgeAttrs): Partial<EdgeAttrs> & Record<string, unknown> {
    if (this.highlightEdges) {
      if (this.highlightEdges.has(edge)) return { ...data, color: HIGHLIGHT_EDGE, size: 3, zIndex: 2 };
      return { ...data, color: DIM_EDGE };
    }
    if (this.selected || this.hovered) {
      if (this.focusEdges()?.has(edge)) return { ...data, color: "#64748b", size: 1.6 };
    }
    return data;
  }

  refresh(): void {
    this.sigma.refresh();
  }

  /**
   * Makes many changes to the graph (`change`), then draws once. Sigma re-reads an object on every event
   * about it, several times for one object added; meanwhile it watches an empty graph instead, and reads
   * the whole graph once afterwards. Nothing is painted in between: both happen in one task.
   */
  bulk<T>(change: () => T): T {
    this.sigma.setGraph(this.detached);
    try {
      return change();
    } finally {
      const drawing = performance.now();
      this.sigma.setGraph(this.model.graph);
      measure("view:draw", drawing);
    }
  }

  /** Re-reads the graph and draws it once, in the next frame, however many changes came before. */
  scheduleRefresh(): void {
    this.sigma.scheduleRefresh();
  }

  flash(mrids: string[]): void {
    const until = Date.now() + FLASH_MS;
    for (const m of mrids) if (this.model.graph.hasNode(m)) this.model.graph.setNodeAttribute(m, "flashUntil", until);
    window.clearTimeout(this.flashTimer);
    this.flashTimer = window.setTimeout(() => this.sigma.refresh({ skipIndexation: true }), FLASH_MS + 50);
  }

  setHighlight(nodes: Iterable<string> | null, edges: Iterable<string> | null): void {
    this.highlightNodes = nodes ? new Set(nodes) : null;
    this.highlightEdges = edges ? new Set(edges) : null;
    this.geometry.emphasised = this.highlightNodes;
    this.sigma.refresh();
    if (this.highlightNodes) this.keepInView();
  }

  /** Centres the camera on an object, zooming in only when the canvas holds many objects. */
  focus(mrid: string): void {
    const d = this.sigma.getNodeDisplayData(mrid);
    if (!d) return;
    const cam = this.sigma.getCamera();
    const p = this.sigma.framedGraphToViewport(d);
    const { width, height } = this.sigma.getDimensions();
    const margin = 40;
    const inView = p.x > margin && p.y > margin && p.x < width - margin && p.y < height - margin;
    if (inView && this.model.graph.order <= 60) return;
    const ratio = this.model.graph.order > 60 ? Math.min(cam.ratio, 0.35) : cam.ratio;
    void cam.animate({ x: d.x, y: d.y, ratio }, { duration: 500 });
  }

  fit(): void {
    void this.sigma.getCamera().animate({ x: 0.5, y: 0.5, ratio: 1, angle: 0 }, { duration: 400 });
  }

  zoom(factor: number): void {
    const cam = this.sigma.getCamera();
    void cam.animate({ ratio: cam.ratio / factor }, { duration: 250 });
  }

  /** Runs ForceAtlas2 in a web worker for a while after the graph changed. */
  runForce(ms = 2500): void {
    if (this.mode !== "force") return;
    const g = this.model.graph;
    if (g.order < 2) {
      this.sigma.refresh();
      return;
    }
    if (!this.fa2) {
      const settings = forceAtlas2.inferSettings(g);
      this.fa2 = new FA2Layout(g, {
        // Strong gravity keeps separate components (say, a gas and an electricity island) in view.
        settings: { ...settings, barnesHutOptimize: g.order > 300, slowDown: 4, strongGravityMode: true, gravity: 0.2, scalingRatio: 10 },
      });
    }
    if (!this.fa2.isRunning()) this.fa2.start();
    this.listener.onLayoutState(true);
    window.clearTimeout(this.fa2Timer);
    const budget = Math.min(8000, ms + g.order * 2);
    this.fa2Timer = window.setTimeout(() => this.stopForce(), budget);
  }

  private stopForceForCamera(): void {
    if (this.fa2) this.stopForce();
  }

  stopForce(): void {
    window.clearTimeout(this.fa2Timer);
    const wasRunning = this.fa2 !== null;
    if (this.fa2) {
      this.fa2.kill();
      this.fa2 = null;
    }
    this.listener.onLayoutState(false);
    if (wasRunning) this.keepInView();
  }

  /** After a layout moved things, brings the camera back if shown objects ended up off screen. */
  keepInView(): void {
    const { width, height } = this.sigma.getDimensions();
    let outside = false;
    this.model.graph.forEachNode((n) => {
      if (outside) return;
      const d = this.sigma.getNodeDisplayData(n);
      if (!d || d.hidden) return;
      const p = this.sigma.framedGraphToViewport(d);
      outside = p.x < 0 || p.y < 0 || p.x > width || p.y > height;
    });
    if (outside) this.fit();
  }

  get forceRunning(): boolean {
    return this.fa2?.isRunning() ?? false;
  }

  /** Switches layouts, animating nodes from one set of positions to the other. */
  async setMode(mode: LayoutMode): Promise<void> {
    if (mode === this.mode) return;
    const g = this.model.graph;
    this.stopForce();
    if (mode === "geo") {
      const targets: Record<string, { x: number; y: number }> = {};
      g.forEachNode((n, a) => {
        g.mergeNodeAttributes(n, { fx: a.x, fy: a.y });
      });
      this.mode = "geo";
      this.model.geoMode = true;
      const centre = this.lazyCentre();
      g.forEachNode((n) => {
        targets[n] = this.geoTarget(n, centre);
      });
      this.updateGeoBBox();
      this.geometry.show();
      await this.basemap.show();
      animateNodes(g, targets, { duration: 600 }, () => this.fitToNodes());
    } else {
      const targets: Record<string, { x: number; y: number }> = {};
      g.forEachNode((n, a) => {
        targets[n] = { x: a.fx, y: a.fy };
      });
      this.mode = "force";
      this.model.geoMode = false;
      this.sigma.setCustomBBox(null);
      this.basemap.hide();
      this.geometry.hide();
      animateNodes(g, targets, { duration: 600 }, () => {
        this.fit();
        this.runForce(1500);
      });
    }
  }

  /**
   * Where an object goes on the map: the centre of the WGS84 geometry the API derived for it (its own
   * location, its line's ends, or where it sits). An object without one is not drawn on the map (and
   * counted, see unplacedCount); it waits at the centre so that it does not stretch the view.
   * Diagram-layout coordinates are never used here.
   */
  geoTarget(n: string, centre: () => { x: number; y: number } = () => this.locatedCentre()): { x: number; y: number } {
    const g = this.model.graph;
    const a = g.getNodeAttributes(n);
    if (a.gx !== null && a.gy !== null) {
      g.setNodeAttribute(n, "unplaced", false);
      return { x: a.gx, y: a.gy };
    }
    g.setNodeAttribute(n, "unplaced", true);
    return centre();
  }

  /** The located objects' centre, found once (it reads every object) and only when first asked. */
  private lazyCentre(): () => { x: number; y: number } {
    let found: { x: number; y: number } | null = null;
    return () => (found ??= this.locatedCentre());
  }

  /** Objects on the canvas, shown under the domain and class filters, that have no geographic position. */
  unplacedCount(): number {
    let n = 0;
    this.model.graph.forEachNode((_, a) => {
      if (a.gx === null && !this.hiddenDomains.has(a.domain) && !this.hiddenClasses.has(a.className)) n++;
    });
    return n;
  }

  private locatedExtent(): { minX: number; maxX: number; minY: number; maxY: number } | null {
    let minX = Infinity;
    let maxX = -Infinity;
    let minY = Infinity;
    let maxY = -Infinity;
    const add = (x: number, y: number) => {
      minX = Math.min(minX, x);
      maxX = Math.max(maxX, x);
      minY = Math.min(minY, y);
      maxY = Math.max(maxY, y);
    };
    this.model.graph.forEachNode((_, a) => {
      if (a.gx === null || a.gy === null) return;
      add(a.gx, a.gy);
      for (const p of a.path ?? []) add(p.x, p.y);
    });
    return isFinite(minX) ? { minX, maxX, minY, maxY } : null;
  }

  private locatedCentre(): { x: number; y: number } {
    const e = this.locatedExtent() ?? DEFAULT_REGION;
    return { x: (e.minX + e.maxX) / 2, y: (e.minY + e.maxY) / 2 };
  }

  /** Frames the map on the located objects, never tighter than a couple of degrees. */
  updateGeoBBox(): void {
    const e = this.locatedExtent() ?? DEFAULT_REGION;
    const cx = (e.minX + e.maxX) / 2;
    const cy = (e.minY + e.maxY) / 2;
    const half = Math.max(1.5, (e.maxX - e.minX) / 2 * 1.1, (e.maxY - e.minY) / 2 * 1.1);
    this.sigma.setCustomBBox({ x: [cx - half, cx + half], y: [cy - half, cy + half] });
  }

  /** Places nodes that arrived while the map is shown. */
  placeGeo(mrids: string[]): void {
    if (this.mode !== "geo") return;
    const g = this.model.graph;
    const centre = this.lazyCentre();
    for (const m of mrids) if (g.hasNode(m)) g.mergeNodeAttributes(m, this.geoTarget(m, centre));
    this.updateGeoBBox();
  }

  fitToNodes(): void {
    this.sigma.refresh();
    this.fit();
  }

  kill(): void {
    this.stopForce();
    this.sigma.kill();
  }
}
