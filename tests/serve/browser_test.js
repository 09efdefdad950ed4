// Drives the system Chromium (headless, DevTools protocol through puppeteer-core) through
// `seedgrid serve`'s page while a chaos sweep runs. Usage:
//   node browser_test.js <server url> <sweep> <artifacts dir>
// Prints one JSON line of what it saw; exits non-zero (with the reason) when the page failed
// to show something. test_browser.py runs it and checks the JSON against the registry.
"use strict";
const fs = require("fs");
const path = require("path");
const puppeteer = require("puppeteer-core");

const [url, sweep, artifacts] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  fs.mkdirSync(artifacts, { recursive: true });
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const out = { doneSeen: [], latencies: [] };
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    let navigations = 0;
    page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations++; });
    await page.goto(`${url.replace(/\/$/, "")}/#/sweep/${encodeURIComponent(sweep)}`, { waitUntil: "load" });
    await page.waitForSelector("#tot-done", { timeout: 20000 });
    const navAfterLoad = navigations;
    await page.evaluate(() => { window.__loadedOnce = true; });
    const origin = new URL(url).origin;
    const read = () => page.$eval("#tot-done", (e) => Number(e.textContent.replace(/,/g, "")));

    // Watch the done count change without a reload; each change is timed against the event
    // it shows (the coordinator's time for the shard that made the count, from the API).
    let last = await read();
    out.doneSeen.push(last);
    const deadline = Date.now() + 120000;
    while (Date.now() < deadline) {
      const n = await read().catch(() => last);
      if (n !== last) {
        const seenAt = Date.now() / 1000;
        const done = await page.evaluate(async (o, s) => {
          const r = await fetch(`${o}/api/sweeps/${encodeURIComponent(s)}/shards?status=done&limit=500`);
          return (await r.json()).shards.map((x) => x.updated).sort((a, b) => a - b);
        }, origin, sweep);
        if (n >= 1 && done.length >= n) out.latencies.push(seenAt - done[n - 1]);
        out.doneSeen.push(n);
        last = n;
      }
      const failedRows = await page.$$eval(".failed-row", (r) => r.length);
      if (failedRows > 0 && out.doneSeen.length >= 3) break;
      await sleep(50);
    }
    await page.waitForSelector(".failed-row", { timeout: 60000 });
    out.failedRows = await page.$$eval(".failed-row", (r) => r.length);
    out.errorText = await page.$eval(".failed-row .err", (e) => e.textContent);
    out.markupInErrors = await page.$$eval(".err img, .err script, .err b", (r) => r.length);
    out.pwned = await page.evaluate(() => window.__pwned === undefined ? null : window.__pwned);
    out.reloaded = navigations !== navAfterLoad ||
        !(await page.evaluate(() => window.__loadedOnce === true));
    out.live = await page.$eval("#live", (e) => e.textContent);
    await page.screenshot({ path: path.join(artifacts, "sweep.png"), fullPage: true });

    // Open a failed shard's logs: its page, scrolled to the logs (or "no logs" when there are
    // none yet), with the error shown as text.
    const href = await page.$eval(".failed-row a.log-link", (a) => a.getAttribute("href"));
    out.logHref = href;
    // Clicked inside the page, in one step: the page re-renders on every change, and a
    // handle taken from one render may be detached by the next before a CDP click lands.
    await page.evaluate(() => document.querySelector(".failed-row a.log-link").click());
    await page.waitForSelector("#logs", { timeout: 20000 });
    await page.waitForSelector("#shard-error", { timeout: 20000 });
    out.shardTitle = await page.$eval("h1", (e) => e.textContent);
    out.shardError = await page.$eval("#shard-error", (e) => e.textContent);
    out.logs = await page.$$eval("pre.log-tail", (p) => p.map((e) => e.textContent));
    out.noLogsNote = await page.$$eval("#logs + p.empty", (p) => p.map((e) => e.textContent));
    out.pwnedAfterShard = await page.evaluate(() => window.__pwned === undefined ? null : window.__pwned);
    await page.evaluate(() => window.scrollTo(0, 0));  // the sticky header at the top of the shot
    await page.screenshot({ path: path.join(artifacts, "shard.png"), fullPage: true });
    out.pageErrors = errors;
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
