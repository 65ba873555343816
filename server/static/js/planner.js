// Planner's workbench: flow history by camera, line or lane, direction and class, in vehicles or PCU,
// for any bucket and date range (read as the city's wall-clock time). Bars are stacked by class; a bucket
// the camera did not observe at all is drawn as a hatched gap, not as zero; one before the camera existed
// or still to come is drawn as such (the states of /coverage). A range too long for its bucket is drawn
// at the coarser bucket /coverage answers with, and says so. CSV and FIWARE exports use the same query.
import { fitWidth, labelIndexes, niceTicks } from "./chart-axes.js";
import {
  CLASS_COLOUR, CLASS_LABEL, clear, cw, el, fmtNum, fmtShort, localInputToIso, svg, t, toLocalInput,
} from "./core.js";
import "./planner-i18n.js";

const H = 260, LEFT = 52, BOTTOM = 40, TOP = 12, RIGHT = 8, X_LABEL_PX = 84;
let ready = false;
let last = null; // the series last drawn and its filters: redrawn as they were when the language changes

function $(id) { return document.getElementById(id); }

/** The current filters as API parameters (shared with the comparison, heatmap and OD panels). */
export function filters() {
  return {
    camera_id: $("pf-camera").value, source: $("pf-source").value, line_id: $("pf-line").value,
    lane_id: $("pf-lane").value, direction: $("pf-direction").value, class_name: $("pf-class").value,
    bucket: $("pf-bucket").value, unit: $("pf-unit").value,
    from: localInputToIso($("pf-from").value), to: localInputToIso($("pf-to").value),
  };
}

/** What is wrong with the time range in two time fields, in the reader's language; null when nothing. */
export function rangeProblem(fromId, toId) {
  const texts = [$(fromId).value.trim(), $(toId).value.trim()];
  if (!texts[0] || !texts[1]) return t("pf.choose_range");
  const [from, to] = texts.map(localInputToIso);
  const unread = texts.find((text, i) => ![from, to][i]);
  if (unread !== undefined) return t("pf.bad_time", { text: unread, example: toLocalInput(new Date()) });
  return new Date(from) < new Date(to) ? null : t("pf.range_order");
}

export function query(obj) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  return q;
}

function option(sel, value, text) { sel.append(el("option", { value }, text)); }

function fillCameraDependent() {
  const cam = (cw.config.cameras || []).find((c) => c.id === $("pf-camera").value);
  const line = clear($("pf-line")), lane = clear($("pf-lane"));
  option(line, "", t("pf.all"));
  for (const l of cam ? cam.lines : []) option(line, l.id, l.id);
  for (const id of cam ? cam.lanes : []) option(lane, id, id);
  const lanes = cam ? cam.lanes.length : 0;
  $("pf-source").querySelector('option[value="lane"]').disabled = lanes === 0;
  if (!lanes) $("pf-source").value = "line";
  else if (!cam.lines.length) $("pf-source").value = "lane"; // a camera that counts in lanes only
  syncSource();
}

function syncSource() {
  const lane = $("pf-source").value === "lane";
  $("pf-line-label").hidden = lane;
  $("pf-lane-label").hidden = !lane;
  $("pf-unit").disabled = lane; // lanes report vehicles entered, not classes: no PCU
  $("pf-class").disabled = lane;
  $("pf-direction").disabled = lane;
}

function setup() {
  const cams = clear($("pf-camera"));
  option(cams, "", t("pf.all_cameras"));
  for (const c of cw.config.cameras || []) option(cams, c.id, c.name && c.name !== c.id ? `${c.name} (${c.id})` : c.id);
  const cls = clear($("pf-class"));
  option(cls, "", t("pf.all"));
  for (const c of cw.config.classes || Object.keys(CLASS_LABEL)) option(cls, c, CLASS_LABEL[c] || c);
  const now = new Date();
  $("pf-to").value = toLocalInput(new Date(Math.ceil(now.getTime() / 3600000) * 3600000));
  $("pf-from").value = toLocalInput(new Date(Math.ceil(now.getTime() / 3600000) * 3600000 - 24 * 3600000));
  $("pf-tz").textContent = cw.config.timezone;
  fillCameraDependent();
  ready = true;
}

function value(r, unit) { return unit === "pcu" ? r.pcu : r.total; }

/** Most bars the chart draws: a longer range is asked for (and drawn) at a coarser bucket, and says so. */
export const CHART_MAX_BUCKETS = 750;
const GAP_FILL = "url(#pattern-gap)";

