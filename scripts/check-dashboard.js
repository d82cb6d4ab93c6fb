// The browser half of scripts/check-dashboard.sh: screenshots and DOM assertions.
"use strict";
const { chromium } = require("playwright-core");

const url = process.env.URL;
const out = process.env.OUT;
const botPid = Number(process.env.BOT_PID);

function fail(what) {
  console.error("FAIL: " + what);
  process.exitCode = 1;
}

async function waitFor(page, what, predicate, arg, seconds) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: seconds * 1000, polling: 250 });
    return true;
  } catch (e) {
    fail(what + " within " + seconds + " s");
    return false;
  }
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(url);
    await waitFor(page, "the account to be authenticated",
      () => document.getElementById("auth").textContent === "account authenticated", null, 30);
    const link = await page.textContent("#connection");
    if (link !== "broker link up") { fail("link pill says " + JSON.stringify(link)); }
    // Flat: at once if flat, else after the first position closes.
    await waitFor(page, "a flat position card",
      () => document.querySelector("#position .big").textContent === "flat", null, 120);
    await page.screenshot({ path: out + "/flat.png", fullPage: true });
    await waitFor(page, "a position to open",
      () => /^(LONG|SHORT)/.test(document.querySelector("#position .big").textContent), null, 180);
    await page.waitForTimeout(2500);
    await page.screenshot({ path: out + "/position-open.png", fullPage: true });
    const checks = await page.evaluate(() => {
      const text = (sel) => Array.from(document.querySelectorAll(sel)).map((e) => e.textContent);
      return {
        account: text("#account dd"),
        trades: text("#trades tr").length,
        tradePnl: text("#trades td:nth-child(7)"),
        collapsed: text("#decisions tr.collapsed td:nth-child(2)"),
        axis: text("#equity text.axis").length,
        markers: document.querySelectorAll("#equity .trade-marker").length,
        unrealized: text("#position dd").slice(-1)[0] || "",
      };
    });
    const cur = /\b[A-Z]{3}\b/;
    checks.account.slice(0, 4).forEach((v) => { if (!cur.test(v)) { fail("account figure without currency: " + v); } });
    if (!cur.test(checks.unrealized)) { fail("unrealized PnL without currency: " + checks.unrealized); }
    if (checks.trades < 1) { fail("no row in the trades table"); }
    checks.tradePnl.filter((v) => v !== "–").forEach((v) => { if (!cur.test(v)) { fail("trade PnL without currency: " + v); } });
    if (!checks.collapsed.some((v) => /^hold ×\d+$/.test(v))) { fail("no collapsed holds: " + JSON.stringify(checks.collapsed)); }
    if (checks.axis < 4) { fail("equity chart has " + checks.axis + " axis labels"); }
    if (checks.markers < 1) { fail("equity chart has no trade marker"); }
    console.log("position open:", JSON.stringify(checks));

    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
    await phone.goto(url);
    await phone.waitForTimeout(1500);
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) { fail("the page is " + overflow + " px wider than a phone"); }
    await phone.screenshot({ path: out + "/phone.png", fullPage: true });
    await phone.close();

    // Stop the bot: the page must say so within a few seconds, and grey out every card.
    const stopped = Date.now();
    process.kill(botPid, "SIGTERM");
    const ok = await waitFor(page, "the stale state after stopping the bot",
      () => document.body.getAttribute("data-state") === "stale" &&
        /^bot unreachable — nothing fresh since \d\d:\d\d:\d\d/.test(document.getElementById("stale-banner").textContent),
      null, 10);
    if (ok) {
      console.log("stale state shown " + ((Date.now() - stopped) / 1000).toFixed(1) + " s after stopping the bot");
      const grey = await page.evaluate(() => getComputedStyle(document.querySelector("main section")).opacity);
      if (Number(grey) > 0.5) { fail("cards not greyed out (opacity " + grey + ")"); }
      const ready = await page.textContent("#ready");
      if (ready !== "bot unreachable") { fail("ready pill says " + JSON.stringify(ready)); }
    }
    await page.screenshot({ path: out + "/bot-stopped.png", fullPage: true });
  } finally {
    await browser.close();
  }
  console.log(process.exitCode ? "dashboard check FAILED" : "dashboard check passed; screenshots in " + out);
})().catch((e) => { console.error(e); process.exit(1); });
