"""Counts a city already has (loop detectors, manual counts) loaded into a camera line's rollups.

Why through the rollups: forecasts, the planner API and exports all read the rollups, so an imported
bucket is indistinguishable from one the camera counted: its vehicles go to the flow tables and the
bucket is credited as observed, so the model sees history instead of a cold start. Finer rollups than
the file's bucket get the count spread evenly in whole vehicles (an hour of 100 is 25 per quarter hour),
so every resolution sums to the same total and a 15-minute view shows a flat hour, not a spike.

All or nothing: the whole file is parsed and checked first (every bad row is reported with its line
number), then written in one transaction. Buckets the camera already observed are refused, so an
import never counts a bucket twice (importing the same file again is an error, not a doubling).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from citywatch.contract import CLASS_NAMES, utcnow
from server.forecasting.model_store import forget_camera
from server.forecasting.tables import LINE, ForecastSeriesRow
from server.storage.models import FLOW_TABLES, OBSERVED_TABLES, table_of
from server.storage.rollups import RES_ORDER, Deltas, observed_deltas, upsert
from server.storage.store import Store

#: ``--bucket`` names and their seconds.
BUCKETS: dict[str, int] = {"15min": 900, "hour": 3600}
_RES_OF = {900: "15m", 3600: "1h"}
_MAX_ERRORS = 20


class CountImportError(ValueError):
    """The file cannot be imported; ``problems`` holds ``(line number, message)`` (0: the whole file)."""

    def __init__(self, source: str, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        shown = "\n".join(f"  line {n}: {m}" if n else f"  {m}" for n, m in problems[:_MAX_ERRORS])
        more = f"\n  ... and {len(problems) - _MAX_ERRORS} more" if len(problems) > _MAX_ERRORS else ""
        super().__init__(f"cannot import {source}; nothing was stored:\n{shown}{more}")


@dataclass(frozen=True)
class BucketCount:
    """One imported bucket: its start (epoch s, UTC), its count and the file line it came from."""

    start: int
    count: int
    line: int


def _parse_time(text: str) -> datetime:
    t = text.strip()
    if not t:
        raise ValueError("empty time")
    return datetime.fromisoformat(t.replace("Z", "+00:00") if t.endswith("Z") else t)


def _parse_count(text: str) -> int:
    t = text.strip()
    v = float(t)  # "12", "12.0"
    if not math.isfinite(v) or v < 0 or v != int(v):
        raise ValueError(f"count {t!r} is not a whole number >= 0")
    return int(v)


def _resolve_local(naive: datetime, tz: ZoneInfo, seen: dict[datetime, int]) -> datetime:
    """A naive local time as an aware one: a time the clock skipped is an error; a time the clock showed
    twice (the fall-back hour) is the first occurrence when first seen and the second when repeated."""
    a0, a1 = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    if a0.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) != naive:
        raise ValueError(f"{naive:%Y-%m-%d %H:%M:%S} does not exist in {tz.key} (the clock skipped it)")
    if a0.utcoffset() == a1.utcoffset():
        return a0
    n = seen.get(naive, 0)
    seen[naive] = n + 1
    return a1 if n >= 1 else a0


def parse_counts(
    rows: Iterable[dict[str, str]],
    *,
    time_column: str,
    value_column: str,
    tz: ZoneInfo,
    bucket_s: int,
    source: str = "<csv>",
    first_line: int = 2,
) -> list[BucketCount]:
    """Validate every row; raise :class:`CountImportError` naming each bad line, else the buckets in time order."""
    problems: list[tuple[int, str]] = []
    out: list[BucketCount] = []
    by_start: dict[int, int] = {}
    seen_local: dict[datetime, int] = {}
    for i, row in enumerate(rows):
        n = first_line + i
        try:
            if None in row:
                raise ValueError("more fields than the header has")
            t_raw, v_raw = row.get(time_column), row.get(value_column)
            if t_raw is None or v_raw is None:
                raise ValueError("fewer fields than the header has")
            try:
                t = _parse_time(t_raw)
            except ValueError:
                raise ValueError(f"time {t_raw!r} is not an ISO date-time (e.g. 2025-03-01 07:15:00)") from None
            aware = _resolve_local(t, tz, seen_local) if t.tzinfo is None else t
            local = aware.astimezone(tz)
            since_midnight = local.hour * 3600 + local.minute * 60 + local.second
            if local.microsecond or since_midnight % bucket_s:
                raise ValueError(f"time {t_raw.strip()!r} is not the start of a {bucket_s // 60}-minute bucket")
            count = _parse_count(v_raw)
        except ValueError as exc:
            problems.append((n, str(exc)))
            continue
        start = int(aware.timestamp())
        if start in by_start:
            problems.append((n, f"time {t_raw.strip()!r} repeats line {by_start[start]} (each bucket once)"))
            continue
        by_start[start] = n
        out.append(BucketCount(start, count, n))
    if not out and not problems:
        problems.append((0, "no data rows"))
    if problems:
        raise CountImportError(source, problems)
    out.sort(key=lambda b: b.start)
    return out


def read_counts_csv(
    path: Path, *, time_column: str, value_column: str, tz: ZoneInfo, bucket_s: int
) -> list[BucketCount]:
    """Parse a CSV file (UTF-8, BOM allowed, header row first)."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in (time_column, value_column) if c not in header]
        if missing:
            raise CountImportError(
                str(path), [(1, f"no column {', '.join(map(repr, missing))} (the header has {', '.join(header)})")]
            )
        try:
            return parse_counts(
                reader, time_column=time_column, value_column=value_column, tz=tz, bucket_s=bucket_s, source=str(path)
            )
        except csv.Error as exc:
            raise CountImportError(str(path), [(reader.line_num, f"not valid CSV: {exc}")]) from None


