// The admin's camera set-up (#editor, issue 18): pick a camera, ask its edge for the reference picture
// (POST, then poll GET until it arrives), draw and edit its lines, lanes, zones, region of interest and
// calibration marks on it (editor-draw.js, editor-list.js), see the server validate the draft as it changes
// (/config/validate, debounced; errors next to the element they name), push it (PUT /config), watch the
// version the edge confirms (/config/versions) and roll back to the previous version in one click.
// The tab exists for admins only; the server refuses the routes to everyone else anyway.
import { clear, cw, el, fmt, t } from "./core.js";
import "./editor-i18n.js";
import { Stage } from "./editor-draw.js";
import { renderList, showErrors, syncPoints } from "./editor-list.js";
import { fetchPicture } from "./picture.js";

const POLL_PICTURE_MS = 1000;
const PICTURE_WAIT_S = 60;
const POLL_VERSIONS_MS = 2000;
const VALIDATE_DELAY_MS = 350;

const ed = {
  cam: null, base: null, draft: null, stage: null, errors: [], general: [], dirty: false, size: { w: 1280, h: 720 },
  validateTimer: null, validateSeq: 0, versionsTimer: null, waitingFor: null, pictureTimer: null, loaded: false,
};
const $ = (id) => document.getElementById(id);
const clone = (x) => JSON.parse(JSON.stringify(x));

const said = {}; // id -> the key and parameters last shown there, said again in a new language

function say(id, key, params = {}, state = "") {
  said[id] = [key, params, state];
  const p = $(id);
  p.textContent = key ? t(key, params) : "";
  p.setAttribute("data-state", state);
  if (key) p.setAttribute("data-key", key); else p.removeAttribute("data-key");
}

// an error's own sentence (already in the reader's language): not said again on a language switch
function sayError(id, e) {
  delete said[id];
  $(id).textContent = e.message;
  $(id).setAttribute("data-state", "error");
}

// --- camera and picture ---------------------------------------------------------------------------------

function fillCameras() {
  const sel = $("ed-camera");
  const cams = cw.config.cameras || [];
  const keep = sel.value;
  clear(sel);
  for (const c of cams) sel.append(el("option", { value: c.id }, c.name && c.name !== c.id ? `${c.name} (${c.id})` : c.id));
  if (!cams.length) say("ed-picture-status", "ed.no_cameras");
  if (keep && cams.some((c) => c.id === keep)) sel.value = keep;
}

/** The draft starts from what the edge was last sent (or the file's block), without its version: the
 * server names the pushed configuration by its content. */
function startingBlock(detail) {
  const block = clone(detail.pushed_config || detail.config || { id: detail.id, source: "file:///dev/null" });
  delete block.version;
  for (const k of ["lines", "lanes", "zones"]) block[k] = block[k] || [];
  return block;
}

/** Without a picture: a 1280 x 720 grid, grown to hold every point the camera's block already has. */
function blankSize(block) {
  let w = 1280, h = 720;
  const see = (p) => { if (Array.isArray(p)) { w = Math.max(w, Math.ceil(p[0])); h = Math.max(h, Math.ceil(p[1])); } };
  for (const ln of block.lines) ln.points.forEach(see);
  for (const x of [...block.lanes, ...block.zones]) x.polygon.forEach(see);
  for (const ln of block.lanes) (ln.direction || []).forEach(see);
  ((block.calibration || {}).image_points || []).forEach(see);
  return { w, h };
}

async function openCamera(cam) {
  ed.cam = cam;
  clearInterval(ed.pictureTimer);
  $("view-editor").removeAttribute("data-loaded");
  $("view-editor").setAttribute("data-camera-id", cam);
  const detail = await cw.api(`/cameras/${encodeURIComponent(cam)}`);
  if (ed.cam !== cam) return;
  ed.base = detail;
  ed.draft = startingBlock(detail);
  ed.dirty = false;
  ed.errors = [];
  ed.general = [];
  ed.stage.selected = null;
  ed.size = blankSize(ed.draft);
  ed.stage.setBlock(ed.draft);
  renderSide();
  $("view-editor").setAttribute("data-loaded", cam);
  say("ed-picture-status", "", {});
  const conf = (cw.config.cameras || []).find((c) => c.id === cam) || {};
  $("ed-request").disabled = conf.reference_picture === false;
  if (conf.reference_picture === false) { // the site does not allow it: draw on a blank grid
    ed.stage.setPicture(null, ed.size.w, ed.size.h);
    $("ed-stage").setAttribute("data-picture", "none");
    say("ed-picture-status", "ed.picture_refused", {}, "none");
  } else {
    await showPicture(cam, false);
  }
  validateSoon(0);
  loadVersions().catch(() => {});
}

