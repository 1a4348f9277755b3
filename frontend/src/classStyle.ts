// How a class looks on the canvas: a colour per class and a shape per family of classes.
// Families come from the ontology's class hierarchy when it is loaded, so a class the
// ontology adds later gets the right shape without a change here.

import type { Domain, OntologyClass } from "./queries";

export type Shape = "circle" | "square" | "ring";

export const SHAPE_LABEL: Record<Shape, string> = {
  circle: "equipment",
  ring: "container / topology",
  square: "gas network",
};

// Hand-picked colours for the classes planners meet most, so they stay the same across sessions.
const KNOWN: Record<string, string> = {
  ACLineSegment: "#2563eb",
  DCLineSegment: "#1d4ed8",
  PowerTransformer: "#7c3aed",
  PowerTransformerEnd: "#a78bfa",
  SynchronousMachine: "#dc2626",
  GeneratingUnit: "#b91c1c",
  ThermalGeneratingUnit: "#ef4444",
  HydroGeneratingUnit: "#0284c7",
  WindGeneratingUnit: "#14b8a6",
  EnergyConsumer: "#ea580c",
  ConformLoad: "#f97316",
  NonConformLoad: "#fb923c",
  Substation: "#0f766e",
  VoltageLevel: "#0891b2",
  Bay: "#06b6d4",
  BaseVoltage: "#94a3b8",
  BusbarSection: "#4f46e5",
  Breaker: "#475569",
  Disconnector: "#64748b",
  LoadBreakSwitch: "#52525b",
  Switch: "#71717a",
  Terminal: "#9ca3af",
  ConnectivityNode: "#a1a1aa",
  TopologicalNode: "#78716c",
  Location: "#d4d4d8",
  PositionPoint: "#e4e4e7",
  EquivalentInjection: "#be185d",
  LinearShuntCompensator: "#c026d3",
  GasPipe: "#16a34a",
  GasNode: "#65a30d",
  GasSource: "#059669",
  GasSink: "#84cc16",
  GasCompressorStation: "#ca8a04",
  GasOfftake: "#d97706",
  GasValve: "#a16207",
  GasControlValve: "#92400e",
  GasRegulator: "#b45309",
  GasStorage: "#15803d",
  GasTerminal: "#4d7c0f",
  GasMeasurement: "#a3e635",
};

const PALETTE = [
  "#0ea5e9", "#8b5cf6", "#f43f5e", "#10b981", "#f59e0b", "#6366f1", "#ec4899", "#22c55e",
  "#e11d48", "#0d9488", "#9333ea", "#ca8a04", "#2dd4bf", "#db2777", "#4338ca", "#65a30d",
];

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

const CONTAINER_ROOTS = new Set([
  "EquipmentContainer", "ConnectivityNodeContainer", "Substation", "VoltageLevel", "Bay", "Line",
  "GeographicalRegion", "SubGeographicalRegion", "TopologicalNode", "ConnectivityNode", "Terminal",
  "BaseVoltage", "Location", "PositionPoint", "ACDCTerminal", "TopologicalIsland",
]);

export class ClassStyles {
  private parents = new Map<string, string[]>();
  private domains = new Map<string, Domain>();

  setOntology(classes: OntologyClass[]): void {
    for (const c of classes) {
      this.parents.set(c.name, c.parents);
      this.domains.set(c.name, c.domain);
    }
  }

  ancestors(name: string): string[] {
    const seen: string[] = [];
    const queue = [name];
    while (queue.length > 0) {
      const n = queue.shift() as string;
      if (seen.includes(n)) continue;
      seen.push(n);
      queue.push(...(this.parents.get(n) ?? []));
    }
    return seen;
  }

  color(className: string): string {
    for (const a of this.ancestors(className)) {
      if (KNOWN[a]) return a === className ? KNOWN[a] : shade(KNOWN[a], hash(className));
    }
    return PALETTE[hash(className) % PALETTE.length];
  }

  shape(className: string, domain: string): Shape {
    if (String(domain).toUpperCase() === "GAS") return "square";
    const anc = this.ancestors(className);
    if (anc.some((a) => CONTAINER_ROOTS.has(a))) return "ring";
    return "circle";
  }

  domainOf(className: string): Domain | undefined {
    return this.domains.get(className);
  }
}

// A subclass without its own colour gets a lighter or darker variant of its ancestor's colour.
function shade(hex: string, seed: number): string {
  const f = ((seed % 5) - 2) * 0.12;
  const n = parseInt(hex.slice(1), 16);
  const ch = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map((c) =>
    Math.round(f >= 0 ? c + (255 - c) * f : c * (1 + f)),
  );
  return `#${ch.map((c) => c.toString(16).padStart(2, "0")).join("")}`;
}

/** Short readable form of the security label: the classification if it has one, else the expression. */
export function labelBadge(label: string): { text: string; level: string } {
  const m = /classification=([A-Z-]+)/.exec(label);
  const level = m ? m[1] : label.includes("role=admin") ? "ADMIN" : "RESTRICTED";
  return { text: label, level };
}
