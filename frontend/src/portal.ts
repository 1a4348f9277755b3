// The data products page: a catalogue of the products the caller may know of (search, filter by
// publisher, sensitivity and class) and a page per product with its contract's terms, its quality as the
// caller may see it, its consumers' flags and a form to raise one, and links into the graph explorer.
// Every call is one of the generated operations (graphql/operations/), sent with the tab's token.

import "./style.css";
import "./access.css";
import "./portal.css";
import { ApiError, HubApi, fetchDemoUsers } from "./api";
import { byTestId, clear, h } from "./dom";
import {
  DataProductPageDocument,
  DataProductsDocument,
  FlagDataQualityDocument,
  MeDocument,
} from "./generated/operations";
import type { DataProductPageQuery, DataProductsQuery } from "./generated/operations";
import { getToken, setToken } from "./session";

type Product = DataProductsQuery["dataProducts"][number];
type Page = DataProductPageQuery;
type Detail = NonNullable<Page["dataProduct"]>;

const ALL = "";
const api = new HubApi(getToken);
let products: Product[] = [];

function show(message: string, kind: "ok" | "error" = "ok"): void {
  const el = byTestId("portal-message");
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = false;
}

function errorText(e: unknown): string {
  return e instanceof ApiError || e instanceof Error ? e.message : String(e);
}

function when(iso: string | null | undefined): string {
  return iso ? `${new Date(iso).toISOString().slice(0, 16).replace("T", " ")} UTC` : "—";
}

