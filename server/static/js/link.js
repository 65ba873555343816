// The page's own link to the server: the one live stream (SSE), a watchdog that asks the server every few
// seconds, and the banner that says loudly when the link is lost (within 10 s), so that nothing on the page
// is believed while nobody hears from the server. Also the system banner from /health (database, ingest).
import { cw, reportLink } from "./core.js";
import { fmtAge, fmtTime, t } from "./i18n.js";

const API = "/api/v1";
const LIVE_KINDS = ["line_crossing", "camera_status", "camera_state", "incident_alert", "incident_status",
  "incident_escalated", "incident", "zone_occupancy", "movement", "count_total", "dropped"];
/** How often the watchdog asks /health, and how long it waits for the answer (lost within 10 s). */
const PROBE_MS = 3000, PROBE_TIMEOUT_MS = 4000;
let source = null;

function setLive(state) {
  const s = document.getElementById("live-status");
  s.setAttribute("data-state", state);
  const text = document.getElementById("live-status-text");
  text.setAttribute("data-i18n", `live.${state === "open" ? "open" : state === "error" ? "error" : "connecting"}`);
  text.textContent = t(text.getAttribute("data-i18n"));
}

export function connectLive() {
  if (source) source.close();
  source = new EventSource(API + "/events/live", { withCredentials: true });
  setLive("connecting");
  source.onopen = () => { setLive("open"); reportLink("stream", true); };
  source.onerror = () => { setLive("error"); reportLink("stream", false); };
  for (const kind of LIVE_KINDS) {
    source.addEventListener(kind, (m) => cw.emit(kind, JSON.parse(m.data)));
  }
}

export function closeLive() {
  if (source) { source.close(); source = null; }
  reportLink("stream", true);
}

function renderLink() {
  const banner = document.getElementById("link-banner");
  const lost = !cw.link.ok;
  banner.hidden = !lost;
  document.body.setAttribute("data-link", lost ? "lost" : "ok");
  if (lost) {
    document.getElementById("link-banner-text").textContent = t("link.lost");
    document.getElementById("link-banner-detail").textContent = t("link.lost_since", {
      time: fmtTime(new Date(cw.link.lostSince), "time"), age: fmtAge(cw.link.lostSince) });
  }
}
cw.on("link", (l) => {
  renderLink();
  if (l.ok) cw.emit("refresh", null); // back: reload what may have changed meanwhile
});
cw.on("lang", renderLink);

// --- system health banner (/health needs no key; it answers 503 with a body when the database fails) ---
const PROBLEM_KEY = {
  db_down: "health.db_down", db_slow: "health.db_slow", stalled: "health.stalled",
  retrying: "health.retrying", disconnected: "health.disconnected", degraded: "health.degraded",
};
let lastHealth = null;

function healthProblem(h) {
  if (!h || h.status === "ok") return null;
  const ingest = h.ingest && h.ingest.state !== "ok" ? h.ingest.state : null;
  if (h.db && h.db.state === "down") return "db_down";
  if (ingest === "stalled") return "stalled";
  if (h.db && h.db.state === "slow") return "db_slow";
  return ingest || "degraded";
}

function renderHealth() {
  const banner = document.getElementById("system-banner");
  const h = lastHealth;
  const problem = h ? healthProblem(h) : null;
  banner.setAttribute("data-status", (h && h.status) || "ok");
  banner.setAttribute("data-problem", problem || "");
  banner.hidden = !problem;
  if (!problem) return;
  document.getElementById("system-banner-text").textContent = t(PROBLEM_KEY[problem] || PROBLEM_KEY.degraded);
  document.getElementById("system-banner-detail").textContent = (h.problems || []).join(" · ");
}
cw.on("lang", renderHealth);

/** One probe: true when the server answered (whatever it said about its database). */
async function probe() {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), PROBE_TIMEOUT_MS);
  try {
    const r = await fetch(API + "/health", { credentials: "same-origin", signal: ctl.signal });
    lastHealth = await r.json();
    reportLink("api", true);
    return true;
  } catch (e) {
    reportLink("api", false);
    return false;
  } finally {
    clearTimeout(timer);
    renderHealth();
  }
}

export async function pollHealth() {
  await probe();
  setTimeout(pollHealth, PROBE_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  setInterval(() => { if (!cw.link.ok) renderLink(); }, 1000); // the age in the banner keeps counting
});
