// Regenerates docs/screenshots/: Activity, Dashboard and Settings at 1280 px
// and 390 px wide, from a server filled with --demo data. Not a test:
//   ACTLOG_BIN=../target/debug/actlog node screenshots.mjs
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { launchBrowser, newPage, signIn, startServer } from "./lib/harness.mjs";

const out = join(dirname(fileURLToPath(import.meta.url)), "../docs/screenshots");
mkdirSync(out, { recursive: true });
const server = await startServer({ demo: true });
const browser = await launchBrowser();
try {
  for (const [width, height] of [[1280, 800], [390, 844]]) {
    const page = await newPage(browser, { viewport: { width, height }, deviceScaleFactor: 1 });
    await signIn(page, server);
    for (const [name, path, ready] of [
      ["activity", "/", "table.records tbody tr"],
      ["dashboard", "/?view=dashboard", "svg.chart"],
      ["settings", "/?view=settings", "table.keys-table"],
    ]) {
      await page.goto(`${server.base}${path}`);
      await page.locator(ready).first().waitFor();
      await page.locator(".state-loading").waitFor({ state: "detached" });
      await page.locator(".live-state.live-on, .bus-state.up").first().waitFor();
      const file = join(out, `${name}-${width}.png`);
      await page.screenshot({ path: file, animations: "disabled" });
      console.log(file);
    }
    await page.context().close();
  }
} finally {
  await browser.close();
  await server.stop();
}
