// A camera's reference picture as the server holds it (GET /cameras/{id}/reference-picture: JPEG; 404 while
// none has arrived; 403 where the site does not show it to this role), and the camera panel's view of it:
// the picture with the camera's current lines, lanes and zones drawn on it, so that "line L, direction in"
// means something to an operator. Read as a data: URL (the page's CSP allows data: images, not blob:).
import { clear, cw, el, svg, t } from "./core.js";
import "./editor-i18n.js";
import { drawLayout } from "./editor-draw.js";

const API = "/api/v1";

function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

function size(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve([img.naturalWidth, img.naturalHeight]);
    img.onerror = () => reject(new Error("not an image"));
    img.src = url;
  });
}

/** {picture, width, height, at} when there is one; else {status, message}. */
export async function fetchPicture(cam) {
  let r;
  try {
    r = await fetch(`${API}/cameras/${encodeURIComponent(cam)}/reference-picture`, { credentials: "same-origin" });
  } catch (e) {
    return { status: 0, message: t("err.network") };
  }
  if (r.status === 401) cw.emit("unauthorised", null);
  if (!r.ok) return { status: r.status, message: r.status >= 500 ? t("err.server", { status: r.status }) : t("err.generic", { status: r.status }) };
  try {
    const picture = await dataUrl(await r.blob());
    const [shownW, shownH] = await size(picture);
    // points are the camera frame's pixels: a picture the edge scaled down (max_side, JPEG size) is drawn
    // stretched over the frame's grid when the server says the frame's size, else its own size is the grid
    const fw = Number(r.headers.get("X-Reference-Frame-Width")) || shownW;
    const fh = Number(r.headers.get("X-Reference-Frame-Height")) || shownH;
    return { picture, width: fw, height: fh, shownWidth: shownW, shownHeight: shownH,
      at: r.headers.get("X-Reference-Taken-At") || r.headers.get("Date"), status: 200 };
  } catch (e) {
    return { status: 415, message: String(e.message || e) };
  }
}

/** Without the picture, the camera's lines (with their direction names) and zones in words. */
function layoutNames(conf) {
  const ul = el("ul", { class: "pic-layout small", "data-field": "layout-names" });
  for (const ln of conf.lines || []) {
    const labels = ln.labels || {};
    const dirs = ["in", "out"].filter((d) => labels[d]).map((d) => `${t(`dir.${d}`)}: ${labels[d]}`).join(", ");
    ul.append(el("li", { "data-line-id": ln.id }, `${t("pic.line", { id: ln.id })}${dirs ? ` (${dirs})` : ""}`));
  }
  for (const z of conf.zones || []) {
    ul.append(el("li", { "data-zone-id": z.id }, t("pic.zone", { id: z.id, kind: t(`kind.${z.kind || "generic"}`) })));
  }
  return ul;
}

/** The layout the camera runs: the pushed block once the edge reports its version, else the file's. */
function runningBlock(detail) {
  const pushed = detail.pushed_config;
  if (pushed && detail.pushed_config_version && detail.config_version === detail.pushed_config_version) return pushed;
  return detail.config || pushed || {};
}

const AGAIN_MS = 60000;
let shown = null;
let shownAt = 0;

/** The panel is refreshed every 30 s and on every incident: the picture is fetched again only once a minute. */
async function showFor(cam, force = false) {
  const box = document.getElementById("camera-picture");
  if (!box) return;
  const settled = ["shown", "forbidden"].includes(box.getAttribute("data-state"));
  if (!force && settled && cam === shown && Date.now() - shownAt < AGAIN_MS) return;
  shown = cam;
  shownAt = Date.now();
  box.setAttribute("data-camera-id", cam);
  const conf = (cw.config.cameras || []).find((c) => c.id === cam) || {};
  // ui-config says whether this user may see the camera's picture: no request is made to be refused
  const allowed = conf.reference_picture !== false;
  const [got, detail] = await Promise.all([
    allowed ? fetchPicture(cam) : Promise.resolve({ status: 403 }),
    cw.api(`/cameras/${encodeURIComponent(cam)}`).catch(() => null),
  ]);
  if (shown !== cam) return;
  clear(box);
  box.append(el("h4", {}, t("pic.title")));
  if (!got.picture) {
    const refused = got.status === 403 || got.status === 409;
    const key = refused ? (cw.role === "admin" ? "pic.site_off" : "pic.forbidden")
      : got.status === 404 ? "pic.none" : "pic.error";
    box.setAttribute("data-state", refused ? "forbidden" : got.status === 404 ? "none" : "error");
    box.append(el("p", { class: "muted small pic-note", "data-field": "picture-note" }, t(key, { msg: got.message })));
    box.append(layoutNames(conf));
    return;
  }
  box.setAttribute("data-state", "shown");
  const root = svg("svg", { id: "camera-picture-svg", role: "img", "aria-label": t("ed.stage"), class: "ov-svg" });
  box.append(root);
  box.lastPicture = { got, block: detail ? runningBlock(detail) : {} };
  drawLayout(root, got.picture, got.width, got.height, box.lastPicture.block);
  requestAnimationFrame(() => drawLayout(root, got.picture, got.width, got.height, box.lastPicture.block));
}

cw.on("camera-selected", (cam) => { showFor(cam).catch((e) => console.error(e)); });
cw.on("view", (view) => { if (view === "operator" && shown) showFor(shown).catch(() => {}); });
cw.on("lang", () => { if (shown) showFor(shown, true).catch(() => {}); });
