// The Dashboard: Recent Activity (last 10, live over the bus), activity over
// time (histogram), counts by category and top actors (facets).

import { get } from "./api.js";
import * as bus from "./bus.js";
import { barChart, facetBars } from "./chart.js";
import { h, replace, statusBlock } from "./dom.js";
import { openDrawer } from "./drawer.js";
import { timeElement } from "./format.js";
import { categoryClass } from "./activity.js";

// [id, label, bucket, bucket length ms, buckets shown]
const SPANS = [
  ["24h", "24 hours", "1h", 3600e3, 24],
  ["7d", "7 days", "6h", 6 * 3600e3, 28],
  ["30d", "30 days", "1d", 86400e3, 30],
];

export function mountDashboard(root) {
  let span = SPANS[0];
  let recent = [];
  let refreshTimer = null;
  let alive = true;

  const recentList = h("ol", { class: "recent", "aria-label": "Last 10 records, newest first" });
  const recentBox = h("div", { class: "recent-box" }, statusBlock("loading", "Loading recent activity…"));
  const chartBox = h("div", { class: "chart-box" }, statusBlock("loading", "Loading the chart…"));
  const catBox = h("div", {}, statusBlock("loading", "Loading categories…"));
  const actorBox = h("div", {}, statusBlock("loading", "Loading actors…"));
  const spanButtons = h("div", { class: "segmented", role: "group", "aria-label": "Chart period" },
    SPANS.map((s) => h("button", {
      type: "button", "aria-pressed": String(s === span), dataset: { span: s[0] },
      onclick: () => { span = s; spanButtons.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.span === s[0]))); loadAggregates(); },
    }, s[1])));

  replace(root,
    h("h1", {}, "Dashboard"),
    h("div", { class: "dash-grid" },
      h("section", { class: "card widget-recent", "aria-labelledby": "recent-h" },
        h("div", { class: "card-head" }, h("h2", { id: "recent-h" }, "Recent activity"), h("a", { href: "/" }, "All activity")), recentBox),
      h("section", { class: "card widget-chart", "aria-labelledby": "chart-h" },
        h("div", { class: "card-head" }, h("h2", { id: "chart-h" }, "Activity over time"), spanButtons), chartBox),
      h("section", { class: "card widget-categories", "aria-labelledby": "cat-h" }, h("h2", { id: "cat-h" }, "By category"), catBox),
      h("section", { class: "card widget-actors", "aria-labelledby": "actors-h" }, h("h2", { id: "actors-h" }, "Top actors"), actorBox)));

  function renderRecent(fresh) {
    if (recent.length === 0) {
      replace(recentBox, statusBlock("empty", "No activity recorded yet."));
      return;
    }
    replace(recentList, recent.map((r) => {
      const li = h("li", { class: `sev-${r.severity}`, dataset: { id: String(r.id) } },
        timeElement(r.ts), h("span", { class: categoryClass(r.category) }, r.category),
        h("button", { type: "button", class: "row-open", onclick: (ev) => openDrawer(r, ev.currentTarget) }, r.message),
        h("span", { class: "muted recent-actor" }, r.actor ?? ""));
      if (fresh === r.id) li.classList.add("is-new");
      return li;
    }));
    replace(recentBox, recentList);
  }

  async function loadRecent() {
    try {
      const data = await get("/activity", "limit=10");
      if (!alive) return;
      recent = data.items;
      renderRecent(null);
    } catch (e) {
      if (alive) replace(recentBox, statusBlock("error", `Could not load recent activity: ${e.message}`, h("button", { type: "button", onclick: loadRecent }, "Try again")));
    }
  }

  async function loadAggregates() {
    // Whole buckets (aligned to the epoch, as the server aligns them), the
    // last one the current, partial one.
    const [, label, bucket, ms, n] = span;
    const end = (Math.floor(Date.now() / ms) + 1) * ms;
    const since = new Date(end - n * ms);
    const hist = new URLSearchParams({ bucket, since: since.toISOString(), until: new Date(end).toISOString() });
    const facet = new URLSearchParams({ since: since.toISOString(), limit: "8" });
    const box = (el, p, render, what) => p.then((d) => { if (alive) replace(el, render(d)); })
      .catch((e) => { if (alive) replace(el, statusBlock("error", `Could not load ${what}: ${e.message}`, h("button", { type: "button", onclick: loadAggregates }, "Try again"))); });
    await Promise.all([
      box(chartBox, get("/activity/histogram", hist), (d) => barChart(d.buckets, `Records per ${bucket} over the last ${label}`), "the chart"),
      box(catBox, get("/activity/facets/category", facet), (d) => (d.values.length ? facetBars(d.values, "category", `Records by category, last ${label}`) : statusBlock("empty", `No records in the last ${label}.`)), "categories"),
      box(actorBox, get("/activity/facets/actor", facet), (d) => (d.values.length ? facetBars(d.values, "actor", `Top actors, last ${label}`) : statusBlock("empty", `No actors in the last ${label}.`)), "actors"),
    ]);
  }

  // Live: new records go on top of the widget at once; the aggregates are
  // refreshed at most every 2 s while records keep arriving.
  const offLogged = bus.on("activity_logged", (r) => {
    if (recent.some((x) => x.id === r.id)) return;
    recent = [r, ...recent].sort((a, b) => b.id - a.id).slice(0, 10);
    renderRecent(r.id);
    if (!refreshTimer) refreshTimer = setTimeout(() => { refreshTimer = null; loadAggregates(); }, 2000);
  });
  const offCleared = bus.on("activity_cleared", () => { loadRecent(); loadAggregates(); });

  loadRecent();
  loadAggregates();

  return {
    unmount() {
      alive = false;
      clearTimeout(refreshTimer);
      offLogged();
      offCleared();
    },
  };
}
