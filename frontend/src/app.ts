// The page's controller: signs the caller in, turns clicks into API calls, and keeps the graph,
// the panels and the live feed in step.

import { ApiError, HubApi, fetchDemoUsers, type DemoUser } from "./api";
import { ClassStyles, SHAPE_LABEL, type Shape } from "./classStyle";
import { byTestId, clear, debounce, h } from "./dom";
import { EDGE_COLOR, GraphModel, edgeId } from "./graphModel";
import { MAX_CSV_OBJECTS, detailsToCsv, download, exportFileName, fetchDetails, objectsInView, renderPng, toGeoJson } from "./export";
import { LiveFeed, type LiveState } from "./live";
import * as Q from "./queries";
import { ScenarioPicker } from "./scenarios";
import type { Caller, Change, ClassCount, DependencyDirection, GraphNode, ObjectDetail, PathVia, Subgraph } from "./queries";
import { clearToken, getToken, setToken, tokenExpiry } from "./session";
import { measure } from "./timing";
import { renderDetail, type DetailState } from "./ui/detail";
import { renderMeasurements } from "./ui/measurementChart";
import { SearchBox, swatch } from "./ui/search";
import { diagramMrids, diagramSubstation, renderDiagram } from "./ui/substationDiagram";
import { FLASH, GraphView, HIGHLIGHT_EDGE, type LayoutMode } from "./view";
import { PRESSURE_BANDS, VOLTAGE_BANDS, pressureBand, voltageBand, type Band } from "./gridStyle";

// Objects per page of a class load (the API's largest page), and mRIDs per request for the relationships
// among them (the API's longest list argument, HUB_MAX_LIST_ITEMS).
const PAGE_SIZE = 5000;
const MAX_ON_SCREEN = 6000;
const RELATIONS_BATCH = 5000;
const DISCOVERY_BATCH = 20;

// What a person reads when the page itself failed (a fault of the page, not of their request).
// The detail panel's measurement charts: the span they show, the points asked for, how often refreshed.
const MEASUREMENT_SPAN_MS = 24 * 3600 * 1000;
const MEASUREMENT_POINTS = 300;
const MEASUREMENT_POLL_MS = 3000;
const PAGE_FAULT = "The page could not finish that step because of a fault in the page itself. Reloading usually helps; the details are in the browser's console.";

export class App {
  readonly styles = new ClassStyles();
  readonly model = new GraphModel(this.styles);
  readonly api = new HubApi(() => getToken());
  readonly view: GraphView;
  /** The scenario the view shows (none: the live graph). */
  readonly scenarios: ScenarioPicker;
  readonly live: LiveFeed;
  private readonly search: SearchBox;
  caller: Caller | null = null;
  private detail: DetailState | null = null;
  // The open single-line diagram: the object it was opened from and the objects it draws.
  private diagram: { mrid: string; mrids: string[] } | null = null;
  private pathStart: string | null = null;
  private pathEnd: string | null = null;
  private discoveryQueue = new Set<string>();
  private retryTimer: number | undefined;
  private measurementTimer: number | undefined;
  private bannerKind: string | null = null;
  // Class loads run one after another: a click while one loads queues the next.
  private classLoads: Promise<void> = Promise.resolve();
  private readonly queuedClasses: string[] = [];
  private exporting = false;
  /** The time the view shows (ISO; null: now). */
  private asOf: string | null = null;
  /** While the view shows a past time: what was on screen (and expanded) when it left now, so that
   * moving the slider shows those objects as they were then, and "Now" brings them all back. */
  private timeSpec: { mrids: string[]; expanded: Set<string> } | null = null;
  private earliest = Infinity;
  liveLog: Change[] = [];

  constructor() {
    this.view = new GraphView(byTestId("graph"), this.model, {
      onClickNode: (mrid, shift) => {
        if (shift && this.view.selected && this.view.selected !== mrid) {
          this.pathStart = this.view.selected;
          void this.findPath(mrid);
        } else void this.select(mrid);
      },
      onDoubleClickNode: (mrid) => void this.toggleExpand(mrid),
      onClickStage: () => this.deselect(),
      onLayoutState: () => undefined,
    });
    this.live = new LiveFeed(() => getToken(), {
      onChange: (c, feed) => this.onChange(c, feed),
      onState: (s, detail) => this.onLiveState(s, detail),
    });
    this.search = new SearchBox(
      byTestId("search"),
      this.styles,
      (text) => this.api.query("Search", Q.SEARCH, { text, first: 15 }).then((r) => r.search),
      (hit) => void this.open(hit.mrid),
    );
    this.api.setListener({
      onAuthFailure: (msg) => this.authFailed(msg),
      onUnreachable: (msg) => this.unreachable(msg),
      onReachable: () => this.reachable(),
    });
    this.api.onBusy((n) => {
      byTestId("busy").hidden = n === 0;
    });
    this.bindControls();
    this.scenarios = new ScenarioPicker({
      api: this.api,
      model: this.model,
      view: this.view,
      leavePast: () => this.setAsOf(null),
      graphChanged: () => this.onGraphChanged(),
      report: (e) => this.report(e),
    });
    this.model.graph.on("nodeAdded", () => this.onGraphChanged());
    this.model.graph.on("nodeDropped", () => this.onGraphChanged());
    this.model.graph.on("cleared", () => this.onGraphChanged());
  }

  // ---------------------------------------------------------------- sign-in

  async start(): Promise<void> {
    const token = getToken();
    if (token) {
      const exp = tokenExpiry(token);
      if (exp && exp.getTime() < Date.now()) {
        clearToken();
        await this.showSignIn("Your token expired at " + exp.toLocaleString("en-GB") + ". Sign in again.");
        return;
      }
      await this.afterSignIn();
    } else {
      await this.showSignIn();
    }
  }

  async showSignIn(error?: string): Promise<void> {
    const dialog = byTestId("sign-in-dialog");
    dialog.hidden = false;
    const err = byTestId("sign-in-error");
    err.hidden = !error;
    err.textContent = error ?? "";
    const users = await fetchDemoUsers();
    const box = byTestId("demo-users");
    const list = byTestId("demo-user-list");
    clear(list);
    box.hidden = !users || users.length === 0;
    for (const u of users ?? []) list.append(this.demoUserItem(u));
  }

  private demoUserItem(u: DemoUser): HTMLElement {
    return h(
      "li",
      {},
      h(
        "button",
        { type: "button", testid: "demo-user", "data-user": u.name, onclick: () => void this.signIn(u.token) },
        h("span", { className: "du-name" }, u.name),
        h("span", { className: "du-desc" }, u.description),
        u.clearance ? h("span", { className: "badge" }, u.clearance) : null,
      ),
    );
  }

