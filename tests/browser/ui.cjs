// Drives the web UI in headless Chromium; run by tests/integration/browser.rs, which starts the
// app, seeds it and checks the store afterwards. Exits non-zero on the first failed step.
"use strict";

const { chromium } = require("playwright-core");
const path = require("path");

const base = process.env.SW_BASE;
const approver = process.env.SW_APPROVER_TOKEN;
const viewer = process.env.SW_VIEWER_TOKEN;
const artefacts = process.env.SW_ARTEFACTS;
const TIMEOUT = 15000;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(artefacts, name + ".png"), fullPage: true });
  console.log("screenshot", name);
}

// Any script error or refused resource (a CSP violation shows as a console error) fails the run.
function watch(page, problems) {
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of (401|403|404)/.test(m.text())) problems.push("console: " + m.text());
  });
}

async function signIn(page, token) {
  await page.goto(base + "/ui/");
  await page.waitForSelector("#signin:not([hidden])", { timeout: TIMEOUT });
  await page.fill("#token", token);
  await page.click("#signin-form button[type=submit]");
  await page.waitForSelector("#health table", { timeout: TIMEOUT });
}

async function notice(page, text) {
  await page.waitForFunction(
    (t) => {
      const n = document.getElementById("notice");
      return n && !n.hidden && n.textContent.includes(t);
    },
    text,
    { timeout: TIMEOUT },
  );
}

// Waits until the approval queue lists `count` actions, all in `state` (the list is drawn again
// after a filter change, so the old list must not pass for the new one).
async function listed(page, state, count) {
  await page.waitForFunction(
    ([s, n]) => {
      const rows = [...document.querySelectorAll("#action-list tbody tr")];
      return rows.length === n && rows.every((r) => (r.querySelector(".badge") || {}).textContent === s);
    },
    [state, count],
    { timeout: TIMEOUT },
  );
}

