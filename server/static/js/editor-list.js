// The editor's element list: one entry per line, lane and zone, the region of interest and the calibration
// marks, each with its name, kind, labels and points as text fields (the keyboard's way to draw: every
// point can be typed) and a delete button; the validation errors the server names sit next to the
// element they are about. Typing changes the draft in place (no re-render, the caret stays); adding or
// deleting re-renders the list.
import { clear, el, t } from "./core.js";

export const ZONE_KINDS = ["carriageway", "parking", "entry", "exit", "gateway", "generic"];

/** "x,y x,y" -> [[x, y], ...], or null when it does not read as points. */
export function parsePoints(text) {
  const parts = text.trim().split(/\s+/).filter(Boolean);
  const out = [];
  for (const p of parts) {
    const m = /^(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)$/.exec(p);
    if (!m) return null;
    out.push([Number(m[1]), Number(m[2])]);
  }
  return out;
}

export const pointsText = (list) => (list || []).map((p) => `${p[0]},${p[1]}`).join(" ");

function field(labelKey, input, name) {
  const l = el("label", { class: "ed-field", "data-field": name });
  l.append(el("span", {}, t(labelKey)), input);
  return l;
}

/** A points text input bound to `get()`/`set(list)`; `count` (2) when the list must have exactly that many. */
function pointsInput(name, get, set, hooks, count = null) {
  const input = el("input", { type: "text", "data-points": name, spellcheck: "false", autocomplete: "off" });
  input.value = pointsText(get());
  input.addEventListener("input", () => {
    const p = parsePoints(input.value);
    const ok = p !== null && (count === null || p.length === count);
    input.setAttribute("aria-invalid", String(!ok));
    input.title = ok ? "" : t("ed.bad_points");
    if (ok) { set(p); hooks.change(); }
  });
  return input;
}

function errorList(errors) {
  const ul = el("ul", { class: "ed-errors", role: "alert" });
  for (const e of errors) ul.append(el("li", { "data-path": e.path || "" }, e.message));
  return ul;
}

function entry(kind, index, id, selected, hooks) {
  const li = el("li", { class: "ed-item", "data-kind": kind, "data-index": index, "data-id": id ?? "" });
  if (selected && selected.kind === kind && selected.index === index) li.classList.add("selected");
  li.addEventListener("focusin", () => hooks.select({ kind, index }, true));
  return li;
}

function deleteButton(kind, index, name, hooks) {
  const b = el("button", { type: "button", class: "ed-delete", "aria-label": t("ed.delete_named", { id: name }) },
    t("ed.delete"));
  b.addEventListener("click", () => hooks.remove({ kind, index }));
  return b;
}

function idInput(item, hooks) {
  const input = el("input", { type: "text", "data-input": "id", maxlength: 64, spellcheck: "false", autocomplete: "off" });
  input.value = item.id;
  input.addEventListener("input", () => { item.id = input.value.trim(); hooks.change(); });
  return field("ed.id", input, "id");
}

function lineEntry(ln, i, ctx) {
  const li = entry("lines", i, ln.id, ctx.selected, ctx.hooks);
  li.append(idInput(ln, ctx.hooks),
    field("ed.points", pointsInput("points", () => ln.points, (p) => { ln.points = p; }, ctx.hooks, 2), "points"));
  for (const dir of ["in", "out"]) {
    const input = el("input", { type: "text", "data-input": `label-${dir}`, maxlength: 60 });
    input.value = (ln.labels || {})[dir] || "";
    input.addEventListener("input", () => {
      ln.labels = { ...(ln.labels || {}) };
      if (input.value.trim()) ln.labels[dir] = input.value.trim(); else delete ln.labels[dir];
      ctx.hooks.change();
    });
    li.append(field(`ed.label_${dir}`, input, `label-${dir}`));
  }
  li.append(deleteButton("lines", i, ln.id, ctx.hooks));
  return li;
}

