"""Reading a video file frame by frame for offline work (``citywatch count``, ``eval``, benchmarks)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class VideoError(RuntimeError):
    """A clip that is missing or cannot be decoded; the message names the file."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    frame_count: int
    width: int
    height: int


def open_video(path: str | Path) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    """Return the clip's properties and an iterator over its BGR frames."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise VideoError(f"video {p} does not exist")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        raise VideoError(f"video {p} cannot be opened (not a video, or a codec OpenCV lacks)")
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise VideoError(f"video {p} has no decodable frame (corrupt or empty)")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    info = VideoInfo(
        str(p),
        fps if 0 < fps < 1000 else 25.0,
        int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
        first.shape[1],
        first.shape[0],
    )

    def frames() -> Iterator[np.ndarray]:
        try:
            yield first
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                yield frame
        finally:
            cap.release()

    return info, frames()
