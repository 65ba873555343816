"""History queries over the rollup tables (never a scan of raw events).

Why a module of its own: the event writer's rollup hook writes, this reads, and the planner API, the
exports and the legacy ``/counts`` endpoint all share one way to cut a time range into rollup pieces
(:func:`server.storage.rollups.plan_segments`). Only the unaligned ends of a range (under one minute each)
read raw events, through the ``(kind, camera_id, ts_s)`` index, so totals equal raw counts exactly.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnClause, ColumnElement, Integer, func, literal_column, select

from server.storage.database import Database
from server.storage.models import (
    FLOW_TABLES,
    OBSERVED_TABLES,
    OD_TABLES,
    ROLLUP_CLASSES,
    ZONE_TABLES,
    EventRow,
    table_of,
)
from server.storage.rollups import DAY, RESOLUTIONS, Clock, Segment, plan_segments

HOURS_PER_WEEK = 168
#: 1970-01-01 was a Thursday: Monday 00:00 local is 72 hours before the epoch's hour 0.
_MONDAY_SHIFT_H = 72


def _idiv(expr: Any, n: int) -> Any:
    """Integer division on SQLite and PostgreSQL alike (BIGINT / INT truncates in both)."""
    return expr.self_group().op("/", precedence=8, return_type=BigInteger())(literal_column(str(int(n))))


def bucket_expr(col: Any, bucket_s: int | None, offset_s: int) -> ColumnElement[Any] | None:
    """Start of the output bucket holding ``col`` (epoch s): local-aligned by ``offset_s``."""
    if not bucket_s:
        return None
    off: ColumnClause[Any] = literal_column(str(int(offset_s)))
    return (_idiv(col + off, bucket_s).self_group() * literal_column(str(int(bucket_s))) - off).label("b")


def how_expr(col: Any, offset_s: int) -> ColumnElement[Any]:
    """Hour of the week, 0 = Monday 00:00-01:00 local."""
    off: ColumnClause[Any] = literal_column(str(int(offset_s)))
    hours = _idiv(col + off, 3600)
    return (
        (hours.self_group() + literal_column(str(_MONDAY_SHIFT_H)))
        .self_group()
        .op("%", precedence=8, return_type=Integer())(literal_column(str(HOURS_PER_WEEK)))
    ).label("b")


@dataclass
class FlowCell:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLLUP_CLASSES, 0))
    speed_sum: float = 0.0
    speed_n: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class FlowFilter:
    camera_ids: Sequence[str] | None = None
    line_id: str | None = None
    direction: str | None = None
    class_name: str | None = None


def _max_res_for(bucket_s: int | None, offset_s: int, clock_offset_s: int) -> int | None:
    """Coarsest rollup whose buckets nest inside the output buckets."""
    if bucket_s is None:
        return None
    best = 0
    for s in RESOLUTIONS.values():
        if s > bucket_s or bucket_s % s:
            continue
        if s >= DAY and offset_s != clock_offset_s:
            continue  # day rollups start at the store's local midnight, not this one
        if s < DAY and offset_s % s and s > 60:
            continue  # e.g. UTC+05:30 output hours are not whole UTC hours
        best = max(best, s)
    return best or 60


@dataclass(frozen=True)
class CountRow:
    """One row of the legacy ``/counts`` answer (:meth:`History.counts`)."""

    bucket_start: datetime | None
    camera_id: str
    line_id: str
    direction: str
    class_name: str
    count: int


class History:
    """Read side of the rollups, on the database and the server's ``clock`` (day buckets)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def segments(self, lo: int, hi: int, bucket_s: int | None, offset_s: int, *, min_res_s: int = 0) -> list[Segment]:
        max_res = _max_res_for(bucket_s, offset_s, self.clock.offset(lo))
        return plan_segments(self.clock, lo, hi, max_res, min_res_s)

    def counts(
        self,
        *,
        start: datetime,
        end: datetime,
        bucket_s: int | None = None,
        camera_id: str | None = None,
        line_id: str | None = None,
        direction: str | None = None,
        class_name: str | None = None,
        tz_offset_s: int = 0,
    ) -> list[CountRow]:
        """Line crossings in ``[start, end)`` grouped by bucket (or total) and camera/line/direction/class.

        Read from the rollups (raw events only for the unaligned ends, under a minute each); the same
        result on SQLite and PostgreSQL. ``tz_offset_s`` aligns day buckets to local midnight.
        """
        lo, hi = epoch_bounds(start, end)
        flt = FlowFilter(
            camera_ids=[camera_id] if camera_id else None, line_id=line_id, direction=direction, class_name=class_name
        )
        cells = self.flow(lo, hi, bucket_s=bucket_s, offset_s=tz_offset_s, flt=flt)
        out = []
        for (b, cam, line, d), cell in cells.items():
            for c, n in cell.counts.items():
                if n:
                    bstart = datetime.fromtimestamp(b, tz=start.tzinfo) if b is not None else None
                    out.append(
                        CountRow(bucket_start=bstart, camera_id=cam, line_id=line, direction=d, class_name=c, count=n)
                    )
        out.sort(
            key=lambda r: (
                r.bucket_start.timestamp() if r.bucket_start else 0,
                r.camera_id,
                r.line_id,
                r.direction,
                r.class_name,
            )
        )
        return out

    # --- flows ------------------------------------------------------------------------------------

    def flow(
        self,
        lo: int,
        hi: int,
        *,
        bucket_s: int | None = None,
        offset_s: int = 0,
        how: bool = False,
        flt: FlowFilter = FlowFilter(),
        keys: Sequence[str] = ("camera_id", "line_id", "direction"),
    ) -> dict[tuple[Any, ...], FlowCell]:
        """Line crossings in ``[lo, hi)`` (epoch s) grouped by output bucket (or hour of week) and ``keys``."""
        out: dict[tuple[Any, ...], FlowCell] = defaultdict(FlowCell)
        classes = [flt.class_name] if flt.class_name else list(ROLLUP_CLASSES)
        if how:
            bucket_s = 3600
        for sg in self.segments(lo, hi, bucket_s, offset_s):
            if sg.res is None:
                self._flow_raw(out, sg, bucket_s, offset_s, how, flt, keys)
                continue
            t = FLOW_TABLES[sg.res]
            b = how_expr(t.c.bucket, offset_s) if how else bucket_expr(t.c.bucket, bucket_s, offset_s)
            cols = [t.c[k] for k in keys]
            aggs = [func.sum(t.c[f"n_{c}"]).label(f"n_{c}") for c in classes]
            aggs += [func.sum(t.c.speed_sum).label("ss"), func.sum(t.c.speed_n).label("sn")]
            group = ([b] if b is not None else []) + cols
            stmt = select(*group, *aggs).where(t.c.bucket >= sg.lo, t.c.bucket < sg.hi)
            stmt = self._where(stmt, t.c, flt)
            if group:
                stmt = stmt.group_by(*group)
            with self.db.session() as s:
                for r in s.execute(stmt):
                    m = r._mapping
                    key = ((int(m["b"]),) if b is not None else (None,)) + tuple(m[k] for k in keys)
                    cell = out[key]
                    for c in classes:
                        cell.counts[c] += int(m[f"n_{c}"] or 0)
                    cell.speed_sum += float(m["ss"] or 0.0)
                    cell.speed_n += int(m["sn"] or 0)
        return {k: v for k, v in out.items() if v.total or v.speed_n}

    def _where(self, stmt: Any, c: Any, flt: FlowFilter) -> Any:
        if flt.camera_ids is not None:
            stmt = stmt.where(c.camera_id.in_(list(flt.camera_ids)))
        if flt.line_id and "line_id" in c:
            stmt = stmt.where(c.line_id == flt.line_id)
        if flt.direction and "direction" in c:
            stmt = stmt.where(c.direction == flt.direction)
        return stmt

    def _flow_raw(
        self,
        out: dict[tuple[Any, ...], FlowCell],
        sg: Segment,
        bucket_s: int | None,
        offset_s: int,
        how: bool,
        flt: FlowFilter,
        keys: Sequence[str],
    ) -> None:
        e = table_of(EventRow).c
        b = how_expr(e.ts_s, offset_s) if how else bucket_expr(e.ts_s, bucket_s, offset_s)
        cols = [e[k] for k in keys]
        group = ([b] if b is not None else []) + cols + [e.class_name]
        stmt = (
            select(
                *group,
                func.sum(func.coalesce(e.n, 1)).label("n"),  # count_total rows stand for n crossings
                func.sum(e.speed_kmh).label("ss"),
                func.count(e.speed_kmh).label("sn"),
            )
            .where(e.kind.in_(("line_crossing", "count_total")), e.ts_s >= sg.lo, e.ts_s < sg.hi)
            .group_by(*group)
        )
        stmt = self._where(stmt, e, flt)
        if flt.class_name:
            stmt = stmt.where(e.class_name == flt.class_name)
        with self.db.session() as s:
            for r in s.execute(stmt):
                m = r._mapping
                key = ((int(m["b"]),) if b is not None else (None,)) + tuple(m[k] for k in keys)
                cell = out[key]
                cell.counts[m["class_name"]] += int(m["n"])
                cell.speed_sum += float(m["ss"] or 0.0)
                cell.speed_n += int(m["sn"] or 0)

    # --- observed seconds -------------------------------------------------------------------------

    def observed(
        self,
        lo: int,
        hi: int,
        *,
        bucket_s: int | None = None,
        offset_s: int = 0,
        how: bool = False,
        camera_ids: Sequence[str] | None = None,
    ) -> dict[tuple[Any, str], float]:
        """Seconds each camera observed, per output bucket (or hour of week). Ends that are not whole
        minutes are prorated from their minute."""
        out: dict[tuple[Any, str], float] = defaultdict(float)
        if how:
            bucket_s = 3600
        for sg in self.segments(lo, hi, bucket_s, offset_s):
            res = sg.res or "1m"
            t = OBSERVED_TABLES[res]
            lo_b, hi_b = sg.lo, sg.hi
            scale = 1.0
            if sg.res is None:  # a partial minute: prorate that minute's observed seconds
                lo_b = self.clock.floor(sg.lo, 60)
                hi_b = lo_b + 60
                scale = (sg.hi - sg.lo) / 60.0
            b = how_expr(t.c.bucket, offset_s) if how else bucket_expr(t.c.bucket, bucket_s, offset_s)
            group = ([b] if b is not None else []) + [t.c.camera_id]
            stmt = select(*group, func.sum(t.c.observed_s).label("o")).where(t.c.bucket >= lo_b, t.c.bucket < hi_b)
            if camera_ids is not None:
                stmt = stmt.where(t.c.camera_id.in_(list(camera_ids)))
            stmt = stmt.group_by(*group)
            with self.db.session() as s:
                for r in s.execute(stmt):
                    m = r._mapping
                    key = (int(m["b"]) if b is not None else None, m["camera_id"])
                    out[key] += float(m["o"] or 0.0) * scale
        return dict(out)

    def first_data(self, camera_ids: Sequence[str]) -> dict[str, int | None]:
        """Epoch second of each camera's earliest rollup row of any family (to the minute while the
        minute rollups still hold it): what lies before it is "before install", not a gap."""
        out: dict[str, int | None] = {}
        families = (FLOW_TABLES, ZONE_TABLES, OD_TABLES, OBSERVED_TABLES)
        with self.db.session() as s:
            for cam in camera_ids:
                first: int | None = None
                width = 0
                for res in sorted(RESOLUTIONS, key=RESOLUTIONS.__getitem__, reverse=True):  # coarse to fine
                    found = []
                    for fam in families:
                        t = fam[res]
                        stmt = select(func.min(t.c.bucket)).where(t.c.camera_id == cam)
                        if first is not None:  # look only inside the coarser bucket found (+1 h for DST days)
                            stmt = stmt.where(t.c.bucket >= first, t.c.bucket < first + width + 3600)
                        v = s.scalar(stmt)
                        if v is not None:
                            found.append(int(v))
                    if found:
                        first, width = min(found), RESOLUTIONS[res]
                out[cam] = first
        return out

    # --- zones and OD (rollup granularity: ranges are rounded out to whole minutes) ---------------

    def zones(
        self,
        lo: int,
        hi: int,
        *,
        bucket_s: int | None,
        offset_s: int,
        camera_ids: Sequence[str] | None = None,
        zone_id: str | None = None,
        lanes_only: bool = False,
    ) -> list[dict[str, Any]]:
        acc: dict[tuple[Any, ...], dict[str, float]] = {}
        sums = [
            "samples",
            "interval_s",
            "occupied_s",
            "entered",
            "queue_m_sum",
            "queue_veh_sum",
            "queue_n",
            "speed_sum",
            "speed_n",
            *[f"occ_{c}" for c in ROLLUP_CLASSES],
        ]
        for sg in self.segments(lo, hi, bucket_s, offset_s, min_res_s=60):
            t = ZONE_TABLES[sg.res or "1m"]
            b = bucket_expr(t.c.bucket, bucket_s, offset_s)
            group = ([b] if b is not None else []) + [t.c.camera_id, t.c.zone_id]
            stmt = select(
                *group, func.max(t.c.lane.cast(Integer)).label("lane"), *[func.sum(t.c[c]).label(c) for c in sums]
            )
            stmt = stmt.where(t.c.bucket >= sg.lo, t.c.bucket < sg.hi).group_by(*group)
            if camera_ids is not None:
                stmt = stmt.where(t.c.camera_id.in_(list(camera_ids)))
            if zone_id:
                stmt = stmt.where(t.c.zone_id == zone_id)
            if lanes_only:
                stmt = stmt.where(t.c.lane.is_(True))
            with self.db.session() as s:
                for r in s.execute(stmt):
                    m = r._mapping
                    key = (int(m["b"]) if b is not None else None, m["camera_id"], m["zone_id"])
                    a = acc.setdefault(key, dict.fromkeys(sums, 0.0) | {"lane": 0})
                    a["lane"] = max(a["lane"], int(m["lane"] or 0))
                    for c in sums:
                        a[c] += float(m[c] or 0.0)
        rows = []
        for (bk, cam, zone), a in sorted(acc.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1], kv[0][2])):
            n = a["samples"] or 1.0
            rows.append(
                {
                    "bucket": bk,
                    "camera_id": cam,
                    "zone_id": zone,
                    "lane": bool(a["lane"]),
                    "samples": int(a["samples"]),
                    "reported_s": round(a["interval_s"], 3),
                    "occupancy": round(a["occupied_s"] / a["interval_s"], 4) if a["interval_s"] else None,
                    "vehicles_entered": int(a["entered"]),
                    "mean_occupancy": {c: round(a[f"occ_{c}"] / n, 3) for c in ROLLUP_CLASSES if a[f"occ_{c}"]},
                    "mean_queue_m": round(a["queue_m_sum"] / a["queue_n"], 2) if a["queue_n"] else None,
                    "mean_queue_vehicles": round(a["queue_veh_sum"] / a["queue_n"], 2) if a["queue_n"] else None,
                    "mean_speed_kmh": round(a["speed_sum"] / a["speed_n"], 2) if a["speed_n"] else None,
                }
            )
        return rows

    def od(
        self, lo: int, hi: int, *, camera_ids: Sequence[str] | None = None, class_name: str | None = None
    ) -> list[dict[str, Any]]:
        classes = [class_name] if class_name else list(ROLLUP_CLASSES)
        acc: dict[tuple[str, str, str], dict[str, float]] = {}
        for sg in self.segments(lo, hi, None, 0, min_res_s=60):
            t = OD_TABLES[sg.res or "1m"]
            group = [t.c.camera_id, t.c.entry_zone, t.c.exit_zone]
            stmt = select(
                *group,
                *[func.sum(t.c[f"n_{c}"]).label(c) for c in classes],
                func.sum(t.c.duration_sum).label("dur"),
                func.sum(t.c.speed_sum).label("ss"),
                func.sum(t.c.speed_n).label("sn"),
            )
            stmt = stmt.where(t.c.bucket >= sg.lo, t.c.bucket < sg.hi).group_by(*group)
            if camera_ids is not None:
                stmt = stmt.where(t.c.camera_id.in_(list(camera_ids)))
            with self.db.session() as s:
                for r in s.execute(stmt):
                    m = r._mapping
                    a = acc.setdefault(
                        (m["camera_id"], m["entry_zone"], m["exit_zone"]),
                        {c: 0.0 for c in classes} | {"dur": 0.0, "ss": 0.0, "sn": 0.0},
                    )
                    for c in classes:
                        a[c] += float(m[c] or 0)
                    a["dur"] += float(m["dur"] or 0.0)
                    a["ss"] += float(m["ss"] or 0.0)
                    a["sn"] += float(m["sn"] or 0.0)
        rows = []
        for (cam, entry, exit_), a in sorted(acc.items()):
            n = sum(a[c] for c in classes)
            if not n:
                continue
            rows.append(
                {
                    "camera_id": cam,
                    "entry_zone": entry,
                    "exit_zone": exit_,
                    "count": int(n),
                    "by_class": {c: int(a[c]) for c in classes if a[c]},
                    "mean_duration_s": round(a["dur"] / n, 2),
                    "mean_speed_kmh": round(a["ss"] / a["sn"], 2) if a["sn"] else None,
                }
            )
        return rows


def epoch_bounds(start: datetime, end: datetime) -> tuple[int, int]:
    """``[start, end)`` in whole epoch seconds: an end inside a second includes that second."""
    return math.floor(start.timestamp()), math.ceil(end.timestamp())
