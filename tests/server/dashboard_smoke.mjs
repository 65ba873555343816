// Runs the dashboard's ES modules (server/static/app.js and what it imports) in node against a live server
// with a tiny DOM stand-in (no browser here). Usage: node dashboard_smoke.mjs <base-url> <path-to-app.js>,
// where app.js sits in a copy of server/static that has a package.json saying "type": "module"; prints a
// JSON summary of what the page rendered.
import { pathToFileURL } from "node:url";

const [base, appPath] = process.argv.slice(2);

// --- selectors: tag, #id, .class, [attr], [attr="v"], compounds, descendants ("a > b" read as "a b") ---
function parse(part) {
  const out = { tag: null, id: null, classes: [], attrs: [] };
  const re = /([a-zA-Z][\w-]*)|#([\w-]+)|\.([\w-]+)|\[([\w-]+)(?:="((?:[^"\\]|\\.)*)")?\]/gy;
  let m;
  let seen = 0;
  while ((m = re.exec(part))) {
    seen = re.lastIndex;
    if (m[1]) out.tag = m[1].toUpperCase();
    else if (m[2]) out.id = m[2];
    else if (m[3]) out.classes.push(m[3]);
    else out.attrs.push([m[4], m[5] === undefined ? null : m[5].replace(/\\(.)/g, "$1")]);
  }
  if (seen !== part.length) throw new Error("selector not supported: " + part);
  return out;
}
function match(el, p) {
  if (el.tagName === "#TEXT") return false;
  if (p.tag && el.tagName !== p.tag) return false;
  if (p.id && el.attrs.id !== p.id) return false;
  for (const c of p.classes) if (!el.classList.contains(c)) return false;
  for (const [k, v] of p.attrs) if (!(k in el.attrs) || (v !== null && el.attrs[k] !== v)) return false;
  return true;
}
function selectorParts(sel) {
  return sel.trim().replace(/\s*>\s*/g, " ").split(/\s+(?![^[]*\])/).map(parse);
}

const byId = {};
class ClassList {
  constructor(el) { this.el = el; }
  get list() { return (this.el.attrs.class || "").split(/\s+/).filter(Boolean); }
  contains(c) { return this.list.includes(c); }
  add(c) { if (!this.contains(c)) this.el.attrs.class = [...this.list, c].join(" "); }
  remove(c) { this.el.attrs.class = this.list.filter((x) => x !== c).join(" "); }
  toggle(c, on) { if (on === undefined ? !this.contains(c) : on) this.add(c); else this.remove(c); }
}
class Node_ {
  constructor(tag) {
    this.tagName = tag.toUpperCase(); this.attrs = {}; this.children = []; this.parentNode = null; this._text = "";
    this.listeners = {}; this.hidden = false; this.value = ""; this.disabled = false; this.checked = false;
    this.classList = new ClassList(this); this.scrollTop = 0;
  }
  get className() { return this.attrs.class || ""; }
  set className(v) { this.attrs.class = String(v); }
  setAttribute(k, v) { this.attrs[k] = String(v); if (k === "id") byId[v] = this; }
  getAttribute(k) { return k in this.attrs ? this.attrs[k] : null; }
  removeAttribute(k) { delete this.attrs[k]; }
  append(...nodes) { for (const n of nodes) this.appendChild(n); }
  appendChild(n) { if (n.parentNode) n.parentNode.removeChild(n); n.parentNode = this; this.children.push(n); return n; }
  insertBefore(n, ref) {
    n.parentNode = this;
    const i = ref ? this.children.indexOf(ref) : -1;
    if (i < 0) this.children.push(n); else this.children.splice(i, 0, n);
    return n;
  }
  removeChild(n) { this.children = this.children.filter((c) => c !== n); n.parentNode = null; return n; }
  remove() { if (this.parentNode) this.parentNode.removeChild(this); }
  replaceWith(n) {
    const p = this.parentNode;
    if (!p) return;
    p.children[p.children.indexOf(this)] = n;
    n.parentNode = p;
    this.parentNode = null;
  }
  get firstChild() { return this.children[0] || null; }
  get lastChild() { return this.children[this.children.length - 1] || null; }
  set textContent(t) { this.children = []; this._text = String(t); }
  get textContent() { return this._text + this.children.map((c) => c.textContent).join(""); }
  set title(t) { this.attrs.title = String(t); }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  focus() {}
  scrollIntoView() {}
  contains(n) { for (let p = n; p; p = p.parentNode) if (p === this) return true; return false; }
  closest(sel) {
    const p = parse(sel);
    for (let e = this; e; e = e.parentNode) if (match(e, p)) return e;
    return null;
  }
  *walk() { for (const c of this.children) { yield c; yield* c.walk(); } }
  querySelectorAll(sel) {
    const out = [];
    for (const one of sel.split(",")) {
      const parts = selectorParts(one);
      for (const el of this.walk()) {
        if (!match(el, parts[parts.length - 1]) || out.includes(el)) continue;
        let i = parts.length - 2, p = el.parentNode;
        while (i >= 0 && p) { if (match(p, parts[i])) i--; p = p.parentNode; }
        if (i < 0) out.push(el);
      }
    }
    return out;
  }
  querySelector(sel) { return this.querySelectorAll(sel)[0] || null; }
}

