// Test harness: a real `actlog serve` on a loopback port with a fresh data
// directory, an HTTP client for seeding through the API, and Debian's
// Chromium driven by playwright-core.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

export const ADMIN = "ui-test-admin-token-Jf5Qw8Nz2Lk7Xc4Bv9Rt3";
export const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

function binary() {
  const bin = process.env.ACTLOG_BIN;
  if (!bin || !existsSync(bin)) {
    throw new Error(`ACTLOG_BIN must name the built actlog binary (got ${bin ?? "nothing"}); run the UI tests through \`cargo test -p actlog-server --test ui\``);
  }
  return bin;
}

/**
 * Starts `actlog serve`; resolves once it prints its address. `restartOf`
 * (a stopped server) reuses its data directory and port.
 */
export async function startServer({ demo = false, env = {}, restartOf = null } = {}) {
  const dir = restartOf ? restartOf.dir : mkdtempSync(join(tmpdir(), "actlog-ui-"));
  const listen = restartOf ? new URL(restartOf.base).host : "127.0.0.1:0";
  const args = ["serve", "--data", join(dir, "data"), "--listen", listen];
  if (demo) args.push("--demo");
  const child = spawn(binary(), args, {
    env: { PATH: process.env.PATH, ACTLOG_ADMIN_TOKEN: ADMIN, ACTLOG_LOG: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => { stderr += d; });
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`actlog did not start within 30 s:\n${stderr}`)), 30_000);
    child.on("exit", (code) => reject(new Error(`actlog exited with ${code}:\n${stderr}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = /^actlog is listening on (http:\/\/[^/]+)\//.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  const server = {
    base,
    dir,
    /** Calls the API with a bearer token; resolves {status, body}. */
    async call(method, path, body, token = ADMIN) {
      const r = await fetch(`${base}/api/v1${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      let json = null;
      try { json = text ? JSON.parse(text) : null; } catch { json = null; }
      return { status: r.status, body: json, text, headers: r.headers };
    },
    /** POSTs events (one or an array) as admin, expecting 201; returns the ids. */
    async ingest(events) {
      const r = await server.call("POST", "/activity", events);
      if (r.status !== 201) throw new Error(`ingest: ${r.status} ${r.text}`);
      return r.body.ids;
    },
    async json(path, token) {
      const r = await server.call("GET", path, undefined, token);
      if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.text}`);
      return r.body;
    },
    /** SIGKILLs the server; removes its data unless `keep`. */
    async stop({ keep = false } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((res) => child.once("exit", res));
        child.kill("SIGKILL");
        await exited;
      }
      if (!keep) rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/** Launches Debian's Chromium headless; fails (never skips) if it is missing. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install it with \`apt-get install -y chromium\` (scripts/test does)`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/**
 * A new page of a fresh context that records page errors and CSP violations
 * (`page.problems`); tests assert it stays empty.
 */
export async function newPage(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: "Europe/Berlin", acceptDownloads: true, ...options });
  const page = await context.newPage();
  page.setDefaultTimeout(5000);
  page.problems = [];
  page.on("pageerror", (e) => page.problems.push(`page error: ${e.message}`));
  page.on("dialog", (d) => { page.problems.push(`unexpected ${d.type()} dialog: ${d.message()}`); d.dismiss(); });
  page.on("console", (m) => {
    if (/Content.Security.Policy|Refused to/i.test(m.text())) page.problems.push(`CSP: ${m.text()}`);
  });
  return page;
}

/** Signs in through the form. */
export async function signIn(page, server, token = ADMIN, path = "/") {
  await page.goto(`${server.base}${path}`);
  await page.getByLabel("API key").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#nav").waitFor({ state: "visible" });
}

/** Polls `fn` until it returns a truthy value (default 5 s). */
export async function eventually(fn, what, timeout = 5000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The ids of the Activity table's rows, top to bottom. */
export const rowIds = (page) => page.locator("table.records tbody tr").evaluateAll((trs) => trs.map((tr) => Number(tr.dataset.id)));

/** The text of one column for every row. */
export const column = (page, cls) => page.locator(`table.records tbody td.${cls}`).allTextContents();

/** A varied, deterministic set of events. */
export function seedEvents(n) {
  const cats = ["device", "entity", "scene", "automation"];
  const actors = ["alice", "bob", "kitchen-tablet", "home-assistant", "albert"];
  const sev = ["info", "info", "info", "warning", "error"];
  const out = [];
  for (let i = 0; i < n; i += 1) {
    const cat = cats[i % cats.length];
    out.push({
      category: cat,
      action: `${cat}.updated`,
      actor: actors[i % actors.length],
      entity_type: cat === "device" ? "device" : "scene",
      entity_id: `${cat === "device" ? "dev" : "scn"}_${i % 7}`,
      entity_name: i % 3 === 0 ? "Projector Den" : "Living room strip",
      message: i % 3 === 0 ? `Projector dropped frames on HDMI ${i}` : `Updated ${cat} number ${i}`,
      severity: sev[i % sev.length],
      metadata: { n: i, nested: { level: 2, tags: ["a", "b"] } },
    });
  }
  return out;
}
