// The syncwarden web UI: a client of the admin API. Values from the API are only ever put in the
// page as text (never as HTML), and the token lives in this tab's session storage.
"use strict";

const TOKEN_KEY = "syncwarden.token";
const ENDPOINTS = ["accounts", "contacts", "pricebook", "items", "quotes", "sales_orders", "invoices"];
const AUDIT_PAGE = 100;
// Rows a page of the lists that load more on demand (the API's default page).
const LIST_PAGE = 100;

// ---- small DOM helpers -------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

function when(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  return isNaN(d) ? ts : d.toLocaleString();
}

function badge(text) {
  return h("span", { class: "badge " + String(text).replace(/_/g, "-") }, text);
}

function table(headers, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows));
}

function show(id, text) {
  const el = document.getElementById(id);
  el.textContent = text || "";
  el.hidden = !text;
}

function say(text) {
  show("error", "");
  show("notice", text);
}

function fail(err) {
  show("notice", "");
  show("error", err instanceof ApiError ? err.describe() : String(err && err.message || err));
}

// ---- the API -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || "HTTP " + status);
    this.status = status;
    this.code = e.code || "http_" + status;
    this.field = e.field;
  }
  describe() {
    const where = this.field ? " (" + this.field + ")" : "";
    return this.code + where + ": " + this.message;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + token() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!response.ok) {
    if (response.status === 401) signOut();
    throw new ApiError(response.status, json);
  }
  return json;
}

// A list the API serves a page at a time: `load()` fetches the next page and hands its rows to
// `draw`; `more` is a "More" button, shown while the API answers a `next` cursor.
function pager(id, path, params, key, draw) {
  let next = null;
  const more = h("button", { type: "button", class: "secondary more", id, hidden: true }, "More");
  const load = async () => {
    const page = await api("GET", path + query({ ...params, after: next, limit: LIST_PAGE }));
    next = page.next;
    more.hidden = next === null;
    draw(page[key]);
    return page;
  };
  more.addEventListener("click", () => load().catch(fail));
  return { more, load };
}

// Every page of a list (for short lists shown whole, such as silences).
async function everyPage(path, params, key) {
  const rows = [];
  let after = null;
  do {
    const page = await api("GET", path + query({ ...params, after, limit: 1000 }));
    rows.push(...page[key]);
    after = page.next;
  } while (after !== null);
  return rows;
}

// ---- who is signed in ------------------------------------------------------------------------

// The token's name, role and what it may do (`GET /v1/me`), read once per sign-in.
let me = null;

async function whoami() {
  if (!me) me = await api("GET", "/v1/me");
  const el = document.getElementById("whoami");
  el.textContent = me.name + " (" + me.role + ")";
  el.hidden = false;
  return me;
}

// Whether the signed-in role may do `what` (`decide`: approve, reject, undo, acknowledge,
// resolve, silence; `administer`). The API enforces it anyway; the UI only hides what would fail.
function can(what) {
  return !!me && me.can.includes(what);
}

function readOnly(what) {
  return h("p", { class: "muted read-only" }, "Your role (" + (me ? me.role : "?") + ") can see but not " + what + ".");
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

// ---- sign in, navigation -------------------------------------------------------------------

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  document.getElementById("whoami").hidden = true;
  render();
}

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById("token");
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  me = null;
  try {
    await whoami();
    input.value = "";
    say("");
    if (!location.hash || location.hash === "#/") location.hash = "#/dashboard";
    else render();
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    fail(err);
  }
}

const PAGES = {
  dashboard: dashboard,
  actions: actionsPage,
  findings: findingsPage,
  audit: auditPage,
  conflicts: conflictsPage,
};

