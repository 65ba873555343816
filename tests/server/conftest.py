"""Server test fixtures: a fresh PostgreSQL schema per test, SQLite files, the real Mosquitto.

Self-contained so other test folders can reuse ``pg_database`` (copy or ``pytest_plugins``).
PostgreSQL / Mosquitto missing: skipped with the reason on a laptop, a failure when ``CI=true``.
Override the locations with ``CITYWATCH_TEST_PG_URL`` and ``CITYWATCH_TEST_MQTT`` (host:port).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import require

MQTT_HOSTPORT = os.environ.get("CITYWATCH_TEST_MQTT", "127.0.0.1:1883")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/db/citywatch.sqlite"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A migrated ``server.storage.store.Store`` on each dialect."""
    from server.storage.store import Store

    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path}/db/citywatch.sqlite")
    else:
        db = request.getfixturevalue("pg_database")
        s = Store(db.url, schema=db.schema)
    yield s
    s.close()


@pytest.fixture(scope="session")
def mqtt_broker() -> tuple[str, int]:
    """``(host, port)`` of the real broker."""
    host, _, port = MQTT_HOSTPORT.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            pass
    except OSError:
        require(False, f"MQTT broker is not reachable on {MQTT_HOSTPORT}")
    return host, int(port)


@pytest.fixture
def run_id() -> str:
    """Unique per test: topic prefixes and client ids must never collide with other runs."""
    return uuid.uuid4().hex[:10]
