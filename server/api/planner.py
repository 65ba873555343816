"""Planner API: flows (vehicles or PCU), period comparison, hour-of-week profile, OD matrices,
occupancy/speed, CSV and FIWARE exports. Everything reads the rollups (``server.storage.history``).

Every flow row carries ``observed_s``/``coverage``: the seconds its camera was actually observing
(from heartbeats), so a zero with coverage 1.0 is "no vehicles" and a zero with coverage 0 is
"camera down". Rates per observed hour compare periods fairly when a camera was down in one.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from citywatch.config import CitywatchConfig
from citywatch.contract import CLASS_NAMES, ClassName, Direction
from server import export
from server.api.models import CompareOut, FlowOut, OccupancyOut, OdOut, ProfileOut
from server.api.params import (
    BUCKET_SECONDS,
    CSV_CONTENT,
    ENTITIES_SCHEMA,
    Bucket,
    FromQ,
    IdParam,
    IdQuery,
    LdJsonResponse,
    ToQ,
    city_offset_s,
    time_range,
)
from server.deps import ReaderDep, SettingsDep, StoreDep
from server.storage.history import FlowFilter, epoch_bounds
from server.storage.store import Store

router = APIRouter(tags=["planner"])

Unit = Literal["vehicles", "pcu"]
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def flow_filter(
    camera_id: IdParam = None,
    line_id: IdParam = None,
    direction: Direction | None = None,
    class_name: ClassName | None = None,
) -> FlowFilter:
    """The camera/line/direction/class query parameters every flow endpoint takes."""
    return FlowFilter([camera_id] if camera_id else None, line_id, direction, class_name)


FlowFilterDep = Annotated[FlowFilter, Depends(flow_filter)]


def _pcu(settings: CitywatchConfig) -> dict[str, float]:
    w = settings.server.pcu
    return {c: float(getattr(w, c)) for c in CLASS_NAMES}


def _flow_rows(
    store: Store,
    settings: CitywatchConfig,
    start: datetime,
    end: datetime,
    bucket: str,
    flt: FlowFilter,
) -> list[dict[str, Any]]:
    bucket_s = BUCKET_SECONDS[bucket]
    off = city_offset_s(settings, start)
    lo, hi = epoch_bounds(start, end)
    cells = store.history.flow(lo, hi, bucket_s=bucket_s, offset_s=off, flt=flt)
    cams = sorted({k[1] for k in cells})
    observed = store.history.observed(lo, hi, bucket_s=bucket_s, offset_s=off, camera_ids=cams) if cams else {}
    tz = ZoneInfo(settings.server.timezone)
    w = _pcu(settings)
    rows = []
    for (b, cam, line, d), cell in sorted(cells.items(), key=lambda kv: (kv[0][0] or 0, *kv[0][1:])):
        span = float(bucket_s) if bucket_s else float(hi - lo)
        obs = observed.get((b, cam), 0.0)
        rows.append(
            {
                "bucket_start": datetime.fromtimestamp(b, tz).isoformat() if b is not None else None,
                "camera_id": cam,
                "line_id": line,
                "direction": d,
                "counts": dict(cell.counts),
                "total": cell.total,
                "pcu": round(sum(w[c] * n for c, n in cell.counts.items()), 3),
                "mean_speed_kmh": round(cell.speed_sum / cell.speed_n, 2) if cell.speed_n else None,
                "speed_samples": cell.speed_n,
                "observed_s": round(obs, 1),
                "coverage": round(min(1.0, obs / span), 4) if span else None,
            }
        )
    return rows


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
    rows = _flow_rows(store, settings, start, end, bucket, flt)
    return {
        "bucket": bucket,
        "unit": unit,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "timezone": settings.server.timezone,
        "pcu_weights": _pcu(settings),
        "rows": rows,
        "total": sum(r["pcu" if unit == "pcu" else "total"] for r in rows),
    }


def _period(store: Store, settings: CitywatchConfig, start: datetime, end: datetime, flt: FlowFilter) -> dict[str, Any]:
    rows = _flow_rows(store, settings, start, end, "total", flt)
    counts = dict.fromkeys(CLASS_NAMES, 0)
    for r in rows:
        for c, n in r["counts"].items():
            counts[c] += n
    total = sum(counts.values())
    pcu = sum(_pcu(settings)[c] * n for c, n in counts.items())
    lo, hi = epoch_bounds(start, end)
    cams = sorted({r["camera_id"] for r in rows}) or ([*flt.camera_ids] if flt.camera_ids else [])
    obs = store.history.observed(lo, hi, camera_ids=cams) if cams else {}
    observed_s = sum(obs.values())
    hours = observed_s / 3600.0
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "counts": counts,
        "total": total,
        "pcu": round(pcu, 3),
        "observed_s": round(observed_s, 1),
        "per_observed_hour": round(total / hours, 3) if hours else None,
        "pcu_per_observed_hour": round(pcu / hours, 3) if hours else None,
    }


def _pct(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not a:
        return None
    return round((b - a) / a * 100.0, 2)


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
    """Two periods side by side (e.g. before/after a road change): totals, PCU, and rates per observed
    hour, so that a camera down in one period does not read as less traffic."""
    sa, ea = time_range("a_from", a_from, a_to, timedelta(days=1), name_to="a_to")
    sb, eb = time_range("b_from", b_from, b_to, timedelta(days=1), name_to="b_to")
    a = _period(store, settings, sa, ea, flt)
    b = _period(store, settings, sb, eb, flt)
    return {
        "a": a,
        "b": b,
        "change": {
            "total": b["total"] - a["total"],
            "total_pct": _pct(a["total"], b["total"]),
            "per_observed_hour_pct": _pct(a["per_observed_hour"], b["per_observed_hour"]),
            "pcu_per_observed_hour_pct": _pct(a["pcu_per_observed_hour"], b["pcu_per_observed_hour"]),
        },
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
    vehicles and PCU per observed hour (hours the camera was down do not dilute the mean)."""
    start, end = time_range("from", from_, to, timedelta(days=28))
    lo, hi = epoch_bounds(start, end)
    w = _pcu(settings)
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
        hours.append(
            {
                "hour_of_week": h,
                "day": DAYS[h // 24],
                "hour": h % 24,
                "total": totals[h],
                "counts": {c: n for c, n in by_class[h].items() if n},
                "pcu": round(pcus[h], 3),
                "observed_h": round(oh, 3),
                "per_observed_hour": round(totals[h] / oh, 3) if oh else None,
                "pcu_per_observed_hour": round(pcus[h] / oh, 3) if oh else None,
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


# --- exports ------------------------------------------------------------------------------------

CSV_HEADER = (
    "bucket_start",
    "camera_id",
    "line_id",
    "direction",
    *[f"n_{c}" for c in CLASS_NAMES],
    "total",
    "pcu",
    "mean_speed_kmh",
    "observed_s",
    "coverage",
)


@router.get("/export/flow.csv", response_class=Response, responses={200: {"content": CSV_CONTENT}})
def export_flow_csv(
    store: StoreDep,
    settings: SettingsDep,
    _who: ReaderDep,
    flt: FlowFilterDep,
    from_: FromQ = None,
    to: ToQ = None,
    bucket: Bucket = "1h",
) -> Response:
    """The ``/flow`` rows as CSV (UTF-8 with BOM: Excel shows Vietnamese names correctly)."""
    start, end = time_range("from", from_, to, timedelta(hours=24), BUCKET_SECONDS[bucket])
    rows = _flow_rows(store, settings, start, end, bucket, flt)
    body = export.csv_text(
        CSV_HEADER,
        (
            [
                r["bucket_start"] or start.isoformat(),
                r["camera_id"],
                r["line_id"],
                r["direction"],
                *[r["counts"][c] for c in CLASS_NAMES],
                r["total"],
                r["pcu"],
                r["mean_speed_kmh"],
                r["observed_s"],
                r["coverage"],
            ]
            for r in rows
        ),
    )
    name = f"citywatch-flow-{start.astimezone(timezone.utc):%Y%m%dT%H%M}-{bucket}.csv"
    return Response(
        body.encode("utf-8"),
        media_type=export.CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _fiware_flow(
    store: Store,
    settings: CitywatchConfig,
    start: datetime,
    end: datetime,
    bucket: str,
    camera_id: str | None = None,
    per_class: bool = True,
) -> list[dict[str, Any]]:
    """Reads the flow and lane rows of the range; ``export.traffic_flow_entities`` builds the entities."""
    bucket_s = BUCKET_SECONDS[bucket]
    flt = FlowFilter([camera_id] if camera_id else None)
    rows = _flow_rows(store, settings, start, end, bucket, flt)
    lo, hi = epoch_bounds(start, end)
    lanes = store.history.zones(
        lo, hi, bucket_s=bucket_s, offset_s=city_offset_s(settings, start), camera_ids=flt.camera_ids, lanes_only=True
    )
    return export.traffic_flow_entities(
        settings, store.list_cameras(), rows, lanes, start=start, end=end, bucket_s=bucket_s, per_class=per_class
    )


@router.get(
    "/export/fiware/traffic-flow",
    response_class=LdJsonResponse,
    responses={200: {"content": {"application/ld+json": {"schema": ENTITIES_SCHEMA}}}},
)
async def export_fiware_traffic_flow(
    store: StoreDep,
    settings: SettingsDep,
    _who: ReaderDep,
    camera_id: IdParam = None,
    from_: FromQ = None,
    to: ToQ = None,
    bucket: Bucket = "15m",
    per_class: bool = True,
) -> LdJsonResponse:
    """FIWARE Smart Data Models ``TrafficFlowObserved`` entities (NGSI-LD key-values, ``application/ld+json``)."""
    start, end = time_range("from", from_, to, timedelta(hours=24), BUCKET_SECONDS[bucket])
    body = await run_in_threadpool(_fiware_flow, store, settings, start, end, bucket, camera_id, per_class)
    return LdJsonResponse(body)
