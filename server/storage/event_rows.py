"""The events table's fast paths: binary COPY on PostgreSQL, one raw ``executemany`` on SQLite.

Why raw and not the ORM: ingest stores thousands of events a second, and per row SQLAlchemy's
parameter processing costs more than the database's insert (figures in ``bench/ingest_throughput.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Column, Float, String, Text, text
from sqlalchemy.orm import Session

from citywatch.contract import AnyEvent, CountTotal, LineCrossing
from server.storage.models import EventRow, UTCDateTime, table_of

_CHUNK = 500

T = TypeVar("T")

#: ``(event_id, camera_id)``: an event's identity in the store.
EventKey = tuple[str, str]
#: ``(seq, payload)`` of a stored event.
StoredCopy = tuple[int, str]


class ConcurrentInsert(RuntimeError):
    """Another writer stored some of a batch's events between its look-up and its insert: retry the batch."""


def _chunks(items: Sequence[T], n: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def epoch_s(ts: datetime) -> int:
    """Whole epoch seconds (floor, also before 1970): the portable bucketing key."""
    return math.floor(ts.timestamp())


#: The events table's columns in the order :func:`event_values` gives them.
EVENT_COLUMNS = (
    "event_id", "camera_id", "site_id", "seq", "kind", "ts", "ts_s", "received_at",
    "line_id", "direction", "class_name", "track_id", "speed_kmh", "n", "payload",
)  # fmt: skip
if set(EVENT_COLUMNS) != {c.name for c in table_of(EventRow).columns}:
    raise RuntimeError("the events table's columns changed: update EVENT_COLUMNS and event_values")


def event_values(eid: str, ev: AnyEvent, received_at: Any) -> tuple[Any, ...]:
    """One events row, in ``EVENT_COLUMNS`` order; ``payload`` is the event as model JSON.

    ``received_at`` is a datetime, or the value the SQLite fast path already converted it to."""
    line_id = direction = class_name = track_id = speed = n = None
    if isinstance(ev, LineCrossing):
        line_id, direction, class_name, track_id, speed = (
            ev.line_id, ev.direction, ev.class_name, ev.track_id, ev.speed_kmh,
        )  # fmt: skip
    elif isinstance(ev, CountTotal):  # crossings the edge merged while its outbox was full
        line_id, direction, class_name, n = ev.line_id, ev.direction, ev.class_name, ev.count
    return (
        eid, ev.camera_id, ev.site_id, ev.seq, ev.kind, ev.ts, epoch_s(ev.ts), received_at,
        line_id, direction, class_name, track_id, speed, n, ev.model_dump_json(),
    )  # fmt: skip


# --- PostgreSQL ---------------------------------------------------------------------------------

#: PostgreSQL: a batch is copied (binary COPY: a few microseconds a row, where binding 15 arrays costs
#: several times that in Python) straight into ``events``; when some ids are stored already, into a
#: per-connection temporary table instead, then inserted from it with ON CONFLICT.
_PG_EVENTS_COPY = f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_PG_STAGE_CREATE = "CREATE TEMP TABLE IF NOT EXISTS events_stage (LIKE events) ON COMMIT DELETE ROWS"
_PG_STAGE_COPY = f"COPY events_stage ({', '.join(EVENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
#: Returns the ids it did not insert (stored before, or by a concurrent writer): usually none, where
#: returning the inserted ones would send every id of the batch back.
_PG_STAGE_INSERT = (
    f"WITH ins AS (INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"SELECT {', '.join(EVENT_COLUMNS)} FROM events_stage "
    "ORDER BY event_id, camera_id "  # concurrent writers meet shared ids in the same order: no deadlock
    "ON CONFLICT (event_id, camera_id) DO NOTHING RETURNING event_id, camera_id) "
    "SELECT s.event_id, s.camera_id FROM events_stage s "
    "WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.event_id = s.event_id AND ins.camera_id = s.camera_id)"
)
#: The stored copies of ids the insert refused (a statement of its own: it must see rows that a
#: concurrent writer committed while the insert waited for it).
_PG_STORED = (
    "SELECT e.event_id, e.camera_id, e.seq, e.payload FROM events e "
    "JOIN unnest(CAST(:ids AS varchar[]), CAST(:cams AS varchar[])) AS k(event_id, camera_id) "
    "ON e.event_id = k.event_id AND e.camera_id = k.camera_id"
)


def _pg_copy_type(column: Column[Any]) -> str:
    t = column.type
    if isinstance(t, UTCDateTime):
        return "timestamptz"
    if isinstance(t, BigInteger):
        return "int8"
    if isinstance(t, Float):
        return "float8"
    if isinstance(t, Text):
        return "text"
    if isinstance(t, String):
        return "varchar"
    raise TypeError(f"no COPY type for column {column.name} ({t!r})")


_PG_STAGE_TYPES = [_pg_copy_type(table_of(EventRow).c[c]) for c in EVENT_COLUMNS]


def _pg_copy_rows(cur: Any, copy_sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Events rows (``EVENT_COLUMNS`` order) through a binary ``COPY ... FROM STDIN`` (psycopg cursor)."""
    with cur.copy(copy_sql) as copy:
        copy.set_types(_PG_STAGE_TYPES)
        for row in rows:
            copy.write_row(row)


def _copy_new_events(cur: Any, rows: list[tuple[Any, ...]]) -> bool:
    """PostgreSQL, when none of ``rows`` is stored yet (nearly always): binary COPY straight into
    ``events``, in a savepoint. False when an id was already stored (a redelivery): the savepoint is
    rolled back and nothing of the copy remains. Cheaper than :func:`_stage_events` (figures in
    ``bench/ingest_throughput.py``)."""
    from psycopg import errors

    cur.execute("SAVEPOINT events_copy")
    try:
        _pg_copy_rows(cur, _PG_EVENTS_COPY, rows)
    except errors.UniqueViolation:
        cur.execute("ROLLBACK TO SAVEPOINT events_copy")
        return False
    cur.execute("RELEASE SAVEPOINT events_copy")
    return True


def _stage_events(cur: Any, rows: list[tuple[Any, ...]]) -> list[EventKey]:
    """PostgreSQL, when some of ``rows`` may be stored: copy them into a temporary table, insert what
    is new with ON CONFLICT DO NOTHING; returns the ``(event_id, camera_id)`` it did not insert."""
    # every time, not once per connection: a rolled-back transaction takes the table along
    cur.execute(_PG_STAGE_CREATE)
    _pg_copy_rows(cur, _PG_STAGE_COPY, rows)
    cur.execute(_PG_STAGE_INSERT)
    refused = [(r[0], r[1]) for r in cur.fetchall()]
    cur.execute("TRUNCATE events_stage")  # empty for a next batch in this transaction too
    return refused


def pg_insert_events(s: Session, first: dict[EventKey, AnyEvent], received_at: datetime) -> dict[EventKey, StoredCopy]:
    """PostgreSQL: insert ``first`` (new ids, one copy each); returns ``(seq, payload)`` of those stored before."""
    # sorted by id: concurrent writers meet shared ids in the same order, so they wait, never deadlock
    rows = sorted(event_values(eid, first[(eid, cam)], received_at) for eid, cam in first)
    if not rows:
        return {}
    raw = s.connection().connection.driver_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        refused = [] if _copy_new_events(cur, rows) else _stage_events(cur, rows)
    if not refused:
        return {}
    found = s.execute(text(_PG_STORED), {"ids": [k[0] for k in refused], "cams": [k[1] for k in refused]})
    return {(r[0], r[1]): (int(r[2]), r[3]) for r in found}


# --- SQLite -------------------------------------------------------------------------------------

_SQLITE_EVENTS_INSERT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))}) "
    "ON CONFLICT (event_id, camera_id) DO NOTHING"
)


def sqlite_insert_events(
    s: Session, first: dict[EventKey, AnyEvent], received_at: datetime, as_time: Callable[[Any], Any]
) -> dict[EventKey, StoredCopy]:
    """SQLite: look the ids up, then one ``executemany`` on the session's own sqlite3 connection;
    returns ``(seq, payload)`` of those stored before. ``as_time``: a UTC column's bind processor.

    Why raw: per row, SQLAlchemy's parameter processing and RETURNING cost more than SQLite's insert.
    The look-up runs before SQLite's write lock is taken, so a concurrent writer may store one of the
    ids in between; then fewer rows than given are inserted, and the transaction is rolled back with
    :class:`ConcurrentInsert` for the caller to retry (the retry's look-up finds them).
    """
    raw = s.connection().connection.driver_connection
    cur = raw.cursor()  # type: ignore[union-attr]
    stored: dict[EventKey, StoredCopy] = {}
    try:
        ids = list({eid for eid, _cam in first})
        for chunk in _chunks(ids, _CHUNK):  # by id (the key's first column), then matched by camera
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT event_id, camera_id, seq, payload FROM events WHERE event_id IN ({marks})"
            for eid, cam, seq, payload in cur.execute(sql, chunk):
                if (eid, cam) in first:
                    stored[(eid, cam)] = (int(seq), payload)
        fresh = [key for key in first if key not in stored]
        if not fresh:
            return stored
        received = as_time(received_at)
        rows = []
        for key in fresh:
            r = event_values(key[0], first[key], received)
            rows.append((*r[:5], as_time(r[5]), *r[6:]))
        cur.executemany(_SQLITE_EVENTS_INSERT, rows)
        if cur.rowcount != len(rows):
            raise ConcurrentInsert(f"{len(rows) - cur.rowcount} of {len(rows)} events were stored meanwhile")
        return stored
    finally:
        cur.close()
