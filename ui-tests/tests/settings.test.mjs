// Settings and sessions: retention with the API's validation messages and its
// effect on storage stats, recording off/on, clear with type-to-confirm, API
// keys created (token shown once) and revoked, a revoked session landing on
// sign-in, reader keys without Settings, and sign-out.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ADMIN, eventually, launchBrowser, newPage, seedEvents, signIn, startServer } from "../lib/harness.mjs";

describe("Settings", () => {
  let server;
  let browser;
  let page;

  const statValue = async (label) => page.locator("dl.stats dt", { hasText: label }).locator("xpath=following-sibling::dd[1]").textContent();

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    await server.ingest(seedEvents(60));
    page = await newPage(browser);
    await signIn(page, server, undefined, "/?view=settings");
    await page.locator("dl.stats").waitFor();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test("storage stats match the API", async () => {
    // The server records its own events (the sign-in) as they happen, so the
    // page's figures are bracketed by the API's before and after it loads.
    const s0 = await server.json("/activity/stats");
    await page.reload();
    await page.locator("dl.stats").waitFor();
    const s1 = await server.json("/activity/stats");
    const shown = async (label) => Number((await statValue(label)).replace(/,/g, ""));
    const records = await shown("Records");
    assert.ok(s0.entries <= records && records <= s1.entries, `${records} records shown, API ${s0.entries}..${s1.entries}`);
    const segments = await shown("Segment files");
    assert.ok(s0.segments <= segments && segments <= s1.segments, `${segments} segments shown, API ${s0.segments}..${s1.segments}`);
  });

  test("retention: the API's validation message, then the effect in the stats", async () => {
    const entries = page.getByLabel("Keep at most (records)");
    await entries.fill("0");
    await page.getByRole("button", { name: "Save retention" }).click();
    const err = page.locator("#s-entries-err");
    await err.getByText("`max_entries` must be an integer of at least 1, or null").waitFor();
    assert.equal(await entries.getAttribute("aria-invalid"), "true");
    const days = page.getByLabel("Keep at most (days)");
    await days.fill("abc");
    await entries.fill("");
    await page.getByRole("button", { name: "Save retention" }).click();
    await page.locator("#s-days-err").getByText("`max_days` must be an integer from 1 to 36500, or null").waitFor();
    assert.equal((await server.json("/activity/settings")).retention.max_days, null, "nothing saved");

    const before = (await server.json("/activity/stats")).entries;
    assert.ok(before > 60);
    await days.fill("");
    await entries.fill("20");
    await page.getByRole("button", { name: "Save retention" }).click();
    await page.getByText("Retention saved and applied.").waitFor();
    assert.equal(await err.textContent(), "");
    assert.deepEqual((await server.json("/activity/settings")).retention, { max_days: null, max_entries: 20 });
    await eventually(async () => Number((await statValue("Records")).replace(/,/g, "")) <= 21, "at most 21 records in the stats");
    const after = (await server.json("/activity/stats")).entries;
    assert.ok(after <= 21 && after < before, `entries ${before} -> ${after}`);
    await eventually(async () => (await statValue("Records")) === String((await server.json("/activity/stats")).entries), "stats equal to the API's");
  });

  test("recording off spells out the consequence and rejects events; on again accepts them", async () => {
    await page.getByText("events that applications send in that time are lost").waitFor();
    const toggle = page.getByRole("switch", { name: "Record activity" });
    assert.equal(await toggle.isChecked(), true);
    await toggle.click();
    const dialog = page.getByRole("dialog", { name: "Turn recording off?" });
    await dialog.getByRole("button", { name: "Turn off" }).click();
    await page.getByText("Recording is off: new events are rejected.").waitFor();
    assert.equal((await server.json("/activity/settings")).enabled, false);
    assert.equal((await server.call("POST", "/activity", { category: "x", action: "x.y", message: "dropped" })).status, 409);
    await toggle.click();
    await page.getByText("Recording is on.").waitFor();
    assert.equal((await server.call("POST", "/activity", { category: "x", action: "x.y", message: "kept" })).status, 201);
  });

  test("clear needs the word typed, then empties the log", async () => {
    const button = page.getByRole("button", { name: "Clear the log" });
    assert.equal(await button.isDisabled(), true);
    const input = page.getByLabel("Type “clear”");
    await input.fill("clea");
    assert.equal(await button.isDisabled(), true);
    await input.fill("clear");
    assert.equal(await button.isDisabled(), false);
    const before = (await server.json("/activity/stats")).entries;
    await button.click();
    await page.getByText(`Cleared ${before} records.`).waitFor();
    const items = (await server.json("/activity?limit=10")).items;
    assert.deepEqual(items.map((r) => r.action), ["system.activity_cleared"]);
    await eventually(async () => (await statValue("Records")) === "1", "1 record in the stats");
  });

  test("create a key: the token is shown once and works; revoke it: it stops", async () => {
    await page.getByLabel("Label").fill("wall-display");
    await page.getByLabel("Role").selectOption("reader");
    await page.getByRole("button", { name: "Create key" }).click();
    const token = await page.getByLabel("Key for “wall-display” (reader)").inputValue();
    assert.match(token, /^actlog_/);
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.base });
    await page.getByRole("button", { name: "Copy" }).click();
    await page.getByText("Copied.").waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);
    await page.getByText("This is the only time the key is shown.").waitFor();
    assert.equal((await server.call("GET", "/activity?limit=1", undefined, token)).status, 200);
    const row = page.locator("table.keys-table tbody tr", { hasText: "wall-display" });
    await row.waitFor();
    assert.equal(await row.locator("td").nth(1).textContent(), "reader");
    assert.ok(!(await page.locator("table.keys-table").textContent()).includes(token), "the list never shows a token");
    await page.getByRole("button", { name: "Done, hide it" }).click();
    assert.equal(await page.locator("#k-token").count(), 0);

    await row.getByRole("button", { name: "Revoke key wall-display" }).click();
    const dialog = page.getByRole("dialog", { name: "Revoke “wall-display”?" });
    await dialog.getByRole("button", { name: "Cancel" }).click();
    assert.equal((await server.call("GET", "/activity?limit=1", undefined, token)).status, 200, "cancel keeps the key");
    await row.getByRole("button", { name: "Revoke key wall-display" }).click();
    await dialog.getByRole("button", { name: "Revoke key" }).click();
    await row.waitFor({ state: "detached" });
    assert.equal((await server.call("GET", "/activity?limit=1", undefined, token)).status, 401);
  });

  test("a key label the API refuses shows its message", async () => {
    await page.getByLabel("Label").fill("");
    await page.getByRole("button", { name: "Create key" }).click();
    await page.locator("#k-err").getByText("`label` must be 1 to").waitFor();
    assert.deepEqual(page.problems, []);
  });

  test("a reader's session has no Settings; revoking its key lands it on sign-in with a message", async () => {
    const created = await server.call("POST", "/keys", { label: "phone", role: "reader" });
    assert.equal(created.status, 201);
    const reader = await newPage(browser);
    await signIn(reader, server, created.body.token);
    assert.equal(await reader.getByRole("link", { name: "Settings" }).count(), 0);
    await reader.goto(`${server.base}/?view=settings`);
    await reader.getByText("Settings need an admin key.").waitFor();
    await reader.getByRole("link", { name: "Activity" }).click();
    await reader.locator("table.records tbody tr").first().waitFor();
    assert.equal((await server.call("DELETE", `/keys/${created.body.id}`)).status, 204);
    // The server closes the revoked key's live connections; the UI notices.
    await reader.getByText("Your session ended").waitFor({ timeout: 10_000 });
    await reader.getByLabel("API key").waitFor();
    assert.deepEqual(reader.problems, []);
    await reader.context().close();
  });

  test("a writer key cannot view activity and is told so", async () => {
    const created = await server.call("POST", "/keys", { label: "sensor", role: "writer" });
    const writer = await newPage(browser);
    await writer.goto(`${server.base}/`);
    await writer.getByLabel("API key").fill(created.body.token);
    await writer.getByRole("button", { name: "Sign in" }).click();
    await writer.getByText("That key can only send events (writer role).").waitFor();
    await writer.context().close();
  });

  test("a server restart ends the session: the page says so and signs in again", async () => {
    const other = await newPage(browser);
    await signIn(other, server, undefined, "/?view=dashboard");
    await other.locator(".bus-state", { hasText: "Connected" }).waitFor();
    await server.stop({ keep: true });
    await other.locator(".bus-state", { hasText: "Disconnected" }).waitFor();
    server = await startServer({ restartOf: server });
    await other.getByText("Your session ended").waitFor({ timeout: 15_000 });
    await other.getByLabel("API key").fill(ADMIN);
    await other.getByRole("button", { name: "Sign in" }).click();
    await other.locator("#nav").waitFor();
    assert.equal(await other.locator("nav a[aria-current=page]").textContent(), "Dashboard", "back where it was");
    await other.locator("svg.chart").waitFor();
    await other.context().close();
  });

  test("sign out returns to sign-in and the session no longer works", async () => {
    await signIn(page, server, undefined, "/?view=settings");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByText("You signed out.").waitFor();
    const status = await page.evaluate(async () => (await fetch("/api/v1/activity/stats")).status);
    assert.equal(status, 401);
    assert.deepEqual(page.problems, []);
  });
});
