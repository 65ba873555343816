// The page shell: operator/planner/engineer tabs (#operator, #planner, #engineer; #editor for admins), role badge, language
// switch, sign-out, the city clock with its zone named, the sound switch, and the camera registry every
// view shares (`cw.emit("cameras", list)`), re-emitted whenever the health a person is shown changes
// (a status ages into "stale" on the page itself, the link to the server is lost or back).
import { cw, shownHealth } from "./core.js";
import { fmtTime, t, zoneName } from "./i18n.js";

let started = false;
let cameraTimer = null;
let pending = null;
let shownSig = "";

export function showView(name) {
  const views = cw.role === "admin" ? ["planner", "engineer", "editor"] : ["planner", "engineer"];
  const view = views.includes(name) ? name : "operator";
  for (const v of document.querySelectorAll("#dashboard > .view")) v.hidden = v.dataset.view !== view;
  for (const b of document.querySelectorAll("#view-tabs button")) {
    b.setAttribute("aria-selected", String(b.dataset.view === view));
  }
  document.body.setAttribute("data-view", view);
  cw.emit("view", view);
}

function signature() {
  const now = Date.now();
  return (cw.cameras || []).map((c) => `${c.id}:${shownHealth(c, now).level}`).join(",") + `|${cw.link.ok}`;
}

function publish() {
  shownSig = signature();
  cw.emit("cameras", cw.cameras || []);
}

async function refreshCameras() {
  try {
    const data = await cw.api("/cameras");
    const now = Date.now();
    for (const c of data.cameras) c._fetched = now;
    cw.cameras = data.cameras;
    publish();
  } catch (e) {
    if (e.status !== 401) console.error(e.message);
  }
}

let publishing = null;
function publishSoon() {
  if (!publishing) publishing = setTimeout(() => { publishing = null; publish(); }, 500);
}

function soon() {
  if (!pending) pending = setTimeout(() => { pending = null; refreshCameras(); }, 250);
}

function tick() {
  const c = document.getElementById("server-clock");
  const now = new Date();
  document.getElementById("clock-time").textContent = fmtTime(now, "time");
  document.getElementById("clock-date").textContent = fmtTime(now, "date");
  document.getElementById("clock-zone").textContent = zoneName(now);
  c.setAttribute("data-tz", cw.config.timezone);
  if (cw.cameras && signature() !== shownSig) publish();
}

function roleBadge() {
  const badge = document.getElementById("role-badge");
  const role = cw.role;
  if (!role) return;
  const name = localStorage.getItem("citywatch.operator");
  badge.textContent = t(`role.${role}`) + (name ? ` · ${name}` : "");
  badge.setAttribute("data-role", role);
}

cw.on("start", ({ role, mode }) => {
  roleBadge();
  document.getElementById("role-badge").hidden = false;
  document.getElementById("logout").hidden = mode === "open";
  document.getElementById("view-tabs").hidden = false;
  document.getElementById("sound-toggle").hidden = false;
  const wanted = location.hash.replace("#", "") || (role === "planner" ? "planner" : "operator");
  showView(wanted);
  tick();
  if (!started) {
    started = true;
    setInterval(tick, 1000);
  }
  clearInterval(cameraTimer);
  cameraTimer = setInterval(refreshCameras, 10000);
  return refreshCameras();
});

cw.on("logout", () => {
  clearInterval(cameraTimer);
  for (const id of ["role-badge", "logout", "view-tabs", "sound-toggle"]) document.getElementById(id).hidden = true;
});
cw.on("camera_state", soon);
cw.on("incidents-changed", soon);
cw.on("refresh", soon);
cw.on("link", publish);
cw.on("camera_status", (ev) => {
  const cam = (cw.cameras || []).find((c) => c.id === ev.camera_id);
  if (!cam) { soon(); return; }
  const wasFine = cam.health === "ok" || cam.health === "alert";
  cam.status_age_s = 0; // heard from just now
  cam._fetched = Date.now();
  cam.last_seen = new Date().toISOString();
  cam.status = { ...(cam.status || {}), ...ev };
  // anything that may change the level goes back to the one rule on the server
  if (!wasFine || (ev.tamper || []).length || ev.source_state !== "ok") soon();
  else publishSoon(); // the new figures (fps, outbox) show without waiting for the next refresh
});
cw.on("lang", () => { roleBadge(); tick(); soundLabel(); });
cw.on("operator-name", roleBadge);

function soundLabel() {
  const sound = document.getElementById("sound-toggle");
  sound.textContent = t(sound.getAttribute("aria-pressed") === "true" ? "sound.on" : "sound.off");
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("#view-tabs button")) {
    b.addEventListener("click", () => { location.hash = b.dataset.view; });
  }
  window.addEventListener("hashchange", () => showView(location.hash.replace("#", "")));
  document.getElementById("logout").addEventListener("click", () => cw.emit("sign-out", null));
  const sound = document.getElementById("sound-toggle");
  sound.addEventListener("click", () => {
    const on = sound.getAttribute("aria-pressed") !== "true";
    sound.setAttribute("aria-pressed", String(on));
    soundLabel();
    cw.emit("sound", on);
  });
  soundLabel();
});
