// Live counts of the operator view: line crossings of the last 24 h per camera, line, direction and class,
// the per-minute chart of the last hour and the ticker. Counts load from the API, then the stream
// increments them. Every number has a stable id or data attribute so tests can read it.
import { CLASS_LABEL, clear, cw, DIR_LABEL, el, fmt, fmtNum, svg } from "./core.js";

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const counts = new Map(); // key "cam|line|dir|class" -> count
let countsSince = 0; // ms: SSE events older than the last counts query are already included
let chartBuckets = new Map(); // minute start (ms) -> count

function countKey(r) { return [r.camera_id, r.line_id, r.direction, r.class_name].join("|"); }

function renderCounts(relabel = false) {
  const body = document.getElementById("counts-body");
  if (relabel) clear(body);
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
      const next = [...body.children].find((row) => row.getAttribute("data-count-key") > key);
      body.insertBefore(tr, next || null);
    }
    const td = tr.querySelector('[data-field="count"]');
    td.textContent = fmtNum(n);
    td.setAttribute("data-value", String(n));
  }
  for (const id of ["counts-total", "now-crossings"]) {
    const t = document.getElementById(id);
    t.textContent = fmtNum(total);
    t.setAttribute("data-count", String(total));
  }
}

async function loadCounts() {
  const to = new Date();
  const from = new Date(to.getTime() - 24 * HOUR);
  const q = new URLSearchParams({ bucket: "total", from: from.toISOString(), to: to.toISOString() });
  const data = await cw.api("/counts?" + q);
  counts.clear();
  for (const r of data.rows) counts.set(countKey(r), r.count);
  countsSince = to.getTime();
  renderCounts();
}

function minuteStart(ms) { return Math.floor(ms / MINUTE) * MINUTE; }

async function loadChart() {
  const to = new Date(minuteStart(Date.now()) + MINUTE);
  const from = new Date(to.getTime() - HOUR);
  const q = new URLSearchParams({ bucket: "1m", from: from.toISOString(), to: to.toISOString() });
  const data = await cw.api("/counts?" + q);
  chartBuckets = new Map();
  for (const r of data.rows) {
    const k = new Date(r.bucket_start).getTime();
    chartBuckets.set(k, (chartBuckets.get(k) || 0) + r.count);
  }
  renderChart();
}

function renderChart() {
  const chart = clear(document.getElementById("chart"));
  const W = 600, H = 160, left = 34, bottom = 20, top = 8;
  const end = minuteStart(Date.now());
  const starts = [];
  for (let i = 59; i >= 0; i--) starts.push(end - i * MINUTE);
  const max = Math.max(1, ...starts.map((s) => chartBuckets.get(s) || 0));
  const bw = (W - left) / 60;
  chart.append(svg("line", { class: "axis", x1: left, y1: H - bottom, x2: W, y2: H - bottom }));
  chart.append(svg("text", { x: 2, y: top + 8 }, fmtNum(max)));
  chart.append(svg("text", { x: 2, y: H - bottom }, "0"));
  starts.forEach((s, i) => {
    const n = chartBuckets.get(s) || 0;
    const h = ((H - bottom - top) * n) / max;
    const rect = svg("rect", {
      class: "bar", x: (left + i * bw + 1).toFixed(1), y: (H - bottom - h).toFixed(1),
      width: Math.max(1, bw - 2).toFixed(1), height: h.toFixed(1),
      "data-bucket-start": new Date(s).toISOString(), "data-count": n,
    });
    rect.append(svg("title", {}, `${fmt(new Date(s), "time")}: ${fmtNum(n)}`));
    chart.append(rect);
    if (i % 15 === 0) chart.append(svg("text", { x: left + i * bw, y: H - 5 }, fmt(new Date(s), "hm")));
  });
}

function addTicker(ev) {
  const ul = document.getElementById("ticker");
  const li = el("li");
  li.append(el("span", { class: "time" }, fmt(ev.ts, "time")), document.createTextNode(
    `${ev.camera_id} · ${ev.line_id} · ${DIR_LABEL[ev.direction] || ev.direction} · ${CLASS_LABEL[ev.class_name] || ev.class_name}`));
  ul.insertBefore(li, ul.firstChild);
  while (ul.children.length > 50) ul.removeChild(ul.lastChild);
}

cw.on("line_crossing", (ev) => {
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
  addTicker(ev);
});

function reload() { return Promise.all([loadCounts(), loadChart()]).catch(() => {}); }
cw.on("start", reload);
cw.on("dropped", reload);
cw.on("refresh", reload);
cw.on("lang", () => { renderCounts(true); renderChart(); });

document.addEventListener("DOMContentLoaded", () => {
  setInterval(() => renderChart(), 15000);
  setInterval(reload, 5 * MINUTE);
});
