"""What every incident rule reads: this frame's confirmed tracks placed in the camera's lanes and zones
(``Scene``), the per-track history a few seconds long (``TrackMemory``), and what a rule returns
(``Candidate``: an ``Observation`` under a key, with how long it must hold before it opens)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from citywatch.config import CameraConfig, LaneConfig, ZoneConfig
from citywatch.contract import CLASS_NAMES, IncidentType, Severity
from vision.detections import Anchor, Detections
from vision.geometry import GroundPlane, points_in_polygon

#: One incident per key: the type and the lane, zone or track it is about.
Key = tuple[IncidentType, int | str]


@dataclass
class Observation:
    """What a rule sees this frame for one key."""

    incident_type: IncidentType
    track_ids: tuple[int, ...] = ()
    lane_id: str | None = None
    zone_id: str | None = None
    severity: Severity = "medium"
    confidence: float = 1.0
    message: str | None = None
    started_frame: int | None = None


@dataclass(frozen=True)
class Candidate:
    """A rule's condition holds this frame for ``key``; it opens once it held for ``open_after_s``
    (0: at once, counted from ``observation.started_frame``)."""

    key: Key
    observation: Observation
    open_after_s: float = 0.0


@dataclass(frozen=True)
class Layout:
    """A camera's lanes and zones as the rules use them."""

    anchor: Anchor
    lanes: list[LaneConfig]
    parking: list[ZoneConfig]
    carriageway: list[ZoneConfig]
    units: dict[str, np.ndarray]  # lane id -> unit vector of its direction (lanes with one)
    plane: GroundPlane | None = None  # calibrated cameras: messages then say metres, not pixels

    @classmethod
    def of(cls, camera: CameraConfig) -> Layout:
        units: dict[str, np.ndarray] = {}
        for lane in camera.lanes:
            if lane.direction is not None:
                (x0, y0), (x1, y1) = lane.direction
                v = np.asarray([x1 - x0, y1 - y0], float)
                n = float(np.hypot(*v))
                if n > 0:
                    units[lane.id] = v / n
        return cls(
            camera.anchor,
            list(camera.lanes),
            [z for z in camera.zones if z.kind == "parking"],
            [z for z in camera.zones if z.kind == "carriageway"],
            units,
            GroundPlane(camera.calibration) if camera.calibration is not None else None,
        )


@dataclass(frozen=True)
class Scene:
    """This frame's confirmed tracks, one row each, and where they are."""

    frame: int
    fps: float
    layout: Layout
    track_ids: list[int]
    names: list[str]
    points: np.ndarray  # (n, 2) anchors
    sizes: np.ndarray  # (n,) larger side of each box, px
    xyxy: np.ndarray
    stationary: set[int]
    speeds: dict[int, float]  # km/h, calibrated cameras only
    in_lane: dict[str, np.ndarray]  # lane id -> (n,) bool
    in_carriageway: dict[str, np.ndarray]  # carriageway zone id -> (n,) bool
    in_parking: np.ndarray  # (n,) bool: inside any parking zone

    @classmethod
    def of(
        cls, detections: Detections, frame: int, fps: float, layout: Layout, stationary: set[int],
        speeds: dict[int, float],
    ) -> Scene:
        confirmed = detections[detections.tracker_id >= 0]
        n = len(confirmed)
        points = confirmed.anchors(layout.anchor) if n else np.zeros((0, 2))
        xyxy = confirmed.xyxy
        sizes = np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]) if n else np.zeros(0)
        in_parking = np.zeros(n, bool)
        for z in layout.parking:
            in_parking |= points_in_polygon(points, z.polygon)
        return cls(
            frame, fps, layout,
            [int(t) for t in confirmed.tracker_id.tolist()],
            [CLASS_NAMES[int(c)] for c in confirmed.class_id.tolist()],
            points, sizes, xyxy, stationary, speeds,
            {lane.id: points_in_polygon(points, lane.polygon) for lane in layout.lanes},
            {z.id: points_in_polygon(points, z.polygon) for z in layout.carriageway},
            in_parking,
        )

    def frames(self, seconds: float) -> int:
        return int(round(seconds * self.fps))

    def area_of(self, i: int) -> tuple[str | None, str | None]:
        """(lane id, None) or (None, carriageway zone id) of row ``i``; the first lane wins."""
        for lane in self.layout.lanes:
            if self.in_lane[lane.id][i]:
                return lane.id, None
        for z in self.layout.carriageway:
            if self.in_carriageway[z.id][i]:
                return None, z.id
        return None, None


@dataclass
class TrackHistory:
    """One track over the last few seconds."""

    class_name: str
    hist: deque[tuple[int, float, float, float]]  # frame, x, y, box size
    last_seen: int
    still_since: int | None = None
    speeds: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=256))  # frame, boxes/s
    over: dict[str, int] = field(default_factory=dict)  # person tracks: frames over a bicycle / motorcycle box


class TrackMemory:
    """Per-track histories, bounded: dropped ``ttl`` frames after a track was last seen."""

    def __init__(self, fps: float, stationary_window: int, hist_len: int) -> None:
        self.fps = fps
        self.window = stationary_window  # frames a track must stand still to be stationary
        self.hist_len = hist_len
        self.tracks: dict[int, TrackHistory] = {}

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, track_id: int) -> TrackHistory:
        return self.tracks[track_id]

    def resize(self, hist_len: int) -> None:
        self.hist_len = hist_len
        for t in self.tracks.values():
            t.hist = deque(t.hist, maxlen=hist_len)

    def observe(self, scene: Scene) -> set[int]:
        """Record this frame's positions and speeds (box sizes per second over half a second); returns the
        tracks that became stationary this frame."""
        f = scene.frame
        half = max(1, int(round(0.5 * self.fps)))
        newly_still: set[int] = set()
        for i, tid in enumerate(scene.track_ids):
            t = self.tracks.get(tid)
            if t is None:
                t = self.tracks[tid] = TrackHistory(scene.names[i], deque(maxlen=self.hist_len), f)
            t.class_name, t.last_seen = scene.names[i], f
            x, y, s = float(scene.points[i, 0]), float(scene.points[i, 1]), max(float(scene.sizes[i]), 1.0)
            t.hist.append((f, x, y, s))
            old = next((h for h in t.hist if h[0] >= f - half), None)
            if old is not None and old[0] < f:
                t.speeds.append((f, math.hypot(x - old[1], y - old[2]) / ((f - old[0]) / self.fps) / s))
            if tid in scene.stationary:
                if t.still_since is None:
                    t.still_since = f - self.window + 1
                    newly_still.add(tid)
            else:
                t.still_since = None
        return newly_still

    def prune(self, frame: int, ttl: int) -> list[int]:
        """Forget tracks not seen for ``ttl`` frames; returns their ids."""
        gone = [t for t, s in self.tracks.items() if frame - s.last_seen > ttl]
        for tid in gone:
            del self.tracks[tid]
        return gone
