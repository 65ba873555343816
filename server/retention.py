"""Retention: a daemon thread deletes rows older than each table's ``server.retention`` setting.

Why a thread and not a cron job: one process to deploy. Several servers on one PostgreSQL may all run
it; deletes are idempotent."""

from __future__ import annotations

import logging
import threading
from typing import Any

from server.incidents import IncidentStore
from server.store import Store

log = logging.getLogger(__name__)


class Retention:
    def __init__(self, store: Store, config: Any) -> None:
        self.store = store
        self.config = config
        self.last: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, int]:
        self.last = self.store.apply_retention(self.config)
        if self.config.incidents_days is not None:
            self.last.update(IncidentStore.for_store(self.store).prune(self.config.incidents_days))
        self.last["revoked_sessions"] = self.store.prune_revoked_sessions()
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
