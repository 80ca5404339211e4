// The Activity tab: filters (kept in the URL), the records table with
// endless scroll by cursor, live rows (woken by the bus) with pause,
// the detail drawer and export links.

import { ApiError, get } from "./api.js";
import * as bus from "./bus.js";
import { completion } from "./completion.js";
import { h, replace, statusBlock } from "./dom.js";
import { closeDrawer, drawerOpen, openDrawer, openDrawerMessage } from "./drawer.js";
import {
  FIELDS, RANGES, SEVERITIES, apiQuery, emptyFilters, fromSearch, isFiltered, sameFilters, toSearch,
} from "./filters.js";
import { fromLocalInput, num, timeElement, toLocalInput } from "./format.js";
import { recordedByElement } from "./provenance.js";

const PAGE = 50;
const COMPLETED = [
  ["actor", "Actor", "Who did it"], ["action", "Action", "e.g. scene.activated"], ["entity_id", "Entity", "Entity id"],
  ["recorded_by", "Recorded by", "API key id, or server"],
];
const FIELD_LABEL = { category: "Category", severity: "Severity", actor: "Actor", action: "Action", entity_type: "Entity type", entity_id: "Entity", recorded_by: "Recorded by" };
/** How a filter value is shown (the key's label, for recorded_by). */
const SHOW = { recorded_by: (v) => recordedByElement(v) };

/** A category's chip colour: a stable pick from six (CSS `cat-0`..`cat-5`). */
export function categoryClass(cat) {
  let n = 0;
  for (const c of cat) n = (n * 31 + c.charCodeAt(0)) >>> 0;
  return `chip cat cat-${n % 6}`;
}

/** One table row for `r`. */
function row(r, onOpen) {
  const entity = r.entity_name || r.entity_id;
  const open = h("button", { type: "button", class: "row-open", onclick: (ev) => { ev.stopPropagation(); onOpen(r, ev.currentTarget); } }, r.message);
  const tr = h("tr", { class: `sev-${r.severity}`, dataset: { id: String(r.id) } },
    h("td", { class: "c-time" }, timeElement(r.ts)),
    h("td", { class: "c-cat" }, h("span", { class: categoryClass(r.category) }, r.category)),
    h("td", { class: "c-actor" }, r.actor ?? "—"),
    h("td", { class: "c-entity", title: [r.entity_type, r.entity_id].filter(Boolean).join(": ") || null }, entity ?? "—"),
    h("td", { class: "c-msg" }, open,
      h("span", { class: "narrow-meta" }, h("span", { class: categoryClass(r.category) }, r.category),
        " ", r.actor ?? "", entity ? ` · ${entity}` : "", r.severity !== "info" ? h("span", { class: `sev sev-${r.severity}` }, ` · ${r.severity}`) : null)),
    h("td", { class: "c-sev" }, h("span", { class: `sev sev-${r.severity}` }, r.severity)));
  tr.addEventListener("click", () => onOpen(r, open));
  return tr;
}

