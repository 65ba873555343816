"""Response models of the counts, flow, planner and dashboard routes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from server.api.models.base import LatLon, Number, Out, RangeOut

# --- counts and flows ----------------------------------------------------------------------------


class CountRow(Out):
    bucket_start: str | None
    camera_id: str
    line_id: str
    direction: str
    class_name: str
    count: int


class CountsOut(RangeOut):
    bucket: str
    timezone: str
    rows: list[CountRow]
    total: int


class FlowRow(Out):
    bucket_start: str | None = Field(description="None: the whole range (bucket total).")
    camera_id: str
    line_id: str
    direction: str
    counts: dict[str, int] = Field(description="Vehicles by class.")
    total: int
    pcu: Number
    mean_speed_kmh: Number | None
    speed_samples: int
    observed_s: Number = Field(description="Seconds the camera was observing in the bucket.")
    coverage: Number | None = Field(description="Observed share of the bucket: 0 is a data gap, not zero traffic.")


class FlowOut(RangeOut):
    bucket: str
    unit: Literal["vehicles", "pcu"]
    timezone: str
    pcu_weights: dict[str, Number]
    rows: list[FlowRow]
    total: Number


class PeriodOut(RangeOut):
    cameras: list[str] = Field(description="The camera set of both periods.")
    counts: dict[str, int]
    total: int
    pcu: Number
    observed_s: Number
    observed_h: Number
    coverage: Number | None = Field(description="Observed share of what could have been observed.")
    per_observed_hour: Number | None = Field(description="None under 15 observed minutes: no rate from noise.")
    pcu_per_observed_hour: Number | None


class ChangeOut(Out):
    total: int | None = Field(description="None unless both periods were observed alike (totals_comparable).")
    total_pct: Number | None
    totals_comparable: bool = Field(description="Both observed shares within 5 points.")
    per_observed_hour_pct: Number | None
    pcu_per_observed_hour_pct: Number | None


class CompareOut(Out):
    a: PeriodOut
    b: PeriodOut
    change: ChangeOut
    notes: list[str] = Field(description="Why a figure is missing.")


class ProfileHour(Out):
    hour_of_week: int = Field(description="0 = Monday 00:00 local.")
    day: str
    hour: int
    total: int
    counts: dict[str, int]
    pcu: Number
    observed_h: Number
    per_observed_hour: Number | None
    pcu_per_observed_hour: Number | None


class ProfileOut(RangeOut):
    timezone: str
    hours: list[ProfileHour]


class OdRow(Out):
    camera_id: str
    entry_zone: str
    exit_zone: str
    count: int
    by_class: dict[str, int]
    mean_duration_s: Number
    mean_speed_kmh: Number | None


class OdOut(RangeOut):
    camera_id: str
    origins: list[str]
    destinations: list[str]
    matrix: list[list[int]] = Field(description="matrix[origin][destination]: movements.")
    rows: list[OdRow]
    total: int


class ZoneRow(Out):
    bucket_start: str | None
    camera_id: str
    zone_id: str
    lane: bool
    samples: int
    reported_s: Number
    occupancy: Number | None = Field(description="Share of the reported time the zone was occupied.")
    vehicles_entered: int
    mean_occupancy: dict[str, Number]
    mean_queue_m: Number | None
    mean_queue_vehicles: Number | None
    mean_speed_kmh: Number | None


class OccupancyOut(RangeOut):
    bucket: str
    rows: list[ZoneRow]


# --- dashboard -----------------------------------------------------------------------------------


class UiLine(Out):
    id: str
    labels: dict[str, str]


class UiZone(Out):
    id: str
    kind: str


class UiCamera(Out):
    id: str
    name: str
    location: LatLon | None
    lines: list[UiLine]
    lanes: list[str]
    zones: list[UiZone]
    reference_picture: bool = Field(
        description="This user may see the camera's reference picture (its site allows them, and the role)."
    )


class UiMap(Out):
    tiles_url: str | None


class UiConfigOut(Out):
    role: str
    timezone: str
    map: UiMap
    pcu_weights: dict[str, Number]
    classes: list[str]
    heartbeat_s: Number
    cameras: list[UiCamera]


class CoverageRow(Out):
    bucket_start: str
    observed_s: Number
    observable_s: Number = Field(description="Seconds that could have been observed (before now, after install).")
    coverage: Number | None = Field(description="observed / observable; None when nothing was observable.")
    state: Literal["gap", "before_install", "future", "partial", "observed"]


class CoverageOut(RangeOut):
    bucket: str = Field(description="The bucket answered (coarser than asked when the range needs it).")
    requested_bucket: str
    coarsened: bool
    max_buckets: int
    message: str | None
    timezone: str
    cameras: list[str]
    gaps: int = Field(description="Buckets in state gap.")
    rows: list[CoverageRow]
