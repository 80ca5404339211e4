// Who recorded a record: `recorded_by` is the id of the API key that sent it
// (`key_…`) or `server` for what the server wrote about itself. A viewer
// who may list keys (an admin) sees the key's label next to its id and
// "actlog server"; anyone else sees the raw value.

import { get } from "./api.js";
import { h } from "./dom.js";

/** The value the server gives its own records. */
export const SERVER = "server";

// Least time between two loads of the key list.
const RELOAD_MS = 5000;

let canList = false;
let labels = new Map(); // key id → label
let loadedAt = 0;
let loading = null;

/** Called once the viewer's role is known (and on sign-out with `false`). */
export function setKeyListing(allowed) {
  canList = allowed;
  labels = new Map();
  loadedAt = 0;
  loading = null;
}

/**
 * Loads the key labels if the viewer may list keys: once, and again (at
 * most every few seconds) when a record names a key not seen yet — one
 * created since, or one revoked (which stays unknown: its id is shown).
 */
function ensureLabels(id) {
  if (!canList || id === SERVER || labels.has(id)) return Promise.resolve(false);
  if (loading) return loading;
  if (Date.now() - loadedAt < RELOAD_MS) return Promise.resolve(false);
  loading = get("/keys")
    .then((data) => {
      labels = new Map((data.keys || []).map((k) => [k.id, k.label]));
      return true;
    })
    .catch(() => false)
    .finally(() => {
      loadedAt = Date.now();
      loading = null;
    });
  return loading;
}

/** The text for a `recorded_by` value with the labels known now. */
export function recordedByText(value) {
  if (!canList) return value;
  if (value === SERVER) return "actlog server";
  const label = labels.get(value);
  return label ? `${label} (${value})` : value;
}

/**
 * A span showing a `recorded_by` value; for an admin it gains the key's
 * label once the key list has been loaded. The raw value is its title.
 */
export function recordedByElement(value, cls = "recorded-by") {
  const el = h("span", { class: cls, title: value }, recordedByText(value));
  ensureLabels(value).then(() => {
    el.textContent = recordedByText(value);
  });
  return el;
}