/** The buckets of the range as /coverage states them (it may coarsen the bucket: the flow then follows). */
async function coverageFor(f) {
  const cov = await cw.api("/coverage?" + query({ camera_id: f.camera_id, from: f.from, to: f.to, bucket: f.bucket,
    max_buckets: CHART_MAX_BUCKETS }));
  const by = new Map(cov.rows.map((r) => [r.bucket_start, { ...r, value: 0, classes: {}, rows: 0 }]));
  return { cov, by };
}

function extraBucket(by, start) {
  let b = by.get(start);
  if (!b) { b = { bucket_start: start, coverage: null, state: null, value: 0, classes: {}, rows: 0 }; by.set(start, b); }
  return b;
}

function sorted(by) { return [...by.values()].sort((a, b) => a.bucket_start.localeCompare(b.bucket_start)); }

/** Rows of the chart: one per bucket of the range, with per-class values, the observed share and state. */
async function lineSeries(f) {
  const { cov, by } = await coverageFor(f);
  const flow = await cw.api("/flow?" + query({ camera_id: f.camera_id, line_id: f.line_id, direction: f.direction,
    class_name: f.class_name, from: f.from, to: f.to, bucket: cov.bucket, unit: f.unit }));
  const w = flow.pcu_weights;
  for (const r of flow.rows) {
    const b = extraBucket(by, r.bucket_start);
    b.value += value(r, f.unit);
    b.rows += 1;
    for (const [c, n] of Object.entries(r.counts)) {
      b.classes[c] = (b.classes[c] || 0) + (f.unit === "pcu" ? n * w[c] : n);
    }
  }
  return { rows: sorted(by), total: flow.total, unit: f.unit, cov };
}

async function laneSeries(f) {
  const { cov, by } = await coverageFor(f);
  const occ = await cw.api("/occupancy?" + query({ camera_id: f.camera_id, zone_id: f.lane_id, lanes_only: "true",
    from: f.from, to: f.to, bucket: cov.bucket }));
  let total = 0;
  for (const r of occ.rows) {
    const b = extraBucket(by, r.bucket_start);
    b.value += r.vehicles_entered;
    b.classes.lane = (b.classes.lane || 0) + r.vehicles_entered;
    b.rows += 1;
    total += r.vehicles_entered;
  }
  return { rows: sorted(by), total, unit: "vehicles", cov };
}

function round(v) { return Math.round(v * 1000) / 1000; }

/** What a bucket without counts means: a data gap (camera down), before the camera existed, or not yet. */
function emptyKind(r) {
  if (r.rows) return null;
  if (r.state === "gap") return "gap";
  if (r.state === "before_install" || r.state === "future") return r.state;
  return null;
}

const emptyText = (kind) => t(`empty.${kind}`);

function defs(chart) {
  const d = svg("defs");
  const p = svg("pattern", { id: "pattern-gap", width: 6, height: 6, patternUnits: "userSpaceOnUse",
    patternTransform: "rotate(45)" });
  p.append(svg("rect", { width: 6, height: 6, fill: "#f1f3f5" }), svg("rect", { width: 2.5, height: 6, fill: "#4b5563" }));
  d.append(p);
  chart.append(d);
}

