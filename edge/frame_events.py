"""Contract events from one frame's results: crossings, movements, zone reports and incident steps.

Pure (no MQTT, no outbox, no threads): a ``FrameResult`` and where the frame came from go in, one
``PendingEvent`` per result comes out, each with a ``make(seq)`` that builds the contract event once
the outbox has assigned the seq. Event ids are deterministic from camera, source position and
track/zone/incident, so a replayed clip de-duplicates at the server.

The only state is the open incidents' start time and snapshot id, so that every step of one incident
carries the same ``started_at`` and evidence; it is bounded and dropped at close.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from citywatch.contract import Incident, LineCrossing, Movement, ZoneOccupancy, deterministic_event_id, utcnow
from vision.counting import Crossing
from vision.pipeline import FrameResult
from vision.results import IncidentResult, MovementResult, ZoneReport

#: Speeds outside this range are a tracking glitch: sent as unknown rather than rejected with the event.
MAX_PLAUSIBLE_KMH = 300.0
#: Open incidents remembered at most (those whose close never comes: a pipeline replaced mid-incident).
MAX_OPEN_INCIDENTS = 1000

DetectionEvent = LineCrossing | Movement | ZoneOccupancy | Incident
EventKind = Literal["line_crossing", "movement", "zone_occupancy", "incident"]
ResultItem = Crossing | MovementResult | ZoneReport | IncidentResult
#: Which pass of the source: a file's integer pass number, a live connection's start key.
PassRef = int | str
#: ``snapshot(incident_id)``: save evidence of the frame an incident opened on; its id, or None.
SnapshotTaker = Callable[[uuid.UUID], str | None]


@dataclass(frozen=True)
class Envelope:
    """What every event of one camera carries besides its id, seq and time."""

    camera_id: str
    site_id: str
    config_version: str
    model_version: str


@dataclass(frozen=True)
class Origin:
    """Where a frame came from: the source and the pass through it (the source position of the ids)."""

    source_key: str
    pass_ref: PassRef


@dataclass(frozen=True)
class PendingEvent:
    """One result of a frame and the builder of its event (``make(seq)``; same id for any seq)."""

    kind: EventKind
    item: ResultItem
    make: Callable[[int], DetectionEvent]


def _plausible(kmh: float | None) -> float | None:
    return kmh if kmh is not None and 0 <= kmh <= MAX_PLAUSIBLE_KMH else None


def result_count(result: FrameResult) -> int:
    """How many events a frame result gives."""
    return len(result.crossings) + len(result.movements) + len(result.zone_reports) + len(result.incidents)


class EventMaker:
    """Turns one camera's frame results into pending contract events; see the module docstring."""

    def __init__(self, camera_id: str) -> None:
        self.camera_id = camera_id
        #: open incidents: edge incident id -> (started_at, snapshot id)
        self._open: OrderedDict[uuid.UUID, tuple[datetime, str | None]] = OrderedDict()

    @property
    def open_incidents(self) -> int:
        return len(self._open)

    def pending(
        self,
        result: FrameResult,
        origin: Origin,
        envelope: Envelope,
        *,
        fps: float | None = None,
        snapshot: SnapshotTaker | None = None,
    ) -> list[PendingEvent]:
        """Every result of ``result`` as a pending event, in the order crossings, movements, zones, incidents.

        ``fps`` (of the source) turns incident frame spans into times; ``snapshot`` is called once when an
        incident opens (None: no evidence kept)."""
        out: list[PendingEvent] = []
        out += [PendingEvent("line_crossing", c, self._crossing(c, origin, envelope)) for c in result.crossings]
        out += [PendingEvent("movement", m, self._movement(m, origin, envelope)) for m in result.movements]
        out += [PendingEvent("zone_occupancy", z, self._zone(z, origin, envelope)) for z in result.zone_reports]
        out += [
            PendingEvent("incident", r, self._incident(r, origin, envelope, fps or 25.0, snapshot))
            for r in result.incidents
        ]
        return out

    def _crossing(self, c: Crossing, origin: Origin, env: Envelope) -> Callable[[int], LineCrossing]:
        event_id = deterministic_event_id(
            self.camera_id, "line_crossing", origin.source_key, origin.pass_ref, c.frame_index, c.track_id,
            c.line_id, c.direction,
        )  # fmt: skip
        speed = _plausible(c.speed_kmh)

        def make(seq: int) -> LineCrossing:
            return LineCrossing(
                event_id=event_id,
                camera_id=env.camera_id,
                site_id=env.site_id,
                seq=seq,
                ts=utcnow(),
                config_version=env.config_version,
                model_version=env.model_version,
                line_id=c.line_id,
                direction=c.direction,
                class_name=c.class_name,
                track_id=c.track_id,
                frame_index=c.frame_index,
                speed_kmh=speed,
            )

        return make

    def _movement(self, m: MovementResult, origin: Origin, env: Envelope) -> Callable[[int], Movement]:
        event_id = deterministic_event_id(
            self.camera_id, "movement", origin.source_key, origin.pass_ref, m.exit_frame, m.track_id, m.entry_zone,
            m.exit_zone,
        )  # fmt: skip
        # vision's field names are the contract's: a field one side lacks fails validation, not silently
        fields = asdict(replace(m, speed_kmh=_plausible(m.speed_kmh)))
        return lambda seq: Movement(event_id=event_id, **_envelope_fields(env, seq), **fields)

    def _zone(self, z: ZoneReport, origin: Origin, env: Envelope) -> Callable[[int], ZoneOccupancy]:
        event_id = deterministic_event_id(
            self.camera_id, "zone_occupancy", origin.source_key, origin.pass_ref, z.frame_index, z.zone_id,
            bool(z.lane),
        )  # fmt: skip
        fields = asdict(replace(z, mean_speed_kmh=_plausible(z.mean_speed_kmh)))
        return lambda seq: ZoneOccupancy(event_id=event_id, **_envelope_fields(env, seq), **fields)

    def _incident(
        self, r: IncidentResult, origin: Origin, env: Envelope, fps: float, snapshot: SnapshotTaker | None
    ) -> Callable[[int], Incident]:
        """One lifecycle step. Ids: incident from source and pass, event from incident, state and update
        number (a replayed clip de-duplicates). A snapshot is taken on ``open`` only."""
        iid = deterministic_event_id(self.camera_id, "incident", origin.source_key, origin.pass_ref, r.incident_id)
        event_id = deterministic_event_id(self.camera_id, "incident_event", iid, r.state, r.update_no)
        known = self._open.get(iid)
        if known is not None:
            started, snapshot_id = known
        else:
            started = utcnow() - timedelta(seconds=max(0.0, (r.frame_index - r.started_frame) / fps))
            snapshot_id = snapshot(iid) if r.state == "open" and snapshot is not None else None
        ended: datetime | None = None
        if r.state == "closed":
            self._open.pop(iid, None)
            end_frame = r.ended_frame if r.ended_frame is not None else r.frame_index
            ended = started + timedelta(seconds=max(0.0, (end_frame - r.started_frame) / fps))
        else:
            self._open[iid] = (started, snapshot_id)
            while len(self._open) > MAX_OPEN_INCIDENTS:
                self._open.popitem(last=False)
        message = str(r.message)[:500] if r.message else None

        def make(seq: int) -> Incident:
            return Incident(
                event_id=event_id,
                **_envelope_fields(env, seq),
                incident_id=iid,
                incident_type=r.incident_type,
                state=r.state,
                severity=r.severity,
                confidence=min(1.0, max(0.0, float(r.confidence))),
                lane_id=r.lane_id,
                zone_id=r.zone_id,
                track_ids=[int(t) for t in r.track_ids][:100],
                started_at=started,
                ended_at=ended,
                snapshot_id=snapshot_id,
                message=message,
            )

        return make


def _envelope_fields(env: Envelope, seq: int) -> dict[str, object]:
    return {
        "camera_id": env.camera_id,
        "site_id": env.site_id,
        "seq": seq,
        "ts": utcnow(),
        "config_version": env.config_version,
        "model_version": env.model_version,
    }
