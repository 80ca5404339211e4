// Times, numbers and sizes for display. Times are shown in the browser's
// zone with its UTC offset; the UTC time is offered on hover.

import { h } from "./dom.js";

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** "+01:00" for the zone offset in effect at `d`. */
export function offsetOf(d) {
  const m = -d.getTimezoneOffset();
  const sign = m >= 0 ? "+" : "-";
  const a = Math.abs(m);
  return `${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

/** "2026-11-25 21:01:02 +01:00" in the browser's zone. */
export function localTime(iso) {
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${offsetOf(d)}`;
}

/** "2026-11-25 20:01:02.123456 UTC" (the record's own precision). */
export function utcTime(iso) {
  return iso.replace("T", " ").replace("Z", " UTC");
}

/** "just now", "5 min ago", "3 h ago", "2 d ago", or the local date. */
export function relativeTime(iso, now = Date.now()) {
  const s = Math.round((now - new Date(iso).getTime()) / 1000);
  if (s < 10) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  if (s < 7 * 86400) return `${Math.floor(s / 86400)} d ago`;
  return localTime(iso).slice(0, 10);
}

/** A `<time>` showing the relative time, the absolute ones on hover. */
export function timeElement(iso) {
  return h("time", {
    datetime: iso,
    title: `${localTime(iso)}\n${utcTime(iso)}`,
    dataset: { ts: iso },
  }, relativeTime(iso));
}

/** Refreshes every relative `<time data-ts>` under `root`. */
export function refreshTimes(root = document) {
  const now = Date.now();
  for (const t of root.querySelectorAll("time[data-ts]")) {
    t.textContent = relativeTime(t.dataset.ts, now);
  }
}

/** A local date-time with offset, UTC on hover (for details). */
export function absoluteTimeElement(iso) {
  return h("time", { datetime: iso, title: utcTime(iso) }, localTime(iso));
}

const nf = new Intl.NumberFormat("en");
export const num = (n) => nf.format(n);

/** 1536 → "1.5 KiB". */
export function bytes(n) {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${num(n)} bytes` : `${v.toFixed(1)} ${units[i]}`;
}

/** A value for an `<input type="datetime-local">` from an ISO time. */
export function toLocalInput(iso) {
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** An ISO UTC time from an `<input type="datetime-local">` value (local zone). */
export function fromLocalInput(v) {
  if (!v) return "";
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}
