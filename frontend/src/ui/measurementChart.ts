// The detail panel's measurement charts: per measured attribute of the object, its recent readings (as the
// API keeps and downsamples them, see measurementHistory) as a line of values with their unit against time.

import { h } from "../dom";
import type { MeasurementSeries } from "../queries";

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 300;
const HEIGHT = 96;
// Room for the value axis on the left and the time axis below.
const PAD = { left: 52, right: 8, top: 8, bottom: 18 };

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function clock(ms: number, span: number): string {
  const d = new Date(ms);
  return span > 86_400_000
    ? d.toLocaleString("en-GB", { day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit" })
    : d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", second: span < 600_000 ? "2-digit" : undefined });
}

function round(v: number): string {
  return Number(v.toPrecision(4)).toLocaleString("en-GB");
}

function reading(v: number): string {
  return Number(v.toPrecision(6)).toLocaleString("en-GB", { maximumFractionDigits: 6 });
}

/** One attribute's chart: the mean of each point as a line, its least and greatest as a band. */
function chart(s: MeasurementSeries): HTMLElement {
  const pts = s.points.map((p) => ({ t: new Date(p.time).getTime(), v: p.value, lo: p.min, hi: p.max }));
  const t0 = pts[0].t;
  const t1 = pts[pts.length - 1].t;
  let lo = Math.min(...pts.map((p) => p.lo));
  let hi = Math.max(...pts.map((p) => p.hi));
  if (hi === lo) {
    const pad = Math.abs(hi) * 0.01 || 1;
    lo -= pad;
    hi += pad;
  }
  const w = WIDTH - PAD.left - PAD.right;
  const ht = HEIGHT - PAD.top - PAD.bottom;
  const x = (t: number) => PAD.left + (t1 === t0 ? w : ((t - t0) / (t1 - t0)) * w);
  const y = (v: number) => PAD.top + (1 - (v - lo) / (hi - lo)) * ht;
  const unit = s.unit ? ` ${s.unit}` : "";

  const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, class: "chart", role: "img" });
  root.setAttribute("aria-label", `${s.qname} over time`);
  root.append(
    svg("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: PAD.top + ht, class: "axis" }),
    svg("line", { x1: PAD.left, y1: PAD.top + ht, x2: PAD.left + w, y2: PAD.top + ht, class: "axis" }),
    svg("text", { x: PAD.left - 4, y: PAD.top + 8, "text-anchor": "end", class: "tick" }, round(hi)),
    svg("text", { x: PAD.left - 4, y: PAD.top + ht, "text-anchor": "end", class: "tick" }, round(lo)),
    svg("text", { x: PAD.left, y: HEIGHT - 4, "text-anchor": "start", class: "tick" }, clock(t0, t1 - t0)),
    svg("text", { x: PAD.left + w, y: HEIGHT - 4, "text-anchor": "end", class: "tick" }, clock(t1, t1 - t0)),
  );
  if (pts.some((p) => p.hi !== p.lo)) {
    const band = [...pts.map((p) => `${x(p.t)},${y(p.hi)}`), ...pts.slice().reverse().map((p) => `${x(p.t)},${y(p.lo)}`)];
    root.append(svg("polygon", { points: band.join(" "), class: "band" }));
  }
  root.append(svg("polyline", { points: pts.map((p) => `${x(p.t)},${y(p.v)}`).join(" "), class: "series" }));
  if (pts.length === 1) root.append(svg("circle", { cx: x(t0), cy: y(pts[0].v), r: 2.5, class: "series-dot" }));

  const last = s.points[s.points.length - 1];
  return h(
    "div",
    { className: "measurement", testid: "measurement-chart", "data-key": s.key, "data-points": String(s.points.length) },
    h(
      "div",
      { className: "measurement-head" },
      h("span", { className: "measurement-key", title: s.qname }, s.key, s.unit ? h("span", { className: "muted" }, ` (${s.unit})`) : null),
      h("span", { className: "measurement-last", testid: "measurement-last" }, `${reading(last.value)}${unit}`),
    ),
    root,
  );
}

/** The charts of an object's measured attributes, or nothing when none of its readings are kept (or visible). */
export function renderMeasurements(series: MeasurementSeries[] | null): HTMLElement {
  const box = h("div", { className: "detail-section measurements", testid: "detail-measurements" });
  const shown = (series ?? []).filter((s) => s.points.length > 0);
  box.hidden = shown.length === 0;
  if (shown.length === 0) return box;
  box.append(
    h("h4", {}, "Measurements", h("span", { className: "muted" }, "last 24 h, live")),
    ...shown.map(chart),
  );
  return box;
}
