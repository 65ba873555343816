// Runs server/static/app.js in node against a live server with a tiny DOM stand-in (no browser here).
// Usage: node dashboard_smoke.js <base-url> <path-to-app.js>; prints a JSON summary of what it rendered.
"use strict";
const fs = require("fs");
const vm = require("vm");
const [base, appPath] = process.argv.slice(2);

class Node_ {
  constructor(tag, ns = null) {
    this.tagName = tag.toUpperCase(); this.ns = ns; this.attrs = {}; this.children = [];
    this.parentNode = null; this._text = ""; this.listeners = {}; this.hidden = false; this.value = "";
  }
  setAttribute(k, v) { this.attrs[k] = String(v); if (k === "id") byId[v] = this; }
  getAttribute(k) { return k in this.attrs ? this.attrs[k] : null; }
  append(...nodes) { for (const n of nodes) this.appendChild(n); }
  appendChild(n) { n.parentNode = this; this.children.push(n); return n; }
  insertBefore(n, ref) {
    n.parentNode = this;
    const i = ref ? this.children.indexOf(ref) : -1;
    if (i < 0) this.children.push(n); else this.children.splice(i, 0, n);
    return n;
  }
  removeChild(n) { this.children = this.children.filter((c) => c !== n); n.parentNode = null; return n; }
  get firstChild() { return this.children[0] || null; }
  get lastChild() { return this.children[this.children.length - 1] || null; }
  set textContent(t) { this.children = []; this._text = String(t); }
  get textContent() { return this._text + this.children.map((c) => c.textContent).join(""); }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  *walk() { for (const c of this.children) { yield c; yield* c.walk(); } }
  querySelectorAll(sel) {
    const parts = sel.trim().split(/\s+(?![^\[]*\])/).map(parse);
    const out = [];
    for (const el of this.walk()) {
      if (!match(el, parts[parts.length - 1])) continue;
      let i = parts.length - 2, p = el.parentNode;
      while (i >= 0 && p) { if (match(p, parts[i])) i--; p = p.parentNode; }
      if (i < 0) out.push(el);
    }
    return out;
  }
  querySelector(sel) { return this.querySelectorAll(sel)[0] || null; }
}
function parse(part) {
  const m = part.match(/^(#[\w-]+)?([a-z]+)?(?:\[([\w-]+)="((?:[^"\\]|\\.)*)"\])?$/);
  if (!m) throw new Error("selector not supported: " + part);
  return { id: m[1] && m[1].slice(1), tag: m[2], attr: m[3], value: m[4] && m[4].replace(/\\(.)/g, "$1") };
}
function match(el, p) {
  if (p.id && el.attrs.id !== p.id) return false;
  if (p.tag && el.tagName !== p.tag.toUpperCase()) return false;
  if (p.attr && el.attrs[p.attr] !== p.value) return false;
  return true;
}
const byId = {};
const body = new Node_("body");
function mk(tag, id, parent = body) { const n = new Node_(tag); n.setAttribute("id", id); parent.appendChild(n); return n; }
for (const id of ["login", "dashboard", "login-form", "login-key", "login-error", "live-status", "live-status-text",
  "counts-total", "ticker", "system-banner", "system-banner-text", "system-banner-detail"]) mk("div", id);
mk("tbody", "cameras-body"); mk("tbody", "counts-body"); mk("svg", "chart");
const document = {
  body,
  getElementById: (id) => byId[id] || null,
  createElement: (t) => new Node_(t),
  createElementNS: (ns, t) => new Node_(t, ns),
  createTextNode: (t) => { const n = new Node_("#text"); n.textContent = t; return n; },
  querySelector: (s) => body.querySelector(s),
  addEventListener: (type, fn) => { if (type === "DOMContentLoaded") setTimeout(fn, 0); },
};
let source = null;
class EventSource {
  constructor(url) { this.url = url; this.listeners = {}; source = this; }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  emit(type, data) { for (const fn of this.listeners[type] || []) fn({ data: JSON.stringify(data) }); }
  close() {}
}
const timers = [];
const sandbox = {
  document, EventSource, URLSearchParams, console, JSON, Math, Date, Promise, Map, Set, Object, String, Number,
  CSS: { escape: (s) => String(s).replace(/["\\]/g, "\\$&") },
  fetch: (path, opts) => fetch(base + path, opts),
  setTimeout, setInterval: (fn, ms) => { timers.push(fn); return 0; },
};
vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(appPath, "utf8"), sandbox);

function until(pred, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => (pred() ? resolve() : Date.now() - t0 > ms ? reject(new Error("timeout")) : setTimeout(tick, 20));
    tick();
  });
}
(async () => {
  await until(() => body.attrs["data-ready"] === "true");
  await until(() => byId["system-banner"].getAttribute("data-problem") !== null);  // the first /health poll
  const total0 = Number(byId["counts-total"].getAttribute("data-count"));
  const now = new Date().toISOString();
  source.emit("line_crossing", { kind: "line_crossing", camera_id: "cam-1", line_id: "l1", direction: "in",
    class_name: "car", ts: now, seq: 99, event_id: "x" });
  source.emit("camera_status", { kind: "camera_status", camera_id: "cam-1", fps_processed: 9.5, outbox_depth: 4 });
  const cam = body.querySelector('#cameras-body tr[data-camera-id="cam-1"]');
  const cell = (tr, f) => tr.querySelector(`[data-field="${f}"]`).getAttribute("data-value");
  const bars = byId["chart"].children.filter((c) => c.tagName === "RECT");
  console.log(JSON.stringify({
    login_hidden: byId["login"].hidden, dashboard_hidden: byId["dashboard"].hidden, total_before: total0,
    total_after: Number(byId["counts-total"].getAttribute("data-count")),
    row_count: Number(cell(body.querySelector('#counts-body tr[data-count-key="cam-1|l1|in|car"]'), "count")),
    camera_state: cell(cam, "state"), committed_seq: Number(cell(cam, "committed_seq")),
    fps: Number(cell(cam, "fps")), outbox: Number(cell(cam, "outbox_depth")),
    bars: bars.length, bar_sum: bars.reduce((a, b) => a + Number(b.getAttribute("data-count")), 0),
    ticker: byId["ticker"].children.length,
    banner_hidden: byId["system-banner"].hidden, banner_problem: byId["system-banner"].getAttribute("data-problem"),
    banner_text: byId["system-banner-text"].textContent, banner_detail: byId["system-banner-detail"].textContent,
  }));
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
