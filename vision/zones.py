"""Zones, lanes and turning movements over confirmed tracks; every per-track state is bounded and pruned.

- ``StationaryState``: a track is stationary once its anchor has stayed within
  ``counting.stationary_box_fraction`` of its box size for ``counting.stationary_s`` seconds.
- ``ZoneMonitor``: per zone or lane, the tracks inside now (occupancy by class), dwell time per track,
  the share of frames with anything inside (occupied fraction), vehicles that entered, mean speed of
  the tracks inside, and for lanes the queue (stationary vehicles; its length in metres from the lane's
  downstream end where the camera is calibrated and the lane has a ``direction``). ``report()`` closes an
  interval and returns a ``ZoneReport``.
- ``MovementTracker``: origin -> destination per track from ``entry``/``exit``/``gateway`` zones,
  reported once per track as a ``MovementResult`` when it reaches an exit other than its entry.
- ``od_matrix``: movements binned by time and counted by class, entry and exit.

A track that leaves a zone is held as inside for ``grace_frames`` (a missed detection or two does not
end a dwell); it has left once it is seen outside, or not seen for longer. "Vehicles entered" counts a
track once (a track that flickers over the edge, or is missed for longer than the grace under a frame
stride, is not a new vehicle) unless it stayed out for ``RECOUNT_AFTER_S``; a report's ``interval_s``
is the source time it covers, whatever the stride.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from citywatch.config import CameraConfig, CountingConfig, LaneConfig, ZoneConfig
from citywatch.contract import CLASS_NAMES
from vision.detections import Anchor, Detections
from vision.geometry import GroundPlane, points_in_polygon
from vision.results import MovementResult, ZoneReport

#: A track back inside a zone after this long outside it counts as entering again.
RECOUNT_AFTER_S = 30.0


class StationaryState:
    """Which confirmed tracks are standing still now (queues, stopped vehicles)."""

    def __init__(self, config: CountingConfig, fps: float, anchor: Anchor = "bottom_center") -> None:
        self.fps = fps if fps > 0 else 25.0
        self.window = max(2, int(round(config.stationary_s * self.fps)))
        self.fraction = config.stationary_box_fraction
        self.anchor: Anchor = anchor
        self._history: dict[int, deque[tuple[int, float, float]]] = {}
        self._last_seen: dict[int, int] = {}
        self.stationary: set[int] = set()

    def update(self, detections: Detections, frame_index: int) -> set[int]:
        confirmed = detections[detections.tracker_id >= 0]
        now: set[int] = set()
        if len(confirmed):
            pts = confirmed.anchors(self.anchor)
            sizes = np.maximum(confirmed.xyxy[:, 2] - confirmed.xyxy[:, 0], confirmed.xyxy[:, 3] - confirmed.xyxy[:, 1])
            for i, tid in enumerate(confirmed.tracker_id.tolist()):
                hist = self._history.setdefault(tid, deque(maxlen=self.window))
                hist.append((frame_index, float(pts[i, 0]), float(pts[i, 1])))
                self._last_seen[tid] = frame_index
                if frame_index - hist[0][0] < self.window - 1:
                    continue
                arr = np.asarray([(x, y) for _, x, y in hist])
                if float(np.hypot(*(arr - arr[-1]).T).max()) <= self.fraction * float(sizes[i]):
                    now.add(tid)
        for tid in [t for t, f in self._last_seen.items() if frame_index - f > self.window]:
            self._last_seen.pop(tid, None)
            self._history.pop(tid, None)
        self.stationary = now
        return now

    @property
    def tracked(self) -> int:
        return len(self._history)


@dataclass
class _Inside:
    entry_frame: int
    last_frame: int
    class_name: str
    speeds: list[float] = field(default_factory=list)


@dataclass
class _Interval:
    start_frame: int
    frames: int = 0
    occupied_frames: int = 0
    entered: int = 0
    dwells: list[float] = field(default_factory=list)
    speeds: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    queue_vehicles: int = 0
    queue_length_m: float | None = None


class ZoneMonitor:
    """State of one zone or lane; ``update`` every frame, ``report`` at the end of each interval."""

    def __init__(
        self,
        area: ZoneConfig | LaneConfig,
        fps: float,
        *,
        anchor: Anchor = "bottom_center",
        plane: GroundPlane | None = None,
        grace_frames: int = 5,
    ) -> None:
        self.area = area
        self.lane = isinstance(area, LaneConfig)
        self.fps = fps if fps > 0 else 25.0
        self.anchor: Anchor = anchor
        self.plane = plane
        self.grace = grace_frames
        self.inside: dict[int, _Inside] = {}
        #: track -> last frame it was inside: its entry is counted once (bounded: pruned after RECOUNT_AFTER_S)
        self._counted: dict[int, int] = {}
        self._interval = _Interval(0)
        self._head = None
        if self.lane and area.direction is not None and plane is not None:  # type: ignore[union-attr]
            self._head = plane.to_ground(np.asarray([area.direction[1]]))[0]  # type: ignore[union-attr]

    @property
    def id(self) -> str:
        return self.area.id

    def dwell_s(self, track_id: int, frame_index: int) -> float | None:
        """How long the track has been inside, or None if it is not inside."""
        s = self.inside.get(track_id)
        return None if s is None else (frame_index - s.entry_frame + 1) / self.fps

    def occupancy(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.inside.values():
            out[s.class_name] = out.get(s.class_name, 0) + 1
        return out

    def update(
        self,
        detections: Detections,
        frame_index: int,
        speeds: dict[int, float] | None = None,
        stationary: set[int] | None = None,
    ) -> None:
        confirmed = detections[detections.tracker_id >= 0]
        iv = self._interval
        iv.frames += 1
        seen: set[int] = set()
        inside_now: list[int] = []
        if len(confirmed):
            pts = confirmed.anchors(self.anchor)
            mask = points_in_polygon(pts, self.area.polygon)
            for i, tid in enumerate(confirmed.tracker_id.tolist()):
                seen.add(tid)
                if not mask[i]:
                    continue
                inside_now.append(i)
                name = CLASS_NAMES[int(confirmed.class_id[i])]
                s = self.inside.get(tid)
                if s is None:
                    s = self.inside[tid] = _Inside(frame_index, frame_index, name)
                    if tid not in self._counted:
                        iv.entered += 1
                self._counted[tid] = frame_index
                s.last_frame, s.class_name = frame_index, name
                if speeds and tid in speeds:
                    iv.speeds[tid].append(speeds[tid])
        for tid in [t for t, s in self.inside.items() if s.last_frame < frame_index]:
            s = self.inside[tid]
            if tid in seen or frame_index - s.last_frame > self.grace:
                iv.dwells.append((s.last_frame - s.entry_frame + 1) / self.fps)
                del self.inside[tid]
        recount = frame_index - int(RECOUNT_AFTER_S * self.fps)
        for tid in [t for t, last in self._counted.items() if last < recount]:
            del self._counted[tid]
        if self.inside:
            iv.occupied_frames += 1
        if self.lane and stationary is not None:
            queued = [i for i in inside_now if int(confirmed.tracker_id[i]) in stationary]
            iv.queue_vehicles = max(iv.queue_vehicles, len(queued))
            if queued and self._head is not None and self.plane is not None:
                g = self.plane.to_ground(confirmed.anchors(self.anchor)[queued])
                d = np.hypot(*(g - self._head).T)
                d = d[np.isfinite(d)]
                if len(d):
                    length = float(d.max())
                    iv.queue_length_m = max(iv.queue_length_m or 0.0, length)

    def report(self, frame_index: int) -> ZoneReport:
        """Close the interval that ends at this frame and start the next one."""
        iv = self._interval
        per_track = [float(np.mean(v)) for v in iv.speeds.values() if v]
        rep = ZoneReport(
            zone_id=self.id,
            frame_index=frame_index,
            interval_s=max(frame_index - iv.start_frame + 1, 1) / self.fps,  # source time, not processed frames
            lane=self.lane,
            occupancy=self.occupancy(),
            occupied_fraction=iv.occupied_frames / iv.frames if iv.frames else 0.0,
            vehicles_entered=iv.entered,
            mean_dwell_s=float(np.mean(iv.dwells)) if iv.dwells else None,
            queue_length_m=(round(iv.queue_length_m, 2) if iv.queue_length_m is not None else None)
            if self.lane else None,
            queue_vehicles=iv.queue_vehicles if self.lane else None,
            mean_speed_kmh=round(float(np.mean(per_track)), 2) if per_track else None,
        )
        self._interval = _Interval(frame_index + 1)
        return rep

    @property
    def tracked(self) -> int:
        return len(self.inside)


@dataclass
class _Journey:
    entry_zone: str
    entry_frame: int
    last_frame: int
    done: bool = False


class MovementTracker:
    """Turning movements: a track's first entry (or gateway) zone, then the first other exit it reaches."""

    def __init__(self, camera: CameraConfig, fps: float, ttl_frames: int = 150) -> None:
        self.fps = fps if fps > 0 else 25.0
        self.anchor: Anchor = camera.anchor
        self.entries = [z for z in camera.zones if z.kind in ("entry", "gateway")]
        self.exits = [z for z in camera.zones if z.kind in ("exit", "gateway")]
        self.ttl = ttl_frames
        self._journeys: dict[int, _Journey] = {}
        self._speeds: dict[int, list[float]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.entries and self.exits)

    def update(
        self, detections: Detections, frame_index: int, speeds: dict[int, float] | None = None
    ) -> list[MovementResult]:
        out: list[MovementResult] = []
        confirmed = detections[detections.tracker_id >= 0]
        if self.enabled and len(confirmed):
            pts = confirmed.anchors(self.anchor)
            in_entry = {z.id: points_in_polygon(pts, z.polygon) for z in self.entries}
            in_exit = {z.id: points_in_polygon(pts, z.polygon) for z in self.exits}
            for i, tid in enumerate(confirmed.tracker_id.tolist()):
                j = self._journeys.get(tid)
                if speeds and tid in speeds:
                    self._speeds.setdefault(tid, []).append(speeds[tid])
                if j is None:
                    zone = next((z for z, m in in_entry.items() if m[i]), None)
                    if zone is not None:
                        self._journeys[tid] = _Journey(zone, frame_index, frame_index)
                    continue
                j.last_frame = frame_index
                if j.done:
                    continue
                zone = next((z for z, m in in_exit.items() if m[i] and z != j.entry_zone), None)
                if zone is None:
                    continue
                j.done = True
                v = self._speeds.get(tid)
                out.append(MovementResult(
                    track_id=tid,
                    class_name=CLASS_NAMES[int(confirmed.class_id[i])],
                    entry_zone=j.entry_zone,
                    exit_zone=zone,
                    entry_frame=j.entry_frame,
                    exit_frame=frame_index,
                    duration_s=(frame_index - j.entry_frame) / self.fps,
                    speed_kmh=round(float(np.mean(v)), 2) if v else None,
                ))
        for tid in [t for t, j in self._journeys.items() if frame_index - j.last_frame > self.ttl]:
            self._journeys.pop(tid, None)
            self._speeds.pop(tid, None)
        for tid in [t for t in self._speeds if t not in self._journeys]:
            self._speeds.pop(tid, None)
        return out

    @property
    def tracked(self) -> int:
        return len(self._journeys)


def od_matrix(
    movements: Iterable[MovementResult], fps: float, bin_s: float = 900.0, start_frame: int = 0
) -> dict[float, dict[str, dict[str, dict[str, int]]]]:
    """Origin-destination counts per time bin: ``{bin start (s): {class: {entry: {exit: n}}}}``.

    A movement falls in the bin of its exit frame; bin starts are seconds of source time from
    ``start_frame`` (15-minute bins by default, the usual turning-count interval).
    """
    if bin_s <= 0:
        raise ValueError("bin_s must be positive")
    out: dict[float, dict[str, dict[str, dict[str, int]]]] = {}
    for m in movements:
        t = (m.exit_frame - start_frame) / fps
        b = float(np.floor(t / bin_s) * bin_s)
        cell = out.setdefault(b, {}).setdefault(m.class_name, {}).setdefault(m.entry_zone, {})
        cell[m.exit_zone] = cell.get(m.exit_zone, 0) + 1
    return dict(sorted(out.items()))