def split_evenly(count: int, parts: int) -> list[int]:
    """``count`` whole vehicles spread as evenly as possible over ``parts`` (the sum is exact)."""
    return [(i + 1) * count // parts - i * count // parts for i in range(parts)]


def store_counts(
    store: Store,
    buckets: list[BucketCount],
    *,
    camera_id: str,
    line_id: str,
    direction: str,
    class_name: str,
    bucket_s: int,
    site_id: str | None = None,
    source: str = "<csv>",
) -> int:
    """Write the buckets in one transaction; refuse (storing nothing) when the camera observed any of them."""
    if class_name not in CLASS_NAMES:
        raise CountImportError(source, [(0, f"unknown class {class_name!r} (one of {', '.join(CLASS_NAMES)})")])
    if bucket_s not in _RES_OF:
        raise CountImportError(source, [(0, f"bucket of {bucket_s} s: 900 or 3600 only")])
    if not buckets:
        return 0
    clock = store.clock
    d = Deltas()
    col = f"n_{class_name}"
    for b in buckets:
        if not b.count:
            continue
        for res, res_s in RES_ORDER:
            if res_s >= bucket_s:
                d.add(f"flow_{res}", (camera_id, clock.floor(b.start, res_s), line_id, direction), {col: b.count})
                continue
            for i, part in enumerate(split_evenly(b.count, bucket_s // res_s)):
                if part:
                    d.add(f"flow_{res}", (camera_id, b.start + i * res_s, line_id, direction), {col: part})
    observed_deltas(clock, ((camera_id, b.start, b.start + bucket_s) for b in buckets), d)
    obs = OBSERVED_TABLES[_RES_OF[bucket_s]]
    flow = FLOW_TABLES[_RES_OF[bucket_s]]
    lo, hi = buckets[0].start, buckets[-1].start + bucket_s
    wanted = {clock.floor(b.start, bucket_s): b.line for b in buckets}
    with store.db.session.begin() as s:
        taken = list(s.execute(
            select(obs.c.bucket).where(obs.c.camera_id == camera_id, obs.c.bucket >= lo, obs.c.bucket < hi,
                                       obs.c.observed_s > 0)
        ).scalars())
        taken += s.execute(
            select(flow.c.bucket).where(flow.c.camera_id == camera_id, flow.c.line_id == line_id,
                                        flow.c.direction == direction, flow.c.bucket >= lo, flow.c.bucket < hi)
            .group_by(flow.c.bucket).having(func.count() > 0)
        ).scalars().all()
        clash = sorted({wanted[t] for t in taken if t in wanted})
        if clash:
            first = datetime.fromtimestamp(min(t for t in taken if t in wanted), clock.tz)
            raise CountImportError(
                source,
                [(clash[0], f"camera {camera_id} already has observed time or counts at {first.isoformat()} "
                  f"({len(clash)} bucket(s) of this file): an import never counts a bucket twice")],
            )
        store.cameras.ensure(s, camera_id, site_id)
        upsert(s, store.dialect, d)
        # the next refresh reads this camera's whole history again (its stored grid lacks the imported past)
        forget_camera(store, s, camera_id, utcnow())
        s.execute(store.db.insert(table_of(ForecastSeriesRow)).values(
            series_kind=LINE, camera_id=camera_id, series_id=line_id, direction=direction, site_id=site_id,
            status="pending", observed_days=0.0, needed_days=0, refreshed_at=utcnow(),
            message="history imported: forecast at the next refresh",
        ).on_conflict_do_nothing(index_elements=["series_kind", "camera_id", "series_id", "direction"]))
    return len(buckets)


def span_text(buckets: list[BucketCount], tz: ZoneInfo, bucket_s: int) -> str:
    """``first … last`` local bucket starts, for the command's summary."""
    a = datetime.fromtimestamp(buckets[0].start, tz)
    b = datetime.fromtimestamp(buckets[-1].start, tz) + timedelta(seconds=bucket_s)
    return f"{a.isoformat()} … {b.isoformat()}"
