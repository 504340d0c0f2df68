// Shared by play.mjs, abr.mjs and shaka.mjs: Debian's headless Chromium (never a Playwright download) with a
// throw-away profile, and an empty page with a <video> and one script from e2e/node_modules injected.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));

/// Exits the process with code 3 after `seconds`, whatever is going on; returns the timer to clear.
export function hardLimit(name, seconds) {
  return setTimeout(() => {
    console.error(`${name}: hard time limit reached`);
    process.exit(3);
  }, seconds * 1000);
}

/// Launches Chromium; returns { context, close }.
export async function launch() {
  const userDataDir = mkdtempSync(join(tmpdir(), 'e2e-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    // The e2e's HTTPS origin uses a certificate made for the test.
    ignoreHTTPSErrors: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, close };
}

/// The empty document with `<video id="v">` and the script at `scriptPath` (relative to e2e/) loaded.
export async function videoPage(page, scriptPath) {
  page.on('console', (m) => console.error(`[page] ${m.text()}`));
  await page.setContent('<!doctype html><html><body><video id="v" muted autoplay playsinline></video></body></html>');
  await page.addScriptTag({ path: join(here, scriptPath) });
}