const html = new Node_("html");
const body = new Node_("body");
html.appendChild(body);
const loaded = [];
const document = {
  body, documentElement: html, readyState: "loading", title: "", activeElement: null,
  // an element the page asks for by id is created on first use, in the body
  getElementById: (id) => byId[id] || (() => { const n = new Node_("div"); n.setAttribute("id", id); body.appendChild(n); return n; })(),
  createElement: (t) => new Node_(t),
  createElementNS: (ns, t) => new Node_(t),
  createTextNode: (t) => { const n = new Node_("#text"); n.textContent = t; return n; },
  querySelector: (s) => html.querySelector(s),
  querySelectorAll: (s) => html.querySelectorAll(s),
  addEventListener: (type, fn) => { if (type === "DOMContentLoaded") loaded.push(fn); },
};
for (const [tag, id] of [["tbody", "cameras-body"], ["tbody", "engineer-body"], ["tbody", "counts-body"], ["svg", "chart"],
  ["svg", "camera-map"], ["ul", "alerts-list"], ["ul", "ticker"], ["input", "operator-name"], ["input", "login-name"]]) {
  document.getElementById(id).tagName = tag.toUpperCase();
}
let source = null;
class EventSource {
  constructor(url) { this.url = url; this.listeners = {}; source = this; setTimeout(() => this.onopen && this.onopen(), 0); }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  emit(type, data) { for (const fn of this.listeners[type] || []) fn({ data: JSON.stringify(data) }); }
  close() {}
}
const store = new Map();
const realFetch = globalThis.fetch;
Object.assign(globalThis, {
  document, EventSource,
  window: { addEventListener() {} },
  location: { hash: "" },
  localStorage: { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, String(v)), removeItem: (k) => store.delete(k) },
  CSS: { escape: (s) => String(s).replace(/["\\]/g, "\\$&") },
  fetch: (path, opts) => realFetch(base + path, opts),
  setInterval: () => 0, // periodic refreshes are not needed for one pass
});

function until(pred, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => (pred() ? resolve() : Date.now() - t0 > ms ? reject(new Error("timeout")) : setTimeout(tick, 20));
    tick();
  });
}

await import(pathToFileURL(appPath).href);
document.readyState = "interactive";
for (const fn of loaded) fn();

await until(() => body.attrs["data-ready"] === "true");
await until(() => byId["system-banner"].getAttribute("data-problem") !== null); // the first /health poll
await until(() => body.querySelector('#cameras-body tr[data-camera-id="cam-1"]') !== null);
await new Promise((r) => setTimeout(r, 600)); // the start-up refreshes are done: what follows is the live event
const total0 = Number(byId["counts-total"].getAttribute("data-count"));
const now = new Date().toISOString();
source.emit("line_crossing", { kind: "line_crossing", camera_id: "cam-1", line_id: "l1", direction: "in",
  class_name: "car", ts: now, seq: 99, event_id: "x" });
source.emit("camera_status", { kind: "camera_status", camera_id: "cam-1", source_state: "ok", tamper: [],
  fps_in: 10.0, fps_processed: 9.5, outbox_depth: 4 });
const $ = (id) => document.getElementById(id);
const row = (tbody) => body.querySelector(`#${tbody} tr[data-camera-id="cam-1"]`);
const cell = (tr, f) => tr.querySelector(`[data-field="${f}"]`).getAttribute("data-value");
await until(() => cell(row("cameras-body"), "fps") === "9.5");
const bars = $("chart").children.filter((c) => c.tagName === "RECT");
console.log(JSON.stringify({
  login_hidden: $("login").hidden, dashboard_hidden: $("dashboard").hidden, total_before: total0,
  total_after: Number($("counts-total").getAttribute("data-count")),
  row_count: Number(cell(body.querySelector('#counts-body tr[data-count-key="cam-1|l1|in|car"]'), "count")),
  camera_state: cell(row("cameras-body"), "state"), health: cell(row("cameras-body"), "health"),
  committed_seq: Number(cell(row("engineer-body"), "committed_seq")),
  fps: Number(cell(row("cameras-body"), "fps")), outbox: Number(cell(row("engineer-body"), "outbox_depth")),
  bars: bars.length, bar_sum: bars.reduce((a, b) => a + Number(b.getAttribute("data-count")), 0),
  ticker: $("ticker").children.length,
  banner_hidden: $("system-banner").hidden, banner_problem: $("system-banner").getAttribute("data-problem"),
  banner_text: $("system-banner-text").textContent, banner_detail: $("system-banner-detail").textContent,
}));
process.exit(0);
