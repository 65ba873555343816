"""``incidents``: the incident rules' thresholds and debounce (top level; a camera may override keys)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from citywatch.config.base import StrictModel, class_list
from citywatch.contract import ClassName


class _IncidentRule(StrictModel):
    """Debounce shared by every incident rule: neither flicker nor flood."""

    enabled: bool = True
    open_after_s: float = Field(5.0, ge=0, le=3600, description="The condition must hold this long to open.")
    close_after_s: float = Field(5.0, gt=0, le=3600, description="...and be absent this long to close.")
    cooldown_s: float = Field(
        30.0, ge=0, le=86400, description="No new incident of the same key this long after one closed."
    )
    update_every_s: float = Field(
        30.0, gt=0, le=86400, description="An open incident sends an update at most this often."
    )
    severity: Literal["low", "medium", "high"] = "medium"


class StoppedVehicleRule(_IncidentRule):
    """A vehicle standing in a live lane (not a parking zone) while traffic moves past it, or alone."""

    open_after_s: float = Field(20.0, ge=0, le=3600, description="Stationary this long while others pass it.")
    alone_after_s: float = Field(
        90.0, ge=0, le=3600, description="Stationary this long alone in its lane (longer than a red phase)."
    )
    passing_window_s: float = Field(
        10.0, gt=0, le=600, description="'Others pass it': moving in the lane this recently."
    )
    cooldown_s: float = Field(60.0, ge=0, le=86400)
    severity: Literal["low", "medium", "high"] = "high"


class WrongWayRule(_IncidentRule):
    """Sustained motion against a lane's configured ``direction``."""

    open_after_s: float = Field(1.5, ge=0, le=600, description="Moving against the lane for this long.")
    close_after_s: float = Field(3.0, gt=0, le=3600)
    min_distance_px: float = Field(40.0, ge=0, description="...and this far against it (pixels).")
    min_distance_boxes: float = Field(1.0, ge=0, le=50, description="...and this many of its box sizes.")
    max_angle_deg: float = Field(45.0, gt=0, le=90, description="Motion within this angle of the reverse direction.")
    classes: list[ClassName] = Field(default_factory=lambda: class_list("car", "truck", "bus", "motorcycle"))
    severity: Literal["low", "medium", "high"] = "high"


class CongestionRule(_IncidentRule):
    """A lane holding many slow vehicles for a while (longer than a signal's queue)."""

    open_after_s: float = Field(120.0, ge=0, le=86400)
    close_after_s: float = Field(30.0, gt=0, le=3600)
    cooldown_s: float = Field(120.0, ge=0, le=86400)
    update_every_s: float = Field(60.0, gt=0, le=86400)
    min_vehicles: int = Field(4, ge=1, le=1000, description="Vehicles in the lane at least.")
    max_speed_kmh: float = Field(10.0, gt=0, le=300, description="Mean speed at most (calibrated cameras).")
    min_stationary_share: float = Field(
        0.5, gt=0, le=1, description="Share of its vehicles standing still (uncalibrated cameras)."
    )


class PeopleOnCarriagewayRule(_IncidentRule):
    """Pedestrians (or cyclists) inside carriageway zones (and lanes, with ``in_lanes``)."""

    open_after_s: float = Field(3.0, ge=0, le=600)
    close_after_s: float = Field(5.0, gt=0, le=3600)
    in_lanes: bool = Field(True, description="Lanes count as carriageway too.")
    severity: Literal["low", "medium", "high"] = "medium"


class CrashCandidateRule(_IncidentRule):
    """Two or more vehicles stopping suddenly close together: lower confidence, for a human to check."""

    open_after_s: float = Field(0.0, ge=0, le=600)
    close_after_s: float = Field(10.0, gt=0, le=3600)
    cooldown_s: float = Field(60.0, ge=0, le=86400)
    min_speed_boxes_s: float = Field(
        1.5, gt=0, le=100, description="Moving at least this many box sizes per second..."
    )
    stop_within_s: float = Field(1.0, gt=0, le=10, description="...this shortly before it stood still.")
    pair_window_s: float = Field(2.0, gt=0, le=30, description="The stops happen this close in time...")
    max_gap_boxes: float = Field(1.2, ge=0, le=10, description="...and the vehicles this close (box sizes).")
    confidence: float = Field(0.4, ge=0, le=1)
    severity: Literal["low", "medium", "high"] = "high"


class IncidentsConfig(StrictModel):
    """Incident rules (``vision/incidents.py``); top-level defaults, a camera's ``incidents`` overrides keys."""

    enabled: bool = True
    stopped_vehicle: StoppedVehicleRule = StoppedVehicleRule()
    wrong_way: WrongWayRule = WrongWayRule()
    congestion: CongestionRule = CongestionRule()
    pedestrian: PeopleOnCarriagewayRule = PeopleOnCarriagewayRule()
    cyclist: PeopleOnCarriagewayRule = PeopleOnCarriagewayRule(in_lanes=False, severity="low")
    crash_candidate: CrashCandidateRule = CrashCandidateRule()
