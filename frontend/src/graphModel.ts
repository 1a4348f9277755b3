// The graph on screen: a graphology graph holding what the caller has opened and expanded,
// plus the bookkeeping needed to collapse an expansion again.

import Graph from "graphology";
import type { ClassStyles } from "./classStyle";
import type { ClassObject, GraphEdge, GraphNode, Place, Subgraph } from "./queries";
import { lonLatToMap } from "./projection";

export interface NodeAttrs {
  x: number;
  y: number;
  size: number;
  color: string;
  type: string;
  label: string;
  // The object's own name (null when it has none; the label then shows its mRID).
  name: string | null;
  mrid: string;
  className: string;
  domain: string;
  secLabel: string;
  // Geographic position (projected) of the object's marker: the centre of its WGS84 geometry.
  gx: number | null;
  gy: number | null;
  lon: number | null;
  lat: number | null;
  // The WGS84 geometry the API derived, and a line string's vertices projected (null for a point).
  geometry: LonLatGeometry | null;
  path: { x: number; y: number }[] | null;
  // Network level: nominal voltage (kV) or maximum gas pressure (bar), when known.
  kv: number | null;
  bar: number | null;
  // Force-layout position kept while the map is shown.
  fx: number;
  fy: number;
  expanded: boolean;
  pinned: boolean;
  expandedBy: string[];
  flashUntil: number;
  unplaced?: boolean;
  [key: string]: unknown;
}

export interface EdgeAttrs {
  relType: string;
  key: string;
  size: number;
  color: string;
  // "arrow" when it is the only edge between its two objects, else "curvedArrow" with its own curvature.
  type?: string;
  curvature?: number;
  [key: string]: unknown;
}

/** A WGS84 geometry as the API gives it (GeoJSON coordinates: [longitude, latitude]). */
export interface LonLatGeometry {
  type: "Point" | "LineString";
  coordinates: [number, number][];
}

function isPair(v: unknown): v is [number, number] {
  return Array.isArray(v) && v.length >= 2 && typeof v[0] === "number" && typeof v[1] === "number";
}

/** The API's geometry, checked: a Point's or LineString's coordinates, or null for anything else. */
export function readGeometry(g: GraphNode["geometry"] | undefined): LonLatGeometry | null {
  if (!g) return null;
  const c: unknown = g.coordinates;
  if (g.type === "Point" && isPair(c)) return { type: "Point", coordinates: [[c[0], c[1]]] };
  if (g.type === "LineString" && Array.isArray(c)) {
    const pts = (c as unknown[]).filter(isPair).map((p): [number, number] => [p[0], p[1]]);
    if (pts.length >= 2) return { type: "LineString", coordinates: pts };
    if (pts.length === 1) return { type: "Point", coordinates: pts };
  }
  return null;
}

export function geometryCentre(g: LonLatGeometry): { lon: number; lat: number } {
  let lon = 0;
  let lat = 0;
  for (const [x, y] of g.coordinates) {
    lon += x;
    lat += y;
  }
  return { lon: lon / g.coordinates.length, lat: lat / g.coordinates.length };
}

/** An object's place on the map and its network level, as node attributes. */
function placeAttrs(n: Place) {
  const geometry = readGeometry(n.geometry);
  const centre = geometry ? geometryCentre(geometry) : null;
  const geo = centre ? lonLatToMap(centre.lon, centre.lat) : null;
  return {
    gx: geo ? geo.x : null,
    gy: geo ? geo.y : null,
    lon: centre ? centre.lon : null,
    lat: centre ? centre.lat : null,
    geometry,
    path: geometry && geometry.type === "LineString" ? geometry.coordinates.map(([x, y]) => lonLatToMap(x, y)) : null,
    kv: n.level?.nominalVoltage ?? null,
    bar: n.level?.pressureMax ?? null,
  };
}

const UNPLACED = placeAttrs({ mrid: "", geometry: null, level: null });

