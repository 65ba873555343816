"""What the vision stages report besides crossings; the edge turns each into a contract event.

Field names match the contract's ``Movement`` and ``ZoneOccupancy`` events (minus the envelope), so
the edge can build events with ``Movement(**asdict(m), **envelope)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MovementResult:
    """A track went from an entry zone to an exit zone (origin-destination / turning movement)."""

    track_id: int
    class_name: str
    entry_zone: str
    exit_zone: str
    entry_frame: int
    exit_frame: int
    duration_s: float
    speed_kmh: float | None = None


@dataclass(frozen=True)
class ZoneReport:
    """A zone's or lane's state over the interval that ended at ``frame_index``."""

    zone_id: str
    frame_index: int
    interval_s: float
    lane: bool = False
    occupancy: dict[str, int] = field(default_factory=dict)
    occupied_fraction: float = 0.0
    vehicles_entered: int = 0
    mean_dwell_s: float | None = None
    queue_length_m: float | None = None
    queue_vehicles: int | None = None
    mean_speed_kmh: float | None = None


@dataclass(frozen=True)
class IncidentResult:
    """One step of an incident's lifecycle (``open``, ``update``, ``closed``), as the contract's ``Incident``
    minus the envelope. Times are source frames (and seconds of source time); the edge turns them into
    ``started_at``/``ended_at`` and derives the event id from ``incident_id``, ``state`` and ``update_no``."""

    incident_id: str
    incident_type: str
    state: str
    frame_index: int
    started_frame: int
    started_s: float
    update_no: int = 0
    ended_frame: int | None = None
    ended_s: float | None = None
    severity: str = "medium"
    confidence: float = 1.0
    lane_id: str | None = None
    zone_id: str | None = None
    track_ids: tuple[int, ...] = ()
    message: str | None = None
