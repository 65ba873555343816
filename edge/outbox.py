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

Bounded size (``max_events`` per camera) and the policy when full, applied by :meth:`Outbox.compact`
only to the **never-published suffix** (events after the last one ever handed to the broker; nothing
there can be at the server, so it may be renumbered without gaps in the seq watermark):

1. camera_status heartbeats are dropped, except the newest one;
2. zone_occupancy reports are dropped, oldest first (they are periodic measurements);
3. line crossings are merged into per-interval totals (``edge.merged.CountTotal``) by line,
   direction and class: ``merge_interval_s``, then hourly, then daily if that is still too many.
   Counts are never dropped; movements and incidents are kept as they are.

The kept suffix is renumbered contiguously after the last published seq. If the outbox is still
over its bound (only counts left), it grows, with an error in the log: a count is worth more than a
bound. The same database also keeps each file source's checkpoint (``positions``) and each
camera's last pushed configuration (``applied_config``), so both survive kill -9 and power loss.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.merged import merge_group
from edge.merged import stored_adapter as _event_adapter

log = logging.getLogger(__name__)

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

#: Merge levels tried in turn after the configured interval when a full outbox is still too full.
_COARSER_INTERVALS = (3600, 86400)


@dataclass(frozen=True)
class Position:
    """Where a file source was: the last frame whose results are in the outbox."""

    source_key: str
    pass_no: int
    frame_index: int
    ended: bool


@dataclass
class Compaction:
    """What :meth:`Outbox.compact` did (also kept as ``Outbox.compactions[camera]`` totals)."""

    before: int = 0
    after: int = 0
    status_dropped: int = 0
    zone_dropped: int = 0
    crossings_merged: int = 0
    totals: int = 0
    interval_s: int = 0


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

    def event(self) -> Any:
        return _event_adapter.validate_json(self.payload)


_COLS = "camera_id, seq, kind, event_id, payload, sent_at, send_count"


