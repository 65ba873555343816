"""Table models of migrations ``0007_forecasts`` (forecasts, the state of each forecast series, flow
anomalies) and ``0008_forecast_models`` (fitted models and history grids kept across restarts).

Why two tables: ``forecasts`` holds numbers (one row per series, frequency and bucket, overwritten by
each refresh until the bucket has begun, then kept for forecast-vs-actual); ``forecast_series`` holds
what a planner needs to read them (cold start and its reason) and the open flow-anomaly incident,
so debouncing survives a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.models import Base, UTCDateTime

LINE = "line"
LANE = "lane"
#: The core's frequency names; bucket lengths in seconds.
FREQ_SECONDS: dict[str, int] = {"15min": 900, "h": 3600}


@dataclass(frozen=True, order=True)
class SeriesKey:
    """One forecast series: a counting line and direction, or a lane (direction ``""``)."""

    kind: str
    camera_id: str
    series_id: str
    direction: str

    def label(self) -> str:
        tail = f" {self.direction}" if self.direction else ""
        return f"{self.camera_id} {self.kind} {self.series_id}{tail}"


class ForecastRow(Base):
    __tablename__ = "forecasts"

    series_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    series_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    freq: Mapped[str] = mapped_column(String(8), primary_key=True)
    ds: Mapped[int] = mapped_column(BigInteger, primary_key=True, doc="Epoch s of the bucket start.")
    forecast: Mapped[float] = mapped_column(Float)
    lo80: Mapped[float] = mapped_column(Float)
    hi80: Mapped[float] = mapped_column(Float)
    origin: Mapped[int] = mapped_column(BigInteger, doc="Epoch s of the first bucket the model did not see.")
    made_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_forecasts_ds", "ds"),)


class ForecastSeriesRow(Base):
    __tablename__ = "forecast_series"

    series_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    series_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    site_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), doc="ok, cold_start or failed")
    observed_days: Mapped[float] = mapped_column(Float, default=0.0)
    needed_days: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    anomaly_incident_id: Mapped[str | None] = mapped_column(String(36))

    def key(self) -> SeriesKey:
        return SeriesKey(self.series_kind, self.camera_id, self.series_id, self.direction)


class FlowAnomalyRow(Base):
    """The numbers behind a ``flow_anomaly`` incident (the incident row holds the operator workflow)."""

    __tablename__ = "flow_anomalies"

    incident_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    series_kind: Mapped[str] = mapped_column(String(8))
    camera_id: Mapped[str] = mapped_column(String(64))
    series_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(8), doc="drop or surge")
    window_start: Mapped[int] = mapped_column(BigInteger, doc="Epoch s; the window where it was seen first.")
    window_end: Mapped[int] = mapped_column(BigInteger, doc="Epoch s; extended while the anomaly lasts.")
    expected: Mapped[float] = mapped_column(Float, doc="Forecast vehicles over the window.")
    lo80: Mapped[float] = mapped_column(Float)
    hi80: Mapped[float] = mapped_column(Float)
    observed: Mapped[float] = mapped_column(Float, doc="Observed vehicles over the window.")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_flow_anomalies_window_start", "window_start"),)


class ForecastModelRow(Base):
    """A series' newest fitted model (``server.forecasting.model.persist``), so a restart predicts at once
    instead of refitting every series; reused only with the same settings and holiday calendar."""

    __tablename__ = "forecast_models"

    series_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    series_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    freq: Mapped[str] = mapped_column(String(8), primary_key=True)
    cutoff: Mapped[str] = mapped_column(String(32), doc="Naive local time: the model saw only rows before it.")
    calendar: Mapped[str] = mapped_column(Text, doc="persist.calendar_key of its holiday calendar.")
    settings: Mapped[str] = mapped_column(Text, doc="persist.settings_key of its settings.")
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    model: Mapped[bytes] = mapped_column(LargeBinary)


class ForecastHistoryRow(Base):
    """One camera's history grid of one frequency as the refresh last read it (every series of the camera and
    its coverage), so a restart re-reads only the recent end instead of the whole history. An import into the
    camera's past turns the row into a mark (``n`` 0, no data) with the next ``generation``: the next refresh
    reads that camera in full again, and a refresh that read it before the import cannot save over the mark."""

    __tablename__ = "forecast_history"

    freq: Mapped[str] = mapped_column(String(8), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    start: Mapped[int] = mapped_column(BigInteger, doc="Epoch s of the grid's first bucket.")
    n: Mapped[int] = mapped_column(Integer, doc="Buckets in the grid.")
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[bytes] = mapped_column(LargeBinary)
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0",
                                            doc="Bumped by every import into the camera's past.")
