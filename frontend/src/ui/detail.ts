// The right-hand panel: everything the caller may see about one object.

import { clear, h } from "../dom";
import { labelBadge, type ClassStyles } from "../classStyle";
import type {
  DependencyDirection,
  DependencyReport,
  GraphNode,
  MeasurementSeries,
  ObjectDetail,
  ObjectVersion,
  Subgraph,
} from "../queries";
import { renderMeasurements } from "./measurementChart";
import { swatch } from "./search";

export interface DetailActions {
  open(mrid: string): void;
  expand(mrid: string, relTypes?: string[]): void;
  collapse(mrid: string): void;
  dependencies(mrid: string, direction: DependencyDirection): void;
  pathFrom(mrid: string): void;
  pathTo(mrid: string): void;
  focus(mrid: string): void;
  diagram(mrid: string): void;
}

export interface DetailState {
  detail: ObjectDetail;
  neighbours: Subgraph | null;
  expanded: boolean;
  onScreen: boolean;
  pathStart: string | null;
  deps: DependencyReport | null;
  depsLoading: boolean;
  // Which way the dependencies shown were followed: what depends on the object, or what it depends on.
  depsDirection: DependencyDirection;
  // The object's kept readings per measured attribute (null: not fetched yet), kept fresh while shown.
  measurements: MeasurementSeries[] | null;
  /** The object's kept versions you may see, oldest first (null: loading). */
  history: ObjectVersion[] | null;
  /** The time the view shows (null: now): the version in effect then is marked. */
  asOf: string | null;
}

/** One kept version as the history list shows it: what it changed from the version before it. */
export interface VersionRow {
  version: ObjectVersion;
  changed: string[];
  /** The first version you may see, or one after a delete: the object (re)appears with it. */
  created: boolean;
  inEffect: boolean;
}

/**
 * The versions with the attribute keys each changed (set, altered or removed) from the one before it you
 * may see, and which one was in effect at `asOf` (null: now): the highest version valid by then.
 */
export function versionRows(versions: ObjectVersion[], asOf: string | null): VersionRow[] {
  const at = asOf === null ? Infinity : Date.parse(asOf);
  let effect: ObjectVersion | null = null;
  for (const v of versions) {
    if (Date.parse(v.validFrom) <= at && (!effect || v.version > effect.version)) effect = v;
  }
  let before = new Map<string, string>();
  let absent = true;
  return versions.map((v) => {
    const now = new Map(v.attributes.map((a) => [a.key, JSON.stringify(a.value)]));
    const keys = new Set([...before.keys(), ...now.keys()]);
    const changed = [...keys].filter((k) => before.get(k) !== now.get(k)).sort();
    const created = absent && !v.deleted;
    before = now;
    absent = v.deleted;
    return { version: v, changed, created, inEffect: effect !== null && effect === v && !v.deleted };
  });
}

interface AssocGroup {
  key: string;
  relType: string;
  outgoing: boolean;
  others: GraphNode[];
}

const LIST_LIMIT = 12;
// Objects whose substation has a single-line diagram (ui/substationDiagram.ts).
const DIAGRAM_CLASSES = new Set(["Substation", "VoltageLevel"]);

export function formatValue(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return value.toLocaleString("en-GB");
    const abs = Math.abs(value);
    return abs !== 0 && (abs < 0.001 || abs >= 1e7) ? value.toExponential(4) : String(Number(value.toPrecision(8)));
  }
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "string") return value;
  // Anything else a JSON answer can hold (objects and arrays) as JSON.
  return JSON.stringify(value) ?? "—";
}

export function formatTime(iso: string): string {
  const d = new Date(iso);
  if (isNaN(d.getTime())) return iso;
  const secs = Math.round((Date.now() - d.getTime()) / 1000);
  const rel =
    secs < 60 ? `${Math.max(secs, 0)} s ago` : secs < 3600 ? `${Math.round(secs / 60)} min ago` : secs < 86400 ? `${Math.round(secs / 3600)} h ago` : `${Math.round(secs / 86400)} d ago`;
  return `${d.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "medium" })} (${rel})`;
}

