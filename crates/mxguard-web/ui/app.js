// mxguard web UI: one page, no build step, no third-party code.
// Every URL is relative (no leading slash) so the UI works under any path
// prefix a reverse proxy puts in front of it (`/rspamd/` -> the controller).
// Nothing from the server is inserted as HTML: mail subjects, symbol options
// and map lines are hostile input, so the DOM is built with text nodes only.
"use strict";

// rspamd's action names, in the order of its throughput graph series.
const ACTIONS = ["reject", "soft reject", "rewrite subject", "add header", "greylist", "no action"];
const COLORS = {
  "reject": "#c62828", "soft reject": "#8d5a2b", "rewrite subject": "#e65100",
  "add header": "#f2a900", "greylist": "#3b5bdb", "no action": "#43a047",
};
// The thresholds the configuration page edits, strongest first.
const SAVE_ORDER = ["reject", "rewrite subject", "add header", "greylist"];
const PAGES = ["status", "graph", "config", "symbols", "scan", "history", "errors", "blocks"];

const S = {
  password: null, // kept in memory only, and only when the server gives no session
  csrf: null,
  readOnly: true,
  graphType: "hourly",
  history: { rows: [], sort: "unix_time", desc: true, filter: "" },
  symbols: { groups: [], hits: {}, filter: "", changed: {} },
  timer: null,
};

// ---- helpers -------------------------------------------------------------

/** Builds an element; attributes starting with "on" become listeners. */
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k in e && typeof v !== "string") e[k] = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

const svgNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

/** A control that changes state: only built for the admin login. */
function writeButton(label, onclick, cls, id) {
  return el("button", { type: "button", class: cls || "", "data-write": "", id, onclick }, label);
}

/** A control that only reads: allowed for the read-only login. */
function readButton(label, onclick, cls, id) {
  return el("button", { type: "button", class: cls || "", "data-ro-ok": "", id, onclick }, label);
}

function show(text, isError) {
  const m = document.getElementById("msg");
  m.textContent = text;
  m.className = isError ? "error" : "";
  m.hidden = !text;
}

function actionClass(a) {
  return "action action-" + String(a || "").replace(/[^a-z]+/gi, "-").toLowerCase();
}

function fmtNum(n, digits) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return "";
  return Number(n).toLocaleString("en", { maximumFractionDigits: digits === undefined ? 2 : digits });
}

function fmtUptime(sec) {
  sec = Math.max(0, Math.floor(Number(sec) || 0));
  const d = Math.floor(sec / 86400), h = Math.floor(sec % 86400 / 3600), m = Math.floor(sec % 3600 / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}min`;
  return `${m}min ${sec % 60}s`;
}

function fmtTime(unix) {
  if (!unix) return "";
  const d = new Date(Number(unix) * 1000);
  return Number.isNaN(d.getTime()) ? String(unix) : d.toLocaleString("sv-SE").replace("T", " ");
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/**
 * One request to the API. The browser session (cookie + CSRF token) is used
 * when the server gave one at login; otherwise the password rides along in
 * the `Password:` header, as rspamd's own UI does.
 */
async function api(path, opts) {
  opts = opts || {};
  const method = opts.method || "GET";
  const headers = Object.assign({}, opts.headers || {});
  if (S.password !== null) headers["Password"] = S.password;
  if (method !== "GET" && S.csrf) headers["X-CSRF-Token"] = S.csrf;
  let r;
  try {
    r = await fetch(path, { method, headers, body: opts.body, credentials: "same-origin", cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, `cannot reach mxguard (${e.message}); is \`mxguard serve\` running with [web] on?`);
  }
  const text = await r.text();
  let data = text;
  try { data = JSON.parse(text); } catch (_) { /* plain text answer (getmap) */ }
  if (!r.ok) {
    const why = (data && typeof data === "object" && (data.error || data.message)) || text || r.statusText;
    throw new ApiError(r.status, `${path.split("?")[0]}: ${r.status} ${why}`);
  }
  return data;
}

async function guarded(fn) {
  try {
    await fn();
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403) && !e.message.includes("CSRF")) {
      if (S.readOnly || e.status === 401) return loggedOut("Please log in: " + e.message);
    }
    show(e.message, true);
  }
}

// ---- login ---------------------------------------------------------------

async function login(password) {
  S.password = password;
  S.csrf = null;
  const auth = await api("auth");
  if (auth && (auth.auth === "failed" || auth.error)) throw new ApiError(403, auth.error || "wrong password");
  enter(auth);
}