function laneEntry(ln, i, ctx) {
  const li = entry("lanes", i, ln.id, ctx.selected, ctx.hooks);
  const dir = el("input", { type: "text", "data-points": "direction", spellcheck: "false" });
  dir.value = pointsText(ln.direction);
  dir.addEventListener("input", () => {
    const p = dir.value.trim() ? parsePoints(dir.value) : [];
    const ok = p !== null && (p.length === 0 || p.length === 2);
    dir.setAttribute("aria-invalid", String(!ok));
    if (ok) { ln.direction = p.length ? p : null; ctx.hooks.change(); }
  });
  li.append(idInput(ln, ctx.hooks),
    field("ed.points", pointsInput("polygon", () => ln.polygon, (p) => { ln.polygon = p; }, ctx.hooks), "polygon"),
    field("ed.direction", dir, "direction"), deleteButton("lanes", i, ln.id, ctx.hooks));
  return li;
}

function zoneEntry(z, i, ctx) {
  const li = entry("zones", i, z.id, ctx.selected, ctx.hooks);
  const kind = el("select", { "data-input": "kind" });
  for (const k of ZONE_KINDS) kind.append(el("option", { value: k }, t(`kind.${k}`)));
  kind.value = z.kind || "generic";
  kind.addEventListener("change", () => { z.kind = kind.value; ctx.hooks.change(); });
  li.append(idInput(z, ctx.hooks), field("ed.kind", kind, "kind"),
    field("ed.points", pointsInput("polygon", () => z.polygon, (p) => { z.polygon = p; }, ctx.hooks), "polygon"),
    deleteButton("zones", i, z.id, ctx.hooks));
  return li;
}

function roiEntry(block, ctx) {
  const li = entry("roi", 0, "roi", ctx.selected, ctx.hooks);
  const proc = block.processing || {};
  const roi = proc.roi ?? "auto";
  const mode = el("select", { "data-input": "roi-mode" });
  for (const m of ["auto", "full", "box"]) mode.append(el("option", { value: m }, t(`ed.roi.${m}`)));
  mode.value = Array.isArray(roi) ? "box" : roi;
  mode.addEventListener("change", () => {
    block.processing = { ...(block.processing || {}) };
    if (mode.value === "box") block.processing.roi = [0, 0, ctx.size.w, ctx.size.h];
    else block.processing.roi = mode.value;
    ctx.hooks.structure();
  });
  li.append(field("ed.roi", mode, "roi-mode"));
  if (Array.isArray(roi)) {
    li.append(field("ed.points", pointsInput("roi", () => [[roi[0], roi[1]], [roi[2], roi[3]]],
      (p) => { block.processing.roi = [p[0][0], p[0][1], p[1][0], p[1][1]]; }, ctx.hooks, 2), "roi"));
  }
  return li;
}

function calibrationEntry(block, ctx) {
  const cal = block.calibration;
  const li = entry("calibration", 0, "calibration", ctx.selected, ctx.hooks);
  const table = el("table", { class: "ed-cal" });
  const head = el("tr");
  for (const k of ["", "ed.image_xy", "ed.ground_x", "ed.ground_y", ""]) head.append(el("th", { scope: "col" }, k ? t(k) : ""));
  table.append(el("thead"), el("tbody"));
  table.firstChild.append(head);
  cal.image_points.forEach((p, i) => {
    const tr = el("tr", { "data-mark": i });
    const img = pointsInput(`cal-${i}`, () => [cal.image_points[i]], (q) => { cal.image_points[i] = q[0]; }, ctx.hooks, 1);
    img.setAttribute("aria-label", `${t("ed.point_n", { n: i + 1 })} ${t("ed.image_xy")}`);
    const ground = [0, 1].map((axis) => {
      const input = el("input", { type: "number", step: "0.01", "data-input": `ground-${axis ? "y" : "x"}`,
        "aria-label": `${t("ed.point_n", { n: i + 1 })} ${t(axis ? "ed.ground_y" : "ed.ground_x")}` });
      input.value = String((cal.ground_points[i] || [0, 0])[axis]);
      input.addEventListener("input", () => {
        if (input.value === "" || Number.isNaN(Number(input.value))) return;
        cal.ground_points[i] = [...(cal.ground_points[i] || [0, 0])];
        cal.ground_points[i][axis] = Number(input.value);
        ctx.hooks.change();
      });
      return input;
    });
    const del = el("button", { type: "button", class: "ed-delete", "aria-label": t("ed.delete_named", { id: t("ed.point_n", { n: i + 1 }) }) },
      "×");
    del.addEventListener("click", () => ctx.hooks.removeMark(i));
    const cells = [el("th", { scope: "row" }, String(i + 1)), img, ...ground, del];
    for (const c of cells) { const td = c.tagName === "TH" ? c : el("td"); if (td !== c) td.append(c); tr.append(td); }
    table.lastChild.append(tr);
  });
  li.append(table);
  return li;
}

