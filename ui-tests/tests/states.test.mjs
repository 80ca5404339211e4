// Loading and error states of every view: the API is made to fail (or to
// hang) for one endpoint at a time with request interception, and each view
// must say so and recover through its "Try again" button.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eventually, launchBrowser, newPage, seedEvents, signIn, startServer } from "../lib/harness.mjs";

const FAIL = { status: 503, contentType: "application/json", body: JSON.stringify({ error: { code: "unavailable", message: "The log is unavailable (test)." } }) };

describe("States", () => {
  let server;
  let browser;
  let page;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    await server.ingest(seedEvents(20));
    page = await newPage(browser);
    await signIn(page, server);
    await page.locator("table.records tbody tr").first().waitFor();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test("Activity: loading, then an error with the API's message, then a retry that works", async () => {
    let release;
    const held = new Promise((r) => { release = r; });
    await page.route((u) => u.pathname === "/api/v1/activity" && u.searchParams.get("q") === "strip", async (route) => {
      await held;
      await route.fulfill(FAIL);
    });
    const search = page.getByRole("searchbox", { name: "Search" });
    await search.fill("strip");
    await search.press("Enter");
    await page.getByRole("status").filter({ hasText: "Loading activity…" }).waitFor();
    assert.equal(await page.locator("table.records").getAttribute("aria-busy"), "true");
    release();
    await page.getByRole("alert").filter({ hasText: "Could not load activity: The log is unavailable (test)." }).waitFor();
    await page.unrouteAll();
    await page.getByRole("alert").getByRole("button", { name: "Try again" }).click();
    await page.locator("table.records tbody tr").first().waitFor();
    assert.equal(await page.getByRole("alert").count(), 0);
  });

  test("Activity: a failing next page keeps the rows and retries", async () => {
    await page.goto(`${server.base}/`);
    await page.locator("table.records tbody tr").first().waitFor();
    await server.ingest(seedEvents(60));
    await page.goto(`${server.base}/`);
    await page.route((u) => u.pathname === "/api/v1/activity" && u.searchParams.has("cursor"), (route) => route.fulfill(FAIL));
    await page.locator(".load-more").scrollIntoViewIfNeeded();
    await page.getByRole("alert").filter({ hasText: "Could not load activity" }).waitFor();
    assert.equal(await page.locator("table.records tbody tr").count(), 50);
    await page.unrouteAll();
    await page.getByRole("alert").getByRole("button", { name: "Try again" }).click();
    await page.locator("table.records tbody tr").nth(50).waitFor();
  });

  test("Dashboard: each widget fails on its own and recovers", async () => {
    await page.route((u) => u.pathname === "/api/v1/activity/histogram", (route) => route.fulfill(FAIL));
    await page.getByRole("link", { name: "Dashboard" }).click();
    await page.getByRole("alert").filter({ hasText: "Could not load the chart: The log is unavailable (test)." }).waitFor();
    await page.locator("ol.recent li").first().waitFor();
    await page.getByRole("list", { name: /^Records by category/ }).waitFor();
    await page.unrouteAll();
    await page.getByRole("alert").getByRole("button", { name: "Try again" }).click();
    await page.locator("svg.chart").waitFor();
  });

  test("Settings: storage and keys fail on their own and recover", async () => {
    await page.route((u) => u.pathname === "/api/v1/activity/stats" || u.pathname === "/api/v1/keys", (route) => route.fulfill(FAIL));
    await page.getByRole("link", { name: "Settings" }).click();
    await page.getByRole("alert").filter({ hasText: "Could not load storage figures" }).waitFor();
    await page.getByRole("alert").filter({ hasText: "Could not load keys" }).waitFor();
    assert.equal(await page.getByRole("switch", { name: "Record activity" }).isChecked(), true);
    await page.unrouteAll();
    for (const what of ["storage figures", "keys"]) {
      await page.getByRole("alert").filter({ hasText: `Could not load ${what}` }).getByRole("button", { name: "Try again" }).click();
    }
    await page.locator("dl.stats").waitFor();
    await page.locator("table.keys-table").waitFor();
  });

  test("Settings: until the settings load, nothing can overwrite them", async () => {
    await page.route((u) => u.pathname === "/api/v1/activity/settings", (route) => route.fulfill(FAIL));
    await page.getByRole("link", { name: "Activity" }).click();
    await page.getByRole("link", { name: "Settings" }).click();
    await page.getByText("Could not load the settings: The log is unavailable (test).").waitFor();
    assert.equal(await page.getByRole("switch", { name: "Record activity" }).isDisabled(), true);
    assert.equal(await page.getByRole("button", { name: "Save retention" }).isDisabled(), true);
    await page.unrouteAll();
    await page.locator(".form-status").getByRole("button", { name: "Try again" }).click();
    await eventually(async () => !(await page.getByRole("switch", { name: "Record activity" }).isDisabled()), "the switch enabled");
    assert.equal(await page.getByRole("button", { name: "Save retention" }).isDisabled(), false);
  });

  test("the server gone: sign-in and the app say it could not be reached", async () => {
    await page.route("**/api/v1/**", (route) => route.abort("connectionrefused"));
    await page.goto(`${server.base}/`);
    await page.getByRole("alert").filter({ hasText: "The server did not answer: The server could not be reached. Is actlog running?" }).waitFor();
    await page.unrouteAll();
    await page.getByRole("button", { name: "Try again" }).click();
    await page.locator("table.records tbody tr").first().waitFor();
    assert.deepEqual(page.problems, []);
  });
});
