"""Video sources for the edge: today a file (looping for demos), paced or as fast as possible.

Live sources (RTSP/HTTP reconnect with back-off, USB cameras) are issue 4. ``rtsp://`` and
``http(s)://`` URIs are opened with ``cv2.VideoCapture`` as they are, without reconnect: when the
stream stops the source ends. ``usb:N`` raises :class:`SourceNotSupported`.

TODO(issue 4): checkpoint a file source's position (pass_no, frame_index) so a restarted edge
resumes where it stopped instead of re-reading the clip (its events would de-duplicate on the
server thanks to deterministic event ids, but the work would be redone).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from citywatch.paths import resolve_source

DEFAULT_FPS = 25.0


class SourceError(RuntimeError):
    """A source that cannot be opened or read; the message names it."""


class SourceNotSupported(SourceError, NotImplementedError):
    """A source kind that this edge version does not read yet."""


class VideoSource:
    """Frames of one camera source: ``frames(stop_event)`` yields ``(frame_index, pass_no, frame_bgr)``.

    ``frame_index`` is the position in the file (restarts at 0 on each pass of a looping file) and
    ``pass_no`` counts passes from 0, so ``(source_key, pass_no, frame_index)`` names a frame uniquely:
    a replayed clip gives the same event ids, a looping demo gives new ones on each pass.
    """

    def __init__(self, source: str, *, realtime: bool = True, loop: bool = False) -> None:
        self.source = source
        self.path = resolve_source(source)  # raises AssetNotFound (a FileNotFoundError) for sample:
        self.is_stream = self.path.startswith(("rtsp://", "rtsps://", "http://", "https://"))
        if self.path.startswith("usb:") or self.path.isdigit():
            raise SourceNotSupported(f"USB camera source {source!r} is not supported yet (issue 4)")
        self.realtime = realtime and not self.is_stream  # a live stream paces itself
        self.loop = loop and not self.is_stream
        if self.is_stream:
            self.source_key = self.path
        else:
            p = Path(self.path)
            if not p.is_file():
                raise SourceError(f"video file {p} does not exist (camera source {source!r})")
            self.source_key = f"{p.name}:{p.stat().st_size}"
        self._cap = self._open()
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count: int | None = int(count) if count and count > 0 and math.isfinite(count) else None

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open video {self.path} (not a video OpenCV can decode, or unreachable)")
        if not self.is_stream:
            ok, _ = cap.read()
            if not ok:
                cap.release()
                raise SourceError(f"cannot decode any frame of video {self.path}")
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        return cap

    def frames(self, stop_event: threading.Event | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield frames until the end (or forever when looping) or until ``stop_event`` is set.

        When ``realtime``, frame *i* of a pass is released at ``pass_start + i / fps``; a slow consumer
        falls behind but no frame is dropped (counting needs every frame).
        """
        stop = stop_event or threading.Event()
        pass_no = 0
        try:
            while not stop.is_set():
                t0 = time.monotonic()
                index = 0
                while not stop.is_set():
                    ok, frame = self._cap.read()
                    if not ok or frame is None:
                        break
                    if self.realtime:
                        delay = t0 + index / self.fps - time.monotonic()
                        if delay > 0 and stop.wait(delay):
                            return
                    yield index, pass_no, frame
                    index += 1
                if not self.loop or stop.is_set():
                    return
                if index == 0:
                    raise SourceError(f"video {self.path} yields no frames on pass {pass_no}")
                pass_no += 1
                if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                    self._cap.release()
                    self._cap = self._open()
        finally:
            self.close()

    def close(self) -> None:
        self._cap.release()