/** Show the picture the server holds; `waiting`: a request is in flight and a 404 means "not yet". */
async function showPicture(cam, waiting) {
  const got = await fetchPicture(cam);
  if (ed.cam !== cam) return "gone";
  if (got.picture) {
    ed.size = { w: got.width, h: got.height };
    ed.stage.setPicture(got.picture, got.width, got.height);
    $("ed-stage").setAttribute("data-picture", "loaded");
    say("ed-picture-status", "ed.picture_ok", { time: fmt(got.at || new Date().toISOString(), "time") }, "ok");
    return "ok";
  }
  if (got.status === 403) { say("ed-picture-status", "ed.picture_forbidden", {}, "error"); return "error"; }
  if (got.status !== 404) { say("ed-picture-status", "pic.error", { msg: got.message }, "error"); return "error"; }
  if (!waiting) {
    $("ed-stage").setAttribute("data-picture", "none");
    ed.stage.setPicture(null, ed.size.w, ed.size.h);
    say("ed-picture-status", "ed.picture_none", {}, "none");
  }
  return "missing";
}

async function requestPicture() {
  const cam = ed.cam;
  if (!cam) return;
  const btn = $("ed-request");
  btn.disabled = true;
  try {
    await cw.api(`/cameras/${encodeURIComponent(cam)}/reference-picture`, { method: "POST" });
  } catch (e) {
    btn.disabled = false;
    if (e.status === 409) say("ed-picture-status", "ed.picture_refused", {}, "error");
    else say("ed-picture-status", "pic.error", { msg: e.message }, "error");
    return;
  }
  say("ed-picture-status", "ed.requesting", {}, "waiting");
  const t0 = Date.now();
  clearInterval(ed.pictureTimer);
  ed.pictureTimer = setInterval(async () => {
    const got = await showPicture(cam, true);
    if (got === "missing" && Date.now() - t0 < PICTURE_WAIT_S * 1000) return;
    clearInterval(ed.pictureTimer);
    btn.disabled = false;
    if (got === "missing") say("ed-picture-status", "ed.picture_timeout", { n: PICTURE_WAIT_S }, "error");
  }, POLL_PICTURE_MS);
}

// --- the draft ------------------------------------------------------------------------------------------

function freeId(prefix, list) {
  const used = new Set(list.map((x) => x.id));
  for (let n = list.length + 1; ; n += 1) if (!used.has(`${prefix}-${n}`)) return `${prefix}-${n}`;
}

/** What a drawing tool made (editor-draw.js's hook). */
function add(kind, g) {
  const d = ed.draft;
  let sel = null;
  if (kind === "line") { d.lines.push({ id: freeId("line", d.lines), points: g.points }); sel = { kind: "lines", index: d.lines.length - 1 }; }
  if (kind === "zone") { d.zones.push({ id: freeId("zone", d.zones), polygon: g.polygon, kind: "carriageway" }); sel = { kind: "zones", index: d.zones.length - 1 }; }
  if (kind === "lane") { d.lanes.push({ id: freeId("lane", d.lanes), polygon: g.polygon, direction: null }); sel = { kind: "lanes", index: d.lanes.length - 1 }; }
  if (kind === "lane-direction" && d.lanes.length) { d.lanes[d.lanes.length - 1].direction = g.direction; sel = { kind: "lanes", index: d.lanes.length - 1 }; }
  if (kind === "roi") { d.processing = { ...(d.processing || {}), roi: g.box }; sel = { kind: "roi", index: 0 }; }
  if (kind === "calibration") {
    d.calibration = d.calibration || { image_points: [], ground_points: [] };
    d.calibration.image_points.push(g.point);
    d.calibration.ground_points.push([0, 0]);
    sel = { kind: "calibration", index: 0 };
  }
  ed.stage.selected = sel;
  structure();
  if (sel) focusEntry(sel);
}

