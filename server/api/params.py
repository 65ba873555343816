"""Query and path parameters every router shares, validated at the boundary so that a bad value is a 422
naming the parameter, never a database or date-arithmetic error (a 500).

Ids follow the contract's id pattern (no NUL, no spaces, at most 64 characters); times must carry an
offset and lie in 1970..2100, so bucket arithmetic and time-zone conversions cannot overflow."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import HTTPException, Path, Query

from citywatch.contract import ID_PATTERN, utcnow

IdParam = Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN, description="An id (contract pattern).")]
IdPath = Annotated[str, Path(max_length=64, pattern=ID_PATTERN, description="An id (contract pattern).")]

#: Times outside this range are refused: the data cannot hold them and the arithmetic must not overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)
MAX_RANGE = timedelta(days=400)
MAX_BUCKETS = 100_000


def bad(param: str, msg: str, where: str = "query") -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, naming the parameter."""
    return HTTPException(422, detail=[{"loc": [where, param], "msg": msg, "type": "value_error"}])


def aware_time(name: str, v: datetime | None) -> datetime | None:
    """``v`` unchanged when it has an offset and lies in 1970..2100; else a 422 naming ``name``."""
    if v is None:
        return None
    if v.tzinfo is None or v.tzinfo.utcoffset(v) is None:
        raise bad(name, f"'{name}' needs a time zone offset, e.g. 2025-01-31T07:00:00+07:00 or ...Z")
    # Subtracting aware datetimes never overflows (astimezone near year 1 or 9999 would).
    if not timedelta(0) <= v - EARLIEST < LATEST - EARLIEST:
        raise bad(name, f"'{name}' must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)")
    return v


def time_range(
    name_from: str,
    start: datetime | None,
    end: datetime | None,
    default: timedelta,
    bucket_s: int | None = None,
    *,
    name_to: str = "to",
    max_range: timedelta = MAX_RANGE,
) -> tuple[datetime, datetime]:
    """``[start, end)`` with defaults (end: now; start: end - ``default``), checked: both in range, start
    before end, at most ``max_range`` long and at most ``MAX_BUCKETS`` buckets of ``bucket_s``."""
    end = aware_time(name_to, end) or utcnow()
    start = aware_time(name_from, start)
    if start is None:
        start = max(end - default, EARLIEST)
    if start >= end:
        raise bad(name_from, f"'{name_from}' must be before '{name_to}'")
    if end - start > max_range:
        raise bad(name_from, f"the range may span at most {max_range.days} days")
    if bucket_s and (end - start).total_seconds() / bucket_s > MAX_BUCKETS:
        raise bad("bucket", f"more than {MAX_BUCKETS} buckets: choose a larger bucket or a shorter range")
    return start, end
