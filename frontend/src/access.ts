// The data access page: a consumer requests access to a data product, the owner's data officer decides,
// and both see the evidence (the consumer its grants and their end, the officer the grants held on its
// organisation's products). Every call is one of the generated operations (graphql/operations/), sent
// with the token the graph explorer keeps for this tab.

import "./style.css";
import "./access.css";
import { ApiError, HubApi, fetchDemoUsers } from "./api";
import { byTestId, clear, h } from "./dom";
import {
  AccessOverviewDocument,
  AnswerAccessRequestDocument,
  ApproveAccessRequestDocument,
  AskAboutAccessRequestDocument,
  RejectAccessRequestDocument,
  RequestAccessDocument,
  RevokeGrantDocument,
} from "./generated/operations";
import type { AccessOverviewQuery } from "./generated/operations";
import { getToken, setToken } from "./session";

type Overview = AccessOverviewQuery;
type AccessRequest = Overview["accessRequests"][number];
type Tab = "request" | "decide" | "evidence";

const DAY_MS = 86_400_000;

/** One data product of the catalogue, as the CKAN API describes it. */
interface Product {
  name: string;
  title: string;
  licenceUrl: string;
  licenceTitle: string;
  owner: string;
}

const api = new HubApi(getToken);
let overview: Overview | null = null;
let products: Product[] = [];

function show(message: string, kind: "ok" | "error" = "ok"): void {
  const el = byTestId("access-message");
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = false;
}

function errorText(e: unknown): string {
  return e instanceof ApiError || e instanceof Error ? e.message : String(e);
}

function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

function left(iso: string | null | undefined): string {
  if (!iso) return "";
  const ms = new Date(iso).getTime() - Date.now();
  if (ms <= 0) return "ended";
  const days = Math.floor(ms / DAY_MS);
  return days >= 1 ? `${days} d left` : `${Math.max(1, Math.round(ms / 3_600_000))} h left`;
}

function status(r: AccessRequest): HTMLElement {
  return h("span", { className: `access-status s-${r.status.toLowerCase()}`, testid: "status" }, r.status.replace("_", " "));
}

function selectTab(tab: Tab): void {
  for (const b of document.querySelectorAll<HTMLButtonElement>(".access-tabs button")) {
    b.classList.toggle("active", b.dataset.tab === tab);
  }
  for (const p of document.querySelectorAll<HTMLElement>(".access-panel")) p.hidden = p.dataset.panel !== tab;
}

async function loadProducts(): Promise<Product[]> {
  const token = getToken();
  const response = await fetch("api/3/action/package_search?rows=1000", {
    headers: token ? { Authorization: `Bearer ${token}`, Accept: "application/json" } : { Accept: "application/json" },
  });
  if (!response.ok) throw new Error(`the catalogue answered HTTP ${response.status}`);
  const body = (await response.json()) as {
    result?: {
      results?: Array<{
        name: string;
        title?: string;
        license_url?: string;
        license_title?: string;
        organization?: { name?: string } | null;
      }>;
    };
  };
  return (body.result?.results ?? []).map((p) => ({
    name: p.name,
    title: p.title ?? p.name,
    licenceUrl: p.license_url ?? "",
    licenceTitle: p.license_title || p.license_url || "",
    owner: p.organization?.name ?? "",
  }));
}

function renderProducts(): void {
  const select = byTestId<HTMLSelectElement>("request-product");
  clear(select);
  for (const p of products) select.append(h("option", { value: p.name }, `${p.title} (${p.name})`));
  renderProductInfo();
}

function renderProductInfo(): void {
  const name = byTestId<HTMLSelectElement>("request-product").value;
  const p = products.find((x) => x.name === name);
  byTestId("request-product-info").textContent = p ? `Owner: ${p.owner}` : "No data product is visible to you.";
  const link = byTestId<HTMLAnchorElement>("request-licence-link");
  link.href = p?.licenceUrl ?? "";
  link.textContent = p ? p.licenceTitle : "";
}

function mine(r: AccessRequest): boolean {
  return overview !== null && r.requesterSubject === overview.me.subject;
}

function isOfficer(): boolean {
  // The API says whose requests the caller decides (the configured officer role and issuers).
  return overview !== null && overview.me.dataOfficerOf.length > 0;
}

function table(headers: string[], rows: HTMLElement[], empty: string, testid: string): HTMLElement {
  if (rows.length === 0) return h("p", { className: "muted", testid: `${testid}-empty` }, empty);
  return h(
    "table",
    { className: "access-table", testid },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows),
  );
}

