// Shared state and helpers of the dashboard's ES modules (no globals: every module imports what it
// reads from here). `cw` holds the session (role, mode), the server's settings (`cw.config`), the
// latest camera list, the open incidents and the link to the server; `cw.on`/`cw.emit` carry live
// events ("start" when signed in, "lang" when the language changes). Labels and formats come from
// i18n.js in the operator's language; times are in the city's time zone, never the browser's.
import {
  cityZone, fmtAge, fmtDuration, fmtNumber, fmtTime, label, labelTable, onLang, setTimeZone, t,
} from "./i18n.js";

const API = "/api/v1";
const handlers = {};

export const cw = {
  role: null,
  mode: null,
  config: { timezone: "Asia/Ho_Chi_Minh", map: { tiles_url: null }, cameras: [], pcu_weights: {} },
  cameras: null,
  /** incident_id -> record, the unresolved incidents (alerts.js keeps it) */
  openIncidents: new Map(),
  /** the page's own link to the server: lostSince (ms) is set while SSE or the API fail */
  link: { ok: true, lostSince: null },
  on(kind, fn) { (handlers[kind] = handlers[kind] || []).push(fn); },
  /** Calls every handler of `kind`; returns what they returned (promises included) so a caller may wait. */
  emit(kind, data) {
    const out = [];
    for (const fn of handlers[kind] || []) {
      try { out.push(fn(data)); } catch (e) { console.error(kind, e); }
    }
    return out;
  },
  api,
  setConfig(config) {
    cw.config = config;
    setTimeZone(config.timezone);
  },
};
onLang((l) => cw.emit("lang", l));

/** An error a person can read: HTTP status and FastAPI's detail turned into one sentence. */
export class ApiError extends Error {
  constructor(status, detail, path) {
    super(friendly(status, detail));
    this.status = status;
    this.detail = detail;
    this.path = path;
  }
}

/** A refused field as the reader knows it ("by" -> "your name"); its API name when the page has no word. */
function fieldName(name) {
  const said = t(`field.${name}`);
  return said === `field.${name}` ? name : said;
}

function friendly(status, detail) {
  if (status === 0) return t("err.network");
  if (status === 403) return t("err.forbidden");
  if (status === 404) return t("err.not_found");
  if (status === 409) return t("err.conflict");
  if (status === 422) {
    const fields = Array.isArray(detail)
      ? [...new Set(detail.map((d) => (d.loc || []).filter((x) => x !== "body" && x !== "query").join(".")))]
        .filter(Boolean).map(fieldName).join(", ")
      : "";
    return t("err.invalid", { fields: fields || "—" });
  }
  if (status === 503) return t("err.unavailable");
  if (status >= 500) return t("err.server", { status });
  return t("err.generic", { status });
}

// The link is up while both the live stream and the last API answer are: either one failing is enough
// to stop believing what the page shows.
const linkParts = { api: true, stream: true };

/** Record whether one part of the link ("api", "stream") works; emits "link" when the whole changes. */
export function reportLink(part, ok) {
  linkParts[part] = ok;
  const up = linkParts.api && linkParts.stream;
  if (up && !cw.link.ok) {
    cw.link = { ok: true, lostSince: null };
    cw.emit("link", cw.link);
  } else if (!up && cw.link.ok) {
    cw.link = { ok: false, lostSince: Date.now() };
    cw.emit("link", cw.link);
  }
}
const linkAnswer = (ok) => reportLink("api", ok);

/** The health a person is shown: the server's rule, aged here too (a frozen page goes stale), and never
 * anything but unknown while the page's own link to the server is down. */
export function shownHealth(cam, now = Date.now()) {
  if (!cam) return { level: "unknown", reasons: [] };
  if (!cw.link.ok) return { level: "unknown", reasons: ["link_lost"] };
  const level = cam.health || "unknown";
  const age = cam.status_age_s == null ? null : cam.status_age_s + (now - (cam._fetched || now)) / 1000;
  if (["ok", "alert", "degraded"].includes(level) && age !== null && cam.stale_after_s && age > cam.stale_after_s) {
    return { level: "stale", reasons: ["status_too_old"], age };
  }
  return { level, reasons: cam.health_reasons || [], age };
}

/** One reason code of the health rule as a phrase in the operator's language. */
export function reasonText(code, cam, age = null) {
  if (code === "link_lost") return t("hl.link_lost");
  if (code === "status_too_old") return t("reason.status_too_old", { age: age == null ? "—" : fmtDuration(age) });
  if (code === "fps_low") {
    const st = (cam && cam.status) || {};
    return t("reason.fps_low", { done: fmtNumber(st.fps_processed, 1), offered: fmtNumber(st.fps_in, 1) });
  }
  if (code === "open_incidents") return t("reason.open_incidents", { n: (cam && cam.open_incidents) || 0 });
  if (code.startsWith("tamper_")) return label("tamper", code.slice(7));
  const key = `reason.${code}`;
  return t(key) === key ? code : t(key);
}

