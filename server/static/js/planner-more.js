// Planner's workbench, continued: two-period comparison (rates per observed hour, so a camera that was
// down in one period does not read as less traffic), the hour-of-week heatmap, and the
// origin-destination matrix of one camera. All use the filters of the flow panel.
import { clear, cw, DAY_LABEL, el, fmtNum, localInputToIso, svg, t, toLocalInput } from "./core.js";
import "./planner-i18n.js";
import { fitWidth } from "./chart-axes.js";
import { filters, query, rangeProblem } from "./planner.js";

function $(id) { return document.getElementById(id); }
let lastRange = ""; // B follows the flow panel's range, A is the period before it

function common(f) {
  return { camera_id: f.camera_id, line_id: f.source === "line" ? f.line_id : "", direction: f.direction,
    class_name: f.class_name };
}

function defaultPeriods(f) {
  const to = new Date(f.to), from = new Date(f.from);
  const span = to.getTime() - from.getTime();
  $("cmp-b-from").value = toLocalInput(from);
  $("cmp-b-to").value = toLocalInput(to);
  $("cmp-a-from").value = toLocalInput(new Date(from.getTime() - span));
  $("cmp-a-to").value = toLocalInput(from);
}

function pct(v) {
  if (v === null || v === undefined) return "—";
  return `${v > 0 ? "+" : ""}${fmtNum(v, 1)} %`;
}

let lastCompare = null, lastHeat = null, lastOd = null; // answers last drawn: redrawn when the language changes

async function compare() {
  const f = filters();
  const problem = rangeProblem("cmp-a-from", "cmp-a-to") || rangeProblem("cmp-b-from", "cmp-b-to");
  if (problem) {
    lastCompare = null;
    const tr = el("tr");
    tr.append(el("td", { colspan: 4, class: "error", "data-field": "range-problem" }, problem));
    clear($("compare-table").querySelector("tbody")).append(tr);
    clear($("compare-notes"));
    return;
  }
  const q = { ...common(f), a_from: localInputToIso($("cmp-a-from").value), a_to: localInputToIso($("cmp-a-to").value),
    b_from: localInputToIso($("cmp-b-from").value), b_to: localInputToIso($("cmp-b-to").value) };
  try {
    lastCompare = await cw.api("/flow/compare?" + query(q));
  } catch (e) {
    lastCompare = null;
    const tr = el("tr");
    tr.append(el("td", { colspan: 4, class: "error" }, e.message));
    clear($("compare-table").querySelector("tbody")).append(tr);
    clear($("compare-notes"));
    return;
  }
  drawCompare(lastCompare);
}

/** Why a figure of the comparison is missing, in the operator's language (from the answer's fields). */
function compareNotes(d) {
  const out = [];
  if (!d.change.totals_comparable) {
    if (d.a.coverage === null || d.b.coverage === null) out.push(t("cmp.note_outside"));
    else out.push(t("cmp.note_unlike", { a: fmtNum(d.a.coverage * 100), b: fmtNum(d.b.coverage * 100) }));
  }
  for (const [p, x] of [["A", d.a], ["B", d.b]]) {
    if (x.per_observed_hour === null) out.push(t("cmp.note_no_rate", { p, min: 15 }));
  }
  return out;
}

function drawCompare(d) {
  const body = clear($("compare-table").querySelector("tbody"));
  const share = (v) => (v === null || v === undefined ? null : Math.round(v * 10000) / 100);
  const rows = [
    ["total", t("cmp.total"), d.a.total, d.b.total,
      d.change.totals_comparable ? pct(d.change.total_pct) : t("cmp.not_compared"), 0],
    ["pcu", t("cmp.pcu"), d.a.pcu, d.b.pcu, "", 1],
    ["observed_h", t("cmp.observed_h"), d.a.observed_h, d.b.observed_h, "", 2],
    ["coverage", t("cmp.coverage"), share(d.a.coverage), share(d.b.coverage), "", 0],
    ["per_observed_hour", t("cmp.per_hour"), d.a.per_observed_hour, d.b.per_observed_hour,
      pct(d.change.per_observed_hour_pct), 1],
    ["pcu_per_observed_hour", t("cmp.pcu_per_hour"), d.a.pcu_per_observed_hour, d.b.pcu_per_observed_hour,
      pct(d.change.pcu_per_observed_hour_pct), 1],
  ];
  for (const [key, text, a, b, change, digits] of rows) {
    const tr = el("tr", { "data-field": key });
    tr.append(el("th", {}, text),
      el("td", { class: "num", "data-period": "a", "data-value": a ?? "" }, fmtNum(a, digits)),
      el("td", { class: "num", "data-period": "b", "data-value": b ?? "" }, fmtNum(b, digits)),
      el("td", { class: "num change" }, change));
    body.append(tr);
  }
  const notes = clear($("compare-notes"));
  for (const n of compareNotes(d)) notes.append(el("li", { class: "note" }, n));
  $("compare-table").setAttribute("data-state", "ready");
}

async function heatmap(f) {
  const to = new Date(f.to);
  const from = new Date(Math.min(new Date(f.from).getTime(), to.getTime() - 28 * 86400000));
  lastHeat = { d: await cw.api("/flow/profile?" + query({ ...common(f), from: from.toISOString(), to: to.toISOString() })),
    unit: f.unit };
  drawHeatmap(lastHeat.d, lastHeat.unit);
}