function drawChart(series) {
  const chart = clear($("flow-chart"));
  const W = fitWidth(chart, H);
  defs(chart);
  const rows = series.rows;
  const y = niceTicks(Math.max(0, ...rows.map((r) => r.value)), { integer: series.unit !== "pcu" });
  const nice = y.max;
  const plotW = W - LEFT - RIGHT, plotH = H - BOTTOM - TOP;
  const bw = plotW / Math.max(1, rows.length);
  for (const v of y.ticks) {
    const ty = TOP + plotH - (plotH * v) / nice;
    chart.append(svg("line", { class: "grid", x1: LEFT, y1: ty, x2: W - RIGHT, y2: ty }));
    chart.append(svg("text", { class: "tick y-tick", x: LEFT - 6, y: ty + 4, "text-anchor": "end", "data-value": v },
      fmtNum(v, y.digits)));
  }
  const classes = Object.keys(CLASS_COLOUR).concat(["lane"]);
  const labelled = new Set(labelIndexes(rows.length, plotW).filter((i) => LEFT + i * bw + X_LABEL_PX <= W));
  rows.forEach((r, i) => {
    const x = LEFT + i * bw;
    const empty = emptyKind(r);
    const g = svg("g", {
      class: `bucket${empty ? ` ${empty}` : ""}`, "data-bucket-start": r.bucket_start, "data-value": round(r.value),
      "data-coverage": r.coverage === null || r.coverage === undefined ? "" : r.coverage,
      "data-gap": String(empty === "gap"), "data-state": r.state || "",
    });
    if (empty === "gap") {
      g.append(svg("rect", { class: "gap-hatch", x: x + 0.5, y: TOP, width: Math.max(1, bw - 1), height: plotH,
        fill: GAP_FILL }));
    } else if (empty === "before_install") {
      g.append(svg("rect", { class: "before-install", x: x + 0.5, y: TOP, width: Math.max(1, bw - 1), height: plotH,
        fill: "#f4f5f7" }));
    } else if (!empty) {
      let top = TOP + plotH;
      for (const c of classes) {
        const v = r.classes[c];
        if (!v) continue;
        const h = (plotH * v) / nice;
        top -= h;
        g.append(svg("rect", { class: `seg cls-${c}`, x: x + 0.5, y: top.toFixed(2), width: Math.max(1, bw - 1),
          height: h.toFixed(2), fill: CLASS_COLOUR[c] || "#2f6fdb", "data-class": c, "data-value": round(v) }));
      }
      if (r.coverage !== null && r.coverage !== undefined && r.coverage < 0.999) {
        // the unobserved share as a hatched strip under the bar (not red: red is a vehicle class)
        g.append(svg("rect", { class: "cov-strip", x: x + 0.5, y: TOP + plotH + 2, width: Math.max(1, bw - 1),
          height: 5, fill: GAP_FILL, "fill-opacity": Math.max(0.35, 1 - r.coverage).toFixed(2) }));
      }
    }
    const cov = r.coverage === null || r.coverage === undefined ? ""
      : ` · ${t("flow.coverage", { n: Math.round(r.coverage * 100) })}`;
    g.append(svg("title", {}, empty ? `${fmtShort(r.bucket_start)}: ${emptyText(empty)}`
      : `${fmtShort(r.bucket_start)}: ${fmtNum(r.value, series.unit === "pcu" ? 1 : 0)}${cov}`));
    chart.append(g);
    if (labelled.has(i)) {
      chart.append(svg("text", { class: "tick x-tick", x: x + 1, y: H - BOTTOM + 20, "text-anchor": "start" },
        fmtShort(r.bucket_start)));
    }
  });
  chart.append(svg("line", { class: "axis", x1: LEFT, y1: TOP + plotH, x2: W - RIGHT, y2: TOP + plotH }));
  chart.setAttribute("data-state", "ready");
  chart.setAttribute("data-buckets", String(rows.length));
  chart.setAttribute("data-bucket", series.cov.bucket);
  chart.setAttribute("data-total", String(round(series.total)));
  chart.setAttribute("data-unit", series.unit);
  const legend = clear($("flow-legend"));
  const seen = new Set(rows.flatMap((r) => Object.keys(r.classes).filter((c) => r.classes[c] > 0)));
  for (const c of classes.filter((k) => seen.has(k))) {
    const li = el("li");
    const sw = el("span", { class: `swatch cls-${c}`, "data-class": c });
    sw.style.background = CLASS_COLOUR[c] || "#2f6fdb";
    li.append(sw, document.createTextNode(CLASS_LABEL[c] || t("flow.lane")));
    legend.append(li);
  }
  const kinds = new Set(rows.map(emptyKind).filter(Boolean));
  if (rows.some((r) => !emptyKind(r) && r.coverage !== null && r.coverage !== undefined && r.coverage < 0.999)) {
    kinds.add("gap");
  }
  for (const k of ["gap", "before_install", "future"].filter((x) => kinds.has(x))) {
    const li = el("li", { "data-legend": k });
    const sw = el("span", { class: `swatch ${k}-swatch` });
    if (k === "gap") {
      sw.style.background = "repeating-linear-gradient(45deg, #4b5563 0 2px, #f1f3f5 2px 5px)";
    } else {
      sw.style.background = k === "before_install" ? "#f4f5f7" : "transparent";
      sw.style.border = "1px solid #9aa5b1";
    }
    li.append(sw, document.createTextNode(emptyText(k)));
    legend.append(li);
  }
}

function drawTable(series) {
  const body = clear($("flow-table").querySelector("tbody"));
  for (const r of series.rows) {
    const empty = emptyKind(r);
    const tr = el("tr", { "data-bucket-start": r.bucket_start, "data-value": round(r.value), "data-state": r.state || "",
      class: empty || "" });
    const cov = r.coverage === null || r.coverage === undefined ? "—" : `${Math.round(r.coverage * 100)} %`;
    tr.append(el("td", {}, fmtShort(r.bucket_start)),
      el("td", { class: "num" }, empty ? `— ${emptyText(empty)}` : fmtNum(r.value, series.unit === "pcu" ? 1 : 0)),
      el("td", { class: "num" }, cov));
    body.append(tr);
  }
}