function enter(auth) {
  const token = auth.csrf_token || auth.csrf;
  if (token) {
    // A cookie session was opened: forget the password, keep the token.
    S.csrf = token;
    S.password = null;
  }
  S.readOnly = auth.read_only !== false;
  document.body.classList.toggle("admin", !S.readOnly);
  document.getElementById("role").textContent = S.readOnly ? "read-only" : "admin";
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("who").hidden = false;
  show("");
  route();
}

function loggedOut(message) {
  S.password = null;
  S.csrf = null;
  S.readOnly = true;
  clearInterval(S.timer);
  document.body.classList.remove("admin");
  document.getElementById("page").replaceChildren();
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("password").value = "";
  document.getElementById("password").focus();
  show(message || "", Boolean(message));
}

// ---- router --------------------------------------------------------------

function route() {
  if (document.getElementById("nav").hidden) return;
  let page = (location.hash || "#status").slice(1);
  if (!PAGES.includes(page)) page = "status";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  clearInterval(S.timer);
  const main = document.getElementById("page");
  main.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  main.dataset.page = page;
  delete main.dataset.ready;
  guarded(() => RENDER[page](main));
  // The status page follows the counters by itself, while it is visible.
  if (page === "status") {
    S.timer = setInterval(() => { if (!document.hidden) guarded(() => renderStatus(main)); }, 10000);
  }
}

/** Fills `main` only if the user is still on that page when data arrives. */
function fill(main, page, ...kids) {
  if (main.dataset.page !== page) return;
  main.replaceChildren(...kids);
  main.dataset.ready = page; // for tests and screen readers: the page is drawn
}

// ---- status --------------------------------------------------------------

function pieChart(counts) {
  const total = ACTIONS.reduce((s, a) => s + (Number(counts[a]) || 0), 0);
  const size = 180, r = 80, c = size / 2;
  const g = svg("svg", { width: size, height: size, viewBox: `0 0 ${size} ${size}`, role: "img", "aria-label": "actions pie", id: "pie" });
  if (!total) {
    g.append(svg("circle", { cx: c, cy: c, r, fill: "#e3e7eb" }), svg("text", { x: c, y: c + 4, "text-anchor": "middle" }, "no scans yet"));
    return g;
  }
  let angle = -Math.PI / 2;
  for (const a of ACTIONS) {
    const v = Number(counts[a]) || 0;
    if (!v) continue;
    const title = svg("title", {}, `${a}: ${v} (${(100 * v / total).toFixed(1)}%)`);
    if (v === total) {
      g.append(svg("circle", { cx: c, cy: c, r, fill: COLORS[a], "data-action": a }, title));
      break;
    }
    const end = angle + 2 * Math.PI * v / total;
    const large = end - angle > Math.PI ? 1 : 0;
    const d = `M${c},${c} L${c + r * Math.cos(angle)},${c + r * Math.sin(angle)} A${r},${r} 0 ${large} 1 ${c + r * Math.cos(end)},${c + r * Math.sin(end)} Z`;
    g.append(svg("path", { d, fill: COLORS[a], stroke: "#fff", "stroke-width": 1, "data-action": a }, title));
    angle = end;
  }
  return g;
}

function legend(counts) {
  return el("div", { class: "legend" }, ACTIONS.map((a) =>
    el("span", {}, el("i", { style: `background:${COLORS[a]}` }), `${a}${counts ? ": " + fmtNum(counts[a] || 0, 0) : ""}`)));
}

function counter(label, value, id) {
  return el("div", { class: "counter", id: id ? "c-" + id : null }, el("b", {}, value), el("span", {}, label));
}