export type HubGraph = Graph<NodeAttrs, EdgeAttrs>;

export const EDGE_COLOR = "#cbd5e1";
// How far apart the edges joining one pair of objects curve: the n-th bends n times this.
export const PARALLEL_CURVATURE = 0.25;

export function edgeId(e: GraphEdge): string {
  return `${e.source}|${e.type}|${e.target}`;
}

function nodeSize(shape: string): number {
  return shape === "ring" ? 5 : 6;
}

export class GraphModel {
  readonly graph: HubGraph = new Graph<NodeAttrs, EdgeAttrs>({ multi: true, type: "directed", allowSelfLoops: true });
  private readonly styles: ClassStyles;
  geoMode = false;

  constructor(styles: ClassStyles) {
    this.styles = styles;
  }

  /**
   * Adds or refreshes a node; new nodes start near `near` (their parent) so the layout settles fast.
   * An object read without its place (a class load's first answer, see `setPlaces`) keeps the place it
   * had, or has none yet. `pinned`: kept on screen until cleared (an object opened or loaded by class).
   */
  upsertNode(n: GraphNode | ClassObject, near?: string, pinned = false): boolean {
    const shape = this.styles.shape(n.className, n.domain);
    const placed = "geometry" in n ? placeAttrs(n) : null;
    const common = {
      label: n.name && n.name.trim() ? n.name : n.mrid,
      name: n.name ?? null,
      mrid: n.mrid,
      className: n.className,
      domain: n.domain,
      secLabel: n.label,
      color: this.styles.color(n.className),
      type: shape,
      size: nodeSize(shape),
      ...placed,
      ...(pinned ? { pinned } : {}),
    };
    if (this.graph.hasNode(n.mrid)) {
      this.graph.mergeNodeAttributes(n.mrid, common);
      if (this.geoMode && placed?.gx != null && placed.gy != null) this.graph.mergeNodeAttributes(n.mrid, { x: placed.gx, y: placed.gy });
      return false;
    }
    const geo = placed?.gx != null && placed.gy != null ? { x: placed.gx, y: placed.gy } : null;
    const start = this.startPosition(near, geo);
    this.graph.addNode(n.mrid, {
      ...UNPLACED,
      ...common,
      x: start.x,
      y: start.y,
      fx: start.fx,
      fy: start.fy,
      expanded: false,
      pinned,
      expandedBy: [],
      flashUntil: 0,
    });
    return true;
  }

  /** Gives objects on screen the places and levels read after them; returns those that are on screen. */
  setPlaces(places: Place[]): string[] {
    const done: string[] = [];
    for (const p of places) {
      if (!this.graph.hasNode(p.mrid)) continue;
      this.graph.mergeNodeAttributes(p.mrid, placeAttrs(p));
      done.push(p.mrid);
    }
    return done;
  }

  private startPosition(near: string | undefined, geo: { x: number; y: number } | null) {
    let fx = (Math.random() - 0.5) * 100;
    let fy = (Math.random() - 0.5) * 100;
    if (near && this.graph.hasNode(near)) {
      const p = this.graph.getNodeAttributes(near);
      const bx = this.geoMode ? p.fx : p.x;
      const by = this.geoMode ? p.fy : p.y;
      const a = Math.random() * Math.PI * 2;
      fx = bx + Math.cos(a) * 8;
      fy = by + Math.sin(a) * 8;
    }
    if (this.geoMode) {
      const g = geo ?? this.geoFallback(near);
      return { x: g.x, y: g.y, fx, fy };
    }
    return { x: fx, y: fy, fx, fy };
  }

  /** Where an object without coordinates sits on the map: beside the neighbour it came from. */
  geoFallback(near?: string): { x: number; y: number } {
    const jitter = () => (Math.random() - 0.5) * 0.02;
    if (near && this.graph.hasNode(near)) {
      const p = this.graph.getNodeAttributes(near);
      if (p.gx !== null && p.gy !== null) return { x: p.gx + jitter(), y: p.gy + jitter() };
      return { x: p.x + jitter(), y: p.y + jitter() };
    }
    return { x: jitter(), y: jitter() };
  }

