// The camera table (operator: health by the one rule, why, connection and last seen), the engineer's table
// (committed seq, outbox, inference, fps offered/processed, versions) and the "what is wrong now" strip at
// the top of the operator view. All three read the same `shownHealth` as the map and the camera panel.
import {
  clear, cw, el, fmt, fmtNum, HEALTH_LABEL, reasonText, shownHealth, t,
} from "./core.js";
import { fmtAge } from "./i18n.js";

const BAD = ["down", "stale", "degraded", "unknown"];
const RANK = { down: 0, stale: 1, degraded: 2, unknown: 3, alert: 4, ok: 5 };

export function healthPill(level) {
  return el("span", { class: `state health-${level}`, "data-health": level }, HEALTH_LABEL[level] || level);
}

function whyText(cam, h) {
  return h.reasons.map((r) => reasonText(r, cam, h.age)).join(", ");
}

function renderTable(cams) {
  const body = clear(document.getElementById("cameras-body"));
  const now = Date.now();
  const rows = cams.map((c) => ({ c, h: shownHealth(c, now) }))
    .sort((a, b) => (RANK[a.h.level] - RANK[b.h.level]) || a.c.id.localeCompare(b.c.id));
  for (const { c, h } of rows) {
    const tr = el("tr", { "data-camera-id": c.id, "data-health": h.level, tabindex: 0 });
    const health = el("td", { "data-field": "health", "data-value": h.level });
    health.append(healthPill(h.level));
    const seen = el("td", { "data-field": "last_seen", "data-value": c.last_seen || "" });
    const state = c.stale ? "stale" : c.state;
    seen.append(el("span", { "data-field": "state", "data-value": state, class: "muted small" },
      t(`state.${state}`) + " · "), document.createTextNode(c.last_seen ? fmtAge(c.last_seen) : "—"));
    seen.title = fmt(c.last_seen);
    const st = c.status || {};
    tr.append(
      el("td", { "data-field": "name" }, c.name && c.name !== c.id ? `${c.name} (${c.id})` : c.id),
      health,
      el("td", { "data-field": "why", class: "why" }, whyText(c, h)),
      seen,
      el("td", { "data-field": "fps", class: "num", "data-value": st.fps_processed ?? "" },
        st.fps_processed != null ? fmtNum(st.fps_processed, 1) : "—"),
    );
    body.append(tr);
  }
}

function renderEngineer(cams) {
  const body = clear(document.getElementById("engineer-body"));
  for (const c of cams) {
    const st = c.status || {};
    const num = (field, v, digits = 0) => el("td", { "data-field": field, class: "num", "data-value": v ?? "" },
      v != null ? fmtNum(v, digits) : "—");
    const tr = el("tr", { "data-camera-id": c.id });
    tr.append(
      el("td", {}, c.id),
      num("committed_seq", c.committed_seq),
      num("outbox_depth", st.outbox_depth),
      num("inference_ms", st.inference_ms, 1),
      num("fps_in", st.fps_in, 1),
      num("fps_processed", st.fps_processed, 1),
      el("td", { "data-field": "model_version" }, c.model_version || "—"),
      el("td", { "data-field": "config_version" }, c.config_version || "—"),
    );
    body.append(tr);
  }
}

/** The first thing on the wall screen: open incidents, cameras with a problem, each with its reason. */
function renderNow(cams) {
  const now = Date.now();
  const open = cw.openIncidents.size;
  const bad = cams.map((c) => ({ c, h: shownHealth(c, now) })).filter(({ h }) => BAD.includes(h.level))
    .sort((a, b) => RANK[a.h.level] - RANK[b.h.level]);
  const box = document.getElementById("now-strip");
  box.setAttribute("data-open", String(open));
  box.setAttribute("data-bad", String(bad.length));
  box.setAttribute("data-state", !cw.link.ok ? "lost" : open || bad.length ? "attention" : "ok");
  const nOpen = document.getElementById("now-open");
  nOpen.textContent = fmtNum(open);
  nOpen.setAttribute("data-count", String(open));
  const nBad = document.getElementById("now-bad");
  nBad.textContent = fmtNum(bad.length);
  nBad.setAttribute("data-count", String(bad.length));
  const nOk = document.getElementById("now-ok");
  const ok = cams.filter((c) => ["ok", "alert"].includes(shownHealth(c, now).level)).length;
  nOk.textContent = fmtNum(ok);
  nOk.setAttribute("data-count", String(ok));
  const list = clear(document.getElementById("now-list"));
  if (!open && !bad.length && cw.link.ok) list.append(el("li", { class: "all-ok" }, t("now.all_ok")));
  for (const { c, h } of bad) {
    const li = el("li", { "data-camera-id": c.id, "data-health": h.level });
    const b = el("button", { type: "button", class: "linkish" }, c.name || c.id);
    b.addEventListener("click", () => cw.emit("select-camera", c.id));
    li.append(healthPill(h.level), b, el("span", { class: "why" }, whyText(c, h)));
    list.append(li);
  }
}

function renderAll() {
  const cams = cw.cameras || [];
  renderTable(cams);
  renderEngineer(cams);
  renderNow(cams);
}

cw.on("cameras", renderAll);
cw.on("incidents-changed", () => renderNow(cw.cameras || []));
cw.on("lang", renderAll);

document.addEventListener("DOMContentLoaded", () => {
  const body = document.getElementById("cameras-body");
  const pick = (e) => {
    const tr = e.target.closest("tr[data-camera-id]");
    if (tr) cw.emit("select-camera", tr.getAttribute("data-camera-id"));
  };
  body.addEventListener("click", pick);
  body.addEventListener("keydown", (e) => { if (e.key === "Enter") pick(e); });
  setInterval(() => { if (cw.cameras && document.body.dataset.view === "operator") renderTable(cw.cameras); }, 5000);
});