async function renderStatus(main) {
  const st = await api("stat");
  const actions = st.actions || {};
  const counters = el("div", { class: "counters" },
    counter("scanned", fmtNum(st.scanned, 0), "scanned"),
    ACTIONS.map((a) => counter(a, fmtNum(actions[a] || 0, 0), a.replace(/ /g, "-"))),
    counter("learned", fmtNum(st.learned, 0), "learned"));
  const statfiles = Array.isArray(st.statfiles) ? st.statfiles : [];
  const classifier = statfiles.length
    ? el("table", { id: "classifier" },
      el("tr", {}, el("th", {}, "Symbol"), el("th", {}, "Backend"), el("th", { class: "num" }, "Learned"), el("th", { class: "num" }, "Users")),
      statfiles.map((f) => el("tr", {}, el("td", {}, f.symbol), el("td", {}, f.type),
        el("td", { class: "num" }, fmtNum(f.revision, 0)), el("td", { class: "num" }, fmtNum(f.users, 0)))))
    : el("p", { class: "muted", id: "classifier" }, "No classifier statistics.");
  fill(main, "status",
    el("section", { class: "card" },
      el("div", { class: "toolbar" },
        el("h1", {}, "Status"),
        el("span", { class: "muted", id: "version" }, `version ${st.version || "?"}`),
        el("span", { class: "muted", id: "uptime" }, `up ${fmtUptime(st.uptime)}`),
        readButton("Refresh", () => route(), "", "refresh"),
        S.readOnly ? null : writeButton("Reset statistics", () => guarded(async () => {
          if (!confirm("Reset the counters?")) return;
          await api("statreset", { method: "POST" });
          show("Statistics reset.");
          route();
        }), "danger", "reset-stats")),
      counters),
    el("div", { class: "row" },
      el("section", { class: "card" }, el("h2", {}, "Actions"), pieChart(actions), legend(actions)),
      el("section", { class: "card", style: "flex:1" }, el("h2", {}, "Classifier"),
        st.classifier && st.classifier.state ? el("p", { id: "classifier-state" }, "State: ", el("b", {}, st.classifier.state)) : null,
        el("p", {}, `Learned: ${fmtNum(st.total_learns ?? st.learned ?? 0, 0)}`,
          st.spam_count !== undefined ? ` · verdicts: ${fmtNum(st.spam_count, 0)} spam, ${fmtNum(st.ham_count, 0)} ham` : ""),
        classifier)));
}

// ---- throughput graph ----------------------------------------------------

