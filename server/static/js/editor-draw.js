// The picture and what is drawn on it: an SVG whose viewBox is the reference picture's pixel grid, so that
// every point is stored in image pixels (as the camera's configuration wants them) and the drawing scales
// with the picture's on-screen size. `drawLayout` draws a camera block read-only (the operator's camera
// panel); `Stage` adds the editor's tools: draw lines, lanes, zones, the region of interest and calibration
// marks with clicks, drag (or arrow-key) the points of what is there, select and delete.
import { clear, svg, t } from "./core.js";

export const COLOUR = { lines: "#ffd400", lanes: "#3fd0ff", zones: "#ff8ae0", roi: "#ffffff", calibration: "#8cff66" };
const NS_XLINK = "http://www.w3.org/1999/xlink";

/** The side of a line an object ends up on after an `in` crossing: (B-A)x(P-A) > 0 (config.LineConfig). */
export function inNormal(a, b) {
  const dx = b[0] - a[0], dy = b[1] - a[1];
  const n = Math.hypot(dx, dy) || 1;
  return [-dy / n, dx / n];
}

/** Image pixels per screen pixel: text, handles and arrows stay the same size on screen. */
function unit(root) {
  const ctm = root.getScreenCTM ? root.getScreenCTM() : null;
  return ctm && ctm.a > 0 ? 1 / ctm.a : 1;
}

const pts = (list) => list.map((p) => `${p[0]},${p[1]}`).join(" ");
const mid = (a, b) => [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];

function label(g, x, y, text, k, cls = "", anchor = "middle") {
  g.append(svg("text", { x, y, class: `ov-label ${cls}`, "font-size": (14 * k).toFixed(2),
    "stroke-width": (3.5 * k).toFixed(2), "text-anchor": anchor, "dominant-baseline": "middle" }, text));
}

/** An arrow from `a` to `b` with a filled head `size` long. */
function arrow(g, a, b, k, colour, cls = "") {
  const dx = b[0] - a[0], dy = b[1] - a[1];
  const n = Math.hypot(dx, dy) || 1;
  const ux = dx / n, uy = dy / n, s = 11 * k;
  const base = [b[0] - ux * s, b[1] - uy * s];
  g.append(svg("line", { x1: a[0], y1: a[1], x2: base[0], y2: base[1], class: `ov-halo ${cls}` }));
  g.append(svg("line", { x1: a[0], y1: a[1], x2: base[0], y2: base[1], stroke: colour, class: `ov-stroke ${cls}` }));
  g.append(svg("polygon", { class: `ov-head ${cls}`, fill: colour, points: pts([
    b, [base[0] - uy * s * 0.55, base[1] + ux * s * 0.55], [base[0] + uy * s * 0.55, base[1] - ux * s * 0.55]]) }));
}

function shape(g, kind, points, closed, colour) {
  const tag = closed ? "polygon" : "polyline";
  g.append(svg(tag, { points: pts(points), class: "ov-halo" }));
  g.append(svg(tag, { points: pts(points), stroke: colour, class: `ov-stroke ov-${kind}`,
    fill: closed ? colour : "none", "fill-opacity": closed ? 0.16 : 0 }));
}

function drawLine(g, ln, k, dirWords) {
  const [a, b] = ln.points;
  shape(g, "line", [a, b], false, COLOUR.lines);
  const n = inNormal(a, b);
  const m = mid(a, b);
  const L = 26 * k;
  const head = [m[0] + n[0] * L, m[1] + n[1] * L];
  const tail = [m[0] - n[0] * L, m[1] - n[1] * L];
  arrow(g, tail, head, k, COLOUR.lines, "ov-dir");
  const labels = ln.labels || {};
  const inText = labels.in ? `${dirWords.in}: ${labels.in}` : dirWords.in;
  const outText = labels.out ? `${dirWords.out}: ${labels.out}` : dirWords.out;
  label(g, head[0] + n[0] * 14 * k, head[1] + n[1] * 14 * k, inText, k, "ov-in");
  label(g, tail[0] - n[0] * 12 * k, tail[1] - n[1] * 12 * k, outText, k, "ov-out");
  const len = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
  const u = [(b[0] - a[0]) / len, (b[1] - a[1]) / len];
  label(g, a[0] - u[0] * 12 * k, a[1] - u[1] * 12 * k, ln.id, k, "ov-name", u[0] >= 0 ? "end" : "start");
}

