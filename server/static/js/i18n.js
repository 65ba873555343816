// Language and formats: every word on the page comes from t(key, params) in the operator's language
// (Vietnamese by default, English on request, remembered in localStorage), every time from fmtTime (the
// city's time zone, named) and every number from fmtNumber, one format per locale. Label tables (vehicle
// classes, incident types, health...) live here only, as keys "class.car", "incident.wrong_way"...
// Static text in index.html carries data-i18n="key" (also data-i18n-title, -placeholder, -aria-label).

const STORE_KEY = "citywatch.lang";
export const LANGS = ["vi", "en"];
const LOCALE = { vi: "vi-VN", en: "en-GB" };

const vi = {
  "app.title": "Giám sát giao thông",
  "app.tagline": "Giám sát giao thông",
  "lang.switch": "English",
  "lang.switch_title": "Đổi ngôn ngữ sang tiếng Anh",
  "tab.operator": "Điều hành", "tab.planner": "Quy hoạch", "tab.engineer": "Kỹ thuật",
  "clock.title": "Giờ thành phố",
  "sound.title": "Âm báo sự cố", "sound.on": "Âm thanh: bật", "sound.off": "Âm thanh: tắt",
  "session.sign_out": "Đăng xuất", "session.sign_in": "Đăng nhập", "session.key": "Khóa API",
  "session.name": "Tên của bạn (ghi vào nhật ký xử lý)", "session.invalid": "Khóa không hợp lệ",
  "session.signed_in_as": "Người trực: {name}", "session.no_name": "Chưa nhập tên",
  "role.operator": "Trực ban", "role.planner": "Quy hoạch", "role.admin": "Quản trị",
  "live.connecting": "Đang kết nối", "live.open": "Trực tiếp", "live.error": "Mất kết nối, đang thử lại",
  "live.title": "Luồng trực tiếp",
  "link.lost": "MẤT KẾT NỐI VỚI MÁY CHỦ — dữ liệu trên màn hình không còn được cập nhật",
  "link.lost_since": "Mất từ {time} ({age}). Trạng thái camera không xác định cho đến khi kết nối lại.",
  "link.back": "Đã kết nối lại với máy chủ",
  "banner.show": "Xem", "banner.dismiss": "Đóng",
  "banner.new_incident": "Sự cố mới: {what} — {camera} — {time}",
  "banner.not_acked": "Sự cố chưa được xác nhận: {what} — {camera} — {time}",
  "health.db_down": "Mất kết nối cơ sở dữ liệu", "health.db_slow": "Cơ sở dữ liệu không phản hồi",
  "health.stalled": "Dữ liệu đến bị ùn, chưa được lưu", "health.retrying": "Đang thử ghi lại dữ liệu",
  "health.disconnected": "Mất kết nối MQTT", "health.degraded": "Nhiều bản tin lỗi",
  "now.title": "Cần xử lý ngay", "now.all_ok": "Mọi camera hoạt động bình thường, không có sự cố đang mở",
  "now.open": "sự cố mở", "now.cameras_bad": "camera có vấn đề", "now.cameras_ok": "camera đang hoạt động",
  "now.crossings": "lượt qua vạch (24 giờ)",
  "map.title": "Bản đồ camera", "map.no_position": "Chưa có vị trí: {names}",
  "map.none_placed": "Chưa có camera nào có toạ độ", "map.north": "B",
  "alerts.title": "Cảnh báo sự cố", "alerts.empty": "Không có sự cố đang mở",
  "alerts.operator_name": "Tên trực ban", "alerts.name_needed": "Nhập tên trực ban trước khi xác nhận",
  "alerts.new_waiting": "{n} cảnh báo mới — hiện", "alerts.filter": "Lọc", "alerts.filter_all": "Tất cả",
  "alerts.filter_camera": "Camera", "alerts.filter_type": "Loại", "alerts.filter_status": "Trạng thái",
  "alerts.select_all": "Chọn tất cả", "alerts.ack_selected": "Xác nhận đã chọn ({n})",
  "alerts.group": "{camera} · {type} · {n}", "alerts.open_tab": "Đang mở", "alerts.history_tab": "Lịch sử",
  "alerts.history_empty": "Chưa có sự cố đã xử lý", "alerts.ended": "Đã kết thúc",
  "alerts.ongoing": "Đang diễn ra", "alerts.ack": "Xác nhận", "alerts.resolve": "Đã xử lý",
  "alerts.note": "Ghi chú xử lý", "alerts.note_needed": "Cần ghi chú để đóng sự cố",
  "alerts.operators_only": "Chỉ trực ban", "alerts.acked_by": "Xác nhận: {who}, {time}",
  "alerts.resolved_by": "Đã xử lý: {who}, {time} — {note}",
  "alerts.escalated": "Đã báo cấp trên (mức {n})", "alerts.snapshot": "Ảnh chụp (trên thiết bị biên): {id}",
  "alerts.no_snapshot": "Không có ảnh chụp", "alerts.lane": "làn {id}", "alerts.zone": "vùng {id}",
  "alerts.started": "Bắt đầu {time}", "alerts.not_allowed": "Vai trò này không được phép",
  "alerts.already": "Sự cố đã được người khác xử lý", "alerts.export_csv": "Xuất CSV",
  "alerts.export_fiware": "Xuất FIWARE", "alerts.more": "+{n} sự cố cùng loại",
  "msg.wrong_way": "{cls} đi ngược chiều trên {lane}",
  "msg.wrong_way_m": "{cls} đi ngược chiều trên {lane}: {dist} trong {secs}",
  "msg.stopped_vehicle": "{cls} dừng trên {lane}", "msg.stopped_for": "{cls} dừng {secs} trên {lane}",
  "msg.congestion": "Ùn tắc trên {lane}", "msg.pedestrian_on_carriageway": "Người đi bộ trên lòng đường ({where})",
  "msg.cyclist_on_carriageway": "Xe đạp trên làn xe ({where})", "msg.crash_candidate": "Nghi có va chạm ({where})",
  "msg.flow_anomaly": "Lưu lượng bất thường", "msg.speed": "{v} km/h", "msg.vehicle": "Phương tiện",
  "status.new": "Mới", "status.acknowledged": "Đã xác nhận", "status.resolved": "Đã xử lý",
  "severity.low": "Thấp", "severity.medium": "Trung bình", "severity.high": "Cao",
  "class.car": "Ô tô", "class.truck": "Xe tải", "class.bus": "Xe buýt", "class.motorcycle": "Xe máy",
  "class.bicycle": "Xe đạp", "class.person": "Người đi bộ",
  "incident.stopped_vehicle": "Xe dừng", "incident.wrong_way": "Đi ngược chiều", "incident.congestion": "Ùn tắc",
  "incident.pedestrian_on_carriageway": "Người đi bộ trên đường",
  "incident.cyclist_on_carriageway": "Xe đạp trên làn xe", "incident.crash_candidate": "Nghi va chạm",
  "incident.flow_anomaly": "Lưu lượng bất thường",
  "hl.ok": "Tốt", "hl.alert": "Có sự cố", "hl.degraded": "Suy giảm", "hl.down": "Mất kết nối",
  "hl.unknown": "Chưa rõ", "hl.stale": "Mất tín hiệu", "hl.link_lost": "Không rõ (mất kết nối máy chủ)",
  "reason.offline": "thiết bị biên đã ngắt", "reason.never_reported": "chưa từng báo cáo",
  "reason.status_too_old": "không nhận tin {age}", "reason.fps_low": "xử lý chậm ({done}/{offered} khung/giây)",
  "reason.outbox_full": "hàng đợi biên đầy", "reason.open_incidents": "{n} sự cố mở",
  "reason.source_reconnecting": "nguồn hình đang kết nối lại", "reason.source_error": "nguồn hình lỗi",
  "reason.source_ended": "nguồn hình đã dừng", "reason.source_starting": "nguồn hình đang khởi động",
  "tamper.view_moved": "Camera bị xoay", "tamper.covered": "Bị che", "tamper.out_of_focus": "Mất nét",
  "tamper.too_dark": "Quá tối",
  "source.starting": "Đang khởi động", "source.ok": "Bình thường", "source.reconnecting": "Đang kết nối lại",
  "source.ended": "Đã kết thúc", "source.error": "Lỗi",
  "state.online": "trực tuyến", "state.offline": "ngoại tuyến", "state.unknown": "chưa rõ", "state.stale": "mất tín hiệu",
  "dir.in": "vào", "dir.out": "ra",
  "day.0": "T2", "day.1": "T3", "day.2": "T4", "day.3": "T5", "day.4": "T6", "day.5": "T7", "day.6": "CN",
  "age.s": "{n} giây trước", "age.min": "{n} phút trước", "age.h": "{h} giờ {m} phút trước", "age.d": "{n} ngày trước",
  "dur.s": "{n} giây", "dur.min": "{n} phút", "dur.h": "{h} giờ {m} phút", "dur.d": "{n} ngày",
  "msg.n_vehicles": "{n} xe",
  "live.title_cards": "Trực tiếp theo camera (15 phút qua)", "live.crossings": "lượt",
  "live.speed": "Tốc độ TB: {v}", "live.no_speed": "Tốc độ TB: —",
  "detail.title": "Chi tiết camera", "detail.pick": "Chọn một camera trên bản đồ hoặc trong bảng",
  "detail.health": "Tình trạng", "detail.why": "Lý do", "detail.tamper": "Dấu hiệu phá hoại", "detail.none": "Không",
  "detail.source": "Nguồn hình", "detail.last_seen": "Lần cuối", "detail.fps": "Khung hình xử lý / nguồn",
  "detail.position": "Vị trí", "detail.layout": "Vạch · làn · vùng", "detail.model": "Mô hình",
  "detail.message": "Thông báo", "detail.open": "Sự cố đang mở ({n})",
  "detail.coverage": "Dữ liệu 24 giờ qua (ô đỏ = mất dữ liệu)", "detail.coverage_label": "Độ phủ dữ liệu 24 giờ",
  "detail.now": "bây giờ",
  "cams.title": "Camera", "cams.camera": "Camera", "cams.health": "Tình trạng", "cams.last_seen": "Lần cuối",
  "cams.fps": "Khung/giây", "cams.why": "Lý do",
  "eng.title": "Kỹ thuật (dành cho kỹ sư)", "eng.camera": "Camera", "eng.committed_seq": "Số thứ tự đã lưu",
  "eng.outbox": "Hàng đợi biên", "eng.inference": "Suy luận (ms)", "eng.fps_in": "Khung/giây nguồn",
  "eng.fps_done": "Khung/giây xử lý", "eng.model": "Mô hình", "eng.config": "Phiên bản cấu hình",
  "counts.title": "Lượt qua vạch (24 giờ qua)", "counts.total": "Tổng", "counts.camera": "Camera",
  "counts.line": "Vạch", "counts.direction": "Hướng", "counts.class": "Loại xe", "counts.count": "Số lượng",
  "chart.title": "Lượt qua vạch mỗi phút (1 giờ qua)", "chart.label": "Biểu đồ lượt qua vạch mỗi phút",
  "ticker.title": "Sự kiện trực tiếp",
  "err.network": "Không kết nối được máy chủ. Đang thử lại…",
  "err.forbidden": "Vai trò của bạn không được phép làm việc này.",
  "err.not_found": "Không tìm thấy dữ liệu yêu cầu.", "err.conflict": "Đã có người xử lý trước.",
  "field.by": "tên của bạn", "field.note": "ghi chú", "field.from": "từ", "field.to": "đến", "field.key": "khóa API",
  "err.invalid": "Giá trị nhập không hợp lệ: {fields}", "err.server": "Máy chủ gặp lỗi ({status}). Thử lại sau.",
  "err.unavailable": "Máy chủ tạm thời không sẵn sàng. Thử lại sau.", "err.generic": "Có lỗi xảy ra ({status}).",
  "footer": "citywatch · AGPL-3.0-or-later",
};

