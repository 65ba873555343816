"""Table models, shared by the storage modules and the Alembic migrations.

The schema is owned by the migrations in ``server/migrations``; these models mirror it so the store
can build queries. Timestamps are always stored and returned as aware UTC datetimes, on SQLite too.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Index, Integer, MetaData, String, Table, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out (SQLite forgets the zone, PostgreSQL keeps it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """A model's ``Table`` (SQLAlchemy types ``__table__`` as any ``FromClause``)."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


class EventRow(Base):
    """One stored event; ``payload`` is the event exactly as received (model JSON).

    Identity is ``(event_id, camera_id)`` (migration 0006): ids are uuid5 under a public namespace, so
    a camera could otherwise claim the id another camera will use next."""

    __tablename__ = "events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    ts_s: Mapped[int] = mapped_column(BigInteger, doc="Epoch seconds of ts: portable integer bucketing.")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    line_id: Mapped[str | None] = mapped_column(String(64))
    direction: Mapped[str | None] = mapped_column(String(8))
    class_name: Mapped[str | None] = mapped_column(String(32))
    track_id: Mapped[int | None] = mapped_column(BigInteger)
    speed_kmh: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int | None] = mapped_column(BigInteger, doc="Crossings this row stands for: count_total's count.")
    payload: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_events_camera_id_seq", "camera_id", "seq"),
        Index("ix_events_kind_camera_id_ts_s", "kind", "camera_id", "ts_s"),
        Index("ix_events_ts_s", "ts_s"),
    )


class CameraRow(Base):
    """What the server knows about a camera; ``committed_seq`` is the contiguous watermark."""

    __tablename__ = "cameras"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    first_seen: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), default="unknown", server_default="unknown")
    last_status: Mapped[str | None] = mapped_column(Text)
    config_version: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(128))
    committed_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class DeadLetterRow(Base):
    """A message the server could not use, kept with the reason so an operator can see why."""

    __tablename__ = "dead_letters"

    #: bigint on PostgreSQL (0006), the 64-bit rowid on SQLite
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    payload_b64: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    reason: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_dead_letters_received_at", "received_at"),)


class ResolvedSeqRow(Base):
    """A camera's seq settled without an event (migration 0006): its message was dead-lettered for a
    reason that will not go away, so the watermark counts it as filled instead of waiting forever."""

    __tablename__ = "resolved_seqs"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dead_letter_id: Mapped[int | None] = mapped_column(BigInteger)
    resolved_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- rollups, fleet, keys (migration 0002) ------------------------------------------------------

#: Rollup resolutions: table suffix -> bucket length in seconds. ``1d`` buckets start at local midnight
#: of ``server.timezone``; the others are aligned to UTC (equal to local for whole-hour offsets).
RESOLUTIONS: dict[str, int] = {"1m": 60, "15m": 900, "1h": 3600, "1d": 86400}
#: Classes stored as columns of the flow and OD rollups (the contract's CLASS_NAMES, in order).
ROLLUP_CLASSES: tuple[str, ...] = ("car", "truck", "bus", "motorcycle", "bicycle", "person")


def _flow_model(res: str) -> type[Base]:
    cols: dict[str, Any] = {
        "__tablename__": f"flow_{res}",
        "__doc__": f"Line crossings per {res} bucket, camera, line and direction; classes as columns.",
        "camera_id": mapped_column(String(64), primary_key=True),
        "bucket": mapped_column(BigInteger, primary_key=True, doc="Epoch seconds of the bucket start."),
        "line_id": mapped_column(String(64), primary_key=True),
        "direction": mapped_column(String(8), primary_key=True),
        "speed_sum": mapped_column(Float, nullable=False, default=0.0),
        "speed_n": mapped_column(BigInteger, nullable=False, default=0),
        "__table_args__": (Index(f"ix_flow_{res}_bucket", "bucket"),),
    }
    for c in ROLLUP_CLASSES:
        cols[f"n_{c}"] = mapped_column(BigInteger, nullable=False, default=0)
    cols["__annotations__"] = {}
    return type(f"Flow{res.upper()}Row", (Base,), cols)


