"""The rollups' insert hook: what newly stored events add to the flow, zone, OD and observed rollups,
upserted inside the event transaction (:mod:`server.storage.rollups` has the arithmetic)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from citywatch.contract import AnyEvent, CameraStatus
from server.storage import rollups as ru
from server.storage.cameras import Cameras

#: ``(camera_id, start epoch s, end epoch s)`` a heartbeat says its camera was observing.
Interval = tuple[str, float, float]


class RollupWriter:
    """An :class:`server.storage.events.InsertHook`; ``heartbeat_s`` is the edge heartbeat period, how much
    observed time one heartbeat stands for at most."""

    def __init__(self, clock: ru.Clock, cameras: Cameras, dialect: str, heartbeat_s: float = 10.0) -> None:
        self.clock = clock
        self.cameras = cameras
        self.dialect = dialect
        self.heartbeat_s = heartbeat_s

    def __call__(self, s: Session, events: list[AnyEvent], /) -> None:
        deltas = ru.event_deltas(self.clock, events)
        statuses = [ev for ev in events if isinstance(ev, CameraStatus)]
        if statuses:
            ru.observed_deltas(self.clock, self.observation(s, statuses), deltas)
        if deltas:
            ru.upsert(s, self.dialect, deltas)

    def observation(self, s: Session, statuses: list[CameraStatus]) -> list[Interval]:
        """Intervals each newly stored heartbeat says its camera was observing.

        A heartbeat with ``source_state == "ok"`` covers the time since the previous heartbeat of that
        camera when that is at most 1.5 heartbeat periods ago (continuous observation), else one period
        (and never more than the edge's uptime). Other states credit nothing: "no vehicles" and
        "camera down" stay apart. A heartbeat older than the cursor (a replay) covers one period; the
        bucket cap keeps overlaps from claiming more time than a bucket has.
        """
        hb = float(self.heartbeat_s)
        out: list[Interval] = []
        by_cam: dict[str, list[CameraStatus]] = {}
        for st in statuses:
            by_cam.setdefault(st.camera_id, []).append(st)
        for camera_id in sorted(by_cam):
            state = self.cameras.state_row(s, camera_id)
            cursor = state.observed_to_s
            for st in sorted(by_cam[camera_id], key=lambda e: (e.ts, e.seq)):
                t = st.ts.timestamp()
                in_order = cursor is None or t > cursor
                if st.source_state == "ok":
                    span = min(hb, st.uptime_s)
                    if in_order and cursor is not None and t - cursor <= 1.5 * hb:
                        span = min(t - cursor, st.uptime_s)
                    if span > 0:
                        out.append((camera_id, t - span, t))
                if in_order:
                    cursor = t
            if cursor != state.observed_to_s:
                state.observed_to_s = cursor
        return out