function seconds(value: number | null | undefined): string {
  if (value === null || value === undefined) return "—";
  if (value < 120) return `${value.toFixed(1)} s`;
  if (value < 7200) return `${(value / 60).toFixed(1)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

function share(value: number | null | undefined): string {
  return value === null || value === undefined ? "—" : `${(100 * value).toFixed(1)} %`;
}

function options(select: HTMLSelectElement, label: string, values: string[]): void {
  const kept = select.value;
  clear(select);
  select.append(h("option", { value: ALL }, `All ${label}`));
  for (const v of [...new Set(values)].sort()) select.append(h("option", { value: v }, v));
  select.value = values.includes(kept) ? kept : ALL;
}

function matches(p: Product): boolean {
  const text = byTestId<HTMLInputElement>("portal-search").value.trim().toLowerCase();
  const publisher = byTestId<HTMLSelectElement>("filter-publisher").value;
  const sensitivity = byTestId<HTMLSelectElement>("filter-sensitivity").value;
  const cls = byTestId<HTMLSelectElement>("filter-class").value;
  const haystack = [p.id, p.name, p.description, p.publisher, ...p.classes].join(" ").toLowerCase();
  return (
    (!text || text.split(/\s+/).every((t) => haystack.includes(t))) &&
    (publisher === ALL || p.publisher === publisher) &&
    (sensitivity === ALL || p.sensitivity === sensitivity) &&
    (cls === ALL || p.classes.includes(cls))
  );
}

function renderCatalogue(): void {
  const list = byTestId("portal-products");
  clear(list);
  const shown = products.filter(matches);
  byTestId("portal-count").textContent = `${shown.length} of ${products.length} data products`;
  for (const p of shown) {
    list.append(
      h(
        "li",
        { className: "portal-card", testid: `product-card-${p.id}`, onclick: () => void openProduct(p.id) },
        h(
          "div",
          { className: "portal-card-head" },
          h("span", {}, p.name),
          h("span", { className: `portal-badge s-${p.sensitivity}`, title: p.sensitivityName }, p.sensitivity),
        ),
        h("div", { className: "muted" }, p.description),
        h(
          "div",
          { className: "portal-figures" },
          h("span", {}, "Publisher ", h("b", {}, p.publisher)),
          h("span", {}, h("b", {}, String(p.quality.objects)), " objects you may see"),
          h("span", {}, h("b", {}, p.quality.eventsPerMinute.toFixed(2)), " events/min"),
          h("span", {}, "freshness p50 ", h("b", {}, seconds(p.quality.freshnessP50Seconds))),
          h("span", {}, "updated ", h("b", {}, when(p.quality.lastUpdate))),
          h("span", {}, h("b", {}, String(p.quality.openFlags)), " open flags"),
        ),
      ),
    );
  }
}

function row(term: string, ...value: (Node | string)[]): Node[] {
  return [h("dt", {}, term), h("dd", {}, ...value)];
}

function bars(testid: string, items: Array<{ label: string; value: number; max: number; text: string }>): HTMLElement {
  const grid = h("div", { className: "portal-bars", testid });
  for (const item of items) {
    const width = item.max > 0 ? Math.round((100 * item.value) / item.max) : 0;
    grid.append(
      h("span", {}, item.label),
      h("div", { className: "portal-bar" }, h("span", { style: `width: ${width}%` })),
      h("span", {}, item.text),
    );
  }
  return grid;
}

function explorerLink(cls: string, text: string): HTMLAnchorElement {
  return h("a", { href: `./index.html?class=${encodeURIComponent(cls)}`, testid: `explore-${cls}` }, text);
}

function renderProduct(d: Detail, flags: Page["qualityFlags"]): void {
  const q = d.quality;
  const body = byTestId("product-body");
  clear(body);
  const largest = [...q.objectCounts].sort((a, b) => b.count - a.count)[0];
  const maxCount = Math.max(0, ...q.objectCounts.map((c) => c.count));
  body.append(
    h("h2", { testid: "product-title" }, d.name),
    h("p", { testid: "product-description" }, d.description),
    h("p", { className: "muted" }, d.limitations),
    largest && largest.count > 0
      ? h("p", {}, explorerLink(largest.className, `Open in the explorer (${largest.className})`))
      : h("p", { className: "muted" }, "Nothing of this product is visible to you in the explorer."),
    h(
      "section",
      { className: "portal-section", testid: "product-contract" },
      h("h3", {}, "Contract"),
      h(
        "dl",
        {},
        ...row("Publisher", d.publisher),
        ...row("Owner", d.owner, " · ", ...d.contacts.map((c) => h("a", { href: c }, c.replace(/^mailto:/, "")))),
        ...row("Licence", h("a", { href: d.licence, target: "_blank", rel: "noopener" }, d.licenceTitle || d.licence)),
        ...row("Sensitivity", `${d.sensitivity} (${d.sensitivityName}), access rights ${d.accessRights}`),
        ...row("Contract", h("a", { href: `./catalog/contracts/${encodeURIComponent(d.id)}`, testid: "contract-link" }, `${d.contractId} ${d.version}`), ` (${d.status})`),
        ...row("Updates", `every ${seconds(d.updateFrequencySeconds)}; freshness promised within ${seconds(q.freshnessSlaSeconds)}`),
        ...row("Classes", ...d.classes.flatMap((c, i) => [i ? ", " : "", c])),
      ),
    ),
    h(
      "section",
      { className: "portal-section", testid: "product-quality" },
      h("h3", {}, `Quality, measured now over what you may see (last ${seconds(q.windowSeconds)})`),
      h(
        "dl",
        {},
        ...row("Events", `${q.events} (${q.eventsPerMinute.toFixed(2)} per minute)`),
        ...row("Freshness", h("span", { testid: "quality-freshness" }, `p50 ${seconds(q.freshnessP50Seconds)} · p99 ${seconds(q.freshnessP99Seconds)}`)),
        ...row("Dead letters", `${q.deadLetters} (${q.deadLettersPerMinute.toFixed(2)} per minute, rate ${share(q.deadLetterRate)})`),
        ...row("Top reasons", q.topDeadLetterReasons.length ? q.topDeadLetterReasons.map((r) => `${r.reason} × ${r.count}`).join("; ") : "none"),
        ...row("Objects", h("span", { testid: "quality-objects" }, String(q.objects))),
        ...row("Last update", when(q.lastUpdate)),
        ...row("Time covered", `${when(q.temporalStart)} to ${when(q.temporalEnd)}`),
        ...row("Area covered", q.bbox ? `${q.bbox.west.toFixed(3)}, ${q.bbox.south.toFixed(3)} to ${q.bbox.east.toFixed(3)}, ${q.bbox.north.toFixed(3)}` : "—"),
        ...row("Open flags", h("span", { testid: "quality-open-flags" }, String(q.openFlags))),
      ),
      h("h3", {}, "Objects per class"),
      bars(
        "quality-counts",
        q.objectCounts.map((c) => ({ label: c.className, value: c.count, max: maxCount, text: String(c.count) })),
      ),
      h("h3", {}, "Completeness of each promised attribute"),
      bars(
        "quality-completeness",
        q.completeness.map((c) => ({
          label: `${c.className} · ${c.attribute}`,
          value: c.present,
          max: c.total,
          text: `${c.present}/${c.total}`,
        })),
      ),
    ),
    h(
      "section",
      { className: "portal-section", testid: "product-feedback" },
      h("h3", {}, "Data-quality flags"),
      flags.length
        ? h(
            "table",
            { className: "access-table", testid: "flags" },
            h("tr", {}, h("th", {}, "Raised"), h("th", {}, "On"), h("th", {}, "Issue"), h("th", {}, "Status")),
            ...flags.map((f) =>
              h(
                "tr",
                { testid: `flag-${f.id}` },
                h("td", {}, when(f.createdAt)),
                h("td", {}, f.subject ?? "the product"),
                h("td", {}, f.description),
                h("td", {}, h("span", { className: "portal-badge", testid: "flag-status" }, f.status), f.reason ? ` ${f.reason}` : ""),
              ),
            ),
          )
        : h("p", { className: "muted" }, "No flags of yours on this product."),
      h(
        "form",
        { className: "portal-form", testid: "flag-form", onsubmit: (e: Event) => void raiseFlag(e, d.id) },
        h("input", { testid: "flag-subject", placeholder: "mRID of one object (leave empty for the whole product)" }),
        h("textarea", { testid: "flag-description", rows: "3", required: true, placeholder: "What is wrong with the data" }),
        h("button", { type: "submit", className: "primary", testid: "flag-submit" }, "Flag an issue to the producer"),
      ),
    ),
  );
}

async function openProduct(id: string): Promise<void> {
  try {
    const page = await api.query("DataProductPage", DataProductPageDocument, { id });
    if (!page.dataProduct) return show("That data product does not exist.", "error");
    history.replaceState(null, "", `?product=${encodeURIComponent(id)}`);
    byTestId("catalogue-view").hidden = true;
    byTestId("product-page").hidden = false;
    renderProduct(page.dataProduct, page.qualityFlags);
    document.body.dataset.product = id;
  } catch (e) {
    show(errorText(e), "error");
  }
}

async function raiseFlag(event: Event, product: string): Promise<void> {
  event.preventDefault();
  const subject = byTestId<HTMLInputElement>("flag-subject").value.trim();
  const description = byTestId<HTMLTextAreaElement>("flag-description").value;
  try {
    await api.query("FlagDataQuality", FlagDataQualityDocument, { product, subject: subject || null, description });
    await openProduct(product);
    show("Flag sent to the producer.");
  } catch (e) {
    show(errorText(e), "error");
  }
}

function backToCatalogue(): void {
  history.replaceState(null, "", "./portal.html");
  byTestId("product-page").hidden = true;
  byTestId("catalogue-view").hidden = false;
  delete document.body.dataset.product;
}

async function signIn(): Promise<void> {
  byTestId("portal-signin").hidden = false;
  byTestId("portal-sign-in").addEventListener("click", () => {
    const token = byTestId<HTMLTextAreaElement>("portal-token-input").value.trim();
    if (token) {
      setToken(token);
      window.location.reload();
    }
  });
  const list = byTestId("portal-demo-users");
  for (const u of (await fetchDemoUsers()) ?? []) {
    list.append(
      h(
        "li",
        {},
        h("button", { type: "button", className: "link", testid: `portal-demo-${u.name}`, onclick: () => {
          setToken(u.token);
          window.location.reload();
        } }, u.name),
        h("span", { className: "muted" }, ` ${u.description}`),
      ),
    );
  }
}

async function start(): Promise<void> {
  if (!getToken()) return signIn();
  byTestId("portal-main").hidden = false;
  for (const id of ["portal-search", "filter-publisher", "filter-sensitivity", "filter-class"]) {
    byTestId(id).addEventListener("input", renderCatalogue);
  }
  byTestId("product-back").addEventListener("click", backToCatalogue);
  try {
    const [me, listed] = await Promise.all([
      api.query("Me", MeDocument),
      api.query("DataProducts", DataProductsDocument),
    ]);
    byTestId("portal-user").textContent = me.me.anonymous ? "anonymous" : `${me.me.subject} (${me.me.org ?? "no organisation"}, ${me.me.clearance ?? "no clearance"})`;
    products = listed.dataProducts;
    options(byTestId("filter-publisher"), "publishers", products.map((p) => p.publisher));
    options(byTestId("filter-sensitivity"), "sensitivities", products.map((p) => p.sensitivity));
    options(byTestId("filter-class"), "classes", products.flatMap((p) => p.classes));
    renderCatalogue();
    document.body.dataset.loaded = "true";
    const wanted = new URLSearchParams(window.location.search).get("product");
    if (wanted) await openProduct(wanted);
  } catch (e) {
    show(errorText(e), "error");
  }
}

void start();