  async signIn(token: string | null): Promise<void> {
    if (token !== null) {
      if (!token.trim()) {
        this.signInError("Paste a token first, or pick a demo user.");
        return;
      }
      setToken(token);
    } else {
      clearToken();
    }
    await this.afterSignIn();
  }

  private signInError(msg: string): void {
    const err = byTestId("sign-in-error");
    err.hidden = false;
    err.textContent = msg;
    byTestId("sign-in-dialog").hidden = false;
  }

  private async afterSignIn(): Promise<void> {
    let me: Caller;
    try {
      me = (await this.api.query("Me", Q.ME)).me;
    } catch (e) {
      const err = e as ApiError;
      if (err.kind === "auth") return; // authFailed already reopened the dialog
      this.signInError(err.kind === "unreachable" ? err.message : `Sign-in failed: ${err.message}`);
      return;
    }
    this.caller = me;
    byTestId("sign-in-dialog").hidden = true;
    this.hideBanner();
    this.renderUser();
    this.search.enable(true);
    byTestId<HTMLInputElement>("time-slider").disabled = false;
    this.resetGraph();
    this.live.start();
    void this.scenarios.load();
    try {
      const [cls, counts] = await Promise.all([
        this.api.query("OntologyClasses", Q.ONTOLOGY_CLASSES),
        this.api.query("Counts", Q.COUNTS, {}),
      ]);
      this.styles.setOntology(cls.ontologyClasses);
      this.renderCatalogue(counts.counts);
      // Opened from the data products page ("open in the explorer"): load the class it names.
      const wanted = new URLSearchParams(window.location.search).get("class");
      const found = wanted ? counts.counts.find((c) => c.className === wanted) : undefined;
      if (found) void this.loadClass(found.className, found.count);
    } catch (e) {
      if (e instanceof ApiError) {
        if (e.kind === "query") this.toast(`The catalogue could not be loaded. ${e.message}`, true);
      } else {
        console.error(e);
        this.toast(`The catalogue could not be loaded. ${PAGE_FAULT}`, true);
      }
    }
  }

  signOut(): void {
    clearToken();
    this.caller = null;
    this.live.stop();
    this.scenarios.reset();
    this.resetGraph();
    this.renderUser();
    this.search.enable(false);
    byTestId<HTMLInputElement>("time-slider").disabled = true;
    clear(byTestId("catalogue"));
    byTestId("catalogue").append(h("li", { className: "muted" }, "Sign in to see the catalogue."));
    void this.showSignIn();
  }

  private renderUser(): void {
    const name = byTestId("user-name");
    const clearance = byTestId("user-clearance");
    const c = this.caller;
    if (!c) {
      name.textContent = "not signed in";
      clearance.textContent = "";
    } else {
      name.textContent = c.anonymous ? "anonymous" : c.subject + (c.org ? ` · ${c.org}` : "");
      name.title = [`roles: ${c.roles.join(", ") || "none"}`, `groups: ${c.groups.join(", ") || "none"}`].join("\n");
      clearance.textContent = c.clearance ?? "no clearance";
    }
    byTestId("sign-out").hidden = !c;
    byTestId("sign-in-open").hidden = Boolean(c && !c.anonymous);
  }

  // ---------------------------------------------------------------- errors

  private authFailed(msg: string): void {
    clearToken();
    this.live.stop();
    this.showBanner("auth", `${msg} Your session has ended; sign in again to continue.`, [
      ["Sign in again", () => void this.showSignIn(msg)],
    ]);
    void this.showSignIn(msg);
  }

