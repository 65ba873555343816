// Live incident alerts: the open (not yet resolved) incidents, newest first, with type, camera, age and
// the snapshot kept on the edge box; a banner and a beep when one opens; acknowledge and resolve for
// operators (planners see the buttons disabled; the server refuses them too).
import {
  age, cameraName, canOperate, clear, cw, el, fmt, INCIDENT_LABEL, SEVERITY_LABEL, STATUS_LABEL,
} from "./core.js";

const open = new Map(); // incident_id -> record (status new or acknowledged)
cw.openIncidents = open;
let soundOn = true;
let audio = null;

function beep() {
  if (!soundOn) return "muted";
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
    const t = audio.currentTime;
    for (const [i, f] of [[0, 880], [1, 660], [2, 880]]) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = "square";
      osc.frequency.value = f;
      gain.gain.setValueAtTime(0.0001, t + i * 0.25);
      gain.gain.exponentialRampToValueAtTime(0.2, t + i * 0.25 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + i * 0.25 + 0.2);
      osc.connect(gain).connect(audio.destination);
      osc.start(t + i * 0.25);
      osc.stop(t + i * 0.25 + 0.22);
    }
    return audio.state;
  } catch (e) {
    return "unavailable";
  }
}

function operatorName() {
  return document.getElementById("operator-name").value.trim() || null;
}

