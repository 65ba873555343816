"""Incident rules over confirmed tracks, lanes and zones: pure (no I/O), per camera, debounced.

``IncidentEngine.update`` runs once a frame after the tracker, the speed estimator and the stationary
state, and returns ``IncidentResult`` items: ``open`` when a rule's condition has held long enough,
``update`` at most every ``update_every_s`` (or at once when the severity rises), ``closed`` once the
condition has been absent for ``close_after_s``. The same key (type + lane/zone/track) cannot open
again for ``cooldown_s`` after it closed. Ids are stable over an incident's life.

Rules (thresholds in ``IncidentsConfig``, ``citywatch/config.py``):

- ``stopped_vehicle``: a vehicle standing still (``StationaryState``) in a lane or carriageway zone,
  outside every parking zone, *not queueing*: no stationary vehicle right ahead of it (lanes with a
  ``direction``), and either traffic moves past it (a vehicle moving in the lane ahead of it, or
  anywhere in it without a direction, within ``passing_window_s``) for ``open_after_s``, or it is
  alone in its lane for ``alone_after_s``. A queue at a red light (everyone stationary, nobody passing)
  never opens one; ``congestion`` covers a queue that lasts.
- ``wrong_way``: a vehicle in a lane with a ``direction`` whose anchor moved against it, within
  ``max_angle_deg`` of the reverse direction, at least ``min_distance_px`` and ``min_distance_boxes``
  box sizes over the last ``open_after_s``, and consistently so (both halves of that window).
- ``congestion``: a lane with at least ``min_vehicles`` vehicles whose mean speed is at most
  ``max_speed_kmh`` (calibrated) or of which ``min_stationary_share`` stand still, for ``open_after_s``.
- ``pedestrian_on_carriageway`` / ``cyclist_on_carriageway``: people by what they do. A person track
  that has been over a bicycle box (``CYCLIST_MIN_FRAMES``) and is over one now or moves at cycling
  speed (``CYCLING_BOXES_S``) is a cyclist, also in the frames where the bicycle is too small or
  occluded to be boxed; one over a motorcycle box (more often than over a bicycle) is a motorcyclist,
  neither pedestrian nor cyclist; any other person is a pedestrian. A bicycle box without a cyclist over
  it is a cyclist too. Inside a carriageway zone (or a lane, with ``in_lanes``); one incident per area,
  listing every track seen.
- ``crash_candidate``: two or more vehicles that each stopped suddenly (moving at least
  ``min_speed_boxes_s`` box sizes per second within ``stop_within_s`` before their stationary window
  began), within ``pair_window_s`` of each other and ``max_gap_boxes`` box sizes apart. Reported with
  the lower ``confidence``: a human looks at it.

Per-track state is bounded: histories hold a few seconds and are dropped ``track_ttl_frames`` after a
track was last seen; candidates end with their close; cool-downs expire.

``evaluate_stationary`` measures the per-track stationary state against ground-truth ``stopped`` flags.
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from citywatch.config import CameraConfig, CountingConfig, IncidentsConfig, LaneConfig, ZoneConfig
from citywatch.contract import CLASS_NAMES
from vision.detections import Anchor, Detections
from vision.geometry import points_in_polygon
from vision.results import IncidentResult

VEHICLES = ("car", "truck", "bus", "motorcycle", "bicycle")
MOTOR_VEHICLES = ("car", "truck", "bus", "motorcycle")
TWO_WHEELERS = ("motorcycle", "bicycle")
#: A person track seen over a bicycle box in at least this many frames may be a cyclist...
CYCLIST_MIN_FRAMES = 2
#: ...and is one, when no bicycle is boxed under it, while it moves at least this many of its box sizes per
#: second (a walker: under 1, a person on a bicycle: 3 or more).
CYCLING_BOXES_S = 1.5
_SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}
#: Namespace of incident ids made by the vision layer (the edge scopes them by source and pass).
INCIDENT_NAMESPACE = uuid.UUID("0c1d3e5f-7a9b-4c2d-8e6f-a1b2c3d4e5f6")
#: A stopped vehicle being passed must stay so this long (a queue starting on green is not one).
_CONFIRM_S = 3.0


@dataclass
class Observation:
    """What a rule sees this frame for one key."""

    incident_type: str
    track_ids: tuple[int, ...] = ()
    lane_id: str | None = None
    zone_id: str | None = None
    severity: str = "medium"
    confidence: float = 1.0
    message: str | None = None
    started_frame: int | None = None


@dataclass
class _Live:
    key: tuple[Any, ...]
    first_true: int
    last_true: int
    obs: Observation
    opened: bool = False
    incident_id: str = ""
    update_no: int = 0
    last_emit: int = 0
    sent_severity: str = "low"
    tracks: list[int] = field(default_factory=list)


@dataclass
class _Moving:
    area: str
    first: int
    x0: float
    y0: float
    last: int
    x: float
    y: float


@dataclass
class _Track:
    class_name: str
    hist: deque[tuple[int, float, float, float]]  # frame, x, y, box size
    last_seen: int
    still_since: int | None = None
    speeds: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=256))  # frame, boxes/s
    over: dict[str, int] = field(default_factory=dict)  # person tracks: frames over a bicycle / motorcycle box


class IncidentEngine:
    """One camera's incident rules and their debounced lifecycles."""

    def __init__(
        self,
        camera: CameraConfig,
        config: IncidentsConfig | None = None,
        *,
        fps: float = 25.0,
        counting: CountingConfig | None = None,
    ) -> None:
        self.fps = fps if fps and fps > 0 else 25.0
        self.counting = counting or CountingConfig()
        self._live: dict[tuple[Any, ...], _Live] = {}
        self._cooldown: dict[tuple[Any, ...], int] = {}
        self._tracks: dict[int, _Track] = {}
        self._moving: dict[int, _Moving] = {}
        self._sudden: dict[int, tuple[int, float, float, float]] = {}  # tid -> frame, x, y, size
        self.reconfigure(camera, config)

    # --- configuration ------------------------------------------------------------------------

    def reconfigure(self, camera: CameraConfig, config: IncidentsConfig | None = None) -> None:
        """New lanes, zones or thresholds; open incidents go on (those of a removed area close by themselves)."""
        self.camera = camera
        self.config = config or camera.incidents or IncidentsConfig()
        self.anchor: Anchor = camera.anchor
        self.lanes: list[LaneConfig] = list(camera.lanes)
        self.parking: list[ZoneConfig] = [z for z in camera.zones if z.kind == "parking"]
        self.carriageway: list[ZoneConfig] = [z for z in camera.zones if z.kind == "carriageway"]
        self._units: dict[str, np.ndarray] = {}
        for lane in self.lanes:
            if lane.direction is not None:
                (x0, y0), (x1, y1) = lane.direction
                v = np.asarray([x1 - x0, y1 - y0], float)
                n = float(np.hypot(*v))
                if n > 0:
                    self._units[lane.id] = v / n
        c = self.config
        keep_s = max(c.wrong_way.open_after_s, self.counting.stationary_s + c.crash_candidate.stop_within_s + 1.0)
        self._hist_len = max(4, int(math.ceil(keep_s * self.fps)) + 2)
        for t in self._tracks.values():
            t.hist = deque(t.hist, maxlen=self._hist_len)

    def frames(self, seconds: float) -> int:
        return int(round(seconds * self.fps))

    @property
    def open_incidents(self) -> list[tuple[str, str]]:
        """``(incident_id, type)`` of every open incident."""
        return [(c.incident_id, c.obs.incident_type) for c in self._live.values() if c.opened]

    @property
    def tracked(self) -> int:
        return len(self._tracks) + len(self._live) + len(self._cooldown) + len(self._sudden) + len(self._moving)

    # --- per frame ----------------------------------------------------------------------------

    def update(
        self,
        detections: Detections,
        frame_index: int,
        stationary: set[int],
        speeds: dict[int, float] | None = None,
    ) -> list[IncidentResult]:
        if not self.config.enabled:
            return self._close_all(frame_index)
        f = frame_index
        confirmed = detections[detections.tracker_id >= 0]
        tids = [int(t) for t in confirmed.tracker_id.tolist()]
        names = [CLASS_NAMES[int(c)] for c in confirmed.class_id.tolist()]
        pts = confirmed.anchors(self.anchor) if len(confirmed) else np.zeros((0, 2))
        xyxy = confirmed.xyxy
        sizes = (
            np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]) if len(confirmed) else np.zeros(0)
        )
        self._observe_tracks(f, tids, names, pts, sizes, stationary)
        in_lane = {lane.id: points_in_polygon(pts, lane.polygon) for lane in self.lanes}
        in_cw = {z.id: points_in_polygon(pts, z.polygon) for z in self.carriageway}
        in_parking = np.zeros(len(tids), bool)
        for z in self.parking:
            in_parking |= points_in_polygon(pts, z.polygon)

        active: dict[tuple[Any, ...], tuple[Observation, float]] = {}
        c = self.config
        if c.stopped_vehicle.enabled:
            self._stopped(f, tids, names, pts, sizes, stationary, in_lane, in_cw, in_parking, active)
        if c.wrong_way.enabled:
            self._wrong_way(f, tids, names, in_lane, active)
        if c.congestion.enabled:
            self._congestion(tids, names, stationary, speeds or {}, in_lane, active)
        roles = self._roles(tids, names, xyxy)
        if c.pedestrian.enabled:
            self._people(tids, roles, in_lane, in_cw, active, "pedestrian")
        if c.cyclist.enabled:
            self._people(tids, roles, in_lane, in_cw, active, "cyclist")
        if c.crash_candidate.enabled:
            self._crash(f, tids, stationary, active)
        out = self._debounce(f, active)
        self._prune(f)
        return out

    def _observe_tracks(
        self,
        f: int,
        tids: list[int],
        names: list[str],
        pts: np.ndarray,
        sizes: np.ndarray,
        stationary: set[int],
    ) -> None:
        window = max(2, int(round(self.counting.stationary_s * self.fps)))
        half = max(1, self.frames(0.5))
        for i, tid in enumerate(tids):
            t = self._tracks.get(tid)
            if t is None:
                t = self._tracks[tid] = _Track(names[i], deque(maxlen=self._hist_len), f)
            t.class_name, t.last_seen = names[i], f
            x, y, s = float(pts[i, 0]), float(pts[i, 1]), max(float(sizes[i]), 1.0)
            t.hist.append((f, x, y, s))
            old = next((h for h in t.hist if h[0] >= f - half), None)
            if old is not None and old[0] < f:
                v = math.hypot(x - old[1], y - old[2]) / ((f - old[0]) / self.fps) / s
                t.speeds.append((f, v))
            if tid in stationary:
                if t.still_since is None:
                    t.still_since = f - window + 1
                    self._check_sudden_stop(tid, t, f, window, x, y, s)
            else:
                t.still_since = None
                self._sudden.pop(tid, None)

    def _check_sudden_stop(self, tid: int, t: _Track, f: int, window: int, x: float, y: float, s: float) -> None:
        cc = self.config.crash_candidate
        began = f - window + 1
        lo = began - self.frames(cc.stop_within_s)
        before = [v for fr, v in t.speeds if lo <= fr <= began]
        if t.class_name in VEHICLES and before and max(before) >= cc.min_speed_boxes_s:
            self._sudden[tid] = (f, x, y, s)

    # --- rules --------------------------------------------------------------------------------

    def _area_of(
        self, i: int, in_lane: dict[str, np.ndarray], in_cw: dict[str, np.ndarray]
    ) -> tuple[str | None, str | None]:
        for lane in self.lanes:
            if in_lane[lane.id][i]:
                return lane.id, None
        for z in self.carriageway:
            if in_cw[z.id][i]:
                return None, z.id
        return None, None

    def _stopped(
        self,
        f: int,
        tids: list[int],
        names: list[str],
        pts: np.ndarray,
        sizes: np.ndarray,
        stationary: set[int],
        in_lane: dict[str, np.ndarray],
        in_cw: dict[str, np.ndarray],
        in_parking: np.ndarray,
        active: dict[tuple[Any, ...], tuple[Observation, float]],
    ) -> None:
        rule = self.config.stopped_vehicle
        win = self.frames(rule.passing_window_s)
        areas = [self._area_of(i, in_lane, in_cw) for i in range(len(tids))]
        # every vehicle moving in a lane or carriageway zone: where it first moved, where it is now
        for i, tid in enumerate(tids):
            lane_id, zone_id = areas[i]
            area = lane_id or zone_id
            if area is None or names[i] not in VEHICLES or tid in stationary:
                continue
            x, y = float(pts[i, 0]), float(pts[i, 1])
            m = self._moving.get(tid)
            if m is None:
                self._moving[tid] = _Moving(area, f, x, y, f, x, y)
            else:
                m.area, m.last, m.x, m.y = area, f, x, y
        for tid in [t for t, m in self._moving.items() if f - m.last > win]:
            del self._moving[tid]
        for i, tid in enumerate(tids):
            if names[i] not in VEHICLES or tid not in stationary or in_parking[i]:
                continue
            lane_id, zone_id = areas[i]
            area = lane_id or zone_id
            if area is None:
                continue
            t = self._tracks[tid]
            since = t.still_since if t.still_since is not None else f
            still_s = (f - since) / self.fps
            key = ("stopped_vehicle", tid)
            live = self._live.get(key)
            obs = Observation(
                "stopped_vehicle", (tid,), lane_id, zone_id, rule.severity,
                message=f"{names[i]} stopped for {still_s:.0f} s", started_frame=since,
            )
            if live is not None and live.opened:
                active[key] = (obs, 0.0)  # sticky while it stands there
                continue
            u = self._units.get(lane_id) if lane_id else None
            own = None if u is None else float(pts[i] @ u)
            margin = 0.5 * float(sizes[i])
            others = [j for j in range(len(tids)) if j != i and areas[j] == areas[i] and names[j] in VEHICLES]
            if u is not None and any(tids[j] in stationary and float(pts[j] @ u) > own + margin for j in others):
                continue  # queueing behind a stationary vehicle
            passing = [t2 for t2, m in self._moving.items() if t2 != tid and m.last >= since and self._passed(
                m, area, u, own, margin, since)]
            alone = not others and not passing
            if passing and still_s >= rule.open_after_s:
                obs.message = f"{names[i]} stopped for {still_s:.0f} s while traffic passes it"
                active[key] = (obs, _CONFIRM_S)
            elif alone and still_s >= rule.alone_after_s:
                obs.message = f"{names[i]} stopped alone for {still_s:.0f} s"
                active[key] = (obs, 0.0)

    def _passed(
        self, m: _Moving, area: str, u: np.ndarray | None, own: float | None, margin: float, since: int
    ) -> bool:
        """Did this moving vehicle pass the stopped one? Along the lane: it went from behind it to ahead of it
        (in its lane or a parallel one, so traffic going round it counts); without a direction: it came into
        the same area after the stop began and moved on."""
        if u is None or own is None:
            return m.area == area and m.first > since
        pu = self._units.get(m.area)
        if m.area != area and (pu is None or float(pu @ u) < 0.7):
            return False
        return float(np.asarray([m.x0, m.y0]) @ u) < own - margin and float(np.asarray([m.x, m.y]) @ u) > own + margin

    def _wrong_way(
        self, f: int, tids: list[int], names: list[str], in_lane: dict[str, np.ndarray],
        active: dict[tuple[Any, ...], tuple[Observation, float]],
    ) -> None:
        rule = self.config.wrong_way
        span = max(2, self.frames(rule.open_after_s))
        cos_max = math.cos(math.radians(rule.max_angle_deg))
        for i, tid in enumerate(tids):
            key = ("wrong_way", tid)
            live = self._live.get(key)
            if live is not None and live.opened:
                active[key] = (live.obs, 0.0)  # sticky while the track is seen
                continue
            if names[i] not in rule.classes:
                continue
            for lane in self.lanes:
                u = self._units.get(lane.id)
                if u is None or not in_lane[lane.id][i]:
                    continue
                hist = self._tracks[tid].hist
                if hist[0][0] > f - span:
                    continue  # not seen long enough
                start = next(h for h in hist if h[0] >= f - span)
                mid = next(h for h in hist if h[0] >= f - span // 2)
                now = hist[-1]
                d = np.asarray([now[1] - start[1], now[2] - start[2]])
                dist = float(np.hypot(*d))
                if dist < max(rule.min_distance_px, rule.min_distance_boxes * now[3], 1e-6):
                    continue
                if float(d @ -u) / dist < cos_max:
                    continue
                a = (mid[1] - start[1]) * u[0] + (mid[2] - start[2]) * u[1]
                b = (now[1] - mid[1]) * u[0] + (now[2] - mid[2]) * u[1]
                if a >= 0 or b >= 0:
                    continue  # not consistently against the lane
                active[key] = (Observation(
                    "wrong_way", (tid,), lane.id, None, rule.severity,
                    message=f"{names[i]} moving against lane {lane.id} ({dist:.0f} px in {rule.open_after_s:g} s)",
                    started_frame=start[0],
                ), 0.0)
                break

    def _congestion(
        self, tids: list[int], names: list[str], stationary: set[int], speeds: dict[int, float],
        in_lane: dict[str, np.ndarray], active: dict[tuple[Any, ...], tuple[Observation, float]],
    ) -> None:
        rule = self.config.congestion
        for lane in self.lanes:
            idx = [i for i in range(len(tids)) if in_lane[lane.id][i] and names[i] in VEHICLES]
            if len(idx) < rule.min_vehicles:
                continue
            known = [speeds[tids[i]] for i in idx if tids[i] in speeds]
            if len(known) * 2 >= len(idx) and known:
                mean = float(np.mean(known))
                if mean > rule.max_speed_kmh:
                    continue
                how = f"mean speed {mean:.0f} km/h"
            else:
                share = sum(tids[i] in stationary for i in idx) / len(idx)
                if share < rule.min_stationary_share:
                    continue
                how = f"{100 * share:.0f} % standing still"
            severity = "high" if len(idx) >= 2 * rule.min_vehicles else rule.severity
            active[("congestion", lane.id)] = (Observation(
                "congestion", tuple(tids[i] for i in idx), lane.id, None, severity,
                message=f"{len(idx)} vehicles in lane {lane.id}, {how}",
            ), rule.open_after_s)

    @staticmethod
    def _under(names: list[str], xyxy: np.ndarray) -> dict[int, int]:
        """Person index -> index of the two-wheeler box it is mostly over (its rider), this frame."""
        people = [i for i, n in enumerate(names) if n == "person"]
        wheels = [i for i, n in enumerate(names) if n in TWO_WHEELERS]
        out: dict[int, int] = {}
        for p in people:
            px1, py1, px2, py2 = xyxy[p]
            area = max((px2 - px1) * (py2 - py1), 1e-6)
            for w in wheels:
                wx1, wy1, wx2, wy2 = xyxy[w]
                inter = max(0.0, min(px2, wx2) - max(px1, wx1)) * max(0.0, min(py2, wy2) - max(py1, wy1))
                if inter / area >= 0.3:
                    out[p] = w
                    break
        return out

    def _roles(self, tids: list[int], names: list[str], xyxy: np.ndarray) -> list[str | None]:
        """Per row: ``pedestrian``, ``cyclist``, ``motorcyclist``, ``rider`` (on something not yet known) or None
        (a vehicle; a ridden bicycle's box, whose rider stands for it). Remembers per person track what it was
        seen riding."""
        under = self._under(names, xyxy)
        roles: list[str | None] = [None] * len(tids)
        ridden: set[int] = set()
        for i, name in enumerate(names):
            if name != "person":
                continue
            t = self._tracks[tids[i]]
            w = under.get(i)
            if w is not None:
                t.over[names[w]] = t.over.get(names[w], 0) + 1
            bike, moto = t.over.get("bicycle", 0), t.over.get("motorcycle", 0)
            recent = [v for fr, v in t.speeds if fr >= t.last_seen - self.frames(1.0)]
            cycling = bool(recent) and float(np.median(recent)) >= CYCLING_BOXES_S
            if moto and moto >= bike:
                roles[i] = "motorcyclist"
            elif bike >= CYCLIST_MIN_FRAMES and (cycling or (w is not None and names[w] == "bicycle")):
                roles[i] = "cyclist"
            elif w is not None:
                roles[i] = "rider"  # on something this frame, not yet known what: not a pedestrian
            else:
                roles[i] = "pedestrian"
            if w is not None:
                ridden.add(w)
        riders = {w: p for p, w in under.items()}
        for i, name in enumerate(names):
            if name == "bicycle":  # alone, or under a person not yet known to be its cyclist: a cyclist
                roles[i] = "cyclist" if i not in ridden or roles[riders[i]] == "rider" else None
        return roles

    def _people(
        self, tids: list[int], roles: list[str | None], in_lane: dict[str, np.ndarray],
        in_cw: dict[str, np.ndarray], active: dict[tuple[Any, ...], tuple[Observation, float]], who: str,
    ) -> None:
        rule = self.config.pedestrian if who == "pedestrian" else self.config.cyclist
        kind = f"{who}_on_carriageway"
        areas: list[tuple[str, bool, np.ndarray]] = [(z.id, False, in_cw[z.id]) for z in self.carriageway]
        if rule.in_lanes:
            areas += [(lane.id, True, in_lane[lane.id]) for lane in self.lanes]
        for area_id, is_lane, mask in areas:
            idx = [i for i in range(len(tids)) if mask[i] and roles[i] == who]
            if not idx:
                continue
            active[(kind, area_id)] = (Observation(
                kind, tuple(tids[i] for i in idx), area_id if is_lane else None, None if is_lane else area_id,
                rule.severity, message=f"{len(idx)} {who}(s) on the carriageway ({area_id})",
            ), rule.open_after_s)

    def _crash(
        self, f: int, tids: list[int], stationary: set[int], active: dict[tuple[Any, ...], tuple[Observation, float]]
    ) -> None:
        rule = self.config.crash_candidate
        pair = self.frames(rule.pair_window_s)
        for key, live in list(self._live.items()):
            if key[0] == "crash_candidate" and live.opened:
                still = [t for t in live.obs.track_ids if t in stationary]
                if len(still) >= 2:
                    active[key] = (live.obs, 0.0)
        stops = sorted(self._sudden.items())
        seen = set(tids)
        stops = [(t, s) for t, s in stops if t in seen and t in stationary]
        groups: list[set[int]] = []
        for a in range(len(stops)):
            ta, (fa, xa, ya, sa) = stops[a]
            for b in range(a + 1, len(stops)):
                tb, (fb, xb, yb, sb) = stops[b]
                if abs(fa - fb) > pair:
                    continue
                if math.hypot(xa - xb, ya - yb) > rule.max_gap_boxes * (sa + sb) / 2:
                    continue
                g = next((g for g in groups if ta in g or tb in g), None)
                if g is None:
                    groups.append({ta, tb})
                else:
                    g.update((ta, tb))
        for g in groups:
            members = tuple(sorted(g))
            if any(k[0] == "crash_candidate" and set(members) & set(v.obs.track_ids) for k, v in self._live.items()):
                continue
            first = min(self._sudden[t][0] for t in members)
            active[("crash_candidate", members[0])] = (Observation(
                "crash_candidate", members, None, None, rule.severity, rule.confidence,
                message=f"{len(members)} vehicles stopped suddenly close together (check the camera)",
                started_frame=first,
            ), rule.open_after_s)

    # --- lifecycle ----------------------------------------------------------------------------

    def _rule(self, incident_type: str) -> Any:
        c = self.config
        return {
            "stopped_vehicle": c.stopped_vehicle, "wrong_way": c.wrong_way, "congestion": c.congestion,
            "pedestrian_on_carriageway": c.pedestrian, "cyclist_on_carriageway": c.cyclist,
            "crash_candidate": c.crash_candidate,
        }[incident_type]

    def _result(self, c: _Live, state: str, f: int) -> IncidentResult:
        o = c.obs
        started = c.first_true if o.started_frame is None else min(o.started_frame, c.first_true)
        ended = c.last_true if state == "closed" else None
        return IncidentResult(
            incident_id=c.incident_id,
            incident_type=o.incident_type,
            state=state,
            frame_index=f,
            started_frame=started,
            started_s=round(started / self.fps, 3),
            update_no=c.update_no,
            ended_frame=ended,
            ended_s=round(ended / self.fps, 3) if ended is not None else None,
            severity=o.severity,
            confidence=float(o.confidence),
            lane_id=o.lane_id,
            zone_id=o.zone_id,
            track_ids=tuple(c.tracks[:100]),
            message=(o.message or None) and o.message[:500],
        )

    def _debounce(self, f: int, active: dict[tuple[Any, ...], tuple[Observation, float]]) -> list[IncidentResult]:
        out: list[IncidentResult] = []
        for key, (obs, open_after_s) in active.items():
            c = self._live.get(key)
            if c is None:
                if self._cooldown.get(key, -1) > f:
                    continue
                first = obs.started_frame if obs.started_frame is not None and open_after_s == 0 else f
                c = self._live[key] = _Live(key, first, f, obs)
            c.last_true, c.obs = f, obs
            for t in obs.track_ids:
                if t not in c.tracks and len(c.tracks) < 100:
                    c.tracks.append(t)
            rule = self._rule(obs.incident_type)
            if not c.opened:
                if f - c.first_true >= self.frames(open_after_s):
                    c.opened, c.last_emit, c.sent_severity = True, f, obs.severity
                    c.incident_id = str(uuid.uuid5(
                        INCIDENT_NAMESPACE, f"{self.camera.id}|{obs.incident_type}|{key[1:]}|{c.first_true}"
                    ))
                    out.append(self._result(c, "open", f))
            elif f - c.last_emit >= self.frames(rule.update_every_s) or (
                _SEVERITY_RANK.get(obs.severity, 1) > _SEVERITY_RANK.get(c.sent_severity, 1)
            ):
                c.update_no += 1
                c.last_emit, c.sent_severity = f, obs.severity
                out.append(self._result(c, "update", f))
        for key, c in list(self._live.items()):
            if c.last_true == f:
                continue
            rule = self._rule(c.obs.incident_type)
            if f - c.last_true > self.frames(rule.close_after_s):
                if c.opened:
                    c.update_no += 1
                    out.append(self._result(c, "closed", f))
                    self._cooldown[key] = f + self.frames(rule.cooldown_s)
                del self._live[key]
        return out

    def _close_all(self, f: int) -> list[IncidentResult]:
        out = []
        for c in self._live.values():
            if c.opened:
                c.update_no += 1
                out.append(self._result(c, "closed", f))
        self._live.clear()
        return out

    def close_all(self, frame_index: int) -> list[IncidentResult]:
        """Close every open incident (the source ended or the pipeline is being replaced)."""
        return self._close_all(frame_index)

    def _prune(self, f: int) -> None:
        ttl = self.counting.track_ttl_frames
        for tid in [t for t, s in self._tracks.items() if f - s.last_seen > ttl]:
            del self._tracks[tid]
            self._sudden.pop(tid, None)
        for tid in [t for t, (fr, *_) in self._sudden.items() if f - fr > ttl]:
            del self._sudden[tid]
        for key in [k for k, until in self._cooldown.items() if until <= f]:
            del self._cooldown[key]


# --- measurement: the stationary state against ground truth -------------------------------------


@dataclass
class StationaryScore:
    """Per track: predicted stationary (ever, while matched) against the ground truth's ``stopped`` flag."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    parked: int = 0
    unmatched: int = 0

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def add(self, other: StationaryScore) -> StationaryScore:
        return StationaryScore(*(getattr(self, k) + getattr(other, k) for k in
                                 ("tp", "fp", "fn", "tn", "parked", "unmatched")))

    def to_json(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(v, 4)  # noqa: E731
        return {"precision": r(self.precision), "recall": r(self.recall), "tp": self.tp, "fp": self.fp,
                "fn": self.fn, "tn": self.tn, "parked": self.parked, "unmatched_gt_tracks": self.unmatched}


def evaluate_stationary(
    gt: Any,
    fps: float,
    counting: CountingConfig | None = None,
    tracked: Iterable[tuple[int, Detections]] | None = None,
    *,
    anchor: Anchor = "bottom_center",
    iou_threshold: float = 0.5,
) -> StationaryScore:
    """Score ``StationaryState`` per ground-truth track against its ``stopped`` flag.

    ``tracked`` None: the state runs over the annotated boxes themselves (the rule alone). Otherwise
    the pipeline's tracks (frame, tracked detections) are matched to ground-truth boxes by IoU each
    frame, and a ground-truth track counts as predicted stationary when a track matched to it was
    stationary in a matched frame. Parked tracks are counted apart (also ``stopped``)."""
    from scipy.optimize import linear_sum_assignment

    from vision.evaluation import iou_matrix
    from vision.zones import StationaryState

    counting = counting or CountingConfig()
    state = StationaryState(counting, fps, anchor)
    predicted: set[int] = set()
    matched_any: set[int] = set()
    if tracked is None:
        for f in range(0, gt.last_frame + 1):
            d = gt.at(f)
            predicted |= state.update(d, f)
        matched_any = set(gt.track_ids)
    else:
        for f, d in tracked:
            still = state.update(d, f)
            g = gt.at(f)
            t = d[d.tracker_id >= 0]
            iou = iou_matrix(g.xyxy, t.xyxy)
            if not iou.size:
                continue
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] < iou_threshold:
                    continue
                gid = int(g.tracker_id[r])
                matched_any.add(gid)
                if int(t.tracker_id[c]) in still:
                    predicted.add(gid)
    score = StationaryScore()
    for gid in sorted(gt.track_ids):
        flags = gt.flags.get(gid, {})
        if flags.get("parked"):
            score.parked += 1
        if gid not in matched_any:
            score.unmatched += 1
        truth, pred = bool(flags.get("stopped")), gid in predicted
        if truth and pred:
            score.tp += 1
        elif pred:
            score.fp += 1
        elif truth:
            score.fn += 1
        else:
            score.tn += 1
    return score
