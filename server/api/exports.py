"""Planner exports: flow CSV and FIWARE ``TrafficFlowObserved``, from the same rows as ``/flow``.

Every export follows one time rule (:data:`server.export.TIME_RULE`): CSV times in the city's time zone
as ISO 8601 with offset and the zone named in a ``timezone`` column; FIWARE in UTC as NGSI-LD
requires; file names in the query's time zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from citywatch.config import CitywatchConfig
from citywatch.contract import CLASS_NAMES
from server import export
from server.api.coverage import offset_at
from server.api.flows import BUCKET_SECONDS, Bucket, FlowFilterDep, flow_rows
from server.api.params import IdParam, time_range
from server.deps import ReaderDep, SettingsDep, StoreDep
from server.history import FlowFilter, epoch_bounds
from server.store import Store

router = APIRouter(tags=["planner"])

CSV_HEADER = (
    "bucket_start",
    "timezone",
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


@router.get("/export/flow.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def export_flow_csv(
    store: StoreDep,
    settings: SettingsDep,
    _who: ReaderDep,
    flt: FlowFilterDep,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    bucket: Bucket = "1h",
) -> Response:
    """The ``/flow`` rows as CSV (UTF-8 with BOM: Excel shows Vietnamese names correctly). Times follow
    :data:`server.export.TIME_RULE`: city time with its offset, the zone named in ``timezone``; the file
    name is in the query's time zone."""
    start, end = time_range("from", from_, to, timedelta(hours=24), BUCKET_SECONDS[bucket])
    rows = flow_rows(store, settings, start, end, bucket, flt)
    tz = ZoneInfo(settings.server.timezone)
    body = export.csv_text(
        CSV_HEADER,
        (
            [
                r["bucket_start"] or export.local_iso(start, tz),
                settings.server.timezone,
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
    stamp = export.file_stamp(start.astimezone(export.query_tz(from_, to, tz)))
    return Response(
        body.encode("utf-8"),
        media_type=export.CSV_MEDIA_TYPE,
        headers=export.attachment(f"citywatch-flow-{stamp}-{bucket}.csv"),
    )


def fiware_flow_entities(
    store: Store,
    settings: CitywatchConfig,
    start: datetime,
    end: datetime,
    bucket: str,
    camera_id: str | None = None,
    per_class: bool = True,
) -> list[dict[str, Any]]:
    """``TrafficFlowObserved`` entities: per bucket, line and direction (all vehicles, and one per
    vehicle class when ``per_class``), and per lane (vehicles entered, occupancy, mean speed)."""
    bucket_s = BUCKET_SECONDS[bucket]
    flt = FlowFilter([camera_id] if camera_id else None)
    rows = flow_rows(store, settings, start, end, bucket, flt)
    configured = {c.id: c for c in settings.cameras}
    known = {r["camera_id"]: r for r in store.list_cameras()}

    def where(cam: str) -> tuple[str, dict[str, Any] | None, str | None]:
        cfg = configured.get(cam)
        row = known.get(cam, {})
        site = (settings.camera_site(cfg) if cfg else None) or row.get("site_id") or settings.site
        if cfg is not None and cfg.location is not None:
            return site, export.geo_point(cfg.location.lat, cfg.location.lon), cfg.name or None
        return site, export.geo_point(row.get("lat"), row.get("lon")), row.get("name")

    def period(b_iso: str | None) -> tuple[datetime, datetime]:
        if b_iso is None or not bucket_s:
            return start, end
        b = datetime.fromisoformat(b_iso)
        return b, b + timedelta(seconds=bucket_s)

    out: list[dict[str, Any]] = []
    for r in rows:
        site, loc, name = where(r["camera_id"])
        p0, p1 = period(r["bucket_start"])
        vehicles = {c: n for c, n in r["counts"].items() if c in export.VEHICLE_TYPE}
        common = {"site_id": site, "camera_id": r["camera_id"], "start": p0, "end": p1, "location": loc, "name": name}
        out.append(
            export.traffic_flow_observed(
                **common,
                line_id=r["line_id"],
                direction=r["direction"],
                intensity=sum(vehicles.values()),
                average_speed_kmh=r["mean_speed_kmh"],
            )
        )
        if per_class:
            for c, n in vehicles.items():
                if n:
                    out.append(
                        export.traffic_flow_observed(
                            **common, line_id=r["line_id"], direction=r["direction"], intensity=n, class_name=c
                        )
                    )
    lo, hi = epoch_bounds(start, end)
    zones = store.history.zones(
        lo, hi, bucket_s=bucket_s, offset_s=offset_at(settings, start), camera_ids=flt.camera_ids, lanes_only=True
    )
    for z in zones:
        cfg = configured.get(z["camera_id"])
        lane_ids = [ln.id for ln in cfg.lanes] if cfg else []
        site, loc, name = where(z["camera_id"])
        p0 = datetime.fromtimestamp(z["bucket"], timezone.utc) if z["bucket"] is not None else start
        p1 = p0 + timedelta(seconds=bucket_s) if z["bucket"] is not None and bucket_s else end
        out.append(
            export.traffic_flow_observed(
                site_id=site,
                camera_id=z["camera_id"],
                start=p0,
                end=p1,
                lane_id=z["zone_id"],
                lane_number=lane_ids.index(z["zone_id"]) + 1 if z["zone_id"] in lane_ids else None,
                intensity=z["vehicles_entered"],
                occupancy=z["occupancy"],
                average_speed_kmh=z["mean_speed_kmh"],
                location=loc,
                name=name,
            )
        )
    return out


@router.get("/export/fiware/traffic-flow")
async def export_fiware_traffic_flow(
    store: StoreDep,
    settings: SettingsDep,
    _who: ReaderDep,
    camera_id: IdParam = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    bucket: Bucket = "15m",
    per_class: bool = True,
) -> JSONResponse:
    """FIWARE Smart Data Models ``TrafficFlowObserved`` entities (NGSI-LD key-values, ``application/ld+json``);
    times in UTC as the schema's DateTime (:data:`server.export.TIME_RULE`)."""
    start, end = time_range("from", from_, to, timedelta(hours=24), BUCKET_SECONDS[bucket])
    body = await run_in_threadpool(fiware_flow_entities, store, settings, start, end, bucket, camera_id, per_class)
    return JSONResponse(body, media_type="application/ld+json")
