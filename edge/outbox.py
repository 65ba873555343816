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

Bounded size (``max_events`` per camera): when full, :func:`edge.compaction.shrink_suffix` drops
heartbeats and zone reports and merges crossings into totals in the never-published suffix, which is
renumbered contiguously after the last published seq (see :mod:`edge.compaction`). The same database
also keeps each file source's checkpoint (``positions``) and each camera's last pushed configuration
(``applied_config``), so both survive kill -9 and power loss.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from edge.compaction import Compaction, CompactionLog, shrink_suffix
from edge.merged import AnyEvent
from edge.merged import stored_adapter as _event_adapter

__all__ = ["Compaction", "Outbox", "Position", "StoredEvent"]

E = TypeVar("E", bound=AnyEvent)

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
CREATE TABLE IF NOT EXISTS positions (
    camera_id  TEXT PRIMARY KEY,
    source_key TEXT    NOT NULL,
    pass_no    INTEGER NOT NULL,
    frame_index INTEGER NOT NULL,
    ended      INTEGER NOT NULL DEFAULT 0,
    updated_at REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS applied_config (
    camera_id    TEXT PRIMARY KEY,
    version      TEXT NOT NULL,
    base_version TEXT NOT NULL,
    camera_json  TEXT NOT NULL,
    applied_at   REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Position:
    """Where a file source was: the last frame whose results are in the outbox."""

    source_key: str
    pass_no: int
    frame_index: int
    ended: bool


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

    def event(self) -> AnyEvent:
        return _event_adapter.validate_json(self.payload)


_COLS = "camera_id, seq, kind, event_id, payload, sent_at, send_count"
_INSERT = (
    "INSERT INTO events (camera_id, seq, kind, event_id, payload, created_at) "
    "VALUES (?, ?, ?, ?, ?, strftime('%s','now'))"
)


class Outbox:
    """Per-camera durable queue of events keyed by ``(camera_id, seq)``."""

    def __init__(self, path: str | Path, *, max_events: int | None = None, merge_interval_s: int = 900) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.merge_interval_s = merge_interval_s
        self._compaction_log = CompactionLog()
        #: per camera, the totals of what compactions did
        self.compactions: dict[str, Compaction] = self._compaction_log.totals
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so seq assignment is atomic.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._closed = False

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any error); the caller holds the lock."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _insert(self, camera_id: str, seq: int, event: AnyEvent) -> None:
        self._db.execute(_INSERT, (camera_id, seq, event.kind, str(event.event_id), event.model_dump_json()))

    # --- writing ---------------------------------------------------------------------------

    def append(self, camera_id: str, make_event: Callable[[int], E], position: tuple[str, int, int] | None = None) -> E:
        """Assign the next seq, build the event with it and store its JSON, in one transaction.

        ``make_event(seq)`` must return an event whose ``seq`` is the one given; the stored JSON is
        exactly what will be published, so a re-send is byte-identical. ``position`` =
        ``(source_key, pass_no, frame_index)`` is checkpointed in the same transaction.
        """
        return self.append_many(camera_id, [make_event], position)[0]

    def append_many(
        self, camera_id: str, makers: Sequence[Callable[[int], E]], position: tuple[str, int, int] | None = None
    ) -> list[E]:
        """Append several events (e.g. every result of one frame) and the checkpoint atomically:
        after a crash, either all of a frame's events are stored and the position is past it, or
        none is and the frame is read again."""
        if (
            self.max_events is not None
            and makers
            and self._compaction_log.due(camera_id, self.depth(camera_id), len(makers), self.max_events)
        ):
            self.compact(camera_id)
        out: list[E] = []
        with self._lock, self._transaction() as db:
            row = db.execute("SELECT last_seq FROM cameras WHERE camera_id=?", (camera_id,)).fetchone()
            seq = row[0] if row else 0
            for make_event in makers:
                seq += 1
                event = make_event(seq)
                if event.seq != seq or event.camera_id != camera_id:
                    raise ValueError(
                        f"make_event returned seq={event.seq} camera={event.camera_id}, "
                        f"expected seq={seq} camera={camera_id}"
                    )
                self._insert(camera_id, seq, event)
                out.append(event)
            if out:
                db.execute(
                    "INSERT INTO cameras (camera_id, last_seq) VALUES (?, ?) "
                    "ON CONFLICT(camera_id) DO UPDATE SET last_seq=excluded.last_seq",
                    (camera_id, seq),
                )
            if position is not None:
                self._save_position(camera_id, *position, ended=False)
        return out

    def compact(self, camera_id: str, target: int | None = None) -> Compaction:
        """Shrink the never-published suffix to ``target`` events (default 80 % of ``max_events``).

        See :mod:`edge.compaction` for the policy. Returns what was done; runs in one transaction.
        """
        limit = self.max_events or 0
        target = int(limit * 0.8) if target is None else target
        res = Compaction(interval_s=self.merge_interval_s)
        with self._lock, self._transaction() as db:
            res.before = db.execute("SELECT COUNT(*) FROM events WHERE camera_id=?", (camera_id,)).fetchone()[0]
            floor = max(
                db.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM events WHERE camera_id=? AND send_count>0", (camera_id,)
                ).fetchone()[0],
                db.execute(
                    "SELECT COALESCE(MAX(committed_seq), 0) FROM cameras WHERE camera_id=?", (camera_id,)
                ).fetchone()[0],
            )
            rows = db.execute(
                "SELECT kind, payload FROM events WHERE camera_id=? AND seq>? ORDER BY seq", (camera_id, floor)
            ).fetchall()
            fixed = res.before - len(rows)  # published or committed: untouchable
            kept = shrink_suffix(rows, fixed=fixed, target=target, merge_interval_s=self.merge_interval_s, res=res)
            # renumber the suffix contiguously after the floor
            db.execute("DELETE FROM events WHERE camera_id=? AND seq>?", (camera_id, floor))
            seq = floor
            for ev in kept:
                seq += 1
                self._insert(camera_id, seq, ev.model_copy(update={"seq": seq}))
            if rows:
                db.execute("UPDATE cameras SET last_seq=? WHERE camera_id=?", (seq, camera_id))
        res.after = fixed + len(kept)
        self._compaction_log.record(camera_id, res, limit)
        return res

    # --- file checkpoints and pushed configurations ------------------------------------------

    def _save_position(self, camera_id: str, source_key: str, pass_no: int, frame_index: int, *, ended: bool) -> None:
        self._db.execute(
            "INSERT INTO positions (camera_id, source_key, pass_no, frame_index, ended, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(camera_id) DO UPDATE SET source_key=excluded.source_key, "
            "pass_no=excluded.pass_no, frame_index=excluded.frame_index, ended=excluded.ended, "
            "updated_at=excluded.updated_at "
            "WHERE excluded.source_key != positions.source_key OR excluded.ended > positions.ended "
            "OR (excluded.pass_no, excluded.frame_index) > (positions.pass_no, positions.frame_index)",
            (camera_id, source_key, pass_no, frame_index, int(ended), time.time()),
        )

    def save_position(
        self, camera_id: str, source_key: str, pass_no: int, frame_index: int, *, ended: bool = False
    ) -> None:
        """Checkpoint a file source (never moves backwards within the same file)."""
        with self._lock:
            self._save_position(camera_id, source_key, pass_no, frame_index, ended=ended)

    def position(self, camera_id: str) -> Position | None:
        with self._lock:
            row = self._db.execute(
                "SELECT source_key, pass_no, frame_index, ended FROM positions WHERE camera_id=?", (camera_id,)
            ).fetchone()
        return Position(row[0], row[1], row[2], bool(row[3])) if row else None

    def clear_position(self, camera_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM positions WHERE camera_id=?", (camera_id,))

    def save_config(self, camera_id: str, version: str, base_version: str, camera: dict[str, Any]) -> None:
        """Keep the pushed configuration a camera runs, with the file's version it replaced."""
        with self._lock:
            self._db.execute(
                "INSERT INTO applied_config (camera_id, version, base_version, camera_json, applied_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(camera_id) DO UPDATE SET version=excluded.version, "
                "base_version=excluded.base_version, camera_json=excluded.camera_json, applied_at=excluded.applied_at",
                (camera_id, version, base_version, json.dumps(camera, sort_keys=True), time.time()),
            )

    def applied_config(self, camera_id: str) -> tuple[str, str, dict[str, Any]] | None:
        """``(version, base_version, camera dict)`` of the last pushed configuration, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT version, base_version, camera_json FROM applied_config WHERE camera_id=?", (camera_id,)
            ).fetchone()
        return (row[0], row[1], json.loads(row[2])) if row else None

    def clear_config(self, camera_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM applied_config WHERE camera_id=?", (camera_id,))

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
        with self._lock, self._transaction() as db:
            cur = db.execute("DELETE FROM events WHERE camera_id=? AND seq<=?", (camera_id, seq))
            db.execute(
                "INSERT INTO cameras (camera_id, committed_seq) VALUES (?, ?) "
                "ON CONFLICT(camera_id) DO UPDATE SET "
                "committed_seq=MAX(committed_seq, excluded.committed_seq)",
                (camera_id, seq),
            )
        return cur.rowcount

    def rebase(self, camera_id: str, after_seq: int) -> int:
        """Renumber the kept events to ``after_seq+1, ...`` (same event_id, rewritten JSON).

        For when the server's committed watermark is beyond the last seq this outbox ever assigned:
        the outbox was deleted or replaced, and its fresh seqs would otherwise be taken as already
        committed and deleted unsent. Returns how many events were renumbered.
        """
        with self._lock, self._transaction() as db:
            rows = db.execute("SELECT payload FROM events WHERE camera_id=? ORDER BY seq", (camera_id,)).fetchall()
            db.execute("DELETE FROM events WHERE camera_id=?", (camera_id,))
            seq = after_seq
            for (payload,) in rows:
                seq += 1
                self._insert(camera_id, seq, _event_adapter.validate_json(payload).model_copy(update={"seq": seq}))
            db.execute(
                "INSERT INTO cameras (camera_id, last_seq, committed_seq) VALUES (?, ?, ?) "
                "ON CONFLICT(camera_id) DO UPDATE SET last_seq=excluded.last_seq, "
                "committed_seq=excluded.committed_seq",
                (camera_id, seq, after_seq),
            )
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

    def _scalar(self, sql: str, args: tuple[Any, ...]) -> int | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
            return int(row[0]) if row and row[0] is not None else None

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
