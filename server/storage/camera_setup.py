"""What the configuration editor keeps: the history of configurations pushed to each camera, and the
audit log of admin actions (reference pictures asked for and seen, pushes, rollbacks).

Neither holds an image: a reference picture lives only in the server's memory
(:mod:`server.reference_pictures`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from citywatch.contract import utcnow
from server.storage.database import Database, rowcount
from server.storage.models import AuditRow, ConfigVersionRow


class ConfigHistory:
    """The ``config_versions`` table: one row per push, newest last."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, camera_id: str, version: str, config: dict[str, Any], pushed_by: str, at: datetime) -> int:
        with self.db.session.begin() as s:
            row = ConfigVersionRow(
                camera_id=camera_id, version=version, config=json.dumps(config), pushed_at=at, pushed_by=pushed_by
            )
            s.add(row)
            s.flush()
            return int(row.id)

    def versions(self, camera_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The camera's pushes, newest first."""
        with self.db.session() as s:
            rows = s.scalars(
                select(ConfigVersionRow)
                .where(ConfigVersionRow.camera_id == camera_id)
                .order_by(ConfigVersionRow.id.desc())
                .limit(limit)
            ).all()
        return [
            {
                "id": r.id,
                "version": r.version,
                "pushed_at": r.pushed_at,
                "pushed_by": r.pushed_by,
                "config": json.loads(r.config),
                "confirmed_at": r.confirmed_at,
            }
            for r in rows
        ]

    def confirm(self, camera_id: str, version: str, at: datetime) -> int:
        """The camera's edge reported running ``version`` at ``at``: the pushes of it not yet confirmed
        (pushed before ``at``) are now. Returns how many."""
        with self.db.session.begin() as s:
            return rowcount(
                s,
                update(ConfigVersionRow)
                .where(
                    ConfigVersionRow.camera_id == camera_id,
                    ConfigVersionRow.version == version,
                    ConfigVersionRow.confirmed_at.is_(None),
                    ConfigVersionRow.pushed_at <= at,
                )
                .values(confirmed_at=at),
            )


class AuditLog:
    """The ``audit_log`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        actor: str,
        role: str,
        action: str,
        camera_id: str | None = None,
        detail: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> int:
        with self.db.session.begin() as s:
            row = AuditRow(
                at=at or utcnow(),
                actor=actor[:200],
                role=role,
                action=action,
                camera_id=camera_id,
                detail=json.dumps(detail) if detail else None,
            )
            s.add(row)
            s.flush()
            return int(row.id)

    def recent(self, limit: int = 100, camera_id: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
        """The newest rows first."""
        stmt = select(AuditRow)
        if camera_id is not None:
            stmt = stmt.where(AuditRow.camera_id == camera_id)
        if action is not None:
            stmt = stmt.where(AuditRow.action == action)
        with self.db.session() as s:
            rows = s.scalars(stmt.order_by(AuditRow.id.desc()).limit(limit)).all()
        return [
            {
                "id": r.id,
                "at": r.at,
                "actor": r.actor,
                "role": r.role,
                "action": r.action,
                "camera_id": r.camera_id,
                "detail": json.loads(r.detail) if r.detail else None,
            }
            for r in rows
        ]
