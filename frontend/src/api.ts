// HTTP side of the hub's GraphQL API: one POST per operation, with the caller's bearer token.
// Failures are sorted into the three kinds the page reacts to differently: the token is no longer
// accepted (sign in again), the API cannot be reached (retry later), or the query itself failed.

import type { TypedDocumentString } from "./queries";
import { measure } from "./timing";

export const GRAPHQL_PATH = "/graphql";

// Operations without required variables may be sent without any.
type VariablesArg<V> = Record<string, never> extends V ? [variables?: V] : [variables: V];

export type ApiErrorKind = "auth" | "unreachable" | "query";

export class ApiError extends Error {
  readonly kind: ApiErrorKind;
  readonly status: number | null;

  constructor(kind: ApiErrorKind, message: string, status: number | null = null) {
    super(message);
    this.name = "ApiError";
    this.kind = kind;
    this.status = status;
  }
}

interface GraphQLErrorBody {
  message: string;
  extensions?: { code?: string } & Record<string, unknown>;
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: GraphQLErrorBody[];
}

// Messages and codes that mean the token was refused, whatever layer produced them.
const AUTH_HINTS = /(unauthenticated|unauthori[sz]ed|expired|invalid token|signature|not authenticated|jwt)/i;

function isAuthError(err: GraphQLErrorBody): boolean {
  const code = String(err.extensions?.code ?? "");
  return code === "UNAUTHENTICATED" || code === "FORBIDDEN_TOKEN" || AUTH_HINTS.test(err.message);
}

export type TokenSource = () => string | null;

export interface ApiListener {
  onAuthFailure(message: string): void;
  onUnreachable(message: string): void;
  onReachable(): void;
}

export class HubApi {
  private readonly token: TokenSource;
  private listener: ApiListener | null = null;
  private inFlight = 0;
  private readonly busyListeners = new Set<(busy: number) => void>();

  constructor(token: TokenSource) {
    this.token = token;
  }

  setListener(listener: ApiListener): void {
    this.listener = listener;
  }

  onBusy(fn: (busy: number) => void): void {
    this.busyListeners.add(fn);
  }

  private setBusy(delta: number): void {
    this.inFlight += delta;
    for (const fn of this.busyListeners) fn(this.inFlight);
  }

  headers(): Record<string, string> {
    const h: Record<string, string> = { "Content-Type": "application/json", Accept: "application/json" };
    const t = this.token();
    if (t) h.Authorization = `Bearer ${t}`;
    return h;
  }

  /** Sends one generated operation (see queries.ts); the answer has the operation's generated type. */
  async query<T, V>(
    operationName: string,
    document: TypedDocumentString<T, V>,
    ...[variables]: VariablesArg<V>
  ): Promise<T> {
    this.setBusy(1);
    try {
      return await this.send<T>(operationName, document.toString(), variables ?? {});
    } finally {
      this.setBusy(-1);
    }
  }

  private async send<T>(operationName: string, query: string, variables: unknown): Promise<T> {
    const body = JSON.stringify({ operationName, query, variables });
    const sent = performance.now();
    let response: Response;
    let attempt = 0;
    for (;;) {
      try {
        response = await fetch(GRAPHQL_PATH, { method: "POST", headers: this.headers(), body });
      } catch (e) {
        console.error(e);
        const msg = `The hub API at ${GRAPHQL_PATH} cannot be reached: the hub may be stopped or the network down. Check that the hub runs, then try again.`;
        this.listener?.onUnreachable(msg);
        throw new ApiError("unreachable", msg);
      }
      // 503 (the API runs as much as it allows) and 429 (this user has as many operations running as
      // allowed) both say when to come back: the load waits its turn instead of failing at once.
      const wait = busyRetryAfterMs(response);
      if (wait === null || attempt >= BUSY_RETRIES) break;
      attempt += 1;
      await new Promise((resolve) => window.setTimeout(resolve, wait));
    }
    if (response.status === 429) {
      const msg = `The hub is still busy with your other requests after ${attempt} tries; wait for them to finish, then try again.`;
      throw new ApiError("query", msg, response.status);
    }
    if (response.status === 503 && response.headers.has("Retry-After")) {
      const msg = `The hub is busy serving other users and asked to come back later (tried ${attempt + 1} times).`;
      this.listener?.onUnreachable(msg);
      throw new ApiError("unreachable", msg, response.status);
    }
    if (response.status === 401 || response.status === 403) {
      const body = await safeText(response);
      const msg = `The hub refused your token (HTTP ${response.status}${body ? `: ${body}` : ""}).`;
      this.listener?.onAuthFailure(msg);
      throw new ApiError("auth", msg, response.status);
    }
    if (response.status >= 502 && response.status <= 504) {
      const msg = `The hub API is not answering (HTTP ${response.status}).`;
      this.listener?.onUnreachable(msg);
      throw new ApiError("unreachable", msg, response.status);
    }
    let payload: GraphQLResponse<T>;
    try {
      const answered = performance.now();
      const text = await response.text();
      const read = performance.now();
      payload = JSON.parse(text) as GraphQLResponse<T>;
      // Where a request's time goes (timing.ts): waiting for the answer to start, reading it, parsing it.
      measure(`api:${operationName}:answer`, sent, answered);
      measure(`api:${operationName}:body`, answered, read);
      measure(`api:${operationName}:parse`, read);
    } catch {
      const msg = `The hub API answered ${operationName} with HTTP ${response.status} and no JSON body.`;
      if (response.status >= 500) this.listener?.onUnreachable(msg);
      throw new ApiError(response.status >= 500 ? "unreachable" : "query", msg, response.status);
    }
    this.listener?.onReachable();
    if (payload.errors && payload.errors.length > 0) {
      const authErr = payload.errors.find(isAuthError);
      if (authErr) {
        const msg = `The hub refused your token: ${authErr.message}`;
        this.listener?.onAuthFailure(msg);
        throw new ApiError("auth", msg, response.status);
      }
      // Partial data with errors still counts as an answer when the data is there.
      if (payload.data == null) {
        throw new ApiError("query", `${operationName} failed: ${payload.errors.map((e) => e.message).join("; ")}`);
      }
    }
    if (payload.data == null) {
      throw new ApiError("query", `${operationName} returned no data (HTTP ${response.status}).`, response.status);
    }
    return payload.data;
  }
}

