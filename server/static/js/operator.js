// Operator view: live counts and mean speed per camera over the last 15 minutes (from /flow, then the live
// stream, no reload), and the camera detail panel: health, tamper signs, edge status, open incidents and
// the last 24 hours of observation, where the hours a camera was down are drawn as gaps. Health is the
// one rule's (core.shownHealth), as on the map and in the table; engineering fields are in cameras.js.
import {
  age, clear, cw, el, fmt, fmtNum, fmtShort, HEALTH_LABEL, INCIDENT_LABEL, reasonText, shownHealth, SOURCE_LABEL,
  svg, t, TAMPER_LABEL,
} from "./core.js";

const MIN = 60000;
const WINDOW = 15 * MIN;
const minutes = new Map(); // camera -> Map(minute ms -> {n, speedSum, speedN})
let since = Infinity; // events before this are in the /flow answer already
let selected = null;
let lastDetail = null; // the selected camera as last fetched
let lastStrip = null; // and its coverage strip

function bucket(cam, ms) {
  if (!minutes.has(cam)) minutes.set(cam, new Map());
  const m = minutes.get(cam);
  const k = Math.floor(ms / MIN) * MIN;
  if (!m.has(k)) m.set(k, { n: 0, speedSum: 0, speedN: 0 });
  return m.get(k);
}

async function loadLive() {
  const to = new Date();
  const from = new Date(Math.floor((to.getTime() - WINDOW) / MIN) * MIN);
  const q = new URLSearchParams({ bucket: "1m", from: from.toISOString(), to: to.toISOString() });
  const data = await cw.api("/flow?" + q);
  minutes.clear();
  for (const r of data.rows) {
    const b = bucket(r.camera_id, new Date(r.bucket_start).getTime());
    b.n += r.total;
    if (r.speed_samples) { b.speedSum += r.mean_speed_kmh * r.speed_samples; b.speedN += r.speed_samples; }
  }
  since = to.getTime();
  renderLive();
}

function renderLive() {
  const box = document.getElementById("live-cameras");
  const cams = cw.cameras || [];
  const now = Date.now();
  const cutoff = now - WINDOW;
  for (const c of cams) {
    let card = box.querySelector(`[data-camera-id="${CSS.escape(c.id)}"]`);
    if (!card) {
      card = el("button", { type: "button", class: "live-card", "data-camera-id": c.id });
      card.append(
        el("span", { class: "live-name" }), el("span", { class: "live-health" }),
        el("span", { class: "live-count", "data-field": "count" }), el("span", { class: "live-unit" }),
        el("span", { class: "live-speed", "data-field": "speed" }),
      );
      card.addEventListener("click", () => cw.emit("select-camera", c.id));
      box.append(card);
    }
    let n = 0, ss = 0, sn = 0;
    for (const [k, b] of minutes.get(c.id) || []) {
      if (k + MIN <= cutoff) continue;
      n += b.n; ss += b.speedSum; sn += b.speedN;
    }
    const speed = sn ? ss / sn : null;
    card.querySelector(".live-name").textContent = c.name || c.id;
    card.querySelector(".live-unit").textContent = t("live.crossings");
    const health = shownHealth(c, now).level;
    const h = card.querySelector(".live-health");
    h.textContent = HEALTH_LABEL[health] || health;
    h.className = `live-health health-${health}`;
    card.setAttribute("data-health", health);
    const cnt = card.querySelector('[data-field="count"]');
    cnt.textContent = fmtNum(n);
    cnt.setAttribute("data-value", String(n));
    const sp = card.querySelector('[data-field="speed"]');
    sp.textContent = speed === null ? t("live.no_speed") : t("live.speed", { v: `${fmtNum(speed, 1)} km/h` });
    sp.setAttribute("data-value", speed === null ? "" : speed.toFixed(2));
    card.classList.toggle("selected", c.id === selected);
  }
}

