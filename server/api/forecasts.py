"""Planner API for forecasts: forecast vs actual with the 80 % band, the typical week, the flow anomaly
history and a CSV export. Roles planner and admin.

Why a router of its own: forecasts are a separate table and concept (what is expected, not what was
counted); the range checks and identifiers follow ``server.api.planner`` and are shared with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import select

from citywatch.config import CitywatchConfig
from citywatch.contract import Direction
from server import export
from server.api.models import AnomaliesOut, SeriesListOut, TypicalWeekOut, VsActualOut
from server.api.params import CSV_CONTENT, LATEST, IdParam, IdQuery, aware_time, bad, time_range
from server.auth import Principal, require_role
from server.deps import SettingsDep, StoreDep
from server.forecasting.history import load_histories
from server.forecasting.model.series import to_wall_clock
from server.forecasting.refresh import calendar_of
from server.forecasting.tables import (
    FREQ_SECONDS,
    LANE,
    LINE,
    FlowAnomalyRow,
    ForecastRow,
    ForecastSeriesRow,
    SeriesKey,
)
from server.storage.history import epoch_bounds
from server.storage.incidents import IncidentRow
from server.storage.models import table_of
from server.storage.store import Store

router = APIRouter(tags=["forecasts"])

PlannerDep = Annotated[Principal, Depends(require_role("planner"))]
Freq = Literal["15min", "h"]
Kind = Literal["line", "lane"]
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def series_key(
    camera_id: IdQuery, series_id: IdQuery, kind: Kind = "line", direction: Direction | None = None
) -> SeriesKey:
    """The series parameters: a line needs its direction, a lane has none."""
    if kind == LINE and direction is None:
        raise bad("direction", "a line's forecast needs direction=in or direction=out")
    if kind == LANE and direction is not None:
        raise bad("direction", "lanes have no direction: leave it out")
    return SeriesKey(kind, camera_id, series_id, direction or "")


SeriesDep = Annotated[SeriesKey, Depends(series_key)]


def _series_row(store: Store, key: SeriesKey) -> ForecastSeriesRow | None:
    with store.db.session() as s:
        return s.get(ForecastSeriesRow, (key.kind, key.camera_id, key.series_id, key.direction))


def _status(row: ForecastSeriesRow | None) -> dict[str, Any]:
    if row is None:
        return {"status": "unknown", "message": "no forecast yet: the series has no counts or was not refreshed yet"}
    return {
        "status": row.status,
        "message": row.message,
        "observed_days": row.observed_days,
        "needed_days": row.needed_days,
        "refreshed_at": row.refreshed_at.isoformat(),
    }


def _aligned(start: datetime, end: datetime, step: int) -> tuple[int, int]:
    lo, hi = epoch_bounds(start, end)
    return lo // step * step, -(-hi // step) * step


def _iso(ts: int, tz: Any) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat()


@router.get("/forecasts/series", response_model=SeriesListOut)
def list_series(store: StoreDep, _who: PlannerDep) -> dict[str, Any]:
    """Every forecast series with its status (``cold_start`` says how many observed days it has and needs)."""
    with store.db.session() as s:
        rows = s.scalars(select(ForecastSeriesRow).order_by(
            ForecastSeriesRow.camera_id, ForecastSeriesRow.series_kind, ForecastSeriesRow.series_id,
            ForecastSeriesRow.direction)).all()
    return {"series": [
        {"camera_id": r.camera_id, "kind": r.series_kind, "series_id": r.series_id, "direction": r.direction or None,
         "site_id": r.site_id, "anomaly_open": r.anomaly_incident_id is not None, **_status(r)}
        for r in rows
    ]}


def forecast_vs_actual(
    store: Store, settings: CitywatchConfig, key: SeriesKey, freq: str, start: datetime, end: datetime
) -> dict[str, Any]:
    step = FREQ_SECONDS[freq]
    lo, hi = _aligned(start, end, step)
    tz = store.clock.tz
    cfg = settings.server.forecasts
    hist = load_histories(store, lo, hi, step, classes=cfg.classes, min_coverage=cfg.min_coverage,
                          lanes=key.kind == LANE, known=[key], camera_ids=[key.camera_id])
    actual = hist.values[key]
    cov = hist.coverage.get(key.camera_id, np.zeros(len(actual)))
    ft = table_of(ForecastRow)
    with store.db.session() as s:
        fc = {r.ds: r for r in s.execute(
            select(ft.c.ds, ft.c.forecast, ft.c.lo80, ft.c.hi80, ft.c.origin).where(
                ft.c.series_kind == key.kind, ft.c.camera_id == key.camera_id, ft.c.series_id == key.series_id,
                ft.c.direction == key.direction, ft.c.freq == freq, ft.c.ds >= lo, ft.c.ds < hi))}
    rows = []
    for i, b in enumerate(range(lo, hi, step)):
        f = fc.get(b)
        a = actual[i]
        rows.append({
            "bucket_start": _iso(b, tz),
            "forecast": round(f.forecast, 2) if f else None,
            "lo80": round(f.lo80, 2) if f else None,
            "hi80": round(f.hi80, 2) if f else None,
            "actual": None if np.isnan(a) else round(float(a), 2),
            "coverage": round(float(min(cov[i], 1.0)), 4),
        })
    return {
        "camera_id": key.camera_id, "kind": key.kind, "series_id": key.series_id, "direction": key.direction or None,
        "freq": freq, "from": _iso(lo, tz), "to": _iso(hi, tz), "timezone": settings.server.timezone,
        **_status(_series_row(store, key)), "rows": rows,
    }


@router.get("/forecasts/vs-actual", response_model=VsActualOut, response_model_exclude_unset=True)
async def vs_actual(
    store: StoreDep,
    settings: SettingsDep,
    _who: PlannerDep,
    key: SeriesDep,
    freq: Freq = "h",
    from_: Annotated[datetime | None, Query(alias="from", description="default: to - 24 h")] = None,
    to: Annotated[datetime | None, Query(description="exclusive; default: now + 24 h")] = None,
) -> dict[str, Any]:
    """Forecast with its 80 % band next to the observed flow (``actual`` is null where the camera did not
    observe at least ``min_coverage`` of the bucket: missing, not zero), per 15 minutes or hour."""
    now = datetime.now(timezone.utc)
    end = to or now + timedelta(hours=24)
    start, end = time_range("from", from_, end, timedelta(hours=48), FREQ_SECONDS[freq])
    return await run_in_threadpool(forecast_vs_actual, store, settings, key, freq, start, end)


@router.get("/forecasts/typical-week", response_model=TypicalWeekOut)
async def typical_week(
    store: StoreDep,
    settings: SettingsDep,
    _who: PlannerDep,
    key: SeriesDep,
    from_: Annotated[datetime | None, Query(alias="from", description="default: to - 8 weeks")] = None,
    to: Annotated[datetime | None, Query(description="exclusive; default now")] = None,
) -> dict[str, Any]:
    """The typical week: for each of the 168 local hours (Monday 00:00 first), the median and the 10/25/75/90 %
    quantiles of the observed hourly flow, holidays left out (they are not typical)."""
    start, end = time_range("from", from_, to, timedelta(weeks=8), 3600)
    return await run_in_threadpool(_typical_week, store, settings, key, start, end)


def _typical_week(store: Store, settings: CitywatchConfig, key: SeriesKey, start: datetime, end: datetime
                  ) -> dict[str, Any]:
    lo, hi = _aligned(start, end, 3600)
    cfg = settings.server.forecasts
    hist = load_histories(store, lo, hi, 3600, classes=cfg.classes, min_coverage=cfg.min_coverage,
                          lanes=key.kind == LANE, known=[key], camera_ids=[key.camera_id])
    local = to_wall_clock(hist.series(key), settings.server.timezone).dropna()
    row = _series_row(store, key)
    hcfg = cfg.sites.get(row.site_id, cfg.holidays) if row is not None and row.site_id else cfg.holidays
    if len(local):
        days = calendar_of(hcfg).dates(local.index.min().year, local.index.max().year)
        local = local[~pd.Index(local.index.date).isin(list(days))]
    how = local.index.day_of_week * 24 + local.index.hour
    groups = {int(h): g.to_numpy() for h, g in local.groupby(how)}
    hours = []
    for h in range(168):
        v = groups.get(h)
        q = np.quantile(v, QUANTILES) if v is not None and len(v) else [None] * len(QUANTILES)
        hours.append({
            "hour_of_week": h, "day": DAYS[h // 24], "hour": h % 24, "n": 0 if v is None else len(v),
            **{name: (round(float(x), 2) if x is not None else None)
               for name, x in zip(("q10", "q25", "median", "q75", "q90"), q, strict=True)},
        })
    tz = store.clock.tz
    return {"camera_id": key.camera_id, "kind": key.kind, "series_id": key.series_id,
            "direction": key.direction or None, "from": _iso(lo, tz), "to": _iso(hi, tz),
            "timezone": settings.server.timezone, "hours": hours}


@router.get("/forecasts/anomalies", response_model=AnomaliesOut)
def anomalies(
    store: StoreDep,
    _who: PlannerDep,
    camera_id: IdParam = None,
    series_id: IdParam = None,
    from_: Annotated[datetime | None, Query(alias="from", description="default: to - 30 days")] = None,
    to: Annotated[datetime | None, Query(description="exclusive; default now")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Flow anomalies (newest first) with expected, observed, the window and the incident's workflow status."""
    start, end = time_range("from", from_, to, timedelta(days=30))
    lo, hi = epoch_bounds(start, end)
    fa, inc = FlowAnomalyRow, IncidentRow
    stmt = (select(fa, inc.state, inc.status, inc.severity).join(inc, inc.incident_id == fa.incident_id)
            .where(fa.window_end > lo, fa.window_start < hi).order_by(fa.window_start.desc()).limit(limit))
    if camera_id:
        stmt = stmt.where(fa.camera_id == camera_id)
    if series_id:
        stmt = stmt.where(fa.series_id == series_id)
    tz = store.clock.tz
    with store.db.session() as s:
        items = [
            {"incident_id": a.incident_id, "camera_id": a.camera_id, "kind": a.series_kind, "series_id": a.series_id,
             "direction": a.direction or None, "anomaly": a.kind, "window_start": _iso(a.window_start, tz),
             "window_end": _iso(a.window_end, tz), "expected": round(a.expected, 1), "lo80": round(a.lo80, 1),
             "hi80": round(a.hi80, 1), "observed": round(a.observed, 1), "state": state, "status": status,
             "severity": severity}
            for a, state, status, severity in s.execute(stmt)
        ]
    return {"from": start.isoformat(), "to": end.isoformat(), "items": items}