class Outbox:
    """Per-camera durable queue of events keyed by ``(camera_id, seq)``."""

    def __init__(self, path: str | Path, *, max_events: int | None = None, merge_interval_s: int = 900) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.merge_interval_s = merge_interval_s
        self._next_compact: dict[str, int] = {}
        self.compactions: dict[str, Compaction] = defaultdict(Compaction)
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

    def append(
        self, camera_id: str, make_event: Callable[[int], Any], position: tuple[str, int, int] | None = None
    ) -> Any:
        """Assign the next seq, build the event with it and store its JSON, in one transaction.

        ``make_event(seq)`` must return an event whose ``seq`` is the one given; the stored JSON is
        exactly what will be published, so a re-send is byte-identical. ``position`` =
        ``(source_key, pass_no, frame_index)`` is checkpointed in the same transaction.
        """
        return self.append_many(camera_id, [make_event], position)[0]

    def append_many(
        self, camera_id: str, makers: list[Callable[[int], Any]], position: tuple[str, int, int] | None = None
    ) -> list[Any]:
        """Append several events (e.g. every result of one frame) and the checkpoint atomically:
        after a crash, either all of a frame's events are stored and the position is past it, or
        none is and the frame is read again."""
        if self.max_events is not None and makers:
            limit = max(self.max_events, self._next_compact.get(camera_id, 0))
            if self.depth(camera_id) + len(makers) > limit:
                self.compact(camera_id)
        out = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT last_seq FROM cameras WHERE camera_id=?", (camera_id,)).fetchone()
                seq = row[0] if row else 0
                for make_event in makers:
                    seq += 1
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
                    out.append(event)
                if out:
                    self._db.execute(
                        "INSERT INTO cameras (camera_id, last_seq) VALUES (?, ?) "
                        "ON CONFLICT(camera_id) DO UPDATE SET last_seq=excluded.last_seq",
                        (camera_id, seq),
                    )
                if position is not None:
                    self._save_position(camera_id, *position, ended=False)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return out

    # --- the full-outbox policy ------------------------------------------------------------

    def compact(self, camera_id: str, target: int | None = None) -> Compaction:
        """Shrink the never-published suffix to ``target`` events (default 80 % of ``max_events``).

        See the module docstring for the policy. Returns what was done; runs in one transaction.
        """
        limit = self.max_events or 0
        target = int(limit * 0.8) if target is None else target
        res = Compaction(interval_s=self.merge_interval_s)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                res.before = self._db.execute("SELECT COUNT(*) FROM events WHERE camera_id=?", (camera_id,)).fetchone()[
                    0
                ]
                floor = self._db.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM events WHERE camera_id=? AND send_count>0", (camera_id,)
                ).fetchone()[0]
                floor = max(
                    floor,
                    self._db.execute(
                        "SELECT COALESCE(MAX(committed_seq), 0) FROM cameras WHERE camera_id=?", (camera_id,)
                    ).fetchone()[0],
                )
                rows = self._db.execute(
                    "SELECT seq, kind, payload FROM events WHERE camera_id=? AND seq>? ORDER BY seq",
                    (camera_id, floor),
                ).fetchall()
                fixed = res.before - len(rows)  # published or committed: untouchable
                items: list[tuple[int, str, str]] = list(rows)
                # 1. heartbeats, except the newest
                status = [i for i, r in enumerate(items) if r[1] == "camera_status"]
                drop = set(status[:-1])
                res.status_dropped = len(drop)
                items = [r for i, r in enumerate(items) if i not in drop]
                # 2. zone reports, oldest first
                if fixed + len(items) > target:
                    excess = fixed + len(items) - target
                    zone = [i for i, r in enumerate(items) if r[1] == "zone_occupancy"][:excess]
                    res.zone_dropped = len(zone)
                    zs = set(zone)
                    items = [r for i, r in enumerate(items) if i not in zs]
                # 3. crossings into totals, coarser and coarser
                kept: list[Any] = [(seq, kind, payload, None) for seq, kind, payload in items]
                for interval in (self.merge_interval_s, *[c for c in _COARSER_INTERVALS if c > self.merge_interval_s]):
                    if fixed + len(kept) <= target:
                        break
                    kept = self._merge(kept, interval, res)
                    res.interval_s = interval
                # renumber the suffix contiguously after the floor
                self._db.execute("DELETE FROM events WHERE camera_id=? AND seq>?", (camera_id, floor))
                seq = floor
                for _old, _kind, payload, ev in kept:
                    seq += 1
                    ev = ev if ev is not None else _event_adapter.validate_json(payload)
                    ev = ev.model_copy(update={"seq": seq})
                    self._db.execute(
                        "INSERT INTO events (camera_id, seq, kind, event_id, payload, created_at) "
                        "VALUES (?, ?, ?, ?, ?, strftime('%s','now'))",
                        (camera_id, seq, ev.kind, str(ev.event_id), ev.model_dump_json()),
                    )
                if rows:
                    self._db.execute("UPDATE cameras SET last_seq=? WHERE camera_id=?", (seq, camera_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        res.after = fixed + len(kept)
        if limit and res.after >= limit:
            # only counts (and what was published) left: let it grow a tenth before trying again
            self._next_compact[camera_id] = res.after + max(1, limit // 10)
            log.error(
                "camera %s: outbox full (%d events, bound %d) even after merging crossings into %d s totals: "
                "keeping every count and growing",
                camera_id,
                res.after,
                limit,
                res.interval_s,
            )
        else:
            self._next_compact.pop(camera_id, None)
        total = self.compactions[camera_id]
        total.before, total.after = res.before, res.after
        total.status_dropped += res.status_dropped
        total.zone_dropped += res.zone_dropped
        total.crossings_merged += res.crossings_merged
        total.totals += res.totals
        total.interval_s = res.interval_s
        log.warning(
            "camera %s: outbox full: %d -> %d events (%d heartbeats and %d zone reports dropped, %d crossings "
            "merged into %d totals of %d s)",
            camera_id,
            res.before,
            res.after,
            res.status_dropped,
            res.zone_dropped,
            res.crossings_merged,
            res.totals,
            res.interval_s,
        )
        return res

    @staticmethod
    def _merge(kept: list[Any], interval: int, res: Compaction) -> list[Any]:
        groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        parsed: list[Any] = []
        for i, (_seq, kind, payload, ev) in enumerate(kept):
            if kind in ("line_crossing", "count_total"):
                ev = ev if ev is not None else _event_adapter.validate_json(payload)
                key = (int(ev.ts.timestamp()) // interval, ev.line_id, ev.direction, ev.class_name)
                groups[key].append(i)
            parsed.append(ev)
        out: list[Any] = []
        first_of = {members[0]: key for key, members in groups.items()}
        merged_away = {i for members in groups.values() for i in members[1:]}
        for i, item in enumerate(kept):
            if i in merged_away:
                continue
            if i in first_of:
                members = groups[first_of[i]]
                evs = [parsed[j] for j in members]
                if len(evs) == 1 and evs[0].kind == "count_total" and evs[0].interval_s >= interval:
                    out.append(item)
                    continue
                total = merge_group(evs, interval, seq=1)
                res.crossings_merged += sum(1 for e in evs if e.kind == "line_crossing")
                res.totals += 1
                out.append((item[0], total.kind, None, total))
            else:
                out.append(item)
        return out

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