cw.on("line_crossing", (ev) => {
  const t = new Date(ev.ts).getTime();
  if (t < since) return;
  const b = bucket(ev.camera_id, t);
  b.n += 1;
  if (ev.speed_kmh !== null && ev.speed_kmh !== undefined) { b.speedSum += ev.speed_kmh; b.speedN += 1; }
  renderLive();
});
cw.on("dropped", () => { loadLive().catch(() => {}); });

// --- camera detail -------------------------------------------------------------------------------------

function row(dl, label, field, text, value = null) {
  dl.append(el("dt", {}, label));
  dl.append(el("dd", { "data-field": field, "data-value": value === null ? text : value }, text));
}

async function coverageStrip(cam) {
  const to = new Date(Math.ceil(Date.now() / (15 * MIN)) * 15 * MIN);
  const from = new Date(to.getTime() - 24 * 60 * MIN);
  const q = new URLSearchParams({ camera_id: cam, bucket: "15m", from: from.toISOString(), to: to.toISOString() });
  const data = await cw.api("/coverage?" + q);
  const W = 480, H = 34, bw = W / data.rows.length;
  const s = svg("svg", { id: "detail-coverage", viewBox: `0 0 ${W} ${H + 14}`, role: "img",
    "aria-label": t("detail.coverage_label") });
  let gaps = 0;
  data.rows.forEach((r, i) => {
    const gap = r.coverage === 0;
    if (gap) gaps += 1;
    const rect = svg("rect", {
      x: (i * bw).toFixed(2), y: 0, width: Math.max(0.5, bw - 0.5).toFixed(2), height: H,
      class: gap ? "gap" : "covered", "fill-opacity": gap ? 1 : Math.max(0.25, r.coverage).toFixed(2),
      "data-bucket-start": r.bucket_start, "data-coverage": r.coverage,
    });
    rect.append(svg("title", {}, `${fmtShort(r.bucket_start)}: ${Math.round(r.coverage * 100)} %`));
    s.append(rect);
  });
  s.append(svg("text", { x: 0, y: H + 12 }, fmtShort(data.rows[0].bucket_start)));
  s.append(svg("text", { x: W, y: H + 12, "text-anchor": "end" }, t("detail.now")));
  s.setAttribute("data-gaps", String(gaps));
  return s;
}

async function showDetail(cam) {
  selected = cam;
  const box = document.getElementById("camera-detail");
  box.setAttribute("data-camera-id", cam);
  cw.emit("camera-selected", cam);
  renderLive();
  const c = await cw.api(`/cameras/${encodeURIComponent(cam)}`);
  if (selected !== cam) return;
  c._fetched = Date.now();
  lastDetail = c;
  lastStrip = null;
  renderDetail(c, null);
  let strip;
  try {
    strip = await coverageStrip(cam);
  } catch (e) {
    strip = el("p", { class: "error" }, e.message);
  }
  if (selected !== cam) return;
  lastStrip = strip;
  box.append(strip);
  box.setAttribute("data-loaded", cam);
}

/** The panel from a fetched camera; `strip` the coverage strip already drawn, if any (a language switch
 * re-renders the words at once, without asking the server again). */
