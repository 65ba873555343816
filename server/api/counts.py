"""Line-crossing counts aggregated in SQL by time bucket (or in total)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter

from citywatch.contract import ClassName, Direction
from server.api.models import CountsOut
from server.api.params import BUCKET_SECONDS, Bucket, FromQ, IdParam, ToQ, time_range
from server.deps import ReaderDep, SettingsDep, StoreDep

router = APIRouter(tags=["counts"])

DEFAULT_RANGE = timedelta(hours=24)


@router.get("/counts", response_model=CountsOut)
def counts(
    store: StoreDep,
    settings: SettingsDep,
    _who: ReaderDep,
    camera_id: IdParam = None,
    line_id: IdParam = None,
    direction: Direction | None = None,
    class_name: ClassName | None = None,
    from_: FromQ = None,
    to: ToQ = None,
    bucket: Bucket = "total",
) -> dict[str, Any]:
    """Counts in ``[from, to)`` (defaults: to = now, from = to - 24 h). Buckets align to the server's time zone."""
    bucket_s = BUCKET_SECONDS[bucket]
    start, end = time_range("from", from_, to, DEFAULT_RANGE, bucket_s)
    tz = ZoneInfo(settings.server.timezone)
    offset = tz.utcoffset(start) or timedelta(0)
    rows = store.history.counts(
        start=start,
        end=end,
        bucket_s=bucket_s,
        camera_id=camera_id,
        line_id=line_id,
        direction=direction,
        class_name=class_name,
        tz_offset_s=int(offset.total_seconds()),
    )
    return {
        "bucket": bucket,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "timezone": settings.server.timezone,
        "rows": [
            {
                "bucket_start": r.bucket_start.astimezone(tz).isoformat() if r.bucket_start else None,
                "camera_id": r.camera_id,
                "line_id": r.line_id,
                "direction": r.direction,
                "class_name": r.class_name,
                "count": r.count,
            }
            for r in rows
        ],
        "total": sum(r.count for r in rows),
    }