/** Render the list into `box`; `errorsFor(kind, index)` the validation errors of one element. */
export function renderList(box, block, ctx) {
  clear(box);
  const section = (titleKey, kind, items) => {
    const h = el("h4", {}, t(titleKey));
    if (kind !== "roi" && ctx.hooks.addDefault) { // the keyboard's way to add one: then type its points
      const add = el("button", { type: "button", class: "ed-add", "data-add": kind,
        "aria-label": t("ed.add_named", { what: t(titleKey) }) }, t("ed.add"));
      add.addEventListener("click", () => ctx.hooks.addDefault(kind));
      h.append(" ", add);
    }
    const ul = el("ul", { class: "ed-list", "data-kind": kind });
    for (const item of items) {
      item.append(errorList(ctx.errorsFor(item.getAttribute("data-kind"), Number(item.getAttribute("data-index")))));
      ul.append(item);
    }
    if (!items.length) ul.append(el("li", { class: "muted small ed-empty" }, t("ed.none")));
    box.append(h, ul);
  };
  section("ed.lines", "lines", (block.lines || []).map((x, i) => lineEntry(x, i, ctx)));
  section("ed.lanes", "lanes", (block.lanes || []).map((x, i) => laneEntry(x, i, ctx)));
  section("ed.zones", "zones", (block.zones || []).map((x, i) => zoneEntry(x, i, ctx)));
  section("ed.roi", "roi", [roiEntry(block, ctx)]);
  section("ed.calibration", "calibration", block.calibration ? [calibrationEntry(block, ctx)] : []);
}

/** Refresh the errors shown next to each element without re-rendering the fields. */
export function showErrors(box, ctx) {
  for (const li of box.querySelectorAll(".ed-item")) {
    const errs = ctx.errorsFor(li.getAttribute("data-kind"), Number(li.getAttribute("data-index")));
    li.querySelector(".ed-errors")?.replaceWith(errorList(errs));
    li.classList.toggle("has-error", errs.length > 0);
  }
}

/** Keep the points fields in step with a drag on the picture (the one being typed in is left alone). */
export function syncPoints(box, block) {
  for (const li of box.querySelectorAll(".ed-item")) {
    const kind = li.getAttribute("data-kind");
    const i = Number(li.getAttribute("data-index"));
    for (const input of li.querySelectorAll("input[data-points]")) {
      if (input === document.activeElement) continue;
      const name = input.getAttribute("data-points");
      let v = null;
      if (kind === "roi") { const r = (block.processing || {}).roi; v = Array.isArray(r) ? [[r[0], r[1]], [r[2], r[3]]] : null; }
      else if (kind === "calibration") v = [block.calibration.image_points[Number(name.slice(4))]];
      else v = (block[kind][i] || {})[name];
      if (v) input.value = pointsText(v);
    }
  }
}
