// Export of the current view: the objects the filters leave on the canvas as CSV (with every attribute
// the caller may see, read through the API), those with a WGS84 geometry as GeoJSON, and the canvas as
// PNG. Only what the page already shows (and the API lets the caller read) goes into a file.

import type { GraphModel, LonLatGeometry, NodeAttrs } from "./graphModel";
import type { ObjectDetail } from "./queries";

// The CSV reads each object's attributes with one request: beyond this a view is too large to export
// that way in reasonable time, and the person is asked to narrow it with the filters.
export const MAX_CSV_OBJECTS = 2000;
// Requests in flight at once: below the API's per-caller limit, so the rest of the page keeps working.
const CSV_CONCURRENCY = 3;
const FIXED_COLUMNS = ["mrid", "class", "domain", "name", "label"];

/** A file name carrying the moment of export (UTC), e.g. `hub-view-2026-12-06_18-42-07Z.csv`. */
export function exportFileName(ext: string, at: Date = new Date()): string {
  const stamp = at.toISOString().slice(0, 19).replace("T", "_").replaceAll(":", "-");
  return `hub-view-${stamp}Z.${ext}`;
}

/** One CSV field under RFC 4180: quoted when it holds a comma, a quote or a line break; quotes doubled. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** Rows as RFC 4180 CSV: fields separated by commas, records by CRLF. */
export function toCsv(rows: string[][]): string {
  return rows.map((r) => r.map(csvField).join(",")).join("\r\n") + "\r\n";
}

/** An attribute value as text: numbers in full precision, structures as JSON, nothing as an empty field. */
function cellValue(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value) ?? "";
}

/** The objects of the view: on the canvas and not hidden by the domain and class filters. */
export function objectsInView(model: GraphModel, filtered: (a: NodeAttrs) => boolean): NodeAttrs[] {
  const out: NodeAttrs[] = [];
  model.graph.forEachNode((_, a) => {
    if (filtered(a)) out.push(a);
  });
  return out;
}

/**
 * Reads the details of `mrids`, a few requests at a time, in order; null for an object the caller may no
 * longer see. `progress` hears how many are done.
 */
export async function fetchDetails(
  mrids: string[],
  fetchOne: (mrid: string) => Promise<ObjectDetail | null>,
  progress: (done: number) => void,
): Promise<(ObjectDetail | null)[]> {
  const out: (ObjectDetail | null)[] = new Array<ObjectDetail | null>(mrids.length).fill(null);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < mrids.length) {
      const i = next++;
      out[i] = await fetchOne(mrids[i]);
      progress(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CSV_CONCURRENCY, mrids.length) }, () => worker()));
  return out;
}

/**
 * The CSV table: one row per object with mRID, class, domain, name and security label, then one column
 * per attribute, headed by its qualified name (sorted; unique across classes and never one of the fixed
 * columns), with the unit in brackets when the API gives one, e.g. `VoltageLevel.highVoltageLimit [kV]`.
 */
export function detailsToCsv(details: ObjectDetail[]): string {
  const units = new Map<string, string>();
  for (const d of details) {
    for (const a of d.attributes) if (!units.get(a.qname)) units.set(a.qname, a.unit ?? "");
  }
  const columns = [...units.keys()].sort((a, b) => a.localeCompare(b));
  const header = [...FIXED_COLUMNS, ...columns.map((q) => (units.get(q) ? `${q} [${units.get(q)}]` : q))];
  const rows = details.map((d) => {
    const byName = new Map(d.attributes.map((a) => [a.qname, a.value] as const));
    return [d.mrid, d.className, d.domain, d.name ?? "", d.label, ...columns.map((q) => cellValue(byName.get(q)))];
  });
  return toCsv([header, ...rows]);
}

interface Feature {
  type: "Feature";
  id: string;
  geometry: { type: "Point"; coordinates: [number, number] } | { type: "LineString"; coordinates: [number, number][] };
  properties: { mrid: string; class: string; name: string | null; label: string; domain: string };
}

function featureGeometry(g: LonLatGeometry): Feature["geometry"] {
  return g.type === "Point" ? { type: "Point", coordinates: g.coordinates[0] } : { type: "LineString", coordinates: g.coordinates };
}

/**
 * A GeoJSON FeatureCollection (RFC 7946) of the objects that have a WGS84 geometry from the API. Objects
 * without one are never placed anywhere: their number is a foreign member, `objectsWithoutGeometry`.
 * Diagram-layout coordinates are schematic, not geography, and are never read here.
 */
export function toGeoJson(objects: NodeAttrs[]): { text: string; features: number; without: number } {
  const features: Feature[] = [];
  let without = 0;
  for (const a of objects) {
    if (!a.geometry) {
      without++;
      continue;
    }
    features.push({
      type: "Feature",
      id: a.mrid,
      geometry: featureGeometry(a.geometry),
      properties: { mrid: a.mrid, class: a.className, name: a.name, label: a.secLabel, domain: a.domain },
    });
  }
  const collection = { type: "FeatureCollection", objectsWithoutGeometry: without, features };
  return { text: JSON.stringify(collection, null, 1), features: features.length, without };
}

/**
 * The canvas as one PNG: sigma draws on several stacked canvases (country outlines, line geometry, WebGL
 * edges and nodes, labels). It renders synchronously first, so the WebGL drawing buffers still hold the
 * frame when they are copied in the same task (they are not preserved across frames), then the layers
 * are drawn in their stacking order onto a 2D canvas.
 */
export function renderPng(sigma: { refresh(): unknown; getContainer(): HTMLElement }, note: string): Promise<Blob> {
  sigma.refresh();
  const layers = [...sigma.getContainer().querySelectorAll("canvas")].filter(
    (c) => c.style.display !== "none" && c.width > 0 && c.height > 0,
  );
  if (layers.length === 0) return Promise.reject(new Error("the graph has no canvas to export"));
  const width = Math.max(...layers.map((c) => c.width));
  const height = Math.max(...layers.map((c) => c.height));
  const out = document.createElement("canvas");
  out.width = width;
  out.height = height;
  const ctx = out.getContext("2d");
  if (!ctx) return Promise.reject(new Error("no 2D canvas context for the PNG export"));
  // The page's own background under the canvases (the sea on the map), so the picture looks as the view does.
  ctx.fillStyle = backgroundOf(sigma.getContainer());
  ctx.fillRect(0, 0, width, height);
  for (const c of layers) ctx.drawImage(c, 0, 0);
  const ratio = window.devicePixelRatio || 1;
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#52606d";
  ctx.textAlign = "right";
  ctx.fillText(note, width / ratio - 8, height / ratio - 8);
  return new Promise((resolve, reject) =>
    out.toBlob((b) => (b ? resolve(b) : reject(new Error("the browser could not encode the PNG"))), "image/png"),
  );
}

/** The first opaque background colour at or above `el`, white when there is none. */
function backgroundOf(el: HTMLElement): string {
  for (let e: HTMLElement | null = el; e; e = e.parentElement) {
    const c = getComputedStyle(e).backgroundColor;
    if (c && c !== "transparent" && !/rgba\(.*,\s*0\)$/.test(c)) return c;
  }
  return "#ffffff";
}

/** Hands a file to the browser as a download. */
export function download(name: string, data: Blob): void {
  const url = URL.createObjectURL(data);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.style.display = "none";
  document.body.append(a);
  a.click();
  a.remove();
  // The download has started from the click; the object URL can go once the event loop moves on.
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
