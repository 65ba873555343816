"""Motion gating: is it worth running the detector on this frame?

A frame is compared, small (``width`` px wide, grey, blurred), with the frame the detector last ran
on. When less than ``min_changed`` of its pixels moved by ``pixel_delta`` grey levels or more, the
last detections still hold and the detector is skipped; at least every ``max_skip_s`` it runs anyway.
Comparing with the last *detected* frame (not the previous one) means slow motion accumulates until
it is seen, instead of hiding below the threshold frame after frame. The comparison is small next to
a detection (figures: bench/edge_throughput.py).
"""

from __future__ import annotations

import cv2
import numpy as np

from citywatch.config import MotionGateConfig


class MotionGate:
    def __init__(self, config: MotionGateConfig, fps: float) -> None:
        self.config = config
        self.max_skip_frames = max(1, int(round(config.max_skip_s * (fps if fps > 0 else 25.0))))
        self._reference: np.ndarray | None = None
        self._reference_frame = -(1 << 30)
        self._small: np.ndarray | None = None
        self.skipped = 0
        self.checked = 0

    def _shrink(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        width = min(self.config.width, w)
        height = max(1, int(round(h * width / w)))
        small = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey, (3, 3), 0)

    def should_detect(self, frame: np.ndarray, frame_index: int) -> bool:
        """True when the detector must run on ``frame``; call ``detected`` after it did."""
        self.checked += 1
        small = self._small = self._shrink(frame)
        ref = self._reference
        if (
            ref is None
            or ref.shape != small.shape
            or frame_index - self._reference_frame >= self.max_skip_frames
            or frame_index < self._reference_frame
        ):
            return True
        changed = np.count_nonzero(cv2.absdiff(small, ref) >= self.config.pixel_delta)
        if changed >= self.config.min_changed * small.size:
            return True
        self.skipped += 1
        return False

    def detected(self, frame_index: int) -> None:
        """The detector ran on the frame last passed to ``should_detect``: it is the new reference."""
        self._reference, self._reference_frame = self._small, frame_index