function groupAssociations(mrid: string, sub: Subgraph): AssocGroup[] {
  const byId = new Map(sub.nodes.map((n) => [n.mrid, n]));
  const groups = new Map<string, AssocGroup>();
  for (const e of sub.edges) {
    const outgoing = e.source === mrid;
    if (!outgoing && e.target !== mrid) continue;
    const otherId = outgoing ? e.target : e.source;
    const other = byId.get(otherId);
    if (!other) continue;
    const gk = `${outgoing ? ">" : "<"}${e.key}|${e.type}`;
    let g = groups.get(gk);
    if (!g) {
      g = { key: e.key, relType: e.type, outgoing, others: [] };
      groups.set(gk, g);
    }
    if (!g.others.some((o) => o.mrid === other.mrid)) g.others.push(other);
  }
  return [...groups.values()].sort((a, b) => Number(b.outgoing) - Number(a.outgoing) || a.key.localeCompare(b.key));
}

export function renderDetail(panel: HTMLElement, st: DetailState, styles: ClassStyles, act: DetailActions): void {
  clear(panel);
  const d = st.detail;
  const shape = styles.shape(d.className, d.domain);
  const badge = labelBadge(d.label);
  panel.append(
    h(
      "div",
      { className: "detail-head", testid: "detail-head" },
      h("div", { className: "detail-class" }, swatch(styles.color(d.className), shape), h("span", { testid: "detail-class" }, d.className)),
      h("div", { className: "detail-name", testid: "detail-name" }, d.name || d.mrid),
      h("div", { className: "detail-mrid", testid: "detail-mrid" }, d.mrid),
      h(
        "div",
        { className: "badges" },
        h("span", { className: `badge domain-${d.domain}`, testid: "detail-domain" }, d.domain === "GAS" ? "Gas" : "Electricity"),
        h("span", { className: `badge label-${badge.level}`, testid: "detail-label", title: `Security label: ${d.label}` }, lockIcon(), badge.text),
      ),
    ),
  );

  const actions = h("div", { className: "actions", testid: "detail-actions" });
  if (st.expanded) actions.append(h("button", { className: "ghost", testid: "action-collapse", onclick: () => act.collapse(d.mrid) }, "Collapse"));
  else actions.append(h("button", { className: "ghost", testid: "action-expand", onclick: () => act.expand(d.mrid) }, "Expand all"));
  actions.append(
    h("button", { className: "ghost", testid: "action-dependencies", title: "What depends on this, across gas and electricity", onclick: () => act.dependencies(d.mrid, "DOWNSTREAM") }, "Dependencies"),
    h("button", { className: "ghost", testid: "action-upstream", title: "What this depends on, across gas and electricity", onclick: () => act.dependencies(d.mrid, "UPSTREAM") }, "Depends on"),
    h("button", { className: "ghost", testid: "action-path-from", onclick: () => act.pathFrom(d.mrid) }, "Path from here"),
  );
  if (st.pathStart && st.pathStart !== d.mrid) {
    actions.append(h("button", { className: "ghost", testid: "action-path-to", onclick: () => act.pathTo(d.mrid) }, "Path to here"));
  }
  if (st.onScreen) actions.append(h("button", { className: "ghost", testid: "action-focus", onclick: () => act.focus(d.mrid) }, "Focus"));
  if (DIAGRAM_CLASSES.has(d.className)) {
    actions.append(h("button", { className: "ghost", testid: "action-diagram", title: "The substation's single-line diagram", onclick: () => act.diagram(d.mrid) }, "Single-line diagram"));
  }
  panel.append(actions);

  if (st.deps || st.depsLoading) panel.append(renderDeps(st, styles, act));
  panel.append(renderMeasurements(st.measurements));

  // Attributes
  const attrs = d.attributes.slice().sort((a, b) => a.key.localeCompare(b.key));
  const table = h("table", { className: "attrs", testid: "detail-attributes" });
  for (const a of attrs) {
    table.append(
      h(
        "tr",
        { testid: `attr-${a.key}`, "data-key": a.key, "data-qname": a.qname },
        h("td", { className: "k", title: a.qname }, a.key),
        h("td", { className: "v" }, h("span", { className: "value", testid: "attr-value" }, formatValue(a.value)), a.unit ? h("span", { className: "unit", testid: "attr-unit" }, a.unit) : null),
      ),
    );
  }
  panel.append(
    h(
      "div",
      { className: "detail-section" },
      h("h4", {}, "Attributes", h("span", { className: "muted" }, String(attrs.length))),
      attrs.length > 0 ? table : h("div", { className: "muted" }, "No attributes you may see."),
    ),
  );

  // Associations
  const assocSection = h("div", { className: "detail-section", testid: "detail-associations" });
  if (!st.neighbours) {
    assocSection.append(h("h4", {}, "Associations"), h("div", { className: "muted" }, "Loading…"));
  } else {
    const groups = groupAssociations(d.mrid, st.neighbours);
    assocSection.append(h("h4", {}, "Associations", h("span", { className: "muted" }, String(groups.reduce((s, g) => s + g.others.length, 0)))));
    if (groups.length === 0) assocSection.append(h("div", { className: "muted" }, "No associations you may see."));
    for (const g of groups) {
      const ul = h("ul");
      for (const o of g.others.slice(0, LIST_LIMIT)) {
        ul.append(
          h(
            "li",
            {},
            swatch(styles.color(o.className), styles.shape(o.className, o.domain)),
            h("a", { testid: "assoc-link", "data-mrid": o.mrid, title: o.mrid, onclick: () => act.open(o.mrid) }, o.name || o.mrid),
            h("span", { className: "cls-small" }, o.className),
          ),
        );
      }
      if (g.others.length > LIST_LIMIT) ul.append(h("li", { className: "more" }, `and ${g.others.length - LIST_LIMIT} more`));
      assocSection.append(
        h(
          "div",
          { className: "assoc", testid: "assoc-group", "data-key": g.key, "data-rel": g.relType },
          h(
            "div",
            { className: "assoc-head" },
            h("span", { className: "assoc-key" }, g.key),
            h("span", { className: "assoc-dir", title: g.outgoing ? "this object refers to them" : "they refer to this object" }, g.outgoing ? "→" : "←", ` ${g.others.length}`),
            h("button", { className: "link small", testid: "assoc-expand", title: `Show ${g.relType} neighbours on the canvas`, onclick: () => act.expand(d.mrid, [g.relType]) }, "expand"),
          ),
          ul,
        ),
      );
    }
  }
  panel.append(assocSection);

  panel.append(
    h(
      "div",
      { className: "detail-section", testid: "detail-provenance" },
      h("h4", {}, "Provenance"),
      h(
        "div",
        { className: "kv" },
        h("span", { className: "k" }, "Producer"),
        h("span", { testid: "detail-producer" }, d.producer),
        h("span", { className: "k" }, "Version"),
        h("span", { testid: "detail-version" }, String(d.version)),
        h("span", { className: "k" }, "Updated"),
        h("span", { testid: "detail-updated", "data-iso": d.updated }, formatTime(d.updated)),
        h("span", { className: "k" }, "Location"),
        h("span", { testid: "detail-point" }, describeGeometry(d.geometry)),
        h("span", { className: "k" }, "Diagrams"),
        h("span", { testid: "detail-diagrams" }, describeDiagrams(d.diagramPoints)),
      ),
    ),
  );
  panel.append(renderHistory(st));
}

