// The Activity tab end to end: sign-in, seeded rows, chips, completion,
// search, the URL and the back button, live rows and pause, endless scroll,
// the drawer, export, and hostile-looking data rendered as text.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, afterEach, before, describe, test } from "node:test";
import { ADMIN, column, eventually, launchBrowser, newPage, rowIds, seedEvents, signIn, startServer } from "../lib/harness.mjs";

const XSS = "<img src=x onerror=alert(1)>";

describe("Activity", () => {
  let server;
  let browser;
  let page;
  let seeded;
  let xssId;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    seeded = await server.ingest(seedEvents(130));
    [xssId] = await server.ingest({
      category: "security", action: "probe.sent", actor: "<b>mallory</b>", entity_name: "\"><script>alert(2)</script>",
      message: XSS, metadata: { html: "<svg onload=alert(3)>", deep: { list: [1, { k: "<i>x</i>" }] } },
    });
    page = await newPage(browser);
  });

  // A failed test must not leave a modal open over the next ones.
  afterEach(async () => {
    if (page && (await page.locator("dialog[open]").count()) > 0) await page.keyboard.press("Escape");
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test("a wrong key is refused with a message; the right one signs in", async () => {
    await page.goto(`${server.base}/`);
    await page.getByLabel("API key").fill("not-a-real-key-but-long-enough-0000000000");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "not valid" }).waitFor();
    await signIn(page, server);
    assert.equal(await page.locator("nav a[aria-current=page]").textContent(), "Activity");
  });

  test("shows the newest records first, 50 per page", async () => {
    await page.locator("table.records tbody tr").first().waitFor();
    const ids = await rowIds(page);
    assert.equal(ids.length, 50);
    const newest = (await server.json("/activity?limit=50")).items.map((r) => r.id);
    assert.deepEqual(ids, newest);
    assert.equal(await page.locator("table.records thead th[scope=col]").count(), 6);
  });

  test("data that looks like HTML is rendered as text", async () => {
    const row = page.locator(`tr[data-id="${xssId}"]`);
    assert.equal(await row.locator("td.c-msg .row-open").textContent(), XSS);
    assert.equal(await row.locator("td.c-actor").textContent(), "<b>mallory</b>");
    assert.equal(await page.locator("table.records img, table.records script, table.records b").count(), 0);
    await row.locator(".row-open").click();
    const drawer = page.getByRole("dialog", { name: `Record ${xssId}` });
    await drawer.waitFor();
    await drawer.getByText("\"<svg onload=alert(3)>\"").waitFor();
    assert.equal(await drawer.locator("img, svg, script, i").count(), 0);
    await page.keyboard.press("Escape");
    await drawer.waitFor({ state: "hidden" });
    assert.deepEqual(page.problems, []);
  });

  test("the drawer shows every field and the metadata as a tree", async () => {
    const id = seeded[120];
    const row = page.locator(`tr[data-id="${id}"]`);
    const button = row.locator(".row-open");
    await button.focus();
    await page.keyboard.press("Enter");
    const drawer = page.getByRole("dialog", { name: `Record ${id}` });
    await drawer.waitFor();
    const rec = await server.json(`/activity/${id}`);
    const terms = await drawer.locator("dl.fields dt").allTextContents();
    assert.deepEqual(terms, ["Id", "Recorded", "Occurred", "Category", "Action", "Severity", "Actor", "Entity type", "Entity id", "Entity name", "Message", "Recorded by"]);
    const values = await drawer.locator("dl.fields dd .field-value").allTextContents();
    assert.equal(values[0], String(id));
    assert.equal(values[3], rec.category);
    assert.equal(values[10], rec.message);
    // Recorded time: browser zone (Berlin, +01:00 in November) shown, UTC on hover.
    const time = drawer.locator("dl.fields dd time").first();
    assert.match(await time.textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+01:00$/);
    assert.equal(await time.getAttribute("title"), rec.ts.replace("T", " ").replace("Z", " UTC"));
    // Metadata tree: nested keys and leaves.
    const tree = drawer.locator("ul.tree");
    const top = await tree.first().evaluate((ul) => [...ul.children].map((li) => li.querySelector(".tree-key").textContent));
    assert.deepEqual(top, ["n", "nested"]);
    await tree.getByText("level").waitFor();
    assert.deepEqual(await tree.locator(".tree-string").allTextContents(), ["\"a\"", "\"b\""]);
    await drawer.getByRole("button", { name: "Close details" }).click();
    await drawer.waitFor({ state: "hidden" });
    assert.equal(await page.evaluate(() => document.activeElement.className), "row-open", "focus returns to the row");
  });

  test("the open record is in the URL: back closes it, forward and a link open it", async () => {
    const id = seeded[110];
    await page.locator(`tr[data-id="${id}"] .row-open`).click();
    await page.waitForURL(new RegExp(`\\?id=${id}$`));
    const drawer = page.getByRole("dialog", { name: `Record ${id}` });
    await drawer.waitFor();
    await page.goBack();
    await drawer.waitFor({ state: "hidden" });
    assert.equal(new URL(page.url()).search, "");
    await page.goForward();
    await drawer.getByText(seedEvents(130)[110].message).waitFor();
    await page.keyboard.press("Escape");
    await drawer.waitFor({ state: "hidden" });
    await page.waitForURL((u) => u.search === "");
    // A shared link, also to a record that is gone.
    await page.goto(`${server.base}/?category=device&id=${seeded[4]}`);
    await page.getByRole("dialog", { name: `Record ${seeded[4]}` }).getByText(seedEvents(130)[4].message).waitFor();
    await page.keyboard.press("Escape");
    await page.waitForURL(/\?category=device$/);
    // "show only" narrows the view to a value of the record.
    await page.goto(`${server.base}/?category=device`);
    await page.locator(`tr[data-id="${seeded[4]}"] .row-open`).click();
    const actor = seedEvents(130)[4].actor;
    await page.getByRole("dialog").getByRole("button", { name: `Show only actor ${actor}` }).click();
    await page.waitForURL(new RegExp(`\\?category=device&actor=${actor}$`));
    await eventually(async () => (await column(page, "c-actor")).every((a) => a === actor), `only ${actor}`);
    assert.equal(await page.getByRole("dialog").isVisible(), false);
    await page.goBack();
    await page.waitForURL(/\?category=device$/);
    await page.goto(`${server.base}/?id=999999`);
    await page.getByRole("dialog", { name: "Record 999999" }).getByText("does not exist (any more)").waitFor();
    await page.keyboard.press("Escape");
    await page.waitForURL((u) => u.search === "");
    await page.locator("table.records tbody tr").first().waitFor();
  });

  test("times are relative, with the local time and offset and UTC on hover", async () => {
    const t = page.locator("table.records tbody td.c-time time").first();
    assert.match(await t.textContent(), /just now|s ago|min ago/);
    const [local, utc] = (await t.getAttribute("title")).split("\n");
    assert.match(local, /\+01:00$/);
    assert.match(utc, / UTC$/);
  });

  test("a category chip filters the table and the URL", async () => {
    await page.getByRole("group", { name: "Category" }).getByRole("button", { name: /^device/ }).click();
    await page.waitForURL(/\?category=device$/);
    await eventually(async () => (await column(page, "c-cat")).length > 0 && (await column(page, "c-cat")).every((c) => c === "device"), "only device rows");
    const expected = (await server.json("/activity?category=device&limit=50")).items.map((r) => r.id);
    await eventually(async () => JSON.stringify(await rowIds(page)) === JSON.stringify(expected), "the API's device rows");
    const chip = page.getByRole("group", { name: "Category" }).getByRole("button", { name: /^device/ });
    assert.equal(await chip.getAttribute("aria-pressed"), "true");
  });

  test("actor completion suggests from facets and filters", async () => {
    const actor = page.getByRole("combobox", { name: "Actor" });
    await actor.fill("al");
    const options = page.getByRole("listbox", { name: "Actor suggestions" }).getByRole("option");
    await eventually(async () => (await options.count()) === 2, "two actors starting with al");
    const texts = await options.allTextContents();
    const facets = await server.json("/activity/facets/actor?prefix=al&category=device");
    assert.deepEqual(texts, facets.values.map((v) => `${v.value}${v.count}`));
    await actor.press("ArrowDown");
    assert.equal(await options.first().getAttribute("aria-selected"), "true");
    const picked = facets.values[0].value;
    await actor.press("Enter");
    await page.waitForURL(new RegExp(`\\?category=device&actor=${picked}$`));
    await eventually(async () => {
      const actors = await column(page, "c-actor");
      return actors.length > 0 && actors.every((a) => a === picked);
    }, `only ${picked}'s rows`);
    await page.getByRole("button", { name: `Remove actor filter ${picked}` }).waitFor();
  });

  test("the back button walks back through the filters", async () => {
    await page.goBack();
    await page.waitForURL(/\?category=device$/);
    await eventually(async () => new Set(await column(page, "c-actor")).size > 1, "several actors again");
    assert.equal(await page.getByRole("combobox", { name: "Actor" }).inputValue(), "");
    await page.goBack();
    await page.waitForURL((u) => u.search === "");
    await eventually(async () => new Set(await column(page, "c-cat")).size > 1, "all categories again");
    assert.equal(await page.getByRole("button", { name: /^device/ }).getAttribute("aria-pressed"), "false");
    await page.goForward();
    await eventually(async () => (await column(page, "c-cat")).every((c) => c === "device"), "device rows after forward");
    await page.goBack();
    await eventually(async () => new Set(await column(page, "c-cat")).size > 1, "all categories");
  });

  test("search for a word", async () => {
    const search = page.getByRole("searchbox", { name: "Search" });
    await search.fill("projector");
    await search.press("Enter");
    await page.waitForURL(/\?q=projector$/);
    const expected = (await server.json("/activity?q=projector&limit=50")).items.map((r) => r.id);
    assert.ok(expected.length > 10);
    await eventually(async () => JSON.stringify(await rowIds(page)) === JSON.stringify(expected), "the API's matches");
    for (const m of await page.locator("table.records tbody .row-open").allTextContents()) assert.match(m, /projector/i);
  });

  test("a filter with no match shows the empty state", async () => {
    const search = page.getByRole("searchbox", { name: "Search" });
    await search.fill("nothingmatchesthis");
    await search.press("Enter");
    await page.getByText("No activity matches these filters.").waitFor();
    assert.equal(await page.locator("table.records tbody tr").count(), 0);
    await page.locator(".state-area").getByRole("button", { name: "Clear all filters" }).click();
    await page.waitForURL((u) => u.search === "");
    await eventually(async () => (await rowIds(page)).length === 50, "the first page again");
  });

  test("scrolling loads the next page by cursor, with no duplicate", async () => {
    await page.evaluate(() => window.scrollTo(0, 0));
    assert.equal((await rowIds(page)).length, 50);
    await page.locator(".load-more").scrollIntoViewIfNeeded();
    await eventually(async () => (await rowIds(page)).length >= 100, "a second page");
    const ids = await rowIds(page);
    assert.equal(new Set(ids).size, ids.length, "no duplicate rows");
    for (let i = 1; i < ids.length; i += 1) assert.ok(ids[i] < ids[i - 1], "newest first");
    const walk = [];
    let cursor = null;
    do {
      const page2 = await server.json(`/activity?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      walk.push(...page2.items.map((r) => r.id));
      cursor = page2.next_cursor;
    } while (cursor && walk.length < ids.length);
    assert.deepEqual(ids, walk.slice(0, ids.length));
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    await page.getByText("That is everything that matches.").waitFor();
    const all = await rowIds(page);
    assert.equal(new Set(all).size, all.length);
    assert.equal(all.length, (await server.json("/activity/stats")).entries);
  });

  test("a POSTed record appears live within 2 s, highlighted, without moving what is read", async () => {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.locator(".live-state", { hasText: "Live" }).waitFor();
    const [id] = await server.ingest({ category: "device", action: "device.disconnected", message: "Projector bias light dropped", severity: "warning" });
    const row = page.locator(`tr[data-id="${id}"]`);
    await row.waitFor({ timeout: 2000 });
    assert.equal((await rowIds(page))[0], id);
    assert.match(await row.getAttribute("class"), /is-new/);
    // Reading further down: a new row must not shift the rows in view.
    await page.evaluate(() => window.scrollTo(0, 600));
    const anchorId = await page.evaluate(() => [...document.querySelectorAll("table.records tbody tr")].find((tr) => tr.getBoundingClientRect().top > 100).dataset.id);
    const anchor = page.locator(`tr[data-id="${anchorId}"]`);
    const before = (await anchor.boundingBox()).y;
    const [id2] = await server.ingest({ category: "device", action: "device.connected", message: "Projector bias light back" });
    await page.locator(`tr[data-id="${id2}"]`).waitFor({ timeout: 2000 });
    assert.ok(Math.abs((await anchor.boundingBox()).y - before) <= 1, "the row being read stayed in place");
    await page.getByRole("button", { name: "1 new record above" }).click();
    assert.equal(await page.evaluate(() => window.scrollY), 0);
  });

  test("pause stops live rows; resume catches up with none missing", async () => {
    await page.getByRole("button", { name: "Pause" }).click();
    await page.locator(".live-state", { hasText: "Paused" }).waitFor();
    assert.equal(await page.getByRole("button", { name: "Resume" }).getAttribute("aria-pressed"), "true");
    const ids = await server.ingest([1, 2, 3].map((i) => ({ category: "scene", action: "scene.activated", message: `Movie Night activated while paused ${i}` })));
    // The paused table counts what the bus announced, and shows none of it.
    await page.locator(".live-state", { hasText: "Paused — new records are not shown (3 new)" }).waitFor({ timeout: 2000 });
    for (const id of ids) assert.equal(await page.locator(`tr[data-id="${id}"]`).count(), 0, "a paused table shows no new row");
    const top = (await rowIds(page))[0];
    await page.getByRole("button", { name: "Resume" }).click();
    await page.locator(`tr[data-id="${ids[2]}"]`).waitFor({ timeout: 2000 });
    const now = await rowIds(page);
    assert.deepEqual(now.slice(0, 4), [...ids].reverse().concat(top), "all three, newest first, right above the old top row");
    assert.equal(new Set(now).size, now.length);
    await page.locator(".live-state", { hasText: "Live" }).waitFor();
  });

  test("export downloads a CSV of exactly the filtered rows", async () => {
    await page.getByRole("group", { name: "Severity" }).getByRole("button", { name: "warning" }).click();
    await page.waitForURL(/\?severity=warning$/);
    await eventually(async () => (await page.locator("table.records tbody td.c-sev").allTextContents()).every((s) => s === "warning"), "warning rows");
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Export CSV" }).click()]);
    const csv = readFileSync(await download.path(), "utf8").trimEnd().split("\r\n").join("\n").split("\n");
    assert.equal(csv[0], "id,ts,category,action,actor,entity_type,entity_id,entity_name,message,severity,metadata,recorded_by");
    const expected = [];
    let cursor = null;
    do {
      const p = await server.json(`/activity?severity=warning&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      expected.push(...p.items.map((r) => r.id));
      cursor = p.next_cursor;
    } while (cursor);
    const ids = csv.slice(1).map((line) => Number(line.split(",")[0]));
    assert.deepEqual(ids, expected);
    assert.ok(csv.slice(1).every((line) => line.includes(",warning,")));
    const [json] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Export JSON" }).click()]);
    const records = JSON.parse(readFileSync(await json.path(), "utf8"));
    assert.deepEqual(records.map((r) => r.id), expected);
  });

  test("the custom time range filters and shows an empty state in the past", async () => {
    await page.goto(`${server.base}/?range=custom&since=2001-01-01T00:00:00.000Z&until=2001-01-02T00:00:00.000Z`);
    await page.getByText("No activity matches these filters.").waitFor();
    assert.equal(await page.getByLabel("Time range").inputValue(), "custom");
    assert.equal(await page.getByLabel("From").inputValue(), "2001-01-01T01:00");
    await page.locator(".live-state", { hasText: "Not live" }).waitFor();
    await page.getByLabel("Time range").selectOption("1h");
    await page.waitForURL(/\?range=1h$/);
    await eventually(async () => (await rowIds(page)).length === 50, "the last hour's rows");
    assert.deepEqual(page.problems, []);
  });

  test("no failures or CSP violations during the whole run; the CSP is strict", async () => {
    const r = await fetch(`${server.base}/`);
    const csp = r.headers.get("content-security-policy");
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.deepEqual(page.problems, []);
    assert.equal(ADMIN.length >= 32, true);
  });
});
