"""Incident snapshots kept on the edge box (off by default): blurred, then deleted after ``ttl_s``.

No image is written unless ``edge.snapshots.enabled`` is true; then an incident may keep one JPEG,
with people and the lower part of vehicles obscured (:mod:`edge.privacy`) *before* it touches the
disk. The file name is the snapshot id carried by the ``Incident`` event; the server fetches nothing
by itself. :meth:`SnapshotStore.expire` deletes files older than ``ttl_s`` (the worker calls it
with each heartbeat), so evidence does not outlive its purpose.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from citywatch.config import EdgeSnapshotsConfig
from edge.privacy import blur_sensitive

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class SnapshotStore:
    def __init__(self, config: EdgeSnapshotsConfig) -> None:
        self.config = config
        self.directory = Path(config.directory)
        self.saved = 0
        self.expired = 0

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def save(
        self,
        camera_id: str,
        image: np.ndarray,
        boxes: Iterable[tuple[float, float, float, float]],
        class_names: Iterable[str],
        snapshot_id: str | None = None,
    ) -> str | None:
        """Blur and store one snapshot; returns its id, or None when snapshots are disabled."""
        if not self.config.enabled:
            return None
        sid = snapshot_id or f"{camera_id}-{int(time.time())}-{uuid.uuid4().hex[:8]}"
        if not _ID.match(sid):
            raise ValueError(f"invalid snapshot id {sid!r}")
        safe = blur_sensitive(image, list(boxes), list(class_names), self.config.vehicle_lower_fraction)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{sid}.jpg"
        tmp = path.with_suffix(".tmp")
        ok, data = cv2.imencode(".jpg", safe, [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        tmp.write_bytes(data.tobytes())
        tmp.replace(path)
        self.saved += 1
        return sid

    def path(self, snapshot_id: str) -> Path | None:
        if not _ID.match(snapshot_id):
            return None
        p = self.directory / f"{snapshot_id}.jpg"
        return p if p.is_file() else None

    def expire(self, now: float | None = None) -> int:
        """Delete snapshots older than ``ttl_s``; returns how many were deleted."""
        if not self.directory.is_dir():
            return 0
        cutoff = (now if now is not None else time.time()) - self.config.ttl_s
        n = 0
        for p in self.directory.glob("*.jpg"):
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    n += 1
            except FileNotFoundError:
                continue
        self.expired += n
        return n
