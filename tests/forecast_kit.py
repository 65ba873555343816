"""Helpers for the forecast tests: real hourly history (the shared I-94 series) seeded into a store as
imported counts, so forecasts are computed from realistic rollups, and camera health set as heartbeats do."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import pandas as pd
from support import SHARED, require

from citywatch.contract import CameraStatus
from server.forecasting.count_import import BucketCount, store_counts
from server.storage.store import Store

METRO = SHARED / "data/metro_i94/metro_interstate_traffic_volume_2012-10_2017-09.csv"
HANOI = timezone(timedelta(hours=7))


@lru_cache(maxsize=1)
def metro_hours() -> pd.Series:
    """The station's hourly counts by naive local hour (one row per hour: the repeated weather rows merged)."""
    require(METRO.is_file(), f"shared data missing: {METRO}")
    df = pd.read_csv(METRO, usecols=["date_time", "traffic_volume"])
    s = df.groupby("date_time")["traffic_volume"].first()
    s.index = pd.to_datetime(s.index)
    return s.sort_index()


def seed_line(
    store: Store,
    *,
    camera_id: str,
    end: datetime,
    days: int,
    line_id: str = "l1",
    direction: str = "in",
    scale: float = 0.1,
    source_start: str = "2016-01-04",
) -> pd.Series:
    """``days`` of real hourly history ending at ``end`` (a local midnight), scaled to a city street: the
    I-94 hours from ``source_start`` (a Monday) laid on the same weekdays; hours missing there stay missing.
    Returns the seeded counts by UTC hour start (epoch s)."""
    src = metro_hours()
    first = pd.Timestamp(source_start)
    start = end - timedelta(days=days)
    shift = (start.weekday() - first.weekday()) % 7
    first = first + pd.Timedelta(days=shift)  # the same weekday as the target's first day
    part = src[(src.index >= first) & (src.index < first + pd.Timedelta(days=days))]
    out = {}
    for t, v in part.items():
        ts = int((start + (t.to_pydatetime() - first.to_pydatetime())).timestamp())
        out[ts] = round(float(v) * scale)
    store_counts(store, [BucketCount(ts, n, 0) for ts, n in sorted(out.items())], camera_id=camera_id,
                 line_id=line_id, direction=direction, class_name="car", bucket_s=3600)
    return pd.Series(out)


def set_health(store: Store, camera_id: str, at: datetime, *, source_state: str = "ok") -> None:
    """Record a fresh heartbeat so the camera's health is ``ok`` (or degraded, when the source is not ok)."""
    status = CameraStatus(
        event_id=uuid.uuid4(), camera_id=camera_id, site_id="site-1", seq=1, ts=at, config_version="t",
        model_version="t", source_state=source_state, fps_in=25.0, fps_processed=12.5, inference_ms=30.0,
        outbox_depth=0, uptime_s=1e5,
    )
    store.cameras.upsert_camera_status(camera_id, "site-1", seen_at=at, state="online", status=status)


def seed_forecast_scene(store: Store, now: datetime) -> dict[str, object]:
    """The scene the API and browser tests read: cam-a with 10 weeks of history, forecasts refreshed at
    ``now``, then 75 minutes observed at 30 % of the forecast (a flow_anomaly opens); cam-b with 4 days
    (a cold start). Returns the refresh report and the anomaly check."""
    from citywatch.config import CitywatchConfig
    from server.forecasting.anomaly_watch import FlowAnomalyWatch
    from server.forecasting.refresh import ForecastRefresher
    from server.forecasting.tables import LINE, SeriesKey

    end = now.astimezone(HANOI).replace(hour=0, minute=0, second=0, microsecond=0)
    seed_line(store, camera_id="cam-a", end=end, days=70)
    seed_line(store, camera_id="cam-b", end=end, days=4, source_start="2016-03-07")
    # the morning of ``now``'s day observed as usual (the history right up to the refresh)
    first = int(end.timestamp())
    t0 = int(now.timestamp()) // 900 * 900
    report = ForecastRefresher(store, CitywatchConfig(), fit_budget_s=3600).refresh(now)
    with store.db.session() as s:
        from server.forecasting.tables import ForecastRow

        fc = [r.forecast for r in s.query(ForecastRow).filter_by(camera_id="cam-a", freq="15min")
              .order_by(ForecastRow.ds)]
    store_counts(store, [BucketCount(t0 + 900 * i, round(0.3 * f), 0) for i, f in enumerate(fc[:5])],
                 camera_id="cam-a", line_id="l1", direction="in", class_name="car", bucket_s=900)
    check_at = datetime.fromtimestamp(t0 + 5 * 900, timezone.utc)
    set_health(store, "cam-a", check_at)
    check = FlowAnomalyWatch(store, CitywatchConfig()).check(check_at)
    return {"report": report, "check": check, "key": SeriesKey(LINE, "cam-a", "l1", "in"), "day_start": first,
            "t0": t0}