function centroid(poly) {
  const s = poly.reduce((acc, p) => [acc[0] + p[0], acc[1] + p[1]], [0, 0]);
  return [s[0] / poly.length, s[1] / poly.length];
}

/** Everything of one camera block drawn into `g`; `refOf(kind, i)` names each element's group. */
function drawBlock(g, block, k, selected) {
  const dirWords = { in: t("ed.in"), out: t("ed.out") };
  const group = (kind, index, id) => {
    const sel = selected && selected.kind === kind && selected.index === index;
    const e = svg("g", { class: `ov-el ov-${kind}${sel ? " selected" : ""}`, "data-kind": kind, "data-index": index,
      "data-id": id ?? "" });
    g.append(e);
    return e;
  };
  const roi = block.processing && block.processing.roi;
  if (Array.isArray(roi) && roi.length === 4) {
    const e = group("roi", 0, "roi");
    const [x1, y1, x2, y2] = roi;
    shape(e, "roi", [[x1, y1], [x2, y1], [x2, y2], [x1, y2]], true, COLOUR.roi);
    label(e, x1 + 28 * k, y1 + 12 * k, "ROI", k);
  }
  (block.zones || []).forEach((z, i) => {
    const e = group("zones", i, z.id);
    shape(e, "zone", z.polygon, true, COLOUR.zones);
    const c = centroid(z.polygon);
    label(e, c[0], c[1], `${z.id} · ${t(`kind.${z.kind || "generic"}`)}`, k);
  });
  (block.lanes || []).forEach((ln, i) => {
    const e = group("lanes", i, ln.id);
    shape(e, "lane", ln.polygon, true, COLOUR.lanes);
    if (ln.direction) arrow(e, ln.direction[0], ln.direction[1], k, COLOUR.lanes, "ov-dir");
    const c = centroid(ln.polygon);
    label(e, c[0], c[1] - 16 * k, ln.id, k);
  });
  (block.lines || []).forEach((ln, i) => drawLine(group("lines", i, ln.id), ln, k, dirWords));
  const cal = block.calibration;
  if (cal) {
    const e = group("calibration", 0, "calibration");
    (cal.image_points || []).forEach((p, i) => {
      e.append(svg("circle", { cx: p[0], cy: p[1], r: 5 * k, class: "ov-mark", fill: COLOUR.calibration }));
      label(e, p[0], p[1] - 14 * k, String(i + 1), k);
    });
  }
}

/** Set `root` (an <svg>) to a w x h pixel grid showing `picture` (a data: URL or null). */
function frame(root, w, h, picture) {
  clear(root);
  root.setAttribute("viewBox", `0 0 ${w} ${h}`);
  root.setAttribute("data-width", String(w));
  root.setAttribute("data-height", String(h));
  if (picture) {
    const img = svg("image", { x: 0, y: 0, width: w, height: h, preserveAspectRatio: "none", class: "ov-picture" });
    img.setAttribute("href", picture);
    if (img.setAttributeNS) img.setAttributeNS(NS_XLINK, "xlink:href", picture);
    root.append(img);
  } else {
    root.append(svg("rect", { x: 0, y: 0, width: w, height: h, class: "ov-blank" }));
  }
}

/** The camera panel's read-only drawing: `block`'s lines, lanes and zones on the picture. */
export function drawLayout(root, picture, w, h, block) {
  frame(root, w, h, picture);
  const g = svg("g", { class: "ov-layer" });
  root.append(g);
  drawBlock(g, block || {}, unit(root), null);
}

const HANDLE_KINDS = { lines: "points", lanes: "polygon", zones: "polygon" };

/** Where the points of an element live in the block, as [array, index-of-point] pairs. */
export function pointRefs(block, sel) {
  if (!sel) return [];
  if (sel.kind === "roi") {
    const r = block.processing && block.processing.roi;
    return Array.isArray(r) ? [["roi", 0], ["roi", 1]] : [];
  }
  if (sel.kind === "calibration") return ((block.calibration || {}).image_points || []).map((_, i) => ["cal", i]);
  const el = (block[sel.kind] || [])[sel.index];
  if (!el) return [];
  const out = el[HANDLE_KINDS[sel.kind]].map((_, i) => ["main", i]);
  if (sel.kind === "lanes" && el.direction) out.push(["dir", 0], ["dir", 1]);
  return out;
}

