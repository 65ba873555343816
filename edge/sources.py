"""Camera sources for the edge, by URI: video files, RTSP, HTTP(S)/MJPEG streams and USB cameras.

``open_source(uri, ...)`` returns a :class:`FileSource` (a path, ``file://`` or ``sample:``) or a
:class:`LiveSource` (``rtsp://``, ``rtsps://``, ``http(s)://``, ``usb:N``). Both yield :class:`Frame`
``(index, pass_no, image, pass_key)`` from ``frames(stop_event)``:

* ``(source_key, pass_key, index)`` names a frame uniquely and is what deterministic event ids are
  built from. For a file, ``pass_key`` is ``p<pass_no>`` (a looping demo file gets new ids on each
  pass, a replayed clip the same ones); for a live source it is ``s<epoch ms of the connection>``,
  so a restarted edge never reuses an id for a different crossing.
* A **file** is paced to its frame rate when ``realtime`` and can start at a checkpointed position
  (``start_pass``, ``start_index``): the worker resumes a clip after a restart instead of counting it
  again.
* A **live source** decodes in its own grabber thread (``cap.read()`` blocks on a stalled stream).
  Stalls are caught twice: FFmpeg's open/read time-outs (``CAP_PROP_OPEN_TIMEOUT_MSEC`` /
  ``CAP_PROP_READ_TIMEOUT_MSEC``; a read that returns after the time-out is treated as a stall, since
  OpenCV may then hand back a stale frame), and a watchdog in the consuming thread that abandons a
  grabber which delivered nothing for ``stall_timeout_s`` + 1 s (the stuck thread releases its
  capture whenever its read returns). The source then reconnects with exponential back-off
  (``reconnect_min_s`` .. ``reconnect_max_s``) forever, reporting ``state`` = ``reconnecting`` and a
  ``message``; it never raises for a network or device failure, so one dead camera cannot take the
  others down. Frames are paced by the camera itself; when the consumer is slower, the oldest
  buffered frames are dropped (``frames_dropped``), so latency stays bounded.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from citywatch.paths import resolve_source

DEFAULT_FPS = 25.0
STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://")


class SourceError(RuntimeError):
    """A source that cannot be opened or read; the message names it."""


class SourceNotSupported(SourceError, NotImplementedError):
    """A source kind that this edge version does not read."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame read: ``(source_key, pass_key, index)`` names it (a dataclass, as ``index`` is a tuple method)."""

    index: int
    pass_no: int
    image: np.ndarray
    pass_key: str


@dataclass(frozen=True)
class LiveOptions:
    """Time-outs and back-off of live sources (from ``edge.sources`` in the configuration)."""

    open_timeout_s: float = 10.0
    stall_timeout_s: float = 5.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    buffer_frames: int = 4
    rtsp_transport: str = "tcp"


#: What a live stream whose buffer dropped frames since the last one taken, or is about to, reports as its
#: lag: behind by definition (its buffer caps how late a frame can be, so the frames' age alone never shows
#: it: 4 frames at 25 fps are 0.16 s, under the pipeline's shedding threshold).
LIVE_DROPPING_LAG_S = 1.0


def backlog_s(waiting: int, dropped: int, fps: float, capacity: int | None = None) -> float:
    """How far a live camera's consumer is behind: the frames waiting in its buffer in seconds of the
    stream, or :data:`LIVE_DROPPING_LAG_S` when the buffer dropped frames since the last one taken or is
    full but one (``capacity``, at least 2 waiting), so the pipeline sheds detections (which the tracker
    bridges) before the buffer loses frames unseen, not after."""
    if dropped > 0 or (capacity is not None and waiting >= max(2, capacity - 1)):
        return LIVE_DROPPING_LAG_S
    return waiting / fps if fps > 0 else 0.0


def redact(uri: str) -> str:
    """``rtsp://user:secret@host/x`` -> ``rtsp://host/x``: credentials never reach logs or event ids."""
    return re.sub(r"^([a-z]+://)[^/@]*@", r"\1", uri)


