"""Response models of the forecast routes."""

from __future__ import annotations

from pydantic import Field

from server.api.models.base import Number, Out, RangeOut

# --- forecasts -----------------------------------------------------------------------------------


class SeriesStatus(Out):
    """A series' forecast status; the counts of days only once the series was refreshed."""

    status: str
    message: str | None
    observed_days: Number | None = None
    needed_days: int | None = None
    refreshed_at: str | None = None


class SeriesOut(SeriesStatus):
    camera_id: str
    kind: str
    series_id: str
    direction: str | None
    site_id: str | None
    anomaly_open: bool


class SeriesListOut(Out):
    series: list[SeriesOut]


class VsActualRow(Out):
    bucket_start: str
    forecast: Number | None
    lo80: Number | None
    hi80: Number | None
    actual: Number | None = Field(description="None where the camera observed too little: missing, not zero.")
    coverage: Number


class VsActualOut(SeriesStatus):
    camera_id: str
    kind: str
    series_id: str
    direction: str | None
    freq: str
    from_: str = Field(alias="from")
    to: str
    timezone: str
    rows: list[VsActualRow]


class TypicalHour(Out):
    hour_of_week: int
    day: str
    hour: int
    n: int
    q10: Number | None
    q25: Number | None
    median: Number | None
    q75: Number | None
    q90: Number | None


class TypicalWeekOut(RangeOut):
    camera_id: str
    kind: str
    series_id: str
    direction: str | None
    timezone: str
    hours: list[TypicalHour]


class AnomalyOut(Out):
    incident_id: str
    camera_id: str
    kind: str
    series_id: str
    direction: str | None
    anomaly: str
    window_start: str
    window_end: str
    expected: Number
    lo80: Number
    hi80: Number
    observed: Number
    state: str | None
    status: str | None
    severity: str | None


class AnomaliesOut(RangeOut):
    items: list[AnomalyOut]