function drawHeatmap(d, unitName) {
  const map = clear($("heatmap"));
  map.style.minWidth = "400px"; // scrolls sideways on a phone rather than shrinking its text to nothing
  const W = fitWidth(map, 220, 620, 400);
  const key = unitName === "pcu" ? "pcu_per_observed_hour" : "per_observed_hour";
  const vals = d.hours.map((h) => h[key]).filter((v) => v !== null);
  const max = Math.max(1e-9, ...vals);
  const L = 64, T = 18, CH = 24, CW = Math.min(48, (W - L - 8) / 24);
  for (let h = 0; h < 24; h += 3) map.append(svg("text", { class: "tick", x: L + h * CW + 2, y: T - 5 }, `${h}h`));
  DAY_LABEL.forEach((day, i) => map.append(svg("text", { class: "tick", x: 2, y: T + i * CH + 16 }, day)));
  for (const h of d.hours) {
    const v = h[key];
    const x = L + h.hour * CW, y = T + Math.floor(h.hour_of_week / 24) * CH;
    const rect = svg("rect", {
      x, y, width: CW - 2, height: CH - 2, class: v === null ? "cell gap" : "cell",
      "data-hour-of-week": h.hour_of_week, "data-value": v === null ? "" : v, "data-observed-h": h.observed_h,
      "fill-opacity": v === null ? 1 : (0.08 + 0.92 * (v / max)).toFixed(3),
    });
    rect.append(svg("title", {}, `${DAY_LABEL[Math.floor(h.hour_of_week / 24)]} ${h.hour}:00 — `
      + (v === null ? t("hm.not_observed") : t("hm.per_hour", { v: fmtNum(v, 1), h: fmtNum(h.observed_h, 1) }))));
    map.append(rect);
  }
  const unit = unitName === "pcu" ? "PCU" : t("hm.unit_vehicles");
  map.append(svg("text", { class: "tick", x: L, y: T + 7 * CH + 14 }, t("hm.scale", { max: fmtNum(max, 1), unit })));
  map.setAttribute("data-state", "ready");
  map.setAttribute("data-timezone", d.timezone);
}

async function od(f) {
  if (!f.camera_id) {
    lastOd = null;
    clear($("od-wrap")).append(el("p", { class: "muted" }, t("od.choose")));
    return;
  }
  lastOd = await cw.api("/od?" + query({ camera_id: f.camera_id, class_name: f.class_name, from: f.from, to: f.to }));
  drawOd(lastOd);
}

function drawOd(d) {
  const wrap = clear($("od-wrap"));
  if (!d.origins.length) {
    wrap.append(el("p", { class: "muted", id: "od-empty" }, t("od.empty")));
    return;
  }
  const max = Math.max(1, ...d.matrix.flat());
  const table = el("table", { id: "od-table", "data-total": d.total });
  const head = el("tr");
  head.append(el("th", {}, t("od.corner")));
  for (const dest of d.destinations) head.append(el("th", { "data-destination": dest }, dest));
  head.append(el("th", {}, t("od.total")));
  const thead = el("thead");
  thead.append(head);
  table.append(thead);
  const body = el("tbody");
  d.origins.forEach((o, i) => {
    const tr = el("tr", { "data-origin": o });
    tr.append(el("th", {}, o));
    d.destinations.forEach((dest, j) => {
      const n = d.matrix[i][j];
      const td = el("td", { class: "num od-cell", "data-origin": o, "data-destination": dest, "data-value": n },
        fmtNum(n));
      td.style.setProperty("--heat", (n / max).toFixed(3));
      tr.append(td);
    });
    tr.append(el("td", { class: "num strong" }, fmtNum(d.matrix[i].reduce((a, b) => a + b, 0))));
    body.append(tr);
  });
  table.append(body);
  wrap.append(table, el("p", { class: "muted small" }, t("od.movements", { n: fmtNum(d.total) })));
}

cw.on("planner-filters", (f) => {
  if (`${f.from}|${f.to}` !== lastRange) { defaultPeriods(f); lastRange = `${f.from}|${f.to}`; }
  compare().catch((e) => console.error(e));
  heatmap(f).catch((e) => { $("heatmap").setAttribute("data-state", "error"); console.error(e); });
  od(f).catch((e) => { clear($("od-wrap")).append(el("p", { class: "error" }, e.message)); });
});
cw.on("start", () => { lastRange = ""; lastCompare = lastHeat = lastOd = null; });
let resized = null;
window.addEventListener("resize", () => {
  clearTimeout(resized);
  resized = setTimeout(() => { if (lastHeat) drawHeatmap(lastHeat.d, lastHeat.unit); }, 200);
});
cw.on("lang", () => {
  if (lastCompare) drawCompare(lastCompare);
  if (lastHeat) drawHeatmap(lastHeat.d, lastHeat.unit);
  if (lastOd) drawOd(lastOd);
  else if ($("od-wrap").querySelector("p.muted")) clear($("od-wrap")).append(el("p", { class: "muted" }, t("od.choose")));
});

document.addEventListener("DOMContentLoaded", () => {
  $("compare-form").addEventListener("submit", (e) => { e.preventDefault(); compare(); });
});
