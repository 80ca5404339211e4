// Settings (admin only): recording on/off, retention, storage stats, clear
// the log, and API keys.

import { api, get } from "./api.js";
import * as bus from "./bus.js";
import { confirmDialog } from "./confirm.js";
import { h, replace, statusBlock } from "./dom.js";
import { absoluteTimeElement, bytes, num } from "./format.js";

const CLEAR_WORD = "clear";

/** A number typed in a text box → what PUT sends (the API validates). */
function bound(text) {
  const t = text.trim();
  if (t === "") return null;
  return /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : t;
}

export function mountSettings(root, { role }) {
  if (role !== "admin") {
    replace(root, h("h1", {}, "Settings"), statusBlock("empty", "Settings need an admin key. You signed in with a reader key."));
    return { unmount() {} };
  }
  let alive = true;
  let settings = null;
  let dirty = false;

  // --- recording --------------------------------------------------------
  // Disabled until the settings are loaded: a PUT carries both halves, so
  // saving one without knowing the other would overwrite it.
  const recording = h("input", { id: "s-enabled", type: "checkbox", role: "switch", disabled: true, "aria-describedby": "s-enabled-help" });
  const recStatus = h("p", { class: "form-status", role: "status" });
  const recSection = h("section", { class: "card", "aria-labelledby": "rec-h" },
    h("h2", { id: "rec-h" }, "Recording"),
    h("div", { class: "switch-line" }, recording, h("label", { for: "s-enabled" }, "Record activity")),
    h("p", { id: "s-enabled-help", class: "help" },
      "While recording is off, the server refuses every new event (409 recording_disabled): events that applications send in that time are lost, not queued, and the server records nothing of its own except that recording was turned off and on again. Stored records stay readable."),
    recStatus);
  recording.addEventListener("change", async () => {
    const on = recording.checked;
    if (!on && !(await confirmDialog({
      title: "Turn recording off?",
      text: "Events sent while recording is off are rejected and lost. Stored records stay.",
      confirm: "Turn off",
    }))) {
      recording.checked = true;
      return;
    }
    await save({ ...settings, enabled: on }, recStatus, on ? "Recording is on." : "Recording is off: new events are rejected.");
  });

  // --- retention --------------------------------------------------------
  const maxDays = h("input", { id: "s-days", type: "text", inputmode: "numeric", "aria-describedby": "s-days-help s-days-err" });
  const maxEntries = h("input", { id: "s-entries", type: "text", inputmode: "numeric", "aria-describedby": "s-entries-help s-entries-err" });
  const daysErr = h("p", { id: "s-days-err", class: "field-error" });
  const entriesErr = h("p", { id: "s-entries-err", class: "field-error" });
  const retStatus = h("p", { class: "form-status", role: "status" });
  const retSave = h("button", { type: "submit", class: "primary", disabled: true }, "Save retention");
  const retForm = h("form", { class: "card", "aria-labelledby": "ret-h", novalidate: true },
    h("h2", { id: "ret-h" }, "Retention"),
    h("p", { class: "help" }, "Older records are removed when either bound is exceeded. Leave a box empty for no bound."),
    h("div", { class: "field" }, h("label", { for: "s-days" }, "Keep at most (days)"), maxDays,
      h("p", { id: "s-days-help", class: "help" }, "1 to 36500."), daysErr),
    h("div", { class: "field" }, h("label", { for: "s-entries" }, "Keep at most (records)"), maxEntries,
      h("p", { id: "s-entries-help", class: "help" }, "At least 1."), entriesErr),
    retSave, retStatus);
  for (const el of [maxDays, maxEntries]) el.addEventListener("input", () => { dirty = true; });
  retForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!settings) return;
    for (const [el, err] of [[maxDays, daysErr], [maxEntries, entriesErr]]) {
      err.textContent = "";
      el.removeAttribute("aria-invalid");
    }
    const next = { ...settings, retention: { max_days: bound(maxDays.value), max_entries: bound(maxEntries.value) } };
    const ok = await save(next, retStatus, "Retention saved and applied.", (e) => {
      const target = e.field === "max_days" ? [maxDays, daysErr] : e.field === "max_entries" ? [maxEntries, entriesErr] : null;
      if (!target) return false;
      target[0].setAttribute("aria-invalid", "true");
      target[1].textContent = e.message;
      target[0].focus();
      return true;
    });
    if (ok) {
      dirty = false;
      loadStats();
    }
  });

  // --- storage ------------------------------------------------------------
  const statsBox = h("div", {}, statusBlock("loading", "Loading storage figures…"));
  const statsSection = h("section", { class: "card", "aria-labelledby": "stats-h" },
    h("div", { class: "card-head" }, h("h2", { id: "stats-h" }, "Storage"),
      h("button", { type: "button", onclick: () => loadStats() }, "Refresh")), statsBox);

  // --- clear ------------------------------------------------------------------
  const clearInput = h("input", { id: "s-clear", type: "text", autocomplete: "off", spellcheck: "false", "aria-describedby": "s-clear-help" });
  const clearButton = h("button", { type: "submit", class: "danger", disabled: true }, "Clear the log");
  const clearStatus = h("p", { class: "form-status", role: "status" });
  const clearForm = h("form", { class: "card danger-zone", "aria-labelledby": "clear-h" },
    h("h2", { id: "clear-h" }, "Clear the log"),
    h("p", { id: "s-clear-help", class: "help" },
      `Deletes every stored record at once; it cannot be undone. Type “${CLEAR_WORD}” to confirm.`),
    h("div", { class: "field" }, h("label", { for: "s-clear" }, `Type “${CLEAR_WORD}”`), clearInput),
    clearButton, clearStatus);
  clearInput.addEventListener("input", () => { clearButton.disabled = clearInput.value.trim().toLowerCase() !== CLEAR_WORD; });
  clearForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (clearButton.disabled) return;
    clearButton.disabled = true;
    clearStatus.className = "form-status";
    try {
      const r = await api("DELETE", "/activity", { query: "confirm=true" });
      clearStatus.textContent = `Cleared ${num(r.cleared)} records.`;
      clearInput.value = "";
      loadStats();
    } catch (e) {
      clearStatus.className = "form-status error";
      clearStatus.textContent = `Could not clear: ${e.message}`;
      clearButton.disabled = false;
    }
  });

  // --- keys ---------------------------------------------------------------------
  const keyLabel = h("input", { id: "k-label", type: "text", autocomplete: "off", required: true, maxlength: 256 });
  const keyRole = h("select", { id: "k-role" }, ["reader", "writer", "admin"].map((r) => h("option", { value: r }, r)));
  const keyErr = h("p", { class: "field-error", id: "k-err" });
  const tokenBox = h("div", { class: "token-box", hidden: true });
  const keysBox = h("div", {}, statusBlock("loading", "Loading keys…"));
  const keyForm = h("form", { class: "key-form", "aria-labelledby": "key-new-h", novalidate: true },
    h("h3", { id: "key-new-h" }, "New key"),
    h("div", { class: "field" }, h("label", { for: "k-label" }, "Label"), keyLabel),
    h("div", { class: "field" }, h("label", { for: "k-role" }, "Role"), keyRole),
    h("p", { class: "help" }, "reader: view and export · writer: send events only · admin: everything, including settings and keys."),
    keyErr, h("button", { type: "submit", class: "primary" }, "Create key"));
  keyForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    keyErr.textContent = "";
    try {
      const k = await api("POST", "/keys", { body: { label: keyLabel.value, role: keyRole.value } });
      keyLabel.value = "";
      showToken(k);
      loadKeys();
    } catch (e) {
      keyErr.textContent = e.message;
    }
  });
  function showToken(k) {
    const value = h("input", { id: "k-token", type: "text", readonly: true, value: k.token, class: "mono", "aria-describedby": "k-token-help" });
    const copyStatus = h("span", { role: "status", class: "copy-status" });
    const copy = h("button", {
      type: "button",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(k.token);
          copyStatus.textContent = "Copied.";
        } catch {
          value.select();
          copyStatus.textContent = "Select the key and copy it (Ctrl+C).";
        }
      },
    }, "Copy");
    replace(tokenBox,
      h("label", { for: "k-token" }, `Key for “${k.label}” (${k.role})`),
      h("div", { class: "inline" }, value, copy, copyStatus),
      h("p", { id: "k-token-help", class: "help strong" }, "This is the only time the key is shown. Store it now."),
      h("button", { type: "button", class: "link-button", onclick: () => { tokenBox.hidden = true; tokenBox.replaceChildren(); } }, "Done, hide it"));
    tokenBox.hidden = false;
    value.focus();
    value.select();
  }
  const keysSection = h("section", { class: "card keys", "aria-labelledby": "keys-h" },
    h("h2", { id: "keys-h" }, "API keys"), tokenBox, keysBox, keyForm);

  replace(root, h("h1", {}, "Settings"),
    h("div", { class: "settings-grid" }, recSection, retForm, statsSection, clearForm, keysSection));

  // --- loading -------------------------------------------------------------------
  function showSettings(s) {
    settings = s;
    recording.disabled = false;
    retSave.disabled = false;
    recording.checked = s.enabled;
    if (!dirty) {
      maxDays.value = s.retention.max_days ?? "";
      maxEntries.value = s.retention.max_entries ?? "";
    }
  }

  async function save(next, status, okText, onFieldError = () => false) {
    status.className = "form-status";
    status.textContent = "Saving…";
    try {
      showSettings(await api("PUT", "/activity/settings", { body: next }));
      status.textContent = okText;
      return true;
    } catch (e) {
      recording.checked = settings.enabled;
      if (onFieldError(e)) {
        status.textContent = "";
      } else {
        status.className = "form-status error";
        status.textContent = `Not saved: ${e.message}`;
      }
      return false;
    }
  }

  async function loadSettings() {
    try {
      const s = await get("/activity/settings");
      if (alive) showSettings(s);
    } catch (e) {
      if (alive) {
        recStatus.className = "form-status error";
        replace(recStatus, `Could not load the settings: ${e.message} `,
          h("button", { type: "button", onclick: () => { replace(recStatus); recStatus.className = "form-status"; loadSettings(); } }, "Try again"));
      }
    }
  }

  async function loadStats() {
    try {
      const s = await get("/activity/stats");
      if (!alive) return;
      const row = (label, value) => [h("dt", {}, label), h("dd", {}, value)];
      replace(statsBox, h("dl", { class: "stats" },
        row("Records", num(s.entries)), row("Segment files", num(s.segments)), row("Size on disk", bytes(s.bytes)),
        row("Oldest", s.oldest_ts ? [absoluteTimeElement(s.oldest_ts), ` (#${s.oldest_id})`] : "—"),
        row("Newest", s.newest_ts ? [absoluteTimeElement(s.newest_ts), ` (#${s.newest_id})`] : "—")));
    } catch (e) {
      if (alive) replace(statsBox, statusBlock("error", `Could not load storage figures: ${e.message}`, h("button", { type: "button", onclick: loadStats }, "Try again")));
    }
  }

  async function loadKeys() {
    try {
      const { keys } = await get("/keys");
      if (!alive) return;
      if (keys.length === 0) {
        replace(keysBox, statusBlock("empty", "No keys."));
        return;
      }
      replace(keysBox, h("div", { class: "table-wrap" }, h("table", { class: "keys-table" },
        h("caption", { class: "visually-hidden" }, "API keys"),
        h("thead", {}, h("tr", {}, ["Label", "Role", "Created", "Id"].map((t) => h("th", { scope: "col" }, t)), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
        h("tbody", {}, keys.map((k) => h("tr", { dataset: { key: k.id } },
          h("td", {}, k.label), h("td", {}, k.role), h("td", {}, absoluteTimeElement(k.created_at)), h("td", { class: "mono" }, k.id),
          h("td", {}, h("button", {
            type: "button", class: "danger", "aria-label": `Revoke key ${k.label}`,
            onclick: () => revoke(k),
          }, "Revoke"))))))));
    } catch (e) {
      if (alive) replace(keysBox, statusBlock("error", `Could not load keys: ${e.message}`, h("button", { type: "button", onclick: loadKeys }, "Try again")));
    }
  }

  async function revoke(k) {
    const ok = await confirmDialog({
      title: `Revoke “${k.label}”?`,
      text: "Everything using this key stops working at once, including web sessions signed in with it.",
      confirm: "Revoke key",
    });
    if (!ok) return;
    try {
      await api("DELETE", `/keys/${encodeURIComponent(k.id)}`);
    } catch (e) {
      keyErr.textContent = `Could not revoke: ${e.message}`;
    }
    loadKeys();
  }

  const offSettings = bus.on("settings_changed", (s) => { if (alive) { showSettings(s); loadStats(); } });
  const offCleared = bus.on("activity_cleared", () => { if (alive) loadStats(); });

  loadSettings();
  loadStats();
  loadKeys();

  return {
    unmount() {
      alive = false;
      offSettings();
      offCleared();
    },
  };
}
