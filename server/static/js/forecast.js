// Planner's forecast panel: for one counting line/direction (or lane), the forecast with its 80 % band
// next to the observed flow (a bucket the camera did not observe has no actual: a gap, never a zero),
// the typical week (median and 25-75 % of each hour of the week, holidays left out), the flow anomaly
// history and the forecasts CSV. Times are the city's wall-clock time.
import { fitWidth, labelIndexes, niceTicks } from "./chart-axes.js";
import { clear, cw, DAY_LABEL, el, fmtNum, fmtShort, label, svg, t } from "./core.js";
import { lang } from "./i18n.js";
import "./planner-i18n.js";
import { query } from "./planner.js";

const H = 260, LEFT = 52, BOTTOM = 40, TOP = 12, RIGHT = 8;
const statusLabel = (s) => (t(`fc.status.${s}`) === `fc.status.${s}` ? s : t(`fc.status.${s}`));

/** The forecast's state in the operator's language; the server's own message (English, for engineers)
 * only in the English view, except the cold-start one, whose numbers are worth reading in both. */
function statusText(va) {
  const cold = /not enough history: (\d+) observed days, need (\d+)/.exec(va.message || "");
  if (cold) return t("fc.cold_detail", { days: cold[1], need: cold[2] });
  return lang() === "en" && va.message ? `${statusLabel(va.status)}: ${va.message}` : statusLabel(va.status);
}
let ready = false;

function $(id) { return document.getElementById(id); }

function seriesParams() {
  const [kind, camera_id, series_id, direction] = ($("fc-series").value || "").split("|");
  return { kind, camera_id, series_id, direction: kind === "line" ? direction : "" };
}

/** An option's text from its value ("kind|camera|series|direction"), in the current language. */
function seriesText(value) {
  if (!value) return t("fc.no_series");
  const [kind, camera, id, direction] = value.split("|");
  const dir = direction ? ` · ${label("dir", direction)}` : "";
  return `${camera} · ${t(kind === "lane" ? "fc.lane" : "fc.line", { id })}${dir}`;
}

async function loadSeries() {
  const sel = clear($("fc-series"));
  const d = await cw.api("/forecasts/series");
  for (const s of d.series) {
    const value = [s.kind, s.camera_id, s.series_id, s.direction || ""].join("|");
    sel.append(el("option", { value, "data-status": s.status }, seriesText(value)));
  }
  if (!d.series.length) sel.append(el("option", { value: "" }, seriesText("")));
  ready = true;
}