def _zone_model(res: str) -> type[Base]:
    cols: dict[str, Any] = {
        "__tablename__": f"zone_{res}",
        "__doc__": f"Zone/lane occupancy reports per {res} bucket (sums; divide by samples/interval for means).",
        "camera_id": mapped_column(String(64), primary_key=True),
        "bucket": mapped_column(BigInteger, primary_key=True),
        "zone_id": mapped_column(String(64), primary_key=True),
        "lane": mapped_column(Boolean, nullable=False, default=False),
        "samples": mapped_column(BigInteger, nullable=False, default=0),
        "interval_s": mapped_column(Float, nullable=False, default=0.0),
        "occupied_s": mapped_column(Float, nullable=False, default=0.0),
        "entered": mapped_column(BigInteger, nullable=False, default=0),
        "queue_m_sum": mapped_column(Float, nullable=False, default=0.0),
        "queue_veh_sum": mapped_column(Float, nullable=False, default=0.0),
        "queue_n": mapped_column(BigInteger, nullable=False, default=0),
        "speed_sum": mapped_column(Float, nullable=False, default=0.0),
        "speed_n": mapped_column(Float, nullable=False, default=0.0),
        "__table_args__": (Index(f"ix_zone_{res}_bucket", "bucket"),),
        "__annotations__": {},
    }
    for c in ROLLUP_CLASSES:
        cols[f"occ_{c}"] = mapped_column(Float, nullable=False, default=0.0)
    return type(f"Zone{res.upper()}Row", (Base,), cols)


def _od_model(res: str) -> type[Base]:
    cols: dict[str, Any] = {
        "__tablename__": f"od_{res}",
        "__doc__": f"Origin-destination movements per {res} bucket (by exit time); classes as columns.",
        "camera_id": mapped_column(String(64), primary_key=True),
        "bucket": mapped_column(BigInteger, primary_key=True),
        "entry_zone": mapped_column(String(64), primary_key=True),
        "exit_zone": mapped_column(String(64), primary_key=True),
        "duration_sum": mapped_column(Float, nullable=False, default=0.0),
        "speed_sum": mapped_column(Float, nullable=False, default=0.0),
        "speed_n": mapped_column(BigInteger, nullable=False, default=0),
        "__table_args__": (Index(f"ix_od_{res}_bucket", "bucket"),),
        "__annotations__": {},
    }
    for c in ROLLUP_CLASSES:
        cols[f"n_{c}"] = mapped_column(BigInteger, nullable=False, default=0)
    return type(f"Od{res.upper()}Row", (Base,), cols)


def _observed_model(res: str) -> type[Base]:
    cols: dict[str, Any] = {
        "__tablename__": f"observed_{res}",
        "__doc__": f"Seconds of each {res} bucket during which the camera was observing (from heartbeats).",
        "camera_id": mapped_column(String(64), primary_key=True),
        "bucket": mapped_column(BigInteger, primary_key=True),
        "observed_s": mapped_column(Float, nullable=False, default=0.0),
        "__table_args__": (Index(f"ix_observed_{res}_bucket", "bucket"),),
        "__annotations__": {},
    }
    return type(f"Observed{res.upper()}Row", (Base,), cols)


FLOW_TABLES: dict[str, Table] = {res: table_of(_flow_model(res)) for res in RESOLUTIONS}
ZONE_TABLES: dict[str, Table] = {res: table_of(_zone_model(res)) for res in RESOLUTIONS}
OD_TABLES: dict[str, Table] = {res: table_of(_od_model(res)) for res in RESOLUTIONS}
OBSERVED_TABLES: dict[str, Table] = {res: table_of(_observed_model(res)) for res in RESOLUTIONS}


class CameraStateRow(Base):
    """Per-camera bookkeeping added in 0002: observation cursor and the newest pushed configuration."""

    __tablename__ = "camera_state"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    observed_to_s: Mapped[float | None] = mapped_column(Float, doc="Epoch s up to which observation was credited.")
    pushed_config: Mapped[str | None] = mapped_column(Text)
    pushed_config_version: Mapped[str | None] = mapped_column(String(64))
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    replay_requests: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_replay_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RevokedSessionRow(Base):
    """A browser session ended by log-out, kept until it would have expired."""

    __tablename__ = "revoked_sessions"

    session_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ApiKeyRow(Base):
    """An API key managed at run time (rotation): only its SHA-256 is stored; revoked keys are kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConfigVersionRow(Base):
    """A configuration pushed to a camera (0009): who pushed it, and when its edge first ran it."""

    __tablename__ = "config_versions"
    __table_args__ = (Index("ix_config_versions_camera_id_id", "camera_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    config: Mapped[str] = mapped_column(Text)
    pushed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    pushed_by: Mapped[str] = mapped_column(String(200))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditRow(Base):
    """One admin action (0009): who (key name or fingerprint), with which role, what, on which camera."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
