"""Query and path parameters every router shares, validated at the boundary so that a bad value is a 422
naming the parameter, never a database or date-arithmetic error (a 500); and the one error shape.

Ids follow the contract's id pattern (no NUL, no spaces, at most 64 characters); times must carry an
offset and lie in 1970..2100, so bucket arithmetic and time-zone conversions cannot overflow. Buckets
align to the city's time zone (``server.timezone``).

Errors: every error body is ``{"detail": ...}``. A 422 names the parameter the way FastAPI's own
validation errors do (``[{"loc": [where, name], "msg": ..., "type": ...}]``), so a client reads one shape
whether FastAPI or a check here refused the value; other errors (401, 403, 404, 409, 429, 503) carry one
sentence. ``ERRORS`` documents them in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from citywatch.config import CitywatchConfig
from citywatch.contract import ID_PATTERN, utcnow

IdParam = Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN, description="An id (contract pattern).")]
IdQuery = Annotated[str, Query(max_length=64, pattern=ID_PATTERN, description="An id (contract pattern).")]
IdPath = Annotated[str, Path(max_length=64, pattern=ID_PATTERN, description="An id (contract pattern).")]
FromQ = Annotated[datetime | None, Query(alias="from", description="ISO-8601 with offset; inclusive")]
ToQ = Annotated[datetime | None, Query(description="ISO-8601 with offset; exclusive")]

Bucket = Literal["1m", "15m", "1h", "1d", "total"]
BUCKET_SECONDS: dict[str, int | None] = {"1m": 60, "15m": 900, "1h": 3600, "1d": 86400, "total": None}

#: Times outside this range are refused: the data cannot hold them and the arithmetic must not overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)
MAX_RANGE = timedelta(days=400)
MAX_BUCKETS = 100_000


class ErrorOut(BaseModel):
    """Any error but a 422: one sentence saying what went wrong."""

    detail: str


class Problem(BaseModel):
    """One refused value: where it was (``query``, ``path`` or ``body``, then the name or key path)."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """A 422: every refused value, FastAPI's own shape."""

    detail: list[Problem]


#: The error responses of every API route, for the OpenAPI document (422 is FastAPI's own).
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No or an invalid API key or session."},
    403: {"model": ErrorOut, "description": "The role may not do this, or a cross-site request."},
    429: {"model": ErrorOut, "description": "Too many failed log-ins: wait (Retry-After)."},
    503: {"model": ErrorOut, "description": "The database (or broker) is not ready."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "No such item."}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorOut, "description": "Not in a state that allows it."}}


#: OpenAPI content of the files the API sends (CSV) and of its event stream.
CSV_CONTENT: dict[str, Any] = {"text/csv": {"schema": {"type": "string", "description": "UTF-8 CSV with a BOM."}}}
EVENT_STREAM_CONTENT: dict[str, Any] = {"text/event-stream": {"schema": {"type": "string"}}}
ENTITIES_SCHEMA: dict[str, Any] = {"type": "array", "items": {"type": "object", "description": "NGSI-LD key-values"}}


class LdJsonResponse(JSONResponse):
    """JSON-LD (NGSI-LD entities), as FIWARE context brokers expect it."""

    media_type = "application/ld+json"


def bad(param: str, msg: str, where: str = "query") -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, naming the parameter."""
    return invalid([((where, param), msg)])


def invalid(problems: Sequence[tuple[Sequence[str | int], str]]) -> HTTPException:
    """A 422 listing every ``(location, message)``, e.g. ``(("body", "lines", 0), "...")``."""
    return HTTPException(422, detail=[{"loc": list(loc), "msg": msg, "type": "value_error"} for loc, msg in problems])


def not_found(msg: str) -> HTTPException:
    return HTTPException(404, detail=msg)


def conflict(msg: str) -> HTTPException:
    return HTTPException(409, detail=msg)


def unavailable(msg: str) -> HTTPException:
    return HTTPException(503, detail=msg)


def city_offset_s(settings: CitywatchConfig, at: datetime) -> int:
    """UTC offset of the city's time zone at ``at`` in seconds: where its buckets start."""
    return int((ZoneInfo(settings.server.timezone).utcoffset(at) or timedelta(0)).total_seconds())


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
