// Planner's workbench: flow history by camera, line or lane, direction and class, in vehicles or PCU,
// for any bucket and date range (read as the city's wall-clock time). Bars are stacked by class; a bucket
// the camera did not observe at all is drawn as a hatched gap, not as zero. CSV and FIWARE exports use
// the same query.
import {
  CLASS_COLOUR, CLASS_LABEL, clear, cw, el, fmtNum, fmtShort, localInputToIso, svg, toLocalInput,
} from "./core.js";

const W = 960, H = 260, LEFT = 52, BOTTOM = 40, TOP = 12, RIGHT = 8;
let ready = false;

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

export function query(obj) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  return q;
}

function option(sel, value, text) { sel.append(el("option", { value }, text)); }

function fillCameraDependent() {
  const cam = (cw.config.cameras || []).find((c) => c.id === $("pf-camera").value);
  const line = clear($("pf-line")), lane = clear($("pf-lane"));
  option(line, "", "Tất cả / All");
  for (const l of cam ? cam.lines : []) option(line, l.id, l.id);
  for (const id of cam ? cam.lanes : []) option(lane, id, id);
  const lanes = cam ? cam.lanes.length : 0;
  $("pf-source").querySelector('option[value="lane"]').disabled = lanes === 0;
  if (!lanes) $("pf-source").value = "line";
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
  option(cams, "", "Tất cả camera / All cameras");
  for (const c of cw.config.cameras || []) option(cams, c.id, c.name && c.name !== c.id ? `${c.name} (${c.id})` : c.id);
  const cls = clear($("pf-class"));
  option(cls, "", "Tất cả / All");
  for (const c of cw.config.classes || Object.keys(CLASS_LABEL)) option(cls, c, CLASS_LABEL[c] || c);
  const now = new Date();
  $("pf-to").value = toLocalInput(new Date(Math.ceil(now.getTime() / 3600000) * 3600000));
  $("pf-from").value = toLocalInput(new Date(Math.ceil(now.getTime() / 3600000) * 3600000 - 24 * 3600000));
  $("pf-tz").textContent = cw.config.timezone;
  fillCameraDependent();
  ready = true;
}

function value(r, unit) { return unit === "pcu" ? r.pcu : r.total; }

/** Rows of the chart: one per bucket of the range, with per-class values and the observed share. */
async function lineSeries(f) {
  const base = { camera_id: f.camera_id, line_id: f.line_id, direction: f.direction, class_name: f.class_name,
    from: f.from, to: f.to, bucket: f.bucket };
  const [flow, cov] = await Promise.all([
    cw.api("/flow?" + query({ ...base, unit: f.unit })),
    cw.api("/coverage?" + query({ camera_id: f.camera_id, from: f.from, to: f.to, bucket: f.bucket })),
  ]);
  const w = flow.pcu_weights;
  const by = new Map(cov.rows.map((r) => [r.bucket_start, { ...r, value: 0, classes: {}, rows: 0 }]));
  for (const r of flow.rows) {
    let b = by.get(r.bucket_start);
    if (!b) { b = { bucket_start: r.bucket_start, coverage: null, value: 0, classes: {}, rows: 0 }; by.set(r.bucket_start, b); }
    b.value += value(r, f.unit);
    b.rows += 1;
    for (const [c, n] of Object.entries(r.counts)) {
      b.classes[c] = (b.classes[c] || 0) + (f.unit === "pcu" ? n * w[c] : n);
    }
  }
  const rows = [...by.values()].sort((a, b) => a.bucket_start.localeCompare(b.bucket_start));
  return { rows, total: flow.total, unit: f.unit };
}

async function laneSeries(f) {
  const q = { camera_id: f.camera_id, zone_id: f.lane_id, lanes_only: "true", from: f.from, to: f.to,
    bucket: f.bucket };
  const [occ, cov] = await Promise.all([
    cw.api("/occupancy?" + query(q)),
    cw.api("/coverage?" + query({ camera_id: f.camera_id, from: f.from, to: f.to, bucket: f.bucket })),
  ]);
  const by = new Map(cov.rows.map((r) => [r.bucket_start, { ...r, value: 0, classes: {}, rows: 0 }]));
  let total = 0;
  for (const r of occ.rows) {
    const b = by.get(r.bucket_start) || { bucket_start: r.bucket_start, coverage: null, value: 0, classes: {}, rows: 0 };
    by.set(r.bucket_start, b);
    b.value += r.vehicles_entered;
    b.classes.lane = (b.classes.lane || 0) + r.vehicles_entered;
    b.rows += 1;
    total += r.vehicles_entered;
  }
  return { rows: [...by.values()].sort((a, b) => a.bucket_start.localeCompare(b.bucket_start)), total, unit: "vehicles" };
}

function round(v) { return Math.round(v * 1000) / 1000; }