function renderMyRequests(): void {
  const box = byTestId("my-requests");
  clear(box);
  const rows = (overview?.accessRequests ?? []).filter(mine).map((r) => {
    const answerBox =
      r.status === "INFO_REQUESTED"
        ? h(
            "div",
            { className: "access-inline" },
            h("input", { type: "text", placeholder: "Your answer", testid: "answer-text" }),
            h("button", { type: "button", className: "small", testid: "answer-submit", onclick: () => void sendAnswer(r, box) }, "Answer"),
          )
        : null;
    return h(
      "tr",
      { testid: "my-request", "data-id": r.id, "data-product": r.product },
      h("td", {}, r.product),
      h("td", {}, r.purpose),
      h("td", {}, status(r)),
      h("td", {}, when(r.requestedUntil)),
      h("td", {}, r.reason ? `${r.status === "INFO_REQUESTED" ? "Question" : "Reason"}: ${r.reason}` : "", answerBox),
    );
  });
  box.append(table(["Product", "Purpose", "Status", "Until", "Note"], rows, "You have made no request.", "my-requests-table"));
}

async function sendAnswer(r: AccessRequest, box: HTMLElement): Promise<void> {
  const input = box.querySelector<HTMLInputElement>(`[data-id="${r.id}"] [data-testid="answer-text"]`);
  await act(() => api.query("AnswerAccessRequest", AnswerAccessRequestDocument, { id: r.id, answer: input?.value ?? "" }), "Answer sent.");
}

function renderDecisions(): void {
  const box = byTestId("pending-requests");
  clear(box);
  const org = overview?.me.org;
  const open = (overview?.accessRequests ?? []).filter(
    (r) => r.owner === org && (r.status === "PENDING" || r.status === "INFO_REQUESTED"),
  );
  if (open.length === 0) {
    box.append(h("p", { className: "muted", testid: "pending-empty" }, "No request is waiting for a decision."));
    return;
  }
  for (const r of open) {
    const note = h("input", { type: "text", placeholder: "Reason or question for the requester", testid: "decision-text" });
    const days = h("select", { testid: "decision-period" },
      h("option", { value: "" }, "as requested"),
      h("option", { value: "7" }, "1 week"),
      h("option", { value: "30" }, "30 days"),
    );
    const until = (): string | null => (days.value ? new Date(Date.now() + Number(days.value) * DAY_MS).toISOString() : null);
    // Narrower attributes: the officer may grant fewer of the requested attributes (at least one). With a
    // single attribute requested there is nothing to narrow, and no choice is shown.
    const boxes = r.attributes.map((a) =>
      h("input", { type: "checkbox", checked: true, value: a, testid: "decision-attribute", "data-attribute": a }),
    );
    const chosen = (): string[] | null => {
      const picked = boxes.filter((b) => b.checked).map((b) => b.value);
      return picked.length === r.attributes.length ? null : picked;
    };
    const narrower =
      r.attributes.length > 1
        ? h("div", { className: "access-inline", testid: "decision-attributes" },
            "Grant ",
            boxes.map((b) => h("label", {}, b, ` ${b.value}`)),
          )
        : null;
    box.append(
      h(
        "article",
        { className: "access-card", testid: "pending-request", "data-id": r.id },
        h("div", { className: "access-card-head" }, h("strong", {}, r.product), status(r)),
        h(
          "dl",
          {},
          h("dt", {}, "Requester"), h("dd", { testid: "pending-requester" }, `${r.requesterSubject}${r.requesterOrg ? ` (${r.requesterOrg})` : ""}`),
          h("dt", {}, "Purpose"), h("dd", {}, r.purpose),
          h("dt", {}, "Attributes"), h("dd", {}, r.attributes.join(", ")),
          h("dt", {}, "Licence"), h("dd", {}, h("a", { href: r.licence, target: "_blank", rel: "noopener" }, r.licence)),
          h("dt", {}, "Until"), h("dd", {}, when(r.requestedUntil)),
          r.reason ? [h("dt", {}, "Question"), h("dd", {}, r.reason)] : null,
          r.answer ? [h("dt", {}, "Answer"), h("dd", { testid: "pending-answer" }, r.answer)] : null,
        ),
        narrower,
        h(
          "div",
          { className: "access-inline" },
          h("label", {}, "Approve for ", days),
          h("button", { type: "button", className: "primary small", testid: "approve", onclick: () =>
            void act(() => api.query("ApproveAccessRequest", ApproveAccessRequestDocument, { id: r.id, until: until(), attributes: chosen() }), "Approved: the grant applies within seconds.") }, "Approve"),
        ),
        h(
          "div",
          { className: "access-inline" },
          note,
          h("button", { type: "button", className: "small", testid: "reject", onclick: () =>
            void act(() => api.query("RejectAccessRequest", RejectAccessRequestDocument, { id: r.id, reason: note.value }), "Rejected.") }, "Reject"),
          r.status === "PENDING"
            ? h("button", { type: "button", className: "small", testid: "ask", onclick: () =>
                void act(() => api.query("AskAboutAccessRequest", AskAboutAccessRequestDocument, { id: r.id, question: note.value }), "Question sent.") }, "Ask")
            : null,
        ),
      ),
    );
  }
}

