"""Alembic environment: runs on the connection the store hands over, or on $CITYWATCH_DATABASE_URL.

The store passes ``connection`` and ``schema`` in ``config.attributes``; the version table is put in
that schema so several deployments (or test runs) can share one PostgreSQL database.
"""

from __future__ import annotations

import os

from alembic import context

from server.storage.database import make_engine
from server.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection, schema: str | None) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=schema,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    schema = config.attributes.get("schema")
    if connection is not None:
        _configure_and_run(connection, schema)
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("CITYWATCH_DATABASE_URL")
    if not url:
        raise RuntimeError("set sqlalchemy.url or CITYWATCH_DATABASE_URL to run migrations from the CLI")
    schema = schema or os.environ.get("CITYWATCH_DATABASE_SCHEMA") or None
    engine = make_engine(url, schema=schema)
    try:
        with engine.connect() as conn:
            _configure_and_run(conn, schema)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; run them against a database")
run_migrations_online()
