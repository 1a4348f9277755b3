// The scenario picker: the explorer shows either the live graph or one scenario (a base with planned
// changes applied on top, see the README's "Scenarios"). Choosing a scenario reloads what is on screen as it
// is in that scenario and marks how each object differs from the base: added, removed (kept on screen from
// the base, greyed and hollow) or changed, the rest drawn in one quiet colour; the detail panel lists a changed object's values before and after.

import type Graph from "graphology";
import type { HubApi } from "./api";
import { byTestId, clear, h } from "./dom";
import type { GraphModel } from "./graphModel";
import type { Subgraph } from "./queries";
import { formatValue } from "./ui/detail";
import type { GraphView } from "./view";
import { CompareDocument, ScenariosDocument, SubgraphViewFragmentDoc, TypedDocumentString } from "./generated/operations";
import type * as G from "./generated/operations";

export type Scenario = G.ScenariosQuery["scenarios"][number];
export type ScenarioChange = G.CompareQuery["compare"]["changes"][number];
export type ChangeKind = "created" | "deleted" | "updated";

/** How each kind of difference is drawn, and what the legend calls it. */
export const CHANGE_STYLE: Record<ChangeKind, { color: string; name: string }> = {
  created: { color: "#16a34a", name: "Added" },
  deleted: { color: "#cbd5e1", name: "Removed" },
  updated: { color: "#f59e0b", name: "Changed" },
};
const REMOVED_EDGE = "#e2e8f0";
// The objects a scenario leaves as they are: one quiet colour, so that the marks stand out among the
// class colours (several of which are greens and ambers).
const UNCHANGED = "#94a3b8";

/** The explorer's graph, with the attributes this module adds (scenarioChange, baseColor, baseType) not in
 * its types. */
type LooseGraph = Graph<Record<string, unknown>, Record<string, unknown>>;

/** A bound on the pages of differences read for one scenario (each of the page size Compare asks for). */
const MAX_COMPARE_PAGES = 50;

/** What the picker needs of the explorer. */
export interface ScenarioHost {
  api: HubApi;
  model: GraphModel;
  view: GraphView;
  /** Brings the view back to now (the slider and a scenario are not combined). */
  leavePast: () => Promise<void>;
  /** After the objects on screen changed. */
  graphChanged: () => void;
  /** Says what went wrong. */
  report: (e: unknown) => void;
}

/** Variables of a view in a scenario: `m0`, `m1`, ... for the aliases `n0`, `n1`, ..., and `scenario`. */
export type ViewInVariables = Record<string, string | null>;

/**
 * The current view again, as it is in `$scenario` (null: live): for each object on it (aliases n0, n1, ...)
 * its neighbourhood to the given depth (1 where it was expanded, else 0), each selecting the generated
 * SubgraphView fragment. The depths are numbers the page chooses, never text.
 */
export function viewIn(depths: number[]): TypedDocumentString<Record<`n${number}`, Subgraph>, ViewInVariables> {
  const vars = ["$scenario: String", ...depths.map((_, i) => `$m${i}: ID!`)].join(", ");
  const fields = depths
    .map(
      (d, i) =>
        `n${i}: neighbourhood(mrid: $m${i}, depth: ${Math.max(0, Math.min(1, Math.trunc(d)))}, scenario: $scenario) { ...SubgraphView }`,
    )
    .join("\n");
  return new TypedDocumentString(`query ViewIn(${vars}) {\n${fields}\n}\n${SubgraphViewFragmentDoc.toString()}`);
}

export class ScenarioPicker {
  /** The scenario shown (its id; null: the live graph). */
  current: string | null = null;
  private list: Scenario[] = [];
  private changes = new Map<string, ScenarioChange>();
  private readonly host: ScenarioHost;

  constructor(host: ScenarioHost) {
    this.host = host;
    this.select().addEventListener("change", () => void this.choose(this.select().value || null));
  }

  private graph(): LooseGraph {
    return this.host.model.graph;
  }

  private select(): HTMLSelectElement {
    return byTestId<HTMLSelectElement>("scenario-picker");
  }

