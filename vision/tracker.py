"""Multi-object tracking, decoupled from the detector: ByteTrack from the ``trackers`` package.

The tracker also settles each track's class by a confidence-weighted vote over its life, so a car
that one frame calls a truck is still counted as a car.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from citywatch.config import TrackerConfig
from citywatch.contract import CLASS_NAMES
from vision.detections import Detections


class ClassVote:
    """Confidence-weighted class votes per track; forgotten with the track."""

    def __init__(self) -> None:
        self._votes: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(len(CLASS_NAMES), np.float64))
        self._last_seen: dict[int, int] = {}

    def update(self, dets: Detections, frame_index: int) -> np.ndarray:
        """Add this frame's votes; return the winning class of every confirmed row."""
        out = dets.class_id.copy()
        for i, tid in enumerate(dets.tracker_id):
            if tid < 0:
                continue
            votes = self._votes[int(tid)]
            votes[dets.class_id[i]] += float(dets.confidence[i])
            self._last_seen[int(tid)] = frame_index
            out[i] = int(np.argmax(votes))
        return np.asarray(out)

    def prune(self, frame_index: int, ttl: int) -> None:
        for tid in [t for t, f in self._last_seen.items() if frame_index - f > ttl]:
            self._votes.pop(tid, None)
            self._last_seen.pop(tid, None)

    def __len__(self) -> int:
        return len(self._votes)


class Tracker:
    """Detections in, the same detections with ``tracker_id`` (-1 until confirmed) and a voted class out."""

    def __init__(self, config: TrackerConfig | None = None, fps: float = 25.0) -> None:
        from trackers import ByteTrackTracker

        self.config = config or TrackerConfig()
        self.fps = fps
        self._bytetrack = ByteTrackTracker(
            lost_track_buffer=self.config.lost_track_buffer,
            frame_rate=fps,
            track_activation_threshold=self.config.track_activation_threshold,
            minimum_consecutive_frames=self.config.minimum_consecutive_frames,
            minimum_iou_threshold=self.config.minimum_iou_threshold,
            high_conf_det_threshold=self.config.high_conf_det_threshold,
        )
        self._votes = ClassVote()
        self._frame = 0
        # Votes outlive a lost track a little longer than ByteTrack keeps it.
        self._vote_ttl = int(self.config.lost_track_buffer * max(fps, 1.0) / 30.0) + 30

    def update(self, dets: Detections) -> Detections:
        import supervision as sv

        self._frame += 1
        if len(dets):
            sv_in = sv.Detections(
                xyxy=dets.xyxy.astype(np.float32),
                confidence=dets.confidence.astype(np.float32),
                class_id=dets.class_id.astype(int),
            )
        else:
            sv_in = sv.Detections.empty()
        sv_out = self._bytetrack.update(sv_in)
        if len(sv_out) == 0:
            out = Detections.empty()
        else:
            tid = sv_out.tracker_id if sv_out.tracker_id is not None else np.full(len(sv_out), -1)
            conf = sv_out.confidence if sv_out.confidence is not None else np.ones(len(sv_out))
            if sv_out.class_id is None:  # ByteTrack keeps the class ids it was given; it was given some
                raise RuntimeError("ByteTrack returned tracks without class ids")
            out = Detections(sv_out.xyxy, conf, sv_out.class_id, tid)
            out.class_id = self._votes.update(out, self._frame)
        if self._frame % 100 == 0:
            self._votes.prune(self._frame, self._vote_ttl)
        return out

    def reset(self) -> None:
        self._bytetrack.reset()
        self._votes = ClassVote()
