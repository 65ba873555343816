// Axes shared by the planner's charts: y ticks at round values (whole numbers for counts, never the same
// label twice), x labels spaced by their width so they never overlap, and a drawing width equal to the
// chart's width on screen (text keeps its size on a phone instead of shrinking with the whole drawing).

/** Round tick values from 0 to at least `max`: steps of 1, 2, 2.5 or 5 x 10^n (whole steps for counts). */
export function niceTicks(max, { integer = true, target = 4 } = {}) {
  const top = Math.max(max, integer ? 1 : 1e-9);
  const raw = top / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  let step = 10 * p;
  for (const m of [1, 2, 2.5, 5, 10]) {
    const s = m * p;
    if (integer && !Number.isInteger(s)) continue; // no "2.5 vehicles" step; no "0, 0, 1, 1" labels
    if (s >= raw) { step = s; break; }
  }
  if (integer) step = Math.max(1, Math.round(step));
  const n = Math.max(1, Math.ceil(top / step - 1e-9));
  const ticks = [];
  for (let i = 0; i <= n; i++) ticks.push(Math.round(i * step * 1e6) / 1e6);
  return { ticks, max: ticks[ticks.length - 1], step, digits: integer || Number.isInteger(step) ? 0 : 1 };
}

/** Indexes of the buckets that get an x label: evenly spaced, at least `labelPx` apart on `plotW` pixels. */
export function labelIndexes(count, plotW, labelPx = 84) {
  if (!count) return [];
  const fit = Math.max(1, Math.floor(plotW / labelPx));
  const every = Math.max(1, Math.ceil(count / fit));
  const out = [];
  for (let i = 0; i < count; i += every) out.push(i);
  return out;
}

/** The chart's width on screen in CSS pixels (`fallback` while hidden); its viewBox is set to match. */
export function fitWidth(chart, height, fallback = 960, min = 300) {
  const w = Math.round(chart.getBoundingClientRect().width) || fallback;
  const width = Math.max(min, w);
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  return width;
}