  addEdge(e: GraphEdge): boolean {
    const g = this.graph;
    if (!g.hasNode(e.source) || !g.hasNode(e.target)) return false;
    const id = edgeId(e);
    if (g.hasEdge(id)) return false;
    // Most relationships are alone between their two objects: drawn straight, nothing else to look at.
    const alone = !g.hasDirectedEdge(e.source, e.target) && !g.hasDirectedEdge(e.target, e.source);
    g.addDirectedEdgeWithKey(id, e.source, e.target, {
      relType: e.type,
      key: e.key,
      size: 1,
      color: EDGE_COLOR,
      type: "arrow",
      curvature: 0,
    });
    if (!alone) this.spreadParallel(e.source, e.target);
    return true;
  }

  /** Several relationships between one pair of objects (either way) curve apart, so each one shows. */
  private spreadParallel(a: string, b: string): void {
    const between = this.edgesBetween(a, b);
    between.forEach((key, i) => {
      const alone = between.length === 1;
      this.graph.mergeEdgeAttributes(key, {
        type: alone ? "arrow" : "curvedArrow",
        curvature: alone ? 0 : PARALLEL_CURVATURE * (i + 1),
      });
    });
  }

  /** The relationships joining `a` and `b`, in either direction. */
  edgesBetween(a: string, b: string): string[] {
    return this.graph.directedEdges(a, b); // graphology: both directions (and a loop once)
  }

  /** Merges a subgraph fetched around `parent`; returns the objects that were new on screen. */
  /** The graph becomes what `subs` (one per object of `mrids`, absent where it cannot be read) hold: every
   * other object goes, the edges are read again, and each object keeps whether it was expanded. Used when
   * what is on screen is shown at another time or in a scenario. The objects added are returned. */
  replaceWith(mrids: string[], subs: (Subgraph | null | undefined)[], expanded: Set<string>): string[] {
    const g = this.graph;
    const keep = new Set(subs.flatMap((s) => (s ? s.nodes.map((n) => n.mrid) : [])));
    for (const m of g.nodes()) if (!keep.has(m)) g.dropNode(m);
    g.clearEdges();
    const added: string[] = [];
    mrids.forEach((m, i) => {
      const sub = subs[i];
      if (sub) added.push(...this.merge(sub, m));
    });
    g.forEachNode((m) => g.setNodeAttribute(m, "expanded", expanded.has(m)));
    return added;
  }

  merge(sub: Subgraph, parent?: string): string[] {
    const added: string[] = [];
    for (const n of sub.nodes) {
      if (this.upsertNode(n, parent)) added.push(n.mrid);
      if (parent && n.mrid !== parent) {
        const by = this.graph.getNodeAttribute(n.mrid, "expandedBy");
        if (!by.includes(parent)) by.push(parent);
      }
    }
    for (const e of sub.edges) this.addEdge(e);
    return added;
  }

  /** Removes what expanding `mrid` brought in, unless something else keeps it on screen. */
  collapse(mrid: string): string[] {
    if (!this.graph.hasNode(mrid)) return [];
    this.graph.setNodeAttribute(mrid, "expanded", false);
    const removed: string[] = [];
    for (const m of this.graph.neighbors(mrid)) {
      const a = this.graph.getNodeAttributes(m);
      const by = a.expandedBy.filter((p) => p !== mrid);
      this.graph.setNodeAttribute(m, "expandedBy", by);
      if (by.length === 0 && !a.pinned && !a.expanded) {
        this.graph.dropNode(m);
        removed.push(m);
      }
    }
    return removed;
  }

  remove(mrid: string): void {
    if (this.graph.hasNode(mrid)) this.graph.dropNode(mrid);
  }

  clear(): void {
    this.graph.clear();
  }
}
