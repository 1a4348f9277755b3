// The substation view: a single-line diagram of one substation, laid out automatically from what the
// caller may see of its connectivity (graphql/operations/SubstationDiagram.graphql). Voltage levels are
// horizontal bands, highest voltage on top; each bus (topological node) is a busbar; what a bus connects
// hangs below it as a feeder (switches with their open or closed state, lines leaving, loads, generators);
// a transformer joins the buses of its windings, each side labelled with its winding's rated voltage.
// The model's own diagram-layout profile is not used (schematic coordinates are not placed yet).

import { clear, h } from "../dom";
import type { DiagramSubstation, SubstationDiagramAnswer } from "../queries";

type Level = DiagramSubstation["voltageLevels"][number];
type Bus = Level["topologicalNode"][number];
type Equipment = NonNullable<Bus["terminal"][number]["conductingEquipment"]>;

export type FeederKind = "switch" | "line" | "load" | "generator" | "other";

interface Feeder {
  kind: FeederKind;
  equipment: Equipment;
  open: boolean | null;
  /** The other bus a switch joins, if any. */
  other: string | null;
}

interface Winding {
  bus: string;
  ratedU: number | null;
  endNumber: number | null;
}

interface Transformer {
  mrid: string;
  name: string | null;
  windings: Winding[];
}

export interface DiagramActions {
  open(mrid: string): void;
  close(): void;
}

const SVG_NS = "http://www.w3.org/2000/svg";
const SLOT = 96;
const BAND = 250;
const MARGIN = 40;
const LABEL_W = 150;
const BAR_Y = 60;

/** The substation an answer describes: the object itself, or the substation of a voltage level. */
export function diagramSubstation(answer: SubstationDiagramAnswer): DiagramSubstation | null {
  if (!answer) return null;
  if ("voltageLevels" in answer) return answer;
  if ("substation" in answer) return answer.substation ?? null;
  return null;
}

/** Every object the diagram draws: watched for live changes. */
export function diagramMrids(sub: DiagramSubstation): string[] {
  const out = new Set<string>();
  for (const level of sub.voltageLevels) {
    for (const bus of level.topologicalNode) {
      out.add(bus.mrid);
      for (const t of bus.terminal) if (t.conductingEquipment) out.add(t.conductingEquipment.mrid);
    }
  }
  return [...out];
}

export function feederKind(className: string): FeederKind {
  if (/Switch|Breaker|Disconnector|Fuse|Jumper|Recloser|Sectionaliser/.test(className)) return "switch";
  if (/LineSegment|^Line$/.test(className)) return "line";
  if (/Consumer|Load/.test(className)) return "load";
  if (/Machine|Generat|Injection/.test(className)) return "generator";
  return "other";
}

