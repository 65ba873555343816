"""Storage API used by ingest and the HTTP API: sync, thread-safe (one session per call).

Why this shape: ingest is a plain thread that must commit a whole MQTT batch atomically before it
acknowledges the messages, and the API aggregates counts in SQL on SQLite and PostgreSQL alike.

PostgreSQL schemas: ``Store(url, schema="cw_x")`` creates the schema if needed and keeps every table,
including Alembic's version table, in it (``search_path`` is set per connection). A URL carrying
``?options=-csearch_path%3Dcw_x`` also works, but then the schema must already exist.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import BigInteger, Engine, Float, String, Text, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from citywatch.contract import (
    MAX_SEQ,
    AnyEvent,
    CameraStatus,
    CountTotal,
    Event,
    LineCrossing,
    Topics,
    is_id,
    utcnow,
)
from server import db_errors
from server import rollups as ru
from server.db import (
    DEFAULT_DATABASE_URL,
    FLOW_TABLES,
    OBSERVED_TABLES,
    OD_TABLES,
    RESOLUTIONS,
    ZONE_TABLES,
    ApiKeyRow,
    CameraRow,
    CameraStateRow,
    DeadLetterRow,
    EventRow,
    ResolvedSeqRow,
    RevokedSessionRow,
    UTCDateTime,
    make_engine,
)

log = logging.getLogger(__name__)


CameraState = Literal["online", "offline", "unknown"]

ENV_SCHEMA = "CITYWATCH_DATABASE_SCHEMA"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Dead-letter payloads are capped so a hostile or broken publisher cannot fill the disk.
MAX_DEAD_LETTER_BYTES = 256 * 1024
_CHUNK = 500
_WALK_CHUNK = 1000
_MIGRATION_LOCK_KEY = 0x63_77_6D_67  # "cwmg": serialises concurrent migrations on PostgreSQL

T = TypeVar("T")


def _chunks(items: Sequence[T], n: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def alembic_config(url: str | None = None) -> AlembicConfig:
    """Alembic config built in code, pointing at the migrations shipped inside the package."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


#: No citywatch camera recorded anything before this: an earlier event time is an edge clock reset (to
#: 1970 or 2000, as dead RTCs and GPS resets give), refused even where raw events are kept forever.
EARLIEST_EVENT_TS = datetime(2001, 1, 1, tzinfo=timezone.utc)

#: Dead-letter reasons the store gives itself (the text after the colon explains the case).
TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
CONFLICTING_DUPLICATE = "conflicting_duplicate"


@dataclass(frozen=True)
class DeadLetterIn:
    """A message ingest could not use, to be stored in the same transaction as the valid events.

    ``camera_id`` and ``seqs``: that camera's seqs the message carried, when it can never be stored
    (a permanent reason, and the payload's camera is the topic's): they are written to
    ``resolved_seqs`` with the dead letter, so the watermark moves past them."""

    topic: str
    payload: bytes | str
    reason: str
    camera_id: str | None = None
    seqs: tuple[int, ...] = ()

    @classmethod
    def of_events(cls, topic: str, payload: bytes | str, reason: str, events: Sequence[AnyEvent]) -> DeadLetterIn:
        """A message whose parsed ``events`` (one camera's, as ``Ingest.parse`` checks) can never be stored."""
        cams = {ev.camera_id for ev in events}
        if len(cams) != 1:
            return cls(topic, payload, reason)
        return cls(topic, payload, reason, cams.pop(), tuple(sorted({ev.seq for ev in events})))


def _resolves(d: DeadLetterIn) -> bool:
    """Whether ``d`` resolves seqs: a camera id as the contract allows it (it comes from a topic)."""
    return bool(d.seqs and d.camera_id and is_id(d.camera_id))


_EARLIEST_S = EARLIEST_EVENT_TS.timestamp()


class StoredBatch(tuple[list[str], list[str]]):
    """``(inserted_ids, duplicate_ids)`` of a batch, as a pair, plus ``dead_letters``: how many of its
    events the store itself dead-lettered (timestamp out of range, conflicting duplicate)."""

    dead_letters: int = 0

    def __new__(cls, inserted: list[str], duplicates: list[str], dead_letters: int = 0) -> StoredBatch:
        self = super().__new__(cls, (inserted, duplicates))
        self.dead_letters = dead_letters
        return self


@dataclass(frozen=True)
class CameraUpdateIn:
    """What one ingest batch tells about a camera (``Store.apply_cameras``)."""

    camera_id: str
    site_id: str | None
    seen_at: datetime | None = None
    state: CameraState | None = None
    status: CameraStatus | None = None
    config_version: str | None = None
    model_version: str | None = None
    floor: int | None = None
    has_events: bool = False


@dataclass(frozen=True)
class CountRow:
    bucket_start: datetime | None
    camera_id: str
    line_id: str
    direction: str
    class_name: str
    count: int


def epoch_s(ts: datetime) -> int:
    """Whole epoch seconds (floor, also before 1970): the portable bucketing key."""
    return math.floor(ts.timestamp())


#: The events table's columns in the order :func:`_event_values` gives them.
_EVENT_COLUMNS = (
    "event_id", "camera_id", "site_id", "seq", "kind", "ts", "ts_s", "received_at",
    "line_id", "direction", "class_name", "track_id", "speed_kmh", "n", "payload",
)  # fmt: skip
if set(_EVENT_COLUMNS) != {c.name for c in EventRow.__table__.columns}:
    raise RuntimeError("the events table's columns changed: update _EVENT_COLUMNS and _event_values")


def _event_values(eid: str, ev: AnyEvent, received_at: Any) -> tuple[Any, ...]:
    """One events row, in ``_EVENT_COLUMNS`` order; ``payload`` is the event as model JSON."""
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


