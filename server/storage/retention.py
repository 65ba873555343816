"""Retention: deletes rows older than each table's ``server.retention`` setting, from a daemon thread.

Why a thread and not a cron job: one process to deploy. Several servers on one PostgreSQL may all run
it; deletes are idempotent."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

from sqlalchemy import text

from citywatch.config import RetentionConfig
from citywatch.contract import utcnow
from server.storage.database import Database, rowcount
from server.storage.models import (
    FLOW_TABLES,
    OBSERVED_TABLES,
    OD_TABLES,
    RESOLUTIONS,
    ZONE_TABLES,
    DeadLetterRow,
    EventRow,
    table_of,
)
from server.storage.store import Store

log = logging.getLogger(__name__)


def apply_retention(db: Database, retention: RetentionConfig, now: datetime | None = None) -> dict[str, int]:
    """Delete what is older than each table's retention (events, dead letters, rollups, resolved seqs
    the watermark has passed); returns rows deleted per table."""
    now_s = (now or utcnow()).timestamp()
    deleted: dict[str, int] = {}

    def horizon(days: float | None) -> float | None:
        return None if days is None else now_s - days * 86400

    with db.session.begin() as s:
        h = horizon(retention.events_days)
        if h is not None:
            deleted["events"] = rowcount(s, table_of(EventRow).delete().where(EventRow.ts_s < h))
        # a resolved seq matters only until the watermark passed it
        deleted["resolved_seqs"] = rowcount(
            s,
            text(
                "DELETE FROM resolved_seqs WHERE seq <= "
                "(SELECT c.committed_seq FROM cameras c WHERE c.camera_id = resolved_seqs.camera_id)"
            ),
        )
        h = horizon(retention.dead_letters_days)
        if h is not None:
            cutoff = datetime.fromtimestamp(h, tz=timezone.utc)
            deleted["dead_letters"] = rowcount(
                s, table_of(DeadLetterRow).delete().where(DeadLetterRow.received_at < cutoff)
            )
        for res in RESOLUTIONS:
            h = horizon(getattr(retention, f"rollup_{res}_days"))
            if h is None:
                continue
            for fam in (FLOW_TABLES, ZONE_TABLES, OD_TABLES, OBSERVED_TABLES):
                t = fam[res]
                deleted[t.name] = rowcount(s, t.delete().where(t.c.bucket < h))
    return deleted


class Retention:
    """The pruning thread: tables (:func:`apply_retention`), incidents, expired session revocations."""

    def __init__(self, store: Store, config: RetentionConfig) -> None:
        self.store = store
        self.config = config
        self.last: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, int]:
        self.last = apply_retention(self.store.db, self.config)
        if self.config.incidents_days is not None:
            self.last.update(self.store.incidents.prune(self.config.incidents_days))
        self.last["revoked_sessions"] = self.store.sessions.prune_revoked_sessions()
        if any(self.last.values()):
            log.info("retention deleted %s", {k: v for k, v in self.last.items() if v})
        return self.last

    def _loop(self) -> None:
        while not self._stop.wait(float(self.config.interval_s)):
            try:
                self.run_once()
            except Exception:
                log.exception("retention pass failed")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="citywatch-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
