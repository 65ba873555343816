"""Line crossing counting that stays right in real traffic.

Known ways other counters go wrong, and what this one does instead:
- the line acts as infinite: a crossing counts only where the anchor's path meets the drawn segment;
- a box flickering on the line counts several times: a dead band either side of the line has no side
  (``hysteresis_px``, or ``hysteresis_box_fraction`` of the box size where that is wider: a box's edges
  jitter in proportion to its size, so the band suits a 4K camera as well as a 352x288 one); the
  anchor must travel ``min_travel_px`` across, and each track counts at most once per line and direction;
- unconfirmed tracks inflate counts: boxes with ``tracker_id < 0`` are ignored;
- an ID switch near the line (stop-and-go traffic) counts the same vehicle again: a new track that
  appears within ``relink_window_frames`` of a lost track, and within ``relink_distance`` box sizes of
  where that track was last seen, inherits its side and what it has already been counted for. The
  same re-link recovers the crossing of a vehicle whose track was lost just before the line and found
  again, under a new id, just after it. When the lost track was moving, the new one takes over only
  once its own first step goes the same way: on a two-way road an oncoming vehicle appearing where
  a lost one was is not that vehicle, and inheriting its side would count it in the wrong direction;
- per-track state grows on a camera that runs for months: state unseen for ``track_ttl_frames`` is dropped.

Direction convention: for a line from A to B in pixel coordinates (x right, y down), ``in`` is a move
of the anchor from the side where the cross product (B-A)x(P-A) is negative to where it is positive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from citywatch.config import CountingConfig, LineConfig
from citywatch.contract import CLASS_NAMES, Direction
from vision.detections import Anchor, Detections

#: A lost track moving at least this fast (anchor px per frame) is re-linked only to a new track that
#: moves the same way.
MOVING_PX_PER_FRAME = 0.5


@dataclass(frozen=True)
class Crossing:
    line_id: str
    direction: Direction
    class_name: str
    track_id: int
    frame_index: int
    speed_kmh: float | None = None


@dataclass
class _TrackState:
    side: int  # -1 or +1: the last side the anchor was clearly on; 0 until it has been on one
    point: tuple[float, float]  # anchor when last clearly on that side
    distance: float  # signed distance from the line at that point
    last_frame: int
    last_point: tuple[float, float]  # anchor when last seen, wherever it was
    size: float  # larger side of the box when last seen (px)
    counted: set[str] = field(default_factory=set)
    heading: tuple[float, float] = (0.0, 0.0)  # smoothed anchor motion, px per frame
    pending: int | None = None  # a lost track this new one may be (decided by its first step)


def _segments_intersect_param(p: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> float | None:
    """Parameter t along A->B where segment P->Q meets it, or None if they do not meet."""
    r = q - p
    s = b - a
    denom = r[0] * s[1] - r[1] * s[0]
    if abs(denom) < 1e-9:
        return None
    qp = a - p
    u = (qp[0] * s[1] - qp[1] * s[0]) / denom  # along P->Q
    t = (qp[0] * r[1] - qp[1] * r[0]) / denom  # along A->B
    if -1e-6 <= u <= 1 + 1e-6 and -1e-6 <= t <= 1 + 1e-6:
        return float(t)
    return None


class LineCounter:
    """Counts confirmed tracks crossing one bounded line, by direction and class."""

    def __init__(self, line: LineConfig, config: CountingConfig | None = None, anchor: Anchor = "bottom_center"):
        self.line = line
        self.config = config or CountingConfig()
        self.anchor: Anchor = anchor
        self.a = np.asarray(line.points[0], dtype=np.float64)
        self.b = np.asarray(line.points[1], dtype=np.float64)
        self._ab = self.b - self.a
        self._length = float(np.hypot(*self._ab))
        self._tracks: dict[int, _TrackState] = {}
        self.counts: dict[Direction, dict[str, int]] = {"in": {}, "out": {}}
        self._speed_sum: dict[str, float] = {"in": 0.0, "out": 0.0}
        self._speed_n: dict[str, int] = {"in": 0, "out": 0}

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Pixels from the infinite line; positive on the side where (B-A)x(P-A) > 0."""
        rel = points - self.a
        return np.asarray((self._ab[0] * rel[:, 1] - self._ab[1] * rel[:, 0]) / self._length)

    def distance_to(self, x: float, y: float) -> float:
        """Pixels from the point to the drawn segment (not the infinite line)."""
        p = np.array((x, y), dtype=np.float64) - self.a
        t = min(1.0, max(0.0, float(p @ self._ab) / (self._length**2)))
        return float(np.hypot(*(p - t * self._ab)))

    @property
    def tracked(self) -> int:
        """Tracks holding state now (stays bounded over days)."""
        return len(self._tracks)

    def update(
        self, detections: Detections, frame_index: int, speeds: dict[int, float] | None = None
    ) -> list[Crossing]:
        """Crossings seen in this frame; ``speeds`` (track id -> km/h) fills ``Crossing.speed_kmh``."""
        cfg = self.config
        out: list[Crossing] = []
        confirmed = detections[detections.tracker_id >= 0]
        if len(confirmed):
            points = confirmed.anchors(self.anchor).astype(np.float64)
            dist = self.signed_distance(points)
            sizes = np.maximum(confirmed.xyxy[:, 2] - confirmed.xyxy[:, 0], confirmed.xyxy[:, 3] - confirmed.xyxy[:, 1])
            seen_now = {int(t) for t in confirmed.tracker_id}
            for i in range(len(confirmed)):
                tid = int(confirmed.tracker_id[i])
                d = float(dist[i])
                band = max(cfg.hysteresis_px, cfg.hysteresis_box_fraction * float(sizes[i]))
                side = 1 if d > band else (-1 if d < -band else 0)
                point = (float(points[i, 0]), float(points[i, 1]))
                state = self._tracks.get(tid)
                if state is None:
                    state = self._relink(point, float(sizes[i]), frame_index, seen_now)
                    if state is None or state.pending is not None:
                        pending = state.pending if state is not None else None
                        state = _TrackState(0, point, d, frame_index, point, float(sizes[i]), pending=pending)
                    self._tracks[tid] = state
                elif state.pending is not None:
                    state = self._tracks[tid] = self._take_over(state, point)
                gap = max(1, frame_index - state.last_frame)
                step = ((point[0] - state.last_point[0]) / gap, (point[1] - state.last_point[1]) / gap)
                if state.last_frame < frame_index:
                    state.heading = (0.5 * state.heading[0] + 0.5 * step[0], 0.5 * state.heading[1] + 0.5 * step[1])
                state.last_frame, state.last_point, state.size = frame_index, point, float(sizes[i])
                if side == 0:
                    continue
                if state.side == 0 or side == state.side:
                    state.side, state.point, state.distance = side, point, d
                    continue
                crossing = self._crossing(state, point, d, side, tid, int(confirmed.class_id[i]), frame_index, speeds)
                state.side, state.point, state.distance = side, point, d
                if crossing is not None:
                    out.append(crossing)
        self._prune(frame_index)
        return out

    def _relink(
        self, point: tuple[float, float], size: float, frame_index: int, seen_now: set[int]
    ) -> _TrackState | None:
        """The state of a recently lost track last seen where this new track appears, taken over."""
        cfg = self.config
        if cfg.relink_window_frames <= 0 or cfg.relink_distance <= 0:
            return None
        best, best_d = None, float("inf")
        for tid, s in self._tracks.items():
            if tid in seen_now or s.last_frame >= frame_index or frame_index - s.last_frame > cfg.relink_window_frames:
                continue
            gap = float(np.hypot(point[0] - s.last_point[0], point[1] - s.last_point[1]))
            if gap <= cfg.relink_distance * max(size, s.size) and gap < best_d:
                best, best_d = tid, gap
        if best is None:
            return None
        if np.hypot(*self._tracks[best].heading) >= MOVING_PX_PER_FRAME:
            return _TrackState(0, point, 0.0, frame_index, point, size, pending=best)  # decided on its next step
        return self._tracks.pop(best)

    def _take_over(self, state: _TrackState, point: tuple[float, float]) -> _TrackState:
        """A new track's second sighting: it takes over the lost track it may be if it moved the same way."""
        key, state.pending = state.pending, None
        lost = self._tracks.get(key) if key is not None else None
        if key is None or lost is None or lost.last_frame >= state.last_frame:  # gone, or seen again meanwhile
            return state
        step = (point[0] - state.last_point[0], point[1] - state.last_point[1])
        if step[0] * lost.heading[0] + step[1] * lost.heading[1] <= 0:
            return state  # going the other way: another vehicle
        del self._tracks[key]
        return lost

    @property
    def mean_speed_kmh(self) -> dict[Direction, float | None]:
        """Mean speed of the counted crossings that had one, per direction (None: no speeds)."""
        return {k: (self._speed_sum[k] / self._speed_n[k] if self._speed_n[k] else None) for k in ("in", "out")}

    def _crossing(
        self, state: _TrackState, point: tuple[float, float], d: float, side: int, tid: int, cls: int, frame: int,
        speeds: dict[int, float] | None = None,
    ) -> Crossing | None:
        if abs(d - state.distance) < self.config.min_travel_px:
            return None
        t = _segments_intersect_param(np.asarray(state.point), np.asarray(point), self.a, self.b)
        if t is None:  # passed beside the drawn segment, not through it
            return None
        direction: Direction = "in" if side > 0 else "out"
        if direction in state.counted:
            return None
        state.counted.add(direction)
        name = CLASS_NAMES[cls]
        by_class = self.counts[direction]
        by_class[name] = by_class.get(name, 0) + 1
        speed = speeds.get(tid) if speeds else None
        if speed is not None:
            self._speed_sum[direction] += speed
            self._speed_n[direction] += 1
        return Crossing(self.line.id, direction, name, tid, frame, speed)

    def _prune(self, frame_index: int) -> None:
        ttl = self.config.track_ttl_frames
        stale = [tid for tid, s in self._tracks.items() if frame_index - s.last_frame > ttl]
        for tid in stale:
            del self._tracks[tid]
