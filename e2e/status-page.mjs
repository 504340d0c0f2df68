// Browser test of the status page: opens `/` of a running server in headless Chromium, waits for the `demo`
// row and for its msn.part to advance (the page follows /ws), and saves a screenshot.
//
// Run with: node e2e/status-page.mjs http://127.0.0.1:8080 /tmp/status-page.png
// Needs playwright-core (NODE_PATH or a local node_modules) and /usr/bin/chromium; it never downloads a browser.
import { createRequire } from "node:module";

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error("usage: node e2e/status-page.mjs SERVER_URL SCREENSHOT.png");
  process.exit(2);
}

// Resolved from the working directory as well as NODE_PATH, so that `npm install --prefix DIR` works.
const require = createRequire(process.cwd() + "/");
const { chromium } = require("playwright-core");

const TIMEOUT = 30_000; // a generous bound on each wait: it only limits how long a failure takes

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 500 } });
  // Loopback only: whatever else the page asks for (the preview player's hls.js from its CDN) is refused here,
  // before it leaves the machine.
  await page.route(
    (u) => !["127.0.0.1", "[::1]", "localhost"].includes(u.hostname),
    (route) => route.abort("blockedbyclient"),
  );
  page.on("console", (m) => console.log("page:", m.type(), m.text()));
  page.on("pageerror", (e) => {
    console.error("page error:", e.message);
    failed = true;
  });
  await page.goto(new URL("/", url).href, { timeout: TIMEOUT });
  const msn = page.locator('tr[data-stream="demo"] td.msn');
  await msn.waitFor({ timeout: TIMEOUT });
  await page.waitForFunction(
    () => /^\d+\.\d+$/.test(document.querySelector('tr[data-stream="demo"] td.msn')?.textContent ?? ""),
    null,
    { timeout: TIMEOUT },
  );
  const first = (await msn.textContent()).trim();
  await page.waitForFunction(
    (first) => {
      const now = document.querySelector('tr[data-stream="demo"] td.msn')?.textContent.trim();
      return now && now !== first;
    },
    first,
    { timeout: TIMEOUT },
  );
  const second = (await msn.textContent()).trim();
  // Let a few stats messages arrive so that the sparkline and the rates are drawn in the screenshot.
  await page.waitForFunction(
    () => document.querySelector('tr[data-stream="demo"] td.pps')?.textContent.trim() !== "",
    null,
    { timeout: TIMEOUT },
  );
  await page.waitForTimeout(3000);
  const state = (await page.locator('tr[data-stream="demo"] td.state').textContent()).trim();
  if (state !== "live") throw new Error(`demo is ${state}, not live`);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`demo advanced from ${first} to ${second}; screenshot in ${screenshot}`);
} catch (e) {
  console.error("status page test failed:", e.message);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
