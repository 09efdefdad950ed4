// Drives the system Chromium (headless, DevTools protocol through puppeteer-core) through
// `seedgrid serve`'s page while a sweep runs. Usage:
//   node browser_test.js <server url> <sweep> <artifacts dir> [chaos|curves]
// chaos (the default): counts change, failed shards appear, a failed shard's logs open.
// curves: a training sweep's live curves grow on the sweep page and on a running shard's page.
// Prints one JSON line of what it saw; exits non-zero (with the reason) when the page failed
// to show something. test_browser.py runs it and checks the JSON against the registry.
"use strict";
const fs = require("fs");
const path = require("path");
const puppeteer = require("puppeteer-core");

const [url, sweep, artifacts, mode = "chaos"] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The newest step of the first live curve on the page (from its caption), and its point count.
const liveState = (page) => page.evaluate(() => {
  const f = document.querySelector("figure.live-curve");
  if (!f) return null;
  const m = /step ([\d,]+):/.exec(f.querySelector("figcaption").textContent);
  return { step: m ? Number(m[1].replace(/,/g, "")) : -1, points: Number(f.getAttribute("data-points")) };
});

// Watches the first live curve until its newest step has changed `changes` times: the steps
// seen, in order.
async function watchGrowth(page, changes, ms) {
  const steps = [];
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && steps.length <= changes) {
    const s = await liveState(page).catch(() => null);
    if (s && (!steps.length || s.step !== steps[steps.length - 1].step)) steps.push(s);
    await sleep(100);
  }
  return steps;
}

// Opens the sweep's page and waits for `selector`; reloaded() then says whether the page was
// navigated or reloaded since (it must update in place).
async function openSweep(page, selector, ms) {
  let navigations = 0;
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations++; });
  await page.goto(`${url.replace(/\/$/, "")}/#/sweep/${encodeURIComponent(sweep)}`, { waitUntil: "load" });
  await page.waitForSelector(selector, { timeout: ms });
  const navAfterLoad = navigations;
  await page.evaluate(() => { window.__loadedOnce = true; });
  return async () => navigations !== navAfterLoad || !(await page.evaluate(() => window.__loadedOnce === true));
}

async function curves(page, out) {
  const reloaded = await openSweep(page, "figure.live-curve", 60000);
  out.sweepSteps = await watchGrowth(page, 3, 30000);
  out.sweepShards = await page.$$eval(".live-shard", (r) => r.length);
  out.reloaded = await reloaded();
  await page.screenshot({ path: path.join(artifacts, "sweep-curves.png"), fullPage: true });
  // The running shard's own page (a link within the page: the same document): its curve grows
  // there too.
  await page.evaluate(() => document.querySelector(".live-shard a").click());
  await page.waitForSelector("h1 .badge", { timeout: 20000 });
  await page.waitForSelector("figure.live-curve", { timeout: 20000 });
  out.shardSteps = await watchGrowth(page, 3, 30000);
  out.shardCaption = await page.$eval("figure.live-curve figcaption", (e) => e.textContent);
  out.reloadedShard = !(await page.evaluate(() => window.__loadedOnce === true));
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(artifacts, "shard-curves.png"), fullPage: true });
}

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
    if (mode === "curves") {
      await curves(page, out);
      out.pageErrors = errors;
      console.log(JSON.stringify(out));
      return;
    }
    const reloaded = await openSweep(page, "#tot-done", 20000);
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
    out.reloaded = await reloaded();
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
