// The activity-over-time chart: hand-written SVG bars from the histogram
// endpoint, with a text summary for screen readers and a table to reveal.

import { h, svg } from "./dom.js";
import { localTime, num, utcTime } from "./format.js";

const W = 720;
const H = 200;
const PAD = { left: 44, right: 8, top: 10, bottom: 26 };

/** An SVG bar chart of `buckets` ([{start, count}]) described by `label`. */
export function barChart(buckets, label) {
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const total = buckets.reduce((s, b) => s + b.count, 0);
  const peak = buckets.reduce((p, b) => (b.count > p.count ? b : p), buckets[0] || { count: 0, start: null });
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const bw = innerW / Math.max(1, buckets.length);
  const summary = total === 0 ? `${label}: no records.`
    : `${label}: ${num(total)} records; the busiest interval began ${localTime(peak.start)} with ${num(peak.count)}.`;
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": summary, preserveAspectRatio: "none" });
  // Gridlines at 0, half and max.
  for (const f of [0, 0.5, 1]) {
    const y = PAD.top + innerH * (1 - f);
    g.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: "grid" }),
      svg("text", { x: PAD.left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, num(Math.round(max * f))));
  }
  buckets.forEach((b, i) => {
    const bh = (b.count / max) * innerH;
    const rect = svg("rect", {
      x: PAD.left + i * bw + 1, y: PAD.top + innerH - bh, width: Math.max(1, bw - 2), height: bh, class: "bar",
    }, svg("title", {}, `${localTime(b.start)} (${utcTime(b.start)}): ${num(b.count)}`));
    g.append(rect);
  });
  // A few time labels along the bottom.
  const step = Math.max(1, Math.ceil(buckets.length / 6));
  for (let i = 0; i < buckets.length; i += step) {
    const t = localTime(buckets[i].start);
    g.append(svg("text", { x: PAD.left + i * bw, y: H - 8, class: "axis" }, buckets.length > 48 ? t.slice(5, 10) : t.slice(11, 16)));
  }
  const table = h("details", { class: "chart-table" }, h("summary", {}, "Show as a table"),
    h("table", {}, h("caption", { class: "visually-hidden" }, label),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Interval starting"), h("th", { scope: "col" }, "Records"))),
      h("tbody", {}, buckets.map((b) => h("tr", {}, h("td", {}, localTime(b.start)), h("td", {}, num(b.count)))))));
  return h("figure", { class: "chart-figure" }, g, h("figcaption", { class: "muted" }, summary), table);
}

/** Horizontal bars for facet values; each value links to its filtered view. */
export function facetBars(values, field, label) {
  const max = Math.max(1, ...values.map((v) => v.count));
  return h("ol", { class: "facet-bars", "aria-label": label }, values.map((v) => {
    const bar = h("span", { class: "facet-bar" });
    bar.style.width = `${(v.count / max) * 100}%`;
    return h("li", {},
      h("a", { href: `/?${new URLSearchParams({ [field]: v.value })}`, class: "facet-link" },
        h("span", { class: "facet-value" }, v.value), h("span", { class: "facet-count" }, num(v.count))),
      h("span", { class: "facet-track", "aria-hidden": "true" }, bar));
  }));
}
