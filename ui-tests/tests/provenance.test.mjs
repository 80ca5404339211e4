// Who recorded a record (`recorded_by`): the drawer shows it — with the
// key's label for an admin, who may list keys, and as the raw id for a
// reader — and it filters like the other exact-match fields.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { column, eventually, launchBrowser, newPage, rowIds, signIn, startServer } from "../lib/harness.mjs";

describe("Recorded by", () => {
  let server;
  let browser;
  let writer;
  let writerIds;
  let adminId;
  let startedId;
  let reader;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    const w = await server.call("POST", "/keys", { label: "writer1", role: "writer" });
    assert.equal(w.status, 201, w.text);
    writer = w.body;
    const r = await server.call("POST", "/keys", { label: "wall-display", role: "reader" });
    assert.equal(r.status, 201, r.text);
    reader = r.body;
    // The writer's records, one of them dressed up as the server's own.
    const posted = await server.call("POST", "/activity", [
      { category: "device", action: "device.online", message: "Projector online (sent by writer1)" },
      { category: "system", action: "system.server_shutting_down", actor: "system", message: "actlog server shutting down" },
    ], writer.token);
    assert.equal(posted.status, 201, posted.text);
    writerIds = posted.body.ids;
    [adminId] = await server.ingest({ category: "entity", action: "entity.updated", message: "Renamed by the admin" });
    startedId = (await server.json("/activity?action=system.server_started")).items[0].id;
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function drawerValue(page, id) {
    const drawer = page.getByRole("dialog", { name: `Record ${id}` });
    await drawer.waitFor();
    const terms = await drawer.locator("dl.fields dt").allTextContents();
    const i = terms.indexOf("Recorded by");
    assert.ok(i >= 0, `no Recorded by in ${terms}`);
    return drawer.locator("dl.fields dd .field-value").nth(i);
  }

  test("an admin sees the writer key's label next to its id, and the server as such", async () => {
    const page = await newPage(browser);
    await signIn(page, server);
    await page.goto(`${server.base}/?id=${writerIds[1]}`);
    const value = await drawerValue(page, writerIds[1]);
    await eventually(async () => (await value.textContent()) === `writer1 (${writer.id})`, "the writer's label");
    assert.equal(await value.getAttribute("title"), writer.id);
    // The record claims to be the server's shutdown; the drawer says who sent it.
    await page.getByRole("dialog").getByText("system.server_shutting_down").waitFor();
    await page.keyboard.press("Escape");

    await page.goto(`${server.base}/?id=${startedId}`);
    const started = await drawerValue(page, startedId);
    await eventually(async () => (await started.textContent()) === "actlog server", "the server's own");
    await page.keyboard.press("Escape");

    const admin = (await server.json("/keys")).keys.find((k) => k.label === "admin");
    await page.goto(`${server.base}/?id=${adminId}`);
    const byAdmin = await drawerValue(page, adminId);
    await eventually(async () => (await byAdmin.textContent()) === `admin (${admin.id})`, "the admin key's label");
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test("“show only” filters by the sender; the chip and the URL say so", async () => {
    const page = await newPage(browser);
    await signIn(page, server);
    await page.goto(`${server.base}/?id=${writerIds[0]}`);
    await drawerValue(page, writerIds[0]);
    await page.getByRole("dialog").getByRole("button", { name: `Show only recorded by ${writer.id}` }).click();
    await page.waitForURL(new RegExp(`\\?recorded_by=${writer.id}$`));
    await eventually(async () => JSON.stringify(await rowIds(page)) === JSON.stringify([...writerIds].reverse()), "only the writer's rows");
    const chip = page.locator(".active-filters li").filter({ hasText: "Recorded by:" });
    await eventually(async () => (await chip.textContent()).includes(`writer1 (${writer.id})`), "the chip names the key");
    await page.getByRole("button", { name: `Remove recorded by filter ${writer.id}` }).click();
    await page.waitForURL((u) => u.search === "");
    await eventually(async () => (await rowIds(page)).length > writerIds.length, "every row again");
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test("the recorded-by completion suggests senders from facets and filters", async () => {
    const page = await newPage(browser);
    await signIn(page, server);
    const box = page.getByRole("combobox", { name: "Recorded by" });
    await box.fill("ser");
    const options = page.getByRole("listbox", { name: "Recorded by suggestions" }).getByRole("option");
    await eventually(async () => (await options.count()) === 1, "one sender starting with ser");
    const facets = await server.json("/activity/facets/recorded_by?prefix=ser");
    assert.equal(await options.first().textContent(), `actlog server${facets.values[0].count}`);
    await box.press("ArrowDown");
    await box.press("Enter");
    await page.waitForURL(/\?recorded_by=server$/);
    const expected = (await server.json("/activity?recorded_by=server&limit=50")).items.map((r) => r.id);
    await eventually(async () => JSON.stringify(await rowIds(page)) === JSON.stringify(expected), "only the server's rows");
    assert.ok(!expected.includes(writerIds[1]), "the writer's forgery is not among them");
    assert.ok((await column(page, "c-msg")).length > 0);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  test("a reader, who may not list keys, sees the raw id", async () => {
    const page = await newPage(browser);
    const keyCalls = [];
    page.on("request", (req) => { if (new URL(req.url()).pathname === "/api/v1/keys") keyCalls.push(req.url()); });
    await signIn(page, server, reader.token);
    await page.goto(`${server.base}/?id=${writerIds[1]}`);
    const value = await drawerValue(page, writerIds[1]);
    assert.equal(await value.textContent(), writer.id);
    await page.keyboard.press("Escape");
    await page.goto(`${server.base}/?id=${startedId}`);
    assert.equal(await (await drawerValue(page, startedId)).textContent(), "server");
    assert.deepEqual(keyCalls, [], "a reader's page never asks for the key list");
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
});