function route() {
  const [page, ...rest] = location.hash.replace(/^#\//, "").split("/");
  return { page: PAGES[page] ? page : "dashboard", arg: rest.join("/") };
}

async function render() {
  const signedIn = !!token();
  document.getElementById("signin").hidden = signedIn;
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("signout").hidden = !signedIn;
  const main = document.getElementById("main");
  main.replaceChildren();
  if (!signedIn) return;
  const { page, arg } = route();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
  main.dataset.page = page;
  try {
    await whoami();
    await PAGES[page](main, arg);
  } catch (err) {
    fail(err);
  }
}

// ---- dashboard -----------------------------------------------------------------------------

async function dashboard(main) {
  main.append(h("h1", {}, "Dashboard"));
  const [controls, runs, findings, series] = await Promise.all([
    api("GET", "/v1/endpoints"),
    latestRuns(),
    api("GET", "/v1/findings?state=open&limit=1000"),
    api("GET", "/v1/metrics/series?resolution=hour"),
  ]);
  const kpiCard = h("section", { class: "card", id: "kpis", hidden: true });
  main.append(kpiCard, health(controls.controls, runs), openFindings(findings.findings, findings.next !== null), charts(series));
  kpis(kpiCard);
}

// The latest run of each endpoint: the newest page of runs, then, for an endpoint without a run
// on it (when older pages exist), that endpoint's newest run.
async function latestRuns() {
  const page = await api("GET", "/v1/runs?limit=1000");
  if (page.next === null) return page.runs;
  const missing = ENDPOINTS.filter((e) => !page.runs.some((r) => r.endpoint === e));
  const more = await Promise.all(missing.map((e) => api("GET", "/v1/runs" + query({ endpoint: e, limit: 1 }))));
  return page.runs.concat(...more.map((m) => m.runs));
}

function health(controls, runs) {
  const rows = ENDPOINTS.map((endpoint) => {
    const control = controls.find((c) => c.endpoint === endpoint);
    const last = runs.find((r) => r.endpoint === endpoint);
    const mode = control && control.paused ? "paused" : control && control.dry_run ? "dry-run" : "live";
    return h("tr", {},
      h("td", {}, endpoint),
      h("td", {}, badge(mode)),
      h("td", {}, last ? badge(last.status) : h("span", { class: "muted" }, "no run yet")),
      h("td", { title: last ? last.started_at : "" }, last ? when(last.ended_at || last.started_at) : ""),
      h("td", { class: "num" }, last ? last.counts.records_read : ""),
      h("td", { class: "num" }, last ? last.counts.records_written : ""),
      h("td", { class: "num" }, last ? last.counts.api_calls_ok + " / " + last.counts.api_calls_failed : ""),
      h("td", {}, last && last.error ? last.error : ""));
  });
  return h("section", { class: "card", id: "health" },
    h("h2", {}, "Sync health per endpoint"),
    table(["endpoint", "mode", "last run", "when", "read", "written", "calls ok / failed", "error"], rows));
}

function openFindings(findings, more) {
  const rows = findings.slice(0, 10).map((f) => h("tr", { class: "pick", onclick: () => { location.hash = "#/findings/" + f.id; } },
    h("td", {}, badge(f.severity)), h("td", {}, f.title), h("td", {}, when(f.last_seen_at))));
  return h("section", { class: "card", id: "open-findings" },
    h("h2", {}, "Open findings (" + findings.length + (more ? "+" : "") + ")"),
    findings.length ? table(["severity", "finding", "last seen"], rows) : h("p", { class: "muted" }, "None open."));
}

// The digest's KPIs, shown when this server has them (`GET /v1/kpis` answers); hidden otherwise.
async function kpis(card) {
  let body;
  try {
    body = await api("GET", "/v1/kpis");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) fail(err);
    return;
  }
  const items = Object.entries(body || {}).filter(([, v]) => v && typeof v === "object" && "value" in v);
  if (!items.length) return;
  card.append(h("h2", {}, "KPIs (this week vs. last)"), h("div", { class: "kpis" }, items.map(([name, v]) => kpi(name, v))));
  card.hidden = false;
}

function kpi(name, v) {
  const fmt = (x) => (x === null || x === undefined ? "–" : typeof x === "number" ? +x.toFixed(3) : String(x));
  let trend = "";
  if (typeof v.value === "number" && typeof v.previous === "number" && v.value !== v.previous) {
    trend = h("span", { class: "trend " + (v.value > v.previous ? "up" : "down") }, v.value > v.previous ? " ▲" : " ▼");
  }
  return h("div", { class: "kpi", "data-kpi": name },
    h("div", { class: "muted" }, name.replace(/_/g, " ")),
    h("div", { class: "value" }, fmt(v.value), trend),
    h("div", { class: "muted" }, "previous: " + fmt(v.previous)));
}

