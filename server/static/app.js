// citywatch dashboard core: plain JS, no libraries. The session, the one live stream (SSE) and the
// operator's camera table, live counts, per-minute chart and ticker. Counts load from the API, then the
// stream increments them. Every number has a stable id or data attribute so tests can read it.
// The feature modules under /static/js/ (map, alerts, camera panel, planner) build on `globalThis.cw`:
// `cw.on(kind, fn)` for live events ("start" when signed in), `cw.api`, `cw.role`, `cw.config`.
"use strict";

const API = "/api/v1";
const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const counts = new Map(); // key "cam|line|dir|class" -> count
let countsSince = 0; // ms: SSE events older than the last counts query are already included
let chartBuckets = new Map(); // minute start (ms) -> count
let source = null;

const cw = (globalThis.cw = globalThis.cw || {});
cw.handlers = cw.handlers || {};
cw.role = null;
cw.config = { timezone: "Asia/Ho_Chi_Minh", map: { tiles_url: null }, cameras: [], pcu_weights: {} };
cw.on = (kind, fn) => { (cw.handlers[kind] = cw.handlers[kind] || []).push(fn); };
cw.emit = (kind, data) => {
  for (const fn of cw.handlers[kind] || []) {
    try { fn(data); } catch (e) { console.error(kind, e); }
  }
};
const LIVE_KINDS = ["line_crossing", "camera_status", "camera_state", "incident_alert", "incident_status",
  "incident_escalated", "zone_occupancy", "movement", "count_total", "dropped"];

const DIR_LABEL = { in: "vào / in", out: "ra / out" };
const CLASS_LABEL = {
  car: "ô tô / car", truck: "xe tải / truck", bus: "xe buýt / bus",
  motorcycle: "xe máy / motorcycle", bicycle: "xe đạp / bicycle", person: "người đi bộ / person",
};
const STATE_LABEL = {
  online: "trực tuyến / online", offline: "ngoại tuyến / offline",
  unknown: "chưa rõ / unknown", stale: "mất tín hiệu / stale",
};

function el(tag, attrs = {}, text = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== null) e.textContent = text;
  return e;
}

function svg(tag, attrs = {}, text = null) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== null) e.textContent = text;
  return e;
}

// Times are shown in the city's time zone (server.timezone), never the browser's.
function fmtTime(iso, opts = {}) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString("vi-VN", { hour12: false, timeZone: cw.config.timezone, ...opts });
}
cw.fmtTime = fmtTime;

async function api(path, options = {}) {
  const r = await fetch(API + path, { credentials: "same-origin", ...options });
  if (r.status === 401) {
    showLogin();
    throw new Error("unauthorised");
  }
  if (!r.ok) {
    let detail = "";
    try { detail = JSON.stringify((await r.json()).detail); } catch (e) { /* not JSON */ }
    const err = new Error(`${path}: HTTP ${r.status} ${detail}`);
    err.status = r.status;
    throw err;
  }
  return r.json();
}
cw.api = api;

// --- login ------------------------------------------------------------------------------------
function showLogin() {
  document.getElementById("login").hidden = false;
  document.getElementById("dashboard").hidden = true;
  if (source) { source.close(); source = null; }
  document.body.setAttribute("data-ready", "false");
  cw.emit("logout", null);
}

async function login(ev) {
  ev.preventDefault();
  const key = document.getElementById("login-key").value;
  const r = await fetch(API + "/session", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ key }),
  });
  if (!r.ok) {
    const err = document.getElementById("login-error");
    err.textContent = "Khóa không hợp lệ / Invalid key";
    err.setAttribute("data-state", "invalid");
    return;
  }
  document.getElementById("login-key").value = "";
  document.getElementById("login-error").textContent = "";
  document.getElementById("login-error").setAttribute("data-state", "");
  start();
}

