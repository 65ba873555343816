"""Which database failures go away by themselves (retry) and which belong to the data (isolate it).

Why: ingest must retry a batch while the database is unreachable or busy, but a message the database
will refuse every time must not be retried forever: it is split off and kept as a dead letter.
"""

from __future__ import annotations

import sqlite3
from typing import Literal

from sqlalchemy import exc as sa_exc

FailureKind = Literal["transient", "permanent", "unknown"]

#: PostgreSQL SQLSTATE classes (first two characters) and codes, as documented in appendix A.
_PG_TRANSIENT_CLASSES = {
    "08",  # connection exception
    "40",  # transaction rollback: serialization failure, deadlock
    "53",  # insufficient resources: disk full, out of memory, too many connections
    "57",  # operator intervention: admin shutdown, cannot connect now, query canceled (statement timeout)
    "58",  # system error: I/O error
    "42",  # schema or privilege problem (undefined table, permission denied): never one message's fault
}
_PG_TRANSIENT_CODES = {"55P03", "55006", "25006", "0A000"}  # lock not available, object in use, read-only
_PG_PERMANENT_CLASSES = {"22", "23", "54"}  # data exception, integrity violation, program limit exceeded
_PG_PERMANENT_CODES = {"P0001", "P0002", "P0003", "P0004"}  # RAISE EXCEPTION / assert in a trigger or rule

#: SQLite primary result codes (``sqlite3.Error.sqlite_errorname``, Python >= 3.11).
#: SQLITE_ERROR is a missing table or a syntax error: the schema's problem, never one message's.
_SQLITE_TRANSIENT = {
    "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN",
    "SQLITE_PROTOCOL", "SQLITE_READONLY", "SQLITE_NOMEM", "SQLITE_INTERRUPT", "SQLITE_ERROR",
}  # fmt: skip
_SQLITE_PERMANENT = {"SQLITE_CONSTRAINT", "SQLITE_TOOBIG", "SQLITE_MISMATCH", "SQLITE_RANGE"}


def _unwrap(exc: BaseException) -> BaseException:
    """SQLAlchemy wraps the driver's exception; raw-cursor paths raise the driver's own."""
    if isinstance(exc, sa_exc.StatementError) and isinstance(exc.orig, BaseException):
        return exc.orig  # DBAPIError and also a value SQLAlchemy could not bind
    return exc


def classify(exc: BaseException) -> FailureKind:
    """``transient``: retry the same batch later; ``permanent``: the data is refused, isolate the
    message; ``unknown``: neither is known, the caller decides from what a split shows."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return "transient"
    if isinstance(exc, (sa_exc.DisconnectionError, sa_exc.TimeoutError, ConnectionError, TimeoutError)):
        return "transient"
    err = _unwrap(exc)
    sqlstate = getattr(err, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        if sqlstate in _PG_TRANSIENT_CODES or sqlstate[:2] in _PG_TRANSIENT_CLASSES:
            return "transient"
        if sqlstate in _PG_PERMANENT_CODES or sqlstate[:2] in _PG_PERMANENT_CLASSES:
            return "permanent"
        return "unknown"
    if isinstance(err, sqlite3.Error):
        name = "_".join((getattr(err, "sqlite_errorname", "") or "").split("_")[:2])  # extended -> primary
        if name in _SQLITE_TRANSIENT:
            return "transient"
        if name in _SQLITE_PERMANENT:
            return "permanent"
        if isinstance(err, sqlite3.OperationalError):
            return "transient"
        if isinstance(err, (sqlite3.IntegrityError, sqlite3.DataError)):
            return "permanent"
        return "unknown"
    try:
        import psycopg
    except ImportError:  # pragma: no cover - SQLite-only install
        psycopg = None  # type: ignore[assignment]
    if psycopg is not None and isinstance(err, psycopg.Error):
        # raised in the client without a SQLSTATE: a NUL in text, a value the binary dumper refuses...
        if isinstance(err, (psycopg.DataError, psycopg.IntegrityError)):
            return "permanent"
        if isinstance(err, (psycopg.OperationalError, psycopg.InterfaceError)):
            return "transient"
        return "unknown"
    # Python-side conversion of one value: an int beyond int64, a lone surrogate in text
    if isinstance(err, (OverflowError, UnicodeError)):
        return "permanent"
    return "unknown"


def describe(exc: BaseException, limit: int = 300) -> str:
    """One line naming the error and its SQLSTATE, safe to store as a dead letter's reason."""
    err = _unwrap(exc)
    text = " ".join(str(err).split()) or type(err).__name__
    sqlstate = getattr(err, "sqlstate", None)
    head = f"{type(err).__name__}" + (f" [{sqlstate}]" if sqlstate else "")
    out = f"{head}: {text}"
    if len(out) > limit:
        out = out[: limit - 1] + "…"
    return out.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