function renderHistory(st: DetailState): HTMLElement {
  const box = h("div", { className: "detail-section history", testid: "object-history" });
  if (!st.history) {
    box.append(h("h4", {}, "History"), h("div", { className: "muted" }, "Loading…"));
    return box;
  }
  box.append(h("h4", {}, "History", h("span", { className: "muted" }, String(st.history.length))));
  if (st.history.length === 0) {
    box.append(h("div", { className: "muted" }, "No kept versions you may see."));
    return box;
  }
  const ol = h("ol", { className: "versions" });
  // Newest first, as a planner reads a log.
  for (const row of versionRows(st.history, st.asOf).reverse()) {
    const v = row.version;
    const what = v.deleted
      ? h("span", { className: "deleted", testid: "history-changed" }, "deleted")
      : row.created
        ? h("span", { testid: "history-changed", title: row.changed.join(", ") }, "created")
        : h("span", { testid: "history-changed", title: row.changed.join(", ") }, row.changed.length ? `changed ${row.changed.join(", ")}` : "no attribute changed");
    ol.append(
      h(
        "li",
        {
          className: row.inEffect ? "in-effect" : "",
          testid: "history-version",
          "data-version": v.version,
          "data-in-effect": row.inEffect ? "true" : "false",
          title: `Recorded ${formatTime(v.recordedAt)} · ${v.producer} · ${v.label}`,
        },
        h("span", { className: "v" }, `v${v.version}`),
        h("span", { className: "t", testid: "history-valid-from", "data-iso": v.validFrom }, formatTime(v.validFrom)),
        what,
        row.inEffect && st.asOf ? h("span", { className: "badge" }, "as of the view") : null,
      ),
    );
  }
  box.append(ol);
  return box;
}

