"""Incident rules over vehicles, one each: what holds this frame, as ``Candidate`` items for the lifecycle.

- ``StoppedVehicles``: a vehicle standing still (``StationaryState``) in a lane or carriageway zone,
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
- ``CrashCandidates``: two or more vehicles that each stopped suddenly (moving at least
  ``min_speed_boxes_s`` box sizes per second within ``stop_within_s`` before their stationary window
  began), within ``pair_window_s`` of each other and ``max_gap_boxes`` box sizes apart. Reported with
  the lower ``confidence``: a human looks at it.

Thresholds are in ``IncidentsConfig`` (``citywatch.config``). People on the carriageway are in
``vision.incidents.people``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from citywatch.config import CongestionRule, CrashCandidateRule, StoppedVehicleRule, WrongWayRule
from citywatch.contract import VEHICLE_CLASSES
from vision.incidents.scene import Candidate, Key, Observation, Scene, TrackHistory, TrackMemory

#: A stopped vehicle being passed must stay so this long (a queue starting on green is not one).
CONFIRM_S = 3.0

#: One point of a track's history: frame, x, y, box size (``TrackHistory.hist``).
_Point = tuple[int, float, float, float]


@dataclass
class _Moving:
    """A vehicle moving in a lane or carriageway zone: where it first moved, where it is now."""

    area: str
    first: int
    x0: float
    y0: float
    last: int
    x: float
    y: float


class StoppedVehicles:
    """The stopped-vehicle rule; remembers the vehicles that moved recently (those that may pass one)."""

    def __init__(self) -> None:
        self.moving: dict[int, _Moving] = {}

    def __len__(self) -> int:
        return len(self.moving)

    def __call__(
        self, scene: Scene, rule: StoppedVehicleRule, tracks: TrackMemory, open_obs: Callable[[Key], Observation | None]
    ) -> list[Candidate]:
        """``open_obs``: the observation of the open incident under a key, None when none is open."""
        f, tids, names, stationary = scene.frame, scene.track_ids, scene.names, scene.stationary
        areas = [scene.area_of(i) for i in range(len(tids))]
        self._remember_moving(scene, areas, scene.frames(rule.passing_window_s))
        out: list[Candidate] = []
        for i, tid in enumerate(tids):
            if names[i] not in VEHICLE_CLASSES or tid not in stationary or scene.in_parking[i]:
                continue
            lane_id, zone_id = areas[i]
            area = lane_id or zone_id
            if area is None:
                continue
            since = tracks[tid].still_since
            since = f if since is None else since
            still_s = (f - since) / scene.fps
            key: Key = ("stopped_vehicle", tid)
            obs = Observation(
                "stopped_vehicle", (tid,), lane_id, zone_id, rule.severity,
                message=f"{names[i]} stopped for {still_s:.0f} s", started_frame=since,
            )
            if open_obs(key) is not None:
                out.append(Candidate(key, obs))  # sticky while it stands there
                continue
            u = scene.layout.units.get(lane_id) if lane_id else None
            margin = 0.5 * float(scene.sizes[i])
            others = [j for j in range(len(tids)) if j != i and areas[j] == areas[i] and names[j] in VEHICLE_CLASSES]
            own: float | None = None
            if u is not None:
                own = float(scene.points[i] @ u)
                ahead = own + margin
                if any(tids[j] in stationary and float(scene.points[j] @ u) > ahead for j in others):
                    continue  # queueing behind a stationary vehicle
            passing = [
                t2 for t2, m in self.moving.items()
                if t2 != tid and m.last >= since and self._passed(scene, m, area, u, own, margin, since)
            ]
            alone = not others and not passing
            if passing and still_s >= rule.open_after_s:
                obs.message = f"{names[i]} stopped for {still_s:.0f} s while traffic passes it"
                out.append(Candidate(key, obs, CONFIRM_S))
            elif alone and still_s >= rule.alone_after_s:
                obs.message = f"{names[i]} stopped alone for {still_s:.0f} s"
                out.append(Candidate(key, obs))
        return out

    def _remember_moving(self, scene: Scene, areas: list[tuple[str | None, str | None]], window: int) -> None:
        f = scene.frame
        for i, tid in enumerate(scene.track_ids):
            lane_id, zone_id = areas[i]
            area = lane_id or zone_id
            if area is None or scene.names[i] not in VEHICLE_CLASSES or tid in scene.stationary:
                continue
            x, y = float(scene.points[i, 0]), float(scene.points[i, 1])
            m = self.moving.get(tid)
            if m is None:
                self.moving[tid] = _Moving(area, f, x, y, f, x, y)
            else:
                m.area, m.last, m.x, m.y = area, f, x, y
        for tid in [t for t, m in self.moving.items() if f - m.last > window]:
            del self.moving[tid]

    @staticmethod
    def _passed(
        scene: Scene, m: _Moving, area: str, u: np.ndarray | None, own: float | None, margin: float, since: int
    ) -> bool:
        """Did this moving vehicle pass the stopped one? Along the lane: it went from behind it to ahead of it
        (in its lane or a parallel one, so traffic going round it counts); without a direction: it came into
        the same area after the stop began and moved on."""
        if u is None or own is None:
            return m.area == area and m.first > since
        pu = scene.layout.units.get(m.area)
        if m.area != area and (pu is None or float(pu @ u) < 0.7):
            return False
        return float(np.asarray([m.x0, m.y0]) @ u) < own - margin and float(np.asarray([m.x, m.y]) @ u) > own + margin


def wrong_way(
    scene: Scene, rule: WrongWayRule, tracks: TrackMemory, open_obs: Callable[[Key], Observation | None]
) -> list[Candidate]:
    """Tracks moving against their lane's direction; an open one stays while its track is seen."""
    f = scene.frame
    span = max(2, scene.frames(rule.open_after_s))
    cos_max = math.cos(math.radians(rule.max_angle_deg))
    out: list[Candidate] = []
    for i, tid in enumerate(scene.track_ids):
        key: Key = ("wrong_way", tid)
        sticky = open_obs(key)
        if sticky is not None:
            out.append(Candidate(key, sticky))
            continue
        name = scene.names[i]
        if name not in rule.classes:
            continue
        for lane in scene.layout.lanes:
            u = scene.layout.units.get(lane.id)
            if u is None or not scene.in_lane[lane.id][i]:
                continue
            went = _against(tracks[tid], u, f, span, cos_max, rule)
            if went is None:
                continue
            start, now = went
            how = _how_far(scene, start, now, scene.speeds.get(tid))
            out.append(Candidate(key, Observation(
                "wrong_way", (tid,), lane.id, None, rule.severity,
                message=f"{name} moving against lane {lane.id} ({how})", started_frame=start[0],
            )))
            break
    return out


