// The Activity filters: one object, read from and written to the page URL
// (so a filtered view is shareable and the back button walks through
// filter changes), and turned into API query strings.

/** Exact-match fields the API filters on (values of one field are OR-ed). */
export const FIELDS = ["category", "severity", "actor", "action", "entity_type", "entity_id", "recorded_by"];

export const SEVERITIES = ["info", "warning", "error"];

/** Time range presets: URL value → label and length in ms ("" = all time). */
export const RANGES = [
  ["", "All time", 0],
  ["1h", "Last hour", 3600e3],
  ["24h", "Last 24 hours", 86400e3],
  ["7d", "Last 7 days", 7 * 86400e3],
  ["30d", "Last 30 days", 30 * 86400e3],
  ["custom", "Custom…", 0],
];

export function emptyFilters() {
  const f = { q: "", range: "", since: "", until: "" };
  for (const k of FIELDS) f[k] = [];
  return f;
}

/** Filters from a `location.search`. */
export function fromSearch(search) {
  const p = new URLSearchParams(search);
  const f = emptyFilters();
  for (const k of FIELDS) f[k] = [...new Set(p.getAll(k).filter(Boolean))];
  f.q = p.get("q") || "";
  const range = p.get("range") || "";
  f.range = RANGES.some(([v]) => v === range) ? range : "";
  if (f.range === "custom") {
    f.since = validIso(p.get("since"));
    f.until = validIso(p.get("until"));
  }
  return f;
}

function validIso(v) {
  if (!v) return "";
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

/** The URL query for filters (stable order, empty parts left out). */
export function toSearch(f) {
  const p = new URLSearchParams();
  for (const k of FIELDS) for (const v of f[k]) p.append(k, v);
  if (f.q.trim()) p.set("q", f.q.trim());
  if (f.range) p.set("range", f.range);
  if (f.range === "custom") {
    if (f.since) p.set("since", f.since);
    if (f.until) p.set("until", f.until);
  }
  return p;
}

/**
 * The API query for filters at time `now`; `except` leaves out one field
 * (completion of a field should not be narrowed by its own filter).
 */
export function apiQuery(f, { now = Date.now(), except = null } = {}) {
  const p = new URLSearchParams();
  for (const k of FIELDS) if (k !== except) for (const v of f[k]) p.append(k, v);
  if (f.q.trim()) p.set("q", f.q.trim());
  const preset = RANGES.find(([v]) => v === f.range);
  if (preset && preset[2] > 0) p.set("since", new Date(now - preset[2]).toISOString());
  if (f.range === "custom") {
    if (f.since) p.set("since", f.since);
    if (f.until) p.set("until", f.until);
  }
  return p;
}

export function isFiltered(f) {
  return FIELDS.some((k) => f[k].length > 0) || f.q.trim() !== "" || f.range !== "";
}

export const sameFilters = (a, b) => toSearch(a).toString() === toSearch(b).toString();
