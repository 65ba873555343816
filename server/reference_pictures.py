"""Reference pictures held in memory for the configuration editor, never in the database or on disk.

A picture is accepted only when it answers a request this server made for that camera (an edge cannot
push pictures nobody asked for), and it is forgotten ``server.privacy.reference_picture_ttl_s`` after it
arrived (the editing session); a request that got no answer is forgotten after the same time.

One server process holds its own: with several ingest processes sharing the broker subscription
(``mqtt.shared_group``) the picture may reach another process than the one asked.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from citywatch.contract import ReferencePicture


@dataclass(frozen=True)
class HeldPicture:
    camera_id: str
    request_id: str
    taken_at: datetime
    width: int
    height: int
    frames_used: int
    blurred_regions: int
    jpeg: bytes
    received: float  # monotonic
    frame_width: int | None = None  # the camera frame's size the picture was scaled from
    frame_height: int | None = None


class ReferencePictures:
    """Thread-safe: the ingest's writer thread puts, the API's threads ask and get."""

    def __init__(self, ttl_s: float = 900.0) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._requests: dict[str, dict[str, float]] = {}  # camera -> request id -> asked (monotonic)
        self._pictures: dict[str, HeldPicture] = {}
        self.refused = 0

    def _prune(self, now: float) -> None:
        for cam, reqs in list(self._requests.items()):
            live = {r: t for r, t in reqs.items() if now - t < self.ttl_s}
            if live:
                self._requests[cam] = live
            else:
                del self._requests[cam]
        for cam, pic in list(self._pictures.items()):
            if now - pic.received >= self.ttl_s:
                del self._pictures[cam]

    def expect(self, camera_id: str, request_id: str) -> None:
        """A request for ``camera_id`` was sent: its answer will be accepted."""
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            self._requests.setdefault(camera_id, {})[request_id] = now

    def put(self, picture: ReferencePicture) -> bool:
        """Hold ``picture`` if it answers an open request of its camera; False (dropped) otherwise."""
        now = time.monotonic()
        try:
            jpeg = base64.b64decode(picture.jpeg_base64, validate=True)
        except (binascii.Error, ValueError):
            jpeg = b""
        with self._lock:
            self._prune(now)
            reqs = self._requests.get(picture.camera_id, {})
            if picture.request_id not in reqs or not jpeg.startswith(b"\xff\xd8"):
                self.refused += 1
                return False
            del reqs[picture.request_id]
            self._pictures[picture.camera_id] = HeldPicture(
                picture.camera_id, picture.request_id, picture.taken_at, picture.width, picture.height,
                picture.frames_used, picture.blurred_regions, jpeg, now, picture.frame_width, picture.frame_height,
            )  # fmt: skip
            return True

    def get(self, camera_id: str) -> HeldPicture | None:
        """The camera's picture while it is held."""
        with self._lock:
            self._prune(time.monotonic())
            return self._pictures.get(camera_id)

    def waiting(self, camera_id: str) -> bool:
        """A request of the camera is open (no picture yet)."""
        with self._lock:
            self._prune(time.monotonic())
            return bool(self._requests.get(camera_id))
