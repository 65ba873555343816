"""Planner API: flows (vehicles or PCU), period comparison, hour-of-week profile, OD matrices,
occupancy/speed; the CSV and FIWARE exports (``server.api.exports``) join its router. Everything
reads the rollups (``server.storage.history``).

Every flow row carries ``observed_s``/``coverage``: the seconds its camera was actually observing
(from heartbeats), so a zero with coverage 1.0 is "no vehicles" and a zero with coverage 0 is
"camera down". Rates per observed hour compare periods fairly when a camera was down in one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter

from citywatch.config import CitywatchConfig
from citywatch.contract import CLASS_NAMES, ClassName, utcnow
from server.api import exports
from server.api.coverage import installs, query_cameras
from server.api.flows import FlowFilterDep, Unit, flow_rows, pcu_weights
from server.api.models import CompareOut, FlowOut, OccupancyOut, OdOut, ProfileOut
from server.api.params import BUCKET_SECONDS, Bucket, FromQ, IdParam, IdQuery, ToQ, city_offset_s, time_range
from server.coverage import period_coverage
from server.deps import ReaderDep, SettingsDep, StoreDep
from server.storage.history import FlowFilter, epoch_bounds
from server.storage.store import Store

router = APIRouter(tags=["planner"])

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@router.get("/flow", response_model=FlowOut)
def flow(
    store: StoreDep,
    settings: SettingsDep,
    _who: ReaderDep,
    flt: FlowFilterDep,
    from_: FromQ = None,
    to: ToQ = None,
    bucket: Bucket = "1h",
    unit: Unit = "vehicles",
) -> dict[str, Any]:
    """Line flows per bucket, camera, line and direction: counts by class, total, PCU, mean speed, and the
    seconds the camera was observing (``coverage`` = observed share of the bucket)."""
    start, end = time_range("from", from_, to, timedelta(hours=24), BUCKET_SECONDS[bucket])
    rows = flow_rows(store, settings, start, end, bucket, flt)
    return {
        "bucket": bucket,
        "unit": unit,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "timezone": settings.server.timezone,
        "pcu_weights": pcu_weights(settings),
        "rows": rows,
        "total": sum(r["pcu" if unit == "pcu" else "total"] for r in rows),
    }


#: A rate per observed hour from less observation than this is noise, not a rate (none is given).
MIN_RATE_OBSERVED_S = 900.0
#: Totals of two periods are compared only when their observed shares differ by at most this.
COMPARABLE_COVERAGE = 0.05


def _period(
    store: Store, settings: CitywatchConfig, start: datetime, end: datetime, flt: FlowFilter, cams: Sequence[str]
) -> dict[str, Any]:
    rows = flow_rows(store, settings, start, end, "total", flt)
    counts = dict.fromkeys(CLASS_NAMES, 0)
    for r in rows:
        for c, n in r["counts"].items():
            counts[c] += n
    total = sum(counts.values())
    pcu = sum(pcu_weights(settings)[c] * n for c, n in counts.items())
    lo, hi = epoch_bounds(start, end)
    obs = store.history.observed(lo, hi, camera_ids=list(cams)) if cams else {}
    observed_s = sum(obs.values())
    hours = observed_s / 3600.0
    rated = observed_s >= MIN_RATE_OBSERVED_S
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "cameras": list(cams),
        "counts": counts,
        "total": total,
        "pcu": round(pcu, 3),
        "observed_s": round(observed_s, 1),
        "observed_h": round(hours, 2),
        "coverage": period_coverage(lo, hi, utcnow().timestamp(), installs(store, cams), observed_s),
        "per_observed_hour": round(total / hours, 3) if rated else None,
        "pcu_per_observed_hour": round(pcu / hours, 3) if rated else None,
    }


def _pct(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not a:
        return None
    return round((b - a) / a * 100.0, 2)


def _compare_cameras(store: Store, settings: CitywatchConfig, flt: FlowFilter) -> list[str]:
    """One camera set for both periods (rates over different cameras would not compare): the ones
    asked for; else those with the line asked for; else every configured or known camera."""
    if flt.camera_ids:
        return sorted(set(flt.camera_ids))
    if flt.line_id:
        return sorted(c.id for c in settings.cameras if any(ln.id == flt.line_id for ln in c.lines))
    return query_cameras(store, settings, None)


@router.get("/flow/compare", response_model=CompareOut)
def compare(
    store: StoreDep,
    settings: SettingsDep,
    _who: ReaderDep,
    a_from: datetime,
    a_to: datetime,
    b_from: datetime,
    b_to: datetime,
    flt: FlowFilterDep,
) -> dict[str, Any]:
    """Two periods side by side (e.g. before/after a road change): totals, PCU, hours observed, observed
    share, and rates per observed hour, so that a camera down in one period does not read as less
    traffic. ``total_pct`` is given only when both periods were observed alike (shares within 5
    points); a rate only from 15 observed minutes on. ``notes`` say why a change is missing."""
    sa, ea = time_range("a_from", a_from, a_to, timedelta(days=1), name_to="a_to")
    sb, eb = time_range("b_from", b_from, b_to, timedelta(days=1), name_to="b_to")
    cams = _compare_cameras(store, settings, flt)
    a = _period(store, settings, sa, ea, flt, cams)
    b = _period(store, settings, sb, eb, flt, cams)
    notes: list[str] = []
    ca, cb = a["coverage"], b["coverage"]
    alike = ca is not None and cb is not None and abs(ca - cb) <= COMPARABLE_COVERAGE
    if not alike:
        if ca is None or cb is None:
            notes.append("a period lies before the cameras' first data or in the future: totals not compared")
        else:
            notes.append(
                f"observed shares differ (A {ca * 100:.0f} %, B {cb * 100:.0f} %): "
                "totals not compared, compare the rates per observed hour"
            )
    for name, p in (("A", a), ("B", b)):
        if p["per_observed_hour"] is None:
            notes.append(f"period {name} was observed under {MIN_RATE_OBSERVED_S / 60:.0f} minutes: no rate")
    return {
        "a": a,
        "b": b,
        "change": {
            "total": b["total"] - a["total"] if alike else None,
            "total_pct": _pct(a["total"], b["total"]) if alike else None,
            "totals_comparable": alike,
            "per_observed_hour_pct": _pct(a["per_observed_hour"], b["per_observed_hour"]),
            "pcu_per_observed_hour_pct": _pct(a["pcu_per_observed_hour"], b["pcu_per_observed_hour"]),
        },
        "notes": notes,
    }


@router.get("/flow/profile", response_model=ProfileOut)
def profile(
    store: StoreDep,
    settings: SettingsDep,
    _who: ReaderDep,
    flt: FlowFilterDep,
    from_: FromQ = None,
    to: ToQ = None,
) -> dict[str, Any]:
    """Hour-of-week profile in the city's time zone: for each of the 168 hours (Monday 00:00 first),
    vehicles and PCU per observed hour (hours the camera was down do not dilute the mean; an hour of
    the week observed under 15 minutes in all has no rate)."""
    start, end = time_range("from", from_, to, timedelta(days=28))
    lo, hi = epoch_bounds(start, end)
    w = pcu_weights(settings)
    totals = [0] * 168
    pcus = [0.0] * 168
    by_class = [dict.fromkeys(CLASS_NAMES, 0) for _ in range(168)]
    observed = [0.0] * 168
    for seg_lo, seg_hi, off in store.clock.offset_segments(lo, hi):
        cells = store.history.flow(seg_lo, seg_hi, offset_s=off, how=True, flt=flt, keys=("camera_id",))
        for (h, _cam), cell in cells.items():
            totals[h] += cell.total
            pcus[h] += sum(w[c] * n for c, n in cell.counts.items())
            for c, n in cell.counts.items():
                by_class[h][c] += n
        cams = flt.camera_ids
        for (h, _cam), o in store.history.observed(seg_lo, seg_hi, offset_s=off, how=True, camera_ids=cams).items():
            observed[h] += o
    hours = []
    for h in range(168):
        oh = observed[h] / 3600.0
        rated = observed[h] >= MIN_RATE_OBSERVED_S  # a few observed minutes are noise, not a rate
        hours.append(
            {
                "hour_of_week": h,
                "day": DAYS[h // 24],
                "hour": h % 24,
                "total": totals[h],
                "counts": {c: n for c, n in by_class[h].items() if n},
                "pcu": round(pcus[h], 3),
                "observed_h": round(oh, 3),
                "per_observed_hour": round(totals[h] / oh, 3) if rated else None,
                "pcu_per_observed_hour": round(pcus[h] / oh, 3) if rated else None,
            }
        )
    return {"from": start.isoformat(), "to": end.isoformat(), "timezone": settings.server.timezone, "hours": hours}


@router.get("/od", response_model=OdOut)
def od_matrix(
    store: StoreDep,
    _who: ReaderDep,
    camera_id: IdQuery,
    class_name: ClassName | None = None,
    from_: FromQ = None,
    to: ToQ = None,
) -> dict[str, Any]:
    """Origin-destination matrix of one camera (movements from entry to exit zone, by exit time;
    the range is rounded out to whole minutes)."""
    start, end = time_range("from", from_, to, timedelta(hours=24))
    lo, hi = epoch_bounds(start, end)
    rows = store.history.od(lo, hi, camera_ids=[camera_id], class_name=class_name)
    origins = sorted({r["entry_zone"] for r in rows})
    dests = sorted({r["exit_zone"] for r in rows})
    matrix = [[0] * len(dests) for _ in origins]
    for r in rows:
        matrix[origins.index(r["entry_zone"])][dests.index(r["exit_zone"])] = r["count"]
    return {
        "camera_id": camera_id,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "origins": origins,
        "destinations": dests,
        "matrix": matrix,
        "rows": rows,
        "total": sum(r["count"] for r in rows),
    }


@router.get("/occupancy", response_model=OccupancyOut)
def occupancy(
    store: StoreDep,
    settings: SettingsDep,
    _who: ReaderDep,
    camera_id: IdParam = None,
    zone_id: IdParam = None,
    lanes_only: bool = False,
    from_: FromQ = None,
    to: ToQ = None,
    bucket: Bucket = "1h",
) -> dict[str, Any]:
    """Zone and lane state per bucket: occupancy (share of time occupied), vehicles entered (a lane's
    flow), mean occupancy by class, queue, mean speed. Rounded out to whole minutes."""
    start, end = time_range("from", from_, to, timedelta(hours=24), BUCKET_SECONDS[bucket])
    lo, hi = epoch_bounds(start, end)
    rows = store.history.zones(
        lo,
        hi,
        bucket_s=BUCKET_SECONDS[bucket],
        offset_s=city_offset_s(settings, start),
        camera_ids=[camera_id] if camera_id else None,
        zone_id=zone_id,
        lanes_only=lanes_only,
    )
    tz = ZoneInfo(settings.server.timezone)
    for r in rows:
        b = r.pop("bucket")
        r["bucket_start"] = datetime.fromtimestamp(b, tz).isoformat() if b is not None else None
    return {"bucket": bucket, "from": start.isoformat(), "to": end.isoformat(), "rows": rows}


router.include_router(exports.router)  # the flow CSV and FIWARE downloads, from the same rows