function charts(series) {
  const card = h("section", { class: "card", id: "charts" },
    h("h2", {}, "Last 24 hours per endpoint and target"),
    h("p", { class: "legend" }, "Bars: field events per hour. Line: write success rate (0 to 100 %)."));
  // The per-endpoint-and-target lines; the overall and per-connector scopes are sums of them.
  const lines = series.series.filter((l) => l.endpoint && l.target);
  if (!lines.length) card.append(h("p", { class: "muted" }, "No events in the last 24 hours."));
  const grid = h("div", { class: "grid" });
  for (const line of lines) grid.append(chart(line));
  card.append(grid);
  return card;
}

function chart(line) {
  const points = line.points;
  const W = 300, H = 80, n = Math.max(points.length, 1), bw = W / n;
  const maxEvents = Math.max(1, ...points.map((p) => p.events));
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  const bars = svg("g", { class: "bars" });
  points.forEach((p, i) => {
    const bh = (p.events / maxEvents) * (H - 4);
    const r = svg("rect", { x: i * bw + 0.5, y: H - bh, width: Math.max(bw - 1, 0.5), height: bh });
    const t = svg("title", {});
    t.textContent = `${when(p.start)}: ${p.events} events, ${p.failures}/${p.attempts} writes failed`;
    r.append(t);
    bars.append(r);
  });
  const rate = points
    .map((p, i) => (p.success_rate === null ? null : `${i * bw + bw / 2},${H - p.success_rate * (H - 4)}`))
    .filter(Boolean);
  root.append(svg("line", { class: "axis", x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5 }), bars);
  if (rate.length) root.append(svg("polyline", { class: "rate", points: rate.join(" ") }));
  const last = points[points.length - 1] || {};
  const total = points.reduce((a, p) => a + p.events, 0);
  return h("div", {},
    h("div", {}, h("strong", {}, line.endpoint + " → " + line.target), " ",
      h("span", { class: "muted" }, total + " events, p95 " + (last.latency_p95_ms ?? "–") + " ms")),
    root);
}

// ---- approval queue ------------------------------------------------------------------------

async function actionsPage(main, arg) {
  const params = new URLSearchParams(arg.includes("?") ? arg.slice(arg.indexOf("?")) : "");
  const selected = arg.split("?")[0];
  const filter = { state: params.get("state") ?? "open", endpoint: params.get("endpoint") || "" };
  const stateSel = h("select", { id: "action-state" },
    ["open", "approved", "applied", "undone", "rejected", ""].map((s) => h("option", { value: s, selected: s === filter.state }, s || "any")));
  const endpointSel = endpointSelect("action-endpoint", filter.endpoint);
  const apply = () => {
    location.hash = "#/actions/" + query({ state: stateSel.value || "", endpoint: endpointSel.value }) ;
  };
  stateSel.addEventListener("change", apply);
  endpointSel.addEventListener("change", apply);
  const detail = h("section", { class: "card", id: "action-detail" }, h("p", { class: "muted" }, "Pick an action to see its records side by side."));
  const rows = [];
  const body = h("tbody", {});
  const pick = (a, tr) => {
    for (const r of rows) r.classList.toggle("selected", r === tr);
    actionDetail(detail, a);
  };
  const listCard = h("section", { class: "card", id: "action-list" });
  const { more, load } = pager("action-more", "/v1/actions", filter, "actions", (actions) => {
    for (const a of actions) {
      const tr = h("tr", { class: "pick", "data-id": a.id, onclick: () => pick(a, tr) },
        h("td", { class: "num" }, a.id), h("td", {}, a.endpoint), h("td", {}, a.members.join(", ")),
        h("td", { class: "num" }, a.min_probability.toFixed(2)), h("td", {}, badge(a.status)));
      rows.push(tr);
      body.append(tr);
      if (String(a.id) === selected) pick(a, tr);
    }
  });
  await load();
  listCard.append(rows.length
    ? h("table", {}, h("thead", {}, h("tr", {}, ["id", "endpoint", "records", "match", "state"].map((x) => h("th", {}, x)))), body)
    : h("p", { class: "muted" }, "No actions."), more);
  main.append(h("h1", {}, "Approval queue"),
    h("div", { class: "row" }, h("label", {}, "state", stateSel), h("label", {}, "endpoint", endpointSel)),
    h("div", { class: "split" }, listCard, detail));
}