def _how_far(scene: Scene, start: _Point, now: _Point, kmh: float | None) -> str:
    """How far a track went between two of its points, as the dashboard reads it back
    (``server/static/js/messages.js``): ``D m in S s, V km/h`` on a calibrated camera (the speed when the
    estimator has one), ``D px in S s`` otherwise or when a point lies beyond the horizon."""
    secs = max(now[0] - start[0], 1) / scene.fps
    plane = scene.layout.plane
    if plane is not None:
        (x0, y0), (x1, y1) = plane.to_ground(np.asarray([start[1:3], now[1:3]])).tolist()
        metres = math.hypot(x1 - x0, y1 - y0)
        if math.isfinite(metres):
            speed = f", {kmh:.0f} km/h" if kmh is not None else ""
            return f"{metres:.1f} m in {secs:.1f} s{speed}"
    return f"{math.hypot(now[1] - start[1], now[2] - start[2]):.0f} px in {secs:.1f} s"


def _against(
    track: TrackHistory, u: np.ndarray, f: int, span: int, cos_max: float, rule: WrongWayRule
) -> tuple[_Point, _Point] | None:
    """(first point, last point) when the track went against ``u`` far enough, within the angle, over both
    halves of the last ``span`` frames; None otherwise."""
    hist = track.hist
    if hist[0][0] > f - span:
        return None  # not seen long enough
    start = next(h for h in hist if h[0] >= f - span)
    mid = next(h for h in hist if h[0] >= f - span // 2)
    now = hist[-1]
    d = np.asarray([now[1] - start[1], now[2] - start[2]])
    dist = float(np.hypot(*d))
    if dist < max(rule.min_distance_px, rule.min_distance_boxes * now[3], 1e-6):
        return None
    if float(d @ -u) / dist < cos_max:
        return None
    a = (mid[1] - start[1]) * u[0] + (mid[2] - start[2]) * u[1]
    b = (now[1] - mid[1]) * u[0] + (now[2] - mid[2]) * u[1]
    if a >= 0 or b >= 0:
        return None  # not consistently against the lane
    return start, now


def congestion(scene: Scene, rule: CongestionRule) -> list[Candidate]:
    """Lanes full of slow (calibrated) or standing (uncalibrated) vehicles; twice ``min_vehicles``: high."""
    tids, out = scene.track_ids, []
    for lane in scene.layout.lanes:
        idx = [i for i in range(len(tids)) if scene.in_lane[lane.id][i] and scene.names[i] in VEHICLE_CLASSES]
        if len(idx) < rule.min_vehicles:
            continue
        known = [scene.speeds[tids[i]] for i in idx if tids[i] in scene.speeds]
        if len(known) * 2 >= len(idx) and known:
            mean = float(np.mean(known))
            if mean > rule.max_speed_kmh:
                continue
            how = f"mean speed {mean:.0f} km/h"
        else:
            share = sum(tids[i] in scene.stationary for i in idx) / len(idx)
            if share < rule.min_stationary_share:
                continue
            how = f"{100 * share:.0f} % standing still"
        severity = "high" if len(idx) >= 2 * rule.min_vehicles else rule.severity
        out.append(Candidate(("congestion", lane.id), Observation(
            "congestion", tuple(tids[i] for i in idx), lane.id, None, severity,
            message=f"{len(idx)} vehicles in lane {lane.id}, {how}",
        ), rule.open_after_s))
    return out


class CrashCandidates:
    """The crash-candidate rule; remembers each vehicle's sudden stop while it stands still."""

    def __init__(self) -> None:
        self.sudden: dict[int, tuple[int, float, float, float]] = {}  # track -> frame, x, y, box size

    def __len__(self) -> int:
        return len(self.sudden)

    def observe(self, scene: Scene, rule: CrashCandidateRule, tracks: TrackMemory, newly_still: set[int]) -> None:
        """Note the vehicles that stopped suddenly this frame; forget those moving again."""
        f = scene.frame
        for i, tid in enumerate(scene.track_ids):
            if tid not in scene.stationary:
                self.sudden.pop(tid, None)
                continue
            if tid not in newly_still:
                continue
            t = tracks[tid]
            began = f - tracks.window + 1
            lo = began - scene.frames(rule.stop_within_s)
            before = [v for fr, v in t.speeds if lo <= fr <= began]
            if t.class_name in VEHICLE_CLASSES and before and max(before) >= rule.min_speed_boxes_s:
                x, y, s = float(scene.points[i, 0]), float(scene.points[i, 1]), max(float(scene.sizes[i]), 1.0)
                self.sudden[tid] = (f, x, y, s)

    def forget(self, track_ids: list[int], frame: int, ttl: int) -> None:
        """Drop the stops of tracks gone, and those older than ``ttl`` frames."""
        for tid in track_ids:
            self.sudden.pop(tid, None)
        for tid in [t for t, (fr, *_) in self.sudden.items() if frame - fr > ttl]:
            del self.sudden[tid]

    def __call__(
        self, scene: Scene, rule: CrashCandidateRule, live: list[tuple[Key, Observation, bool]]
    ) -> list[Candidate]:
        """``live``: the crash candidates pending or open (key, observation, opened). An open one stays while
        two of its vehicles stand still; a new group must share no vehicle with a live one."""
        pair = scene.frames(rule.pair_window_s)
        out = [
            Candidate(key, obs) for key, obs, opened in live
            if opened and sum(t in scene.stationary for t in obs.track_ids) >= 2
        ]
        seen = set(scene.track_ids)
        stops = [(t, s) for t, s in sorted(self.sudden.items()) if t in seen and t in scene.stationary]
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
            if any(set(members) & set(obs.track_ids) for _, obs, _ in live):
                continue
            out.append(Candidate(("crash_candidate", members[0]), Observation(
                "crash_candidate", members, None, None, rule.severity, rule.confidence,
                message=f"{len(members)} vehicles stopped suddenly close together (check the camera)",
                started_frame=min(self.sudden[t][0] for t in members),
            ), rule.open_after_s))
        return out
