"""Line-crossing counts aggregated in SQL by time bucket (or in total)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query

from citywatch.contract import ClassName, Direction, utcnow
from server.deps import ReaderDep, SettingsDep, StoreDep

router = APIRouter(tags=["counts"])

Bucket = Literal["1m", "15m", "1h", "1d", "total"]
BUCKET_SECONDS: dict[str, int | None] = {"1m": 60, "15m": 900, "1h": 3600, "1d": 86400, "total": None}
MAX_RANGE = timedelta(days=400)
MAX_BUCKETS = 100_000
DEFAULT_RANGE = timedelta(hours=24)


def _bad(param: str, msg: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": ["query", param], "msg": msg, "type": "value_error"}])


def _aware(name: str, v: datetime | None) -> datetime | None:
    if v is not None and (v.tzinfo is None or v.tzinfo.utcoffset(v) is None):
        raise _bad(name, f"'{name}' needs a time zone offset, e.g. 2025-01-31T07:00:00+07:00 or ...Z")
    return v


@router.get("/counts")
def counts(
    store: StoreDep,
    settings: SettingsDep,
    _who: ReaderDep,
    camera_id: str | None = None,
    line_id: str | None = None,
    direction: Direction | None = None,
    class_name: ClassName | None = None,
    from_: Annotated[datetime | None, Query(alias="from", description="ISO-8601 with offset")] = None,
    to: Annotated[datetime | None, Query(description="ISO-8601 with offset; exclusive")] = None,
    bucket: Bucket = "total",
) -> dict[str, Any]:
    """Counts in ``[from, to)`` (defaults: to = now, from = to - 24 h). Buckets align to the server's time zone."""
    start = _aware("from", from_)
    end = _aware("to", to)
    if end is None:
        end = utcnow()
    if start is None:
        start = end - DEFAULT_RANGE
    if start >= end:
        raise _bad("from", "'from' must be before 'to'")
    if end - start > MAX_RANGE:
        raise _bad("from", f"the range may span at most {MAX_RANGE.days} days")
    bucket_s = BUCKET_SECONDS[bucket]
    if bucket_s and (end - start).total_seconds() / bucket_s > MAX_BUCKETS:
        raise _bad("bucket", f"more than {MAX_BUCKETS} buckets: choose a larger bucket or a shorter range")
    tz = ZoneInfo(settings.server.timezone)
    offset = tz.utcoffset(start) or timedelta(0)
    rows = store.counts(
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