const en = {
  "app.title": "Traffic monitoring",
  "app.tagline": "Traffic monitoring",
  "lang.switch": "Tiếng Việt",
  "lang.switch_title": "Switch the language to Vietnamese",
  "tab.operator": "Operations", "tab.planner": "Planning", "tab.engineer": "Engineering",
  "clock.title": "City time",
  "sound.title": "Incident sound", "sound.on": "Sound: on", "sound.off": "Sound: off",
  "session.sign_out": "Sign out", "session.sign_in": "Sign in", "session.key": "API key",
  "session.name": "Your name (written in the incident log)", "session.invalid": "Invalid key",
  "session.signed_in_as": "On duty: {name}", "session.no_name": "No name entered",
  "role.operator": "Operator", "role.planner": "Planner", "role.admin": "Admin",
  "live.connecting": "Connecting", "live.open": "Live", "live.error": "Disconnected, retrying",
  "live.title": "Live stream",
  "link.lost": "CONNECTION TO THE SERVER LOST — what you see is no longer updated",
  "link.lost_since": "Lost since {time} ({age}). Camera states are unknown until the link is back.",
  "link.back": "Connected to the server again",
  "banner.show": "Show", "banner.dismiss": "Dismiss",
  "banner.new_incident": "New incident: {what} — {camera} — {time}",
  "banner.not_acked": "Incident not acknowledged: {what} — {camera} — {time}",
  "health.db_down": "Database unreachable", "health.db_slow": "Database not answering",
  "health.stalled": "Ingest stalled", "health.retrying": "Ingest retrying database writes",
  "health.disconnected": "Ingest disconnected from the broker", "health.degraded": "Many rejected messages",
  "now.title": "Needs attention now", "now.all_ok": "All cameras working, no open incidents",
  "now.open": "open incidents", "now.cameras_bad": "cameras with problems", "now.cameras_ok": "cameras working",
  "now.crossings": "line crossings (24 h)",
  "map.title": "Camera map", "map.no_position": "No position: {names}",
  "map.none_placed": "No camera has a position", "map.north": "N",
  "alerts.title": "Incident alerts", "alerts.empty": "No open incidents",
  "alerts.operator_name": "Operator name", "alerts.name_needed": "Enter the operator's name before acknowledging",
  "alerts.new_waiting": "{n} new alerts — show", "alerts.filter": "Filter", "alerts.filter_all": "All",
  "alerts.filter_camera": "Camera", "alerts.filter_type": "Type", "alerts.filter_status": "Status",
  "alerts.select_all": "Select all", "alerts.ack_selected": "Acknowledge selected ({n})",
  "alerts.group": "{camera} · {type} · {n}", "alerts.open_tab": "Open", "alerts.history_tab": "History",
  "alerts.history_empty": "No resolved incidents yet", "alerts.ended": "Ended",
  "alerts.ongoing": "Ongoing", "alerts.ack": "Acknowledge", "alerts.resolve": "Resolve",
  "alerts.note": "Resolution note", "alerts.note_needed": "A note is needed to resolve",
  "alerts.operators_only": "Operators only", "alerts.acked_by": "Acknowledged: {who}, {time}",
  "alerts.resolved_by": "Resolved: {who}, {time} — {note}",
  "alerts.escalated": "Escalated (level {n})", "alerts.snapshot": "Snapshot (on the edge box): {id}",
  "alerts.no_snapshot": "No snapshot", "alerts.lane": "lane {id}", "alerts.zone": "zone {id}",
  "alerts.started": "Started {time}", "alerts.not_allowed": "Not allowed for this role",
  "alerts.already": "Someone else has already handled it", "alerts.export_csv": "Export CSV",
  "alerts.export_fiware": "Export FIWARE", "alerts.more": "+{n} more of the same type",
  "msg.wrong_way": "{cls} moving against the traffic in {lane}",
  "msg.wrong_way_m": "{cls} moving against the traffic in {lane}: {dist} in {secs}",
  "msg.stopped_vehicle": "{cls} stopped in {lane}", "msg.stopped_for": "{cls} stopped for {secs} in {lane}",
  "msg.congestion": "Congestion in {lane}", "msg.pedestrian_on_carriageway": "Pedestrian on the carriageway ({where})",
  "msg.cyclist_on_carriageway": "Cyclist in a traffic lane ({where})", "msg.crash_candidate": "Possible crash ({where})",
  "msg.flow_anomaly": "Unusual flow", "msg.speed": "{v} km/h", "msg.vehicle": "Vehicle",
  "status.new": "New", "status.acknowledged": "Acknowledged", "status.resolved": "Resolved",
  "severity.low": "Low", "severity.medium": "Medium", "severity.high": "High",
  "class.car": "Car", "class.truck": "Truck", "class.bus": "Bus", "class.motorcycle": "Motorcycle",
  "class.bicycle": "Bicycle", "class.person": "Pedestrian",
  "incident.stopped_vehicle": "Stopped vehicle", "incident.wrong_way": "Wrong way", "incident.congestion": "Congestion",
  "incident.pedestrian_on_carriageway": "Pedestrian on carriageway",
  "incident.cyclist_on_carriageway": "Cyclist on carriageway", "incident.crash_candidate": "Possible crash",
  "incident.flow_anomaly": "Unusual flow",
  "hl.ok": "OK", "hl.alert": "Incident", "hl.degraded": "Degraded", "hl.down": "Down",
  "hl.unknown": "Unknown", "hl.stale": "Stale", "hl.link_lost": "Unknown (server link lost)",
  "reason.offline": "edge box disconnected", "reason.never_reported": "never reported",
  "reason.status_too_old": "nothing heard for {age}", "reason.fps_low": "falling behind ({done}/{offered} fps)",
  "reason.outbox_full": "edge outbox filling up", "reason.open_incidents": "{n} open incidents",
  "reason.source_reconnecting": "video source reconnecting", "reason.source_error": "video source error",
  "reason.source_ended": "video source stopped", "reason.source_starting": "video source starting",
  "tamper.view_moved": "View moved", "tamper.covered": "Covered", "tamper.out_of_focus": "Out of focus",
  "tamper.too_dark": "Too dark",
  "source.starting": "Starting", "source.ok": "OK", "source.reconnecting": "Reconnecting",
  "source.ended": "Ended", "source.error": "Error",
  "state.online": "online", "state.offline": "offline", "state.unknown": "unknown", "state.stale": "stale",
  "dir.in": "in", "dir.out": "out",
  "day.0": "Mon", "day.1": "Tue", "day.2": "Wed", "day.3": "Thu", "day.4": "Fri", "day.5": "Sat", "day.6": "Sun",
  "age.s": "{n} s ago", "age.min": "{n} min ago", "age.h": "{h} h {m} min ago", "age.d": "{n} days ago",
  "dur.s": "{n} s", "dur.min": "{n} min", "dur.h": "{h} h {m} min", "dur.d": "{n} days",
  "msg.n_vehicles": "{n} vehicles",
  "live.title_cards": "Live per camera (last 15 min)", "live.crossings": "crossings",
  "live.speed": "Mean speed: {v}", "live.no_speed": "Mean speed: —",
  "detail.title": "Camera detail", "detail.pick": "Pick a camera on the map or in the table",
  "detail.health": "Health", "detail.why": "Why", "detail.tamper": "Tamper signs", "detail.none": "None",
  "detail.source": "Video source", "detail.last_seen": "Last seen", "detail.fps": "Frames processed / offered",
  "detail.position": "Position", "detail.layout": "Lines · lanes · zones", "detail.model": "Model",
  "detail.message": "Message", "detail.open": "Open incidents ({n})",
  "detail.coverage": "Last 24 h of data (red = gap)", "detail.coverage_label": "24 h data coverage",
  "detail.now": "now",
  "cams.title": "Cameras", "cams.camera": "Camera", "cams.health": "Health", "cams.last_seen": "Last seen",
  "cams.fps": "FPS", "cams.why": "Why",
  "eng.title": "Engineering (for engineers)", "eng.camera": "Camera", "eng.committed_seq": "Committed seq",
  "eng.outbox": "Edge outbox", "eng.inference": "Inference (ms)", "eng.fps_in": "FPS offered",
  "eng.fps_done": "FPS processed", "eng.model": "Model", "eng.config": "Config version",
  "counts.title": "Line crossings (last 24 h)", "counts.total": "Total", "counts.camera": "Camera",
  "counts.line": "Line", "counts.direction": "Direction", "counts.class": "Class", "counts.count": "Count",
  "chart.title": "Crossings per minute (last hour)", "chart.label": "Chart of crossings per minute",
  "ticker.title": "Live events",
  "err.network": "Cannot reach the server. Retrying…",
  "err.forbidden": "Your role is not allowed to do this.",
  "err.not_found": "The requested data was not found.", "err.conflict": "Someone else got there first.",
  "field.by": "your name", "field.note": "note", "field.from": "from", "field.to": "to", "field.key": "API key",
  "err.invalid": "Some values are not valid: {fields}", "err.server": "The server had a problem ({status}). Try again later.",
  "err.unavailable": "The server is not available right now. Try again later.", "err.generic": "Something went wrong ({status}).",
  "footer": "citywatch · AGPL-3.0-or-later",
};

