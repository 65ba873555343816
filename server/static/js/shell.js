// The page shell: operator/planner tabs (#operator, #planner), role badge, sign-out, the city clock,
// the sound switch, and the camera registry every view shares (`cw.emit("cameras", list)`).
import { cw, fmt } from "./core.js";

const ROLE_LABEL = { operator: "Trực ban / Operator", planner: "Quy hoạch / Planner", admin: "Quản trị / Admin" };
let started = false;
let cameraTimer = null;
let pending = null;

export function showView(name) {
  const view = name === "planner" ? "planner" : "operator";
  for (const v of document.querySelectorAll("#dashboard > .view")) v.hidden = v.dataset.view !== view;
  for (const b of document.querySelectorAll("#view-tabs button")) {
    b.setAttribute("aria-selected", String(b.dataset.view === view));
  }
  document.body.setAttribute("data-view", view);
  cw.emit("view", view);
}

async function refreshCameras() {
  try {
    const data = await cw.api("/cameras");
    cw.cameras = data.cameras;
    cw.emit("cameras", data.cameras);
  } catch (e) {
    console.error(e);
  }
}

function soon() {
  if (!pending) pending = setTimeout(() => { pending = null; refreshCameras(); }, 250);
}

function tick() {
  const c = document.getElementById("server-clock");
  c.textContent = fmt(new Date().toISOString(), { hour: "2-digit", minute: "2-digit", second: "2-digit",
    day: "2-digit", month: "2-digit", year: "numeric" }) + ` (${cw.config.timezone})`;
  c.setAttribute("data-tz", cw.config.timezone);
}

cw.on("start", ({ role, mode }) => {
  const badge = document.getElementById("role-badge");
  badge.textContent = ROLE_LABEL[role] || role;
  badge.setAttribute("data-role", role);
  badge.hidden = false;
  document.getElementById("logout").hidden = mode === "open";
  document.getElementById("view-tabs").hidden = false;
  document.getElementById("sound-toggle").hidden = false;
  const wanted = location.hash.replace("#", "") || (role === "planner" ? "planner" : "operator");
  showView(wanted);
  tick();
  refreshCameras();
  if (!started) {
    started = true;
    setInterval(tick, 1000);
  }
  clearInterval(cameraTimer);
  cameraTimer = setInterval(refreshCameras, 10000);
});

cw.on("logout", () => {
  clearInterval(cameraTimer);
  for (const id of ["role-badge", "logout", "view-tabs", "sound-toggle"]) document.getElementById(id).hidden = true;
});
cw.on("camera_state", soon);
cw.on("camera_status", (ev) => { if ((ev.tamper || []).length || ev.source_state !== "ok") soon(); });

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("#view-tabs button")) {
    b.addEventListener("click", () => { location.hash = b.dataset.view; });
  }
  window.addEventListener("hashchange", () => showView(location.hash.replace("#", "")));
  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("/api/v1/session", { method: "DELETE", credentials: "same-origin" });
    cw.showLogin();
  });
  const sound = document.getElementById("sound-toggle");
  sound.addEventListener("click", () => {
    const on = sound.getAttribute("aria-pressed") !== "true";
    sound.setAttribute("aria-pressed", String(on));
    sound.textContent = on ? "Âm thanh: bật / Sound: on" : "Âm thanh: tắt / Sound: off";
    cw.emit("sound", on);
  });
});