function endpointSelect(id, value) {
  return h("select", { id }, ["", ...ENDPOINTS].map((e) => h("option", { value: e, selected: e === value }, e || "any")));
}

// The members' fields side by side with the merged record; a member's value that the merge does
// not keep is highlighted.
function actionDetail(card, a) {
  const merged = Object.fromEntries(a.fields.map((f) => [f.field, f]));
  const members = a.members;
  const names = [...new Set([...a.fields.map((f) => f.field), ...members.flatMap((m) => Object.keys(a.before[m] || {}))])].sort();
  const rows = names.map((name) => {
    const kept = merged[name];
    return h("tr", {},
      h("th", {}, name),
      members.map((m) => {
        const v = (a.before[m] || {})[name];
        const differs = kept && v !== undefined && v !== kept.value;
        return h("td", { class: differs ? "diff" : "" }, v ?? "");
      }),
      h("td", { class: "kept" }, kept ? kept.value : ""),
      h("td", { class: "muted" }, kept ? kept.from + " (" + kept.why.replace(/_/g, " ") + ")" : ""));
  });
  const head = ["field", ...members.map((m) => (m === a.survivor ? m + " (survivor)" : m)), "merged", "from"];
  const reason = h("input", { id: "reject-reason", placeholder: "why is this merge wrong?", size: 40 });
  const buttons = h("div", { class: "actions" });
  if (!can("decide")) {
    if (a.status === "open" || a.status === "applied") buttons.append(readOnly("approve, reject or undo merges"));
  } else if (a.status === "open") {
    buttons.append(
      h("button", { id: "approve", onclick: () => decide(a, "approve") }, "Approve"),
      reason,
      h("button", { id: "reject", class: "danger", onclick: () => decide(a, "reject", { reason: reason.value }) }, "Reject"));
  } else if (a.status === "applied") {
    buttons.append(h("button", { id: "undo", class: "secondary", onclick: () => decide(a, "undo") }, "Undo"));
  }
  card.replaceChildren(
    h("h2", {}, "Action " + a.id + ": merge " + members.length + " " + a.endpoint + " records"),
    h("p", {}, badge(a.status), " ", h("span", { class: "muted" },
      "proposed " + when(a.created_at) + (a.decided_by ? "; decided by " + a.decided_by + " " + when(a.decided_at) : ""))),
    table(head, rows),
    buttons);
}

async function decide(a, verb, body) {
  try {
    const answer = await api("POST", `/v1/actions/${a.id}/${verb}`, body);
    say(`Action ${a.id} is now ${answer.action.status}.`);
    await render();
  } catch (err) {
    fail(err);
  }
}

// ---- findings ------------------------------------------------------------------------------

