// The alert queue: unresolved incidents grouped per camera and type; groups by severity, then new before
// acknowledged, then age (oldest first). Each card: type, camera, age, the message in the operator's
// language, snapshot and an "ended" mark; acknowledge (one or many) and resolve with a note for operators,
// under the operator's name. The queue stays still while the operator acts: alerts that arrive then wait
// behind an "N new" control, and a card resolved meanwhile stays in place, marked, until the queue is
// brought up to date (on request, or once the operator has left it alone for a few seconds). A history tab
// lists resolved incidents. A banner and a beep announce each new incident.
import {
  age, cameraName, canOperate, clear, cw, el, fmt, INCIDENT_LABEL, SEVERITY_LABEL, STATUS_LABEL, t,
} from "./core.js";
import { incidentMessage } from "./messages.js";

const SEV = { high: 0, medium: 1, low: 2 };
/** The operator counts as acting for this long after touching the queue. */
const QUIET_MS = 8000;
const open = cw.openIncidents; // incident_id -> record (status new or acknowledged)
let order = []; // incident ids in the order shown; changes only on a merge
const doneHere = new Map(); // resolved while shown: kept in place until the next merge
const waiting = new Set(); // arrived while the operator was acting
const picked = new Set(); // ticked for a bulk acknowledge
const filters = { camera: "", type: "", status: "" };
const expanded = new Set(); // groups the operator opened in full
/** Cards shown per group until the operator opens it: many alerts of one kind on one camera read as one line. */
const GROUP_PREVIEW = 3;
let historyStale = true; // the history tab reloads when next shown
let lastTouch = 0;
let pointerInside = false;
let soundOn = true;
let audio = null;

function beep() {
  if (!soundOn) return "muted";
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
    const t0 = audio.currentTime;
    for (const [i, f] of [[0, 880], [1, 660], [2, 880]]) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = "square";
      osc.frequency.value = f;
      gain.gain.setValueAtTime(0.0001, t0 + i * 0.25);
      gain.gain.exponentialRampToValueAtTime(0.2, t0 + i * 0.25 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + i * 0.25 + 0.2);
      osc.connect(gain).connect(audio.destination);
      osc.start(t0 + i * 0.25);
      osc.stop(t0 + i * 0.25 + 0.22);
    }
    return audio.state;
  } catch (e) {
    return "unavailable";
  }
}

function operatorName() {
  return document.getElementById("operator-name").value.trim() || null;
}

/** Whether the operator is at work on the queue: then nothing may move under the cursor. */
function acting() {
  const ul = document.getElementById("alerts-list");
  const typing = [...ul.querySelectorAll(".resolve-note")].some((n) => n.value.trim());
  return pointerInside || typing || picked.size > 0 || Date.now() - lastTouch < QUIET_MS
    || document.getElementById("alerts-section").contains(document.activeElement);
}

function groupKey(inc) { return `${inc.camera_id}|${inc.incident_type}`; }

/** Groups (camera, type) by their worst severity, then those still waiting for someone (new) before those
 * being handled (acknowledged), then their oldest start; in a group the same order card by card. */
function sortedIds() {
  const groups = new Map();
  for (const inc of open.values()) {
    const k = groupKey(inc);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(inc);
  }
  const list = [...groups.values()].map((items) => {
    const waits = (i) => (i.status === "new" ? 0 : 1);
    items.sort((a, b) => (SEV[a.severity] - SEV[b.severity]) || (waits(a) - waits(b))
      || a.started_at.localeCompare(b.started_at));
    return { items, sev: Math.min(...items.map((i) => SEV[i.severity] ?? 1)), waits: Math.min(...items.map(waits)),
      first: items[0].started_at };
  });
  list.sort((a, b) => (a.sev - b.sev) || (a.waits - b.waits) || a.first.localeCompare(b.first));
  return list.flatMap((g) => g.items.map((i) => i.incident_id));
}

function record(id) { return open.get(id) || doneHere.get(id); }

function visible(inc) {
  return (!filters.camera || inc.camera_id === filters.camera) && (!filters.type || inc.incident_type === filters.type)
    && (!filters.status || inc.status === filters.status);
}

