"""Session fixtures over real assets; see ``support.py`` for how they are found."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import require, require_asset, samples_dir

PG_URL = os.environ.get("CITYWATCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")




@pytest.fixture(scope="session")
def sample_clip() -> Path:
    root = samples_dir()
    return require_asset(root / "two_way_road/suburban_two_way_road.mp4" if root else None, "sample clip")


@pytest.fixture(scope="session")
def london_clip() -> Path:
    root = samples_dir()
    name = "tfl_london_jamcam/2019-06-28_13-02-35.503167_00001.03601.mp4"
    return require_asset(root / name if root else None, "London sample clip")


@pytest.fixture(scope="session")
def weights_path() -> Path:
    w = os.environ.get("CITYWATCH_WEIGHTS")
    return require_asset(Path(w) if w else None, "model weights")


@dataclass(frozen=True)
class PgDatabase:
    """``url`` plus a schema that exists only for this test: ``Store(db.url, schema=db.schema)``."""

    url: str
    schema: str


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL URL, checked once per session."""
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        require(False, f"PostgreSQL is not reachable at {PG_URL}: {type(exc).__name__}")
    finally:
        engine.dispose()
    return PG_URL


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[PgDatabase]:
    """A unique schema (``cw_test_<hex>``), dropped with everything in it after the test."""
    schema = f"cw_test_{uuid.uuid4().hex[:12]}"
    yield PgDatabase(pg_url, schema)
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()
