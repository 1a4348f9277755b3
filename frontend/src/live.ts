// Live updates over the graphql-ws protocol on the API's /graphql websocket. Two subscriptions
// share one socket: changes to the objects on screen, and, while something is expanded, the
// unfiltered feed, which is how a new neighbour of an expanded object is noticed.

import { createClient, type Client } from "graphql-ws";
import { CHANGES, type Change } from "./queries";

export type LiveState = "connecting" | "live" | "reconnecting" | "offline" | "refused";

export interface LiveListener {
  onChange(change: Change, feed: "screen" | "discovery"): void;
  onState(state: LiveState, detail?: string): void;
}

function wsUrl(): string {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/graphql`;
}

export class LiveFeed {
  private client: Client | null = null;
  private readonly token: () => string | null;
  private readonly listener: LiveListener;
  private screenSub: (() => void) | null = null;
  private discoverySub: (() => void) | null = null;
  private screenKey = "";
  private cursor: string | null = null;
  received = 0;

  constructor(token: () => string | null, listener: LiveListener) {
    this.token = token;
    this.listener = listener;
  }

  start(): void {
    this.stop();
    this.listener.onState("connecting");
    this.client = createClient({
      url: wsUrl(),
      lazy: false,
      keepAlive: 15000,
      retryAttempts: Infinity,
      shouldRetry: (event) => {
        const code = (event as CloseEvent | undefined)?.code;
        return code !== 4401 && code !== 4403;
      },
      retryWait: async (retries) => {
        await new Promise((r) => setTimeout(r, Math.min(10000, 500 * 2 ** retries)));
      },
      connectionParams: () => {
        const t = this.token();
        return t ? { Authorization: `Bearer ${t}` } : {};
      },
      on: {
        connected: () => this.listener.onState("live"),
        closed: (event) => {
          const e = event as CloseEvent;
          if (e?.code === 4401 || e?.code === 4403) this.listener.onState("refused", e.reason || "token refused");
          else this.listener.onState("reconnecting", e?.reason || undefined);
        },
        error: () => this.listener.onState("reconnecting"),
      },
    });
  }

  stop(): void {
    this.screenSub?.();
    this.discoverySub?.();
    this.screenSub = null;
    this.discoverySub = null;
    this.screenKey = "";
    void this.client?.dispose();
    this.client = null;
    this.listener.onState("offline");
  }

  /** Follows changes to exactly these objects; resubscribes only when the set changed. */
  watch(mrids: string[], discover: boolean): void {
    if (!this.client) return;
    const key = mrids.slice().sort().join(",");
    if (key !== this.screenKey) {
      this.screenKey = key;
      this.screenSub?.();
      this.screenSub = mrids.length > 0 ? this.subscribe({ mrids }, "screen") : null;
    }
    if (discover && !this.discoverySub) this.discoverySub = this.subscribe({}, "discovery");
    if (!discover && this.discoverySub) {
      this.discoverySub();
      this.discoverySub = null;
    }
  }

  private subscribe(vars: Record<string, unknown>, feed: "screen" | "discovery"): () => void {
    const client = this.client as Client;
    return client.subscribe<{ changes: Change }>(
      { query: CHANGES.toString(), variables: vars, operationName: "Changes" },
      {
        next: (msg) => {
          const change = msg.data?.changes;
          if (!change) return;
          this.received++;
          this.cursor = change.cursor ?? this.cursor;
          this.listener.onChange(change, feed);
        },
        error: (err) => {
          const text = Array.isArray(err)
            ? err.map((e: { message?: string }) => e.message).join("; ")
            : err instanceof Error
              ? err.message
              : "subscription ended";
          this.listener.onState("reconnecting", text);
        },
        complete: () => undefined,
      },
    );
  }

  get lastCursor(): string | null {
    return this.cursor;
  }
}