function renderDeps(st: DetailState, styles: ClassStyles, act: DetailActions): HTMLElement {
  const up = st.depsDirection === "UPSTREAM";
  const box = h("div", { className: "detail-section deps", testid: "detail-dependencies", "data-direction": st.depsDirection });
  const other: DependencyDirection = up ? "DOWNSTREAM" : "UPSTREAM";
  box.append(
    h(
      "h4",
      {},
      up ? "Depends on" : "Dependencies",
      h(
        "button",
        { className: "link small", testid: "deps-switch", title: up ? "Show what depends on this instead" : "Show what this depends on instead", onclick: () => act.dependencies(st.detail.mrid, other) },
        up ? "what depends on this" : "what this depends on",
      ),
    ),
  );
  if (st.depsLoading || !st.deps) {
    box.append(h("div", { className: "muted" }, "Following the couplings…"));
    return box;
  }
  const r = st.deps;
  const gas = st.detail.domain === "GAS";
  box.append(
    h(
      "div",
      { className: "capacity", testid: "deps-capacity" },
      r.capacityMW === null || r.capacityMW === undefined ? "—" : `${formatValue(Math.round(r.capacityMW * 10) / 10)} MW`,
      h("small", {}, " of generating capacity at stake, over all steps"),
    ),
  );
  if (r.dependents.length === 0) {
    box.append(
      h(
        "div",
        { className: "muted" },
        up
          ? "Nothing you may see supplies this across the domains."
          : gas
            ? "No electricity asset you may see depends on this."
            : "No coupled asset you may see.",
      ),
    );
  }
  const ul = h("ul", { testid: "deps-list" });
  for (const step of r.steps) {
    const what = step.domain === "GAS" ? "gas asset" : "electricity asset";
    const at =
      step.capacityMW === null || step.capacityMW === undefined
        ? ""
        : `, ${formatValue(Math.round(step.capacityMW * 10) / 10)} MW at stake`;
    ul.append(
      h(
        "li",
        { className: "deps-step", testid: "deps-step", "data-depth": String(step.depth) },
        `Step ${step.depth}: ${step.dependents.length} ${what}${step.dependents.length === 1 ? "" : "s"}${at}`,
      ),
    );
    for (const n of step.dependents) {
      ul.append(
        h(
          "li",
          { "data-depth": String(step.depth) },
          swatch(styles.color(n.className), styles.shape(n.className, n.domain)),
          h("a", { testid: "deps-link", "data-mrid": n.mrid, onclick: () => act.open(n.mrid) }, n.name || n.mrid),
          h("span", { className: "cls-small" }, n.className),
        ),
      );
    }
  }
  box.append(ul);
  return box;
}

function lockIcon(): SVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "10");
  svg.setAttribute("height", "10");
  svg.setAttribute("aria-label", "security label");
  const body = document.createElementNS(ns, "rect");
  for (const [k, v] of Object.entries({ x: "3", y: "7", width: "10", height: "8", rx: "1.5", fill: "currentColor" })) body.setAttribute(k, v);
  const shackle = document.createElementNS(ns, "path");
  for (const [k, v] of Object.entries({ d: "M5 7V5a3 3 0 0 1 6 0v2", fill: "none", stroke: "currentColor", "stroke-width": "1.8" })) shackle.setAttribute(k, v);
  svg.append(body, shackle);
  return svg;
}

function lonLatText(lon: number, lat: number): string {
  return `${Math.abs(lat).toFixed(4)}° ${lat >= 0 ? "N" : "S"}, ${Math.abs(lon).toFixed(4)}° ${lon >= 0 ? "E" : "W"}`;
}

const BASIS: Record<string, string> = {
  own: "its own location",
  ends: "through its ends",
  placement: "where it sits",
};

/** The object's WGS84 geometry in words: a point, or a line with its ends, and how the hub found it. */
function describeGeometry(g: ObjectDetail["geometry"]): string {
  if (!g) return "—";
  const c = g.coordinates as number[] | number[][];
  const basis = BASIS[g.basis] ?? g.basis;
  if (g.type === "Point" && typeof c[0] === "number") return `${lonLatText(c[0], c[1] as number)} (${basis})`;
  if (g.type === "LineString" && Array.isArray(c[0])) {
    const pts = c as number[][];
    const a = pts[0];
    const b = pts[pts.length - 1];
    return `line of ${pts.length} points from ${lonLatText(a[0], a[1])} to ${lonLatText(b[0], b[1])} (${basis})`;
  }
  return "—";
}

/** Diagram-layout points are schematic: only which diagrams draw the object is worth a line here. */
function describeDiagrams(points: ObjectDetail["diagramPoints"]): string {
  if (points.length === 0) return "—";
  const names = [...new Set(points.map((p) => p.diagram.name ?? p.diagram.mrid))];
  return `drawn on ${names.join(", ")}`;
}