function summary(series, f) {
  const gaps = series.rows.filter((r) => emptyKind(r) === "gap").length;
  const unit = t(series.unit === "pcu" ? "flow.unit_pcu" : "flow.unit_vehicles");
  const s = clear($("flow-summary"));
  s.append(
    el("span", { id: "flow-total", "data-value": round(series.total) }, t("flow.total", { n: fmtNum(series.total, series.unit === "pcu" ? 1 : 0), unit })),
    el("span", { id: "flow-gaps", "data-value": gaps }, ` · ${t("flow.gaps", { n: gaps })}`),
  );
  if (series.cov.coarsened) {
    s.append(el("span", { id: "flow-coarsened", "data-bucket": series.cov.bucket,
      "data-requested": series.cov.requested_bucket },
      ` · ${t("flow.coarsened", { asked: t(`bucket.${series.cov.requested_bucket}`),
        shown: t(`bucket.${series.cov.bucket}`) })}`));
  }
  const cam = (cw.config.cameras || []).find((c) => c.id === f.camera_id);
  if (f.source === "line" && cam && !cam.lines.length) {
    s.append(el("span", { id: "flow-no-line" }, ` · ${t(cam.lanes.length ? "flow.no_line_lane" : "flow.no_line")}`));
  }
}


function exportLinks(f) {
  const base = { camera_id: f.camera_id, line_id: f.source === "line" ? f.line_id : "", direction: f.direction,
    class_name: f.class_name, from: f.from, to: f.to, bucket: f.bucket };
  $("export-flow-csv").href = "/api/v1/export/flow.csv?" + query(base);
  $("export-flow-fiware").href = "/api/v1/export/fiware/traffic-flow?" + query({ camera_id: f.camera_id, from: f.from,
    to: f.to, bucket: f.bucket });
}

export async function refresh() {
  if (!ready) setup();
  const f = filters();
  $("planner-error").textContent = "";
  const problem = rangeProblem("pf-from", "pf-to");
  if (problem) {
    $("planner-error").textContent = problem;
    $("flow-chart").setAttribute("data-state", "error");
    return;
  }
  $("flow-chart").setAttribute("data-state", "loading");
  exportLinks(f);
  try {
    const series = f.source === "lane" ? await laneSeries(f) : await lineSeries(f);
    last = { series, f };
    drawChart(series);
    drawTable(series);
    summary(series, f);
  } catch (e) {
    last = null;
    $("flow-chart").setAttribute("data-state", "error");
    $("planner-error").textContent = t("pf.load_failed", { msg: e.message });
  }
  cw.emit("planner-filters", f);
}

/** The option texts this module wrote, in the current language. */
function relabel() {
  for (const id of ["pf-camera", "pf-line", "pf-class"]) {
    const all = $(id).querySelector('option[value=""]');
    if (all) all.textContent = t(id === "pf-camera" ? "pf.all_cameras" : "pf.all");
  }
  for (const o of $("pf-class").querySelectorAll("option")) if (o.value) o.textContent = CLASS_LABEL[o.value] || o.value;
}

// A new session (new cameras, new role): set up again. The shell may already have shown the planner view
// for this session (its "start" handler runs first): then set up now, before anyone edits the filters.
cw.on("start", () => {
  ready = false;
  last = null;
  if (document.body.getAttribute("data-view") === "planner") return refresh();
  return null;
});
let resized = null;
window.addEventListener("resize", () => { // redraw at the new width (text stays legible)
  clearTimeout(resized);
  resized = setTimeout(() => { if (last && ready) drawChart(last.series); }, 200);
});
cw.on("lang", () => {
  if (!ready) return;
  relabel();
  if (last) { drawChart(last.series); drawTable(last.series); summary(last.series, last.f); }
});
cw.on("view", (v) => { if (v === "planner" && !ready) refresh(); });

document.addEventListener("DOMContentLoaded", () => {
  $("planner-form").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
  $("pf-camera").addEventListener("change", fillCameraDependent);
  $("pf-source").addEventListener("change", syncSource);
  for (const field of document.querySelectorAll("input.when")) { // what was typed, said back in the one format
    field.addEventListener("change", () => {
      const iso = localInputToIso(field.value);
      if (iso) field.value = toLocalInput(new Date(iso));
    });
  }
});
