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