/** An element added from the list (keyboard): placed in the middle of the grid, its points focused. */
function addDefault(kind) {
  const { w, h } = ed.size;
  const r = (v) => Math.round(v);
  const box = [[r(w * 0.35), r(h * 0.35)], [r(w * 0.65), r(h * 0.35)], [r(w * 0.65), r(h * 0.65)], [r(w * 0.35), r(h * 0.65)]];
  if (kind === "lines") add("line", { points: [[r(w * 0.25), r(h / 2)], [r(w * 0.75), r(h / 2)]] });
  if (kind === "lanes") add("lane", { polygon: box });
  if (kind === "zones") add("zone", { polygon: box });
  if (kind === "calibration") add("calibration", { point: [r(w / 2), r(h / 2)] });
  const sel = ed.stage.selected;
  if (sel && kind !== "calibration") {
    $("ed-elements").querySelector(`.ed-item[data-kind="${sel.kind}"][data-index="${sel.index}"] input[data-points]`)?.focus();
  }
}

function focusEntry(sel) {
  const li = $("ed-elements").querySelector(`.ed-item[data-kind="${sel.kind}"][data-index="${sel.index}"]`);
  if (!li) return;
  li.scrollIntoView({ block: "nearest" });
  if (sel.kind === "calibration") {
    const rows = li.querySelectorAll("input[data-input=ground-x]");
    rows[rows.length - 1]?.focus();
  }
}

function remove(sel) {
  const d = ed.draft;
  if (sel.kind === "roi") d.processing = { ...(d.processing || {}), roi: "auto" };
  else if (sel.kind === "calibration") d.calibration = null;
  else d[sel.kind].splice(sel.index, 1);
  ed.stage.selected = null;
  structure();
}

function removeMark(i) {
  const cal = ed.draft.calibration;
  cal.image_points.splice(i, 1);
  cal.ground_points.splice(i, 1);
  if (!cal.image_points.length) ed.draft.calibration = null;
  structure();
}

/** A value changed (typed, dragged): redraw, keep the fields in step, validate soon. */
function change() {
  ed.dirty = true;
  ed.stage.render();
  syncPoints($("ed-elements"), ed.draft);
  dirtyNote();
  validateSoon();
}

/** An element came or went: the list is drawn again. */
function structure() {
  ed.dirty = true;
  ed.stage.render();
  renderSide();
  dirtyNote();
  validateSoon();
}

function select(sel, fromList = false) {
  if (fromList) {
    const same = ed.stage.selected && sel && ed.stage.selected.kind === sel.kind && ed.stage.selected.index === sel.index;
    if (same) return;
    ed.stage.selected = sel;
    ed.stage.render();
  }
  for (const li of $("ed-elements").querySelectorAll(".ed-item")) {
    li.classList.toggle("selected", !!sel && li.getAttribute("data-kind") === sel.kind
      && Number(li.getAttribute("data-index")) === sel.index);
  }
  if (sel && !fromList) focusEntry(sel);
}

const listHooks = {
  change, structure, remove, removeMark, addDefault, select: (sel, fromList) => select(sel, fromList),
};

function errorsFor(kind, index) {
  return ed.errors.filter((e) => e.ref && e.ref.kind === kind && e.ref.index === index);
}

function renderSide() {
  renderList($("ed-elements"), ed.draft, { selected: ed.stage.selected, hooks: listHooks, errorsFor, size: ed.size });
  renderGeneral();
}

function dirtyNote() {
  const p = $("ed-dirty");
  p.hidden = !ed.dirty;
  p.textContent = t("ed.unsaved");
}

// --- validation -----------------------------------------------------------------------------------------

/** Which element a server error is about: by its path (lines.1.points, cameras.0.zones.0...) or its name. */
export function errorRef(err, draft) {
  const path = String(err.path || "");
  const m = /(lines|lanes|zones)\.(\d+)/.exec(path);
  if (m) return { kind: m[1], index: Number(m[2]) };
  if (/calibration/.test(path)) return { kind: "calibration", index: 0 };
  if (/roi/.test(path)) return { kind: "roi", index: 0 };
  const name = err.element;
  if (name) {
    for (const kind of ["lines", "lanes", "zones"]) {
      const i = (draft[kind] || []).findIndex((x) => x.id === name || `${kind.slice(0, -1)}:${x.id}` === name);
      if (i >= 0) return { kind, index: i };
    }
    if (name === "calibration" || name === "roi") return { kind: name, index: 0 };
  }
  return null;
}

