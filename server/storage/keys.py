"""Credentials kept in the database: API keys managed at run time (rotation; only their SHA-256 is
stored) and browser sessions ended by log-out (refused until they would have expired anyway)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from citywatch.contract import utcnow
from server.storage.database import Database, rowcount
from server.storage.models import ApiKeyRow, RevokedSessionRow, table_of


class ApiKeys:
    """The ``api_keys`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_api_key(self, role: str, name: str, key_hash: str, prefix: str) -> int:
        with self.db.session.begin() as s:
            row = ApiKeyRow(role=role, name=name, key_hash=key_hash, prefix=prefix, created_at=utcnow())
            s.add(row)
            s.flush()
            return int(row.id)

    def revoke_api_key(self, key_id: int) -> bool:
        with self.db.session.begin() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            return True

    def list_api_keys(self) -> list[dict[str, Any]]:
        with self.db.session() as s:
            rows = s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id)).all()
        return [
            {
                "id": r.id,
                "role": r.role,
                "name": r.name,
                "prefix": r.prefix,
                "created_at": r.created_at,
                "revoked_at": r.revoked_at,
                "key_hash": r.key_hash,
            }
            for r in rows
        ]

    def name_of(self, key_hash: str) -> str | None:
        """The name of the active managed key with this hash (who or what uses it); None when none is."""
        with self.db.session() as s:
            return s.scalar(
                select(ApiKeyRow.name).where(ApiKeyRow.key_hash == key_hash, ApiKeyRow.revoked_at.is_(None))
            )

    def active_key_hashes(self) -> dict[str, str]:
        """``{sha256 hex: role}`` of keys not revoked."""
        with self.db.session() as s:
            rows = s.execute(select(ApiKeyRow.key_hash, ApiKeyRow.role).where(ApiKeyRow.revoked_at.is_(None)))
            return {key_hash: role for key_hash, role in rows}


class RevokedSessions:
    """The ``revoked_sessions`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def revoke_session(self, session_id: str, expires_at: datetime) -> None:
        """Log-out: the session stays refused until ``expires_at`` (when it would have ended anyway)."""
        with self.db.session.begin() as s:
            if s.get(RevokedSessionRow, session_id) is None:
                s.add(RevokedSessionRow(session_id=session_id, expires_at=expires_at))

    def is_session_revoked(self, session_id: str) -> bool:
        """A log-out ended this session (checked on every cookie-authenticated request: a primary-key read)."""
        with self.db.session() as s:
            return s.get(RevokedSessionRow, session_id) is not None

    def prune_revoked_sessions(self, now: datetime | None = None) -> int:
        """Forget revocations of sessions that have expired (their tokens are refused anyway)."""
        with self.db.session.begin() as s:
            table = table_of(RevokedSessionRow)
            return rowcount(s, table.delete().where(table.c.expires_at <= (now or utcnow())))
