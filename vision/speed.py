"""Speed per track in km/h from a calibrated ground plane, with plausibility bounds.

Each track keeps its anchor's ground positions over the last ``speed_window_s`` (bounded by frames,
so memory stays flat); the speed is the ground distance between the oldest and newest positions over
the time between them. An estimate is withheld (None) until the track has been seen for at least half
the window, when a point maps beyond the horizon, or when it exceeds ``max_speed_kmh``; a single step faster than
twice that restarts the window (a box that jumps to another vehicle is not a 1,500 km/h car, nor does
it leave a 150 km/h average behind).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from citywatch.config import CalibrationConfig
from vision.detections import Anchor, Detections
from vision.geometry import GroundPlane


class SpeedEstimator:
    def __init__(self, calibration: CalibrationConfig, fps: float, anchor: Anchor = "bottom_center") -> None:
        self.plane = GroundPlane(calibration)
        self.fps = fps if fps > 0 else 25.0
        self.anchor: Anchor = anchor
        self.max_kmh = calibration.max_speed_kmh
        self.window = max(2, int(round(calibration.speed_window_s * self.fps)) + 1)
        self._history: dict[int, deque[tuple[int, float, float]]] = {}
        self._last_seen: dict[int, int] = {}
        self.speeds: dict[int, float] = {}  # track id -> latest plausible km/h

    def update(self, detections: Detections, frame_index: int) -> dict[int, float]:
        """Speeds (km/h) of the confirmed tracks in this frame that have a plausible estimate."""
        confirmed = detections[detections.tracker_id >= 0]
        out: dict[int, float] = {}
        if len(confirmed):
            ground = self.plane.to_ground(confirmed.anchors(self.anchor))
            for tid, (gx, gy) in zip(confirmed.tracker_id.tolist(), ground.tolist(), strict=True):
                self._last_seen[tid] = frame_index
                hist = self._history.setdefault(tid, deque(maxlen=self.window))
                if not (np.isfinite(gx) and np.isfinite(gy)):
                    hist.clear()
                    continue
                if hist:
                    fp, xp, yp = hist[-1]
                    step_kmh = float(np.hypot(gx - xp, gy - yp)) / (max(frame_index - fp, 1) / self.fps) * 3.6
                    if step_kmh > 2 * self.max_kmh:  # the box jumped to another object: start again from here
                        hist.clear()
                hist.append((frame_index, gx, gy))
                f0, x0, y0 = hist[0]
                span = frame_index - f0
                if span < (self.window - 1) / 2:
                    continue
                kmh = float(np.hypot(gx - x0, gy - y0)) / (span / self.fps) * 3.6
                if kmh <= self.max_kmh:
                    out[tid] = kmh
                    self.speeds[tid] = kmh
        self._prune(frame_index)
        return out

    def _prune(self, frame_index: int) -> None:
        ttl = 2 * self.window
        for tid in [t for t, f in self._last_seen.items() if frame_index - f > ttl]:
            self._last_seen.pop(tid, None)
            self._history.pop(tid, None)
            self.speeds.pop(tid, None)

    @property
    def tracked(self) -> int:
        return len(self._history)