function lineChart(series, type) {
  const W = 960, H = 300, L = 50, R = 10, T = 10, B = 30;
  const pts = series.flat().filter((p) => p && p.x !== undefined);
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "throughput", id: "graph-svg" });
  if (!pts.length) {
    g.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data yet"));
    return g;
  }
  const x0 = Math.min(...pts.map((p) => p.x)), x1 = Math.max(...pts.map((p) => p.x));
  const yMax = Math.max(1e-9, ...pts.map((p) => Number(p.y) || 0));
  const sx = (x) => L + (W - L - R) * (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0));
  const sy = (y) => T + (H - T - B) * (1 - y / yMax);
  for (let i = 0; i <= 4; i++) {
    const y = yMax * i / 4;
    g.append(svg("line", { x1: L, x2: W - R, y1: sy(y), y2: sy(y), stroke: "#e3e7eb" }),
      svg("text", { x: L - 4, y: sy(y) + 4, "text-anchor": "end" }, fmtNum(y, y < 10 ? 2 : 0)));
  }
  const fmt = type === "hourly" || type === "daily"
    ? (t) => new Date(t * 1000).toTimeString().slice(0, 5)
    : (t) => new Date(t * 1000).toISOString().slice(5, 10);
  for (let i = 0; i <= 6; i++) {
    const t = x0 + (x1 - x0) * i / 6;
    g.append(svg("text", { x: sx(t), y: H - 8, "text-anchor": i === 0 ? "start" : i === 6 ? "end" : "middle" }, fmt(t)));
  }
  series.forEach((s, i) => {
    let d = "";
    let pen = false;
    for (const p of s || []) {
      if (p.y === null || p.y === undefined) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(Number(p.y)).toFixed(1)}`;
      pen = true;
    }
    if (d) g.append(svg("path", { d, fill: "none", stroke: COLORS[ACTIONS[i]] || "#888", "stroke-width": 1.5, "data-action": ACTIONS[i] || "" }));
  });
  return g;
}

/** /graph answers one series per action; accept rspamd's array or a map by action name. */
function normaliseSeries(data) {
  if (Array.isArray(data)) return data;
  if (data && typeof data === "object") return ACTIONS.map((a) => data[a] || []);
  return [];
}

/** rspamd gives rates per second; mxguard counts per bucket: say which from the spacing. */
function bucketLabel(series) {
  const s = series.find((x) => x && x.length > 1);
  if (!s) return "per interval";
  const step = s[1].x - s[0].x;
  const sum = series.flat().reduce((t, p) => t + (Number(p && p.y) || 0), 0);
  if (sum > 0 && !series.flat().every((p) => !p || p.y === null || Number.isInteger(Number(p.y)))) return "per second";
  if (step >= 3600) return `per ${step / 3600} h`.replace("per 1 h", "per hour");
  return `per ${Math.round(step / 60)} min`.replace("per 1 min", "per minute");
}

async function renderGraph(main) {
  const series = normaliseSeries(await api(`graph?type=${encodeURIComponent(S.graphType)}`));
  const sel = el("select", { id: "graph-type", "data-ro-ok": "", onchange: (e) => { S.graphType = e.target.value; route(); } },
    ["hourly", "daily", "weekly", "monthly"].map((t) => el("option", { value: t, selected: t === S.graphType }, t)));
  const rows = ACTIONS.map((a, i) => {
    const s = (series[i] || []).filter((p) => p.y !== null && p.y !== undefined);
    const ys = s.map((p) => Number(p.y));
    return el("tr", {}, el("td", { class: actionClass(a) }, a),
      el("td", { class: "num" }, ys.length ? fmtNum(Math.min(...ys), 4) : ""),
      el("td", { class: "num" }, ys.length ? fmtNum(ys.reduce((x, y) => x + y, 0) / ys.length, 4) : ""),
      el("td", { class: "num" }, ys.length ? fmtNum(Math.max(...ys), 4) : ""),
      el("td", { class: "num" }, ys.length ? fmtNum(ys[ys.length - 1], 4) : ""),
      el("td", { class: "num" }, fmtNum(ys.reduce((x, y) => x + y, 0), 2)));
  });
  fill(main, "graph", el("section", { class: "card" },
    el("div", { class: "toolbar" }, el("h1", {}, "Throughput"), el("label", {}, "Period ", sel), readButton("Refresh", () => route())),
    el("p", { class: "muted" }, `Messages ${bucketLabel(series)}, by action.`),
    lineChart(series, S.graphType), legend(null),
    el("table", {}, el("tr", {}, el("th", {}, "Action"), el("th", { class: "num" }, "Min"), el("th", { class: "num" }, "Average"),
      el("th", { class: "num" }, "Max"), el("th", { class: "num" }, "Last"), el("th", { class: "num" }, "Sum")), rows)));
}

// ---- configuration: actions and maps ---------------------------------------

async function renderConfig(main) {
  const [actions, maps] = await Promise.all([api("actions"), api("maps").catch((e) => e)]);
  const byName = {};
  for (const a of Array.isArray(actions) ? actions : []) byName[a.action] = a.value;
  const order = ["greylist", "add header", "rewrite subject", "reject"];
  const inputs = {};
  const rows = order.filter((a) => a in byName || !S.readOnly).map((a) => {
    const v = byName[a];
    let cell;
    if (S.readOnly) {
      cell = el("td", { class: "num", "data-action": a }, v === null || v === undefined ? "off" : fmtNum(v, 3));
    } else {
      inputs[a] = el("input", { class: "score", type: "number", step: "0.1", name: a, "data-write": "", value: v === null || v === undefined ? "" : String(v), placeholder: "off" });
      cell = el("td", { class: "num" }, inputs[a]);
    }
    return el("tr", {}, el("td", { class: actionClass(a) }, a), cell);
  });
  const save = S.readOnly ? null : writeButton("Save actions", () => guarded(async () => {
    const values = SAVE_ORDER.map((a) => {
      const t = inputs[a] ? inputs[a].value.trim() : "";
      return t === "" ? null : Number(t);
    });
    if (values.some((v) => v !== null && !Number.isFinite(v))) throw new ApiError(0, "Every threshold must be a number (or empty for off).");
    const set = values.filter((v) => v !== null);
    for (let i = 1; i < set.length; i++) {
      if (set[i] > set[i - 1]) throw new ApiError(0, "Thresholds must rise from greylist to reject.");
    }
    // As /actions lists them: one {action, value} per threshold, null = off.
    const body = SAVE_ORDER.filter((a) => inputs[a]).map((a) => ({ action: a, value: values[SAVE_ORDER.indexOf(a)] }));
    await api("saveactions", { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
    show("Action thresholds saved.");
  }), "primary", "save-actions");
  const mapSection = el("section", { class: "card" }, el("h2", {}, "Map files"));
  if (maps instanceof Error) {
    mapSection.append(el("p", { class: "error" }, maps.message));
  } else if (!Array.isArray(maps) || !maps.length) {
    mapSection.append(el("p", { class: "muted" }, "No map files are configured."));
  } else {
    const editor = el("div", { id: "map-editor" });
    mapSection.append(el("table", { id: "maps" },
      el("tr", {}, el("th", {}, "Map"), el("th", {}, "Description"), el("th", {}, "")),
      maps.map((m) => el("tr", {},
        el("td", {}, m.uri), el("td", {}, m.description || ""),
        el("td", {}, readButton(S.readOnly || m.editable === false ? "View" : "Edit", () => guarded(() => openMap(m, editor)))))),
    ), editor);
  }
  fill(main, "config",
    el("section", { class: "card" }, el("h1", {}, "Action thresholds"),
      el("p", { class: "muted" }, "A message gets the highest action whose threshold its score reaches."),
      el("table", { id: "actions", style: "max-width:420px" }, rows), el("p", {}, save)),
    mapSection);
}

async function openMap(m, editor) {
  const text = await api("getmap", { headers: { Map: String(m.map) } });
  const body = typeof text === "string" ? text : JSON.stringify(text, null, 2);
  const title = el("h2", {}, m.uri);
  if (S.readOnly || m.editable === false) {
    editor.replaceChildren(title, el("pre", { id: "map-text" }, body));
    return;
  }
  const area = el("textarea", { id: "map-text", "data-write": "", spellcheck: "false" });
  area.value = body;
  editor.replaceChildren(title, area, el("p", {}, writeButton("Save map", () => guarded(async () => {
    let t = area.value;
    if (t && !t.endsWith("\n")) t += "\n";
    await api("savemap", { method: "POST", body: t, headers: { Map: String(m.map), "Content-Type": "text/plain" } });
    show(`Saved ${m.uri}.`);
  }), "primary", "save-map")));
  area.focus();
}

// ---- symbols -------------------------------------------------------------

async function renderSymbols(main) {
  // /counters adds how often each symbol fired (rspamd's /symbols may carry it too).
  const [groups, counters] = await Promise.all([api("symbols"), api("counters").catch(() => [])]);
  S.symbols.groups = Array.isArray(groups) ? groups : [];
  S.symbols.hits = {};
  for (const c of Array.isArray(counters) ? counters : []) S.symbols.hits[c.symbol] = c;
  S.symbols.changed = {};
  const tbody = el("tbody");
  const filter = el("input", { type: "search", id: "symbols-filter", placeholder: "filter symbols", "data-ro-ok": "", value: S.symbols.filter,
    oninput: (e) => { S.symbols.filter = e.target.value; drawSymbols(tbody); } });
  const save = S.readOnly ? null : writeButton("Save scores", () => guarded(async () => {
    const changed = Object.entries(S.symbols.changed).map(([name, value]) => ({ name, value }));
    if (!changed.length) return show("No score was changed.");
    await api("savesymbols", { method: "POST", body: JSON.stringify(changed), headers: { "Content-Type": "application/json" } });
    S.symbols.changed = {};
    show(`Saved ${changed.length} score${changed.length > 1 ? "s" : ""}.`);
  }), "primary", "save-scores");
  drawSymbols(tbody);
  fill(main, "symbols", el("section", { class: "card" },
    el("div", { class: "toolbar" }, el("h1", {}, "Symbols"), filter, save),
    el("table", { id: "symbols" },
      el("thead", {}, el("tr", {}, el("th", {}, "Symbol"), el("th", {}, "Description"), el("th", { class: "num" }, "Score"),
        el("th", { class: "num" }, "Hits"), el("th", { class: "num" }, "Frequency"))),
      tbody)));
}

function drawSymbols(tbody) {
  const q = S.symbols.filter.trim().toLowerCase();
  const out = [];
  const groups = [...S.symbols.groups].sort((a, b) => String(a.group).localeCompare(String(b.group)));
  for (const g of groups) {
    const rules = (g.rules || []).filter((r) => !q || String(r.symbol).toLowerCase().includes(q) ||
      String(r.description || "").toLowerCase().includes(q) || String(g.group).toLowerCase().includes(q));
    if (!rules.length) continue;
    out.push(el("tr", { class: "group" }, el("td", { colspan: 5 }, g.group || "ungrouped")));
    for (const r of rules.sort((a, b) => String(a.symbol).localeCompare(String(b.symbol)))) {
      const w = S.symbols.changed[r.symbol] ?? r.weight;
      const score = S.readOnly
        ? el("span", { class: w > 0 ? "pos" : w < 0 ? "neg" : "" }, fmtNum(w, 3))
        : el("input", { class: "score", type: "number", step: "0.01", "data-write": "", "data-symbol": r.symbol, value: String(w ?? 0),
          oninput: (e) => { const v = Number(e.target.value); if (e.target.value.trim() !== "" && Number.isFinite(v)) S.symbols.changed[r.symbol] = v; } });
      out.push(el("tr", { "data-symbol": r.symbol },
        el("td", {}, r.symbol), el("td", { class: "muted" }, r.description || ""), el("td", { class: "num" }, score),
        el("td", { class: "num" }, fmtNum((S.symbols.hits[r.symbol] || {}).hits, 0)),
        el("td", { class: "num" }, fmtNum(r.frequency ?? (S.symbols.hits[r.symbol] || {}).frequency, 4))));
    }
  }
  if (!out.length) out.push(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No symbol matches.")));
  tbody.replaceChildren(...out);
}

// ---- scan and learn --------------------------------------------------------

function verdictView(v) {
  const syms = Object.values(v.symbols || {}).sort((a, b) => Math.abs(b.score || 0) - Math.abs(a.score || 0));
  const messages = Object.entries(v.messages || {});
  return el("div", { id: "verdict" },
    el("p", { class: "verdict" }, el("span", { class: actionClass(v.action), id: "verdict-action" }, v.action), " · score ",
      el("b", { id: "verdict-score" }, fmtNum(v.score, 2)), ` / ${fmtNum(v.required_score, 2)}`),
    messages.length ? el("ul", {}, messages.map(([k, m]) => el("li", {}, `${k}: ${m}`))) : null,
    el("table", {}, el("tr", {}, el("th", {}, "Symbol"), el("th", { class: "num" }, "Score"), el("th", {}, "Options")),
      syms.map((s) => el("tr", { "data-symbol": s.name }, el("td", {}, s.name),
        el("td", { class: "num " + (s.score > 0 ? "pos" : s.score < 0 ? "neg" : "") }, fmtNum(s.score, 3)),
        el("td", { class: "muted" }, (s.options || []).join(", "))))));
}

/** The envelope rspamd's scan headers carry; empty fields are left out. */
const ENVELOPE = [["IP", "client IP"], ["Helo", "HELO name"], ["From", "envelope sender"], ["Rcpt", "recipient"], ["User", "authenticated user"]];

async function renderScan(main) {
  const area = el("textarea", { id: "scan-text", "data-ro-ok": "", spellcheck: "false", placeholder: "Paste a whole message here, headers included, or choose a file." });
  const file = el("input", { type: "file", id: "scan-file", "data-ro-ok": "", accept: ".eml,.msg,.txt,message/rfc822,text/plain" });
  const env = {};
  const envRow = el("div", { class: "toolbar" }, ENVELOPE.map(([h, label]) => {
    env[h] = el("input", { type: "text", name: h, placeholder: label, "data-ro-ok": "", size: 18 });
    return env[h];
  }));
  const out = el("div", { id: "scan-result" });
  const body = () => {
    if (file.files && file.files[0]) return file.files[0];
    const t = area.value;
    if (!t.trim()) throw new ApiError(0, "Paste a message or choose a file first.");
    return t.replace(/\r?\n/g, "\r\n");
  };
  const headers = () => {
    const h = {};
    for (const [k] of ENVELOPE) if (env[k].value.trim()) h[k] = env[k].value.trim();
    return h;
  };
  const learn = (kind) => guarded(async () => {
    const r = await api(kind === "spam" ? "learnspam" : "learnham", { method: "POST", body: body(), headers: headers() });
    show(r && r.success === false ? `Not learned: ${r.error || "no reason given"}` : `Learned as ${kind}.`, r && r.success === false);
  });
  fill(main, "scan", el("section", { class: "card" },
    el("h1", {}, "Scan / learn"),
    area,
    el("div", { class: "toolbar" }, el("label", {}, "or a file: ", file)),
    el("details", {}, el("summary", { "data-ro-ok": "" }, "Envelope (optional)"), envRow),
    el("div", { class: "toolbar" },
      readButton("Scan", () => guarded(async () => {
        out.replaceChildren(el("p", { class: "muted" }, "Scanning…"));
        out.replaceChildren(verdictView(await api("checkv2", { method: "POST", body: body(), headers: headers() })));
      }), "primary", "scan-btn"),
      S.readOnly ? null : writeButton("Learn as spam", () => learn("spam"), "danger", "learn-spam"),
      S.readOnly ? null : writeButton("Learn as ham", () => learn("ham"), "", "learn-ham")),
    out));
}

// ---- history ---------------------------------------------------------------

const HISTORY_COLS = [
  ["unix_time", "Time"], ["ip", "IP"], ["sender", "From"], ["rcpt", "To"], ["subject", "Subject"],
  ["action", "Action"], ["score", "Score"], ["symbols", "Symbols"], ["size", "Size"], ["time_real", "Scan time"],
];

function historyRow(r) {
  const rcpt = r.rcpt_mime || r.rcpt_smtp || r.rcpt || [];
  const syms = Object.values(r.symbols || {}).sort((a, b) => (b.score || 0) - (a.score || 0));
  return {
    unix_time: Number(r.unix_time) || 0,
    ip: r.ip || "",
    sender: r.sender_mime || r.sender_smtp || r.sender || "",
    rcpt: Array.isArray(rcpt) ? rcpt.join(", ") : String(rcpt),
    subject: r.subject || "",
    action: r.action || "",
    score: Number(r.score) || 0,
    required: r.required_score,
    symbols: syms,
    symbolText: syms.map((s) => s.name).join(" "),
    size: Number(r.size) || 0,
    time_real: Number(r.time_real) || 0,
    id: r["message-id"] || r.id || "",
  };
}

async function renderHistory(main) {
  const h = await api("history");
  const rows = Array.isArray(h) ? h : (h && h.rows) || [];
  S.history.rows = rows.map(historyRow);
  const tbody = el("tbody");
  const filter = el("input", { type: "search", id: "history-filter", placeholder: "filter: any text, symbol or action", "data-ro-ok": "",
    value: S.history.filter, oninput: (e) => { S.history.filter = e.target.value; drawHistory(tbody); } });
  const head = el("tr", {}, HISTORY_COLS.map(([k, label]) => el("th", { class: ["score", "size", "time_real"].includes(k) ? "num" : "" },
    k === "symbols" ? label : el("button", { type: "button", "data-ro-ok": "", "data-sort": k, onclick: () => {
      S.history.desc = S.history.sort === k ? !S.history.desc : k === "unix_time" || k === "score";
      S.history.sort = k;
      drawHistory(tbody);
    } }, label))));
  fill(main, "history", el("section", { class: "card" },
    el("div", { class: "toolbar" }, el("h1", {}, "History"), filter, readButton("Refresh", () => route()),
      S.readOnly ? null : writeButton("Reset history", () => guarded(async () => {
        if (!confirm("Delete all history rows?")) return;
        await api("historyreset", { method: "POST" });
        show("History reset.");
        route();
      }), "danger", "reset-history")),
    el("table", { id: "history" }, el("thead", {}, head), tbody)));
  drawHistory(tbody);
}

function drawHistory(tbody) {
  const { sort, desc } = S.history;
  const q = S.history.filter.trim().toLowerCase();
  const rows = S.history.rows.filter((r) => !q ||
    [r.ip, r.sender, r.rcpt, r.subject, r.action, r.symbolText, r.id].some((v) => String(v).toLowerCase().includes(q)));
  rows.sort((a, b) => {
    const x = a[sort], y = b[sort];
    const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return desc ? -c : c;
  });
  for (const b of tbody.parentNode ? tbody.parentNode.querySelectorAll("th button") : []) {
    b.textContent = b.textContent.replace(/ [▲▼]$/, "") + (b.dataset.sort === sort ? (desc ? " ▼" : " ▲") : "");
  }
  tbody.replaceChildren(...(rows.length ? rows.map((r) => el("tr", {},
    el("td", {}, fmtTime(r.unix_time)), el("td", {}, r.ip), el("td", {}, r.sender), el("td", {}, r.rcpt),
    el("td", { title: r.id }, r.subject),
    el("td", { class: actionClass(r.action) }, r.action),
    el("td", { class: "num" }, fmtNum(r.score, 2), r.required !== undefined ? el("span", { class: "muted" }, " / " + fmtNum(r.required, 2)) : null),
    el("td", {}, r.symbols.map((s) => el("span", { class: "sym " + (s.score > 0 ? "pos" : s.score < 0 ? "neg" : ""), title: (s.options || []).join(", ") },
      `${s.name}(${fmtNum(s.score, 2)})`))),
    el("td", { class: "num" }, fmtNum(r.size, 0)),
    el("td", { class: "num" }, r.time_real ? fmtNum(r.time_real * 1000, 1) + " ms" : "")))
    : [el("tr", {}, el("td", { colspan: HISTORY_COLS.length, class: "muted" }, S.history.rows.length ? "No row matches the filter." : "No history yet."))]));
}

// ---- errors ----------------------------------------------------------------

async function renderErrors(main) {
  const errs = await api("errors");
  const rows = (Array.isArray(errs) ? errs : []).slice().sort((a, b) => (b.ts || 0) - (a.ts || 0));
  fill(main, "errors", el("section", { class: "card" },
    el("div", { class: "toolbar" }, el("h1", {}, "Errors"), readButton("Refresh", () => route())),
    el("table", { id: "errors" }, el("tr", {}, el("th", {}, "Time"), el("th", {}, "Type"), el("th", {}, "Module"), el("th", {}, "Message")),
      rows.length ? rows.map((e) => el("tr", {}, el("td", {}, fmtTime(e.ts)), el("td", {}, e.type || ""),
        el("td", {}, e.module || ""), el("td", {}, e.message || "")))
        : el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No errors recorded.")))));
}

// ---- greylist entries and bans (mxguard's own) ------------------------------

/**
 * A table of whatever fields the API lists; `keyField` names the one the
 * removal request identifies the entry by.
 */
function entryTable(id, rows, keyField, removePath, what) {
  if (!rows.length) return el("p", { class: "muted", id }, `No ${what}.`);
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const isTime = (k) => /(^|_)(time|ts|first|last|seen|expires|until|since|created|updated)($|_)/.test(k);
  return el("table", { id },
    el("tr", {}, cols.map((c) => el("th", {}, c.replace(/_/g, " "))), S.readOnly ? null : el("th", {}, "")),
    rows.map((r) => el("tr", { "data-key": String(r[keyField] ?? "") },
      cols.map((c) => el("td", {}, cellText(c, r[c], isTime))),
      S.readOnly ? null : el("td", {}, writeButton("Remove", () => guarded(async () => {
        await api(removePath, { method: "POST", body: JSON.stringify({ [keyField]: r[keyField] }), headers: { "Content-Type": "application/json" } });
        show(`Removed ${r[keyField]}.`);
        route();
      }), "danger")))));
}

function cellText(name, v, isTime) {
  if (v === null || v === undefined) return "";
  if (isTime(name) && typeof v === "number" && v > 1e8) return fmtTime(v);
  if (Array.isArray(v)) return v.map((x) => cellText(name, x, isTime)).join(", ");
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => `${k.replace(/_/g, " ")}: ${cellText(k, x, isTime)}`).join(", ");
  return String(v);
}

async function renderBlocks(main) {
  const [grey, bans] = await Promise.all([api("greylist").catch((e) => e), api("bans").catch((e) => e)]);
  const part = (title, data, id, key, path, what) => el("section", { class: "card" }, el("h2", {}, title),
    // 503: that part is not running in this serve, which is a state, not a fault.
    data instanceof Error ? el("p", { class: data.status === 503 ? "muted" : "error", id }, data.message)
      : entryTable(id, Array.isArray(data) ? data : (data && (data.entries || data.rows)) || [], key, path, what));
  fill(main, "blocks",
    el("div", { class: "toolbar" }, el("h1", {}, "Greylist & bans"), readButton("Refresh", () => route())),
    part("Greylist entries", grey, "greylist", "key", "greylist/delete", "greylist entries"),
    part("Bans", bans, "bans", "ip", "bans/delete", "active bans"));
}

const RENDER = {
  status: renderStatus, graph: renderGraph, config: renderConfig, symbols: renderSymbols,
  scan: renderScan, history: renderHistory, errors: renderErrors, blocks: renderBlocks,
};

// ---- start -----------------------------------------------------------------

document.getElementById("login").addEventListener("submit", (e) => {
  e.preventDefault();
  const pw = document.getElementById("password").value;
  login(pw).catch((err) => loggedOut(err.status === 429 ? "Too many failed logins: wait a minute and try again."
    : err.status === 401 || err.status === 403 ? "Wrong password." : err.message));
});
document.getElementById("logout").addEventListener("click", () => {
  const done = () => loggedOut("");
  if (S.csrf) api("logout", { method: "POST" }).then(done, done); else done();
});
window.addEventListener("hashchange", route);

// A session cookie still valid, or an address in `secure_ip`, needs no login.
api("auth").then((auth) => {
  if (auth && auth.auth === "ok") enter(auth); else loggedOut("");
}, () => loggedOut(""));