function getPoint(block, sel, ref) {
  const [where, i] = ref;
  if (where === "roi") { const r = block.processing.roi; return i === 0 ? [r[0], r[1]] : [r[2], r[3]]; }
  if (where === "cal") return block.calibration.image_points[i];
  const el = block[sel.kind][sel.index];
  return where === "dir" ? el.direction[i] : el[HANDLE_KINDS[sel.kind]][i];
}

function setPoint(block, sel, ref, p) {
  const [where, i] = ref;
  if (where === "roi") {
    const r = block.processing.roi;
    if (i === 0) { r[0] = p[0]; r[1] = p[1]; } else { r[2] = p[0]; r[3] = p[1]; }
  } else if (where === "cal") block.calibration.image_points[i] = p;
  else {
    const el = block[sel.kind][sel.index];
    if (where === "dir") el.direction[i] = p; else el[HANDLE_KINDS[sel.kind]][i] = p;
  }
}

/** The editor's drawing surface. `hooks`: add(kind, geometry) when a drawing is finished, change() after a
 * point moved, select(sel) when an element is picked, hint(key) for the line under the tools. */
export class Stage {
  constructor(root, hooks) {
    this.root = root;
    this.hooks = hooks;
    this.block = {};
    this.w = 1280;
    this.h = 720;
    this.picture = null;
    this.tool = "select";
    this.pending = []; // points clicked for the drawing in progress
    this.phase = "shape"; // a lane: "shape", then "direction"
    this.selected = null;
    this.errors = new Set(); // "kind:index" of elements with a validation error
    this.cursor = null;
    this.drag = null;
    root.addEventListener("pointerdown", (e) => this.down(e));
    root.addEventListener("pointermove", (e) => this.move(e));
    root.addEventListener("pointerup", (e) => this.up(e));
    root.addEventListener("keydown", (e) => this.key(e));
  }

  setPicture(picture, w, h) {
    this.picture = picture;
    this.w = w;
    this.h = h;
    this.render();
  }

  setBlock(block) { this.block = block; this.render(); }

  setTool(tool) {
    this.tool = tool;
    this.pending = [];
    this.phase = "shape";
    this.hooks.hint(this.hintKey());
    this.render();
  }

  hintKey() {
    if (this.tool === "lane" || this.tool === "zone") return this.phase === "direction" ? "ed.hint.direction" : "ed.hint.polygon";
    return `ed.hint.${this.tool}`;
  }

  /** A pointer event -> image pixels (rounded, inside the picture). */
  toImage(e) {
    const ctm = this.root.getScreenCTM();
    const p = new DOMPoint(e.clientX, e.clientY).matrixTransform(ctm.inverse());
    const clamp = (v, hi) => Math.max(0, Math.min(hi, Math.round(v)));
    return [clamp(p.x, this.w), clamp(p.y, this.h)];
  }

  down(e) {
    if (e.button !== 0) return;
    const handle = e.target.closest && e.target.closest(".ov-handle");
    if (handle && this.tool === "select") {
      this.drag = { ref: [handle.dataset.where, Number(handle.dataset.i)], id: e.pointerId };
      this.root.setPointerCapture(e.pointerId);
      e.preventDefault();
      return;
    }
    const p = this.toImage(e);
    if (this.tool === "select") {
      const g = e.target.closest && e.target.closest(".ov-el");
      this.select(g ? { kind: g.dataset.kind, index: Number(g.dataset.index) } : null);
      return;
    }
    e.preventDefault();
    this.click(p);
  }

  /** One click of a drawing tool at image point `p`. */
  click(p) {
    const k = unit(this.root);
    const pend = this.pending;
    if (this.tool === "calibration") { this.hooks.add("calibration", { point: p }); return; }
    if (this.tool === "line" || this.tool === "roi" || this.phase === "direction") {
      pend.push(p);
      if (pend.length === 2) this.finishTwo();
      else this.render();
      return;
    }
    // a polygon: clicking near its first point closes it
    if (pend.length >= 3 && Math.hypot(p[0] - pend[0][0], p[1] - pend[0][1]) < 10 * k) { this.finishPolygon(); return; }
    pend.push(p);
    this.render();
  }

