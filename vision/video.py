"""Reading a video file frame by frame for offline work (``citywatch count``, ``eval``, benchmarks)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
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


def open_video(path: str | Path, prefetch: int = 0) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    """Return the clip's properties and an iterator over its BGR frames.

    ``prefetch`` > 0: a thread decodes up to that many frames ahead of the consumer (OpenCV releases the
    GIL while decoding, so a detector and the decoder share the cores). Leaving the iterator early, or
    closing it, stops the thread."""
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

    def frames() -> Generator[np.ndarray, None, None]:
        try:
            yield first
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                yield frame
        finally:
            cap.release()

    return info, (frames() if prefetch <= 0 else _ahead(frames(), prefetch, p))


_END = object()


def _ahead(frames: Generator[np.ndarray, None, None], depth: int, path: Path) -> Iterator[np.ndarray]:
    """``frames``, read on a thread of its own up to ``depth`` ahead; a decode error is raised here."""
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    break
        except Exception as exc:  # handed to the consumer, with the file it came from
            put(VideoError(f"video {path}: decoding failed: {exc}"))
        finally:
            frames.close()
            put(_END)

    reader = threading.Thread(target=read, name=f"decode-{path.name[:40]}", daemon=True)
    reader.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, VideoError):
                raise item
            assert isinstance(item, np.ndarray)
            yield item
    finally:
        stop.set()
        reader.join(timeout=5)
