// Incident messages in the operator's language. The edge describes an incident in one English sentence
// (vision/incidents.py); its known shapes are read back here into type, class, lane and measures, and
// said again from i18n with class names, and metres and km/h where the camera is calibrated (the edge
// then reports metres); pixels only when it reports pixels. Unknown shapes fall back to the type's label
// and where it happened, never to the raw English in the Vietnamese view.
import { fmtNumber, label, t } from "./i18n.js";

const num = (s) => Number(s);

function cls(name) {
  const l = label("class", name);
  return l === name && !["car", "truck", "bus", "motorcycle", "bicycle", "person"].includes(name) ? t("msg.vehicle") : l;
}

function laneText(inc, lane) {
  const id = lane || inc.lane_id;
  return id ? t("alerts.lane", { id }) : inc.zone_id ? t("alerts.zone", { id: inc.zone_id }) : "—";
}

function distance(value, unit) {
  return unit === "m" ? `${fmtNumber(value, value < 100 ? 1 : 0)} m` : `${fmtNumber(value)} px`;
}

function seconds(s) {
  return t("dur.s", { n: fmtNumber(s, s < 10 ? 1 : 0) });
}

/** The incident's message in the current language: { text, measured: "m" | "px" | null }; text is empty
 * when the edge said nothing more than the type (the card's title says that already). */
export function incidentMessage(inc) {
  const m = inc.message || "";
  let r;
  if (!m && !inc.lane_id && !inc.zone_id) return { text: "", measured: null };
  if (inc.incident_type === "wrong_way"
      && (r = /^(\w+) moving against lane (\S+) \(([\d.]+) (px|m) in ([\d.]+) s(?:, ([\d.]+) km\/h)?\)$/.exec(m))) {
    const [, c, lane, d, unit, secs, kmh] = r;
    let text = t("msg.wrong_way_m", { cls: cls(c), lane: laneText(inc, lane), dist: distance(num(d), unit), secs: seconds(num(secs)) });
    const speed = kmh ? num(kmh) : unit === "m" && num(secs) > 0 ? (num(d) / num(secs)) * 3.6 : null;
    if (speed !== null) text += ` (${t("msg.speed", { v: fmtNumber(speed, 0) })})`;
    return { text, measured: unit };
  }
  if (inc.incident_type === "stopped_vehicle" && (r = /^(\w+) stopped for ([\d.]+) s$/.exec(m))) {
    return { text: t("msg.stopped_for", { cls: cls(r[1]), secs: seconds(num(r[2])), lane: laneText(inc) }), measured: null };
  }
  if (inc.incident_type === "congestion"
      && (r = /^(\d+) vehicles in lane (\S+), (?:mean speed ([\d.]+) km\/h|([\d.]+) % standing still)$/.exec(m))) {
    const how = r[3] !== undefined ? t("msg.speed", { v: fmtNumber(num(r[3])) }) : `${fmtNumber(num(r[4]))} %`;
    const n = t("msg.n_vehicles", { n: fmtNumber(num(r[1])) });
    return { text: `${t("msg.congestion", { lane: laneText(inc, r[2]) })}: ${n}, ${how}`, measured: null };
  }
  if (["pedestrian_on_carriageway", "cyclist_on_carriageway", "crash_candidate", "congestion"].includes(inc.incident_type)) {
    return { text: t(`msg.${inc.incident_type}`, { where: laneText(inc), lane: laneText(inc) }), measured: null };
  }
  if (inc.incident_type === "stopped_vehicle") {
    return { text: t("msg.stopped_vehicle", { cls: t("msg.vehicle"), lane: laneText(inc) }), measured: null };
  }
  if (inc.incident_type === "wrong_way") {
    return { text: t("msg.wrong_way", { cls: t("msg.vehicle"), lane: laneText(inc) }), measured: null };
  }
  return { text: label("incident", inc.incident_type), measured: null };
}