// --- cameras ----------------------------------------------------------------------------------
function cameraRow(cam) {
  let tr = document.querySelector(`#cameras-body tr[data-camera-id="${CSS.escape(cam.id)}"]`);
  if (!tr) {
    tr = el("tr", { "data-camera-id": cam.id });
    tr.append(
      el("td", { "data-field": "name" }),
      el("td", { "data-field": "state" }),
      el("td", { "data-field": "last_seen" }),
      el("td", { "data-field": "committed_seq", class: "num" }),
      el("td", { "data-field": "fps", class: "num" }),
      el("td", { "data-field": "outbox_depth", class: "num" }),
    );
    document.getElementById("cameras-body").append(tr);
  }
  return tr;
}

function setCell(tr, field, text, value = null) {
  const td = tr.querySelector(`[data-field="${field}"]`);
  td.textContent = text;
  if (value !== null) td.setAttribute("data-value", String(value));
}

function setState(tr, state) {
  const td = tr.querySelector('[data-field="state"]');
  td.textContent = "";
  td.setAttribute("data-value", state);
  td.append(el("span", { class: `state state-${state}` }, STATE_LABEL[state] || state));
}

function renderCamera(cam) {
  const tr = cameraRow(cam);
  setCell(tr, "name", cam.name && cam.name !== cam.id ? `${cam.name} (${cam.id})` : cam.id);
  setState(tr, cam.stale ? "stale" : cam.state);
  setCell(tr, "last_seen", fmtTime(cam.last_seen), cam.last_seen || "");
  setCell(tr, "committed_seq", String(cam.committed_seq), cam.committed_seq);
  const st = cam.status || {};
  setCell(tr, "fps", st.fps_processed != null ? st.fps_processed.toFixed(1) : "—", st.fps_processed ?? "");
  setCell(tr, "outbox_depth", st.outbox_depth != null ? String(st.outbox_depth) : "—", st.outbox_depth ?? "");
}

async function loadCameras() {
  const data = await api("/cameras");
  for (const cam of data.cameras) renderCamera(cam);
}

// --- counts -----------------------------------------------------------------------------------
function countKey(r) { return [r.camera_id, r.line_id, r.direction, r.class_name].join("|"); }

function renderCounts() {
  const body = document.getElementById("counts-body");
  const keys = [...counts.keys()].sort();
  let total = 0;
  for (const key of keys) {
    const n = counts.get(key);
    total += n;
    let tr = body.querySelector(`tr[data-count-key="${CSS.escape(key)}"]`);
    if (!tr) {
      const [cam, line, dir, cls] = key.split("|");
      tr = el("tr", {
        "data-count-key": key, "data-camera-id": cam, "data-line-id": line,
        "data-direction": dir, "data-class-name": cls,
      });
      tr.append(el("td", {}, cam), el("td", {}, line), el("td", {}, DIR_LABEL[dir] || dir),
        el("td", {}, CLASS_LABEL[cls] || cls), el("td", { "data-field": "count", class: "num" }));
      // keep rows sorted by key
      const next = [...body.children].find((row) => row.getAttribute("data-count-key") > key);
      body.insertBefore(tr, next || null);
    }
    const td = tr.querySelector('[data-field="count"]');
    td.textContent = String(n);
    td.setAttribute("data-value", String(n));
  }
  const t = document.getElementById("counts-total");
  t.textContent = String(total);
  t.setAttribute("data-count", String(total));
}

async function loadCounts() {
  const to = new Date();
  const from = new Date(to.getTime() - 24 * HOUR);
  const q = new URLSearchParams({ bucket: "total", from: from.toISOString(), to: to.toISOString() });
  const data = await api("/counts?" + q);
  counts.clear();
  for (const r of data.rows) counts.set(countKey(r), r.count);
  countsSince = to.getTime();
  renderCounts();
}

// --- chart ------------------------------------------------------------------------------------
function minuteStart(ms) { return Math.floor(ms / MINUTE) * MINUTE; }

