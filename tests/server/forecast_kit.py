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
from server.store import Store

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
    store.upsert_camera_status(camera_id, "site-1", seen_at=at, state="online", status=status)
