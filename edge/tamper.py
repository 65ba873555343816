"""Camera tamper signs from the picture alone: too dark, covered, out of focus, view moved.

Cheap enough for every camera (a 160-pixel-wide grey thumbnail, checked once a second). The first
``learn_checks`` checks build a reference (sharpness and an edge thumbnail of the scene); the
reference then follows slow changes (light through the day) only while no sign is raised. A sign is
raised after ``hold_checks`` consecutive checks show it and cleared after as many that do not, so a
bus passing in front of the camera is not a "covered" camera.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from citywatch.config import EdgeTamperConfig

SIGNS = ("view_moved", "covered", "out_of_focus", "too_dark")


def _thumb(frame: np.ndarray, width: int = 160) -> np.ndarray:
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape[:2]
    if w > width:
        grey = cv2.resize(grey, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return grey.astype(np.float32)


def _edges(grey: np.ndarray) -> np.ndarray:
    small = cv2.GaussianBlur(grey, (5, 5), 0)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1)
    return cv2.resize(np.hypot(gx, gy), (40, 30), interpolation=cv2.INTER_AREA)


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-6 else 1.0


class TamperDetector:
    """Feed frames with :meth:`check`; :attr:`signs` is the current list for ``CameraStatus.tamper``."""

    def __init__(self, config: EdgeTamperConfig | None = None, learn_checks: int = 5) -> None:
        self.config = config or EdgeTamperConfig()
        self.learn_checks = learn_checks
        self.reset()

    def reset(self) -> None:
        """Forget the reference (after a pushed configuration or a reconnect to another view)."""
        self._learn: list[tuple[float, np.ndarray]] = []
        self.ref_sharpness: float | None = None
        self.ref_edges: np.ndarray | None = None
        self._streak = dict.fromkeys(SIGNS, 0)
        self._raised: set[str] = set()
        self.last: dict[str, Any] = {}

    @property
    def signs(self) -> list[str]:
        return [s for s in SIGNS if s in self._raised]

    def check(self, frame: np.ndarray) -> list[str]:
        c = self.config
        grey = _thumb(frame)
        mean, std = float(grey.mean()), float(grey.std())
        sharp = float(cv2.Laplacian(grey, cv2.CV_32F).var())
        edges = _edges(grey)
        seen = set()
        if mean < c.dark_level:
            seen.add("too_dark")
        if std < c.covered_std and mean >= c.dark_level or std < c.covered_std / 3:
            seen.add("covered")
        sim = 1.0
        if self.ref_edges is None:
            if not seen:
                self._learn.append((sharp, edges))
            if len(self._learn) >= self.learn_checks:
                self.ref_sharpness = float(np.median([s for s, _ in self._learn]))
                self.ref_edges = np.mean([e for _, e in self._learn], axis=0)
                self._learn = []
        elif not seen:
            assert self.ref_sharpness is not None
            if self.ref_sharpness > 5.0 and sharp < c.focus_ratio * self.ref_sharpness:
                seen.add("out_of_focus")
            sim = _similarity(edges, self.ref_edges)
            if sim < c.moved_ratio and "out_of_focus" not in seen:
                seen.add("view_moved")
        self.last = {"mean": mean, "std": std, "sharpness": sharp, "similarity": sim}
        for sign in SIGNS:
            if (sign in seen) == (sign in self._raised):
                self._streak[sign] = 0
                continue
            self._streak[sign] += 1
            if self._streak[sign] >= c.hold_checks:
                self._streak[sign] = 0
                (self._raised.add if sign in seen else self._raised.discard)(sign)
        if not self._raised and not seen and self.ref_edges is not None:
            assert self.ref_sharpness is not None
            self.ref_edges = 0.98 * self.ref_edges + 0.02 * edges
            self.ref_sharpness = 0.98 * self.ref_sharpness + 0.02 * sharp
        return self.signs