async function main() {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu"],
  });
  const problems = [];
  try {
    // The page's security headers.
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    const page = await context.newPage();
    watch(page, problems);
    const response = await page.goto(base + "/ui/");
    const headers = response.headers();
    check(/frame-ancestors 'none'/.test(headers["content-security-policy"] || ""), "CSP without frame-ancestors");
    check(!/unsafe-inline/.test(headers["content-security-policy"]), "CSP allows inline script");
    check(headers["x-content-type-options"] === "nosniff", "no X-Content-Type-Options");

    // A wrong token is refused with the API's message.
    await page.fill("#token", "sw_wrong");
    await page.click("#signin-form button[type=submit]");
    await page.waitForSelector("#error:not([hidden])", { timeout: TIMEOUT });
    check((await page.textContent("#error")).includes("unauthorized"), "no error for a wrong token");
    await shot(page, "signin");

    // A viewer sees everything but no button of a decision its role cannot make (the API refuses
    // them anyway): no approve, reject, undo, acknowledge, resolve, silence or conflict choice.
    const viewerContext = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    const viewerPage = await viewerContext.newPage();
    watch(viewerPage, problems);
    await signIn(viewerPage, viewer);
    check((await viewerPage.textContent("#whoami")) === "viewer (viewer)", "the header does not name the viewer");
    const noDecisions = async (where) => {
      for (const selector of ["#approve", "#reject", "#reject-reason", "#undo", "#acknowledge", "#resolve", "#silence-form",
        "#conflict-list tbody button"]) {
        check((await viewerPage.$(selector)) === null, where + ": a viewer is offered " + selector);
      }
    };
    await viewerPage.goto(base + "/ui/#/actions");
    await viewerPage.waitForSelector("#action-list tbody tr", { timeout: TIMEOUT });
    check((await viewerPage.$$("#action-list tbody tr")).length === 3, "the viewer does not see the three open actions");
    await viewerPage.click("#action-list tbody tr:nth-child(1)");
    await viewerPage.waitForSelector("#action-detail .read-only", { timeout: TIMEOUT });
    check((await viewerPage.textContent("#action-detail .read-only")).includes("viewer"), "no read-only note on the action");
    await noDecisions("an open action");
    await shot(viewerPage, "viewer-read-only");
    await viewerPage.goto(base + "/ui/#/findings");
    await viewerPage.waitForSelector("#finding-list tbody tr", { timeout: TIMEOUT });
    await viewerPage.click("#finding-list tbody tr:nth-child(1)");
    await viewerPage.waitForSelector("#finding-detail pre", { timeout: TIMEOUT });
    await noDecisions("an open finding");
    await viewerPage.goto(base + "/ui/#/conflicts");
    await viewerPage.waitForSelector("#conflict-list tbody tr", { timeout: TIMEOUT });
    await noDecisions("a held conflict");
    await viewerContext.close();

    // Sign in and see the dashboard.
    await signIn(page, approver);
    check((await page.textContent("#whoami")) === "approver (approver)", "the header does not name the approver");
    const rows = await page.$$eval("#health tbody tr", (trs) => trs.map((tr) => tr.textContent));
    check(rows.length === 7, "dashboard shows " + rows.length + " endpoints");
    check(rows.some((r) => r.startsWith("accounts") && /succeeded|partial/.test(r)), "no accounts run on the dashboard: " + rows);
    check((await page.textContent("#open-findings h2")).includes("(1)"), "the open finding is not counted");
    await page.waitForSelector("#charts svg.chart", { timeout: TIMEOUT });
    await page.waitForSelector('#kpis [data-kpi="api_call_success_rate"]', { timeout: TIMEOUT });
    check(await page.isVisible('#kpis [data-kpi="records_synced"]'), "the KPI panel lacks records_synced");
    await shot(page, "dashboard");

    // The approval queue: side by side, approve one, reject one with a reason.
    await page.click("a[data-page=actions]");
    await page.waitForSelector("#action-list tbody tr", { timeout: TIMEOUT });
    check((await page.$$("#action-list tbody tr")).length === 3, "three open actions expected");
    await page.click("#action-list tbody tr:nth-child(1)");
    await page.waitForSelector("#action-detail table th", { timeout: TIMEOUT });
    const heads = await page.$$eval("#action-detail thead th", (ths) => ths.map((t) => t.textContent));
    check(heads.length === 5 && heads[1].includes("(survivor)") && heads[3] === "merged", "no side-by-side diff: " + heads);
    await shot(page, "actions");
    // Approving merges the records in the sandbox CRM and ERP at once.
    await page.click("#approve");
    await notice(page, "is now applied");
    await page.waitForFunction(() => document.querySelectorAll("#action-list tbody tr").length === 2, null, { timeout: TIMEOUT });
    check(!(await page.isVisible("#undo")), "an open action offers undo");
    await page.click("#action-list tbody tr:nth-child(1)");
    await page.fill("#reject-reason", "not the same company");
    await page.click("#reject");
    await notice(page, "is now rejected");
    await page.selectOption("#action-state", "rejected");
    await listed(page, "rejected", 1);
    await page.click("#action-list tbody tr:nth-child(1)");
    await page.waitForSelector("#action-detail h2", { timeout: TIMEOUT });
    check(!(await page.isVisible("#undo")), "a rejected action offers undo");

    // The applied merge, found by its state, is undone.
    const states = await page.$$eval("#action-state option", (os) => os.map((o) => o.value));
    check(["applied", "undone"].every((s) => states.includes(s)), "the state filter lacks applied/undone: " + states);
    await page.selectOption("#action-state", "applied");
    await listed(page, "applied", 1);
    await page.click("#action-list tbody tr:nth-child(1)");
    await page.waitForSelector("#undo", { timeout: TIMEOUT });
    check((await page.textContent("#action-detail")).includes("decided by approver"), "the decision's author is not shown");
    check((await page.textContent("#action-detail .badge")) === "applied", "the merge is not shown applied");
    await shot(page, "action-applied");
    await page.click("#undo");
    await notice(page, "is now undone");
    await listed(page, "applied", 0);
    await page.selectOption("#action-state", "undone");
    await listed(page, "undone", 1);
    await page.click("#action-list tbody tr:nth-child(1)");
    await page.waitForSelector("#action-detail h2", { timeout: TIMEOUT });
    check((await page.textContent("#action-detail .badge")) === "undone", "the merge is not shown undone");
    check(!(await page.isVisible("#undo")), "an undone merge offers undo again");
    await shot(page, "action-undone");

    // Findings: evidence, then acknowledge.
    await page.click("a[data-page=findings]");
    await page.waitForSelector("#finding-list tbody tr", { timeout: TIMEOUT });
    await page.click("#finding-list tbody tr:nth-child(1)");
    await page.waitForSelector("#finding-detail pre", { timeout: TIMEOUT });
    check((await page.textContent("#finding-detail pre")).includes("crm_price"), "no evidence");
    await shot(page, "findings");
    const linked = await page.$eval("#finding-list tbody tr:nth-child(1)", (tr) => tr.dataset.id);
    await page.click("#acknowledge");
    await notice(page, "is now acknowledged");

    // The link every alert carries (<base_url>/ui/#/findings/<id>) opens that finding on a fresh
    // load, though it is no longer in the default (open) list.
    await page.goto(base + "/ui/#/findings/" + linked);
    await page.reload();
    await page.waitForSelector("#finding-detail pre", { timeout: TIMEOUT });
    check((await page.textContent("#finding-detail pre")).includes("crm_price"), "the alert link does not open the finding");

    // A long list loads a page at a time: the resolved findings, 100 and then the rest.
    await page.selectOption("#finding-state", "resolved");
    await page.waitForFunction(() => document.querySelectorAll("#finding-list tbody tr").length === 100, null, { timeout: TIMEOUT });
    check(await page.isVisible("#finding-more"), "no More button under a full page");
    await page.click("#finding-more");
    await page.waitForFunction(() => document.querySelectorAll("#finding-list tbody tr").length === 120, null, { timeout: TIMEOUT });
    check(!(await page.isVisible("#finding-more")), "a More button after the last page");
    const ids = await page.$$eval("#finding-list tbody tr", (trs) => trs.map((tr) => Number(tr.dataset.id)));
    check(new Set(ids).size === 120 && ids.every((id, i) => i === 0 || id < ids[i - 1]), "the pages repeat or skip findings: " + ids);
    await shot(page, "findings-paged");

    // The audit trail, a page at a time.
    await page.click("a[data-page=audit]");
    await page.waitForSelector("#audit-results tbody tr", { timeout: TIMEOUT });
    const firstPage = await page.textContent("#audit-results tbody tr:nth-child(1) td:nth-child(1)");
    check(!(await page.isDisabled("#audit-next")), "a second page is expected");
    await page.click("#audit-next");
    await page.waitForFunction(
      (first) => document.querySelector("#audit-results tbody tr td").textContent !== first,
      firstPage,
      { timeout: TIMEOUT },
    );
    await page.selectOption("#audit-endpoint", "accounts");
    await page.fill("#audit-field", "billing_street");
    await page.click("#audit-form button[type=submit]");
    await page.waitForFunction(
      () => [...document.querySelectorAll("#audit-results tbody tr td:nth-child(5)")].every((td) => td.textContent === "billing_street")
        && document.querySelectorAll("#audit-results tbody tr").length > 0,
      null,
      { timeout: TIMEOUT },
    );
    await shot(page, "audit");

    // Conflicts: keep the ERP's value.
    await page.click("a[data-page=conflicts]");
    await page.waitForSelector("#conflict-list tbody tr", { timeout: TIMEOUT });
    await shot(page, "conflicts");
    await page.click("#conflict-list tbody tr:nth-child(1) button:has-text('Keep ERP')");
    await notice(page, "resolved");
    await context.close();

    check(problems.length === 0, "browser problems:\n" + problems.join("\n"));
  } finally {
    await browser.close();
  }
}

main().then(
  () => console.log("ui: all steps passed"),
  (e) => {
    console.error(e.stack || String(e));
    process.exit(1);
  },
);