async function findingsPage(main, arg) {
  const params = new URLSearchParams(arg.includes("?") ? arg.slice(arg.indexOf("?")) : "");
  const selected = arg.split("?")[0];
  const filter = { state: params.get("state") ?? "open", severity: params.get("severity") || "", kind: params.get("kind") || "" };
  const silences = await everyPage("/v1/silences", {}, "silences");
  const stateSel = h("select", { id: "finding-state" },
    ["open", "acknowledged", "resolved", ""].map((s) => h("option", { value: s, selected: s === filter.state }, s || "any")));
  const severitySel = h("select", { id: "finding-severity" },
    ["", "info", "warning", "critical"].map((s) => h("option", { value: s, selected: s === filter.severity }, s || "any")));
  const kind = h("input", { id: "finding-kind", value: filter.kind, placeholder: "e.g. price_mismatch" });
  const apply = () => { location.hash = "#/findings/" + query({ state: stateSel.value, severity: severitySel.value, kind: kind.value.trim() }); };
  stateSel.addEventListener("change", apply);
  severitySel.addEventListener("change", apply);
  kind.addEventListener("change", apply);
  const detail = h("section", { class: "card", id: "finding-detail" }, h("p", { class: "muted" }, "Pick a finding to see its evidence."));
  const rows = [];
  const body = h("tbody", {});
  const pick = (f, tr) => {
    for (const r of rows) r.classList.toggle("selected", r === tr);
    findingDetail(detail, f);
  };
  const { more, load } = pager("finding-more", "/v1/findings", filter, "findings", (findings) => {
    for (const f of findings) {
      const tr = h("tr", { class: "pick", "data-id": f.id, onclick: () => pick(f, tr) },
        h("td", {}, badge(f.severity)), h("td", {}, f.title), h("td", {}, badge(f.state)), h("td", {}, when(f.last_seen_at)));
      rows.push(tr);
      body.append(tr);
      if (String(f.id) === selected) pick(f, tr);
    }
  });
  await load();
  // A link from an alert names a finding that may not be in this list (acknowledged, resolved, or
  // further down): fetch it on its own.
  if (selected && !rows.some((r) => r.dataset.id === selected)) {
    const one = await api("GET", `/v1/findings/${encodeURIComponent(selected)}`);
    findingDetail(detail, one.finding);
  }
  main.append(h("h1", {}, "Findings"),
    h("div", { class: "row" }, h("label", {}, "state", stateSel), h("label", {}, "severity", severitySel), h("label", {}, "kind", kind)),
    h("div", { class: "split" },
      h("section", { class: "card", id: "finding-list" },
        rows.length
          ? h("table", {}, h("thead", {}, h("tr", {}, ["severity", "finding", "state", "last seen"].map((x) => h("th", {}, x)))), body)
          : h("p", { class: "muted" }, "No findings."),
        more),
      detail),
    silenceList(silences));
}

function findingDetail(card, f) {
  const buttons = h("div", { class: "actions" });
  if (!can("decide")) {
    if (f.state !== "resolved") buttons.append(readOnly("acknowledge, resolve or silence findings"));
  } else {
    if (f.state === "open") buttons.append(h("button", { id: "acknowledge", onclick: () => moveFinding(f, "acknowledge") }, "Acknowledge"));
    if (f.state !== "resolved") buttons.append(h("button", { id: "resolve", class: "secondary", onclick: () => moveFinding(f, "resolve") }, "Resolve"));
  }
  const evidence = f.evidence && typeof f.evidence === "object" ? f.evidence : { value: f.evidence };
  const scalars = Object.entries(evidence).filter(([, v]) => v === null || typeof v !== "object");
  const span = { from: new Date(Date.parse(f.started_at) - 3600e3).toISOString(), to: new Date(Date.parse(f.last_seen_at) + 3600e3).toISOString() };
  const endpoint = ENDPOINTS.includes(evidence.endpoint) ? evidence.endpoint : f.fingerprint.split(":")[1];
  card.replaceChildren(
    h("h2", {}, f.title),
    h("p", {}, badge(f.severity), " ", badge(f.state), " ", h("span", { class: "muted" },
      f.kind + " · started " + when(f.started_at) + " · detected " + when(f.detected_at) + " · seen " + f.occurrences + "×")),
    buttons,
    h("h2", {}, "Evidence"),
    scalars.length ? table(["", ""], scalars.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "mono" }, String(v))))) : "",
    h("pre", {}, JSON.stringify(f.evidence, null, 2)),
    h("p", {}, h("a", { href: "#/audit/" + query({ ...span, endpoint: ENDPOINTS.includes(endpoint) ? endpoint : "" }) }, "Events around this finding in the audit trail")),
    can("decide") ? silenceForm(f) : "");
}

async function moveFinding(f, verb) {
  try {
    const answer = await api("POST", `/v1/findings/${f.id}/${verb}`);
    say(`Finding ${f.id} is now ${answer.finding.state}.`);
    await render();
  } catch (err) {
    fail(err);
  }
}