function validateSoon(delay = VALIDATE_DELAY_MS) {
  clearTimeout(ed.validateTimer);
  say("ed-validation", "ed.validating", {}, "checking");
  ed.validateTimer = setTimeout(validate, delay);
}

async function validate() {
  const seq = ++ed.validateSeq;
  const cam = ed.cam;
  let answer;
  try {
    answer = await cw.api(`/cameras/${encodeURIComponent(cam)}/config/validate`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(ed.draft),
    });
  } catch (e) {
    if (seq !== ed.validateSeq) return;
    ed.errors = [];
    say("ed-validation", "ed.validate_missing", { msg: e.message }, "unknown");
    showErrors($("ed-elements"), { errorsFor });
    return;
  }
  if (seq !== ed.validateSeq || cam !== ed.cam) return;
  const errs = (answer.errors || []).map((e) => ({ ...e, ref: errorRef(e, ed.draft) }));
  ed.errors = errs;
  ed.stage.errors = new Set(errs.filter((e) => e.ref).map((e) => `${e.ref.kind}:${e.ref.index}`));
  ed.stage.render();
  ed.general = errs.filter((e) => !e.ref);
  if (answer.ok) say("ed-validation", "ed.valid", {}, "ok");
  else say("ed-validation", "ed.invalid", { n: errs.length }, "invalid");
  $("ed-push").disabled = !answer.ok;
  showErrors($("ed-elements"), { errorsFor });
  renderGeneral();
}

function renderGeneral() {
  const ul = clear($("ed-general-errors"));
  for (const e of ed.general) ul.append(el("li", { "data-path": e.path || "" }, `${e.path || t("ed.error_general")}: ${e.message}`));
}

// --- push, versions, rollback ---------------------------------------------------------------------------

async function push() {
  const cam = ed.cam;
  $("ed-push").disabled = true;
  say("ed-push-status", "ed.pushing", {}, "sending");
  try {
    const r = await cw.api(`/cameras/${encodeURIComponent(cam)}/config`, {
      method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(ed.draft),
    });
    ed.dirty = false;
    dirtyNote();
    ed.waitingFor = r.config_version;
    say("ed-push-status", "ed.pushed", { version: r.config_version }, "waiting");
    $("ed-push-status").setAttribute("data-version", r.config_version);
    pollVersions();
  } catch (e) {
    sayError("ed-push-status", e);
  } finally {
    $("ed-push").disabled = false;
  }
}

async function rollback() {
  const cam = ed.cam;
  const btn = $("ed-rollback");
  btn.disabled = true;
  say("ed-push-status", "ed.rolling_back", {}, "sending");
  try {
    const r = await cw.api(`/cameras/${encodeURIComponent(cam)}/config/rollback`, { method: "POST" });
    const version = r.config_version || r.version;
    ed.waitingFor = version;
    say("ed-push-status", "ed.rolled_back", { version }, "waiting");
    $("ed-push-status").setAttribute("data-version", version || "");
    await openCamera(cam); // the draft is now the version sent again
    pollVersions();
  } catch (e) {
    sayError("ed-push-status", e);
  } finally {
    btn.disabled = false;
  }
}

function pollVersions() {
  clearInterval(ed.versionsTimer);
  ed.versionsTimer = setInterval(() => {
    if (document.body.dataset.view !== "editor") return;
    // every 2 s while a push waits for the edge's confirmation, every 10 s otherwise
    if (!ed.waitingFor && Date.now() - (ed.versionsAt || 0) < 5 * POLL_VERSIONS_MS) return;
    ed.versionsAt = Date.now();
    loadVersions().catch(() => {});
  }, POLL_VERSIONS_MS);
}

async function loadVersions() {
  const cam = ed.cam;
  const v = await cw.api(`/cameras/${encodeURIComponent(cam)}/config/versions`);
  if (cam !== ed.cam) return;
  renderVersions(v);
  if (ed.waitingFor && v.confirmed_version === ed.waitingFor) {
    ed.waitingFor = null;
    say("ed-push-status", "", {});
  }
}

