// The Dashboard: Recent Activity (last 10, live), the activity-over-time
// chart from the histogram endpoint, counts by category and top actors.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eventually, launchBrowser, newPage, seedEvents, signIn, startServer } from "../lib/harness.mjs";

describe("Dashboard", () => {
  let server;
  let browser;
  let page;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    await server.ingest(seedEvents(40));
    page = await newPage(browser);
    await signIn(page, server, undefined, "/?view=dashboard");
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test("Recent activity lists the newest 10", async () => {
    assert.equal(await page.locator("nav a[aria-current=page]").textContent(), "Dashboard");
    const items = page.locator("ol.recent li");
    await eventually(async () => (await items.count()) === 10, "10 recent records");
    const ids = await items.evaluateAll((lis) => lis.map((li) => Number(li.dataset.id)));
    const newest = (await server.json("/activity?limit=10")).items.map((r) => r.id);
    assert.deepEqual(ids, newest);
  });

  test("the chart has one bar per hour of the last 24 h and a text summary", async () => {
    const chart = page.getByRole("img", { name: /^Records per 1h over the last 24 hours/ });
    await chart.waitFor();
    assert.equal(await chart.locator("rect.bar").count(), 24);
    const total = (await server.json("/activity/stats")).entries;
    assert.match(await chart.getAttribute("aria-label"), new RegExp(`: ${total} records`));
    await page.getByRole("button", { name: "7 days" }).click();
    const week = page.getByRole("img", { name: /^Records per 6h over the last 7 days/ });
    await week.waitFor();
    assert.equal(await week.locator("rect.bar").count(), 28);
    assert.equal(await page.getByRole("button", { name: "7 days" }).getAttribute("aria-pressed"), "true");
  });

  test("counts by category and top actors come from facets and link to filtered activity", async () => {
    const cats = page.getByRole("list", { name: /^Records by category/ });
    await cats.waitFor();
    const facets = await server.json(`/activity/facets/category?limit=8&since=${encodeURIComponent(new Date((Math.floor(Date.now() / 21600e3) + 1) * 21600e3 - 7 * 86400e3).toISOString())}`);
    const shown = await cats.locator("li").evaluateAll((lis) => lis.map((li) => `${li.querySelector(".facet-value").textContent}=${li.querySelector(".facet-count").textContent}`));
    assert.deepEqual(shown, facets.values.map((v) => `${v.value}=${v.count}`));
    const actors = await page.getByRole("list", { name: /^Top actors/ }).locator(".facet-value").allTextContents();
    assert.ok(actors.includes("alice") && actors.includes("bob"), `actors: ${actors}`);
    await cats.getByRole("link", { name: /^device/ }).click();
    await page.waitForURL(/\/\?category=device$/);
    assert.equal(await page.locator("nav a[aria-current=page]").textContent(), "Activity");
    await page.goBack();
    await page.locator("ol.recent li").first().waitFor();
  });

  test("a new record appears in Recent activity live, and the counts follow", async () => {
    await page.locator(".bus-state", { hasText: "Connected" }).waitFor();
    const [id] = await server.ingest({ category: "zeta", action: "zeta.tested", actor: "dash-probe", message: "Dashboard live probe" });
    const li = page.locator(`ol.recent li[data-id="${id}"]`);
    await li.waitFor({ timeout: 2000 });
    assert.match(await li.getAttribute("class"), /is-new/);
    assert.equal(await page.locator("ol.recent li").count(), 10);
    await page.getByRole("list", { name: /^Records by category/ }).getByRole("link", { name: /^zeta/ }).waitFor({ timeout: 5000 });
    assert.deepEqual(page.problems, []);
  });

  test("an empty log shows empty states", async () => {
    // With recording off, a clear leaves no record of its own behind.
    assert.equal((await server.call("PUT", "/activity/settings", { enabled: false, retention: { max_days: null, max_entries: null } })).status, 200);
    assert.equal((await server.call("DELETE", "/activity?confirm=true")).status, 200);
    assert.equal((await server.json("/activity/stats")).entries, 0);
    await page.getByText("No activity recorded yet.").waitFor();
    await page.getByRole("img", { name: "Records per 1h over the last 24 hours: no records." }).waitFor();
    await page.getByText("No records in the last 24 hours.").waitFor();
    await page.getByText("No actors in the last 24 hours.").waitFor();
    assert.deepEqual(page.problems, []);
  });
});