function friendlyStepError(e) {
  if (e.status === 403) return t("alerts.not_allowed");
  if (e.status === 409) return t("alerts.already");
  return e.message;
}

async function step(inc, action, note) {
  const li = document.querySelector(`#alerts-list li[data-incident-id="${CSS.escape(inc.incident_id)}"]`);
  const msg = li && li.querySelector(".alert-error");
  const by = operatorName();
  if (!by) {
    if (msg) { msg.textContent = t("alerts.name_needed"); msg.setAttribute("data-status", "name"); }
    document.getElementById("operator-name").focus();
    return false;
  }
  const body = { by };
  if (note) body.note = note;
  try {
    const rec = await cw.api(`/incidents/${encodeURIComponent(inc.incident_id)}/${action}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    apply(rec);
    return true;
  } catch (e) {
    if (msg) {
      msg.textContent = friendlyStepError(e);
      msg.setAttribute("data-status", String(e.status || "error"));
    }
    return false;
  }
}

function card(inc) {
  const resolved = inc.status === "resolved";
  const ended = inc.state === "closed";
  const li = el("li", {
    "data-incident-id": inc.incident_id, "data-status": inc.status, "data-type": inc.incident_type,
    "data-camera-id": inc.camera_id, "data-severity": inc.severity, "data-state": inc.state,
    class: `alert sev-${inc.severity} status-${inc.status}${ended ? " ended" : ""}`,
  });
  const head = el("div", { class: "alert-head" });
  const tick = el("input", { type: "checkbox", class: "pick", "aria-label": t("alerts.ack") });
  tick.checked = picked.has(inc.incident_id);
  tick.disabled = !canOperate() || inc.status !== "new";
  tick.addEventListener("change", () => {
    if (tick.checked) picked.add(inc.incident_id); else picked.delete(inc.incident_id);
    bulkControls();
  });
  const pills = el("span", { class: "pills" });
  pills.append(el("span", { class: `pill sev-pill sev-${inc.severity}`, "data-field": "severity", "data-value": inc.severity },
    SEVERITY_LABEL[inc.severity] || inc.severity));
  pills.append(el("span", { class: `pill status-pill status-${inc.status}`, "data-field": "status", "data-value": inc.status },
    STATUS_LABEL[inc.status] || inc.status));
  if (ended) pills.append(el("span", { class: "pill ended-pill", "data-field": "ended", "data-value": inc.ended_at || "" },
    t("alerts.ended")));
  head.append(tick, el("strong", { "data-field": "type" }, INCIDENT_LABEL[inc.incident_type] || inc.incident_type), pills);
  const meta = el("div", { class: "alert-meta" });
  const cam = el("a", { href: "#operator", "data-field": "camera", "data-value": inc.camera_id }, cameraName(inc.camera_id));
  cam.addEventListener("click", () => cw.emit("select-camera", inc.camera_id));
  meta.append(cam,
    el("span", { "data-field": "age", "data-started-at": inc.started_at }, ` · ${age(inc.started_at)}`),
    el("span", { "data-field": "started", "data-value": inc.started_at }, ` · ${fmt(inc.started_at)}`));
  const said = incidentMessage(inc);
  const text = el("div", { class: "alert-where", "data-field": "message", "data-measured": said.measured || "" }, said.text);
  text.hidden = !said.text;
  const snap = el("div", { class: "alert-snap", "data-field": "snapshot", "data-value": inc.snapshot_id || "" },
    inc.snapshot_id ? t("alerts.snapshot", { id: inc.snapshot_id }) : t("alerts.no_snapshot"));
  li.append(head, meta, text, snap);
  if (inc.acknowledged_by || inc.acknowledged_at) {
    li.append(el("div", { class: "small who", "data-field": "acknowledged", "data-value": inc.acknowledged_by || "" },
      t("alerts.acked_by", { who: inc.acknowledged_by || "—", time: fmt(inc.acknowledged_at) })));
  }
  if (resolved) {
    li.append(el("div", { class: "small who", "data-field": "resolved" },
      t("alerts.resolved_by", { who: inc.resolved_by || "—", time: fmt(inc.resolved_at), note: inc.resolution_note || "" })));
    return li;
  }
  if (inc.escalation_level) {
    li.append(el("div", { class: "escalated", "data-field": "escalation", "data-value": inc.escalation_level },
      t("alerts.escalated", { n: inc.escalation_level })));
  }
  const actions = el("div", { class: "alert-actions" });
  const allowed = canOperate();
  const title = allowed ? "" : t("alerts.operators_only");
  const ack = el("button", { type: "button", class: "ack", "data-action": "ack", title }, t("alerts.ack"));
  ack.disabled = !allowed || inc.status !== "new";
  ack.addEventListener("click", () => step(inc, "ack"));
  const note = el("input", { type: "text", class: "resolve-note", "data-field": "note", maxlength: 2000,
    placeholder: t("alerts.note"), "aria-label": t("alerts.note") });
  note.disabled = !allowed;
  const res = el("button", { type: "button", class: "resolve", "data-action": "resolve", title }, t("alerts.resolve"));
  res.disabled = !allowed;
  res.addEventListener("click", () => {
    const text = note.value.trim();
    if (!text) {
      note.classList.add("invalid");
      li.querySelector(".alert-error").textContent = t("alerts.note_needed");
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
  const top = ul.scrollTop;
  const typed = new Map(); // half-typed resolution notes survive a re-render
  for (const n of ul.querySelectorAll(".resolve-note")) typed.set(n.closest("li").getAttribute("data-incident-id"), n.value);
  clear(ul);
  let lastGroup = null;
  let groupUl = null;
  let inGroup = 0;
  let groupSize = 0;
  let shown = 0;
  for (const id of order) {
    const inc = record(id);
    if (!inc || !visible(inc)) continue;
    const k = groupKey(inc);
    if (k !== lastGroup) {
      groupSize = order.map(record).filter((x) => x && visible(x) && groupKey(x) === k).length;
      const g = el("li", { class: "alert-group", "data-group": k, "data-count": groupSize });
      if (groupSize > 1) { // a lone card says its camera and type itself
        g.append(el("div", { class: "group-head" }, t("alerts.group", {
          camera: cameraName(inc.camera_id), type: INCIDENT_LABEL[inc.incident_type] || inc.incident_type, n: groupSize })));
      }
      groupUl = el("ul", { class: "group-items" });
      g.append(groupUl);
      if (groupSize > GROUP_PREVIEW && !expanded.has(k)) {
        const more = el("button", { type: "button", class: "group-more", "data-group": k },
          t("alerts.more", { n: groupSize - GROUP_PREVIEW }));
        more.addEventListener("click", () => { expanded.add(k); render(); });
        g.append(more);
      }
      ul.append(g);
      lastGroup = k;
      inGroup = 0;
    }
    inGroup += 1;
    if (inGroup > GROUP_PREVIEW && groupSize > GROUP_PREVIEW && !expanded.has(k)) continue;
    const li = card(inc);
    const note = li.querySelector(".resolve-note");
    if (note) note.value = typed.get(id) || "";
    groupUl.append(li);
    shown += 1;
  }
  ul.scrollTop = top;
  document.getElementById("alerts-empty").hidden = open.size > 0;
  const count = document.getElementById("alerts-count");
  count.textContent = String(open.size);
  count.setAttribute("data-count", String(open.size));
  ul.setAttribute("data-shown", String(shown));
  newControl();
  bulkControls();
}

/** Replace one shown card where it stands (a status change must not move anything). */
function updateCard(id) {
  const old = document.querySelector(`#alerts-list li.alert[data-incident-id="${CSS.escape(id)}"]`);
  const inc = record(id);
  if (!old || !inc) return;
  const note = old.querySelector(".resolve-note");
  const li = card(inc);
  const fresh = li.querySelector(".resolve-note");
  if (note && fresh) fresh.value = note.value;
  old.replaceWith(li);
}

function newControl() {
  const b = document.getElementById("alerts-new");
  b.hidden = waiting.size === 0;
  b.setAttribute("data-count", String(waiting.size));
  b.textContent = t("alerts.new_waiting", { n: waiting.size });
}

function bulkControls() {
  for (const id of [...picked]) if (!open.has(id) || open.get(id).status !== "new") picked.delete(id);
  const b = document.getElementById("alerts-ack-selected");
  b.textContent = t("alerts.ack_selected", { n: picked.size });
  b.disabled = picked.size === 0 || !canOperate();
  b.setAttribute("data-count", String(picked.size));
}

/** Bring the queue up to date: waiting alerts in, resolved ones out, everything in its sorted place. */
function merge() {
  waiting.clear();
  doneHere.clear();
  order = sortedIds();
  render();
  fillFilters();
  cw.emit("incidents-changed", [...open.values()]);
}

function apply(rec) {
  const id = rec.incident_id;
  const known = open.has(id) || doneHere.has(id);
  const shown = order.includes(id);
  if (rec.status === "resolved") {
    open.delete(id);
    picked.delete(id);
    if (shown) doneHere.set(id, rec);
    waiting.delete(id);
    historyStale = true;
  } else {
    open.set(id, rec);
  }
  const banner = document.getElementById("incident-banner");
  if (banner.getAttribute("data-incident-id") === id && rec.status !== "new") banner.hidden = true;
  if (shown) {
    updateCard(id);
    const count = document.getElementById("alerts-count");
    count.textContent = String(open.size);
    count.setAttribute("data-count", String(open.size));
    document.getElementById("alerts-empty").hidden = open.size > 0;
    bulkControls();
    cw.emit("incidents-changed", [...open.values()]);
  } else if (!known && rec.status !== "resolved") {
    if (acting() && order.length) {
      waiting.add(id);
      newControl();
      const count = document.getElementById("alerts-count");
      count.textContent = String(open.size);
      count.setAttribute("data-count", String(open.size));
      cw.emit("incidents-changed", [...open.values()]);
    } else {
      merge();
    }
  } else {
    cw.emit("incidents-changed", [...open.values()]);
  }
}

async function ackPicked() {
  const ids = [...picked];
  for (const id of ids) {
    const inc = open.get(id);
    if (inc && inc.status === "new") {
      if (!(await step(inc, "ack"))) break;
    }
    picked.delete(id);
  }
  render();
}

function fillFilters() {
  const fill = (sel, values, labelOf) => {
    const keep = sel.value;
    clear(sel).append(el("option", { value: "" }, t("alerts.filter_all")));
    for (const v of values) sel.append(el("option", { value: v }, labelOf(v)));
    sel.value = values.includes(keep) ? keep : "";
  };
  const incs = [...open.values()];
  fill(document.getElementById("alerts-filter-camera"), [...new Set(incs.map((i) => i.camera_id))].sort(), cameraName);
  fill(document.getElementById("alerts-filter-type"), [...new Set(incs.map((i) => i.incident_type))].sort(),
    (v) => INCIDENT_LABEL[v] || v);
  fill(document.getElementById("alerts-filter-status"), ["new", "acknowledged"], (v) => STATUS_LABEL[v]);
}

// --- history (resolved) ---------------------------------------------------------------------------

let historyItems = null; // the resolved incidents last fetched: said again at once in a new language

function drawHistory() {
  const ul = clear(document.getElementById("alerts-history"));
  for (const inc of historyItems || []) ul.append(card(inc));
  ul.setAttribute("data-count", String((historyItems || []).length));
  document.getElementById("alerts-history-empty").hidden = (historyItems || []).length > 0;
}

async function loadHistory() {
  historyItems = (await cw.api("/incidents?status=resolved&limit=50")).items;
  drawHistory();
  historyStale = false;
}

function showTab(which) {
  const history = which === "history";
  document.getElementById("alerts-open-pane").hidden = history;
  document.getElementById("alerts-history-pane").hidden = !history;
  document.getElementById("alerts-tab-open").setAttribute("aria-selected", String(!history));
  document.getElementById("alerts-tab-history").setAttribute("aria-selected", String(history));
  if (history && historyStale) {
    loadHistory().catch((e) => { document.getElementById("alerts-history-error").textContent = e.message; });
  }
}

// --- banner ---------------------------------------------------------------------------------------
function showBanner(rec, escalated = false) {
  const banner = document.getElementById("incident-banner");
  const what = INCIDENT_LABEL[rec.incident_type] || rec.incident_type;
  document.getElementById("incident-banner-text").textContent = t(escalated ? "banner.not_acked" : "banner.new_incident",
    { what, camera: cameraName(rec.camera_id), time: fmt(rec.started_at, "time") });
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
  merge();
}

cw.on("start", () => load().catch((e) => console.error(e.message)));
cw.on("dropped", () => { load().catch(() => {}); });
cw.on("refresh", () => { if (!acting()) load().catch(() => {}); });
cw.on("incident_alert", (rec) => { const isNew = !open.has(rec.incident_id); apply(rec); if (isNew) showBanner(rec); });
cw.on("incident_status", apply);
// the edge's own lifecycle events: an incident that has ended is marked where it stands
cw.on("incident", (ev) => {
  const rec = open.get(ev.incident_id) || doneHere.get(ev.incident_id);
  if (!rec || ev.state !== "closed" || rec.state === "closed") return;
  apply({ ...rec, state: "closed", ended_at: ev.ended_at || ev.ts });
});
cw.on("incident_escalated", (rec) => { apply(rec); if (rec.status === "new") showBanner(rec, true); });
cw.on("sound", (on) => { soundOn = on; });
cw.on("lang", () => { render(); fillFilters(); if (historyItems) drawHistory(); });

document.addEventListener("DOMContentLoaded", () => {
  const name = document.getElementById("operator-name");
  name.value = localStorage.getItem("citywatch.operator") || "";
  name.addEventListener("change", () => {
    localStorage.setItem("citywatch.operator", name.value.trim());
    cw.emit("operator-name", name.value.trim()); // the role badge shows it
  });
  cw.on("start", () => { name.value = localStorage.getItem("citywatch.operator") || ""; });
  const section = document.getElementById("alerts-section");
  const ul = document.getElementById("alerts-list");
  ul.addEventListener("pointerenter", () => { pointerInside = true; });
  ul.addEventListener("pointerleave", () => { pointerInside = false; lastTouch = Date.now(); });
  for (const ev of ["pointerdown", "keydown", "input", "wheel"]) section.addEventListener(ev, () => { lastTouch = Date.now(); });
  document.getElementById("alerts-new").addEventListener("click", merge);
  document.getElementById("alerts-ack-selected").addEventListener("click", () => { ackPicked(); });
  document.getElementById("alerts-select-all").addEventListener("click", () => {
    for (const id of order) {
      const inc = open.get(id);
      if (inc && inc.status === "new" && visible(inc)) picked.add(id);
    }
    render();
  });
  for (const [id, key] of [["alerts-filter-camera", "camera"], ["alerts-filter-type", "type"], ["alerts-filter-status", "status"]]) {
    document.getElementById(id).addEventListener("change", (e) => { filters[key] = e.target.value; render(); });
  }
  document.getElementById("alerts-tab-open").addEventListener("click", () => showTab("open"));
  document.getElementById("alerts-tab-history").addEventListener("click", () => showTab("history"));
  document.getElementById("incident-banner-close").addEventListener("click", () => {
    document.getElementById("incident-banner").hidden = true;
  });
  document.getElementById("incident-banner-show").addEventListener("click", () => {
    const banner = document.getElementById("incident-banner");
    const id = banner.getAttribute("data-incident-id");
    location.hash = "operator";
    if (!order.includes(id)) merge();
    const li = document.querySelector(`#alerts-list li[data-incident-id="${CSS.escape(id)}"]`);
    if (li) { li.scrollIntoView({ block: "center" }); li.classList.add("flash"); }
    const inc = open.get(id);
    if (inc) cw.emit("select-camera", inc.camera_id);
  });
  // keep ages fresh on the wall screen; bring waiting alerts in once the operator has stopped acting
  setInterval(() => {
    for (const s of document.querySelectorAll('#alerts-list [data-field="age"]')) {
      s.textContent = ` · ${age(s.getAttribute("data-started-at"))}`;
    }
    if ((waiting.size || doneHere.size) && !acting()) merge();
  }, 5000);
});
