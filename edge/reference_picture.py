"""The reference picture: one still view of a camera for drawing lines and zones, the only image that
leaves an edge (on an admin's request, when ``edge.reference_picture.enabled``).

Why a temporal median: over some seconds every pixel shows the road most of the time, so people and
vehicles that move vanish from the median of the sampled frames. Whatever stays (a person standing
still, a parked car) is found by the detector on the median itself and blurred with the same filter
as incident snapshots (:func:`edge.privacy.blur_sensitive`: people whole, the lower part of vehicles).
No detector, no picture: nothing unblurred is ever sent. Nothing here touches the disk or the network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from citywatch.contract import CLASS_NAMES, MAX_REFERENCE_JPEG_BYTES
from edge.privacy import blur_sensitive
from vision.detections import Detections

#: Runs the detector on one image (the camera's own detector).
Detect = Callable[[np.ndarray], Detections]

#: Boxes found on the median grow by this share on each side before blurring: a standing person's
#: edges are softer in a median than in one frame.
BOX_MARGIN = 0.15
_QUALITIES = (85, 75, 65, 55, 45, 35)


def fit_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` scaled down (never up) so that its longer side is at most ``max_side``."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image.copy()
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def temporal_median(frames: Sequence[np.ndarray], rows_per_chunk: int = 64) -> np.ndarray:
    """The per-pixel median of same-sized frames, computed a band of rows at a time (bounded memory)."""
    if not frames:
        raise ValueError("no frames for a median")
    first = frames[0]
    if any(f.shape != first.shape for f in frames):
        raise ValueError("frames of a median must all have the same size")
    out = np.empty_like(first)
    for top in range(0, first.shape[0], rows_per_chunk):
        band = np.stack([f[top : top + rows_per_chunk] for f in frames])
        out[top : top + rows_per_chunk] = np.median(band, axis=0).round().astype(first.dtype)
    return out


def _grown(box: Sequence[float], margin: float) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    return x1 - dx, y1 - dy, x2 + dx, y2 + dy


def blur_remaining(
    image: np.ndarray, dets: Detections, *, vehicle_lower_fraction: float = 0.4, margin: float = BOX_MARGIN
) -> tuple[np.ndarray, int]:
    """``image`` with every person and the lower part of every vehicle the detector found obscured;
    and how many regions were."""
    boxes = [_grown(b, margin) for b in dets.xyxy]
    names = [CLASS_NAMES[int(c)] for c in dets.class_id]
    return blur_sensitive(image, boxes, names, vehicle_lower_fraction), len(boxes)


def encode_jpeg(image: np.ndarray, max_bytes: int = MAX_REFERENCE_JPEG_BYTES) -> tuple[bytes, int, int]:
    """JPEG of ``image`` no larger than ``max_bytes``: lower quality first, then a smaller picture.
    Returns ``(jpeg, width, height)``."""
    img = image
    while True:
        for q in _QUALITIES:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
            if not ok:
                raise ValueError("the picture could not be encoded as JPEG")
            if buf.nbytes <= max_bytes:
                return buf.tobytes(), int(img.shape[1]), int(img.shape[0])
        h, w = img.shape[:2]
        if max(h, w) <= 64:
            raise ValueError(f"no JPEG of this picture fits {max_bytes} bytes")
        img = cv2.resize(img, (max(1, w * 3 // 4), max(1, h * 3 // 4)), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Reference:
    """A finished reference picture, ready to publish."""

    jpeg: bytes
    width: int
    height: int
    frames_used: int
    blurred_regions: int


def build_reference(
    frames: Sequence[np.ndarray],
    detect: Detect,
    *,
    vehicle_lower_fraction: float = 0.4,
    max_bytes: int = MAX_REFERENCE_JPEG_BYTES,
) -> Reference:
    """Median of ``frames``, blurred where the detector still finds people or vehicles, as a JPEG."""
    median = temporal_median(frames)
    blurred, n = blur_remaining(median, detect(median), vehicle_lower_fraction=vehicle_lower_fraction)
    jpeg, w, h = encode_jpeg(blurred, max_bytes)
    return Reference(jpeg, w, h, len(frames), n)


@dataclass
class FrameSampler:
    """Collects ``samples`` frames spread over ``seconds`` of a camera's video (scaled to ``max_side``).

    The vision thread :meth:`offer`\\ s each frame (a cheap time check; a copy only when one is due);
    the sender thread asks :meth:`ready` and takes the frames once. Thread-safe."""

    request_id: str
    seconds: float
    samples: int
    max_side: int
    started: float = field(default_factory=time.monotonic)
    frames: list[np.ndarray] = field(default_factory=list)
    #: ``(width, height)`` of the camera's frames before scaling: the pixels lines and zones are drawn in
    frame_size: tuple[int, int] | None = None
    _next: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def interval(self) -> float:
        return self.seconds / self.samples

    def offer(self, image: np.ndarray, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self.frames) >= self.samples or now < self._next:
                return
            small = fit_side(image, self.max_side)
            if self.frames and small.shape != self.frames[0].shape:
                self.frames.clear()  # the source changed size (reconnected): start again
            self.frames.append(small)
            self.frame_size = (int(image.shape[1]), int(image.shape[0]))
            self._next = now + self.interval

    def ready(self, now: float | None = None) -> bool:
        """All samples taken, or the time is up with at least three (a slow source)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            n = len(self.frames)
        return n >= self.samples or (now - self.started >= self.seconds + 2 * self.interval and n >= 3)

    def expired(self, now: float | None = None) -> bool:
        """No usable frames long after the time was up (the source is down): give the request up."""
        now = time.monotonic() if now is None else now
        return now - self.started > 3 * self.seconds + 30

    def take(self) -> list[np.ndarray]:
        with self._lock:
            frames, self.frames = self.frames, []
            return frames