  /** The scenario to read an object in: none for one removed in it (the panel then shows it from the base). */
  scenarioFor(mrid: string): string | null {
    return this.changes.get(mrid)?.change === "deleted" ? null : this.current;
  }

  /** Lists the scenarios the caller may see, with "Live" first (and chosen). */
  async load(): Promise<void> {
    try {
      this.list = (await this.host.api.query("Scenarios", ScenariosDocument)).scenarios;
    } catch (e) {
      this.list = [];
      this.host.report(e);
    }
    this.render();
  }

  /** Back to "Live" with nothing listed (signed out). */
  reset(): void {
    this.list = [];
    this.current = null;
    this.changes.clear();
    this.render();
  }

  private render(): void {
    const sel = this.select();
    clear(sel);
    sel.append(h("option", { value: "" }, "Live"));
    for (const s of this.list) sel.append(h("option", { value: s.id, title: s.description || s.label }, s.name));
    sel.value = this.current ?? "";
    sel.disabled = this.list.length === 0;
    this.renderLegend();
  }

  private renderLegend(): void {
    const legend = byTestId("scenario-legend");
    clear(legend);
    legend.hidden = this.current === null;
    if (this.current === null) return;
    const counts: Record<ChangeKind, number> = { created: 0, deleted: 0, updated: 0 };
    for (const c of this.changes.values()) counts[c.change as ChangeKind] += 1;
    for (const kind of ["created", "deleted", "updated"] as ChangeKind[]) {
      const st = CHANGE_STYLE[kind];
      legend.append(
        h(
          "li",
          { testid: "scenario-legend-item", "data-change": kind },
          h("span", { className: kind === "deleted" ? "swatch dashed" : "swatch", style: `background:${st.color}` }),
          h("span", { className: "cls" }, st.name),
          h("span", { className: "n", testid: `scenario-count-${kind}` }, counts[kind]),
        ),
      );
    }
    legend.append(
      h(
        "li",
        { testid: "scenario-legend-unchanged" },
        h("span", { className: "swatch", style: `background:${UNCHANGED}` }),
        h("span", { className: "cls" }, "As in the base"),
      ),
    );
  }

  /** Shows the view in scenario `id` (null: live), with its differences from the base marked. */
  async choose(id: string | null): Promise<void> {
    if (id === this.current) return;
    await this.host.leavePast();
    const g = this.graph();
    // What is on screen, as the base or live graph shows it: what the scenario view starts from, and where
    // the objects a scenario removes are drawn from.
    const before = new Map(g.mapNodes((m, a) => [m, { ...a, color: a.baseColor ?? a.color }] as const));
    const beforeEdges = g.mapEdges((key, a, s, t) => ({ key, a, s, t }));
    const spec = {
      mrids: g.nodes(),
      expanded: new Set(g.filterNodes((_, a) => a.expanded === true)),
    };
    this.current = id;
    this.select().value = id ?? "";
    byTestId<HTMLInputElement>("time-slider").disabled = id !== null;
    try {
      this.changes = id === null ? new Map<string, ScenarioChange>() : await this.compare(id);
      if (this.current !== id) return; // another choice meanwhile
      await this.reload(spec, id);
      if (this.current !== id) return;
      g.forEachNode((m, a) => {
        if (a.baseColor !== undefined) g.setNodeAttribute(m, "color", a.baseColor);
        if (a.baseType !== undefined) g.setNodeAttribute(m, "type", a.baseType);
        g.removeNodeAttribute(m, "baseColor");
        g.removeNodeAttribute(m, "baseType");
        g.removeNodeAttribute(m, "scenarioChange");
      });
      if (id !== null) this.mark(before, beforeEdges);
    } catch (e) {
      this.host.report(e);
    }
    this.renderLegend();
    this.host.view.refresh();
    this.host.graphChanged();
  }

  private async compare(id: string): Promise<Map<string, ScenarioChange>> {
    const found = new Map<string, ScenarioChange>();
    let after: string | null = null;
    for (let i = 0; i < MAX_COMPARE_PAGES; i++) {
      const page: G.CompareQuery["compare"] = (
        await this.host.api.query("Compare", CompareDocument, { scenario: id, after })
      ).compare;
      for (const c of page.changes) found.set(c.mrid, c);
      if (!page.hasNextPage || !page.endCursor) break;
      after = page.endCursor;
    }
    return found;
  }