def is_live(uri: str) -> bool:
    return uri.startswith(STREAM_PREFIXES) or uri.startswith("usb:") or uri.isdigit()


def open_source(
    source: str,
    *,
    realtime: bool = True,
    loop: bool = False,
    live: LiveOptions | None = None,
    start_pass: int = 0,
    start_index: int = 0,
) -> FileSource | LiveSource:
    """The source for a camera's ``source`` URI; raises :class:`SourceError` for a bad file."""
    path = resolve_source(source)  # raises AssetNotFound (a FileNotFoundError) for sample:
    if is_live(path):
        return LiveSource(path, live or LiveOptions())
    return FileSource(path, realtime=realtime, loop=loop, start_pass=start_pass, start_index=start_index)


def probe_size(source: str) -> tuple[int, int] | None:
    """(height, width) of a file source's frames, or None for a live source or a file that cannot be read
    (the camera then reports the error itself when it starts)."""
    try:
        path = resolve_source(source)
    except FileNotFoundError:
        return None
    if is_live(path) or not Path(path).is_file():
        return None
    cap = cv2.VideoCapture(path)
    try:
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()
    return (h, w) if h > 0 and w > 0 else None


class FileSource:
    """A video file: ``frames(stop_event)`` yields every frame, paced to its fps when ``realtime``.

    ``index`` is the position in the file (restarts at 0 on each pass of a looping file) and
    ``pass_no`` counts passes from 0. ``start_pass``/``start_index`` resume at a checkpoint.
    """

    is_stream = False

    def __init__(
        self, source: str, *, realtime: bool = True, loop: bool = False, start_pass: int = 0, start_index: int = 0
    ) -> None:
        self.source = source
        self.path = resolve_source(source)
        if is_live(self.path):
            raise SourceError(f"{redact(source)!r} is a live source, not a file")
        self.realtime = realtime
        self.loop = loop
        p = Path(self.path)
        if not p.is_file():
            raise SourceError(f"video file {p} does not exist (camera source {source!r})")
        self.source_key = f"{p.name}:{p.stat().st_size}"
        self.state = "ok"
        self.message: str | None = None
        self.frames_read = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self.lag_s = 0.0  # realtime: how late the frame last yielded is (its consumer is behind)
        self._cap = self._open()
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count: int | None = int(count) if count and count > 0 and math.isfinite(count) else None
        self.start_pass = max(0, start_pass)
        self.start_index = max(0, start_index)
        if self.loop and self.frame_count is not None and self.start_index >= self.frame_count:
            self.start_pass, self.start_index = self.start_pass + 1, 0  # the checkpoint ended a pass
        if self.start_index:
            self._seek(self.start_index)

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open video {self.path} (not a video OpenCV can decode, or unreachable)")
        ok, _ = cap.read()
        if not ok:
            cap.release()
            raise SourceError(f"cannot decode any frame of video {self.path}")
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        return cap

    def _seek(self, index: int) -> None:
        """Position on frame ``index`` exactly (event ids depend on it): seek, else read forward."""
        if self._cap.set(cv2.CAP_PROP_POS_FRAMES, index) and int(self._cap.get(cv2.CAP_PROP_POS_FRAMES)) == index:
            return
        self._cap.release()
        self._cap = self._open()
        for _ in range(index):
            if not self._cap.grab():
                break

    def frames(self, stop_event: threading.Event | None = None) -> Iterator[Frame]:
        """Yield frames until the end (or forever when looping) or until ``stop_event`` is set.

        When ``realtime``, frame *i* of a pass is released at ``pass_start + i / fps``; a slow consumer
        falls behind but no frame is dropped (counting needs every frame).
        """
        stop = stop_event or threading.Event()
        pass_no, index = self.start_pass, self.start_index
        try:
            while not stop.is_set():
                t0 = time.monotonic() - index / self.fps
                first = index
                while not stop.is_set():
                    ok, image = self._cap.read()
                    if not ok or image is None:
                        break
                    self.frames_read += 1
                    if self.realtime:
                        delay = t0 + index / self.fps - time.monotonic()
                        if delay > 0 and stop.wait(delay):
                            return
                        self.lag_s = max(0.0, -delay)
                    yield Frame(index, pass_no, image, f"p{pass_no}")
                    index += 1
                if not self.loop or stop.is_set():
                    return
                if index == first:
                    raise SourceError(f"video {self.path} yields no frames on pass {pass_no}")
                pass_no, index = pass_no + 1, 0
                if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                    self._cap.release()
                    self._cap = self._open()
        finally:
            self.close()

    def close(self) -> None:
        self._cap.release()