function renderVersions(v) {
  const conf = $("ed-confirmed");
  conf.setAttribute("data-version", v.confirmed_version || "");
  conf.textContent = v.confirmed_version ? t("ed.confirmed", { version: v.confirmed_version }) : t("ed.confirmed_none");
  const ol = clear($("ed-versions"));
  const list = [...(v.versions || [])].sort((a, b) => String(b.pushed_at).localeCompare(String(a.pushed_at)));
  for (const x of list) {
    const li = el("li", { "data-version": x.version, "data-confirmed": x.confirmed_at ? "true" : "false" },
      t("ed.version_line", { version: x.version, time: fmt(x.pushed_at, "short"), who: x.pushed_by || "—" }));
    if (x.confirmed_at) li.append(el("span", { class: "muted small" }, ` · ${t("ed.version_confirmed", { time: fmt(x.confirmed_at, "short") })}`));
    if (x.version === v.confirmed_version) li.append(el("strong", { class: "ed-running" }, ` · ${t("ed.running")}`));
    ol.append(li);
  }
  if (!list.length) ol.append(el("li", { class: "muted ed-empty" }, t("ed.no_versions")));
  // one push is enough: the server rolls back to the camera's configured block before the first push
  $("ed-rollback").disabled = list.length < 1;
}

// --- wiring ---------------------------------------------------------------------------------------------

function setTool(tool) {
  for (const b of document.querySelectorAll("#ed-tools button[data-tool]")) {
    b.setAttribute("aria-pressed", String(b.dataset.tool === tool));
  }
  ed.stage.setTool(tool);
  $("ed-finish").hidden = !(tool === "lane" || tool === "zone");
}

async function enter() {
  if (cw.role !== "admin") return;
  if (!ed.loaded) {
    ed.loaded = true;
    fillCameras();
    const first = $("ed-camera").value;
    if (first) await openCamera(first).catch((e) => say("ed-picture-status", "pic.error", { msg: e.message }, "error"));
  } else if (ed.stage) {
    ed.stage.render(); // sizes (text, handles) follow the picture's size on screen, known only once shown
  }
  if (ed.cam) pollVersions();
}

cw.on("start", ({ role }) => {
  const tab = $("tab-editor");
  tab.hidden = role !== "admin";
  ed.loaded = false;
});
cw.on("view", (view) => {
  if (view === "editor") enter().catch((e) => console.error(e));
  else clearInterval(ed.versionsTimer);
});
cw.on("logout", () => { clearInterval(ed.versionsTimer); clearInterval(ed.pictureTimer); ed.loaded = false; });
cw.on("lang", () => {
  for (const [id, [key, params, state]] of Object.entries(said)) if (key) say(id, key, params, state);
  if (ed.stage) ed.stage.hooks.hint(ed.stage.hintKey());
  if (!ed.draft) return;
  ed.stage.render();
  renderSide();
  dirtyNote();
  validateSoon(0);
  loadVersions().catch(() => {});
});

document.addEventListener("DOMContentLoaded", () => {
  const root = $("ed-stage");
  if (!root || !root.getScreenCTM) return; // no layout engine (the node smoke test)
  ed.stage = new Stage(root, {
    add, change, select: (sel) => select(sel, false),
    hint: (key) => { $("ed-hint").textContent = t(key); $("ed-hint").setAttribute("data-key", key); },
  });
  $("ed-camera").addEventListener("change", (e) => openCamera(e.target.value).catch((err) => console.error(err)));
  $("ed-request").addEventListener("click", requestPicture);
  for (const b of document.querySelectorAll("#ed-tools button[data-tool]")) b.addEventListener("click", () => setTool(b.dataset.tool));
  $("ed-finish").addEventListener("click", () => ed.stage.finishPolygon());
  $("ed-push").addEventListener("click", push);
  $("ed-reset").addEventListener("click", () => { if (ed.cam) openCamera(ed.cam).catch(() => {}); });
  $("ed-rollback").addEventListener("click", rollback);
  document.addEventListener("keydown", (e) => {
    if (document.body.dataset.view !== "editor" || !ed.stage) return;
    const typing = e.target.closest && e.target.closest("input, select, textarea");
    if (e.key === "Escape" && ed.stage.cancel()) e.preventDefault();
    else if (e.key === "Enter" && !typing && ed.stage.finishPolygon()) e.preventDefault();
    else if ((e.key === "Delete" || e.key === "Backspace") && !typing && ed.stage.selected) {
      e.preventDefault();
      remove(ed.stage.selected);
    }
  });
  window.addEventListener("resize", () => { if (document.body.dataset.view === "editor" && ed.draft) ed.stage.render(); });
  setTool("select");
});