export const DICTS = { vi, en };
let current = "vi";
let timeZone = "Asia/Ho_Chi_Minh";
const listeners = [];

function stored() {
  try { return localStorage.getItem(STORE_KEY); } catch (e) { return null; }
}
{
  const s = stored();
  if (LANGS.includes(s)) current = s;
}

export function lang() { return current; }
export function locale() { return LOCALE[current]; }

/** Switch the language, remember it and let every module re-render its text. */
export function setLang(l) {
  if (!LANGS.includes(l) || l === current) return;
  current = l;
  try { localStorage.setItem(STORE_KEY, l); } catch (e) { /* private mode: not remembered */ }
  applyStatic();
  for (const fn of listeners) {
    try { fn(l); } catch (e) { console.error("lang", e); }
  }
}

export function onLang(fn) { listeners.push(fn); }

/** The text of `key` in the current language with {name} placeholders filled; the key itself if unknown. */
export function t(key, params = {}) {
  const s = DICTS[current][key] ?? DICTS.vi[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, k) => (params[k] === undefined || params[k] === null ? m : String(params[k])));
}

/** A label from one of the tables ("class", "incident", "hl", ...), or the raw value when it has none. */
export function label(table, value) {
  if (value === null || value === undefined || value === "") return "—";
  const key = `${table}.${value}`;
  return key in DICTS[current] ? DICTS[current][key] : String(value);
}