#: Back-compatible name: a file source.
VideoSource = FileSource


class _Grabber(threading.Thread):
    """Opens a live capture and reads it as fast as the camera delivers, into a small buffer."""

    def __init__(self, owner: LiveSource) -> None:
        super().__init__(name=f"grab-{owner.source_key[:40]}", daemon=True)
        self.owner = owner
        self.abandoned = threading.Event()
        self.cond = threading.Condition()
        self.items: deque[tuple[str, Any]] = deque()
        self.frames_dropped = 0
        self.last_delivery = time.monotonic()

    def _put(self, kind: str, value: Any) -> None:
        with self.cond:
            if kind == "frame":
                buffered = sum(1 for k, _ in self.items if k == "frame")
                if buffered >= self.owner.options.buffer_frames:
                    for i, (k, _) in enumerate(self.items):
                        if k == "frame":
                            del self.items[i]
                            self.frames_dropped += 1
                            break
            self.items.append((kind, value))
            self.last_delivery = time.monotonic()
            self.cond.notify()

    def get(self, timeout: float) -> tuple[str, Any] | None:
        with self.cond:
            if not self.items:
                self.cond.wait(timeout)
            return self.items.popleft() if self.items else None

    def waiting(self) -> int:
        """Frames buffered and not yet taken."""
        with self.cond:
            return sum(1 for k, _ in self.items if k == "frame")

    def run(self) -> None:
        opts = self.owner.options
        try:
            cap = self.owner.open_capture()
        except Exception as exc:
            self._put("error", str(exc))
            return
        try:
            if self.abandoned.is_set():
                return
            fps = cap.get(cv2.CAP_PROP_FPS)
            self._put("open", float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS)
            while not self.abandoned.is_set():
                t = time.monotonic()
                ok, image = cap.read()
                took = time.monotonic() - t
                if self.abandoned.is_set():
                    return
                if not ok or image is None:
                    self._put("end", "the stream ended or a read failed")
                    return
                if took >= opts.stall_timeout_s * 0.9:
                    self._put("end", f"the stream stalled (no frame for {took:.1f} s)")
                    return
                self.owner.frames_read += 1
                self._put("frame", image)
        finally:
            cap.release()


