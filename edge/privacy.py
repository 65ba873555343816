"""Privacy filters for the only images that may leave the video path: incident snapshots.

Vietnam's personal-data decree 13/2023 covers images of people and number plates. There is no plate
detector, so the **lower part of every vehicle box** (where plates are) is blurred, and **every
person box** is blurred whole. Blurring is strong (a pixelation followed by a blur), so a face or a
plate cannot be read back from the result.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from citywatch.contract import VEHICLE_CLASSES


def _obscure(region: np.ndarray) -> np.ndarray:
    h, w = region.shape[:2]
    if h == 0 or w == 0:
        return region
    small = cv2.resize(region, (max(1, w // 12), max(1, h // 12)), interpolation=cv2.INTER_AREA)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    k = max(3, (min(h, w) // 4) | 1)
    return cv2.GaussianBlur(big, (k, k), 0)


def blur_sensitive(
    image: np.ndarray,
    boxes: Iterable[tuple[float, float, float, float]],
    class_names: Iterable[str],
    vehicle_lower_fraction: float = 0.4,
) -> np.ndarray:
    """A copy of ``image`` with person boxes and the lower part of vehicle boxes obscured."""
    out = image.copy()
    h, w = out.shape[:2]
    for (x1, y1, x2, y2), name in zip(boxes, class_names, strict=True):
        x1, x2 = max(0, int(np.floor(x1))), min(w, int(np.ceil(x2)))
        y1, y2 = max(0, int(np.floor(y1))), min(h, int(np.ceil(y2)))
        if x2 <= x1 or y2 <= y1:
            continue
        if name == "person":
            top = y1
        elif name in VEHICLE_CLASSES:
            if vehicle_lower_fraction <= 0:
                continue
            top = int(y2 - (y2 - y1) * vehicle_lower_fraction)
        else:
            continue
        out[top:y2, x1:x2] = _obscure(out[top:y2, x1:x2])
    return out