function kv(value: number | null | undefined): string {
  return value === null || value === undefined ? "? kV" : `${Number(value.toPrecision(6))} kV`;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, ...children: (SVGElement | string)[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

function titled(el: SVGElement, text: string): SVGElement {
  el.append(svg("title", {}, text));
  return el;
}

function short(text: string, max = 14): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The buses' feeders and the transformers joining them, from the terminals each bus holds. */
function analyse(sub: DiagramSubstation): { feeders: Map<string, Feeder[]>; transformers: Transformer[] } {
  const feeders = new Map<string, Feeder[]>();
  const transformers = new Map<string, Transformer>();
  const switchBuses = new Map<string, string[]>();
  for (const level of sub.voltageLevels) {
    for (const bus of level.topologicalNode) {
      for (const t of bus.terminal) {
        const eq = t.conductingEquipment;
        if (eq && feederKind(eq.className) === "switch") switchBuses.set(eq.mrid, [...(switchBuses.get(eq.mrid) ?? []), bus.mrid]);
      }
    }
  }
  const placed = new Set<string>();
  for (const level of sub.voltageLevels) {
    for (const bus of level.topologicalNode) {
      const list: Feeder[] = [];
      for (const t of bus.terminal) {
        const eq = t.conductingEquipment;
        const end = t.transformerEnd.find((e) => "ratedU" in e);
        if (end || (eq && eq.className === "PowerTransformer")) {
          const id = eq?.mrid ?? end?.mrid ?? t.mrid;
          const tr = transformers.get(id) ?? { mrid: id, name: eq?.name ?? null, windings: [] };
          tr.windings.push({ bus: bus.mrid, ratedU: end && "ratedU" in end ? end.ratedU : null, endNumber: end && "endNumber" in end ? end.endNumber : null });
          transformers.set(id, tr);
          continue;
        }
        if (!eq || eq.className === "BusbarSection" || placed.has(eq.mrid)) continue;
        placed.add(eq.mrid);
        const kind = feederKind(eq.className);
        const open = "open" in eq ? (eq.open ?? eq.normalOpen ?? null) : null;
        const other = kind === "switch" ? ((switchBuses.get(eq.mrid) ?? []).find((b) => b !== bus.mrid) ?? null) : null;
        list.push({ kind, equipment: eq, open, other });
      }
      feeders.set(bus.mrid, list);
    }
  }
  return { feeders, transformers: [...transformers.values()] };
}

function symbol(f: Feeder, x: number, y: number): SVGElement {
  const g = svg("g", {});
  const name = f.equipment.name || f.equipment.mrid;
  if (f.kind === "switch") {
    const closed = f.open === false;
    const shape =
      f.equipment.className === "Breaker"
        ? svg("rect", { x: x - 9, y: y - 9, width: 18, height: 18, class: closed ? "sld-closed" : "sld-open" })
        : svg("polygon", { points: `${x},${y - 11} ${x + 11},${y} ${x},${y + 11} ${x - 11},${y}`, class: closed ? "sld-closed" : "sld-open" });
    g.append(titled(shape, `${name} (${f.equipment.className}): ${f.open === null ? "state unknown" : closed ? "closed" : "open"}`));
    return g;
  }
  if (f.kind === "line") {
    g.append(svg("line", { x1: x, y1: y - 12, x2: x, y2: y + 14, class: "sld-wire" }));
    g.append(svg("polygon", { points: `${x - 7},${y + 8} ${x + 7},${y + 8} ${x},${y + 20}`, class: "sld-line-end" }));
  } else if (f.kind === "load") {
    g.append(svg("polygon", { points: `${x - 10},${y - 6} ${x + 10},${y - 6} ${x},${y + 12}`, class: "sld-load" }));
  } else if (f.kind === "generator") {
    g.append(svg("circle", { cx: x, cy: y, r: 13, class: "sld-gen" }));
    g.append(svg("path", { d: `M${x - 7},${y} q3.5,-7 7,0 t7,0`, class: "sld-gen-wave" }));
  } else {
    // Not a switch: rounded and shaded, so that it never reads as an open breaker.
    g.append(svg("rect", { x: x - 9, y: y - 7, width: 18, height: 14, rx: 5, class: "sld-other" }));
  }
  return titled(g, `${name} (${f.equipment.className})`);
}

/** Draws the diagram of ``sub`` into ``host`` (replacing what was there). */
export function renderDiagram(host: HTMLElement, sub: DiagramSubstation, act: DiagramActions): void {
  clear(host);
  const { feeders, transformers } = analyse(sub);
  const levels = sub.voltageLevels.slice().sort((a, b) => (b.baseVoltage?.nominalVoltage ?? 0) - (a.baseVoltage?.nominalVoltage ?? 0));
  // Each transformer takes a slot on every bus it joins, so its connections stay vertical where it can.
  const trSlots = new Map<string, string[]>();
  for (const tr of transformers) for (const w of tr.windings) trSlots.set(w.bus, [...(trSlots.get(w.bus) ?? []), tr.mrid]);
  const busX = new Map<string, { x0: number; x1: number; y: number }>();
  const slotX = new Map<string, number>(); // `${bus}|${transformer}` -> x
  let width = 0;
  levels.forEach((level, i) => {
    let x = MARGIN + LABEL_W;
    const y = MARGIN + i * BAND + BAR_Y;
    for (const bus of level.topologicalNode) {
      const n = (feeders.get(bus.mrid)?.length ?? 0) + (trSlots.get(bus.mrid)?.length ?? 0);
      const w = Math.max(1, n) * SLOT;
      busX.set(bus.mrid, { x0: x, x1: x + w, y });
      x += w + SLOT / 2;
    }
    width = Math.max(width, x);
  });
  const height = MARGIN * 2 + levels.length * BAND;
  const root = svg("svg", { width: Math.max(width, 480), height, viewBox: `0 0 ${Math.max(width, 480)} ${height}`, role: "img", "aria-label": `Single-line diagram of ${sub.name ?? sub.mrid}` });
  root.dataset.testid = "sld";

  const clickable = (el: SVGElement, mrid: string): SVGElement => {
    el.addEventListener("click", () => act.open(mrid));
    el.classList.add("sld-link");
    return el;
  };

  levels.forEach((level, i) => {
    const top = MARGIN + i * BAND;
    const band = svg("g", { class: "sld-level" });
    band.dataset.testid = "sld-level";
    band.dataset.mrid = level.mrid;
    band.dataset.kv = String(level.baseVoltage?.nominalVoltage ?? "");
    band.append(svg("text", { x: MARGIN, y: top + BAR_Y - 22, class: "sld-level-name" }, short(level.name || level.mrid, 22)));
    band.append(svg("text", { x: MARGIN, y: top + BAR_Y + 4, class: "sld-level-kv" }, kv(level.baseVoltage?.nominalVoltage)));
    if (level.topologicalNode.length === 0) {
      band.append(svg("text", { x: MARGIN + LABEL_W, y: top + BAR_Y + 4, class: "sld-muted" }, "no bus you may see"));
    }
    for (const bus of level.topologicalNode) {
      const at = busX.get(bus.mrid);
      if (!at) continue;
      const bar = svg("g", { class: "sld-bus" });
      bar.dataset.testid = "sld-busbar";
      bar.dataset.mrid = bus.mrid;
      bar.append(svg("line", { x1: at.x0, y1: at.y, x2: at.x1, y2: at.y, class: "sld-bar" }));
      bar.append(svg("text", { x: at.x0, y: at.y - 10, class: "sld-bus-name" }, short(bus.name || bus.mrid, 24)));
      band.append(titled(bar, `${bus.name || bus.mrid}: bus at ${kv(level.baseVoltage?.nominalVoltage)}`));
      const list = feeders.get(bus.mrid) ?? [];
      const trs = trSlots.get(bus.mrid) ?? [];
      trs.forEach((tr, k) => slotX.set(`${bus.mrid}|${tr}`, at.x0 + SLOT / 2 + k * SLOT));
      list.forEach((f, k) => {
        const x = at.x0 + SLOT / 2 + (trs.length + k) * SLOT;
        const g = svg("g", { class: `sld-feeder sld-feeder-${f.kind}` });
        g.dataset.testid = "sld-element";
        g.dataset.mrid = f.equipment.mrid;
        g.dataset.kind = f.kind;
        g.dataset.class = f.equipment.className;
        if (f.kind === "switch") g.dataset.open = f.open === null ? "unknown" : String(f.open);
        const symY = at.y + (f.kind === "switch" ? 40 : 70);
        g.append(svg("line", { x1: x, y1: at.y, x2: x, y2: symY - 12, class: "sld-wire" }));
        if (f.kind === "switch" && f.open === true) {
          // An open switch breaks the feeder: nothing drawn through it.
          g.append(svg("line", { x1: x, y1: symY + 12, x2: x, y2: symY + 40, class: "sld-wire sld-dead" }));
        } else if (f.kind === "switch") {
          g.append(svg("line", { x1: x, y1: symY + 12, x2: x, y2: symY + 40, class: "sld-wire" }));
        }
        g.append(symbol(f, x, symY));
        const label = f.equipment.name || f.equipment.mrid;
        g.append(svg("text", { x, y: symY + (f.kind === "switch" ? 56 : 38), class: "sld-label", "text-anchor": "middle" }, short(label)));
        const extra = f.kind === "switch" ? (f.open === null ? "state ?" : f.open ? "open" : "closed") : f.equipment.className;
        g.append(svg("text", { x, y: symY + (f.kind === "switch" ? 70 : 52), class: "sld-sub", "text-anchor": "middle" }, short(extra, 15)));
        band.append(clickable(g, f.equipment.mrid));
      });
    }
    root.append(band);
  });

  // Transformers: from the slot on the highest-voltage bus down to the others, two circles in between.
  for (const tr of transformers) {
    const ends = tr.windings
      .map((w) => ({ w, at: busX.get(w.bus), x: slotX.get(`${w.bus}|${tr.mrid}`) }))
      .filter((e): e is { w: Winding; at: { x0: number; x1: number; y: number }; x: number } => e.at !== undefined && e.x !== undefined)
      .sort((a, b) => a.at.y - b.at.y);
    if (ends.length === 0) continue;
    const g = svg("g", { class: "sld-transformer" });
    g.dataset.testid = "sld-element";
    g.dataset.kind = "transformer";
    g.dataset.mrid = tr.mrid;
    const first = ends[0];
    const lowest = ends[ends.length - 1];
    const cx = first.x;
    const cy = ends.length > 1 ? (first.at.y + lowest.at.y) / 2 : first.at.y + 80;
    g.append(svg("line", { x1: cx, y1: first.at.y, x2: cx, y2: cy - 26, class: "sld-wire" }));
    g.append(svg("circle", { cx, cy: cy - 9, r: 16, class: "sld-winding" }));
    g.append(svg("circle", { cx, cy: cy + 9, r: 16, class: "sld-winding" }));
    for (const e of ends.slice(1)) {
      g.append(svg("polyline", { points: `${cx},${cy + 26} ${cx},${e.at.y - 20} ${e.x},${e.at.y - 20} ${e.x},${e.at.y}`, class: "sld-wire" }));
    }
    const voltages = ends.map((e) => kv(e.w.ratedU));
    g.dataset.windings = ends.map((e) => String(e.w.ratedU ?? "")).join("/");
    // Labelled on its left, clear of the feeders that hang from the same bus to its right.
    g.append(svg("text", { x: cx - 22, y: cy - 4, class: "sld-label", "text-anchor": "end" }, short(tr.name || tr.mrid, 18)));
    g.append(svg("text", { x: cx - 22, y: cy + 10, class: "sld-sub", "text-anchor": "end" }, voltages.join(" / ")));
    root.append(clickable(titled(g, `${tr.name || tr.mrid}: transformer, windings ${voltages.join(" / ")}`), tr.mrid));
  }

  const head = h(
    "div",
    { className: "sld-head" },
    h("h3", { testid: "sld-title" }, `${sub.name || sub.mrid}: single-line diagram`),
    h("button", { className: "ghost small", testid: "sld-close", title: "Close the diagram", onclick: () => act.close() }, "Close"),
  );
  const legend = h(
    "div",
    { className: "sld-legend muted", testid: "sld-legend" },
    "■ breaker closed · □ open · ◆ other switch · ▽ load · ○ generator · ↓ line leaving · ◎ transformer (winding voltages) · ▢ other equipment. Laid out automatically from the connectivity you may see; live switch changes redraw it.",
  );
  host.append(head, legend, h("div", { className: "sld-canvas" }, root));
}