  private unreachable(msg: string): void {
    this.showBanner("unreachable", `${msg} The page keeps what it shows and retries.`, [["Retry now", () => void this.retry()]]);
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => void this.retry(), 5000);
  }

  private reachable(): void {
    if (this.bannerKind === "unreachable") this.hideBanner();
  }

  private async retry(): Promise<void> {
    try {
      if (this.caller) await this.api.query("Me", Q.ME);
      else await this.afterSignIn();
    } catch {
      /* unreachable() schedules the next attempt */
    }
  }

  private showBanner(kind: string, text: string, actions: [string, () => void][]): void {
    const banner = byTestId("banner");
    banner.hidden = false;
    banner.dataset.kind = kind;
    this.bannerKind = kind;
    byTestId("banner-text").textContent = text;
    const box = byTestId("banner-actions");
    clear(box);
    for (const [label, fn] of actions) box.append(h("button", { className: "ghost small", testid: `banner-${kind}-action`, onclick: fn }, label));
  }

  private hideBanner(): void {
    byTestId("banner").hidden = true;
    this.bannerKind = null;
  }

  toast(text: string, error = false): void {
    const t = h("div", { className: `toast${error ? " error" : ""}`, testid: "toast" }, text);
    byTestId("toasts").append(t);
    window.setTimeout(() => t.remove(), error ? 7000 : 3500);
  }

  /** Says what went wrong in a sentence: the hub's own message for a refused query, never a library's. */
  private report(e: unknown): void {
    if (e instanceof ApiError) {
      if (e.kind === "query") this.toast(e.message, true);
      return; // otherwise the banner already tells why
    }
    console.error(e); // the details, for whoever opens the console
    this.toast(PAGE_FAULT, true);
  }

  // ---------------------------------------------------------------- graph actions

  private resetGraph(): void {
    this.view.stopForce();
    this.model.clear();
    this.asOf = null;
    this.timeSpec = null;
    this.renderTime();
    this.renderTimeRange();
    this.detail = null;
    this.pathStart = null;
    this.pathEnd = null;
    this.view.selected = null;
    this.view.pathStart = null;
    this.view.setHighlight(null, null);
    this.renderDetailPanel();
    this.renderPath();
  }

  /** Opens an object: puts it on screen (kept until cleared) and shows its details. */
  async open(mrid: string): Promise<void> {
    try {
      const detail = await this.fetchDetail(mrid);
      if (!detail) {
        this.toast(`Object ${mrid} was not found.`, true);
        return;
      }
      const added = this.model.upsertNode(detail);
      this.model.graph.setNodeAttribute(mrid, "pinned", true);
      if (this.timeSpec && !this.timeSpec.mrids.includes(mrid)) this.timeSpec.mrids.push(mrid);
      if (added) this.view.placeGeo([mrid]);
      this.view.selected = mrid;
      this.view.refresh();
      this.view.focus(mrid);
      await this.showDetail(detail);
    } catch (e) {
      this.report(e);
    }
  }

  private async fetchDetail(mrid: string): Promise<ObjectDetail | null> {
    return (await this.api.query("ObjectDetail", Q.OBJECT, { mrid, scenario: this.scenarios.scenarioFor(mrid) })).object;
  }

  async select(mrid: string): Promise<void> {
    this.view.selected = mrid;
    this.view.refresh();
    try {
      const detail = await this.fetchDetail(mrid);
      if (!detail) {
        this.model.remove(mrid);
        this.toast("That object is no longer visible to you.", true);
        return;
      }
      if (this.view.selected !== mrid) return;
      await this.showDetail(detail);
    } catch (e) {
      this.report(e);
    }
  }

  private deselect(): void {
    this.view.selected = null;
    this.detail = null;
    this.view.refresh();
    this.renderDetailPanel();
  }

  private async showDetail(detail: ObjectDetail): Promise<void> {
    const keepDeps = this.detail && this.detail.detail.mrid === detail.mrid ? this.detail.deps : null;
    this.detail = {
      detail,
      neighbours: null,
      expanded: this.isExpanded(detail.mrid),
      onScreen: this.model.graph.hasNode(detail.mrid),
      pathStart: this.pathStart,
      deps: keepDeps,
      depsLoading: false,
      depsDirection: keepDeps && this.detail ? this.detail.depsDirection : "DOWNSTREAM",
      measurements: null,
      history: null,
      asOf: this.asOf,
    };
    this.renderDetailPanel();
    this.followMeasurements(detail.mrid);
    void this.loadHistory(detail.mrid);
    try {
      const sub = await this.neighbourhood(detail.mrid);
      if (this.detail?.detail.mrid !== detail.mrid) return;
      this.detail.neighbours = sub;
      this.renderDetailPanel();
    } catch (e) {
      this.report(e);
    }
  }

  /**
   * Keeps the shown object's measurement charts fresh: its kept readings of the last 24 hours now, then
   * again every few seconds while it stays the shown object (the API downsamples to the points asked for).
   */
  private followMeasurements(mrid: string): void {
    window.clearTimeout(this.measurementTimer);
    const shown = () => this.detail?.detail.mrid === mrid;
    const load = async (): Promise<void> => {
      if (!shown()) return;
      try {
        const to = new Date();
        const from = new Date(to.getTime() - MEASUREMENT_SPAN_MS);
        const r = await this.api.query("MeasurementHistory", Q.MEASUREMENT_HISTORY, {
          mrid,
          from: from.toISOString(),
          to: to.toISOString(),
          maxPoints: MEASUREMENT_POINTS,
        });
        if (!shown() || !this.detail) return;
        this.detail.measurements = r.measurementHistory;
        // Only the charts are drawn again: the rest of the panel (and where it is scrolled to) stays.
        const old = document.querySelector('[data-testid="detail-measurements"]');
        if (old) old.replaceWith(renderMeasurements(r.measurementHistory));
        else this.renderDetailPanel();
      } catch (e) {
        if (shown()) this.report(e);
        return;
      }
      if (shown()) this.measurementTimer = window.setTimeout(() => void load(), MEASUREMENT_POLL_MS);
    };
    void load();
  }

  private neighbourhood(mrid: string, types?: string[]): Promise<Subgraph> {
    return this.api
      .query("Neighbourhood", Q.NEIGHBOURHOOD, { mrid, depth: 1, types: types ?? null, asOf: this.asOf, scenario: this.scenarios.current })
      .then((r) => r.neighbourhood);
  }

  /** The object's kept versions, for the detail panel's history. */
  private async loadHistory(mrid: string): Promise<void> {
    try {
      const versions = (await this.api.query("ObjectHistory", Q.OBJECT_HISTORY, { mrid, scenario: this.scenarios.current })).history;
      for (const v of versions) this.earliest = Math.min(this.earliest, Date.parse(v.validFrom));
      this.renderTimeRange();
      if (this.detail?.detail.mrid !== mrid) return;
      this.detail.history = versions;
      this.renderDetailPanel();
    } catch (e) {
      this.report(e);
    }
  }

  // ---------------------------------------------------------------- time travel

  /** The slider spans a day back from now, or further back to the earliest version seen. */
  private renderTimeRange(): void {
    const slider = byTestId<HTMLInputElement>("time-slider");
    const now = Math.floor(Date.now() / 1000);
    const min = Math.floor(Math.min(now - 86400, this.earliest / 1000 - 60));
    slider.min = String(min);
    if (this.asOf === null) {
      slider.max = String(now);
      slider.value = String(now);
    }
  }

  private renderTime(): void {
    const label = byTestId("time-label");
    label.textContent = this.asOf === null ? "now" : new Date(this.asOf).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
    label.dataset.iso = this.asOf ?? "";
    byTestId<HTMLButtonElement>("time-now").disabled = this.asOf === null;
    byTestId("time-travel").classList.toggle("past", this.asOf !== null);
  }

  /** Shows the view as it was at `asOf` (null: now): the same objects, each as it was then (gone when it
   * did not exist then or its version then is not one you may see), and their neighbours then. */
  async setAsOf(asOf: string | null): Promise<void> {
    if (asOf === this.asOf) return;
    if (this.timeSpec === null) {
      const g = this.model.graph;
      this.timeSpec = { mrids: g.nodes(), expanded: new Set(g.filterNodes((_, a) => a.expanded)) };
    }
    this.asOf = asOf;
    this.renderTime();
    if (asOf === null) this.renderTimeRange();
    const spec = this.timeSpec;
    if (asOf === null) this.timeSpec = null;
    try {
      await this.showViewAt(spec, asOf);
    } catch (e) {
      this.report(e);
    }
    if (this.detail) {
      this.detail.asOf = this.asOf;
      this.renderDetailPanel();
    }
  }

  private async showViewAt(spec: { mrids: string[]; expanded: Set<string> }, asOf: string | null): Promise<void> {
    if (spec.mrids.length === 0) return;
    const vars: Q.ViewAtVariables = { asOf };
    spec.mrids.forEach((m, i) => (vars[`m${i}`] = m));
    const r = await this.api.query("ViewAt", Q.viewAt(spec.mrids.map((m) => (spec.expanded.has(m) ? 1 : 0))), vars);
    if (this.asOf !== asOf) return; // the slider moved on meanwhile
    const g = this.model.graph;
    const added = this.model.replaceWith(spec.mrids, spec.mrids.map((_, i) => r[`n${i}`]), spec.expanded);
    if (this.view.selected && !g.hasNode(this.view.selected)) this.view.selected = null;
    this.view.placeGeo(added);
    this.view.refresh();
    if (added.length > 0) this.view.runForce(1500);
    this.onGraphChanged();
  }

  private isExpanded(mrid: string): boolean {
    return this.model.graph.hasNode(mrid) && this.model.graph.getNodeAttribute(mrid, "expanded");
  }

  async expand(mrid: string, types?: string[]): Promise<void> {
    try {
      if (!this.model.graph.hasNode(mrid)) await this.open(mrid);
      const sub = await this.neighbourhood(mrid, types);
      if (!this.model.graph.hasNode(mrid)) return;
      if (this.model.graph.order + sub.nodes.length > MAX_ON_SCREEN) {
        this.toast(`Expanding would put more than ${MAX_ON_SCREEN} objects on screen; collapse something first.`, true);
        return;
      }
      const added = this.model.merge(sub, mrid);
      if (this.timeSpec) {
        if (!this.timeSpec.mrids.includes(mrid)) this.timeSpec.mrids.push(mrid);
        this.timeSpec.expanded.add(mrid);
      }
      if (!types) this.model.graph.setNodeAttribute(mrid, "expanded", true);
      else this.model.graph.setNodeAttribute(mrid, "expanded", true);
      this.view.placeGeo(added);
      this.view.refresh();
      this.view.runForce();
      if (added.length === 0) this.toast("No further neighbours you may see.");
      if (this.detail?.detail.mrid === mrid) {
        this.detail.expanded = true;
        this.detail.onScreen = true;
        if (!types) this.detail.neighbours = sub;
        this.renderDetailPanel();
      }
      this.watchScreen();
    } catch (e) {
      this.report(e);
    }
  }

  collapse(mrid: string): void {
    this.model.collapse(mrid);
    this.view.refresh();
    if (this.detail?.detail.mrid === mrid) {
      this.detail.expanded = false;
      this.renderDetailPanel();
    }
    this.watchScreen();
  }

  async toggleExpand(mrid: string): Promise<void> {
    if (this.isExpanded(mrid)) this.collapse(mrid);
    else await this.expand(mrid);
  }

  async dependencies(mrid: string, direction: DependencyDirection = "DOWNSTREAM"): Promise<void> {
    if (!this.detail || this.detail.detail.mrid !== mrid) return;
    this.detail.depsLoading = true;
    this.detail.depsDirection = direction;
    this.renderDetailPanel();
    try {
      const r = (await this.api.query("Dependencies", Q.DEPENDENCIES, {
        mrid,
        direction,
        asOf: this.asOf,
        scenario: this.scenarios.current,
      }))
        .dependencies;
      if (this.detail?.detail.mrid !== mrid || this.detail.depsDirection !== direction) return;
      this.detail.deps = r;
      this.detail.depsLoading = false;
      const sub: Subgraph = r.subgraph ?? { nodes: [...(r.root ? [r.root] : []), ...r.dependents], edges: [] };
      if (!this.model.graph.hasNode(mrid) && r.root) this.model.upsertNode(r.root);
      const added = this.model.merge(sub, mrid);
      this.view.placeGeo(added);
      const nodes = new Set(sub.nodes.map((n) => n.mrid));
      nodes.add(mrid);
      this.view.setHighlight(nodes, sub.edges.map(edgeId));
      this.view.runForce();
      this.renderDetailPanel();
      this.watchScreen();
    } catch (e) {
      if (this.detail?.detail.mrid === mrid) {
        this.detail.depsLoading = false;
        this.renderDetailPanel();
      }
      this.report(e);
    }
  }

  pathFrom(mrid: string): void {
    this.pathStart = mrid;
    this.pathEnd = null;
    this.view.pathStart = mrid;
    this.view.refresh();
    if (this.detail) this.detail.pathStart = mrid;
    this.renderDetailPanel();
    this.renderPath();
    this.toast("Now select the other end and choose “Path to here” (or shift-click it).");
  }

  async findPath(to: string): Promise<void> {
    const from = this.pathStart;
    if (!from) return;
    this.pathEnd = to;
    this.renderPath();
    try {
      const any = byTestId<HTMLInputElement>("path-any").checked;
      const via: PathVia = any ? "ANY" : "PHYSICAL";
      const r = await this.api.query("ShortestPath", Q.SHORTEST_PATH, {
        from,
        to,
        via,
        asOf: this.asOf,
        scenario: this.scenarios.current,
      });
      const sub = r.shortestPath;
      if (!sub || sub.nodes.length === 0) {
        this.view.setHighlight(null, null);
        byTestId("path-tool").dataset.result = "none";
        this.toast(
          any
            ? "No path between these objects that you may see."
            : "No physical path between these objects that you may see (tick “Along any relationship” to follow any).",
          true,
        );
        return;
      }
      const added = this.model.merge(sub);
      for (const m of added) this.model.graph.setNodeAttribute(m, "pinned", true);
      this.view.placeGeo(added);
      this.view.setHighlight(
        sub.nodes.map((n) => n.mrid),
        sub.edges.map(edgeId),
      );
      byTestId("path-tool").dataset.result = String(sub.edges.length);
      this.view.runForce();
      this.toast(`Shortest path: ${sub.edges.length} step${sub.edges.length === 1 ? "" : "s"}.`);
      this.watchScreen();
    } catch (e) {
      this.report(e);
    }
  }

  clearHighlight(): void {
    this.pathStart = null;
    this.pathEnd = null;
    this.view.pathStart = null;
    delete byTestId("path-tool").dataset.result;
    this.view.setHighlight(null, null);
    if (this.detail) this.detail.pathStart = null;
    this.renderPath();
    this.renderDetailPanel();
  }

  /** Queues a class load (see `loadOneClass`); a class already waiting is not queued twice. */
  loadClass(className: string, total: number): Promise<void> {
    if (this.queuedClasses.includes(className)) return this.classLoads;
    if (this.queuedClasses.length > 0) this.toast(`${className} will load when ${this.queuedClasses[0]} has loaded.`);
    this.queuedClasses.push(className);
    this.classLoads = this.classLoads
      .then(() => this.loadOneClass(className, total))
      .finally(() => this.queuedClasses.splice(this.queuedClasses.indexOf(className), 1));
    return this.classLoads;
  }

  /**
   * Loads every visible object of a class page by page, then where they are and the edges among what is on
   * screen. The pages ask only what drawing an object needs, so the objects show as soon as they arrive;
   * their places (the map, the level colours) and the relationships follow in one request.
   */
  private async loadOneClass(className: string, total: number): Promise<void> {
    const progress = byTestId("progress");
    const text = byTestId("progress-text");
    const fill = byTestId("progress-fill");
    progress.hidden = false;
    const loaded: string[] = [];
    const started = performance.now();
    try {
      let after: string | null = null;
      for (;;) {
        const remaining = MAX_ON_SCREEN - this.model.graph.order;
        if (remaining <= 0) {
          this.toast(`Stopped at ${MAX_ON_SCREEN} objects on screen.`, true);
          break;
        }
        const page: Q.ClassPage = await this.api.query("ClassPage", Q.CLASS_PAGE, {
          className,
          first: Math.min(PAGE_SIZE, remaining),
          after,
          scenario: this.scenarios.current,
        });
        const inserting = performance.now();
        const objects = page.objects.nodes;
        this.view.bulk(() => {
          const added: string[] = [];
          for (const n of objects) if (this.model.upsertNode(n, undefined, true)) added.push(n.mrid);
          this.view.placeGeo(added);
        });
        for (const n of objects) loaded.push(n.mrid);
        measure("load:objects:insert", inserting);
        const expected = Math.max(total, loaded.length);
        text.textContent = `Loading ${className}: ${loaded.length.toLocaleString("en-GB")} of ${expected.toLocaleString("en-GB")}`;
        fill.style.width = `${expected ? Math.min(100, (loaded.length / expected) * 70) : 70}%`;
        if (!page.objects.pageInfo.hasNextPage || !page.objects.pageInfo.endCursor) break;
        after = page.objects.pageInfo.endCursor;
      }
      measure("load:objects", started);
      // Where the objects are, and the relationships among everything now on screen (what was there and
      // what came): one request when it fits the API's list, else one per pair of half-size parts, so that
      // every pair of objects is asked.
      const requests = relationRequests(this.model.graph.nodes(), RELATIONS_BATCH);
      if (requests.length === 0 && loaded.length > 0) requests.push(loaded); // one object: its place alone
      for (let i = 0; i < requests.length; i++) {
        const r = await this.api.query("PlacesAndRelations", Q.PLACES_AND_RELATIONS, {
          mrids: requests[i],
          types: null,
          scenario: this.scenarios.current,
        });
        const inserting = performance.now();
        this.view.bulk(() => {
          this.view.placeGeo(this.model.setPlaces(r.relationsAmong.nodes));
          for (const e of r.relationsAmong.edges) this.model.addEdge(e);
        });
        measure("load:edges:insert", inserting);
        this.onGraphChanged(); // the map's count of objects without a position, and its key of levels
        text.textContent = `Connecting ${className}: ${i + 1} of ${requests.length}`;
        fill.style.width = `${70 + ((i + 1) / requests.length) * 30}%`;
      }
      this.view.runForce(4000);
      this.view.fit();
      this.watchScreen();
      measure("load:edges", started);
    } catch (e) {
      this.report(e);
    } finally {
      progress.hidden = true;
      fill.style.width = "0";
    }
  }

  clearGraph(): void {
    this.resetGraph();
    this.watchScreen();
  }

  async setLayout(mode: LayoutMode): Promise<void> {
    byTestId("layout-force").classList.toggle("active", mode === "force");
    byTestId("layout-geo").classList.toggle("active", mode === "geo");
    byTestId("stage").classList.toggle("geo", mode === "geo");
    byTestId("stage").dataset.layout = mode;
    try {
      await this.view.setMode(mode);
      this.onGraphChanged(); // on the map, objects without a position are not drawn
    } catch (e) {
      console.error(e);
      this.toast("The map could not be drawn: its country outlines did not load. The objects keep their places; try the map again later.", true);
    }
  }

  // ---------------------------------------------------------------- export

  /** Runs one export at a time, with the buttons disabled meanwhile; failures are told as sentences. */
  private async runExport(kind: string, job: () => Promise<void>): Promise<void> {
    if (this.exporting) {
      this.toast("An export is already running; wait for it to finish.");
      return;
    }
    this.exporting = true;
    const buttons = ["export-csv", "export-geojson", "export-png"].map((id) => byTestId<HTMLButtonElement>(id));
    for (const b of buttons) b.disabled = true;
    try {
      await job();
    } catch (e) {
      if (e instanceof ApiError) {
        const why =
          e.kind === "query" ? e.message : e.kind === "unreachable" ? "the API could not be reached." : "your sign-in is no longer accepted.";
        this.toast(`The ${kind} export stopped and nothing was saved: ${why}`, true);
      } else {
        console.error(e);
        this.toast(`The ${kind} export failed because of a fault in the page; nothing was saved. The details are in the browser's console.`, true);
      }
    } finally {
      this.exporting = false;
      for (const b of buttons) b.disabled = false;
    }
  }

  /** The objects the filters leave in view; says so and returns null when there are none. */
  private exportObjects(): ReturnType<typeof objectsInView> | null {
    const objects = objectsInView(this.model, (a) => this.view.passesFilters(a));
    if (objects.length === 0) {
      this.toast("Nothing to export: no object is in view. Open an object or load a class first.", true);
      return null;
    }
    return objects;
  }

  /** CSV of the objects in view with every attribute the caller may see, read through the API. */
  exportCsv(): Promise<void> {
    return this.runExport("CSV", async () => {
      const objects = this.exportObjects();
      if (!objects) return;
      if (objects.length > MAX_CSV_OBJECTS) {
        this.toast(
          `The view holds ${objects.length.toLocaleString("en-GB")} objects; the CSV export reads each one's attributes and takes at most ${MAX_CSV_OBJECTS.toLocaleString("en-GB")}. Hide classes or domains with the filters on the left, or clear the canvas and load less, then export again.`,
          true,
        );
        return;
      }
      const progress = byTestId("progress");
      const text = byTestId("progress-text");
      const fill = byTestId("progress-fill");
      progress.hidden = false;
      try {
        const details = await fetchDetails(
          objects.map((a) => a.mrid),
          (m) => this.fetchDetail(m),
          (done) => {
            text.textContent = `Exporting: ${done.toLocaleString("en-GB")} of ${objects.length.toLocaleString("en-GB")} objects read`;
            fill.style.width = `${(done / objects.length) * 100}%`;
          },
        );
        const found = details.filter((d): d is ObjectDetail => d !== null);
        const name = exportFileName("csv");
        download(name, new Blob([detailsToCsv(found)], { type: "text/csv;charset=utf-8" }));
        const gone = details.length - found.length;
        this.toast(
          `Saved ${found.length.toLocaleString("en-GB")} object${found.length === 1 ? "" : "s"} to ${name}.` +
            (gone > 0 ? ` ${gone} object${gone === 1 ? " is" : "s are"} no longer visible to you and ${gone === 1 ? "was" : "were"} left out.` : ""),
        );
      } finally {
        progress.hidden = true;
        fill.style.width = "0";
      }
    });
  }

  /** GeoJSON of the objects in view that have a WGS84 geometry; the others are only counted. */
  exportGeoJson(): Promise<void> {
    return this.runExport("GeoJSON", () => {
      const objects = this.exportObjects();
      if (!objects) return Promise.resolve();
      const geo = toGeoJson(objects);
      const without = geo.without > 0
        ? ` ${geo.without.toLocaleString("en-GB")} object${geo.without === 1 ? " has" : "s have"} no geographic position and ${geo.without === 1 ? "is" : "are"} not in the file.`
        : "";
      if (geo.features === 0) {
        this.toast(`No object in view has a geographic position, so there is nothing to save as GeoJSON.${without}`, true);
        return Promise.resolve();
      }
      const name = exportFileName("geojson");
      download(name, new Blob([geo.text], { type: "application/geo+json" }));
      this.toast(`Saved ${geo.features.toLocaleString("en-GB")} object${geo.features === 1 ? "" : "s"} to ${name}.${without}`);
      return Promise.resolve();
    });
  }

  /** The canvas as a PNG picture, with the country outlines when the map is shown. */
  exportPng(): Promise<void> {
    return this.runExport("PNG", async () => {
      if (this.model.graph.order === 0) {
        this.toast("Nothing to export: the canvas is empty. Open an object or load a class first.", true);
        return;
      }
      const stamp = new Date().toISOString().slice(0, 16).replace("T", " ");
      const note = `Energy hub · ${stamp} UTC${this.view.mode === "geo" ? " · Outlines: Natural Earth" : ""}`;
      const png = await renderPng(this.view.sigma, note);
      const name = exportFileName("png");
      download(name, png);
      this.toast(`Saved the picture of the view to ${name}.`);
    });
  }

  // ---------------------------------------------------------------- live

  private watchScreen = debounce(() => this.watchScreenNow(), 300);

  private onLiveState(state: LiveState, detail?: string): void {
    const el = byTestId("live-status");
    el.dataset.state = state;
    (el.querySelector(".live-text") as HTMLElement).textContent = state === "live" ? "live" : state;
    el.title = detail ? `Live updates: ${state} (${detail})` : `Live updates: ${state}`;
    if (state === "live") this.watchScreenNow();
    if (state === "refused") this.authFailed(`Live updates were refused${detail ? `: ${detail}` : ""}.`);
  }

  private watchScreenNow(): void {
    const g = this.model.graph;
    // The objects on the canvas, and those the open single-line diagram draws.
    const watched = new Set(g.nodes());
    for (const m of this.diagram?.mrids ?? []) watched.add(m);
    this.live.watch([...watched], g.someNode((_, a) => a.expanded));
  }

  // ---------------------------------------------------------------- single-line diagram

  async showDiagram(mrid: string): Promise<void> {
    try {
      const answer = (await this.api.query("SubstationDiagram", Q.SUBSTATION_DIAGRAM, { mrid })).object;
      const sub = diagramSubstation(answer);
      if (!sub) {
        this.toast(answer ? "This voltage level belongs to no substation you may see." : "That object is no longer visible to you.", true);
        return;
      }
      this.diagram = { mrid, mrids: diagramMrids(sub) };
      const host = byTestId("substation-diagram");
      renderDiagram(host, sub, { open: (m) => void this.open(m), close: () => this.closeDiagram() });
      host.hidden = false;
      host.dataset.mrid = sub.mrid;
      host.dataset.updated = String(Date.now());
      this.watchScreenNow();
    } catch (e) {
      this.report(e);
    }
  }

  private closeDiagram(): void {
    this.diagram = null;
    const host = byTestId("substation-diagram");
    host.hidden = true;
    clear(host);
    this.watchScreen();
  }

  private refreshDiagram = debounce(() => {
    if (this.diagram) void this.showDiagram(this.diagram.mrid);
  }, 300);

  private onChange(c: Change, feed: "screen" | "discovery"): void {
    this.liveLog.push(c);
    if (this.liveLog.length > 200) this.liveLog.shift();
    // The feed fell behind and reads on from its cursor by itself: no object to update, nothing lost.
    if (c.change === "gap") return;
    // The view shows a past time or a scenario: what changes live now is not part of it (back to "Now" or
    // "Live" to see it).
    if (this.asOf !== null || this.scenarios.current !== null) return;
    if (this.diagram?.mrids.includes(c.mrid)) this.refreshDiagram();
    const g = this.model.graph;
    if (g.hasNode(c.mrid)) {
      if (c.change === "delete") {
        this.model.remove(c.mrid);
        if (this.detail?.detail.mrid === c.mrid) {
          this.detail = null;
          this.renderDetailPanel();
          this.toast("The selected object was deleted.");
        }
        this.view.refresh();
        return;
      }
      if (c.node) this.model.upsertNode(c.node);
      this.view.flash([c.mrid]);
      this.view.refresh();
      if (this.detail?.detail.mrid === c.mrid) void this.refreshDetail(c.mrid);
      if (g.getNodeAttribute(c.mrid, "expanded")) this.refreshExpansion(c.mrid);
      return;
    }
    if (feed === "discovery" && c.change !== "delete") {
      this.discoveryQueue.add(c.mrid);
      this.drainDiscovery();
    }
  }

  private async refreshDetail(mrid: string): Promise<void> {
    try {
      const detail = await this.fetchDetail(mrid);
      if (detail && this.detail?.detail.mrid === mrid) {
        this.detail.detail = detail;
        this.renderDetailPanel();
        void this.loadHistory(mrid);
        const sub = await this.neighbourhood(mrid);
        if (this.detail?.detail.mrid === mrid) {
          this.detail.neighbours = sub;
          this.renderDetailPanel();
        }
      }
    } catch (e) {
      this.report(e);
    }
  }

  // An expanded object that changed may have gained neighbours: show them.
  private refreshExpansion = debounce((mrid: string) => {
    void this.neighbourhood(mrid)
      .then((sub) => {
        if (!this.isExpanded(mrid)) return;
        const added = this.model.merge(sub, mrid);
        if (added.length > 0) {
          this.view.placeGeo(added);
          this.view.flash(added);
          this.view.runForce(1500);
          this.watchScreen();
        }
      })
      .catch((e) => this.report(e));
  }, 400);

  // A change to an object not on screen: it is shown if it touches an expanded object.
  private drainDiscovery = debounce(() => {
    const batch = [...this.discoveryQueue].slice(0, DISCOVERY_BATCH);
    this.discoveryQueue.clear();
    if (batch.length === 0) return;
    const vars: Record<string, string> = {};
    batch.forEach((m, j) => (vars[`m${j}`] = m));
    void this.api
      .query("NeighbourhoodBatch", Q.batchNeighbourhoods(batch.length), vars)
      .then((r) => {
        const g = this.model.graph;
        const shown: string[] = [];
        batch.forEach((m, j) => {
          const sub = r[`n${j}`];
          if (!sub) return;
          const parents = sub.nodes.filter((n) => n.mrid !== m && g.hasNode(n.mrid) && g.getNodeAttribute(n.mrid, "expanded"));
          const self = sub.nodes.find((n) => n.mrid === m);
          if (parents.length === 0 || !self) return;
          this.model.upsertNode(self, parents[0].mrid);
          g.setNodeAttribute(m, "expandedBy", parents.map((p) => p.mrid));
          for (const e of sub.edges) this.model.addEdge(e);
          shown.push(m);
        });
        if (shown.length > 0) {
          this.view.placeGeo(shown);
          this.view.flash(shown);
          this.view.runForce(1500);
          this.watchScreen();
        }
      })
      .catch((e) => this.report(e));
  }, 300);

  // ---------------------------------------------------------------- panels

  private onGraphChanged = debounce(() => {
    const g = this.model.graph;
    byTestId("empty-state").hidden = g.order > 0;
    // Counts what the filters leave drawn, so unticking a domain or class changes the figure too.
    let shown = 0;
    g.forEachNode((_, a) => {
      if (this.view.isShown(a)) shown++;
    });
    const all = `${g.order.toLocaleString("en-GB")} object${g.order === 1 ? "" : "s"}`;
    const count = byTestId("screen-count");
    count.textContent = shown === g.order ? all : `${shown.toLocaleString("en-GB")} of ${all} shown`;
    count.dataset.shown = String(shown);
    this.renderUnplaced();
    this.renderLegend();
    this.renderMapKey();
    if (this.detail) {
      const on = g.hasNode(this.detail.detail.mrid);
      if (on !== this.detail.onScreen) {
        this.detail.onScreen = on;
        this.renderDetailPanel();
      }
    }
    this.watchScreen();
  }, 120);

  /** On the map: how many objects on screen have no geographic position (and so are not drawn). */
  private renderUnplaced(): void {
    const note = byTestId("unplaced-count");
    const n = this.view.mode === "geo" ? this.view.unplacedCount() : 0;
    note.hidden = n === 0;
    note.dataset.count = String(n);
    note.textContent = `${n.toLocaleString("en-GB")} object${n === 1 ? "" : "s"} on screen ${n === 1 ? "has" : "have"} no geographic position and ${n === 1 ? "is" : "are"} not drawn on the map`;
  }

  /** On the map: what the voltage and pressure colours mean, for markers and for lines and pipes alike. */
  private renderMapKey(): void {
    const key = byTestId("map-key");
    clear(key);
    if (this.view.mode !== "geo") {
      key.hidden = true;
      return;
    }
    const g = this.model.graph;
    const kv = new Map<string, number>();
    const bar = new Map<string, number>();
    g.forEachNode((_, a) => {
      const v = voltageBand(a.kv);
      if (v) kv.set(v.key, (kv.get(v.key) ?? 0) + 1);
      else {
        const p = pressureBand(a.bar);
        if (p) bar.set(p.key, (bar.get(p.key) ?? 0) + 1);
      }
    });
    const line = (color: string) => h("i", { className: "line-swatch", style: `background:${color}` });
    const rows = (title: string, bands: Band[], counts: Map<string, number>) => {
      key.append(h("div", { className: "map-key-title" }, title));
      for (const b of bands) {
        key.append(
          h(
            "div",
            { className: "map-key-row", testid: "map-key-item", "data-band": b.key, "data-count": String(counts.get(b.key) ?? 0) },
            swatch(b.color, "circle"),
            line(b.color),
            h("span", { className: "cls" }, b.label),
            h("span", { className: "n" }, (counts.get(b.key) ?? 0).toLocaleString("en-GB")),
          ),
        );
      }
    };
    rows("Nominal voltage (objects and lines)", VOLTAGE_BANDS, kv);
    rows("Gas pressure (nodes and pipes)", PRESSURE_BANDS, bar);
    key.append(h("div", { className: "hint" }, "Objects of no known level keep their class colour; lines and pipes of no known level are grey."));
    key.hidden = false;
  }

  private renderLegend(): void {
    const g = this.model.graph;
    const counts = new Map<string, { n: number; domain: string }>();
    g.forEachNode((_, a) => {
      const c = counts.get(a.className) ?? { n: 0, domain: a.domain };
      c.n++;
      counts.set(a.className, c);
    });
    const legend = byTestId("legend");
    clear(legend);
    if (counts.size === 0) legend.append(h("li", { className: "muted" }, "Open an object to start."));
    const shapes = new Set<Shape>();
    for (const [cls, c] of [...counts.entries()].sort((a, b) => b[1].n - a[1].n || a[0].localeCompare(b[0]))) {
      const shape = this.styles.shape(cls, c.domain);
      shapes.add(shape);
      const box = h("input", { type: "checkbox", testid: `filter-class-${cls}` });
      box.checked = !this.view.hiddenClasses.has(cls);
      box.addEventListener("change", () => {
        if (box.checked) this.view.hiddenClasses.delete(cls);
        else this.view.hiddenClasses.add(cls);
        this.onGraphChanged();
        this.view.refresh();
      });
      legend.append(
        h(
          "li",
          { testid: "legend-item", "data-class": cls },
          h("label", {}, box, swatch(this.styles.color(cls), shape), h("span", { className: "cls" }, cls)),
          h("span", { className: "n" }, c.n.toLocaleString("en-GB")),
        ),
      );
    }
    const key = byTestId("shape-key");
    clear(key);
    for (const s of ["circle", "ring", "square"] as Shape[]) {
      if (shapes.has(s)) key.append(h("span", {}, swatch("#8795a8", s), SHAPE_LABEL[s]));
    }
    if (g.order === 0) return;
    // What the colours of lines and flashes mean (the classes' colours are listed above).
    const line = (color: string) => h("i", { className: "line-swatch", style: `background:${color}` });
    key.append(
      h("span", { testid: "edge-key", "data-kind": "relationship" }, line(EDGE_COLOR), "relationship"),
      h("span", { testid: "edge-key", "data-kind": "highlight" }, line(HIGHLIGHT_EDGE), "path or dependency"),
      h("span", { testid: "edge-key", "data-kind": "changed" }, swatch(FLASH, "circle"), "just changed (live)"),
    );
  }

  private renderCatalogue(counts: ClassCount[]): void {
    const ul = byTestId("catalogue");
    clear(ul);
    const visible = counts.filter((c) => c.count > 0);
    if (visible.length === 0) {
      ul.append(h("li", { className: "muted" }, "Nothing you may see yet."));
      return;
    }
    const byDomain = new Map<string, ClassCount[]>();
    for (const c of visible) {
      const d = this.styles.domainOf(c.className) ?? "OTHER";
      byDomain.set(d, [...(byDomain.get(d) ?? []), c]);
    }
    for (const [domain, list] of [...byDomain.entries()].sort()) {
      ul.append(h("li", { className: "group" }, domain === "GAS" ? "Gas" : domain === "ELECTRICITY" ? "Electricity" : "Other"));
      for (const c of list.sort((a, b) => b.count - a.count || a.className.localeCompare(b.className))) {
        const shape = this.styles.shape(c.className, domain);
        ul.append(
          h(
            "li",
            { testid: "catalogue-item", "data-class": c.className },
            swatch(this.styles.color(c.className), shape),
            h("span", { className: "cls", title: c.className }, c.className),
            h("span", { className: "n" }, c.count.toLocaleString("en-GB")),
            h(
              "button",
              { type: "button", title: `Show all ${c.className} objects`, testid: `load-class-${c.className}`, onclick: () => void this.loadClass(c.className, c.count) },
              "+",
            ),
          ),
        );
      }
    }
  }

  private renderPath(): void {
    const name = (m: string | null) => {
      if (!m) return "—";
      const g = this.model.graph;
      return g.hasNode(m) ? String(g.getNodeAttribute(m, "label")) : m;
    };
    byTestId("path-from").textContent = name(this.pathStart);
    byTestId("path-to").textContent = name(this.pathEnd);
  }

  private renderDetailPanel(): void {
    const panel = byTestId("detail-panel");
    if (!this.detail) {
      clear(panel);
      panel.append(h("div", { className: "detail-empty muted" }, "Select an object to see its attributes, associations and provenance."));
      return;
    }
    renderDetail(panel, this.detail, this.styles, {
      open: (m) => void this.open(m),
      expand: (m, t) => void this.expand(m, t),
      collapse: (m) => this.collapse(m),
      dependencies: (m, d) => void this.dependencies(m, d),
      pathFrom: (m) => this.pathFrom(m),
      pathTo: (m) => void this.findPath(m),
      focus: (m) => this.view.focus(m),
      diagram: (m) => void this.showDiagram(m),
    });
    this.scenarios.decorateDetail(panel, this.detail.detail.mrid);
  }

  private bindControls(): void {
    byTestId("sign-in-submit").addEventListener("click", () => void this.signIn(byTestId<HTMLTextAreaElement>("token-input").value));
    byTestId("sign-in-anonymous").addEventListener("click", () => void this.signIn(null));
    byTestId("sign-in-open").addEventListener("click", () => void this.showSignIn());
    byTestId("sign-out").addEventListener("click", () => this.signOut());
    byTestId("layout-force").addEventListener("click", () => void this.setLayout("force"));
    byTestId("layout-geo").addEventListener("click", () => void this.setLayout("geo"));
    byTestId("zoom-in").addEventListener("click", () => this.view.zoom(1.5));
    byTestId("zoom-out").addEventListener("click", () => this.view.zoom(1 / 1.5));
    byTestId("zoom-fit").addEventListener("click", () => this.view.fit());
    byTestId("relayout").addEventListener("click", () => this.view.runForce(4000));
    byTestId("clear-graph").addEventListener("click", () => this.clearGraph());
    byTestId("path-clear").addEventListener("click", () => this.clearHighlight());
    byTestId("export-csv").addEventListener("click", () => void this.exportCsv());
    byTestId("export-geojson").addEventListener("click", () => void this.exportGeoJson());
    byTestId("export-png").addEventListener("click", () => void this.exportPng());
    const slider = byTestId<HTMLInputElement>("time-slider");
    const moved = debounce(() => {
      const at = Number(slider.value);
      void this.setAsOf(at >= Number(slider.max) ? null : new Date(at * 1000).toISOString());
    }, 250);
    slider.addEventListener("input", () => {
      const at = Number(slider.value);
      byTestId("time-label").textContent =
        at >= Number(slider.max) ? "now" : new Date(at * 1000).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
      moved();
    });
    byTestId("time-now").addEventListener("click", () => void this.setAsOf(null));
    for (const d of ["ELECTRICITY", "GAS"]) {
      const box = byTestId<HTMLInputElement>(`filter-domain-${d}`);
      box.addEventListener("change", () => {
        if (box.checked) this.view.hiddenDomains.delete(d);
        else this.view.hiddenDomains.add(d);
        this.view.refresh();
        this.onGraphChanged();
      });
    }
  }

  /** Screen positions of the objects on the canvas, for tests and tooling. */
  screenPositions(): Record<string, { x: number; y: number; lon: number | null; lat: number | null; hidden: boolean }> {
    const out: Record<string, { x: number; y: number; lon: number | null; lat: number | null; hidden: boolean }> = {};
    this.model.graph.forEachNode((n, a) => {
      const d = this.view.sigma.getNodeDisplayData(n);
      if (!d) return;
      const p = this.view.sigma.framedGraphToViewport(d);
      out[n] = { x: p.x, y: p.y, lon: a.lon, lat: a.lat, hidden: Boolean(d.hidden) };
    });
    return out;
  }

  nodeOf(mrid: string): GraphNode | null {
    const g = this.model.graph;
    if (!g.hasNode(mrid)) return null;
    const a = g.getNodeAttributes(mrid);
    return {
      mrid,
      className: a.className,
      domain: a.domain as Q.Domain,
      name: a.label,
      label: a.secLabel,
      geometry: a.geometry
        ? { type: a.geometry.type, coordinates: a.geometry.type === "Point" ? a.geometry.coordinates[0] : a.geometry.coordinates }
        : null,
      level: a.kv !== null || a.bar !== null ? { nominalVoltage: a.kv, pressureMax: a.bar } : null,
    };
  }
}

/** The mRID lists that together ask for every pair of `mrids`, none longer than `limit`: all of them at
 * once when they fit, else every pair of parts of half the limit. */
export function relationRequests(mrids: string[], limit: number): string[][] {
  if (mrids.length <= limit) return mrids.length > 1 ? [mrids] : [];
  const half = Math.max(1, Math.floor(limit / 2));
  const parts: string[][] = [];
  for (let i = 0; i < mrids.length; i += half) parts.push(mrids.slice(i, i + half));
  const out: string[][] = [];
  for (let a = 0; a < parts.length; a++) for (let b = a + 1; b < parts.length; b++) out.push([...parts[a], ...parts[b]]);
  return out;
}