CSV_HEADER = ("bucket_start", "timezone", "camera_id", "kind", "series_id", "direction", "freq", "forecast", "lo80",
              "hi80", "origin", "made_at")


@router.get("/export/forecasts.csv", response_class=Response, responses={200: {"content": CSV_CONTENT}})
def export_forecasts_csv(
    store: StoreDep,
    settings: SettingsDep,
    _who: PlannerDep,
    camera_id: IdParam = None,
    series_id: IdParam = None,
    freq: Freq = "h",
    from_: Annotated[datetime | None, Query(alias="from", description="default: now")] = None,
    to: Annotated[datetime | None, Query(description="exclusive; default: from + 48 h")] = None,
) -> Response:
    """Stored forecasts as CSV (UTF-8 with BOM): times in the site's time zone with their offset, and the
    zone's name in the ``timezone`` column."""
    now = datetime.now(timezone.utc)
    start = aware_time("from", from_) or now
    end = aware_time("to", to) or min(start + timedelta(hours=48), LATEST)
    start, end = time_range("from", start, end, timedelta(hours=48), FREQ_SECONDS[freq])
    lo, hi = _aligned(start, end, FREQ_SECONDS[freq])
    ft = table_of(ForecastRow)
    stmt = select(ft).where(ft.c.freq == freq, ft.c.ds >= lo, ft.c.ds < hi).order_by(
        ft.c.camera_id, ft.c.series_kind, ft.c.series_id, ft.c.direction, ft.c.ds)
    if camera_id:
        stmt = stmt.where(ft.c.camera_id == camera_id)
    if series_id:
        stmt = stmt.where(ft.c.series_id == series_id)
    tz = store.clock.tz
    zone = settings.server.timezone
    with store.db.session() as s:
        rows = s.execute(stmt).all()
    body = export.csv_text(CSV_HEADER, (
        [_iso(r.ds, tz), zone, r.camera_id, r.series_kind, r.series_id, r.direction, r.freq, round(r.forecast, 2),
         round(r.lo80, 2), round(r.hi80, 2), _iso(r.origin, tz), r.made_at.astimezone(tz).isoformat()]
        for r in rows
    ))
    name = f"citywatch-forecasts-{datetime.fromtimestamp(lo, tz):%Y%m%dT%H%M}-{freq}.csv"
    return Response(body.encode("utf-8"), media_type=export.CSV_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
