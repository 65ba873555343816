"""The durable outbox: every event is written here *before* it is published, and deleted only
after the server says it has stored it (``ControlCommitted``), never on a broker PUBACK.

Why SQLite in WAL mode with ``synchronous=FULL``: an appended event gets its ``seq`` in the same
transaction that stores it, and it may be published right after. With ``synchronous=NORMAL`` a
power cut (not a process crash; WAL+NORMAL already survives kill -9) could roll back the last
transactions, and the edge would then hand out the same ``seq`` again for a *different* event the
server has already seen under that seq. FULL fsyncs the WAL on each commit; crossings come at a few
per second per camera, so the fsync cost is irrelevant and seq uniqueness holds across power loss.

Thread safety: one connection guarded by one lock (the vision threads append, the sender threads
read and delete; contention is tiny at these rates).

The ``seq`` counter lives in its own table (``cameras.last_seq``), not in ``max(seq)`` of the kept
events, so it keeps increasing after everything has been committed and deleted.

Bounded size and the full-outbox policy (drop oldest status events first, then refuse or drop
crossings with an alarm) come later (issue 4): today the outbox grows while the server is away.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from citywatch.contract import CameraStatus, Event, LineCrossing

_event_adapter: TypeAdapter[Any] = TypeAdapter(Event)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cameras (
    camera_id     TEXT PRIMARY KEY,
    last_seq      INTEGER NOT NULL DEFAULT 0,
    committed_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    camera_id  TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    event_id   TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    created_at REAL    NOT NULL,
    sent_at    REAL,
    send_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (camera_id, seq)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class StoredEvent:
    """One kept event: ``payload`` is the exact JSON that is (re-)published."""

    camera_id: str
    seq: int
    kind: str
    event_id: str
    payload: str
    sent_at: float | None
    send_count: int

    def event(self) -> LineCrossing | CameraStatus:
        return _event_adapter.validate_json(self.payload)


_COLS = "camera_id, seq, kind, event_id, payload, sent_at, send_count"


class Outbox:
    """Per-camera durable queue of events keyed by ``(camera_id, seq)``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so seq assignment is atomic.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._closed = False

    # --- writing ---------------------------------------------------------------------------

    def append(self, camera_id: str, make_event: Callable[[int], LineCrossing | CameraStatus]) -> Any:
        """Assign the next seq, build the event with it and store its JSON, in one transaction.

        ``make_event(seq)`` must return an event whose ``seq`` is the one given; the stored JSON is
        exactly what will be published, so a re-send is byte-identical.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT last_seq FROM cameras WHERE camera_id=?", (camera_id,)).fetchone()
                seq = (row[0] if row else 0) + 1
                event = make_event(seq)
                if event.seq != seq or event.camera_id != camera_id:
                    raise ValueError(
                        f"make_event returned seq={event.seq} camera={event.camera_id}, "
                        f"expected seq={seq} camera={camera_id}"
                    )
                self._db.execute(
                    "INSERT INTO events (camera_id, seq, kind, event_id, payload, created_at) "
                    "VALUES (?, ?, ?, ?, ?, strftime('%s','now'))",
                    (camera_id, seq, event.kind, str(event.event_id), event.model_dump_json()),
                )
                self._db.execute(
                    "INSERT INTO cameras (camera_id, last_seq) VALUES (?, ?) "
                    "ON CONFLICT(camera_id) DO UPDATE SET last_seq=excluded.last_seq",
                    (camera_id, seq),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return event

    def mark_sent(self, camera_id: str, seqs: Iterable[int], now: float) -> None:
        seqs = list(seqs)
        if not seqs:
            return
        with self._lock:
            self._db.executemany(
                "UPDATE events SET sent_at=?, send_count=send_count+1 WHERE camera_id=? AND seq=?",
                [(now, camera_id, s) for s in seqs],
            )

    def mark_unsent(self, camera_id: str) -> None:
        """Make every kept event due now (after a reconnect, when the broker may have lost them)."""
        with self._lock:
            self._db.execute("UPDATE events SET sent_at=NULL WHERE camera_id=? AND sent_at IS NOT NULL", (camera_id,))

    def commit_up_to(self, camera_id: str, seq: int) -> int:
        """The server stored every event ``<= seq``: delete them; returns how many were deleted."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute("DELETE FROM events WHERE camera_id=? AND seq<=?", (camera_id, seq))
                self._db.execute(
                    "INSERT INTO cameras (camera_id, committed_seq) VALUES (?, ?) "
                    "ON CONFLICT(camera_id) DO UPDATE SET "
                    "committed_seq=MAX(committed_seq, excluded.committed_seq)",
                    (camera_id, seq),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return cur.rowcount

    def rebase(self, camera_id: str, after_seq: int) -> int:
        """Renumber the kept events to ``after_seq+1, ...`` (same event_id, rewritten JSON).

        For when the server's committed watermark is beyond the last seq this outbox ever assigned:
        the outbox was deleted or replaced, and its fresh seqs would otherwise be taken as already
        committed and deleted unsent. Returns how many events were renumbered.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT seq, payload FROM events WHERE camera_id=? ORDER BY seq", (camera_id,)
                ).fetchall()
                self._db.execute("DELETE FROM events WHERE camera_id=?", (camera_id,))
                seq = after_seq
                for _old, payload in rows:
                    seq += 1
                    ev = _event_adapter.validate_json(payload).model_copy(update={"seq": seq})
                    self._db.execute(
                        "INSERT INTO events (camera_id, seq, kind, event_id, payload, created_at) "
                        "VALUES (?, ?, ?, ?, ?, strftime('%s','now'))",
                        (camera_id, seq, ev.kind, str(ev.event_id), ev.model_dump_json()),
                    )
                self._db.execute(
                    "INSERT INTO cameras (camera_id, last_seq, committed_seq) VALUES (?, ?, ?) "
                    "ON CONFLICT(camera_id) DO UPDATE SET last_seq=excluded.last_seq, "
                    "committed_seq=excluded.committed_seq",
                    (camera_id, seq, after_seq),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return len(rows)

    # --- reading ---------------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[StoredEvent]:
        with self._lock:
            return [StoredEvent(*r) for r in self._db.execute(sql, args).fetchall()]

    def pending(self, camera_id: str, limit: int = 1000) -> list[StoredEvent]:
        """Kept (not yet committed) events, oldest first."""
        return self._rows(f"SELECT {_COLS} FROM events WHERE camera_id=? ORDER BY seq LIMIT ?", (camera_id, limit))

    def due_for_send(
        self, camera_id: str, now: float, resend_after_s: float, limit: int, max_seq: int | None = None
    ) -> list[StoredEvent]:
        """Never-sent events and those sent more than ``resend_after_s`` ago, in seq order.

        ``max_seq`` bounds the window (the sender passes ``first_seq + max_inflight - 1``) so that,
        while the committed watermark is stuck, only the oldest uncommitted events are re-sent.
        """
        return self._rows(
            f"SELECT {_COLS} FROM events WHERE camera_id=? AND seq<=? "
            "AND (sent_at IS NULL OR sent_at<=?) ORDER BY seq LIMIT ?",
            (camera_id, max_seq if max_seq is not None else 2**62, now - resend_after_s, limit),
        )

    def range(self, camera_id: str, from_seq: int, to_seq: int | None = None, limit: int = 100000) -> list[StoredEvent]:
        return self._rows(
            f"SELECT {_COLS} FROM events WHERE camera_id=? AND seq>=? AND seq<=? ORDER BY seq LIMIT ?",
            (camera_id, from_seq, to_seq if to_seq is not None else 2**62, limit),
        )

    def _scalar(self, sql: str, args: tuple[Any, ...]) -> Any:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
            return row[0] if row else None

    def depth(self, camera_id: str) -> int:
        return int(self._scalar("SELECT COUNT(*) FROM events WHERE camera_id=?", (camera_id,)) or 0)

    def first_seq(self, camera_id: str) -> int | None:
        """Lowest seq still kept, or None when everything was committed."""
        return self._scalar("SELECT MIN(seq) FROM events WHERE camera_id=?", (camera_id,))

    def last_seq(self, camera_id: str) -> int:
        """Highest seq ever assigned to this camera (0 if none), kept even after commits."""
        return int(self._scalar("SELECT last_seq FROM cameras WHERE camera_id=?", (camera_id,)) or 0)

    def committed_seq(self, camera_id: str) -> int:
        return int(self._scalar("SELECT committed_seq FROM cameras WHERE camera_id=?", (camera_id,)) or 0)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