// How many times one operation is sent again when the hub says it is busy, and the longest wait honoured.
const BUSY_RETRIES = 3;
const BUSY_WAIT_MAX_MS = 10_000;

/** Milliseconds to wait before sending again when the answer is "busy, come back" (429 or 503 with a
 * Retry-After in seconds); null for any other answer. */
function busyRetryAfterMs(response: Response): number | null {
  if (response.status !== 429 && response.status !== 503) return null;
  const header = response.headers.get("Retry-After");
  if (header === null) return null;
  const seconds = Number(header);
  if (!Number.isFinite(seconds) || seconds < 0) return null;
  // A little spread, so that callers refused together do not all come back in the same instant.
  return Math.min(seconds * 1000, BUSY_WAIT_MAX_MS) * (1 + Math.random() * 0.25);
}

async function safeText(r: Response): Promise<string> {
  try {
    const text = (await r.text()).trim();
    try {
      const parsed = JSON.parse(text) as { detail?: unknown };
      if (parsed && typeof parsed.detail === "string") return parsed.detail;
    } catch {
      /* not JSON: keep the raw text */
    }
    return text.slice(0, 200);
  } catch {
    return "";
  }
}

/** Demo users offered by the API in development mode (GET /dev/tokens). */
export interface DemoUser {
  name: string;
  description: string;
  clearance: string | null;
  token: string;
}

export async function fetchDemoUsers(): Promise<DemoUser[] | null> {
  let response: Response;
  try {
    response = await fetch("/dev/tokens", { headers: { Accept: "application/json" } });
  } catch {
    return null;
  }
  if (!response.ok) return null;
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    return null;
  }
  return parseDemoUsers(body);
}

// The endpoint may answer a list of users, a {users: [...]} object, or a map name -> token/user.
export function parseDemoUsers(body: unknown): DemoUser[] {
  const out: DemoUser[] = [];
  const pushUser = (fallbackName: string, raw: unknown): void => {
    if (typeof raw === "string") {
      out.push({ name: fallbackName, description: "", clearance: null, token: raw });
      return;
    }
    if (!raw || typeof raw !== "object") return;
    const u = raw as Record<string, unknown>;
    const token = [u.token, u.access_token, u.jwt].find((v): v is string => typeof v === "string");
    if (!token) return;
    const claims = (u.claims && typeof u.claims === "object" ? u.claims : {}) as Record<string, unknown>;
    const pick = (...keys: string[]): string | null => {
      for (const k of keys) {
        const v = u[k] ?? claims[k];
        if (typeof v === "string" && v) return v;
      }
      return null;
    };
    const name = pick("name", "user", "username", "subject", "sub", "id") ?? fallbackName;
    const clearance = pick("clearance");
    const org = pick("org", "organisation", "organization");
    const roles = u.roles ?? claims.roles;
    const parts = [org ? `org ${org}` : null, Array.isArray(roles) && roles.length ? `roles ${roles.join(", ")}` : null];
    const description = pick("description") ?? parts.filter(Boolean).join(" · ");
    out.push({ name, description, clearance, token });
  };
  if (Array.isArray(body)) {
    body.forEach((u, i) => pushUser(`user ${i + 1}`, u));
  } else if (body && typeof body === "object") {
    const obj = body as Record<string, unknown>;
    const list = obj.users ?? obj.tokens;
    if (Array.isArray(list)) list.forEach((u, i) => pushUser(`user ${i + 1}`, u));
    else if (list && typeof list === "object") for (const [k, v] of Object.entries(list)) pushUser(k, v);
    else for (const [k, v] of Object.entries(obj)) pushUser(k, v);
  }
  return out;
}