function renderDetail(c, strip) {
  const cam = c.id;
  const box = clear(document.getElementById("camera-detail"));
  const known = (cw.cameras || []).find((x) => x.id === cam);
  const shown = shownHealth(known || c);
  box.setAttribute("data-health", shown.level);
  const title = el("h3", {}, c.name && c.name !== c.id ? `${c.name} (${c.id})` : c.id);
  const dl = el("dl", { class: "detail" });
  dl.append(el("dt", {}, t("detail.health")));
  const dd = el("dd", { "data-field": "health", "data-value": shown.level });
  dd.append(el("span", { class: `state health-${shown.level}` }, HEALTH_LABEL[shown.level] || shown.level));
  dl.append(dd);
  if (shown.reasons.length) {
    row(dl, t("detail.why"), "why", shown.reasons.map((r) => reasonText(r, known || c, shown.age)).join(", "),
      shown.reasons.join(","));
  }
  const tamper = c.tamper || [];
  row(dl, t("detail.tamper"), "tamper",
    tamper.length ? tamper.map((x) => TAMPER_LABEL[x] || x).join(", ") : t("detail.none"), tamper.join(","));
  const st = c.status || {};
  row(dl, t("detail.source"), "source_state", SOURCE_LABEL[st.source_state] || st.source_state || "—",
    st.source_state || "");
  row(dl, t("detail.last_seen"), "last_seen", c.last_seen ? `${fmt(c.last_seen)} (${age(c.last_seen)})` : "—",
    c.last_seen || "");
  row(dl, t("detail.fps"), "fps", st.fps_processed != null
    ? `${fmtNum(st.fps_processed, 1)} / ${fmtNum(st.fps_in, 1)}` : "—", st.fps_processed ?? "");
  row(dl, t("detail.position"), "location",
    c.location ? `${fmtNum(c.location.lat, 5)}, ${fmtNum(c.location.lon, 5)}` : "—");
  const cfg = c.config || {};
  row(dl, t("detail.layout"), "layout",
    `${(cfg.lines || []).length} · ${(cfg.lanes || []).length} · ${(cfg.zones || []).length}`);
  if (st.message) row(dl, t("detail.message"), "message", st.message);
  const incs = [...cw.openIncidents.values()].filter((i) => i.camera_id === cam);
  const incList = el("ul", { class: "detail-incidents", "data-count": incs.length });
  for (const i of incs) incList.append(el("li", { "data-incident-id": i.incident_id },
    `${INCIDENT_LABEL[i.incident_type] || i.incident_type} · ${age(i.started_at)}`));
  box.append(title, dl, el("h4", {}, t("detail.open", { n: incs.length })), incList,
    el("h4", {}, t("detail.coverage")));
  if (strip) box.append(strip);
}

/** The panel's health line follows the shown health (aging, link lost) without asking the server. */
function detailHealth() {
  const box = document.getElementById("camera-detail");
  const dd = box.querySelector('dd[data-field="health"]');
  const cam = (cw.cameras || []).find((x) => x.id === selected);
  if (!dd || !cam) return;
  const shown = shownHealth(cam);
  if (dd.getAttribute("data-value") === shown.level) return;
  box.setAttribute("data-health", shown.level);
  dd.setAttribute("data-value", shown.level);
  clear(dd).append(el("span", { class: `state health-${shown.level}` }, HEALTH_LABEL[shown.level] || shown.level));
}

cw.on("select-camera", (cam) => {
  showDetail(cam).catch((e) => {
    if (selected !== cam) return;
    const box = document.getElementById("camera-detail");
    if (box.getAttribute("data-loaded") === cam) return; // keep what is shown; the link banner says the rest
    clear(box).append(el("p", { class: "error", role: "alert", "data-field": "error" }, e.message));
  });
});
cw.on("cameras", (cams) => {
  renderLive();
  detailHealth();
  if (!selected && cams.length) showDetail(cams[0].id).catch(() => {});
});
cw.on("incidents-changed", () => { if (selected) showDetail(selected).catch(() => {}); });
cw.on("start", () => loadLive().catch((e) => console.error(e.message)));
cw.on("refresh", () => { loadLive().catch(() => {}); });

cw.on("lang", () => {
  renderLive();
  if (lastDetail && lastDetail.id === selected) {
    renderDetail(lastDetail, lastStrip);
    if (lastStrip && lastStrip.id === "detail-coverage") {
      lastStrip.setAttribute("aria-label", t("detail.coverage_label"));
      const now = lastStrip.querySelector('text[text-anchor="end"]');
      if (now) now.textContent = t("detail.now");
    }
  }
});


document.addEventListener("DOMContentLoaded", () => {
  setInterval(renderLive, 10000);
  setInterval(() => { if (selected && document.body.dataset.view === "operator") showDetail(selected).catch(() => {}); },
    30000);
});
