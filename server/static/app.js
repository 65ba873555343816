// citywatch dashboard, the one entry module: plain JS, no libraries, nothing from the internet. It imports
// every feature module (each registers its handlers on `cw` from core.js when imported), then runs the
// session: sign-in, settings, the live stream, and "start" for the modules. Nothing is read back from
// globals, so the page does not depend on script order.
import { cw, reportLink } from "./js/core.js";
import { applyStatic, lang, setLang, t } from "./js/i18n.js";
import { connectLive, closeLive, pollHealth } from "./js/link.js";
import "./js/shell.js";
import "./js/cameras.js";
import "./js/counts.js";
import "./js/map.js";
import "./js/alerts.js";
import "./js/operator.js";
import "./js/planner.js";
import "./js/planner-more.js";
import "./js/forecast.js";
import "./js/picture.js";
import "./js/editor.js";

const API = "/api/v1";
const NAME_KEY = "citywatch.operator";

function showLogin() {
  document.getElementById("login").hidden = false;
  document.getElementById("dashboard").hidden = true;
  closeLive();
  document.body.setAttribute("data-ready", "false");
  cw.emit("logout", null);
}

async function login(ev) {
  ev.preventDefault();
  const key = document.getElementById("login-key").value;
  const name = document.getElementById("login-name").value.trim();
  const err = document.getElementById("login-error");
  let r;
  try {
    r = await fetch(API + "/session", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ key }),
    });
  } catch (e) {
    err.textContent = t("err.network");
    err.setAttribute("data-state", "network");
    return;
  }
  if (!r.ok) {
    err.setAttribute("data-i18n", "session.invalid");
    applyStatic(document.getElementById("login"));
    err.setAttribute("data-state", "invalid");
    return;
  }
  // the name on every acknowledgement of this session: the person who signs in, never the one before
  if (name) localStorage.setItem(NAME_KEY, name);
  else localStorage.removeItem(NAME_KEY);
  document.getElementById("login-key").value = "";
  err.removeAttribute("data-i18n");
  err.textContent = "";
  err.setAttribute("data-state", "");
  start();
}

async function start() {
  let who;
  try {
    who = await cw.api("/session");
  } catch (e) {
    if (e.status !== 401) console.error(e);
    return; // the sign-in form is shown
  }
  cw.role = who.role;
  cw.mode = who.mode;
  document.body.setAttribute("data-role", who.role);
  try {
    cw.setConfig(await cw.api("/ui-config"));
  } catch (e) {
    console.error(e); // keep the defaults
  }
  document.getElementById("login").hidden = true;
  document.getElementById("dashboard").hidden = false;
  connectLive();
  await Promise.allSettled(cw.emit("start", { role: cw.role, mode: cw.mode, config: cw.config }));
  document.body.setAttribute("data-ready", "true");
}

cw.on("unauthorised", showLogin);
cw.on("sign-out", async () => {
  await fetch(API + "/session", { method: "DELETE", credentials: "same-origin" }).catch(() => {});
  localStorage.removeItem(NAME_KEY);
  for (const id of ["login-name", "operator-name"]) document.getElementById(id).value = "";
  showLogin();
});

function init() {
  applyStatic();
  const sw = document.getElementById("lang-switch");
  sw.addEventListener("click", () => setLang(lang() === "vi" ? "en" : "vi"));
  document.getElementById("login-name").value = localStorage.getItem(NAME_KEY) || "";
  document.getElementById("login-form").addEventListener("submit", login);
  reportLink("api", true);
  start();
  pollHealth();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
