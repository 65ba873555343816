// Camera map: each configured camera at its position, coloured by health. A hand-drawn schematic (grid,
// north arrow, scale bar) that needs no internet; when `server.map_tiles_url` is set, tiles from that
// server are drawn underneath, and if they cannot be loaded the schematic simply stays. Colours are the
// health a person is shown (core.shownHealth), the same as the table's and the panel's.
import { clear, cw, HEALTH_LABEL, shownHealth, svg, t } from "./core.js";

const W = 800, H = 460, PAD = 60, TILE = 256;
let tilesFailed = false;

function mercator(lat, lon) {
  const s = Math.sin((Math.max(-85, Math.min(85, lat)) * Math.PI) / 180);
  return { x: (lon + 180) / 360, y: 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI) };
}

/** Projection fitting every placed camera: world units -> SVG pixels, and the tile zoom that matches. */
function fit(points) {
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const minSpan = 0.004 / 360; // ~0.004 degrees: a lone camera shows its streets, not the planet
  const cx = (Math.min(...xs) + Math.max(...xs)) / 2, cy = (Math.min(...ys) + Math.max(...ys)) / 2;
  const dx = Math.max(minSpan, Math.max(...xs) - Math.min(...xs));
  const dy = Math.max(minSpan, Math.max(...ys) - Math.min(...ys));
  let scale = Math.min((W - 2 * PAD) / dx, (H - 2 * PAD) / dy);
  const z = Math.max(0, Math.min(19, Math.floor(Math.log2(scale / TILE))));
  if (cw.config.map && cw.config.map.tiles_url) scale = TILE * 2 ** z; // tiles are drawn at their own size
  return { scale, z, cx, cy, px: (p) => ({ x: W / 2 + (p.x - cx) * scale, y: H / 2 + (p.y - cy) * scale }) };
}

function drawTiles(map, proj) {
  const url = cw.config.map && cw.config.map.tiles_url;
  if (!url || tilesFailed) return;
  const n = 2 ** proj.z;
  const world = (sx, sy) => ({ x: proj.cx + (sx - W / 2) / proj.scale, y: proj.cy + (sy - H / 2) / proj.scale });
  const a = world(0, 0), b = world(W, H);
  const g = svg("g", { id: "map-tiles" });
  for (let tx = Math.floor(a.x * n); tx <= Math.floor(b.x * n); tx++) {
    for (let ty = Math.max(0, Math.floor(a.y * n)); ty <= Math.min(n - 1, Math.floor(b.y * n)); ty++) {
      const p = proj.px({ x: tx / n, y: ty / n });
      const href = url.replace("{z}", proj.z).replace("{x}", ((tx % n) + n) % n).replace("{y}", ty)
        .replace("{s}", "a");
      const img = svg("image", { href, x: p.x.toFixed(1), y: p.y.toFixed(1), width: TILE, height: TILE });
      img.addEventListener("error", () => {
        tilesFailed = true; // unreachable tile server: back to the schematic, for good
        map.setAttribute("data-mode", "schematic");
        const layer = document.getElementById("map-tiles");
        if (layer) layer.remove();
      });
      g.append(img);
    }
  }
  map.append(g);
  map.setAttribute("data-mode", "tiles");
}

function drawSchematic(map, proj, lat) {
  map.append(svg("rect", { class: "map-bg", x: 0, y: 0, width: W, height: H }));
  for (let x = 0; x <= W; x += 50) map.append(svg("line", { class: "map-grid", x1: x, y1: 0, x2: x, y2: H }));
  for (let y = 0; y <= H; y += 50) map.append(svg("line", { class: "map-grid", x1: 0, y1: y, x2: W, y2: y }));
  // scale bar: metres per SVG pixel at this latitude
  const mPerPx = (40075016.7 * Math.cos((lat * Math.PI) / 180)) / proj.scale;
  const nice = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];
  const metres = nice.find((m) => m / mPerPx >= 80) || nice[nice.length - 1];
  const len = metres / mPerPx;
  const g = svg("g", { class: "map-scale", id: "map-scale", "data-metres": metres });
  g.append(svg("line", { x1: 20, y1: H - 20, x2: 20 + len, y2: H - 20 }));
  g.append(svg("text", { x: 20, y: H - 26 }, metres >= 1000 ? `${metres / 1000} km` : `${metres} m`));
  const north = svg("g", { class: "map-north" });
  north.append(svg("path", { d: `M ${W - 30} 20 L ${W - 38} 44 L ${W - 30} 38 L ${W - 22} 44 Z` }));
  north.append(svg("text", { x: W - 34, y: 58 }, t("map.north")));
  map.append(g, north);
}

function render(cameras) {
  const map = document.getElementById("camera-map");
  clear(map);
  const placed = cameras.filter((c) => c.location);
  const unplaced = cameras.filter((c) => !c.location);
  const note = document.getElementById("map-unplaced");
  note.hidden = unplaced.length === 0;
  note.textContent = unplaced.length
    ? t("map.no_position", { names: unplaced.map((c) => c.name || c.id).join(", ") }) : "";
  if (!placed.length) {
    map.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "map-empty" },
      t("map.none_placed")));
    return;
  }
  const pts = placed.map((c) => mercator(c.location.lat, c.location.lon));
  const proj = fit(pts);
  const meanLat = placed.reduce((a, c) => a + c.location.lat, 0) / placed.length;
  drawSchematic(map, proj, meanLat);
  drawTiles(map, proj);
  const selected = document.getElementById("camera-detail").getAttribute("data-camera-id");
  const now = Date.now();
  placed.forEach((c, i) => {
    const p = proj.px(pts[i]);
    const health = shownHealth(c, now).level;
    const g = svg("g", {
      class: `map-camera health-${health}${c.id === selected ? " selected" : ""}`, tabindex: 0, role: "button",
      "data-camera-id": c.id, "data-health": health, "data-x": p.x.toFixed(1), "data-y": p.y.toFixed(1),
      "aria-label": `${c.name || c.id}: ${HEALTH_LABEL[health] || health}`,
    });
    g.append(svg("title", {}, `${c.name} (${c.id}): ${HEALTH_LABEL[health] || health}`));
    g.append(svg("circle", { class: "halo", cx: p.x, cy: p.y, r: 16 }));
    g.append(svg("circle", { class: "dot", cx: p.x, cy: p.y, r: 9 }));
    const right = p.x > W - 170; // near the right edge: the name goes on the left of its dot
    const label = svg("text", { x: right ? p.x - 14 : p.x + 14, y: p.y + 4, class: "map-label",
      "text-anchor": right ? "end" : "start" }, c.name || c.id);
    g.append(label);
    const open = cw.openIncidents;
    const n = [...open.values()].filter((inc) => inc.camera_id === c.id).length;
    if (n) {
      g.append(svg("circle", { class: "badge", cx: p.x + 8, cy: p.y - 8, r: 7 }));
      g.append(svg("text", { class: "badge-text", x: p.x + 8, y: p.y - 5, "text-anchor": "middle" }, String(n)));
      g.setAttribute("data-open-incidents", n);
    }
    const pick = () => cw.emit("select-camera", c.id);
    g.addEventListener("click", pick);
    g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") pick(); });
    map.append(g);
  });
}

cw.on("cameras", render);
cw.on("lang", () => { if (cw.cameras) render(cw.cameras); });
cw.on("incidents-changed", () => { if (cw.cameras) render(cw.cameras); });
cw.on("camera-selected", () => { if (cw.cameras) render(cw.cameras); });
