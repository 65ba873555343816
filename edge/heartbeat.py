"""One camera's ``CameraStatus`` heartbeat: the source's state, rates since the last one, the outbox's depth.

Appended to the outbox like any event (so it has a seq and is delivered in order), every
``edge.heartbeat_s`` and at once on a state change (``CameraState.heartbeat_now``).
"""

from __future__ import annotations

import time
import uuid

from citywatch.contract import CameraStatus, utcnow
from edge.camera_state import CameraState
from edge.merged import Emit
from edge.outbox import Outbox
from edge.snapshots import SnapshotStore


class Heartbeat:
    """Builds and appends one camera's heartbeats; ``started_at`` (monotonic) is the worker's start."""

    def __init__(
        self, state: CameraState, *, outbox: Outbox, snapshots: SnapshotStore, started_at: float, emit: Emit
    ) -> None:
        self.state = state
        self.outbox = outbox
        self.snapshots = snapshots
        self.started_at = started_at
        self.emit = emit
        self._last = (time.monotonic(), 0, 0, 0.0)  # when, frames, frames processed, inference ms total

    def append(self) -> CameraStatus:
        """Update the rates, append a heartbeat and expire old snapshots (their TTL runs on this clock)."""
        st, n = self.state, self.state.counters
        now = time.monotonic()
        t0, frames0, processed0, inf0 = self._last
        frames, processed, inf = n.frames, n.frames_processed, n.inference_ms_total
        dt = max(now - t0, 1e-6)
        self._last = (now, frames, processed, inf)
        done = processed - processed0
        depth, first = self.outbox.depth(st.id), self.outbox.first_seq(st.id)
        n.fps_in = (frames - frames0) / dt
        n.fps_processed = done / dt
        n.inference_ms = (inf - inf0) / done if done else 0.0
        if self.snapshots.enabled:
            self.snapshots.expire()

        def make(seq: int) -> CameraStatus:
            return CameraStatus(
                event_id=uuid.uuid4(),
                camera_id=st.id,
                site_id=st.site_id,
                seq=seq,
                ts=utcnow(),
                config_version=st.camera.config_version(),
                model_version=st.model_version,
                source_state=st.source_state,
                fps_in=n.fps_in,
                fps_processed=n.fps_processed,
                inference_ms=n.inference_ms,
                outbox_depth=depth,
                outbox_first_seq=first,
                uptime_s=now - self.started_at,
                frames_total=frames,
                frames_offered=frames,
                frames_detected=n.frames_detected,
                frames_skipped=n.frames_skipped,
                message=st.message,
                tamper=list(st.tamper_signs),
            )

        event = self.outbox.append(st.id, make)
        n.events_appended += 1
        self.emit(event)
        return event