/** GET/POST under /api/v1; throws ApiError with a friendly message; 401 shows the sign-in form. */
async function api(path, options = {}) {
  let r;
  try {
    r = await fetch(API + path, { credentials: "same-origin", ...options });
  } catch (e) {
    linkAnswer(false);
    throw new ApiError(0, String(e), path);
  }
  linkAnswer(r.status !== 502 && r.status !== 504);
  if (r.status === 401) {
    cw.emit("unauthorised", null);
    throw new ApiError(401, null, path);
  }
  if (!r.ok) {
    let detail = null;
    try { detail = (await r.json()).detail; } catch (e) { /* not JSON */ }
    throw new ApiError(r.status, detail, path);
  }
  return r.json();
}

export function el(tag, attrs = {}, text = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  if (text !== null) e.textContent = text;
  return e;
}

export function svg(tag, attrs = {}, text = null) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  if (text !== null) e.textContent = text;
  return e;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

// Label tables, read in the current language (one table per vocabulary, in i18n.js).
export const CLASS_LABEL = labelTable("class");
export const INCIDENT_LABEL = labelTable("incident");
export const SEVERITY_LABEL = labelTable("severity");
export const STATUS_LABEL = labelTable("status");
export const HEALTH_LABEL = labelTable("hl");
export const TAMPER_LABEL = labelTable("tamper");
export const SOURCE_LABEL = labelTable("source");
export const DIR_LABEL = labelTable("dir");
/** Monday first, in the current language; reads like an array (forEach, index). */
export const DAY_LABEL = new Proxy([], {
  get(_, k) {
    const days = [0, 1, 2, 3, 4, 5, 6].map((i) => t(`day.${i}`));
    const v = Reflect.get(days, k);
    return typeof v === "function" ? v.bind(days) : v;
  },
});
export const CLASS_COLOUR = {
  car: "#2f6fdb", truck: "#8e44ad", bus: "#e67e22", motorcycle: "#16a085", bicycle: "#c0392b", person: "#7f8c8d",
};
export { label, t };

export function tz() {
  return cityZone();
}

/** A time in the city's zone; `style` a style name of i18n.fmtTime ("full", "short", "time", "hm"). */
export function fmt(iso, style = "full") {
  return fmtTime(iso, style);
}

export function fmtShort(iso) {
  return fmtTime(iso, "short");
}

export function fmtNum(n, digits = 0) {
  return fmtNumber(n, digits);
}

/** Wall-clock fields of `date` in the city's time zone. */
function zoned(date) {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: tz(), year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hourCycle: "h23",
  }).formatToParts(date);
  const f = Object.fromEntries(parts.map((p) => [p.type, p.value]));
  return { y: +f.year, mo: +f.month, d: +f.day, h: +f.hour, mi: +f.minute, s: +f.second };
}

/** Offset of the city's time zone from UTC at `date`, in minutes. */
export function tzOffsetMin(date) {
  const z = zoned(date);
  const asUtc = Date.UTC(z.y, z.mo - 1, z.d, z.h, z.mi, z.s);
  return Math.round((asUtc - Math.floor(date.getTime() / 1000) * 1000) / 60000);
}

function pad(n, w = 2) { return String(n).padStart(w, "0"); }

function offsetText(min) {
  const sign = min < 0 ? "-" : "+";
  const a = Math.abs(min);
  return `${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

/** A time field's text read as the city's wall-clock time -> ISO 8601 with its offset; null when it is not a
 * time. The fields show the page's one format, "dd/mm/yyyy hh:mm" (a browser's own date control would show
 * its locale's, e.g. "12/06/2026, 06:00 AM" beside charts that read "06/12"); "yyyy-mm-ddThh:mm" is read too. */
export function localInputToIso(value) {
  const v = String(value || "").trim();
  let m = /^(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{2})$/.exec(v);
  let y, mo, d, h, mi;
  if (m) [, y, mo, d, h, mi] = m.map(Number);
  else if ((m = /^(\d{1,2})\/(\d{1,2})\/(\d{4}),?\s+(\d{1,2}):(\d{2})$/.exec(v))) [, d, mo, y, h, mi] = m.map(Number);
  else return null;
  const naive = Date.UTC(y, mo - 1, d, h, mi);
  const back = new Date(naive);
  if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59) return null; // 31/02, 25:00
  let off = tzOffsetMin(new Date(naive));
  off = tzOffsetMin(new Date(naive - off * 60000));
  return `${y}-${pad(mo)}-${pad(d)}T${pad(h)}:${pad(mi)}:00${offsetText(off)}`;
}

/** A time -> a time field's text: its wall-clock time in the city, "dd/mm/yyyy hh:mm". */
export function toLocalInput(date) {
  const z = zoned(date);
  return `${pad(z.d)}/${pad(z.mo)}/${z.y} ${pad(z.h)}:${pad(z.mi)}`;
}

export function age(iso, now = Date.now()) {
  return fmtAge(iso, now);
}

export function cameraName(id) {
  const c = (cw.config.cameras || []).find((x) => x.id === id);
  return c && c.name && c.name !== id ? `${c.name} (${id})` : id;
}

export function canOperate() {
  return cw.role === "operator" || cw.role === "admin";
}
