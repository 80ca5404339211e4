// Measures the Activity page against a large log (default 1,000,000 records):
// time from navigation until the first page of rows is shown and the filters
// respond, and from applying a filter until the table shows its result.
// A measurement, not a test (nothing is asserted):
//   ACTLOG_BIN=../target/release/actlog node perf.mjs [records]
import { performance } from "node:perf_hooks";
import { launchBrowser, newPage, signIn, startServer } from "./lib/harness.mjs";

const total = Number(process.argv[2] ?? 1_000_000);
const BATCH = 1000;
const server = await startServer();
const browser = await launchBrowser();

const cats = ["device", "entity", "scene", "automation", "auth", "system", "network", "media"];
const actors = Array.from({ length: 200 }, (_, i) => `actor-${i}`);
const words = ["projector", "dropped", "scene", "changed", "kitchen", "display", "strip", "updated", "hdmi", "frames"];
let n = 0;
const batch = () => Array.from({ length: BATCH }, () => {
  n += 1;
  const cat = cats[n % cats.length];
  return {
    category: cat, action: `${cat}.${["created", "updated", "deleted"][n % 3]}`, actor: actors[(n * 7) % actors.length],
    entity_type: "device", entity_id: `dev_${n % 5000}`, entity_name: `Device ${n % 5000}`,
    message: `${words[n % 10]} ${words[(n * 3) % 10]} ${words[(n * 7) % 10]} #${n}`,
    severity: ["info", "info", "info", "warning", "error"][n % 5], metadata: { n },
  };
});

try {
  const t0 = performance.now();
  const workers = Array.from({ length: 4 }, async () => {
    while (n < total) await server.ingest(batch());
  });
  await Promise.all(workers);
  const stats = await server.json("/activity/stats");
  console.log(`seeded ${stats.entries} records in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const page = await newPage(browser);
  await signIn(page, server, undefined, "/?view=dashboard");
  await page.locator("svg.chart").waitFor({ timeout: 60_000 });
  const runs = [];
  for (let i = 0; i < 5; i += 1) {
    const start = performance.now();
    await page.goto(`${server.base}/`);
    await page.locator("table.records tbody tr").first().waitFor({ timeout: 60_000 });
    const rows = performance.now() - start;
    await page.getByRole("group", { name: "Category" }).getByRole("button").first().waitFor({ timeout: 60_000 });
    const interactive = performance.now() - start;
    // Apply a filter: click a category chip; done when every row is of it.
    const filter = async (what, act, done) => {
      const s = performance.now();
      await act();
      try {
        await page.waitForFunction(done, null, { timeout: 60_000, polling: "raf" });
      } catch (e) {
        console.log(what, page.url(), await page.locator("table.records tbody tr").count(), await page.locator(".state-area").textContent());
        throw e;
      }
      return [what, performance.now() - s];
    };
    const f1 = await filter("category chip", () => page.getByRole("group", { name: "Category" }).getByRole("button", { name: /^scene/ }).click(),
      () => { const c = [...document.querySelectorAll("table.records tbody td.c-cat")]; return c.length === 50 && c.every((td) => td.textContent === "scene"); });
    const f2 = await filter("search word", async () => { await page.getByRole("searchbox").fill("projector"); await page.getByRole("searchbox").press("Enter"); },
      () => { const m = [...document.querySelectorAll("table.records tbody .row-open")]; return m.length === 50 && m.every((b) => /projector/.test(b.textContent)); });
    const f3 = await filter("severity chip", () => page.getByRole("group", { name: "Severity" }).getByRole("button", { name: "error" }).click(),
      () => { const c = [...document.querySelectorAll("table.records tbody td.c-sev")]; return !document.querySelector("table.records[aria-busy]") && (c.length > 0 ? c.every((td) => td.textContent === "error") : !!document.querySelector(".state-empty")); });
    runs.push({ rows, interactive, filters: [f1, f2, f3] });
  }
  for (const r of runs) {
    console.log(`load: rows ${r.rows.toFixed(0)} ms, interactive ${r.interactive.toFixed(0)} ms; ${r.filters.map(([w, ms]) => `${w} ${ms.toFixed(0)} ms`).join(", ")}`);
  }
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`median of ${runs.length}: interactive ${median(runs.map((r) => r.interactive)).toFixed(0)} ms; ` +
    ["category chip", "search word", "severity chip"].map((w, i) => `${w} ${median(runs.map((r) => r.filters[i][1])).toFixed(0)} ms`).join(", "));
} finally {
  await browser.close();
  await server.stop();
}
