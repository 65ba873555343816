"""``Detections``: the one type that carries boxes from the detector through tracking to counting."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from citywatch.contract import CLASS_NAMES

Anchor = Literal["bottom_center", "center", "top_center"]


def _as(a: Any, dtype: Any, shape_tail: tuple[int, ...] = ()) -> np.ndarray:
    arr = np.asarray(a, dtype=dtype)
    if arr.size == 0:
        return arr.reshape((0, *shape_tail))
    return arr


@dataclass
class Detections:
    """N boxes in source-frame pixels, ``xyxy``; ``class_id`` indexes ``CLASS_NAMES``.

    ``tracker_id`` is -1 until a tracker confirms the box. Indexing with a boolean mask or an index
    array returns a new ``Detections`` with the same rows of every field.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    # None (not given): no track yet, made an array of -1 in __post_init__; typed as the array it always is after.
    tracker_id: np.ndarray = field(default=None)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        self.xyxy = _as(self.xyxy, np.float32, (4,))
        n = len(self.xyxy)
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {self.xyxy.shape}")
        self.confidence = _as(self.confidence, np.float32)
        self.class_id = _as(self.class_id, np.int64)
        if self.tracker_id is None:
            self.tracker_id = np.full(n, -1, dtype=np.int64)
        else:
            self.tracker_id = _as(self.tracker_id, np.int64)
        for name in ("confidence", "class_id", "tracker_id"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
        if n and (self.class_id.min() < 0 or self.class_id.max() >= len(CLASS_NAMES)):
            raise ValueError(f"class_id must index CLASS_NAMES (0..{len(CLASS_NAMES) - 1})")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index], self.tracker_id[index])

    def __iter__(self) -> Iterator[tuple[np.ndarray, float, int, int]]:
        for i in range(len(self)):
            yield self.xyxy[i], float(self.confidence[i]), int(self.class_id[i]), int(self.tracker_id[i])

    @property
    def class_names(self) -> list[str]:
        return [CLASS_NAMES[i] for i in self.class_id]

    def anchors(self, anchor: Anchor = "bottom_center") -> np.ndarray:
        """(N, 2) anchor points: bottom centre by default, where a vehicle touches the road."""
        x = (self.xyxy[:, 0] + self.xyxy[:, 2]) / 2
        if anchor == "bottom_center":
            y = self.xyxy[:, 3]
        elif anchor == "top_center":
            y = self.xyxy[:, 1]
        elif anchor == "center":
            y = (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2
        else:
            raise ValueError(f"unknown anchor {anchor!r}")
        return np.stack([x, y], axis=1)

    @classmethod
    def merge(cls, items: list[Detections]) -> Detections:
        items = [d for d in items if len(d)]
        if not items:
            return cls.empty()
        return cls(
            np.concatenate([d.xyxy for d in items]),
            np.concatenate([d.confidence for d in items]),
            np.concatenate([d.class_id for d in items]),
            np.concatenate([d.tracker_id for d in items]),
        )
