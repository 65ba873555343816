"""Rollup tables: maintained incrementally in the ingest transaction, read by every history query.

Why this shape: history questions (a camera's year, a city's month) must never scan raw events. Every
newly stored event (never a duplicate: only ids the insert returned) adds to one row per resolution
(1 min, 15 min, 1 h, 1 day) with ``INSERT ... ON CONFLICT DO UPDATE SET col = col + excluded.col``,
which SQLite and PostgreSQL share. Rows are upserted in primary-key order so that two ingest
processes on PostgreSQL lock them in the same order (no deadlock).

Families: ``flow_*`` (line crossings, classes as columns, speed sums), ``zone_*`` (zone and lane
occupancy reports), ``od_*`` (movements entry -> exit), ``observed_*`` (seconds the camera observed).
Buckets are epoch seconds of their start; ``1d`` starts at local midnight of the server's time zone.

Reads use :func:`plan_segments`: a range is cut into pieces each served by the coarsest table whose
buckets fit inside it; the unaligned ends (< 1 minute) come from raw events, so totals are exact.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Float, Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from citywatch.contract import AnyEvent, CountTotal, LineCrossing, Movement, ZoneOccupancy
from server.storage.models import (
    FLOW_TABLES,
    OBSERVED_TABLES,
    OD_TABLES,
    RESOLUTIONS,
    ROLLUP_CLASSES,
    ZONE_TABLES,
)

DAY = 86400
#: Finest to coarsest.
RES_ORDER: tuple[tuple[str, int], ...] = tuple(sorted(RESOLUTIONS.items(), key=lambda kv: kv[1]))


class Clock:
    """Bucket arithmetic in the server's time zone (day buckets start at local midnight)."""

    def __init__(self, tz: str | ZoneInfo = "Asia/Ho_Chi_Minh") -> None:
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self._fixed: int | None = self._probe_fixed()
        #: Every bucket boundary falls on a whole minute (a fixed offset of whole minutes, e.g. +7).
        self.minute_aligned = self._fixed is not None and self._fixed % 60 == 0

    def _probe_fixed(self) -> int | None:
        """The offset when the zone has had one offset since 2000 (Asia/Ho_Chi_Minh: +7), else None."""
        offs = {
            self.offset(int(datetime(y, m, 15, tzinfo=timezone.utc).timestamp()), probe=True)
            for y in (2000, 2010, 2020, 2030)
            for m in (1, 4, 7, 10)
        }
        return offs.pop() if len(offs) == 1 else None

    def offset(self, ts_s: float, *, probe: bool = False) -> int:
        if not probe and self._fixed is not None:
            return self._fixed
        d = datetime.fromtimestamp(ts_s, tz=timezone.utc).astimezone(self.tz)
        return int((d.utcoffset() or timedelta(0)).total_seconds())

    def floor(self, ts_s: float, res_s: int) -> int:
        """Start of the bucket of size ``res_s`` holding ``ts_s``."""
        t = math.floor(ts_s)
        if res_s >= DAY:
            off = self.offset(t)
            return (t + off) // res_s * res_s - off
        return t - t % res_s

    def ceil(self, ts_s: float, res_s: int) -> int:
        f = self.floor(ts_s, res_s)
        return f if f == ts_s else self.next(f, res_s)

    def next(self, bucket: int, res_s: int) -> int:
        if res_s >= DAY:
            # the next local midnight (23 h or 25 h later across a DST change)
            return self.floor(bucket + res_s + 3 * 3600, res_s)
        return bucket + res_s

    def offset_segments(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """``[(lo, hi, utc_offset_s)]`` covering ``[lo, hi)``: one piece unless the zone changes offset."""
        if self._fixed is not None or hi <= lo:
            return [(lo, hi, self.offset(lo))]
        out: list[tuple[int, int, int]] = []
        start, cur = lo, self.offset(lo)
        t = lo
        while t < hi:
            step = min(hi, t + DAY)
            o = self.offset(step if step < hi else hi - 1)
            if o != cur:
                a, b = t, step  # bisect to the second
                while b - a > 1:
                    mid = (a + b) // 2
                    if self.offset(mid) == cur:
                        a = mid
                    else:
                        b = mid
                out.append((start, b, cur))
                start, cur = b, o
            t = step
        out.append((start, hi, cur))
        return out


@dataclass(frozen=True)
class Segment:
    """``[lo, hi)`` served by rollup resolution ``res`` (``None``: raw events)."""

    res: str | None
    lo: int
    hi: int


def plan_segments(clock: Clock, lo: int, hi: int, max_res_s: int | None = None, min_res_s: int = 0) -> list[Segment]:
    """Cut ``[lo, hi)`` into pieces each read from the coarsest table whose whole buckets fit inside it.

    ``max_res_s``: never use a table coarser than this (the output bucket). ``min_res_s``: ends finer
    than this are rounded outwards to whole buckets of the finest table instead of raw events (used
    for rollups that have no raw equivalent, e.g. observed seconds).
    """
    usable = [(name, s) for name, s in RES_ORDER if max_res_s is None or s <= max_res_s]
    out: list[Segment] = []

    def rec(a: int, b: int, level: int) -> None:
        if a >= b:
            return
        if level < 0:
            out.append(Segment(None, a, b))
            return
        name, s = usable[level]
        ca, fb = clock.ceil(a, s), clock.floor(b, s)
        if ca < fb:
            rec(a, ca, level - 1)
            out.append(Segment(name, ca, fb))
            rec(fb, b, level - 1)
        else:
            rec(a, b, level - 1)

    if usable:
        rec(lo, hi, len(usable) - 1)
    else:
        out.append(Segment(None, lo, hi))
    if min_res_s:
        finest = usable[0] if usable else RES_ORDER[0]
        out = [
            Segment(finest[0], clock.floor(sg.lo, finest[1]), clock.ceil(sg.hi, finest[1])) if sg.res is None else sg
            for sg in out
        ]
    out.sort(key=lambda sg: sg.lo)
    return out


# --- incremental maintenance --------------------------------------------------------------------

Key = tuple[Any, ...]


@dataclass
class Deltas:
    """Additions per table name and primary key, ready to upsert."""

    tables: dict[str, dict[Key, dict[str, Any]]]

    def __init__(self) -> None:
        self.tables = defaultdict(dict)

    def add(self, table: str, key: Key, values: dict[str, float | int | bool]) -> None:
        row = self.tables[table].get(key)
        if row is None:
            self.tables[table][key] = dict(values)
            return
        for k, v in values.items():
            row[k] = (row[k] or v) if isinstance(v, bool) else row.get(k, 0) + v

    def __bool__(self) -> bool:
        return any(self.tables.values())


def event_deltas(clock: Clock, events: Iterable[AnyEvent], deltas: Deltas | None = None) -> Deltas:
    """What newly stored events add to the flow, zone and OD rollups.

    Events are first summed per base bucket (one minute, or one second in a zone whose offset is not
    whole minutes), then each base row is added once per resolution: a batch of many events costs one
    rollup addition per base row instead of four per event, with the same totals.
    """
    d = deltas if deltas is not None else Deltas()
    base = 60 if clock.minute_aligned else 1
    fine = Deltas()  # tables here are families ("flow", "zone", "od"); keys carry the base bucket
    flow = fine.tables["flow"]
    for ev in events:
        if isinstance(ev, LineCrossing):  # the bulk of all events: summed in place, no dict per event
            key = (ev.camera_id, clock.floor(ev.ts.timestamp(), base), ev.line_id, ev.direction)
            row = flow.get(key)
            if row is None:
                row = flow[key] = {}
            col = f"n_{ev.class_name}"
            row[col] = row.get(col, 0) + 1
            if ev.speed_kmh is not None:
                row["speed_sum"] = row.get("speed_sum", 0.0) + float(ev.speed_kmh)
                row["speed_n"] = row.get("speed_n", 0) + 1
        elif isinstance(ev, CountTotal):
            # All of a merged total lands in the bucket holding interval_start (documented in the API).
            t = ev.interval_start.timestamp()
            fine.add(
                "flow", (ev.camera_id, clock.floor(t, base), ev.line_id, ev.direction), {f"n_{ev.class_name}": ev.count}
            )
        elif isinstance(ev, ZoneOccupancy):
            t = ev.ts.timestamp() - ev.interval_s / 2  # the middle of the reported interval
            w = max(ev.vehicles_entered, 1)
            vals = {
                "lane": bool(ev.lane),
                "samples": 1,
                "interval_s": float(ev.interval_s),
                "occupied_s": float(ev.occupied_fraction * ev.interval_s),
                "entered": int(ev.vehicles_entered),
            }
            for c, n in ev.occupancy.items():
                vals[f"occ_{c}"] = float(n)
            if ev.queue_length_m is not None or ev.queue_vehicles is not None:
                vals["queue_n"] = 1
                vals["queue_m_sum"] = float(ev.queue_length_m or 0.0)
                vals["queue_veh_sum"] = float(ev.queue_vehicles or 0)
            if ev.mean_speed_kmh is not None:
                vals["speed_sum"] = float(ev.mean_speed_kmh) * w
                vals["speed_n"] = float(w)
            fine.add("zone", (ev.camera_id, clock.floor(t, base), ev.zone_id), vals)
        elif isinstance(ev, Movement):
            t = ev.ts.timestamp()
            vals = {f"n_{ev.class_name}": 1, "duration_sum": float(ev.duration_s)}
            if ev.speed_kmh is not None:
                vals["speed_sum"] = float(ev.speed_kmh)
                vals["speed_n"] = 1
            fine.add("od", (ev.camera_id, clock.floor(t, base), ev.entry_zone, ev.exit_zone), vals)
    for family, rows in fine.tables.items():
        for (camera_id, bucket, *rest), vals in rows.items():
            for res, s in RES_ORDER:
                d.add(f"{family}_{res}", (camera_id, clock.floor(bucket, s), *rest), vals)
    return d


def observed_deltas(
    clock: Clock, intervals: Iterable[tuple[str, float, float]], deltas: Deltas | None = None
) -> Deltas:
    """Seconds observed, split exactly over the buckets of every resolution."""
    d = deltas if deltas is not None else Deltas()
    for camera_id, lo, hi in intervals:
        if hi <= lo:
            continue
        for res, s in RES_ORDER:
            b = clock.floor(lo, s)
            while b < hi:
                nb = clock.next(b, s)
                part = min(hi, nb) - max(lo, b)
                if part > 0:
                    d.add(f"observed_{res}", (camera_id, b), {"observed_s": float(part)})
                b = nb
    return d


ALL_TABLES: dict[str, Table] = {
    **{f"flow_{r}": t for r, t in FLOW_TABLES.items()},
    **{f"zone_{r}": t for r, t in ZONE_TABLES.items()},
    **{f"od_{r}": t for r, t in OD_TABLES.items()},
    **{f"observed_{r}": t for r, t in OBSERVED_TABLES.items()},
}


def upsert(session: Session, dialect: str, deltas: Deltas) -> int:
    """Add the deltas to their rows (insert or add); returns the number of rows touched."""
    n = 0
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    least = func.least if dialect == "postgresql" else func.min
    for name in sorted(deltas.tables):
        rows = deltas.tables[name]
        if not rows:
            continue
        table = ALL_TABLES[name]
        pk = [c.name for c in table.primary_key.columns]
        res_s = RESOLUTIONS[name.rsplit("_", 1)[1]]  # a 25 h DST day is capped at 24 h
        value_cols = [c.name for c in table.columns if c.name not in pk]
        payload = []
        for key in sorted(rows):
            vals = rows[key]
            row = dict(zip(pk, key, strict=True))
            for c in value_cols:
                row[c] = vals.get(c, False if c == "lane" else 0)
            if "observed_s" in row:
                row["observed_s"] = min(row["observed_s"], float(res_s))
            payload.append(row)
        if dialect == "postgresql":
            # one statement per table whatever the number of rows; rows stay in primary-key order
            sql = _pg_upsert_sql(name, table, pk, value_cols, res_s)
            columns: dict[str, list[Any]] = {}
            for col in table.columns:
                values = [r[col.name] for r in payload]
                if isinstance(col.type, Float):  # a binary array needs one element type: no int among floats
                    values = [float(v) for v in values]
                columns[col.name] = values
            pg_execute_columns(session, sql, columns)
            n += len(payload)
            continue
        stmt = ins(table)
        sets: dict[str, Any] = {}
        for c in value_cols:
            if c == "lane":
                sets[c] = stmt.excluded.lane
            elif c == "observed_s":
                # never more than the bucket: overlapping heartbeats must not claim more time than exists
                sets[c] = least(table.c.observed_s + stmt.excluded.observed_s, float(res_s))
            else:
                sets[c] = table.c[c] + stmt.excluded[c]
        stmt = stmt.on_conflict_do_update(index_elements=pk, set_=sets)
        for chunk in _chunks(payload, 1000):
            session.execute(stmt, chunk)
        n += len(payload)
    return n


def pg_unnest_insert(table: Table, tail: str, alias: str | None = None) -> str:
    """psycopg SQL: ``INSERT INTO table [AS alias] (cols) SELECT * FROM unnest(%(col)b::type[], ...) <tail>``.

    PostgreSQL only (run it with :func:`pg_execute_columns`). Every column is bound as one binary
    array, so the statement text does not depend on the number of rows: psycopg converts it once, the
    server plans it once, a batch is one round trip, and no value needs text-array escaping.
    """
    d = postgresql.dialect()
    cols = [c.name for c in table.columns]
    arrays = ", ".join(f"%({c})b::{table.c[c].type.compile(dialect=d)}[]" for c in cols)
    as_alias = f" AS {alias}" if alias else ""
    return f"INSERT INTO {table.name}{as_alias} ({', '.join(cols)}) SELECT * FROM unnest({arrays}) {tail}"


def pg_execute_columns(session: Session, sql: str, columns: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    """Run ``sql`` on the session's own psycopg connection (same transaction); returns the rows, if any."""
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(sql, columns)
        return cur.fetchall() if cur.description is not None else []


_PG_UPSERTS: dict[str, tuple[str, list[str]]] = {}


def _pg_upsert_sql(name: str, table: Table, pk: list[str], value_cols: list[str], res_s: int) -> str:
    found = _PG_UPSERTS.get(name)
    if found is None:
        sets = []
        for c in value_cols:
            if c == "lane":
                sets.append(f"{c} = EXCLUDED.{c}")
            elif c == "observed_s":
                sets.append(f"{c} = LEAST(t.{c} + EXCLUDED.{c}, {float(res_s)!r})")
            else:
                sets.append(f"{c} = t.{c} + EXCLUDED.{c}")
        tail = f"ON CONFLICT ({', '.join(pk)}) DO UPDATE SET {', '.join(sets)}"
        found = _PG_UPSERTS[name] = (pg_unnest_insert(table, tail, alias="t"), [c.name for c in table.columns])
    return found[0]


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


CLASS_COLUMNS = tuple(f"n_{c}" for c in ROLLUP_CLASSES)