async function loadChart() {
  const to = new Date(minuteStart(Date.now()) + MINUTE);
  const from = new Date(to.getTime() - HOUR);
  const q = new URLSearchParams({ bucket: "1m", from: from.toISOString(), to: to.toISOString() });
  const data = await api("/counts?" + q);
  chartBuckets = new Map();
  for (const r of data.rows) {
    const k = new Date(r.bucket_start).getTime();
    chartBuckets.set(k, (chartBuckets.get(k) || 0) + r.count);
  }
  renderChart();
}

function renderChart() {
  const chart = document.getElementById("chart");
  while (chart.firstChild) chart.removeChild(chart.firstChild);
  const W = 600, H = 160, left = 30, bottom = 20, top = 8;
  const end = minuteStart(Date.now());
  const starts = [];
  for (let i = 59; i >= 0; i--) starts.push(end - i * MINUTE);
  const max = Math.max(1, ...starts.map((s) => chartBuckets.get(s) || 0));
  const bw = (W - left) / 60;
  chart.append(svg("line", { class: "axis", x1: left, y1: H - bottom, x2: W, y2: H - bottom }));
  chart.append(svg("text", { x: 2, y: top + 8 }, String(max)));
  chart.append(svg("text", { x: 2, y: H - bottom }, "0"));
  starts.forEach((s, i) => {
    const n = chartBuckets.get(s) || 0;
    const h = ((H - bottom - top) * n) / max;
    const rect = svg("rect", {
      class: "bar", x: (left + i * bw + 1).toFixed(1), y: (H - bottom - h).toFixed(1),
      width: Math.max(1, bw - 2).toFixed(1), height: h.toFixed(1),
      "data-bucket-start": new Date(s).toISOString(), "data-count": n,
    });
    const at = new Date(s).toLocaleTimeString("vi-VN", { hour12: false, timeZone: cw.config.timezone });
    rect.append(svg("title", {}, `${at}: ${n}`));
    chart.append(rect);
    if (i % 15 === 0) {
      const label = new Date(s).toLocaleTimeString("vi-VN", {
        hour: "2-digit", minute: "2-digit", hour12: false, timeZone: cw.config.timezone });
      chart.append(svg("text", { x: left + i * bw, y: H - 5 }, label));
    }
  });
}

// --- live stream ------------------------------------------------------------------------------
function addTicker(text, iso) {
  const ul = document.getElementById("ticker");
  const li = el("li");
  li.append(el("span", { class: "time" }, fmtTime(iso)), document.createTextNode(text));
  ul.insertBefore(li, ul.firstChild);
  while (ul.children.length > 50) ul.removeChild(ul.lastChild);
}

function onCrossing(ev) {
  const tsMs = new Date(ev.ts).getTime();
  if (tsMs >= countsSince) {
    const k = countKey(ev);
    counts.set(k, (counts.get(k) || 0) + 1);
    renderCounts();
  }
  const m = minuteStart(tsMs);
  if (m >= minuteStart(Date.now()) - 59 * MINUTE) {
    chartBuckets.set(m, (chartBuckets.get(m) || 0) + 1);
    renderChart();
  }
  addTicker(`${ev.camera_id} · ${ev.line_id} · ${DIR_LABEL[ev.direction] || ev.direction} · `
    + `${CLASS_LABEL[ev.class_name] || ev.class_name}`, ev.ts);
}

function onStatus(ev) {
  const tr = document.querySelector(`#cameras-body tr[data-camera-id="${CSS.escape(ev.camera_id)}"]`);
  if (!tr) { loadCameras().catch(() => {}); return; }
  setState(tr, "online");
  setCell(tr, "last_seen", fmtTime(new Date().toISOString()), new Date().toISOString());
  setCell(tr, "fps", ev.fps_processed.toFixed(1), ev.fps_processed);
  setCell(tr, "outbox_depth", String(ev.outbox_depth), ev.outbox_depth);
}

function setLive(state, text) {
  const s = document.getElementById("live-status");
  s.setAttribute("data-state", state);
  document.getElementById("live-status-text").textContent = text;
}

