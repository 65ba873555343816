"""The debounced lifecycle of incidents, whatever rule raised them: open, update, close, cool down.

A key whose candidate holds for its ``open_after_s`` opens (``open``), then reports at most every
``update_every_s`` of its rule (or at once when its severity rises, ``update``), and closes once no
candidate came for ``close_after_s`` (``closed``). The same key cannot open again for ``cooldown_s``
after it closed. An incident's id is derived from the camera, the key and the frame it began, so it is
stable over its life and the same on a replay.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from citywatch.contract import SEVERITY_RANK, IncidentState, IncidentType, Severity
from vision.incidents.scene import Candidate, Key, Observation
from vision.results import IncidentResult

#: Namespace of incident ids made by the vision layer (the edge scopes them by source and pass).
INCIDENT_NAMESPACE = uuid.UUID("0c1d3e5f-7a9b-4c2d-8e6f-a1b2c3d4e5f6")
#: At most this many track ids are listed on an incident.
MAX_TRACKS = 100


class LifecycleTimes(Protocol):
    """What the lifecycle reads of a rule's configuration (every ``IncidentsConfig`` rule has these)."""

    @property
    def update_every_s(self) -> float: ...
    @property
    def close_after_s(self) -> float: ...
    @property
    def cooldown_s(self) -> float: ...


@dataclass
class LiveIncident:
    """A key whose condition held recently: pending (not yet open) or open."""

    key: Key
    first_true: int
    last_true: int
    obs: Observation
    opened: bool = False
    incident_id: str = ""
    update_no: int = 0
    last_emit: int = 0
    sent_severity: Severity = "low"
    tracks: list[int] = field(default_factory=list)


class IncidentLifecycle:
    """One camera's live incidents, keyed by rule and lane, zone or track."""

    def __init__(self, camera_id: str, fps: float, times: Callable[[IncidentType], LifecycleTimes]) -> None:
        self.camera_id = camera_id
        self.fps = fps
        self.times = times  # a rule's update, close and cool-down times, by incident type
        self._live: dict[Key, LiveIncident] = {}
        self._cooldown: dict[Key, int] = {}  # key -> first frame it may open again

    def __len__(self) -> int:
        return len(self._live) + len(self._cooldown)

    def frames(self, seconds: float) -> int:
        return int(round(seconds * self.fps))

    def open_observation(self, key: Key) -> Observation | None:
        """The last observation of the open incident under ``key``; None when none is open."""
        live = self._live.get(key)
        return live.obs if live is not None and live.opened else None

    def live(self, incident_type: IncidentType) -> list[LiveIncident]:
        """Pending and open incidents of one type."""
        return [c for c in self._live.values() if c.obs.incident_type == incident_type]

    @property
    def open_incidents(self) -> list[tuple[str, IncidentType]]:
        """``(incident_id, type)`` of every open incident."""
        return [(c.incident_id, c.obs.incident_type) for c in self._live.values() if c.opened]

    def step(self, frame: int, candidates: Iterable[Candidate]) -> list[IncidentResult]:
        """This frame's candidates (one per key; a later one for the same key replaces an earlier one in
        place) -> what opened, updated and closed."""
        active: dict[Key, tuple[Observation, float]] = {}
        for cand in candidates:
            active[cand.key] = (cand.observation, cand.open_after_s)
        out: list[IncidentResult] = []
        for key, (obs, open_after_s) in active.items():
            c = self._live.get(key)
            if c is None:
                if self._cooldown.get(key, -1) > frame:
                    continue
                first = obs.started_frame if obs.started_frame is not None and open_after_s == 0 else frame
                c = self._live[key] = LiveIncident(key, first, frame, obs)
            c.last_true, c.obs = frame, obs
            for t in obs.track_ids:
                if t not in c.tracks and len(c.tracks) < MAX_TRACKS:
                    c.tracks.append(t)
            if not c.opened:
                if frame - c.first_true >= self.frames(open_after_s):
                    c.opened, c.last_emit, c.sent_severity = True, frame, obs.severity
                    c.incident_id = str(uuid.uuid5(
                        INCIDENT_NAMESPACE, f"{self.camera_id}|{obs.incident_type}|{key[1:]}|{c.first_true}"
                    ))
                    out.append(self._result(c, "open", frame))
            elif frame - c.last_emit >= self.frames(self.times(obs.incident_type).update_every_s) or (
                SEVERITY_RANK.get(obs.severity, 1) > SEVERITY_RANK.get(c.sent_severity, 1)
            ):
                c.update_no += 1
                c.last_emit, c.sent_severity = frame, obs.severity
                out.append(self._result(c, "update", frame))
        for key, c in list(self._live.items()):
            if c.last_true == frame:
                continue
            times = self.times(c.obs.incident_type)
            if frame - c.last_true > self.frames(times.close_after_s):
                if c.opened:
                    c.update_no += 1
                    out.append(self._result(c, "closed", frame))
                    self._cooldown[key] = frame + self.frames(times.cooldown_s)
                del self._live[key]
        for key in [k for k, until in self._cooldown.items() if until <= frame]:
            del self._cooldown[key]
        return out

    def close_all(self, frame: int) -> list[IncidentResult]:
        """Close every open incident and forget the pending ones (cool-downs stay)."""
        out = []
        for c in self._live.values():
            if c.opened:
                c.update_no += 1
                out.append(self._result(c, "closed", frame))
        self._live.clear()
        return out

    def _result(self, c: LiveIncident, state: IncidentState, frame: int) -> IncidentResult:
        o = c.obs
        started = c.first_true if o.started_frame is None else min(o.started_frame, c.first_true)
        ended = c.last_true if state == "closed" else None
        return IncidentResult(
            incident_id=c.incident_id,
            incident_type=o.incident_type,
            state=state,
            frame_index=frame,
            started_frame=started,
            started_s=round(started / self.fps, 3),
            update_no=c.update_no,
            ended_frame=ended,
            ended_s=round(ended / self.fps, 3) if ended is not None else None,
            severity=o.severity,
            confidence=float(o.confidence),
            lane_id=o.lane_id,
            zone_id=o.zone_id,
            track_ids=tuple(c.tracks[:MAX_TRACKS]),
            message=(o.message or None) and o.message[:500],
        )
