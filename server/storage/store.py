"""The storage facade: builds the storage collaborators on one database and wires the event writer's
insert hooks (rollups first, then incidents). Callers use the collaborators (``store.events``,
``store.cameras``, ``store.keys``, ``store.history`` ...); the few methods here only forward the calls
ingest makes on every batch and the reads most tests make, so they keep one short name."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from citywatch.config import CitywatchConfig
from citywatch.contract import AnyEvent
from server.storage.camera_setup import AuditLog, ConfigHistory
from server.storage.cameras import Cameras, CameraUpdateIn
from server.storage.database import DEFAULT_DATABASE_URL, ENV_SCHEMA, Database
from server.storage.dead_letters import DeadLetterIn, DeadLetters
from server.storage.events import EventLog, EventWriter, StoredBatch
from server.storage.history import History
from server.storage.incidents import IncidentStore
from server.storage.keys import ApiKeys, RevokedSessions
from server.storage.rollup_writer import RollupWriter
from server.storage.rollups import Clock
from server.storage.watermarks import Mark, Watermarks


class Store:
    """Events (de-duplicated by camera and event_id), cameras with their watermark, dead letters and the
    seqs they resolve, rollups and incidents written with the events, keys, and the history reads.

    ``timezone``: day rollups start at its local midnight (``server.timezone``); ``heartbeat_s``: how
    much observed time one edge heartbeat stands for at most; ``events_retention_days``,
    ``max_future_s`` and ``topic_prefix``: see :class:`EventWriter`."""

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
        self.db = Database(url, schema=schema, echo=echo, migrate=migrate)
        self.url, self.schema, self.engine, self.dialect = url, schema, self.db.engine, self.db.dialect
        self.clock = Clock(timezone)
        self.dead_letters = DeadLetters(self.db)
        self.events = EventWriter(
            self.db,
            self.dead_letters,
            events_retention_days=events_retention_days,
            max_future_s=max_future_s,
            topic_prefix=topic_prefix,
        )
        self.event_log = EventLog(self.db)
        self.watermarks = Watermarks(self.db)
        self.cameras = Cameras(self.db, self.watermarks)
        self.rollups = RollupWriter(self.clock, self.cameras, self.db.dialect, heartbeat_s)
        self.incidents = IncidentStore(self.db)
        self.events.add_hook(self.rollups)
        self.events.add_hook(self.incidents.on_insert)
        self.keys = ApiKeys(self.db)
        self.sessions = RevokedSessions(self.db)
        self.history = History(self.db, self.clock)
        self.config_history = ConfigHistory(self.db)
        self.audit = AuditLog(self.db)

    @classmethod
    def from_config(cls, config: CitywatchConfig, *, schema: str | None = None, migrate: bool = True) -> Store:
        """``server.database_url``; the PostgreSQL schema comes from ``schema`` or else
        ``$CITYWATCH_DATABASE_SCHEMA`` (the config file has no key for it)."""
        return cls(
            config.server.database_url,
            schema=schema or os.environ.get(ENV_SCHEMA) or None,
            migrate=migrate,
            timezone=config.server.timezone,
            heartbeat_s=config.server.ingest.heartbeat_s or config.edge.heartbeat_s,
            events_retention_days=config.server.retention.events_days,
            max_future_s=config.server.ingest.max_future_s,
            topic_prefix=config.mqtt.topic_prefix,
        )

    # --- the database -------------------------------------------------------------------------

    def close(self) -> None:
        self.db.close()

    # --- the event writer's limits (ingest sets the topic prefix) ----------------------------------

    @property
    def events_retention_days(self) -> float | None:
        return self.events.events_retention_days

    @events_retention_days.setter
    def events_retention_days(self, days: float | None) -> None:
        self.events.events_retention_days = days

    @property
    def max_future_s(self) -> float | None:
        return self.events.max_future_s

    @max_future_s.setter
    def max_future_s(self, seconds: float | None) -> None:
        self.events.max_future_s = seconds

    @property
    def topic_prefix(self) -> str:
        return self.events.topic_prefix

    @topic_prefix.setter
    def topic_prefix(self, prefix: str) -> None:
        self.events.topic_prefix = prefix

    # --- forwarded: ingest's calls and the common reads ----------------------------------------

    def store_batch(
        self, events: Sequence[AnyEvent], dead_letters: Sequence[DeadLetterIn], received_at: datetime | None = None
    ) -> StoredBatch:
        return self.events.store_batch(events, dead_letters, received_at)

    def insert_events(self, events: Iterable[AnyEvent], received_at: datetime | None = None) -> StoredBatch:
        return self.events.insert_events(events, received_at)

    def apply_cameras(
        self, updates: Sequence[CameraUpdateIn], *, on_error: Callable[[str, Exception], None] | None = None
    ) -> dict[str, Mark]:
        return self.cameras.apply_cameras(updates, on_error=on_error)

    def advance_watermark(self, camera_id: str, *, floor: int | None = None, site_id: str | None = None) -> int:
        return self.cameras.advance_watermark(camera_id, floor=floor, site_id=site_id)

    def note_replay_request(self, camera_id: str, at: datetime) -> None:
        self.cameras.note_replay_request(camera_id, at)

    def first_seq_above(self, camera_id: str, seq: int) -> int | None:
        return self.watermarks.first_seq_above(camera_id, seq)

    def committed_seqs(self) -> dict[str, int]:
        return self.watermarks.committed_seqs()

    def count_events(self, camera_id: str | None = None) -> int:
        return self.event_log.count_events(camera_id)

    def list_dead_letters(self, limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        return self.dead_letters.list_dead_letters(limit, offset)

    def list_cameras(self) -> list[dict[str, Any]]:
        return self.cameras.list_cameras()