#: PostgreSQL: a batch is copied (binary COPY: a few microseconds a row, where binding 15 arrays costs
#: several times that in Python) straight into ``events``; when some ids are stored already, into a
#: per-connection temporary table instead, then inserted from it with ON CONFLICT.
_PG_EVENTS_COPY = f"COPY events ({', '.join(_EVENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_PG_STAGE_CREATE = "CREATE TEMP TABLE IF NOT EXISTS events_stage (LIKE events) ON COMMIT DELETE ROWS"
_PG_STAGE_COPY = f"COPY events_stage ({', '.join(_EVENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
#: Returns the ids it did not insert (stored before, or by a concurrent writer): usually none, where
#: returning the inserted ones would send every id of the batch back.
_PG_STAGE_INSERT = (
    f"WITH ins AS (INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) "
    f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events_stage "
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


def _pg_copy_type(column: Any) -> str:
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


_PG_STAGE_TYPES = [_pg_copy_type(EventRow.__table__.c[c]) for c in _EVENT_COLUMNS]


def _pg_copy_rows(cur: Any, copy_sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Events rows (``_EVENT_COLUMNS`` order) through a binary ``COPY ... FROM STDIN``."""
    with cur.copy(copy_sql) as copy:
        copy.set_types(_PG_STAGE_TYPES)
        for row in rows:
            copy.write_row(row)


_SQLITE_EVENTS_INSERT = (
    f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(_EVENT_COLUMNS))}) "
    "ON CONFLICT (event_id, camera_id) DO NOTHING"
)

#: What an event says, for telling a redelivery (quiet duplicate) from a conflicting one: all but the
#: seq and the edge-clock times, which the edge legitimately changes when it renumbers its outbox or
#: re-runs a clip (the ids are deterministic so that a re-run de-duplicates), and the schema version
#: (a format, not content). Another model or configuration version is other content.
_NOT_CONTENT = frozenset({"schema_version", "seq", "ts", "started_at", "ended_at"})
_event_adapter: TypeAdapter[Any] = TypeAdapter(Event)


def _content(ev: AnyEvent) -> dict[str, Any]:
    return ev.model_dump(mode="json", exclude=_NOT_CONTENT)


def _stored_content(payload: str) -> dict[str, Any] | None:
    """The content of a stored payload as the current contract reads it (None: it no longer reads)."""
    try:
        return _content(_event_adapter.validate_json(payload))
    except ValidationError:
        return None


def _differences(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    if old is None:
        return ["the stored copy no longer validates"]
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


#: A camera's filled seqs above ``:n`` (stored events and resolved seqs), lowest first, ``:lim`` at most;
#: each side limited on its own (index range scans), in subqueries as SQLite wants compound members plain.
_FILLED_ABOVE = text(
    "SELECT seq FROM (SELECT DISTINCT seq FROM events WHERE camera_id = :c AND seq > :n ORDER BY seq LIMIT :lim) a "
    "UNION SELECT seq FROM (SELECT seq FROM resolved_seqs WHERE camera_id = :c AND seq > :n "
    "ORDER BY seq LIMIT :lim) b ORDER BY seq LIMIT :lim"
)


class ConcurrentInsert(RuntimeError):
    """Another writer stored some of a batch's events between its look-up and its insert: retry the batch."""


def _dead_letter_row(topic: str, payload: bytes | str, reason: str, received_at: datetime) -> dict[str, Any]:
    """Keep as much as is safe: text for reading, base64 when the bytes are not clean UTF-8, capped."""
    raw = payload.encode("utf-8", errors="surrogateescape") if isinstance(payload, str) else bytes(payload)
    size = len(raw)
    truncated = size > MAX_DEAD_LETTER_BYTES
    kept = raw[:MAX_DEAD_LETTER_BYTES]
    b64: str | None = None
    try:
        raw.decode("utf-8")
        body = kept.decode("utf-8", errors="ignore")  # only a character cut by the cap is lost
    except UnicodeDecodeError:
        body = kept.decode("utf-8", errors="replace")
        b64 = base64.b64encode(kept).decode("ascii")
    if "\x00" in body:  # PostgreSQL text cannot hold NUL
        body = body.replace("\x00", "\ufffd")
        b64 = b64 or base64.b64encode(kept).decode("ascii")
    if truncated:
        reason = f"{reason} [payload truncated to {MAX_DEAD_LETTER_BYTES} of {size} bytes]"
    # the reason may quote what was sent (or the database's error about it): never NUL or a lone surrogate
    reason = reason.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return {
        "received_at": received_at,
        "topic": topic.replace("\x00", "\ufffd").encode("utf-8", "backslashreplace").decode("utf-8"),
        "payload": body,
        "payload_b64": b64,
        "size_bytes": size,
        "truncated": truncated,
        "reason": reason,
    }


class Store:
    """The database: events (de-duplicated by camera and event_id), cameras with their watermark, dead
    letters and the seqs they resolved."""

    def __init__(
        self,
        url: str = DEFAULT_DATABASE_URL,
        *,
        schema: str | None = None,
        migrate: bool = True,
        echo: bool = False,
        timezone: str = "Asia/Ho_Chi_Minh",
        heartbeat_s: float = 10.0,
        events_retention_days: float | None = None,
        max_future_s: float | None = 86400.0,
        topic_prefix: str = "citywatch",
    ) -> None:
        self.url = url
        self.schema = schema
        #: Day rollups start at local midnight of this zone (``server.timezone``).
        self.clock = ru.Clock(timezone)
        #: Edge heartbeat period: how much observed time one heartbeat stands for at most.
        self.heartbeat_s = heartbeat_s
        #: Events older than this are not stored again (their raw copy may be pruned: no re-counting).
        self.events_retention_days = events_retention_days
        #: Events further ahead of the server clock are dead letters (``server.ingest.max_future_s``).
        self.max_future_s = max_future_s
        #: MQTT prefix, for the topic of a dead letter the store writes for one event of a batch.
        self.topic_prefix = topic_prefix
        self.engine: Engine = make_engine(url, schema=schema, echo=echo)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        #: A UTC column's value as SQLAlchemy writes it on this dialect (for the raw SQLite insert).
        dialect = self.engine.dialect
        self._sqlite_time = EventRow.__table__.c.ts.type.dialect_impl(dialect).bind_processor(dialect) or (
            lambda v: v
        )
        from server.history import History

        self.history = History(self)
        #: ``hook(session, newly_stored_events)`` run inside the insert transaction (``server.incidents``).
        self.insert_hooks: list[Any] = []
        if migrate:
            self.migrate()

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> Store:
        """``config`` is a ``CitywatchConfig``: ``server.database_url``; the PostgreSQL schema comes from
        ``schema=`` or else ``$CITYWATCH_DATABASE_SCHEMA`` (the config file has no key for it)."""
        kwargs.setdefault("schema", os.environ.get(ENV_SCHEMA) or None)
        kwargs.setdefault("timezone", config.server.timezone)
        kwargs.setdefault("heartbeat_s", config.server.ingest.heartbeat_s or config.edge.heartbeat_s)
        kwargs.setdefault("events_retention_days", config.server.retention.events_days)
        kwargs.setdefault("max_future_s", config.server.ingest.max_future_s)
        kwargs.setdefault("topic_prefix", config.mqtt.topic_prefix)
        return cls(config.server.database_url, **kwargs)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # --- schema -----------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent; safe with concurrent servers on PG)."""
        cfg = alembic_config()
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                if self.schema:
                    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            cfg.attributes["connection"] = conn
            cfg.attributes["schema"] = self.schema
            command.upgrade(cfg, "head")

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - health reports, never raises
            log.exception("database ping failed")
            return False

    def probe(self, timeout_s: float) -> tuple[Literal["ok", "slow", "down"], str | None]:
        """Whether the database answers a read of ``events``: ``ok``; ``slow`` when PostgreSQL's
        statement or lock timeout (``timeout_s``) ended it (a locked table, an overloaded server);
        ``down`` with the error otherwise. A server that does not answer at all needs the caller's own
        timeout (``server.api.health.DbProbe``)."""
        try:
            with self.engine.connect() as conn:
                if self.dialect == "postgresql":
                    ms = max(1, int(timeout_s * 1000))
                    conn.execute(text(f"SET LOCAL statement_timeout = {ms}"))
                    conn.execute(text(f"SET LOCAL lock_timeout = {ms}"))
                conn.execute(text("SELECT 1 FROM events LIMIT 1"))
                conn.rollback()
            return "ok", None
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            sqlstate = getattr(getattr(exc, "orig", exc), "sqlstate", None)
            if sqlstate in ("57014", "55P03"):  # query_canceled (statement timeout), lock_not_available
                return "slow", f"the database did not answer within {timeout_s:g} s ({db_errors.describe(exc)})"
            log.warning("database probe failed: %s", db_errors.describe(exc))
            return "down", db_errors.describe(exc)

    # --- writes -----------------------------------------------------------------------------------

    def _insert(self, table: Any) -> Any:
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        if self.dialect == "sqlite":
            return sqlite.insert(table)
        raise NotImplementedError(f"dialect {self.dialect} not supported")

    def insert_events(self, events: Iterable[AnyEvent], received_at: datetime | None = None) -> StoredBatch:
        """Store events once each, in one transaction; returns ``(inserted_ids, duplicate_ids)``."""
        with self._session.begin() as s:
            return self._insert_events(s, list(events), received_at or utcnow())

    def store_batch(
        self,
        events: Sequence[AnyEvent],
        dead_letters: Sequence[DeadLetterIn],
        received_at: datetime | None = None,
    ) -> StoredBatch:
        """Events and dead letters of one ingest batch in one transaction (ack only after it)."""
        received_at = received_at or utcnow()
        with self._session.begin() as s:
            result = self._insert_events(s, list(events), received_at)
            self._write_dead_letters(s, dead_letters, received_at)
            return result

    def dead_letter_events(self, letters: Sequence[DeadLetterIn], received_at: datetime | None = None) -> None:
        """Dead letters and the seqs they resolve (``DeadLetterIn.camera_id``/``seqs``), in one transaction.

        For a message found to be permanently unstorable after parsing (a batch bisected down to it):
        build the letter with :meth:`DeadLetterIn.of_events`; the camera's watermark then moves past its
        seqs at its next walk (``apply_cameras`` or ``advance_watermark``)."""
        with self._session.begin() as s:
            self._write_dead_letters(s, letters, received_at or utcnow())

    def _write_dead_letters(self, s: Session, letters: Sequence[DeadLetterIn], received_at: datetime) -> None:
        if not letters:
            return
        table = DeadLetterRow.__table__
        plain = [d for d in letters if not _resolves(d)]
        if plain:
            s.execute(table.insert(), [_dead_letter_row(d.topic, d.payload, d.reason, received_at) for d in plain])
        resolved: list[dict[str, Any]] = []
        for d in letters:
            if _resolves(d):  # rare (a poison message): one insert each, for its id
                row = _dead_letter_row(d.topic, d.payload, d.reason, received_at)
                dl_id = s.execute(table.insert().returning(table.c.id), row).scalar_one()
                resolved.extend(
                    {"camera_id": d.camera_id, "seq": q, "dead_letter_id": dl_id, "resolved_at": received_at}
                    for q in d.seqs
                    if 1 <= q <= MAX_SEQ
                )
        self._resolve_seqs(s, resolved)

    def _resolve_seqs(self, s: Session, rows: list[dict[str, Any]]) -> None:
        if rows:
            s.execute(
                self._insert(ResolvedSeqRow.__table__).on_conflict_do_nothing(index_elements=["camera_id", "seq"]),
                rows,
            )

    def _event_dead_letter(self, ev: AnyEvent, reason: str) -> DeadLetterIn:
        """The dead letter of one event of a batch; its seq is resolved (the camera is the event's own)."""
        topic = Topics(self.topic_prefix).event(ev.site_id, ev.camera_id, ev.kind)
        return DeadLetterIn(topic, ev.model_dump_json(), reason, ev.camera_id, (ev.seq,))

    def _time_fault(self, ev: AnyEvent, lo: float | None, hi: float | None) -> str | None:
        """Why ``ev``'s time cannot be stored (None: it can): before the raw retention (a stored copy may be
        pruned already, so storing it could count it twice, and retention would delete it at once), before
        ``EARLIEST_EVENT_TS`` (a clock reset), or further ahead than ``max_future_s`` (never pruned: an
        edge clock gone wrong)."""
        t = ev.ts.timestamp()
        if lo is not None and t < lo:
            return (
                f"{TIMESTAMP_OUT_OF_RANGE}: ts {ev.ts.isoformat()} is older than the events retention "
                f"({self.events_retention_days:g} days; seq {ev.seq})"
            )
        if t < _EARLIEST_S:
            return (
                f"{TIMESTAMP_OUT_OF_RANGE}: ts {ev.ts.isoformat()} is before {EARLIEST_EVENT_TS.year}: "
                f"an edge clock reset (seq {ev.seq})"
            )
        if hi is not None and t > hi:
            return (
                f"{TIMESTAMP_OUT_OF_RANGE}: ts {ev.ts.isoformat()} is more than {self.max_future_s:g} s ahead of "
                f"the server clock (seq {ev.seq})"
            )
        return None

    def _insert_events(self, s: Session, events: list[AnyEvent], received_at: datetime) -> StoredBatch:
        now = utcnow().timestamp()
        lo = None if self.events_retention_days is None else now - self.events_retention_days * 86400
        hi = None if self.max_future_s is None else now + self.max_future_s
        first: dict[tuple[str, str], AnyEvent] = {}
        repeats: list[tuple[tuple[str, str], AnyEvent]] = []
        dead: list[DeadLetterIn] = []
        for ev in events:
            fault = self._time_fault(ev, lo, hi)
            if fault is not None:
                dead.append(self._event_dead_letter(ev, fault))
                continue
            key = (str(ev.event_id), ev.camera_id)
            if key in first:
                repeats.append((key, ev))
            else:
                first[key] = ev
        #: (event_id, camera_id) -> (seq, payload) of ids stored before this batch
        stored: dict[tuple[str, str], tuple[int, str]] = {}
        if self.dialect == "postgresql":
            # sorted by id: concurrent writers meet shared ids in the same order, so they wait, never deadlock
            rows = sorted(_event_values(eid, first[(eid, cam)], received_at) for eid, cam in first)
            if rows:
                raw = s.connection().connection.driver_connection
                with raw.cursor() as cur:  # type: ignore[union-attr]
                    refused = [] if self._copy_new_events(cur, rows) else self._stage_events(cur, rows)
                if refused:
                    stored = {
                        (r[0], r[1]): (int(r[2]), r[3])
                        for r in s.execute(
                            text(_PG_STORED), {"ids": [k[0] for k in refused], "cams": [k[1] for k in refused]}
                        )
                    }
        else:
            stored = self._sqlite_insert_events(s, first, received_at)
        inserted_ids = [eid for (eid, cam) in first if (eid, cam) not in stored]
        duplicates, resolved = self._judge_duplicates(first, stored, repeats, dead, received_at)
        self._write_dead_letters(s, dead, received_at)
        self._resolve_seqs(s, resolved)
        if inserted_ids:
            new_events = [ev for key, ev in first.items() if key not in stored]
            deltas = ru.event_deltas(self.clock, new_events)
            statuses = [ev for ev in new_events if isinstance(ev, CameraStatus)]
            if statuses:
                ru.observed_deltas(self.clock, self._observation(s, statuses), deltas)
            if deltas:
                ru.upsert(s, self.dialect, deltas)
            for hook in self.insert_hooks:
                hook(s, new_events)
        return StoredBatch(inserted_ids, duplicates, len(dead))

    def _judge_duplicates(
        self,
        first: dict[tuple[str, str], AnyEvent],
        stored: dict[tuple[str, str], tuple[int, str]],
        repeats: list[tuple[tuple[str, str], AnyEvent]],
        dead: list[DeadLetterIn],
        received_at: datetime,
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """Events not inserted because their (camera, id) is known: the same content is a quiet duplicate
        (its seq, when another, is resolved: the event is stored under the first one); other content is a
        dead letter ``conflicting_duplicate`` (appended to ``dead``). Compared only for these few ids."""
        duplicates: list[str] = []
        resolved: list[dict[str, Any]] = []
        known: dict[tuple[str, str], tuple[int, dict[str, Any] | None]] = {
            key: (seq, _stored_content(payload)) for key, (seq, payload) in stored.items()
        }
        candidates = [(key, first[key]) for key in stored]
        for key, ev in repeats:
            if key not in known:  # repeated within the batch, its first copy inserted now
                known[key] = (first[key].seq, _content(first[key]))
            candidates.append((key, ev))
        for key, ev in candidates:
            seq, old = known[key]
            diff = _differences(old, _content(ev))
            if diff:
                dead.append(
                    self._event_dead_letter(
                        ev,
                        f"{CONFLICTING_DUPLICATE}: event {key[0]} of camera {key[1]} is stored already (seq {seq}) "
                        f"with other content ({', '.join(diff)}); this copy has seq {ev.seq}",
                    )
                )
                continue
            duplicates.append(key[0])
            if ev.seq != seq:
                resolved.append(
                    {"camera_id": ev.camera_id, "seq": ev.seq, "dead_letter_id": None, "resolved_at": received_at}
                )
        return duplicates, resolved

    @staticmethod
    def _copy_new_events(cur: Any, rows: list[tuple[Any, ...]]) -> bool:
        """PostgreSQL, when none of ``rows`` is stored yet (nearly always): binary COPY straight into
        ``events``, in a savepoint. False when an id was already stored (a redelivery): the savepoint is
        rolled back and nothing of the copy remains. Measured: 18–27 µs of database CPU per event, where
        the staged insert (:meth:`_stage_events`) takes 39–41."""
        from psycopg import errors

        cur.execute("SAVEPOINT events_copy")
        try:
            _pg_copy_rows(cur, _PG_EVENTS_COPY, rows)
        except errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT events_copy")
            return False
        cur.execute("RELEASE SAVEPOINT events_copy")
        return True

    @staticmethod
    def _stage_events(cur: Any, rows: list[tuple[Any, ...]]) -> list[tuple[str, str]]:
        """PostgreSQL, when some of ``rows`` may be stored: copy them into a temporary table, insert what
        is new with ON CONFLICT DO NOTHING; returns the ``(event_id, camera_id)`` it did not insert."""
        # every time, not once per connection: a rolled-back transaction takes the table along
        cur.execute(_PG_STAGE_CREATE)
        _pg_copy_rows(cur, _PG_STAGE_COPY, rows)
        cur.execute(_PG_STAGE_INSERT)
        refused = [(r[0], r[1]) for r in cur.fetchall()]
        cur.execute("TRUNCATE events_stage")  # empty for a next batch in this transaction too
        return refused

    def _sqlite_insert_events(
        self, s: Session, first: dict[tuple[str, str], AnyEvent], received_at: datetime
    ) -> dict[tuple[str, str], tuple[int, str]]:
        """SQLite: look the ids up, then one ``executemany`` on the session's own sqlite3 connection;
        returns ``(seq, payload)`` of those stored before.

        Why raw: per row, SQLAlchemy's parameter processing and RETURNING cost more than SQLite's insert.
        The look-up runs before SQLite's write lock is taken, so a concurrent writer may store one of the
        ids in between; then fewer rows than given are inserted, and the transaction is rolled back with
        :class:`ConcurrentInsert` for the caller to retry (the retry's look-up finds them).
        """
        raw = s.connection().connection.driver_connection
        cur = raw.cursor()  # type: ignore[union-attr]
        stored: dict[tuple[str, str], tuple[int, str]] = {}
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
            as_time = self._sqlite_time
            received = as_time(received_at)
            rows = []
            for key in fresh:
                r = _event_values(key[0], first[key], received)
                rows.append((*r[:5], as_time(r[5]), *r[6:]))
            cur.executemany(_SQLITE_EVENTS_INSERT, rows)
            if cur.rowcount != len(rows):
                raise ConcurrentInsert(f"{len(rows) - cur.rowcount} of {len(rows)} events were stored meanwhile")
            return stored
        finally:
            cur.close()

    def _camera_state(self, s: Session, camera_id: str) -> CameraStateRow:
        st = s.get(CameraStateRow, camera_id, with_for_update=True)
        if st is None:
            s.execute(
                self._insert(CameraStateRow.__table__)
                .values(camera_id=camera_id, replay_requests=0)
                .on_conflict_do_nothing(index_elements=["camera_id"])
            )
            st = s.get(CameraStateRow, camera_id, with_for_update=True, populate_existing=True)
            assert st is not None
        return st

    def _observation(self, s: Session, statuses: list[CameraStatus]) -> list[tuple[str, float, float]]:
        """Intervals each newly stored heartbeat says its camera was observing.

        A heartbeat with ``source_state == "ok"`` covers the time since the previous heartbeat of that
        camera when that is at most 1.5 heartbeat periods ago (continuous observation), else one period
        (and never more than the edge's uptime). Other states credit nothing: "no vehicles" and
        "camera down" stay apart. A heartbeat older than the cursor (a replay) covers one period; the
        bucket cap keeps overlaps from claiming more time than a bucket has.
        """
        hb = float(self.heartbeat_s)
        out: list[tuple[str, float, float]] = []
        by_cam: dict[str, list[CameraStatus]] = {}
        for st in statuses:
            by_cam.setdefault(st.camera_id, []).append(st)
        for camera_id in sorted(by_cam):
            state = self._camera_state(s, camera_id)
            cursor = state.observed_to_s
            for st in sorted(by_cam[camera_id], key=lambda e: (e.ts, e.seq)):
                t = st.ts.timestamp()
                in_order = cursor is None or t > cursor
                if st.source_state == "ok":
                    span = min(hb, st.uptime_s)
                    if in_order and cursor is not None and t - cursor <= 1.5 * hb:
                        span = min(t - cursor, st.uptime_s)
                    if span > 0:
                        out.append((camera_id, t - span, t))
                if in_order:
                    cursor = t
            if cursor != state.observed_to_s:
                state.observed_to_s = cursor
        return out

    def add_dead_letter(
        self, topic: str, payload: bytes | str, reason: str, received_at: datetime | None = None
    ) -> int:
        row = _dead_letter_row(topic, payload, reason, received_at or utcnow())
        with self._session.begin() as s:
            dl = DeadLetterRow(**row)
            s.add(dl)
            s.flush()
            return dl.id

    def _ensure_camera(self, s: Session, camera_id: str, site_id: str | None) -> CameraRow:
        cam = s.get(CameraRow, camera_id, with_for_update=True)
        if cam is None:
            s.execute(
                self._insert(CameraRow.__table__)
                .values(camera_id=camera_id, site_id=site_id, state="unknown", committed_seq=0)
                .on_conflict_do_nothing(index_elements=["camera_id"])
            )
            cam = s.get(CameraRow, camera_id, with_for_update=True, populate_existing=True)
            assert cam is not None
        return cam

    def advance_watermark(self, camera_id: str, *, floor: int | None = None, site_id: str | None = None) -> int:
        """Move ``committed_seq`` to the highest N with seqs 1..N all stored; returns N.

        ``floor`` (outbox_first_seq - 1 from a status event) lifts the watermark over events the edge
        no longer keeps: they were committed before, or are lost for good (logged as a warning).
        """
        with self._session.begin() as s:
            if site_id is None:
                site_id = s.scalar(select(EventRow.site_id).where(EventRow.camera_id == camera_id).limit(1))
            cam = self._ensure_camera(s, camera_id, site_id)
            return self._walk_watermark(s, cam, floor)[0]

    def _walk_watermark(self, s: Session, cam: CameraRow, floor: int | None) -> tuple[int, int | None]:
        """Advance the locked ``cam`` row's watermark; returns ``(committed, lowest filled seq above it)``.

        A seq is filled when an event with it is stored or it is resolved (``resolved_seqs``)."""
        camera_id = cam.camera_id
        n = start = cam.committed_seq
        if floor is not None and floor > n:
            present = s.scalar(
                text(
                    "SELECT COUNT(*) FROM (SELECT seq FROM events WHERE camera_id = :c AND seq > :n AND seq <= :f "
                    "UNION SELECT seq FROM resolved_seqs WHERE camera_id = :c AND seq > :n AND seq <= :f) u"
                ),
                {"c": camera_id, "n": n, "f": floor},
            )
            missing = (floor - n) - int(present or 0)
            if missing > 0:
                log.warning(
                    "camera %s: edge outbox starts at seq %d; %d event(s) between %d and %d were never "
                    "received and are skipped",
                    camera_id,
                    floor + 1,
                    missing,
                    n + 1,
                    floor,
                )
            n = floor
        above: int | None = None
        while True:
            seqs = s.scalars(_FILLED_ABOVE, {"c": camera_id, "n": n, "lim": _WALK_CHUNK}).all()
            contiguous = True
            for q in seqs:
                if q != n + 1:
                    contiguous = False
                    above = int(q)
                    break
                n = q
            if not contiguous or len(seqs) < _WALK_CHUNK:
                break
        if n != start:
            cam.committed_seq = n
        return n, above

    def _lock_cameras(self, s: Session, sites: dict[str, str | None]) -> dict[str, CameraRow]:
        """The camera rows of ``sites`` (camera -> site), created if missing, locked in camera order."""
        ids = sorted(sites)

        def load() -> dict[str, CameraRow]:
            rows = s.scalars(
                select(CameraRow)
                .where(CameraRow.camera_id.in_(ids))
                .order_by(CameraRow.camera_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).all()
            return {r.camera_id: r for r in rows}

        cams = load()
        missing = [cid for cid in ids if cid not in cams]
        if missing:
            s.execute(
                self._insert(CameraRow.__table__)
                .values(
                    [
                        {"camera_id": cid, "site_id": sites[cid], "state": "unknown", "committed_seq": 0}
                        for cid in missing
                    ]
                )
                .on_conflict_do_nothing(index_elements=["camera_id"])
            )
            cams = load()
        return cams

    def apply_cameras(
        self,
        updates: Sequence[CameraUpdateIn],
        *,
        on_error: Callable[[str, Exception], None] | None = None,
    ) -> dict[str, tuple[int, int | None]]:
        """After a committed batch: every camera's status (``upsert_camera_status``) and, for cameras that
        sent events, its watermark (``advance_watermark``), all in one transaction.

        With ``on_error``, one camera's bad values cannot hold the others back: when the transaction
        fails for a reason that is not transient, each camera is applied alone and a camera that still
        fails is reported as ``on_error(camera_id, exc)`` and left out of the result.

        Returns ``{camera_id: (committed_seq, lowest stored seq above it or None)}`` for those with events.
        """
        if not updates:
            return {}
        try:
            return self._apply_cameras(updates)
        except Exception as exc:
            if on_error is None or db_errors.classify(exc) == "transient":
                raise
            if len(updates) == 1:
                on_error(updates[0].camera_id, exc)
                return {}
            first = exc
        log.warning(
            "updating %d cameras together failed (%s); applying each alone", len(updates), db_errors.describe(first)
        )
        out: dict[str, tuple[int, int | None]] = {}
        for u in updates:
            try:
                out.update(self._apply_cameras([u]))
            except Exception as exc:  # noqa: BLE001 - reported to the caller, the other cameras go on
                on_error(u.camera_id, exc)
        return out

    def _apply_cameras(self, updates: Sequence[CameraUpdateIn]) -> dict[str, tuple[int, int | None]]:
        with self._session.begin() as s:
            cams = self._lock_cameras(s, {u.camera_id: u.site_id for u in updates})
            # the walks read events only: flush the camera rows once, at commit (one executemany)
            s.autoflush = False
            for u in sorted(updates, key=lambda u: u.camera_id):
                cam = cams[u.camera_id]
                self._set_camera_status(
                    cam,
                    u.site_id,
                    seen_at=u.seen_at,
                    state=u.state,
                    status=u.status,
                    config_version=u.config_version,
                    model_version=u.model_version,
                )
            return self._walk_watermarks(s, [(cams[u.camera_id], u.floor) for u in updates if u.has_events])

    def _walk_watermarks(
        self, s: Session, cams: Sequence[tuple[CameraRow, int | None]]
    ) -> dict[str, tuple[int, int | None]]:
        """``_walk_watermark`` for many locked cameras, with one query for all of them in the common case.

        The query (:meth:`_window_query`) finds each camera's run in ``(committed, committed +
        _WALK_CHUNK]``; only a camera whose window is full, whose gap reaches past its window, or that
        has a floor above its watermark needs a query of its own.
        """
        out: dict[str, tuple[int, int | None]] = {}
        quick: list[CameraRow] = []
        for cam, floor in cams:
            if floor is not None and floor > cam.committed_seq:
                out[cam.camera_id] = self._walk_watermark(s, cam, floor)
            else:
                quick.append(cam)
        if not quick:
            return out
        found = {
            row[0]: row[1:]
            for row in s.execute(*self._window_query([(c.camera_id, c.committed_seq) for c in quick]))
        }
        for cam in quick:
            camera_id = cam.camera_id
            start = cam.committed_seq
            run_end, above, top = found.get(camera_id, (None, None, None))
            n = start if run_end is None else int(run_end)
            if n != start:
                cam.committed_seq = n
            if above is None and n == start + _WALK_CHUNK:  # a full window: walk on from there
                out[camera_id] = self._walk_watermark(s, cam, None)
                continue
            if above is None and top is not None and top > n:  # the gap reaches past the window
                above = self._first_seq_above(s, camera_id, n)
            out[camera_id] = (n, None if above is None else int(above))
        return out

    def _window_query(self, marks: list[tuple[str, int]]) -> tuple[Any, dict[str, Any]]:
        """One row per camera: ``(camera_id, run_end, above, top)``.

        In each camera's window ``(n, n + _WALK_CHUNK]`` above its watermark ``n``, ``seq - dense_rank``
        is ``n`` along the contiguous run from ``n + 1`` and larger after its first gap (a seq stored
        twice ranks once): ``run_end`` is where the run ends, ``above`` the first seq after the gap
        (both NULL when absent); ``top`` is the camera's highest stored seq.
        """
        if self.dialect == "postgresql":
            marks_cte = (
                "SELECT * FROM unnest(CAST(:cams AS varchar[]), CAST(:marks AS bigint[])) AS w(camera_id, n)"
            )
            params: dict[str, Any] = {"cams": [m[0] for m in marks], "marks": [m[1] for m in marks]}
            # a watermark near 2^63 - 1 must not overflow bigint in n + window
            window = "{t}.camera_id = w.camera_id AND {t}.seq > w.n AND {t}.seq <= LEAST(w.n, :top_n) + :window"
            params["top_n"] = MAX_SEQ - _WALK_CHUNK

            def source(table: str) -> str:  # LATERAL with LIMIT (never pulled up into a join): one range scan
                cond = window.format(t="e")
                return (
                    f"SELECT w.camera_id, w.n, e.seq FROM w CROSS JOIN LATERAL "
                    f"(SELECT e.seq FROM {table} e WHERE {cond} ORDER BY e.seq LIMIT :window) e"
                )
        else:
            marks_cte = (
                "SELECT json_extract(value, '$[0]') AS camera_id, json_extract(value, '$[1]') AS n "
                "FROM json_each(:marks)"
            )
            params = {"marks": json.dumps(marks)}
            window = "{t}.camera_id = w.camera_id AND {t}.seq > w.n AND {t}.seq <= w.n + :window"  # SQLite: no overflow

            def source(table: str) -> str:  # SQLite loops over w with the (camera_id, seq) index
                return f"SELECT w.camera_id, w.n, e.seq FROM w JOIN {table} e ON {window.format(t='e')}"

        params["window"] = _WALK_CHUNK
        sql = text(
            f"WITH w AS ({marks_cte}), "
            f"f AS ({source('events')} UNION ALL {source('resolved_seqs')}), "
            "r AS (SELECT camera_id, seq, seq - n - DENSE_RANK() OVER (PARTITION BY camera_id ORDER BY seq) AS g "
            "      FROM f), "
            "runs AS (SELECT camera_id, MAX(CASE WHEN g = 0 THEN seq END) AS run_end, "
            "         MIN(CASE WHEN g > 0 THEN seq END) AS above FROM r GROUP BY camera_id) "
            "SELECT w.camera_id, runs.run_end, runs.above, "
            "       (SELECT MAX(t.seq) FROM (SELECT MAX(e.seq) AS seq FROM events e WHERE e.camera_id = w.camera_id "
            "        UNION ALL SELECT MAX(x.seq) FROM resolved_seqs x WHERE x.camera_id = w.camera_id) t) "
            "FROM w LEFT JOIN runs ON runs.camera_id = w.camera_id"
        )
        return sql, params

    def first_seq_above(self, camera_id: str, seq: int) -> int | None:
        """The lowest filled seq above ``seq`` (None: nothing above): ``seq + 1`` up to it is a gap."""
        with self._session() as s:
            return self._first_seq_above(s, camera_id, seq)

    @staticmethod
    def _first_seq_above(s: Session, camera_id: str, seq: int) -> int | None:
        v = s.scalar(
            text(
                "SELECT MIN(u.seq) FROM (SELECT MIN(seq) AS seq FROM events WHERE camera_id = :c AND seq > :n "
                "UNION ALL SELECT MIN(seq) FROM resolved_seqs WHERE camera_id = :c AND seq > :n) u"
            ),
            {"c": camera_id, "n": seq},
        )
        return int(v) if v is not None else None

    def note_replay_request(self, camera_id: str, at: datetime) -> None:
        with self._session.begin() as s:
            st = self._camera_state(s, camera_id)
            st.replay_requests = (st.replay_requests or 0) + 1
            st.last_replay_at = at

    def set_pushed_config(self, camera_id: str, config_json: str, version: str, at: datetime) -> None:
        with self._session.begin() as s:
            st = self._camera_state(s, camera_id)
            st.pushed_config = config_json
            st.pushed_config_version = version
            st.pushed_at = at

    def camera_states(self) -> dict[str, dict[str, Any]]:
        with self._session() as s:
            rows = s.scalars(select(CameraStateRow)).all()
        return {
            r.camera_id: {
                "pushed_config_version": r.pushed_config_version,
                "pushed_config": json.loads(r.pushed_config) if r.pushed_config else None,
                "pushed_at": r.pushed_at,
                "replay_requests": int(r.replay_requests or 0),
                "last_replay_at": r.last_replay_at,
                "observed_to": datetime.fromtimestamp(r.observed_to_s, tz=timezone.utc) if r.observed_to_s else None,
            }
            for r in rows
        }

    # --- API keys (rotation) ----------------------------------------------------------------------

    def add_api_key(self, role: str, name: str, key_hash: str, prefix: str) -> int:
        with self._session.begin() as s:
            row = ApiKeyRow(role=role, name=name, key_hash=key_hash, prefix=prefix, created_at=utcnow())
            s.add(row)
            s.flush()
            return int(row.id)

    def revoke_api_key(self, key_id: int) -> bool:
        with self._session.begin() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            return True

    def list_api_keys(self) -> list[dict[str, Any]]:
        with self._session() as s:
            rows = s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id)).all()
        return [
            {
                "id": r.id,
                "role": r.role,
                "name": r.name,
                "prefix": r.prefix,
                "created_at": r.created_at,
                "revoked_at": r.revoked_at,
                "key_hash": r.key_hash,
            }
            for r in rows
        ]

    def active_key_hashes(self) -> dict[str, str]:
        """``{sha256 hex: role}`` of keys not revoked."""
        with self._session() as s:
            return dict(
                s.execute(select(ApiKeyRow.key_hash, ApiKeyRow.role).where(ApiKeyRow.revoked_at.is_(None))).all()
            )

    def revoke_session(self, session_id: str, expires_at: datetime) -> None:
        """Log-out: the session stays refused until ``expires_at`` (when it would have ended anyway)."""
        with self._session.begin() as s:
            if s.get(RevokedSessionRow, session_id) is None:
                s.add(RevokedSessionRow(session_id=session_id, expires_at=expires_at))

    def is_session_revoked(self, session_id: str) -> bool:
        """A log-out ended this session (checked on every cookie-authenticated request: a primary-key read)."""
        with self._session() as s:
            return s.get(RevokedSessionRow, session_id) is not None

    def prune_revoked_sessions(self, now: datetime | None = None) -> int:
        """Forget revocations of sessions that have expired (their tokens are refused anyway)."""
        with self._session.begin() as s:
            table = RevokedSessionRow.__table__
            return int(s.execute(table.delete().where(table.c.expires_at <= (now or utcnow()))).rowcount)

    # --- retention --------------------------------------------------------------------------------

    def apply_retention(self, retention: Any, now: datetime | None = None) -> dict[str, int]:
        """Delete what is older than each table's retention (``server.retention``); returns rows deleted."""
        now_s = (now or utcnow()).timestamp()
        deleted: dict[str, int] = {}

        def horizon(days: float | None) -> float | None:
            return None if days is None else now_s - days * 86400

        with self._session.begin() as s:
            h = horizon(retention.events_days)
            if h is not None:
                deleted["events"] = s.execute(EventRow.__table__.delete().where(EventRow.ts_s < h)).rowcount
            # a resolved seq matters only until the watermark passed it
            deleted["resolved_seqs"] = s.execute(
                text(
                    "DELETE FROM resolved_seqs WHERE seq <= "
                    "(SELECT c.committed_seq FROM cameras c WHERE c.camera_id = resolved_seqs.camera_id)"
                )
            ).rowcount
            h = horizon(retention.dead_letters_days)
            if h is not None:
                cutoff = datetime.fromtimestamp(h, tz=timezone.utc)
                deleted["dead_letters"] = s.execute(
                    DeadLetterRow.__table__.delete().where(DeadLetterRow.received_at < cutoff)
                ).rowcount
            for res in RESOLUTIONS:
                h = horizon(getattr(retention, f"rollup_{res}_days"))
                if h is None:
                    continue
                for fam in (FLOW_TABLES, ZONE_TABLES, OD_TABLES, OBSERVED_TABLES):
                    t = fam[res]
                    deleted[t.name] = s.execute(t.delete().where(t.c.bucket < h)).rowcount
        return deleted

    def upsert_camera_status(
        self,
        camera_id: str,
        site_id: str | None = None,
        *,
        seen_at: datetime | None = None,
        state: CameraState | None = None,
        status: CameraStatus | None = None,
        config_version: str | None = None,
        model_version: str | None = None,
    ) -> None:
        """Record that a camera was heard from: last seen, state, newest status heartbeat, versions."""
        with self._session.begin() as s:
            cam = self._ensure_camera(s, camera_id, site_id)
            self._set_camera_status(
                cam,
                site_id,
                seen_at=seen_at,
                state=state,
                status=status,
                config_version=config_version,
                model_version=model_version,
            )

    @staticmethod
    def _set_camera_status(
        cam: CameraRow,
        site_id: str | None,
        *,
        seen_at: datetime | None,
        state: CameraState | None,
        status: CameraStatus | None,
        config_version: str | None,
        model_version: str | None,
    ) -> None:
        if site_id and cam.site_id != site_id:
            cam.site_id = site_id
        if seen_at is not None:
            if cam.first_seen is None:
                cam.first_seen = seen_at
            if cam.last_seen is None or seen_at > cam.last_seen:
                cam.last_seen = seen_at
        if state and cam.state != state:
            cam.state = state
        if status is not None:
            old_seq = -1
            if cam.last_status:
                try:
                    old_seq = int(json.loads(cam.last_status).get("seq", -1))
                except (ValueError, TypeError, AttributeError):
                    old_seq = -1
            if status.seq >= old_seq:  # a redelivered old heartbeat must not hide a newer one
                cam.last_status = status.model_dump_json()
        if config_version and cam.config_version != config_version:
            cam.config_version = config_version
        if model_version and cam.model_version != model_version:
            cam.model_version = model_version

    # --- reads ------------------------------------------------------------------------------------

    def list_cameras(self) -> list[dict[str, Any]]:
        with self._session() as s:
            rows = s.scalars(select(CameraRow).order_by(CameraRow.camera_id)).all()
        out = []
        for r in rows:
            status = None
            if r.last_status:
                try:
                    status = json.loads(r.last_status)
                except ValueError:
                    status = None
            out.append(
                {
                    "camera_id": r.camera_id,
                    "site_id": r.site_id,
                    "name": r.name,
                    "lat": r.lat,
                    "lon": r.lon,
                    "first_seen": r.first_seen,
                    "last_seen": r.last_seen,
                    "state": r.state,
                    "last_status": status,
                    "config_version": r.config_version,
                    "model_version": r.model_version,
                    "committed_seq": r.committed_seq,
                }
            )
        return out

    def committed_seqs(self) -> dict[str, int]:
        with self._session() as s:
            return {cid: int(seq) for cid, seq in s.execute(select(CameraRow.camera_id, CameraRow.committed_seq))}

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
        from server.history import FlowFilter, epoch_bounds

        lo, hi = epoch_bounds(start, end)
        flt = FlowFilter(
            camera_ids=[camera_id] if camera_id else None, line_id=line_id, direction=direction, class_name=class_name
        )
        cells = self.history.flow(lo, hi, bucket_s=bucket_s, offset_s=tz_offset_s, flt=flt)
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

    def recent_events(
        self, *, camera_id: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        stmt = select(EventRow.payload, EventRow.received_at)
        if camera_id:
            stmt = stmt.where(EventRow.camera_id == camera_id)
        if kind:
            stmt = stmt.where(EventRow.kind == kind)
        stmt = stmt.order_by(EventRow.ts_s.desc(), EventRow.seq.desc()).limit(limit)
        with self._session() as s:
            rows = s.execute(stmt).all()
        out = []
        for payload, received_at in rows:
            item = json.loads(payload)
            item["received_at"] = received_at.isoformat()
            out.append(item)
        return out

    def list_dead_letters(self, limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        with self._session() as s:
            total = int(s.scalar(select(func.count()).select_from(DeadLetterRow)) or 0)
            rows = s.scalars(select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit).offset(offset)).all()
        items = [
            {
                "id": r.id,
                "received_at": r.received_at,
                "topic": r.topic,
                "reason": r.reason,
                "payload": r.payload,
                "payload_b64": r.payload_b64,
                "size_bytes": r.size_bytes,
                "truncated": r.truncated,
            }
            for r in rows
        ]
        return items, total

    def count_events(self, camera_id: str | None = None) -> int:
        stmt = select(func.count()).select_from(EventRow)
        if camera_id:
            stmt = stmt.where(EventRow.camera_id == camera_id)
        with self._session() as s:
            return int(s.scalar(stmt) or 0)
