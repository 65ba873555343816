"""The database connection: engine, session factory, the dialect's upsert and the migrations runner.

Why a module of its own: every storage job (events, watermarks, cameras, keys, history, incidents,
forecasts) runs its own short sessions on one engine; this is the only place that knows how to open
it on SQLite or PostgreSQL and how to bring its schema up to date.

PostgreSQL schemas: ``Database(url, schema="cw_x")`` creates the schema if needed and keeps every
table, including Alembic's version table, in it (``search_path`` is set per connection). A URL carrying
``?options=-csearch_path%3Dcw_x`` also works, but then the schema must already exist.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import CursorResult, Engine, Executable, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from server import db_errors

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///data/citywatch.sqlite"
ENV_SCHEMA = "CITYWATCH_DATABASE_SCHEMA"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_MIGRATION_LOCK_KEY = 0x63_77_6D_67  # "cwmg": serialises concurrent migrations on PostgreSQL

#: An ``INSERT`` with ``on_conflict_do_nothing``/``on_conflict_do_update`` (either dialect's).
Upsert = postgresql.Insert | sqlite.Insert


def rowcount(s: Session, stmt: Executable) -> int:
    """Run an UPDATE or DELETE in ``s``; returns the rows it touched."""
    result = s.execute(stmt)
    if not isinstance(result, CursorResult):
        raise TypeError("rowcount() is for UPDATE and DELETE statements")
    return int(result.rowcount)


def alembic_config(url: str | None = None) -> AlembicConfig:
    """Alembic config built in code, pointing at the migrations shipped inside the package."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def make_engine(url: str = DEFAULT_DATABASE_URL, *, schema: str | None = None, echo: bool = False) -> Engine:
    """Create the engine: SQLite gets its folder, WAL and a busy timeout; PostgreSQL an optional schema.

    ``schema`` (PostgreSQL only) is put first on every connection's ``search_path``, so all tables and
    the Alembic version table live there. Passing ``?options=-csearch_path%3Dname`` in the URL works too.
    """
    u = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if u.get_backend_name() == "sqlite":
        db = u.database or ""
        memory = db in ("", ":memory:") or db.startswith("file::memory:")
        if memory:
            kwargs["poolclass"] = StaticPool
        else:
            Path(db).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if schema:
            raise ValueError("a schema name is only supported on PostgreSQL")
        engine = create_engine(u, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine

    if u.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
        if schema:
            _check_schema_name(schema)
            kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
        return create_engine(u, **kwargs)

    log.warning("database %s is neither SQLite nor PostgreSQL: untested", u.get_backend_name())
    return create_engine(u, **kwargs)


_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _check_schema_name(schema: str) -> None:
    """Schema names end up in SQL and connection options: allow plain identifiers only."""
    if not _SCHEMA_RE.match(schema):
        raise ValueError(f"invalid schema name {schema!r}: letters, digits and _ only, starting with a letter")


class Database:
    """One engine and its session factory: ``session()`` to read, ``session.begin()`` to write."""

    def __init__(
        self, url: str = DEFAULT_DATABASE_URL, *, schema: str | None = None, echo: bool = False, migrate: bool = True
    ) -> None:
        self.url = url
        self.schema = schema
        self.engine: Engine = make_engine(url, schema=schema, echo=echo)
        self.session: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            self.migrate()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def insert(self, table: Table) -> Upsert:
        """``INSERT`` into ``table`` with this dialect's ``ON CONFLICT`` clauses."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        if self.dialect == "sqlite":
            return sqlite.insert(table)
        raise NotImplementedError(f"dialect {self.dialect} not supported")

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