class LiveSource:
    """A camera stream or USB device that reconnects forever; see the module docstring."""

    is_stream = True
    realtime = False
    loop = False
    frame_count = None

    def __init__(self, uri: str, options: LiveOptions | None = None) -> None:
        self.source = uri
        self.path = uri
        self.options = options or LiveOptions()
        self.usb_index: int | None = None
        if uri.startswith("usb:") or uri.isdigit():
            digits = uri[4:] if uri.startswith("usb:") else uri
            if not digits.isdigit():
                raise SourceError(f"USB camera source {uri!r} must be usb:N with N the /dev/videoN number")
            self.usb_index = int(digits)
        self.source_key = redact(uri)
        self.fps = DEFAULT_FPS
        self.state = "starting"
        self.message: str | None = None
        self.frames_read = 0
        self.reconnects = 0
        self.stalls = 0
        self._dropped_before = 0
        self._grabber: _Grabber | None = None
        self.on_state: Callable[[str, str | None], None] | None = None
        self.last_recovery_s: float | None = None  # seconds from losing the stream to the next frame
        self.lag_s = 0.0  # how far behind the stream the consumer is (:func:`backlog_s`)

    @property
    def frames_dropped(self) -> int:
        g = self._grabber
        return self._dropped_before + (g.frames_dropped if g else 0)

    def open_capture(self) -> cv2.VideoCapture:
        """Open the device or stream (grabber thread); raises SourceError with the reason."""
        opts = self.options
        if self.usb_index is not None:
            dev = f"/dev/video{self.usb_index}"
            if os.name == "posix" and not os.path.exists(dev):
                raise SourceError(f"USB camera {self.source}: {dev} does not exist (not plugged in, or no permission)")
            cap = cv2.VideoCapture(self.usb_index, cv2.CAP_V4L2 if os.name == "posix" else cv2.CAP_ANY)
            if not cap.isOpened():
                cap.release()
                raise SourceError(f"USB camera {self.source}: {dev} cannot be opened (busy, or not a capture device)")
            return cap
        if self.path.startswith(("rtsp://", "rtsps://")) and opts.rtsp_transport:
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", f"rtsp_transport;{opts.rtsp_transport}")
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(opts.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(opts.stall_timeout_s * 1000),
        ]
        cap = cv2.VideoCapture(self.path, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open stream {self.source_key} (unreachable, refused or timed out)")
        return cap

    def _set_state(self, state: str, message: str | None) -> None:
        self.state, self.message = state, message
        if self.on_state is not None:
            self.on_state(state, message)

    def frames(self, stop_event: threading.Event | None = None) -> Iterator[Frame]:
        """Yield frames forever (until ``stop_event``), reconnecting after drops and stalls."""
        stop = stop_event or threading.Event()
        opts = self.options
        backoff = opts.reconnect_min_s
        pass_no = -1
        lost_at: float | None = None
        try:
            while not stop.is_set():
                grabber = self._grabber = _Grabber(self)
                grabber.start()
                item = grabber.get(opts.open_timeout_s + 2.0)
                while item is None and grabber.is_alive() and not stop.is_set():
                    # open can outlast its time-out (DNS, a device that hangs): keep waiting, watchfully
                    if time.monotonic() - grabber.last_delivery > opts.open_timeout_s * 2 + 5:
                        break
                    item = grabber.get(0.5)
                reason: str
                if item is not None and item[0] == "open":
                    self.fps = item[1]
                    pass_no += 1
                    pass_key = f"s{int(time.time() * 1000)}"
                    self.reconnects += 1 if pass_no else 0
                    index = 0
                    seen_dropped = 0
                    reason = "stream lost"
                    while not stop.is_set():
                        got = grabber.get(0.5)
                        if got is None:
                            idle = time.monotonic() - grabber.last_delivery
                            if idle > opts.stall_timeout_s + 1.0:
                                self.stalls += 1
                                reason = f"no frame for {idle:.1f} s (watchdog)"
                                break
                            continue
                        kind, value = got
                        if kind != "frame":
                            reason = str(value)
                            if "stalled" in reason:
                                self.stalls += 1
                            break
                        if self.state != "ok":
                            if lost_at is not None:
                                self.last_recovery_s = time.monotonic() - lost_at
                            lost_at = None
                            self._set_state("ok", None)
                            backoff = opts.reconnect_min_s
                        dropped = grabber.frames_dropped
                        self.lag_s = backlog_s(grabber.waiting(), dropped - seen_dropped, self.fps, opts.buffer_frames)
                        seen_dropped = dropped
                        yield Frame(index, pass_no, value, pass_key)
                        index += 1
                else:
                    reason = str(item[1]) if item is not None else f"opening took over {opts.open_timeout_s:.0f} s"
                grabber.abandoned.set()
                self._dropped_before += grabber.frames_dropped
                if stop.is_set():
                    return
                if lost_at is None:
                    lost_at = time.monotonic()
                self._set_state("reconnecting", f"{self.source_key}: {reason}; retrying in {backoff:.1f} s"[:500])
                if stop.wait(backoff):
                    return
                backoff = min(opts.reconnect_max_s, backoff * 2)
        finally:
            if self._grabber is not None:
                self._grabber.abandoned.set()

    def close(self) -> None:
        if self._grabber is not None:
            self._grabber.abandoned.set()