/** The chart: band (lo80-hi80) as an area, forecast as a line, actual as a line broken where not observed. */
function drawChart(d) {
  const chart = clear($("fc-chart"));
  const W = fitWidth(chart, H);
  const rows = d.rows;
  const yt = niceTicks(Math.max(0, ...rows.flatMap((r) => [r.hi80 ?? 0, r.actual ?? 0, r.forecast ?? 0])));
  const max = yt.max;
  const plotW = W - LEFT - RIGHT, plotH = H - BOTTOM - TOP;
  const step = plotW / Math.max(1, rows.length);
  const x = (i) => LEFT + (i + 0.5) * step;
  const y = (v) => TOP + plotH - (plotH * v) / max;
  for (const v of yt.ticks) {
    const gy = y(v);
    chart.append(svg("line", { class: "grid", x1: LEFT, y1: gy, x2: W - RIGHT, y2: gy }));
    chart.append(svg("text", { class: "tick y-tick", x: LEFT - 6, y: gy + 4, "text-anchor": "end", "data-value": v },
      fmtNum(v, yt.digits)));
  }
  // the band: one polygon per run of buckets that have a forecast
  const runs = [];
  rows.forEach((r, i) => {
    if (r.forecast === null) return;
    if (!runs.length || runs[runs.length - 1].end !== i) runs.push({ start: i, end: i + 1 });
    else runs[runs.length - 1].end = i + 1;
  });
  for (const run of runs) {
    const idx = [...Array(run.end - run.start).keys()].map((k) => k + run.start);
    const upper = idx.map((i) => `${x(i).toFixed(1)},${y(rows[i].hi80).toFixed(1)}`);
    const lower = idx.reverse().map((i) => `${x(i).toFixed(1)},${y(rows[i].lo80).toFixed(1)}`);
    chart.append(svg("polygon", { class: "fc-band", points: upper.concat(lower).join(" ") }));
    chart.append(svg("polyline", { class: "fc-line", points: idx.reverse().map((i) => `${x(i).toFixed(1)},${y(rows[i].forecast).toFixed(1)}`).join(" ") }));
  }
  let path = [];
  const flush = () => { if (path.length) chart.append(svg("polyline", { class: "fc-actual", points: path.join(" ") })); path = []; };
  rows.forEach((r, i) => { if (r.actual === null) flush(); else path.push(`${x(i).toFixed(1)},${y(r.actual).toFixed(1)}`); });
  flush();
  const labelled = new Set(labelIndexes(rows.length, plotW).filter((i) => LEFT + i * step + 84 <= W));
  rows.forEach((r, i) => {
    const g = svg("g", { class: "fc-bucket", "data-bucket-start": r.bucket_start, "data-forecast": r.forecast ?? "",
      "data-lo80": r.lo80 ?? "", "data-hi80": r.hi80 ?? "", "data-actual": r.actual ?? "" });
    g.append(svg("rect", { class: "hit", x: LEFT + i * step, y: TOP, width: step, height: plotH }));
    const parts = [fmtShort(r.bucket_start)];
    if (r.forecast !== null) {
      parts.push(t("fc.tip_forecast", { v: fmtNum(r.forecast), lo: fmtNum(r.lo80), hi: fmtNum(r.hi80) }));
    }
    parts.push(r.actual === null ? t("fc.tip_not_observed") : t("fc.tip_actual", { v: fmtNum(r.actual) }));
    g.append(svg("title", {}, parts.join(" · ")));
    chart.append(g);
    if (labelled.has(i)) {
      chart.append(svg("text", { class: "tick x-tick", x: LEFT + i * step + 1, y: H - BOTTOM + 18 },
        fmtShort(r.bucket_start)));
    }
  });
  chart.append(svg("line", { class: "axis", x1: LEFT, y1: TOP + plotH, x2: W - RIGHT, y2: TOP + plotH }));
  chart.setAttribute("data-state", "ready");
  chart.setAttribute("data-buckets", String(rows.length));
  chart.setAttribute("data-forecasts", String(rows.filter((r) => r.forecast !== null).length));
}

function drawWeek(d) {
  const chart = clear($("fc-week"));
  const Hk = 200, L = 52, T = 10, B = 30;
  const Wk = fitWidth(chart, Hk);
  const hours = d.hours;
  const yt = niceTicks(Math.max(0, ...hours.map((h) => h.q75 ?? 0)), { target: 2 });
  const max = yt.max;
  const plotW = Wk - L - 8, plotH = Hk - T - B;
  const x = (i) => L + (i + 0.5) * (plotW / 168);
  const y = (v) => T + plotH - (plotH * v) / max;
  for (const v of yt.ticks) {
    const gy = y(v);
    chart.append(svg("line", { class: "grid", x1: L, y1: gy, x2: Wk - 8, y2: gy }));
    chart.append(svg("text", { class: "tick y-tick", x: L - 6, y: gy + 4, "text-anchor": "end" }, fmtNum(v, yt.digits)));
  }
  DAY_LABEL.forEach((day, i) => chart.append(svg("text", { class: "tick", x: L + i * 24 * (plotW / 168) + 2, y: Hk - 10 }, day)));
  const have = hours.filter((h) => h.median !== null);
  if (have.length) {
    const up = have.map((h) => `${x(h.hour_of_week).toFixed(1)},${y(h.q75).toFixed(1)}`);
    const lo = [...have].reverse().map((h) => `${x(h.hour_of_week).toFixed(1)},${y(h.q25).toFixed(1)}`);
    chart.append(svg("polygon", { class: "fc-band", points: up.concat(lo).join(" ") }));
    chart.append(svg("polyline", { class: "fc-line", points: have.map((h) => `${x(h.hour_of_week).toFixed(1)},${y(h.median).toFixed(1)}`).join(" ") }));
  }
  for (const h of hours) {
    chart.append(svg("g", { class: "fc-hour", "data-hour-of-week": h.hour_of_week, "data-median": h.median ?? "",
      "data-n": h.n }));
  }
  chart.setAttribute("data-state", "ready");
}