function silenceForm(f) {
  const endpoint = f.fingerprint.split(":")[1];
  const matchers = h("textarea", { id: "silence-matchers", rows: 2, cols: 40 },
    ["type=" + f.kind, ENDPOINTS.includes(endpoint) ? "endpoint=" + endpoint : null].filter(Boolean).join("\n"));
  const hours = h("select", { id: "silence-hours" }, [[1, "1 hour"], [4, "4 hours"], [24, "1 day"], [168, "1 week"]].map(([v, t]) => h("option", { value: v }, t)));
  const comment = h("input", { id: "silence-comment", size: 30, placeholder: "why silence it?" });
  const submit = async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/v1/silences", {
        matchers: matchers.value.split("\n").map((m) => m.trim()).filter(Boolean),
        ends_at: new Date(Date.now() + Number(hours.value) * 3600e3).toISOString(),
        comment: comment.value,
      });
      say("Silenced.");
      await render();
    } catch (err) {
      fail(err);
    }
  };
  return h("form", { id: "silence-form", onsubmit: submit },
    h("h2", {}, "Silence its alerts"),
    h("div", { class: "row" }, h("label", {}, "matchers (one a line)", matchers), h("label", {}, "for", hours),
      h("label", {}, "comment", comment), h("button", { type: "submit" }, "Silence")));
}

function silenceList(silences) {
  const now = Date.now();
  const active = silences.filter((s) => Date.parse(s.ends_at) > now);
  return h("section", { class: "card", id: "silences" },
    h("h2", {}, "Active and coming silences (" + active.length + ")"),
    active.length
      ? table(["matchers", "from", "until", "by", "comment"], active.map((s) => h("tr", {},
        h("td", { class: "mono" }, s.matchers.join(", ")), h("td", {}, when(s.starts_at)), h("td", {}, when(s.ends_at)),
        h("td", {}, s.author), h("td", {}, s.comment))))
      : h("p", { class: "muted" }, "None."));
}

// ---- audit trail ---------------------------------------------------------------------------

// Keyset paging: the page shown starts after `after`; earlier cursors are kept to go back.
async function auditPage(main, arg) {
  const params = new URLSearchParams(arg.startsWith("?") ? arg : arg.slice(arg.indexOf("?") + 1));
  const filter = {};
  for (const k of ["endpoint", "record_id", "field", "run_id", "from", "to"]) filter[k] = params.get(k) || "";
  const form = auditForm(filter);
  const results = h("section", { class: "card", id: "audit-results" });
  main.append(h("h1", {}, "Audit trail"), form, results);
  const cursors = [];
  const load = async (after) => {
    const page = await api("GET", "/v1/audit/events" + query({ ...filter, after, limit: AUDIT_PAGE }));
    const prev = h("button", { class: "secondary", id: "audit-prev", disabled: !cursors.length, onclick: () => load(cursors.pop()).catch(fail) }, "Previous");
    const next = h("button", { class: "secondary", id: "audit-next", disabled: page.next === null,
      onclick: () => { cursors.push(after); load(page.next).catch(fail); } }, "Next");
    const rows = page.events.map((e) => h("tr", {},
      h("td", { class: "num" }, e.id), h("td", { title: e.occurred_at }, when(e.occurred_at)), h("td", {}, e.endpoint),
      h("td", { class: "mono" }, [e.crm_id, e.erp_id].filter(Boolean).join(" / ")), h("td", {}, e.field),
      h("td", { class: "mono" }, e.old_value ?? ""), h("td", { class: "mono" }, e.new_value ?? ""),
      h("td", {}, e.source_system + " → " + e.target_system), h("td", {}, badge(e.outcome)),
      h("td", {}, e.error ?? ""), h("td", { class: "mono" }, e.run_id ?? "")));
    results.replaceChildren(
      page.events.length
        ? table(["id", "occurred", "endpoint", "record (crm / erp)", "field", "old", "new", "direction", "outcome", "error", "run"], rows)
        : h("p", { class: "muted" }, "No events match."),
      h("div", { class: "pager" }, prev, next, h("span", { class: "muted" }, page.events.length + " events on this page")));
  };
  await load(undefined);
}

