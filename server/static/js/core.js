// Shared helpers of the dashboard modules: DOM building, labels (Vietnamese first, then English) and
// times in the city's time zone (the server's `server.timezone`, never the browser's).

export const cw = globalThis.cw;

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

export const CLASS_LABEL = {
  car: "Ô tô / Car", truck: "Xe tải / Truck", bus: "Xe buýt / Bus",
  motorcycle: "Xe máy / Motorcycle", bicycle: "Xe đạp / Bicycle", person: "Người đi bộ / Person",
};
export const CLASS_COLOUR = {
  car: "#2f6fdb", truck: "#8e44ad", bus: "#e67e22", motorcycle: "#16a085", bicycle: "#c0392b", person: "#7f8c8d",
};
export const INCIDENT_LABEL = {
  stopped_vehicle: "Xe dừng / Stopped vehicle",
  wrong_way: "Đi ngược chiều / Wrong way",
  congestion: "Ùn tắc / Congestion",
  pedestrian_on_carriageway: "Người đi bộ trên đường / Pedestrian on carriageway",
  cyclist_on_carriageway: "Xe đạp trên làn xe / Cyclist on carriageway",
  crash_candidate: "Nghi va chạm / Possible crash",
  flow_anomaly: "Lưu lượng bất thường / Unusual flow",
};
export const SEVERITY_LABEL = { low: "Thấp / Low", medium: "Trung bình / Medium", high: "Cao / High" };
export const STATUS_LABEL = { new: "Mới / New", acknowledged: "Đã xác nhận / Acknowledged", resolved: "Đã xử lý / Resolved" };
export const HEALTH_LABEL = {
  ok: "Tốt / OK", degraded: "Suy giảm / Degraded", down: "Mất kết nối / Down", unknown: "Chưa rõ / Unknown",
};
export const TAMPER_LABEL = {
  view_moved: "Camera bị xoay / View moved", covered: "Bị che / Covered",
  out_of_focus: "Mất nét / Out of focus", too_dark: "Quá tối / Too dark",
};
export const SOURCE_LABEL = {
  starting: "Đang khởi động / Starting", ok: "Bình thường / OK", reconnecting: "Đang kết nối lại / Reconnecting",
  ended: "Đã kết thúc / Ended", error: "Lỗi / Error",
};
export const DAY_LABEL = ["T2 / Mon", "T3 / Tue", "T4 / Wed", "T5 / Thu", "T6 / Fri", "T7 / Sat", "CN / Sun"];

export function tz() {
  return (cw.config && cw.config.timezone) || "Asia/Ho_Chi_Minh";
}

export function fmt(iso, opts = {}) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString("vi-VN", { hour12: false, timeZone: tz(), ...opts });
}

export function fmtShort(iso) {
  return fmt(iso, { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" });
}

export function fmtNum(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Number(n).toLocaleString("vi-VN", { maximumFractionDigits: digits, minimumFractionDigits: digits });
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

/** `<input type=datetime-local>` value, read as the city's wall-clock time -> ISO 8601 with its offset. */
export function localInputToIso(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value || "");
  if (!m) return null;
  const naive = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  let off = tzOffsetMin(new Date(naive));
  off = tzOffsetMin(new Date(naive - off * 60000));
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:00${offsetText(off)}`;
}

/** A time -> the `<input type=datetime-local>` value of its wall-clock time in the city. */
export function toLocalInput(date) {
  const z = zoned(date);
  return `${z.y}-${pad(z.mo)}-${pad(z.d)}T${pad(z.h)}:${pad(z.mi)}`;
}

/** "3 phút trước / 3 min ago" */
export function age(iso, now = Date.now()) {
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s} giây trước / ${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} phút trước / ${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} giờ ${m % 60} phút trước / ${h} h ${m % 60} min ago`;
  return `${Math.floor(h / 24)} ngày trước / ${Math.floor(h / 24)} days ago`;
}

export function cameraName(id) {
  const c = (cw.config.cameras || []).find((x) => x.id === id);
  return c && c.name && c.name !== id ? `${c.name} (${id})` : id;
}

export function canOperate() {
  return cw.role === "operator" || cw.role === "admin";
}
