"""Planner exports: flow CSV and FIWARE ``TrafficFlowObserved``, from the same rows as ``/flow``.

Every export follows one time rule (:data:`server.export.TIME_RULE`): CSV times in the city's time zone
as ISO 8601 with offset and the zone named in a ``timezone`` column; FIWARE in UTC as NGSI-LD
requires; file names in the query's time zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from citywatch.config import CitywatchConfig
from citywatch.contract import CLASS_NAMES
from server import export
from server.api.flows import FlowFilterDep, flow_rows
from server.api.params import (
    BUCKET_SECONDS,
    CSV_CONTENT,
    ENTITIES_SCHEMA,
    Bucket,
    FromQ,
    IdParam,
    LdJsonResponse,
    ToQ,
    city_offset_s,
    time_range,
)
from server.deps import ReaderDep, SettingsDep, StoreDep
from server.storage.history import FlowFilter, epoch_bounds
from server.storage.store import Store

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
    rows = flow_rows(store, settings, start, end, bucket, flt)
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
    """FIWARE Smart Data Models ``TrafficFlowObserved`` entities (NGSI-LD key-values, ``application/ld+json``);
    times in UTC as the schema's DateTime (:data:`server.export.TIME_RULE`)."""
    start, end = time_range("from", from_, to, timedelta(hours=24), BUCKET_SECONDS[bucket])
    body = await run_in_threadpool(_fiware_flow, store, settings, start, end, bucket, camera_id, per_class)
    return LdJsonResponse(body)