  finishTwo() {
    const [a, b] = this.pending;
    this.pending = [];
    if (this.phase === "direction") {
      this.phase = "shape";
      this.hooks.add("lane-direction", { direction: [a, b] });
    } else if (this.tool === "line") {
      this.hooks.add("line", { points: [a, b] });
    } else {
      this.hooks.add("roi", { box: [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])] });
    }
    this.hooks.hint(this.hintKey());
    this.render();
  }

  /** Close the polygon in progress (Enter, the finish button, or a click on its first point). */
  finishPolygon() {
    if ((this.tool !== "lane" && this.tool !== "zone") || this.phase !== "shape" || this.pending.length < 3) return false;
    const polygon = this.pending;
    this.pending = [];
    this.hooks.add(this.tool, { polygon });
    if (this.tool === "lane") this.phase = "direction";
    this.hooks.hint(this.hintKey());
    this.render();
    return true;
  }

  cancel() {
    const had = this.pending.length > 0 || this.phase === "direction";
    this.pending = [];
    this.phase = "shape";
    this.hooks.hint(this.hintKey());
    this.render();
    return had;
  }

  move(e) {
    if (this.drag) {
      setPoint(this.block, this.selected, this.drag.ref, this.toImage(e));
      this.render();
      return;
    }
    if (this.pending.length) { this.cursor = this.toImage(e); this.renderPending(); }
  }

  up(e) {
    if (!this.drag) return;
    try { this.root.releasePointerCapture(e.pointerId); } catch (err) { /* already released */ }
    this.drag = null;
    this.hooks.change();
  }

  key(e) {
    const handle = e.target.closest && e.target.closest(".ov-handle");
    const steps = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (handle && steps[e.key] && this.selected) {
      const ref = [handle.dataset.where, Number(handle.dataset.i)];
      const p = getPoint(this.block, this.selected, ref);
      const s = e.shiftKey ? 10 : 1;
      setPoint(this.block, this.selected, ref, [
        Math.max(0, Math.min(this.w, p[0] + steps[e.key][0] * s)), Math.max(0, Math.min(this.h, p[1] + steps[e.key][1] * s))]);
      e.preventDefault();
      this.hooks.change(); // redraws; render() keeps the focus on this point
    }
  }

  select(sel) {
    this.selected = sel;
    this.render();
    this.hooks.select(sel);
  }

  render() {
    const active = document.activeElement;
    const focused = active && active.classList && active.classList.contains("ov-handle")
      ? [active.dataset.where, active.dataset.i] : null;
    frame(this.root, this.w, this.h, this.picture);
    this.root.setAttribute("data-tool", this.tool);
    const k = unit(this.root);
    const g = svg("g", { class: "ov-layer" });
    this.root.append(g);
    drawBlock(g, this.block, k, this.selected);
    for (const key of this.errors) {
      const [kind, index] = key.split(":");
      g.querySelector(`.ov-el[data-kind="${kind}"][data-index="${index}"]`)?.classList.add("has-error");
    }
    if (this.selected) {
      const hs = svg("g", { class: "ov-handles" });
      for (const ref of pointRefs(this.block, this.selected)) {
        const p = getPoint(this.block, this.selected, ref);
        const h = svg("circle", { cx: p[0], cy: p[1], r: (7 * k).toFixed(2), class: "ov-handle", tabindex: 0,
          "data-where": ref[0], "data-i": ref[1], role: "button", "aria-label": `${ref[0]} ${ref[1] + 1}: ${p[0]}, ${p[1]}` });
        hs.append(h);
      }
      this.root.append(hs);
      if (focused) hs.querySelector(`.ov-handle[data-where="${focused[0]}"][data-i="${focused[1]}"]`)?.focus();
    }
    this.pendingLayer = svg("g", { class: "ov-pending" });
    this.root.append(this.pendingLayer);
    this.renderPending();
  }

  renderPending() {
    const g = clear(this.pendingLayer);
    if (!this.pending.length) return;
    const k = unit(this.root);
    const list = this.cursor ? [...this.pending, this.cursor] : this.pending;
    g.append(svg("polyline", { points: pts(list), class: "ov-halo" }));
    g.append(svg("polyline", { points: pts(list), class: "ov-stroke ov-rubber", stroke: "#ffffff", fill: "none" }));
    for (const p of this.pending) g.append(svg("circle", { cx: p[0], cy: p[1], r: 4 * k, class: "ov-mark", fill: "#ffffff" }));
  }
}
