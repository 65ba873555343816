"""The event writer: stores each event once, in one transaction with the batch's dead letters, and
runs the insert hooks (rollups, incidents) on the newly stored events inside that transaction.

Why hooks: a rollup row or an incident is written exactly when its event is (a crash between the two
is impossible) and a redelivered event (a duplicate) is never applied twice. The writers that need
this implement :class:`InsertHook` and are registered with :meth:`EventWriter.add_hook`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citywatch.contract import AnyEvent, Event, Topics, utcnow
from server.storage.database import Database
from server.storage.dead_letters import DeadLetterIn, DeadLetters
from server.storage.event_rows import EventKey, StoredCopy, pg_insert_events, sqlite_insert_events
from server.storage.models import EventRow, table_of

#: No citywatch camera recorded anything before this: an earlier event time is an edge clock reset (to
#: 1970 or 2000, as dead RTCs and GPS resets give), refused even where raw events are kept forever.
EARLIEST_EVENT_TS = datetime(2001, 1, 1, tzinfo=timezone.utc)
_EARLIEST_S = EARLIEST_EVENT_TS.timestamp()

#: Dead-letter reasons the store gives itself (the text after the colon explains the case).
TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
CONFLICTING_DUPLICATE = "conflicting_duplicate"

#: What an event says, for telling a redelivery (quiet duplicate) from a conflicting one: all but the
#: seq and the edge-clock times, which the edge legitimately changes when it renumbers its outbox or
#: re-runs a clip (the ids are deterministic so that a re-run de-duplicates), and the schema version
#: (a format, not content). Another model or configuration version is other content.
_NOT_CONTENT: set[str] = {"schema_version", "seq", "ts", "started_at", "ended_at"}
_event_adapter: TypeAdapter[AnyEvent] = TypeAdapter(Event)

Content = dict[str, Any]


def _content(ev: AnyEvent) -> Content:
    return ev.model_dump(mode="json", exclude=_NOT_CONTENT)


def _stored_content(payload: str) -> Content | None:
    """The content of a stored payload as the current contract reads it (None: it no longer reads)."""
    try:
        return _content(_event_adapter.validate_json(payload))
    except ValidationError:
        return None


def _differences(old: Content | None, new: Content) -> list[str]:
    if old is None:
        return ["the stored copy no longer validates"]
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


class InsertHook(Protocol):
    """Runs inside the insert transaction ``s`` with the events this batch stored for the first time
    (never duplicates); raising rolls the whole batch back."""

    def __call__(self, s: Session, events: list[AnyEvent], /) -> None: ...


class StoredBatch(tuple[list[str], list[str]]):
    """``(inserted_ids, duplicate_ids)`` of a batch, as a pair, plus ``dead_letters``: how many of its
    events the store itself dead-lettered (timestamp out of range, conflicting duplicate)."""

    dead_letters: int = 0

    def __new__(cls, inserted: list[str], duplicates: list[str], dead_letters: int = 0) -> StoredBatch:
        self = super().__new__(cls, (inserted, duplicates))
        self.dead_letters = dead_letters
        return self


class EventWriter:
    """Events de-duplicated by ``(event_id, camera_id)``; the store's own dead letters for events whose
    time is out of range or whose id is stored with other content."""

    def __init__(
        self,
        db: Database,
        dead_letters: DeadLetters,
        *,
        events_retention_days: float | None = None,
        max_future_s: float | None = 86400.0,
        topic_prefix: str = "citywatch",
    ) -> None:
        self.db = db
        self.dead_letters = dead_letters
        #: Events older than this are not stored again (their raw copy may be pruned: no re-counting).
        self.events_retention_days = events_retention_days
        #: Events further ahead of the server clock are dead letters (``server.ingest.max_future_s``).
        self.max_future_s = max_future_s
        #: MQTT prefix, for the topic of a dead letter the store writes for one event of a batch.
        self.topic_prefix = topic_prefix
        #: Run in order on every batch's newly stored events (:class:`InsertHook`).
        self.hooks: list[InsertHook] = []
        #: A UTC column's value as SQLAlchemy writes it on this dialect (for the raw SQLite insert).
        dialect = db.engine.dialect
        processor = table_of(EventRow).c.ts.type.dialect_impl(dialect).bind_processor(dialect)
        self._sqlite_time: Callable[[Any], Any] = processor or (lambda v: v)

    def add_hook(self, hook: InsertHook) -> None:
        self.hooks.append(hook)

    def insert_events(self, events: Iterable[AnyEvent], received_at: datetime | None = None) -> StoredBatch:
        """Store events once each, in one transaction; returns ``(inserted_ids, duplicate_ids)``."""
        with self.db.session.begin() as s:
            return self.write(s, list(events), received_at or utcnow())

    def store_batch(
        self,
        events: Sequence[AnyEvent],
        dead_letters: Sequence[DeadLetterIn],
        received_at: datetime | None = None,
    ) -> StoredBatch:
        """Events and dead letters of one ingest batch in one transaction (ack only after it)."""
        received_at = received_at or utcnow()
        with self.db.session.begin() as s:
            result = self.write(s, list(events), received_at)
            self.dead_letters.write(s, dead_letters, received_at)
            return result

    def write(self, s: Session, events: list[AnyEvent], received_at: datetime) -> StoredBatch:
        """``events`` inside the caller's transaction ``s``; hooks run on the newly stored ones."""
        now = utcnow().timestamp()
        lo = None if self.events_retention_days is None else now - self.events_retention_days * 86400
        hi = None if self.max_future_s is None else now + self.max_future_s
        first: dict[EventKey, AnyEvent] = {}
        repeats: list[tuple[EventKey, AnyEvent]] = []
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
        stored: dict[EventKey, StoredCopy]  # ids stored before this batch
        if self.db.dialect == "postgresql":
            stored = pg_insert_events(s, first, received_at)
        else:
            stored = sqlite_insert_events(s, first, received_at, self._sqlite_time)
        inserted_ids = [eid for (eid, cam) in first if (eid, cam) not in stored]
        duplicates, resolved = self._judge_duplicates(first, stored, repeats, dead, received_at)
        self.dead_letters.write(s, dead, received_at)
        self.dead_letters.resolve_seqs(s, resolved)
        if inserted_ids:
            new_events = [ev for key, ev in first.items() if key not in stored]
            for hook in self.hooks:
                hook(s, new_events)
        return StoredBatch(inserted_ids, duplicates, len(dead))

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

    def _judge_duplicates(
        self,
        first: dict[EventKey, AnyEvent],
        stored: dict[EventKey, StoredCopy],
        repeats: list[tuple[EventKey, AnyEvent]],
        dead: list[DeadLetterIn],
        received_at: datetime,
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """Events not inserted because their (camera, id) is known: the same content is a quiet duplicate
        (its seq, when another, is resolved: the event is stored under the first one); other content is a
        dead letter ``conflicting_duplicate`` (appended to ``dead``). Compared only for these few ids."""
        duplicates: list[str] = []
        resolved: list[dict[str, Any]] = []
        known: dict[EventKey, tuple[int, Content | None]] = {
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


class EventLog:
    """Reads of raw events (the dashboard's recent list, counts for health and tests)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def recent_events(
        self, *, camera_id: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first (event time, then seq), each with its ``received_at``."""
        stmt = select(EventRow.payload, EventRow.received_at)
        if camera_id:
            stmt = stmt.where(EventRow.camera_id == camera_id)
        if kind:
            stmt = stmt.where(EventRow.kind == kind)
        stmt = stmt.order_by(EventRow.ts_s.desc(), EventRow.seq.desc()).limit(limit)
        with self.db.session() as s:
            rows = s.execute(stmt).all()
        out = []
        for payload, received_at in rows:
            item = json.loads(payload)
            item["received_at"] = received_at.isoformat()
            out.append(item)
        return out

    def count_events(self, camera_id: str | None = None) -> int:
        stmt = select(func.count()).select_from(EventRow)
        if camera_id:
            stmt = stmt.where(EventRow.camera_id == camera_id)
        with self.db.session() as s:
            return int(s.scalar(stmt) or 0)
