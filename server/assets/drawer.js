// The detail drawer: every field of one record and its metadata as a tree,
// in a modal <dialog> (focus stays inside; Escape closes).

import { h, replace } from "./dom.js";
import { absoluteTimeElement } from "./format.js";
import { recordedByElement } from "./provenance.js";

let dialog = null;
let body = null;
let title = null;
let returnFocus = null;
let onClosed = null;

function ensure() {
  if (dialog) return;
  title = h("h2", { id: "drawer-title" });
  body = h("div", { class: "drawer-body" });
  const close = h("button", { type: "button", class: "drawer-close", "aria-label": "Close details", onclick: () => dialog.close() }, "×");
  dialog = h("dialog", { class: "drawer", "aria-labelledby": "drawer-title" },
    h("div", { class: "drawer-head" }, title, close), body);
  dialog.addEventListener("close", () => {
    // The close event is queued, not immediate: when code closes the drawer
    // and opens it again at once (back, then forward), the old close arrives
    // after the new opening and must not close it or run its onClose.
    if (dialog.open) return;
    if (returnFocus && returnFocus.isConnected) returnFocus.focus();
    const fn = onClosed;
    onClosed = null;
    if (fn) fn();
  });
  // A click on the backdrop closes.
  dialog.addEventListener("click", (ev) => {
    if (ev.target === dialog) dialog.close();
  });
  document.body.append(dialog);
}

const FIELDS = [
  ["id", "Id"], ["ts", "Recorded"], ["occurred_at", "Occurred"], ["category", "Category"],
  ["action", "Action"], ["severity", "Severity"], ["actor", "Actor"], ["entity_type", "Entity type"],
  ["entity_id", "Entity id"], ["entity_name", "Entity name"], ["message", "Message"],
  ["recorded_by", "Recorded by"],
];

/** Fields the Activity filters can narrow to from the drawer. */
const FILTERABLE = ["category", "action", "severity", "actor", "entity_type", "entity_id", "recorded_by"];

/** Opens the drawer with a title and a message (loading, not found, error). */
export function openDrawerMessage(heading, text, { from, onClose } = {}) {
  ensure();
  returnFocus = from || (dialog.open ? returnFocus : document.activeElement);
  onClosed = onClose || null;
  title.textContent = heading;
  replace(body, h("p", { class: "drawer-message", role: "status" }, text));
  if (!dialog.open) dialog.showModal();
}

/**
 * Opens the drawer for `record`; focus returns to `from` on close, then
 * `onClose()` runs (not when the drawer is closed by code: closeDrawer).
 */
export function openDrawer(record, from, { onClose, onFilter } = {}) {
  ensure();
  returnFocus = from || (dialog.open ? returnFocus : document.activeElement);
  onClosed = onClose || null;
  title.textContent = `Record ${record.id}`;
  const dl = h("dl", { class: "fields" });
  for (const [k, label] of FIELDS) {
    const v = record[k];
    let value;
    if (v === null || v === undefined) {
      // A record stored before provenance was kept has no recorded_by.
      value = h("span", { class: "field-value null", title: k === "recorded_by" ? "Stored before actlog recorded who sent each record" : null }, "—");
    } else if (k === "ts" || k === "occurred_at") value = h("span", { class: "field-value" }, absoluteTimeElement(v));
    else if (k === "recorded_by") value = recordedByElement(v, "field-value recorded-by");
    else value = h("span", { class: k === "severity" ? `field-value sev sev-${v}` : "field-value" }, String(v));
    const dd = h("dd", {}, value);
    if (onFilter && FILTERABLE.includes(k) && v !== null && v !== undefined) {
      dd.append(" ", h("button", {
        type: "button", class: "link-button filter-by", "aria-label": `Show only ${label.toLowerCase()} ${v}`,
        onclick: () => { closeDrawer(); onFilter(k, String(v)); },
      }, "show only"));
    }
    dl.append(h("dt", {}, label), dd);
  }
  const meta = record.metadata || {};
  replace(body, dl, h("h3", {}, "Metadata"),
    Object.keys(meta).length === 0 ? h("p", { class: "null" }, "No metadata.") : tree(meta));
  if (!dialog.open) dialog.showModal();
}

export function closeDrawer() {
  onClosed = null;
  if (dialog && dialog.open) dialog.close();
}

export const drawerOpen = () => dialog !== null && dialog.open;

/** A JSON value as nested lists; objects and arrays fold. */
function tree(value) {
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  return h("ul", { class: "tree" }, entries.map(([k, v]) => {
    const key = h("span", { class: "tree-key" }, k);
    if (v !== null && typeof v === "object") {
      const n = Array.isArray(v) ? `[${v.length}]` : `{${Object.keys(v).length}}`;
      return h("li", {}, h("details", { open: true }, h("summary", {}, key, " ", h("span", { class: "tree-size" }, n)), tree(v)));
    }
    return h("li", {}, key, ": ", leaf(v));
  }));
}

function leaf(v) {
  if (v === null) return h("span", { class: "tree-null" }, "null");
  if (typeof v === "string") return h("span", { class: "tree-string" }, JSON.stringify(v));
  return h("span", { class: `tree-${typeof v}` }, String(v));
}