export function mountActivity(root) {
  let filters = fromSearch(location.search);
  let cursor = null;
  let loading = false;
  let stalled = false; // a page failed: load more only when asked
  let generation = 0;
  let controller = null;
  let newestId = 0;
  const shown = new Set();
  let paused = false;
  let newestTs = "";
  let ready = false; // the first page of this generation is shown
  let catching = false;
  let again = false;
  let waiting = 0; // records announced while paused
  let unseen = 0;

  // --- filter controls -------------------------------------------------
  const q = h("input", { id: "f-q", type: "search", name: "q", placeholder: "Words; proj* matches a prefix", enterkeyhint: "search" });
  const range = h("select", { id: "f-range", name: "range" }, RANGES.map(([v, label]) => h("option", { value: v }, label)));
  const since = h("input", { id: "f-since", type: "datetime-local", name: "since" });
  const until = h("input", { id: "f-until", type: "datetime-local", name: "until" });
  const custom = h("div", { class: "custom-range", hidden: true },
    h("label", { for: "f-since" }, "From"), since, h("label", { for: "f-until" }, "To"), until,
    h("button", { type: "button", onclick: applyCustom }, "Apply range"));
  const catChips = h("div", { class: "chip-row", role: "group", "aria-labelledby": "cat-legend" });
  const sevChips = h("div", { class: "chip-row", role: "group", "aria-labelledby": "sev-legend" });
  const active = h("ul", { class: "active-filters", "aria-label": "Active filters" });
  const clearAll = h("button", { type: "button", class: "link-button", onclick: () => setFilters(emptyFilters()) }, "Clear all filters");

  // Actor, action and entity fold away on a phone unless one is in use.
  const moreFilters = h("details", { class: "more-filters" }, h("summary", {}, "Actor, action, entity, recorded by"),
    h("div", { class: "filter-line" }, COMPLETED.map(([field, label, placeholder]) => completion({
      field, label, placeholder, show: SHOW[field],
      context: () => apiQuery(filters, { except: field }),
      onPick: (v) => {
        if (filters[field].includes(v)) return;
        setFilters({ ...filters, [field]: [...filters[field], v] });
      },
    }))));
  const narrow = matchMedia("(max-width: 760px)");
  const onNarrow = () => { if (!narrow.matches) moreFilters.open = true; };
  narrow.addEventListener("change", onNarrow);
  moreFilters.open = !narrow.matches
    || COMPLETED.some(([field]) => filters[field].length > 0);

  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter activity" },
    h("div", { class: "filter-line" },
      h("div", { class: "field grow" }, h("label", { for: "f-q" }, "Search"), h("div", { class: "inline" }, q, h("button", { type: "submit" }, "Search"))),
      h("div", { class: "field" }, h("label", { for: "f-range" }, "Time range"), range)),
    custom,
    h("div", { class: "filter-line" },
      h("div", { class: "field" }, h("span", { id: "cat-legend", class: "legend" }, "Category"), catChips),
      h("div", { class: "field" }, h("span", { id: "sev-legend", class: "legend" }, "Severity"), sevChips)),
    moreFilters,
    h("div", { class: "filter-line active-line" }, active, clearAll));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (q.value.trim() !== filters.q) setFilters({ ...filters, q: q.value.trim() });
  });
  range.addEventListener("change", () => {
    if (range.value === "custom") {
      custom.hidden = false;
      since.focus();
      return;
    }
    setFilters({ ...filters, range: range.value, since: "", until: "" });
  });
  function applyCustom() {
    setFilters({ ...filters, range: "custom", since: fromLocalInput(since.value), until: fromLocalInput(until.value) });
  }

  // --- toolbar ----------------------------------------------------------
  const liveState = h("span", { class: "live-state", role: "status", "aria-live": "polite" });
  const pause = h("button", { type: "button", class: "pause", "aria-pressed": "false", onclick: togglePause }, "Pause");
  const count = h("span", { class: "count", role: "status" });
  const exportLink = (format, label) => h("a", {
    class: "button", href: "#", download: true,
    onclick: (ev) => { ev.currentTarget.href = exportHref(format); },
  }, label);
  const csv = exportLink("csv", "Export CSV");
  const json = exportLink("json", "Export JSON");
  const toolbar = h("div", { class: "toolbar" },
    h("div", { class: "live" }, liveState, pause), count,
    h("div", { class: "exports", role: "group", "aria-label": "Export the filtered records" }, csv, json));
  const newPill = h("button", {
    type: "button", class: "new-pill", hidden: true,
    onclick: () => { window.scrollTo({ top: 0 }); hideUnseen(); },
  });

  // --- table --------------------------------------------------------------
  const tbody = h("tbody");
  const table = h("table", { class: "records" },
    h("caption", { class: "visually-hidden" }, "Activity records, newest first. Choose a message to see all details."),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col", class: "c-time" }, "Time"),
      h("th", { scope: "col", class: "c-cat" }, "Category"),
      h("th", { scope: "col", class: "c-actor" }, "Actor"),
      h("th", { scope: "col", class: "c-entity" }, "Entity"),
      h("th", { scope: "col", class: "c-msg" }, "Message"),
      h("th", { scope: "col", class: "c-sev" }, "Severity"))),
    tbody);
  const stateArea = h("div", { class: "state-area" });
  const more = h("button", { type: "button", class: "load-more", hidden: true, onclick: () => loadMore() }, "Load older records");

  replace(root, h("h1", { class: "visually-hidden" }, "Activity"), form, toolbar, newPill,
    h("div", { class: "table-wrap" }, table), stateArea, more);

  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && !stalled) loadMore();
  }, { rootMargin: "600px 0px" });
  observer.observe(more);

  function exportHref(format) {
    const p = apiQuery(filters);
    p.set("format", format);
    return `/api/v1/activity/export?${p}`;
  }

  // --- rendering the filter state ----------------------------------------
  function renderControls() {
    q.value = filters.q;
    range.value = filters.range;
    custom.hidden = filters.range !== "custom";
    since.value = filters.since ? toLocalInput(filters.since) : "";
    until.value = filters.until ? toLocalInput(filters.until) : "";
    replace(sevChips, SEVERITIES.map((s) => chip("severity", s, null, `sev-chip sev-${s}`)));
    const items = [];
    for (const k of FIELDS) {
      if (k === "category" || k === "severity") continue;
      for (const v of filters[k]) {
        items.push(h("li", { class: "chip active-chip" }, h("span", {}, `${FIELD_LABEL[k]}: `, h("strong", {}, SHOW[k] ? SHOW[k](v) : v)),
          h("button", {
            type: "button", class: "chip-remove", "aria-label": `Remove ${FIELD_LABEL[k].toLowerCase()} filter ${v}`,
            onclick: () => setFilters({ ...filters, [k]: filters[k].filter((x) => x !== v) }),
          }, "×")));
      }
    }
    replace(active, items);
    clearAll.hidden = !isFiltered(filters);
  }

  function chip(field, value, count, cls = "") {
    const on = filters[field].includes(value);
    return h("button", {
      type: "button", class: `chip toggle ${cls}`, "aria-pressed": String(on),
      onclick: () => setFilters({ ...filters, [field]: on ? filters[field].filter((x) => x !== value) : [...filters[field], value] }),
    }, value, count === null ? null : h("span", { class: "chip-count" }, num(count)));
  }

  async function loadCategories(gen) {
    try {
      const p = apiQuery(filters, { except: "category" });
      p.set("limit", "12");
      const data = await get("/activity/facets/category", p);
      if (gen !== generation) return;
      const values = data.values.map((v) => [v.value, v.count]);
      // Selected categories stay visible even when outside the top values.
      for (const c of filters.category) if (!values.some(([v]) => v === c)) values.push([c, 0]);
      replace(catChips, values.length ? values.map(([v, n]) => chip("category", v, n, categoryClass(v))) : h("span", { class: "muted" }, "No categories yet"));
    } catch (e) {
      if (gen === generation) replace(catChips, h("span", { class: "muted" }, `Categories unavailable: ${e.message}`));
    }
  }

  // --- the drawer, in the URL as `id=` (shareable; back closes it) ---------
  const idInUrl = () => {
    const v = new URLSearchParams(location.search).get("id");
    return v && /^\d+$/.test(v) ? Number(v) : null;
  };

  function urlWithId(id) {
    const p = toSearch(filters);
    if (id !== null) p.set("id", String(id));
    return `/?${p}`.replace(/\?$/, "");
  }

  // Closing by the user: drop `id=` — by going back if opening pushed it.
  function drawerClosed() {
    if (idInUrl() === null) return;
    if (history.state && history.state.drawer) history.back();
    else history.replaceState(null, "", urlWithId(null));
  }

  // "show only" in the drawer narrows the current filters to that value; the
  // drawer's history entry becomes the narrowed view.
  function narrowTo(field, value) {
    setFilters({ ...filters, [field]: [value] }, { replace: true });
  }

  function showRecord(r, from) {
    if (idInUrl() !== r.id) history.pushState({ drawer: true }, "", urlWithId(r.id));
    openDrawer(r, from, { onClose: drawerClosed, onFilter: narrowTo });
  }

  /** Opens the drawer for the URL's `id=` (from a link, reload or forward). */
  async function syncDrawer() {
    const id = idInUrl();
    if (id === null) {
      closeDrawer();
      return;
    }
    openDrawerMessage(`Record ${id}`, "Loading…", { onClose: drawerClosed });
    try {
      const r = await get(`/activity/${id}`);
      if (idInUrl() === id) openDrawer(r, null, { onClose: drawerClosed, onFilter: narrowTo });
    } catch (e) {
      if (idInUrl() !== id) return;
      const text = e instanceof ApiError && e.status === 404
        ? `Record ${id} does not exist (any more): retention or a clear may have removed it.`
        : `Could not load record ${id}: ${e.message}`;
      openDrawerMessage(`Record ${id}`, text, { onClose: drawerClosed });
    }
  }

  function setFilters(next, { replace: replaceEntry = false } = {}) {
    const url = `/?${toSearch(next)}`.replace(/\?$/, "");
    if (replaceEntry) history.replaceState(null, "", url);
    if (sameFilters(next, filters)) return;
    filters = next;
    if (!replaceEntry) history.pushState(null, "", url);
    reload();
  }

  // --- loading -----------------------------------------------------------------
  function reload() {
    generation += 1;
    const gen = generation;
    if (controller) controller.abort();
    controller = new AbortController();
    cursor = null;
    stalled = false;
    ready = false;
    waiting = 0;
    newestId = 0;
    newestTs = "";
    shown.clear();
    hideUnseen();
    tbody.replaceChildren();
    table.setAttribute("aria-busy", "true");
    more.hidden = true;
    renderControls();
    // Kept current for "copy link"; refreshed on click for presets relative to now.
    csv.href = exportHref("csv");
    json.href = exportHref("json");
    loadCategories(gen);
    replace(stateArea, statusBlock("loading", "Loading activity…"));
    count.textContent = "";
    fetchPage(gen, null);
  }

  async function fetchPage(gen, after) {
    loading = true;
    if (after) {
      more.textContent = "Loading older records…";
      more.setAttribute("aria-disabled", "true");
    }
    const p = apiQuery(filters);
    p.set("limit", String(PAGE));
    if (after) p.set("cursor", after);
    let data;
    try {
      data = await get("/activity", p, controller.signal);
    } catch (e) {
      if (e.name === "AbortError" || gen !== generation) return;
      loading = false;
      stalled = true;
      more.textContent = "Load older records";
      more.removeAttribute("aria-disabled");
      table.removeAttribute("aria-busy");
      replace(stateArea, statusBlock("error", `Could not load activity: ${e.message}`,
        h("button", { type: "button", onclick: () => (after ? loadMore() : reload()) }, "Try again")));
      return;
    }
    if (gen !== generation) return;
    loading = false;
    more.textContent = "Load older records";
    more.removeAttribute("aria-disabled");
    table.removeAttribute("aria-busy");
    const frag = document.createDocumentFragment();
    for (const r of data.items) {
      if (shown.has(r.id)) continue;
      shown.add(r.id);
      if (r.id > newestId) {
        newestId = r.id;
        newestTs = r.ts;
      }
      frag.append(row(r, showRecord));
    }
    tbody.append(frag);
    cursor = data.next_cursor;
    more.hidden = !cursor;
    if (shown.size === 0) {
      replace(stateArea, statusBlock("empty", isFiltered(filters) ? "No activity matches these filters." : "No activity recorded yet.",
        isFiltered(filters) ? h("button", { type: "button", onclick: () => setFilters(emptyFilters()) }, "Clear all filters") : null));
    } else {
      replace(stateArea, cursor ? null : h("p", { class: "end muted" }, "That is everything that matches."));
    }
    updateCount();
    if (!after) {
      ready = true;
      showLiveState();
      catchUp(gen); // whatever arrived while the page loaded
    }
    // A short first page on a tall screen: keep filling while the end is in view.
    if (cursor) requestAnimationFrame(() => {
      const rect = more.getBoundingClientRect();
      if (rect.top < window.innerHeight + 600 && !stalled) loadMore();
    });
  }

  function loadMore() {
    if (loading || !cursor) return;
    stalled = false;
    fetchPage(generation, cursor);
  }

  function updateCount() {
    count.textContent = shown.size === 0 ? "" : `${num(shown.size)} shown${cursor ? ", more below" : ""}`;
  }

  // --- live --------------------------------------------------------------------
  // The bus (one WebSocket per tab, shared with the other views) only wakes
  // the table up; the rows themselves are read from the log with the table's
  // filters, starting at the newest row shown. So a row is never missed or
  // doubled — across pause/resume, a dropped connection, or a burst — and a
  // tab holds no second long-lived connection (an EventSource per tab would
  // use up the browser's six connections per host after a few tabs).
  function setLive(state, text) {
    liveState.className = `live-state live-${state}`;
    liveState.textContent = text;
  }

  function liveEnded() {
    return filters.range === "custom" && filters.until !== "" && new Date(filters.until) <= new Date();
  }

  function showLiveState() {
    if (paused) {
      const n = waiting === 0 ? "" : ` (${exactOnly() ? "" : "up to "}${num(waiting)} new)`;
      setLive("paused", `Paused — new records are not shown${n}`);
    }
    else if (liveEnded()) setLive("off", "Not live: the range ends in the past");
    else if (bus.connected()) setLive("on", "Live");
    else setLive("connecting", "Connecting…");
  }

  /** Whether mayMatch is the whole filter (no words, no time range). */
  const exactOnly = () => filters.q === "" && filters.range === "";

  /** Whether `r` can match: the exact-match fields are checked here, the rest by the server. */
  function mayMatch(r) {
    return FIELDS.every((k) => filters[k].length === 0 || filters[k].includes(r[k]));
  }

  /** Reads the rows newer than the newest shown, page by page, and inserts them. */
  async function catchUp(gen) {
    if (gen !== generation || !ready || paused || liveEnded()) return;
    if (catching) {
      again = true;
      return;
    }
    catching = true;
    try {
      do {
        again = false;
        const p = apiQuery(filters);
        // ids grow with ts, so every newer row has ts >= the newest shown.
        if (newestTs && (!p.has("since") || p.get("since") < newestTs)) p.set("since", newestTs);
        p.set("order", "asc");
        p.set("limit", "1000");
        let next = null;
        do {
          if (next) p.set("cursor", next);
          const data = await get("/activity", p);
          if (gen !== generation || paused) return;
          for (const r of data.items) if (r.id > newestId) insertLive(r);
          next = data.next_cursor;
        } while (next);
      } while (again);
      showLiveState();
    } catch {
      // A 401 has signed the app out; otherwise the next wake-up retries.
      if (gen === generation) setLive("off", "Live updates failed; retrying on the next record");
    } finally {
      catching = false;
    }
  }

  function togglePause() {
    paused = !paused;
    waiting = 0;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
    showLiveState();
    if (!paused) catchUp(generation); // everything since the newest shown row
  }

  function insertLive(r) {
    if (shown.has(r.id)) return;
    shown.add(r.id);
    newestId = r.id;
    newestTs = r.ts;
    if (shown.size === 1) replace(stateArea);
    const tr = row(r, showRecord);
    tr.classList.add("is-new");
    tr.addEventListener("animationend", () => tr.classList.remove("is-new"), { once: true });
    // Keep what the reader looks at in place: if the page is scrolled, the
    // rows inserted above are compensated by scrolling the same distance.
    const reading = window.scrollY > 0;
    const anchor = reading ? firstVisibleRow() : null;
    const before = anchor ? anchor.getBoundingClientRect().top : 0;
    tbody.prepend(tr);
    if (anchor) {
      window.scrollBy(0, anchor.getBoundingClientRect().top - before);
      unseen += 1;
      newPill.textContent = `${unseen} new ${unseen === 1 ? "record" : "records"} above`;
      newPill.hidden = false;
    }
    updateCount();
  }

  function firstVisibleRow() {
    for (const tr of tbody.rows) if (tr.getBoundingClientRect().bottom > 0) return tr;
    return null;
  }

  function hideUnseen() {
    unseen = 0;
    newPill.hidden = true;
  }

  const onScroll = () => { if (window.scrollY === 0 && unseen) hideUnseen(); };
  window.addEventListener("scroll", onScroll, { passive: true });
  const offCleared = bus.on("activity_cleared", () => reload());
  const offLogged = bus.on("activity_logged", (r) => {
    if (r.id <= newestId || !mayMatch(r)) return;
    if (paused) {
      waiting += 1;
      showLiveState();
    } else {
      catchUp(generation);
    }
  });
  const offBus = bus.onState((up) => {
    showLiveState();
    if (up) catchUp(generation); // missed while disconnected
  });

  reload();
  syncDrawer();

  return {
    /** The URL changed (back/forward): show its filters and drawer. */
    update() {
      const next = fromSearch(location.search);
      if (!sameFilters(next, filters)) {
        filters = next;
        reload();
      }
      const id = idInUrl();
      if (id === null ? drawerOpen() : !drawerOpen() || document.getElementById("drawer-title").textContent !== `Record ${id}`) syncDrawer();
    },
    unmount() {
      generation += 1;
      if (controller) controller.abort();
      observer.disconnect();
      window.removeEventListener("scroll", onScroll);
      narrow.removeEventListener("change", onNarrow);
      offCleared();
      offLogged();
      offBus();
    },
  };
}