  private async reload(spec: { mrids: string[]; expanded: Set<string> }, id: string | null): Promise<void> {
    if (spec.mrids.length === 0) return;
    const vars: ViewInVariables = { scenario: id };
    spec.mrids.forEach((m, i) => (vars[`m${i}`] = m));
    const r = await this.host.api.query("ViewIn", viewIn(spec.mrids.map((m) => (spec.expanded.has(m) ? 1 : 0))), vars);
    if (this.current !== id) return;
    const { model, view } = this.host;
    const g = this.graph();
    const added = model.replaceWith(spec.mrids, spec.mrids.map((_, i) => r[`n${i}`]), spec.expanded);
    if (view.selected && !g.hasNode(view.selected)) view.selected = null;
    view.placeGeo(added);
    if (added.length > 0) view.runForce(1500);
  }

  /** Marks the objects on screen that the scenario adds or changes, and puts back those it removes, greyed. */
  private mark(
    before: Map<string, Record<string, unknown>>,
    edges: { key: string; a: Record<string, unknown>; s: string; t: string }[],
  ): void {
    const g = this.graph();
    for (const [mrid, c] of this.changes) {
      const kind = c.change as ChangeKind;
      if (kind === "deleted") {
        const old = before.get(mrid);
        if (!old || g.hasNode(mrid)) continue;
        g.addNode(mrid, { ...old, expanded: false });
      } else if (!g.hasNode(mrid)) continue;
      g.setNodeAttribute(mrid, "scenarioChange", kind);
      if (kind === "deleted") {
        // Hollow: a ring where the object was.
        g.setNodeAttribute(mrid, "baseType", g.getNodeAttribute(mrid, "type"));
        g.setNodeAttribute(mrid, "type", "ring");
      }
    }
    g.forEachNode((m, a) => {
      const kind = a.scenarioChange as ChangeKind | undefined;
      g.setNodeAttribute(m, "baseColor", a.color);
      g.setNodeAttribute(m, "color", kind ? CHANGE_STYLE[kind].color : UNCHANGED);
    });
    // The base's relationships of the removed objects, drawn faintly.
    for (const e of edges) {
      const gone = this.changes.get(e.s)?.change === "deleted" || this.changes.get(e.t)?.change === "deleted";
      if (!gone || g.hasEdge(e.key) || !g.hasNode(e.s) || !g.hasNode(e.t)) continue;
      g.addEdgeWithKey(e.key, e.s, e.t, { ...e.a, color: REMOVED_EDGE });
    }
  }

  /** Adds to the detail panel how the object differs in the scenario: its values before and after. */
  decorateDetail(panel: HTMLElement, mrid: string): void {
    const c = this.current === null ? undefined : this.changes.get(mrid);
    if (!c) return;
    const kind = c.change as ChangeKind;
    const values = (v: ScenarioChange["before"]) => new Map((v?.attributes ?? []).map((a) => [a.key, a.value]));
    const was = values(c.before);
    const now = values(c.after);
    const keys = kind === "updated" ? c.changedKeys : [...new Set([...was.keys(), ...now.keys()])].sort();
    const show = (m: Map<string, unknown>, k: string) => (m.has(k) ? formatValue(m.get(k)) : "—");
    panel.append(
      h(
        "section",
        { className: "detail-section scenario-diff", testid: "scenario-diff", "data-change": kind },
        h("h3", {}, `In the scenario: ${CHANGE_STYLE[kind].name.toLowerCase()}`),
        h(
          "table",
          { className: "attrs" },
          h("tr", {}, h("th", {}, ""), h("th", {}, "Base"), h("th", {}, "Scenario")),
          keys.map((k) =>
            h(
              "tr",
              { testid: "scenario-diff-row", "data-key": k },
              h("td", {}, k),
              h("td", { testid: "scenario-diff-before" }, show(was, k)),
              h("td", { testid: "scenario-diff-after" }, show(now, k)),
            ),
          ),
        ),
      ),
    );
  }
}