async function step(inc, action, note) {
  const body = { by: operatorName() };
  if (note) body.note = note;
  const li = document.querySelector(`#alerts-list li[data-incident-id="${CSS.escape(inc.incident_id)}"]`);
  const msg = li && li.querySelector(".alert-error");
  try {
    const rec = await cw.api(`/incidents/${encodeURIComponent(inc.incident_id)}/${action}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    apply(rec);
  } catch (e) {
    if (msg) {
      msg.textContent = e.status === 403 ? "Không có quyền / Not allowed for this role"
        : e.status === 409 ? "Đã được xử lý / Already handled" : `Lỗi / Error: ${e.message}`;
      msg.setAttribute("data-status", String(e.status || "error"));
    }
  }
}

function item(inc) {
  const li = el("li", {
    "data-incident-id": inc.incident_id, "data-status": inc.status, "data-type": inc.incident_type,
    "data-camera-id": inc.camera_id, "data-severity": inc.severity, "data-state": inc.state,
    class: `alert sev-${inc.severity} status-${inc.status}`,
  });
  const head = el("div", { class: "alert-head" });
  head.append(
    el("strong", { "data-field": "type" }, INCIDENT_LABEL[inc.incident_type] || inc.incident_type),
    el("span", { class: "pill", "data-field": "status", "data-value": inc.status }, STATUS_LABEL[inc.status]),
  );
  const meta = el("div", { class: "alert-meta" });
  const cam = el("a", { href: "#operator", "data-field": "camera", "data-value": inc.camera_id },
    cameraName(inc.camera_id));
  cam.addEventListener("click", () => cw.emit("select-camera", inc.camera_id));
  meta.append(
    el("span", {}, "Camera: "), cam,
    el("span", { "data-field": "age", "data-started-at": inc.started_at }, ` · ${age(inc.started_at)}`),
    el("span", { "data-field": "started", "data-value": inc.started_at }, ` · ${fmt(inc.started_at)}`),
    el("span", { "data-field": "severity" }, ` · ${SEVERITY_LABEL[inc.severity] || inc.severity}`),
  );
  const where = [inc.lane_id && `làn / lane ${inc.lane_id}`, inc.zone_id && `vùng / zone ${inc.zone_id}`]
    .filter(Boolean).join(" · ");
  const snap = el("div", { class: "alert-snap", "data-field": "snapshot", "data-value": inc.snapshot_id || "" },
    inc.snapshot_id ? `Ảnh chụp (trên thiết bị biên) / Snapshot (on the edge box): ${inc.snapshot_id}`
      : "Không có ảnh chụp / No snapshot");
  const extra = el("div", { class: "alert-where" }, [where, inc.message].filter(Boolean).join(" — "));
  li.append(head, meta, extra, snap);
  if (inc.acknowledged_by || inc.acknowledged_at) {
    li.append(el("div", { class: "muted small", "data-field": "acknowledged" },
      `Xác nhận / Acknowledged: ${inc.acknowledged_by || ""} ${fmt(inc.acknowledged_at)}`));
  }
  if (inc.escalation_level) {
    li.append(el("div", { class: "escalated", "data-field": "escalation", "data-value": inc.escalation_level },
      `Đã báo cấp trên (${inc.escalation_level}) / Escalated (${inc.escalation_level})`));
  }
  const actions = el("div", { class: "alert-actions" });
  const allowed = canOperate();
  const title = allowed ? "" : "Chỉ trực ban / Operators only";
  const ack = el("button", { type: "button", class: "ack", "data-action": "ack", title }, "Xác nhận / Acknowledge");
  ack.disabled = !allowed || inc.status !== "new";
  ack.addEventListener("click", () => step(inc, "ack"));
  const note = el("input", { type: "text", class: "resolve-note", "data-field": "note", maxlength: 2000,
    placeholder: "Ghi chú xử lý / Resolution note", "aria-label": "Ghi chú / Note" });
  note.disabled = !allowed;
  const res = el("button", { type: "button", class: "resolve", "data-action": "resolve", title },
    "Đã xử lý / Resolve");
  res.disabled = !allowed;
  res.addEventListener("click", () => {
    const text = note.value.trim();
    if (!text) {
      note.classList.add("invalid");
      note.focus();
      return;
    }
    step(inc, "resolve", text);
  });
  actions.append(ack, note, res);
  li.append(actions, el("div", { class: "alert-error error", role: "alert" }));
  return li;
}

function render() {
  const ul = document.getElementById("alerts-list");
  const typed = new Map(); // keep half-typed resolution notes across re-renders
  for (const li of ul.children) typed.set(li.getAttribute("data-incident-id"), li.querySelector(".resolve-note").value);
  clear(ul);
  const items = [...open.values()].sort((a, b) => b.started_at.localeCompare(a.started_at));
  for (const inc of items) {
    const li = item(inc);
    li.querySelector(".resolve-note").value = typed.get(inc.incident_id) || "";
    ul.append(li);
  }
  document.getElementById("alerts-empty").hidden = items.length > 0;
  const count = document.getElementById("alerts-count");
  count.textContent = String(items.length);
  count.setAttribute("data-count", String(items.length));
  cw.emit("incidents-changed", items);
}

function apply(rec) {
  if (rec.status === "resolved") open.delete(rec.incident_id);
  else open.set(rec.incident_id, rec);
  const banner = document.getElementById("incident-banner");
  if (banner.getAttribute("data-incident-id") === rec.incident_id && rec.status !== "new") banner.hidden = true;
  render();
}

function showBanner(rec, escalated = false) {
  const banner = document.getElementById("incident-banner");
  const what = INCIDENT_LABEL[rec.incident_type] || rec.incident_type;
  document.getElementById("incident-banner-text").textContent = (escalated
    ? `Sự cố chưa được xác nhận / Incident not acknowledged: ` : `Sự cố mới / New incident: `)
    + `${what} — ${cameraName(rec.camera_id)} — ${fmt(rec.started_at)}`;
  banner.setAttribute("data-incident-id", rec.incident_id);
  banner.setAttribute("data-type", rec.incident_type);
  banner.setAttribute("data-shown-at", String(Date.now()));
  banner.setAttribute("data-sound", beep());
  banner.hidden = false;
}

async function load() {
  const [fresh, acked] = await Promise.all([
    cw.api("/incidents?status=new&limit=200"), cw.api("/incidents?status=acknowledged&limit=200"),
  ]);
  open.clear();
  for (const inc of [...fresh.items, ...acked.items]) open.set(inc.incident_id, inc);
  render();
}

cw.on("start", () => { load().catch((e) => console.error(e)); });
cw.on("dropped", () => { load().catch(() => {}); });
cw.on("incident_alert", (rec) => { apply(rec); showBanner(rec); });
cw.on("incident_status", apply);
cw.on("incident_escalated", (rec) => { apply(rec); if (rec.status === "new") showBanner(rec, true); });
cw.on("sound", (on) => { soundOn = on; });

document.addEventListener("DOMContentLoaded", () => {
  const name = document.getElementById("operator-name");
  name.value = localStorage.getItem("citywatch.operator") || "";
  name.addEventListener("change", () => localStorage.setItem("citywatch.operator", name.value.trim()));
  document.getElementById("incident-banner-close").addEventListener("click", () => {
    document.getElementById("incident-banner").hidden = true;
  });
  document.getElementById("incident-banner-show").addEventListener("click", () => {
    const banner = document.getElementById("incident-banner");
    const id = banner.getAttribute("data-incident-id");
    location.hash = "operator";
    const li = document.querySelector(`#alerts-list li[data-incident-id="${CSS.escape(id)}"]`);
    if (li) { li.scrollIntoView({ block: "center" }); li.classList.add("flash"); }
    const inc = open.get(id);
    if (inc) cw.emit("select-camera", inc.camera_id);
  });
  // keep ages fresh on the wall screen
  setInterval(() => {
    for (const s of document.querySelectorAll('#alerts-list [data-field="age"]')) {
      s.textContent = ` · ${age(s.getAttribute("data-started-at"))}`;
    }
  }, 5000);
});
