// The HTTP API (docs/API.md), as the signed-in browser calls it (the
// session cookie rides along). A 401 anywhere means the session ended.

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

const sessionListeners = new Set();

/** `fn()` runs when a call is answered 401 (session expired or key revoked). */
export function onSessionEnded(fn) {
  sessionListeners.add(fn);
}

export function sessionEnded() {
  for (const fn of sessionListeners) fn();
}

/**
 * Calls `/api/v1{path}`. `query` is a URLSearchParams or string; `body` is sent
 * as JSON. Resolves to the parsed answer (null for 204); rejects with ApiError.
 */
export async function api(method, path, { query, body, signal } = {}) {
  const qs = query ? `?${query}` : "";
  let resp;
  try {
    resp = await fetch(`/api/v1${path}${qs}`, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "The server could not be reached. Is actlog running?");
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    const err = new ApiError(resp.status, e.code || `http_${resp.status}`,
      e.message || `The server answered ${resp.status}.`, e.field);
    if (resp.status === 401 && path !== "/session") sessionEnded();
    throw err;
  }
  return data;
}

export const get = (path, query, signal) => api("GET", path, { query, signal });