function auditForm(filter) {
  const inputs = {
    endpoint: endpointSelect("audit-endpoint", filter.endpoint),
    record_id: h("input", { id: "audit-record", value: filter.record_id, placeholder: "CRM id or ERP key" }),
    field: h("input", { id: "audit-field", value: filter.field }),
    run_id: h("input", { id: "audit-run", value: filter.run_id }),
    from: h("input", { id: "audit-from", type: "datetime-local", step: 1, value: localInput(filter.from) }),
    to: h("input", { id: "audit-to", type: "datetime-local", step: 1, value: localInput(filter.to) }),
  };
  const values = () => {
    const v = {};
    for (const [k, el] of Object.entries(inputs)) v[k] = el.type === "datetime-local" && el.value ? new Date(el.value).toISOString() : el.value.trim();
    return v;
  };
  const submit = (event) => {
    event.preventDefault();
    location.hash = "#/audit/" + query(values());
  };
  const csv = async () => {
    try {
      const response = await fetch("/v1/audit/events.csv" + query(values()), { headers: { Authorization: "Bearer " + token() } });
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      const link = h("a", { href: URL.createObjectURL(await response.blob()), download: "syncwarden-audit.csv" });
      link.click();
      URL.revokeObjectURL(link.href);
    } catch (err) {
      fail(err);
    }
  };
  return h("form", { class: "row card", id: "audit-form", onsubmit: submit },
    Object.entries(inputs).map(([k, el]) => h("label", {}, k.replace("_", " "), el)),
    h("button", { type: "submit" }, "Search"),
    h("button", { type: "button", class: "secondary", onclick: csv }, "Export CSV"));
}

function localInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// ---- conflicts -----------------------------------------------------------------------------

async function conflictsPage(main) {
  const body = h("tbody", {});
  let count = 0;
  const { more, load } = pager("conflict-more", "/v1/conflicts", {}, "conflicts", (conflicts) => {
    count += conflicts.length;
    body.append(...conflicts.map(conflictRow));
  });
  await load();
  main.append(h("h1", {}, "Conflicts held for a person"),
    can("decide") ? "" : readOnly("resolve conflicts"),
    h("section", { class: "card", id: "conflict-list" },
      count
        ? h("table", {}, h("thead", {}, h("tr", {}, ["endpoint", "record", "field", "last agreed", "CRM", "ERP", "opened", can("decide") ? "resolve" : ""].map((x) => h("th", {}, x)))), body)
        : h("p", { class: "muted" }, "No open conflicts."),
      more));
}

function conflictRow(c) {
    const own = h("input", { placeholder: "another value", size: 14 });
    const resolve = (resolution) => async () => {
      try {
        await api("POST", `/v1/conflicts/${c.id}/resolve`, resolution);
        say(`Conflict ${c.id} resolved.`);
        await render();
      } catch (err) {
        fail(err);
      }
    };
    return h("tr", { "data-id": c.id },
      h("td", {}, c.endpoint), h("td", { class: "mono" }, c.key), h("td", {}, c.field),
      h("td", { class: "mono" }, c.base_value ?? ""), h("td", { class: "mono" }, c.crm_value ?? ""),
      h("td", { class: "mono" }, c.erp_value ?? ""), h("td", {}, when(c.opened_at)),
      h("td", {}, can("decide") ? h("div", { class: "actions" },
        h("button", { class: "secondary", onclick: resolve({ choice: "crm" }) }, "Keep CRM"),
        h("button", { class: "secondary", onclick: resolve({ choice: "erp" }) }, "Keep ERP"),
        own, h("button", { class: "secondary", onclick: () => resolve({ choice: "value", value: own.value })() }, "Use value")) : ""));
}

// ---- start ---------------------------------------------------------------------------------

document.getElementById("signin-form").addEventListener("submit", signIn);
document.getElementById("signout").addEventListener("click", signOut);
window.addEventListener("hashchange", () => { show("error", ""); render(); });
render();