function renderEvidence(): void {
  const mineBox = byTestId("my-grants");
  clear(mineBox);
  const rows = (overview?.myGrants ?? []).map((g) =>
    h(
      "tr",
      { testid: "my-grant", "data-id": g.id, "data-product": g.product },
      h("td", {}, g.product),
      h("td", {}, g.grantedAttributes.join(", ")),
      h("td", {}, status(g)),
      h("td", { testid: "grant-until" }, when(g.grantedUntil)),
      h("td", {}, g.status === "APPROVED" ? left(g.grantedUntil) : g.revokedAt ? `revoked ${when(g.revokedAt)}` : ""),
      h("td", {}, `${g.decidedBy ?? ""}`),
    ),
  );
  mineBox.append(
    table(["Product", "Attributes", "Status", "Ends", "", "Decided by"], rows, "You hold no grant.", "my-grants-table"),
  );
  const held = byTestId("held-section");
  held.hidden = !isOfficer();
  const heldBox = byTestId("grants-held");
  clear(heldBox);
  const heldRows = (overview?.grantsHeld ?? []).map((g) => {
    const reason = h("input", { type: "text", placeholder: "Reason", testid: "revoke-text" });
    return h(
      "tr",
      { testid: "held-grant", "data-id": g.id, "data-product": g.product },
      h("td", {}, `${g.requesterSubject}${g.requesterOrg ? ` (${g.requesterOrg})` : ""}`),
      h("td", {}, g.product),
      h("td", {}, g.purpose),
      h("td", {}, g.grantedAttributes.join(", ")),
      h("td", {}, status(g)),
      h("td", {}, when(g.grantedUntil)),
      h(
        "td",
        {},
        g.status === "APPROVED"
          ? h("div", { className: "access-inline" }, reason,
              h("button", { type: "button", className: "small", testid: "revoke", onclick: () =>
                void act(() => api.query("RevokeGrant", RevokeGrantDocument, { id: g.id, reason: reason.value }), "Revoked.") }, "Revoke"))
          : "",
      ),
    );
  });
  heldBox.append(
    table(["Holder", "Product", "Purpose", "Attributes", "Status", "Ends", ""], heldRows, "Nobody holds a grant on your data.", "grants-held-table"),
  );
}

function render(): void {
  if (overview === null) return;
  const me = overview.me;
  byTestId("access-user").textContent = `${me.subject}${me.org ? ` · ${me.org}` : ""}${me.clearance ? ` · ${me.clearance}` : ""}`;
  byTestId("tab-decide").hidden = !isOfficer();
  renderMyRequests();
  renderDecisions();
  renderEvidence();
}

async function refresh(): Promise<void> {
  overview = await api.query("AccessOverview", AccessOverviewDocument);
  render();
  document.body.dataset.loaded = "true";
}

/** Sends a step, reads the page's data again, then says how it went (so the message means "done"). */
async function act(call: () => Promise<unknown>, done: string): Promise<void> {
  let failure: string | null = null;
  try {
    await call();
  } catch (e) {
    failure = errorText(e);
  }
  await refresh();
  if (failure === null) show(done);
  else show(failure, "error");
}

async function submitRequest(event: Event): Promise<void> {
  event.preventDefault();
  const product = products.find((p) => p.name === byTestId<HTMLSelectElement>("request-product").value);
  if (!product) return show("Pick a data product.", "error");
  if (!byTestId<HTMLInputElement>("request-licence").checked) return show("Accept the product's licence first.", "error");
  const days = Number(byTestId<HTMLSelectElement>("request-period").value);
  await act(
    () =>
      api.query("RequestAccess", RequestAccessDocument, {
        product: product.name,
        purpose: byTestId<HTMLTextAreaElement>("request-purpose").value,
        licence: product.licenceUrl,
        until: new Date(Date.now() + days * DAY_MS).toISOString(),
      }),
    `Request sent to ${product.owner}'s data officers.`,
  );
}

async function signIn(): Promise<void> {
  const panel = byTestId("access-signin");
  panel.hidden = false;
  byTestId("access-sign-in").addEventListener("click", () => {
    const token = byTestId<HTMLTextAreaElement>("access-token-input").value.trim();
    if (token) {
      setToken(token);
      window.location.reload();
    }
  });
  const users = await fetchDemoUsers();
  const list = byTestId("access-demo-users");
  for (const u of users ?? []) {
    list.append(
      h("li", {}, h("button", { type: "button", className: "link", testid: `access-demo-${u.name}`, onclick: () => {
        setToken(u.token);
        window.location.reload();
      } }, u.name), h("span", { className: "muted" }, ` ${u.description}`)),
    );
  }
}

async function start(): Promise<void> {
  for (const b of document.querySelectorAll<HTMLButtonElement>(".access-tabs button")) {
    b.addEventListener("click", () => selectTab(b.dataset.tab as Tab));
  }
  if (!getToken()) return signIn();
  byTestId("access-main").hidden = false;
  byTestId("request-form").addEventListener("submit", (e) => void submitRequest(e));
  byTestId("request-product").addEventListener("change", renderProductInfo);
  try {
    products = await loadProducts();
    renderProducts();
    await refresh();
  } catch (e) {
    show(errorText(e), "error");
  }
}

void start();
