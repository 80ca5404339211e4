// Quality checks across every view: accessible names, AA contrast in the
// light and the dark scheme, visible keyboard focus, keyboard use, the
// 360 px layout, and the local time zone with its offset.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { contrastFailures, focusWithoutOutline, overflowsSideways, unnamedControls } from "../lib/audit.mjs";
import { launchBrowser, newPage, seedEvents, signIn, startServer } from "../lib/harness.mjs";

const VIEWS = [
  ["Activity", "/", "table.records tbody tr"],
  ["Dashboard", "/?view=dashboard", "svg.chart"],
  ["Settings", "/?view=settings", "table.keys-table"],
];

/** Opens `path` in a signed-in page and waits until it has loaded. */
async function show(page, server, path, ready) {
  await page.goto(`${server.base}${path}`);
  await page.locator(ready).first().waitFor();
  await page.locator(".state-loading").waitFor({ state: "detached" });
}

describe("Quality", () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    const events = seedEvents(80);
    events.push({ category: "device", action: "device.error", message: "A very long message ".repeat(20).trim(), severity: "error", actor: "an-actor-with-a-rather-long-name-for-narrow-screens" });
    await server.ingest(events);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test("the audits catch what they look for", async () => {
    const page = await newPage(browser);
    await page.goto(`${server.base}/`);
    await page.getByLabel("API key").waitFor();
    await page.evaluate(() => {
      const b = document.createElement("button");
      b.id = "unnamed";
      const p = document.createElement("p");
      p.textContent = "faint";
      p.style.color = "#bbbbbb";
      const wide = document.createElement("div");
      wide.style.width = "3000px";
      wide.textContent = "wide";
      document.querySelector("main").append(b, p, wide);
    });
    assert.equal((await unnamedControls(page)).length, 1);
    const low = await contrastFailures(page);
    assert.equal(low.length, 1);
    assert.match(low[0], /"faint"/);
    assert.equal(await overflowsSideways(page), true);
    await page.context().close();
  });

  for (const scheme of ["light", "dark"]) {
    test(`every control is named and all text meets AA contrast (${scheme})`, async () => {
      const page = await newPage(browser, { colorScheme: scheme });
      await page.goto(`${server.base}/`);
      await page.getByLabel("API key").waitFor();
      assert.deepEqual(await unnamedControls(page), [], "sign-in");
      assert.deepEqual(await contrastFailures(page), [], "sign-in");
      await signIn(page, server);
      const bodyBg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(bodyBg, scheme === "dark" ? "rgb(21, 23, 28)" : "rgb(255, 255, 255)", "the scheme follows the system");
      for (const [name, path, ready] of VIEWS) {
        await show(page, server, path, ready);
        assert.deepEqual(await unnamedControls(page), [], name);
        assert.deepEqual(await contrastFailures(page), [], name);
      }
      // The states in between: suggestions open, a chip pressed, the drawer.
      await show(page, server, "/?severity=error", "table.records tbody tr");
      await page.getByRole("combobox", { name: "Actor" }).fill("a");
      await page.getByRole("listbox", { name: "Actor suggestions" }).getByRole("option").first().waitFor();
      assert.deepEqual(await unnamedControls(page), [], "completion");
      assert.deepEqual(await contrastFailures(page), [], "completion and a pressed chip");
      await page.keyboard.press("Escape");
      await page.locator("table.records .row-open").first().click();
      await page.getByRole("dialog").waitFor();
      assert.deepEqual(await unnamedControls(page), [], "drawer");
      assert.deepEqual(await contrastFailures(page), [], "drawer");
      await page.keyboard.press("Escape");
      // Closing the drawer goes back in history (id= leaves the URL); a
      // navigation started before that traversal lands is aborted by it.
      await page.getByRole("dialog").waitFor({ state: "hidden" });
      await page.waitForURL((url) => !url.searchParams.has("id"));
      // An error state.
      await show(page, server, "/?view=settings", "table.keys-table");
      await page.getByLabel("Keep at most (days)").fill("0");
      await page.getByRole("button", { name: "Save retention" }).click();
      await page.locator("#s-days-err").getByText("max_days").waitFor();
      assert.deepEqual(await contrastFailures(page), [], "validation error");
      assert.deepEqual(page.problems, []);
      await page.context().close();
    });
  }

  test("keyboard: focus is always visible and the main actions work without a mouse", async () => {
    const page = await newPage(browser);
    await signIn(page, server);
    await show(page, server, "/", "table.records tbody tr");
    // The skip link comes first.
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
    assert.deepEqual(await focusWithoutOutline(page, 30), []);
    // A category chip by keyboard.
    const chip = page.getByRole("group", { name: "Category" }).getByRole("button", { name: /^scene/ });
    await chip.focus();
    await page.keyboard.press("Space");
    await page.waitForURL(/\?category=scene$/);
    // Open a record from the keyboard; Escape closes and focus returns.
    const open = page.locator("table.records .row-open").first();
    await open.focus();
    await page.keyboard.press("Enter");
    await page.getByRole("dialog").waitFor();
    await page.keyboard.press("Escape");
    await page.getByRole("dialog").waitFor({ state: "hidden" });
    assert.equal(await page.evaluate(() => document.activeElement.className), "row-open");
    // Sections by keyboard.
    await page.getByRole("link", { name: "Dashboard" }).focus();
    await page.keyboard.press("Enter");
    await page.locator("svg.chart").waitFor();
    assert.equal(await page.locator("nav a[aria-current=page]").textContent(), "Dashboard");
    await page.context().close();
  });

  test("360 px: no view scrolls sideways and the table fits", async () => {
    const page = await newPage(browser, { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
    await signIn(page, server);
    for (const [name, path, ready] of VIEWS) {
      await show(page, server, path, ready);
      assert.equal(await overflowsSideways(page), false, `${name} scrolls sideways at 360 px`);
    }
    await show(page, server, "/", "table.records tbody tr");
    const fits = await page.evaluate(() => {
      const wrap = document.querySelector(".table-wrap");
      return wrap.scrollWidth <= wrap.clientWidth;
    });
    assert.ok(fits, "the records table fits 360 px without scrolling");
    // The hidden columns' facts are still on each row.
    const meta = await page.locator("table.records tbody tr").first().locator(".narrow-meta").textContent();
    assert.ok(meta.length > 0);
    await page.locator("table.records .row-open").first().click();
    await page.getByRole("dialog").waitFor();
    assert.equal(await overflowsSideways(page), false, "drawer at 360 px");
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test("times are in the browser's zone with its offset, UTC on hover", async () => {
    const page = await newPage(browser, { timezoneId: "Asia/Kolkata" });
    await signIn(page, server, undefined, "/?view=settings");
    const t = page.locator("dl.stats time").first();
    await t.waitFor();
    const iso = await t.getAttribute("datetime");
    const shown = await t.textContent();
    assert.match(shown, /\+05:30$/);
    const utc = new Date(iso);
    const ist = new Date(utc.getTime() + 330 * 60e3).toISOString();
    assert.equal(shown, `${ist.slice(0, 10)} ${ist.slice(11, 19)} +05:30`);
    assert.equal(await t.getAttribute("title"), iso.replace("T", " ").replace("Z", " UTC"));
    await page.context().close();
  });
});
