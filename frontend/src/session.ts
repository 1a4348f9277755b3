// The caller's token lives in sessionStorage: it survives a reload but not closing the tab,
// and is never written anywhere longer-lived.

const KEY = "hub.token";

export function getToken(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string): void {
  sessionStorage.setItem(KEY, token.trim().replace(/^Bearer\s+/i, ""));
}

export function clearToken(): void {
  sessionStorage.removeItem(KEY);
}

/** Reads the expiry claim of a JWT without verifying it: only to warn before the API refuses it. */
export function tokenExpiry(token: string): Date | null {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const claims = JSON.parse(json) as { exp?: unknown };
    return typeof claims.exp === "number" ? new Date(claims.exp * 1000) : null;
  } catch {
    return null;
  }
}