function connectLive() {
  if (source) source.close();
  source = new EventSource(API + "/events/live", { withCredentials: true });
  source.onopen = () => setLive("open", "Trực tiếp / Live");
  source.onerror = () => setLive("error", "Mất kết nối, đang thử lại / Disconnected, retrying");
  source.addEventListener("line_crossing", (m) => onCrossing(JSON.parse(m.data)));
  source.addEventListener("camera_status", (m) => onStatus(JSON.parse(m.data)));
  source.addEventListener("camera_state", () => loadCameras().catch(() => {}));
  source.addEventListener("dropped", () => { loadCounts().catch(() => {}); loadChart().catch(() => {}); });
  for (const kind of LIVE_KINDS) {
    source.addEventListener(kind, (m) => cw.emit(kind, JSON.parse(m.data)));
  }
}

// --- start ------------------------------------------------------------------------------------
async function start() {
  let who;
  try {
    who = await api("/session");
  } catch (e) {
    return; // login shown
  }
  cw.role = who.role;
  cw.mode = who.mode;
  document.body.setAttribute("data-role", who.role);
  try {
    cw.config = await api("/ui-config");
  } catch (e) {
    console.error(e); // keep the defaults
  }
  document.getElementById("login").hidden = true;
  document.getElementById("dashboard").hidden = false;
  connectLive();
  cw.emit("start", { role: cw.role, mode: cw.mode, config: cw.config });
  await Promise.all([loadCameras(), loadCounts(), loadChart()]).catch((e) => console.error(e));
  document.body.setAttribute("data-ready", "true");
}
cw.start = start;
cw.showLogin = showLogin;

// --- system health banner ---------------------------------------------------------------------
// /health needs no key; it answers 503 with a body when the database fails, so read it either way.
const HEALTH_TEXT = {
  db_down: "Mất kết nối cơ sở dữ liệu / Database unreachable",
  db_slow: "Cơ sở dữ liệu không phản hồi / Database not answering",
  stalled: "Dữ liệu đến bị ùn, chưa được lưu / Ingest stalled",
  retrying: "Đang thử ghi lại dữ liệu / Ingest retrying database writes",
  disconnected: "Mất kết nối MQTT / Ingest disconnected from the broker",
  degraded: "Nhiều bản tin lỗi / Many rejected messages",
};

function healthProblem(h) {
  if (!h || h.status === "ok") return null;
  const ingest = h.ingest && h.ingest.state !== "ok" ? h.ingest.state : null;
  if (h.db && h.db.state === "down") return "db_down";
  if (ingest === "stalled") return "stalled";
  if (h.db && h.db.state === "slow") return "db_slow";
  return ingest || "degraded";
}

async function loadHealth() {
  const banner = document.getElementById("system-banner");
  let h;
  try {
    const r = await fetch(API + "/health", { credentials: "same-origin" });
    h = await r.json();
  } catch (e) {
    h = { status: "error", db: { state: "down" }, problems: ["server not reachable / máy chủ không phản hồi"] };
  }
  const problem = healthProblem(h);
  banner.setAttribute("data-status", h.status || "error");
  banner.setAttribute("data-problem", problem || "");
  banner.hidden = !problem;
  if (!problem) return true;
  document.getElementById("system-banner-text").textContent = HEALTH_TEXT[problem] || HEALTH_TEXT.degraded;
  document.getElementById("system-banner-detail").textContent = (h.problems || []).join(" · ");
  return false;
}
cw.loadHealth = loadHealth;

// every 10 s; every 3 s while a problem shows, so the banner goes soon after the problem does
async function pollHealth() {
  const ok = await loadHealth().catch(() => false);
  setTimeout(pollHealth, ok ? 10000 : 3000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login-form").addEventListener("submit", login);
  start();
  pollHealth();
  setInterval(() => loadCameras().catch(() => {}), 10000);
  setInterval(() => renderChart(), 15000);
  setInterval(() => { loadCounts().catch(() => {}); loadChart().catch(() => {}); }, 5 * MINUTE);
});