function drawAnomalies(d) {
  const body = clear($("fc-anomalies").querySelector("tbody"));
  if (!d.items.length) {
    const tr = el("tr");
    tr.append(el("td", { colspan: 6, class: "muted" }, t("fc.no_anomalies")));
    body.append(tr);
  }
  for (const a of d.items) {
    const tr = el("tr", { "data-incident-id": a.incident_id, "data-anomaly": a.anomaly });
    tr.append(el("td", {}, `${fmtShort(a.window_start)} – ${fmtShort(a.window_end)}`),
      el("td", {}, t(a.anomaly === "drop" ? "fc.drop" : "fc.surge")),
      el("td", { class: "num" }, fmtNum(a.expected)),
      el("td", { class: "num" }, `${fmtNum(a.lo80)}–${fmtNum(a.hi80)}`),
      el("td", { class: "num" }, fmtNum(a.observed)),
      el("td", {}, `${t(a.state === "open" ? "fc.open" : "fc.closed")} · ${label("status", a.status)}`));
    body.append(tr);
  }
  $("fc-anomalies").setAttribute("data-state", "ready");
}

export async function refresh() {
  $("fc-error").textContent = "";
  try {
    if (!ready) await loadSeries();
    const p = seriesParams();
    if (!p.camera_id) return;
    const freq = $("fc-freq").value;
    const span = freq === "h" ? 24 * 3600000 : 6 * 3600000;
    const now = Date.now();
    const from = new Date(Math.floor((now - span) / 3600000) * 3600000).toISOString();
    const to = new Date(Math.ceil((now + span) / 3600000) * 3600000).toISOString();
    const key = { camera_id: p.camera_id, series_id: p.series_id, kind: p.kind, direction: p.direction };
    $("fc-chart").setAttribute("data-state", "loading");
    const [va, week, anomalies] = await Promise.all([
      cw.api("/forecasts/vs-actual?" + query({ ...key, freq, from, to })),
      cw.api("/forecasts/typical-week?" + query(key)),
      cw.api("/forecasts/anomalies?" + query({ camera_id: p.camera_id, series_id: p.series_id })),
    ]);
    $("fc-status").textContent = statusText(va);
    $("fc-status").setAttribute("data-status", va.status);
    drawChart(va);
    drawWeek(week);
    drawAnomalies(anomalies);
    $("fc-export-csv").href = "/api/v1/export/forecasts.csv?" + query({ camera_id: p.camera_id, series_id: p.series_id,
      freq, from: new Date(Math.floor(now / 3600000) * 3600000).toISOString() });
  } catch (e) {
    $("fc-chart").setAttribute("data-state", "error");
    $("fc-error").textContent = e.status === 403 ? t("fc.planners_only") : t("fc.load_failed", { msg: e.message });
  }
}

cw.on("start", () => { ready = false; });
cw.on("lang", () => {
  if (!ready) return;
  for (const o of $("fc-series").querySelectorAll("option")) o.textContent = seriesText(o.value);
  if (document.body.getAttribute("data-view") === "planner") refresh();
});
cw.on("view", (v) => { if (v === "planner") refresh(); });

document.addEventListener("DOMContentLoaded", () => {
  $("fc-form").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
});
