// Debian's chromium under puppeteer-core, started the way this machine allows: no
// sandbox (root), no background networking (the network is closed; chromium's own
// connections would be refused at every start), a fresh profile each launch.
// Shared by every browser test in e2e/browser.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

// Where screenshots go: target/screenshots/<suite>/, named in the test output.
export function screenshotDir(suite) {
  const root = process.env.SCREENSHOT_DIR
    || path.join(path.dirname(new URL(import.meta.url).pathname), "..", "..", "target", "screenshots");
  const dir = path.join(root, suite);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export async function launch() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "chmcp-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
  const close = browser.close.bind(browser);
  browser.close = async () => {
    await close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return browser;
}

// Saves a PNG of the page and prints its path, so a person can look at it.
export async function shot(page, suite, name) {
  const file = path.join(screenshotDir(suite), `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${path.relative(process.cwd(), file)}`);
  return file;
}
