// Operator view: live counts and mean speed per camera over the last 15 minutes (from /flow, then the live
// stream, no reload), and the camera detail panel: health, tamper signs, edge status, open incidents and
// the last 24 hours of observation, where the hours a camera was down are drawn as gaps.
import {
  age, clear, cw, el, fmt, fmtNum, fmtShort, HEALTH_LABEL, INCIDENT_LABEL, SOURCE_LABEL, svg, TAMPER_LABEL,
} from "./core.js";

const MIN = 60000;
const WINDOW = 15 * MIN;
const minutes = new Map(); // camera -> Map(minute ms -> {n, speedSum, speedN})
let since = Infinity; // events before this are in the /flow answer already
let selected = null;

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
  const cutoff = Date.now() - WINDOW;
  for (const c of cams) {
    let card = box.querySelector(`[data-camera-id="${CSS.escape(c.id)}"]`);
    if (!card) {
      card = el("button", { type: "button", class: "live-card", "data-camera-id": c.id });
      card.append(
        el("span", { class: "live-name" }), el("span", { class: "live-health" }),
        el("span", { class: "live-count", "data-field": "count" }), el("span", { class: "live-unit" }, "lượt / crossings"),
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
    const h = card.querySelector(".live-health");
    h.textContent = HEALTH_LABEL[c.health] || c.health;
    h.className = `live-health health-${c.health}`;
    card.setAttribute("data-health", c.health);
    const cnt = card.querySelector('[data-field="count"]');
    cnt.textContent = fmtNum(n);
    cnt.setAttribute("data-value", String(n));
    const sp = card.querySelector('[data-field="speed"]');
    sp.textContent = speed === null ? "Tốc độ TB / Mean speed: —" : `Tốc độ TB / Mean speed: ${fmtNum(speed, 1)} km/h`;
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
    "aria-label": "Độ phủ dữ liệu 24 giờ / 24 h data coverage" });
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
  s.append(svg("text", { x: W, y: H + 12, "text-anchor": "end" }, "bây giờ / now"));
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
  clear(box);
  box.setAttribute("data-health", c.health);
  const title = el("h3", {}, c.name && c.name !== c.id ? `${c.name} (${c.id})` : c.id);
  const dl = el("dl", { class: "detail" });
  const health = el("span", { class: `state health-${c.health}` }, HEALTH_LABEL[c.health] || c.health);
  dl.append(el("dt", {}, "Tình trạng / Health"));
  const dd = el("dd", { "data-field": "health", "data-value": c.health });
  dd.append(health);
  dl.append(dd);
  const tamper = c.tamper || [];
  row(dl, "Dấu hiệu phá hoại / Tamper", "tamper",
    tamper.length ? tamper.map((t) => TAMPER_LABEL[t] || t).join(", ") : "Không / None", tamper.join(","));
  const st = c.status || {};
  row(dl, "Nguồn hình / Source", "source_state", SOURCE_LABEL[st.source_state] || st.source_state || "—",
    st.source_state || "");
  row(dl, "Kết nối / Connection", "state", c.stale ? "mất tín hiệu / stale" : c.state, c.stale ? "stale" : c.state);
  row(dl, "Lần cuối / Last seen", "last_seen", c.last_seen ? `${fmt(c.last_seen)} (${age(c.last_seen)})` : "—",
    c.last_seen || "");
  row(dl, "FPS xử lý / FPS processed", "fps", st.fps_processed != null ? fmtNum(st.fps_processed, 1) : "—",
    st.fps_processed ?? "");
  row(dl, "Suy luận / Inference", "inference_ms", st.inference_ms != null ? `${fmtNum(st.inference_ms, 1)} ms` : "—",
    st.inference_ms ?? "");
  row(dl, "Hàng đợi biên / Edge outbox", "outbox_depth", st.outbox_depth != null ? String(st.outbox_depth) : "—",
    st.outbox_depth ?? "");
  row(dl, "Vị trí / Position", "location",
    c.location ? `${c.location.lat.toFixed(5)}, ${c.location.lon.toFixed(5)}` : "—");
  const cfg = c.config || {};
  row(dl, "Vạch · làn · vùng / Lines · lanes · zones", "layout",
    `${(cfg.lines || []).length} · ${(cfg.lanes || []).length} · ${(cfg.zones || []).length}`);
  row(dl, "Mô hình / Model", "model_version", c.model_version || "—");
  if (st.message) row(dl, "Thông báo / Message", "message", st.message);
  const incs = [...(cw.openIncidents || new Map()).values()].filter((i) => i.camera_id === cam);
  const incList = el("ul", { class: "detail-incidents", "data-count": incs.length });
  for (const i of incs) incList.append(el("li", { "data-incident-id": i.incident_id },
    `${INCIDENT_LABEL[i.incident_type] || i.incident_type} · ${age(i.started_at)}`));
  box.append(title, dl, el("h4", {}, `Sự cố đang mở / Open incidents (${incs.length})`), incList,
    el("h4", {}, "Dữ liệu 24 giờ qua (ô đỏ = mất dữ liệu) / Last 24 h of data (red = gap)"));
  try {
    box.append(await coverageStrip(cam));
  } catch (e) {
    box.append(el("p", { class: "error" }, String(e.message)));
  }
  box.setAttribute("data-loaded", cam);
}

cw.on("select-camera", (cam) => { showDetail(cam).catch((e) => console.error(e)); });
cw.on("cameras", (cams) => {
  renderLive();
  if (!selected && cams.length) showDetail(cams[0].id).catch(() => {});
});
cw.on("incidents-changed", () => { if (selected) showDetail(selected).catch(() => {}); });
cw.on("start", () => { loadLive().catch((e) => console.error(e)); });

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("cameras-body").addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-camera-id]");
    if (tr) cw.emit("select-camera", tr.getAttribute("data-camera-id"));
  });
  setInterval(renderLive, 10000);
  setInterval(() => { if (selected && document.body.dataset.view === "operator") showDetail(selected).catch(() => {}); },
    30000);
});