/** A read-only object view of one table, e.g. CLASS_LABEL.car in the current language. */
export function labelTable(table) {
  return new Proxy({}, {
    get: (_, k) => (typeof k === "string" ? (`${table}.${k}` in DICTS[current] ? label(table, k) : undefined) : undefined),
    has: (_, k) => `${table}.${String(k)}` in DICTS[current],
    ownKeys: () => Object.keys(DICTS[current]).filter((k) => k.startsWith(table + ".")).map((k) => k.slice(table.length + 1)),
    getOwnPropertyDescriptor: (_, k) => (`${table}.${String(k)}` in DICTS[current]
      ? { enumerable: true, configurable: true, value: label(table, k) } : undefined),
  });
}

export function setTimeZone(zone) { if (zone) timeZone = zone; }
export function cityZone() { return timeZone; }

const TIME_STYLE = {
  full: { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" },
  short: { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" },
  time: { hour: "2-digit", minute: "2-digit", second: "2-digit" },
  hm: { hour: "2-digit", minute: "2-digit" },
  date: { year: "numeric", month: "2-digit", day: "2-digit" },
};

/** One date/time format per locale, always in the city's time zone (never the browser's). */
export function fmtTime(iso, style = "full") {
  if (iso === null || iso === undefined || iso === "") return "—";
  const d = iso instanceof Date ? iso : new Date(iso);
  if (Number.isNaN(d.getTime())) return "—";
  const opts = typeof style === "string" ? TIME_STYLE[style] || TIME_STYLE.full : style;
  // Vietnamese day and month alone come out as "06-12" but with the year as "06/12/2026": one separator
  return new Intl.DateTimeFormat(locale(), { hourCycle: "h23", timeZone, ...opts }).formatToParts(d)
    .map((p) => (p.type === "literal" && p.value === "-" ? "/" : p.value)).join("");
}

/** The city's zone as people read it: "Asia/Ho_Chi_Minh (UTC+07:00)". */
export function zoneName(date = new Date()) {
  const parts = new Intl.DateTimeFormat("en-GB", { timeZone, timeZoneName: "longOffset" }).formatToParts(date);
  const off = (parts.find((p) => p.type === "timeZoneName") || {}).value || "";
  return `${timeZone} (${off.replace("GMT", "UTC") || "UTC"})`;
}

/** One number format per locale ("1.234,5" in Vietnamese, "1,234.5" in English). */
export function fmtNumber(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return "—";
  return Number(n).toLocaleString(locale(), { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** "3 min ago" in the current language. */
export function fmtAge(iso, now = Date.now()) {
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  return fmtAgeSeconds(s);
}

export function fmtAgeSeconds(s) {
  return span(s, "age");
}

/** A length of time ("45 s", "3 min") in the current language. */
export function fmtDuration(s) {
  return span(s, "dur");
}

function span(s, kind) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return t(`${kind}.s`, { n: s });
  const m = Math.floor(s / 60);
  if (m < 60) return t(`${kind}.min`, { n: m });
  const h = Math.floor(m / 60);
  if (h < 48) return t(`${kind}.h`, { h, m: m % 60 });
  return t(`${kind}.d`, { n: Math.floor(h / 24) });
}

/** Fill the static page text: data-i18n (text), data-i18n-title, -placeholder and -aria-label. */
export function applyStatic(root = document) {
  document.documentElement.lang = current;
  for (const e of root.querySelectorAll("[data-i18n]")) e.textContent = t(e.getAttribute("data-i18n"));
  for (const attr of ["title", "placeholder", "aria-label"]) {
    for (const e of root.querySelectorAll(`[data-i18n-${attr}]`)) e.setAttribute(attr, t(e.getAttribute(`data-i18n-${attr}`)));
  }
  document.title = `citywatch — ${t("app.title")}`;
}
