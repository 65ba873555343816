"""Plane geometry: points in polygons, and the image -> ground homography that turns pixels into metres."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from citywatch.config import CalibrationConfig


class CalibrationError(ValueError):
    """Point pairs that do not define a usable ground plane; the message says why."""


def points_in_polygon(points: np.ndarray, polygon: Sequence[Sequence[float]]) -> np.ndarray:
    """(N,) bools: which of the (N, 2) points lie inside the polygon (even-odd rule, edges count as inside)."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, np.float64)
    x, y = pts[:, 0][:, None], pts[:, 1][:, None]
    x1, y1 = poly[:, 0][None, :], poly[:, 1][None, :]
    x2, y2 = np.roll(poly[:, 0], -1)[None, :], np.roll(poly[:, 1], -1)[None, :]
    crosses = ((y1 > y) != (y2 > y)) & (x < (x2 - x1) * (y - y1) / np.where(y2 == y1, 1e-12, y2 - y1) + x1)
    inside = crosses.sum(axis=1) % 2 == 1
    # Points on an edge count as inside, so a box resting on a zone's border is in it.
    ex, ey = x2 - x1, y2 - y1
    t = np.clip(((x - x1) * ex + (y - y1) * ey) / np.maximum(ex * ex + ey * ey, 1e-12), 0, 1)
    on_edge = (np.hypot(x1 + t * ex - x, y1 + t * ey - y) < 1e-6).any(axis=1)
    return np.asarray(inside | on_edge)


def _normalise(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = p.mean(axis=0)
    d = np.sqrt(((p - c) ** 2).sum(axis=1)).mean()
    s = np.sqrt(2) / d if d > 0 else 1.0
    t = np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1]])
    ph = np.c_[p, np.ones(len(p))] @ t.T
    return ph, t


def fit_homography(image: np.ndarray, ground: np.ndarray) -> np.ndarray:
    """Normalised DLT (Hartley & Zisserman, alg. 4.2), least squares over all pairs: 3x3, image -> ground."""
    image, ground = np.asarray(image, np.float64), np.asarray(ground, np.float64)
    if len(image) < 4 or len(image) != len(ground):
        raise CalibrationError("a homography needs at least 4 image<->ground point pairs")
    a, ta = _normalise(image)
    b, tb = _normalise(ground)
    rows = []
    for (x, y, w), (u, v, z) in zip(a, b, strict=True):
        rows.append([0, 0, 0, -z * x, -z * y, -z * w, v * x, v * y, v * w])
        rows.append([z * x, z * y, z * w, 0, 0, 0, -u * x, -u * y, -u * w])
    _, sv, vt = np.linalg.svd(np.asarray(rows))
    if sv[-2] < 1e-9 * sv[0]:
        raise CalibrationError("the points are degenerate (three or more on one line, or repeated)")
    h = vt[-1].reshape(3, 3)
    h = np.linalg.inv(tb) @ h @ ta
    return np.asarray(h / h[2, 2])


class GroundPlane:
    """Pixels -> metres on the road plane of one calibrated camera."""

    def __init__(self, calibration: CalibrationConfig) -> None:
        self.calibration = calibration
        img = np.asarray(calibration.image_points, np.float64)
        gnd = np.asarray(calibration.ground_points, np.float64)
        if len({tuple(p) for p in img.tolist()}) < 4 or len({tuple(p) for p in gnd.tolist()}) < 4:
            raise CalibrationError("calibration needs at least 4 distinct point pairs")
        self.h = fit_homography(img, gnd)
        # Points on the far side of the horizon map through w <= 0; the calibrated marks fix which sign is "in front".
        self._sign = float(np.sign(np.median((np.c_[img, np.ones(len(img))] @ self.h.T)[:, 2])))
        self.reprojection_m = float(np.abs(self.to_ground(img) - gnd).max())
        if not np.isfinite(self.reprojection_m) or self.reprojection_m > calibration.max_reprojection_m:
            raise CalibrationError(
                f"calibration points disagree with one ground plane by up to {self.reprojection_m:.2f} m "
                f"(limit {calibration.max_reprojection_m} m): check that each image point pairs with its ground point"
            )

    def to_ground(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) pixels -> (N, 2) metres; NaN for points at or beyond the horizon."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        q = np.c_[p, np.ones(len(p))] @ self.h.T
        w = q[:, 2] * self._sign
        out = q[:, :2] / q[:, 2:3]
        out[w <= 1e-12] = np.nan
        return np.asarray(out)