function drawChart(series) {
  const chart = clear($("flow-chart"));
  const rows = series.rows;
  const max = Math.max(1e-9, ...rows.map((r) => r.value));
  const nice = niceMax(max);
  const plotW = W - LEFT - RIGHT, plotH = H - BOTTOM - TOP;
  const bw = plotW / Math.max(1, rows.length);
  for (let i = 0; i <= 4; i++) {
    const y = TOP + plotH - (plotH * i) / 4;
    chart.append(svg("line", { class: "grid", x1: LEFT, y1: y, x2: W - RIGHT, y2: y }));
    chart.append(svg("text", { class: "tick", x: LEFT - 6, y: y + 4, "text-anchor": "end" }, fmtNum((nice * i) / 4, 1)));
  }
  const classes = Object.keys(CLASS_COLOUR).concat(["lane"]);
  const labelEvery = Math.max(1, Math.ceil(rows.length / 12));
  rows.forEach((r, i) => {
    const x = LEFT + i * bw;
    const gap = r.coverage === 0 && !r.rows;
    const g = svg("g", {
      class: gap ? "bucket gap" : "bucket", "data-bucket-start": r.bucket_start, "data-value": round(r.value),
      "data-coverage": r.coverage === null ? "" : r.coverage, "data-gap": String(gap),
    });
    if (gap) {
      g.append(svg("rect", { class: "gap-fill", x: x + 0.5, y: TOP, width: Math.max(1, bw - 1), height: plotH }));
    } else {
      let y = TOP + plotH;
      for (const c of classes) {
        const v = r.classes[c];
        if (!v) continue;
        const h = (plotH * v) / nice;
        y -= h;
        g.append(svg("rect", { class: `seg cls-${c}`, x: x + 0.5, y: y.toFixed(2), width: Math.max(1, bw - 1),
          height: h.toFixed(2), fill: CLASS_COLOUR[c] || "#2f6fdb", "data-class": c, "data-value": round(v) }));
      }
      if (r.coverage !== null && r.coverage < 0.999) {
        g.append(svg("rect", { class: "partial", x: x + 0.5, y: TOP + plotH + 2, width: Math.max(1, bw - 1),
          height: 4, "fill-opacity": (1 - r.coverage).toFixed(2) }));
      }
    }
    const cov = r.coverage === null ? "" : ` · độ phủ / coverage ${Math.round(r.coverage * 100)} %`;
    g.append(svg("title", {}, gap ? `${fmtShort(r.bucket_start)}: không có dữ liệu / no data`
      : `${fmtShort(r.bucket_start)}: ${fmtNum(r.value, series.unit === "pcu" ? 1 : 0)}${cov}`));
    chart.append(g);
    if (i % labelEvery === 0) {
      const end = i > rows.length - labelEvery;
      chart.append(svg("text", { class: "tick", x: end ? x + bw : x + 1, y: H - BOTTOM + 18,
        "text-anchor": end ? "end" : "start" }, fmtShort(r.bucket_start)));
    }
  });
  chart.append(svg("line", { class: "axis", x1: LEFT, y1: TOP + plotH, x2: W - RIGHT, y2: TOP + plotH }));
  chart.setAttribute("data-state", "ready");
  chart.setAttribute("data-buckets", String(rows.length));
  chart.setAttribute("data-total", String(round(series.total)));
  chart.setAttribute("data-unit", series.unit);
  const legend = clear($("flow-legend"));
  const seen = new Set(rows.flatMap((r) => Object.keys(r.classes)));
  for (const c of classes.filter((k) => seen.has(k))) {
    const li = el("li");
    li.append(el("span", { class: "swatch", "data-class": c }), document.createTextNode(CLASS_LABEL[c] || "Làn / Lane"));
    li.firstChild.classList.add(`cls-${c}`);
    legend.append(li);
  }
  const gl = el("li");
  gl.append(el("span", { class: "swatch gap-swatch" }), document.createTextNode("Mất dữ liệu / No data (camera down)"));
  legend.append(gl);
}

function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function drawTable(series) {
  const body = clear($("flow-table").querySelector("tbody"));
  for (const r of series.rows) {
    const gap = r.coverage === 0 && !r.rows;
    const tr = el("tr", { "data-bucket-start": r.bucket_start, "data-value": round(r.value), class: gap ? "gap" : "" });
    tr.append(el("td", {}, fmtShort(r.bucket_start)),
      el("td", { class: "num" }, gap ? "— không có dữ liệu / no data" : fmtNum(r.value, series.unit === "pcu" ? 1 : 0)),
      el("td", { class: "num" }, r.coverage === null ? "—" : `${Math.round(r.coverage * 100)} %`));
    body.append(tr);
  }
}

function summary(series) {
  const gaps = series.rows.filter((r) => r.coverage === 0 && !r.rows).length;
  const unit = series.unit === "pcu" ? "PCU" : "xe / vehicles";
  const s = clear($("flow-summary"));
  s.append(
    el("span", { id: "flow-total", "data-value": round(series.total) }, `Tổng / Total: ${fmtNum(series.total, series.unit === "pcu" ? 1 : 0)} ${unit}`),
    el("span", { id: "flow-gaps", "data-value": gaps }, ` · Khoảng mất dữ liệu / Gaps: ${gaps}`),
  );
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
  $("flow-chart").setAttribute("data-state", "loading");
  if (!f.from || !f.to) { $("planner-error").textContent = "Chọn khoảng thời gian / Choose a date range"; return; }
  exportLinks(f);
  try {
    const series = f.source === "lane" ? await laneSeries(f) : await lineSeries(f);
    drawChart(series);
    drawTable(series);
    summary(series);
  } catch (e) {
    $("flow-chart").setAttribute("data-state", "error");
    $("planner-error").textContent = `Không tải được / Could not load: ${e.message}`;
  }
  cw.emit("planner-filters", f);
}

cw.on("start", () => { ready = false; });
cw.on("view", (v) => { if (v === "planner" && !ready) refresh(); });

document.addEventListener("DOMContentLoaded", () => {
  $("planner-form").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
  $("pf-camera").addEventListener("change", fillCameraDependent);
  $("pf-source").addEventListener("change", syncSource);
});
