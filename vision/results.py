"""What the vision stages report, frame by frame; the edge turns each into a contract event.

``FrameResult`` is what ``VisionPipeline.process`` returns for one source frame. Field names of the
others match the contract's ``LineCrossing`` (``vision.counting.Crossing``), ``Movement``,
``ZoneOccupancy`` and ``Incident`` events (minus the envelope), so the edge can build events with
``Movement(**asdict(m), **envelope)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from citywatch.contract import IncidentState, IncidentType, Severity
from vision.counting import Crossing
from vision.detections import Detections


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
    incident_type: IncidentType
    state: IncidentState
    frame_index: int
    started_frame: int
    started_s: float
    update_no: int = 0
    ended_frame: int | None = None
    ended_s: float | None = None
    severity: Severity = "medium"
    confidence: float = 1.0
    lane_id: str | None = None
    zone_id: str | None = None
    track_ids: tuple[int, ...] = ()
    message: str | None = None


@dataclass
class FrameResult:
    """One source frame through the pipeline: the tracked detections and what they produced."""

    frame_index: int
    detections: Detections  # tracked; tracker_id >= 0 for confirmed tracks
    crossings: list[Crossing] = field(default_factory=list)
    inference_ms: float = 0.0
    movements: list[MovementResult] = field(default_factory=list)
    zone_reports: list[ZoneReport] = field(default_factory=list)
    incidents: list[IncidentResult] = field(default_factory=list)
    processed: bool = True  # False: a frame skipped by ``detect_every`` or the adaptive stride (nothing ran)
    detected: bool = True  # False: the detector was skipped (no motion, a stride) and the last detections reused
    skipped: bool = False  # True: skipped by design (adaptive stride, ``detect_every``); the tracker bridges it
