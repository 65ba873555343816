"""Incident tables: one row per incident id merged from its open/update/closed events, and the
operators' audit trail (migration ``0004_incidents``).

Rows are written by an insert hook (:meth:`IncidentStore.on_insert`, registered with the event writer)
inside the event transaction, so an incident is stored exactly when its event is: a crash between the
two is impossible, and a redelivered event (a duplicate) is never applied twice. After the commit,
listeners (``server.incidents.IncidentService``) get the records of newly opened incidents.

The ``incidents`` row is also the notification outbox: ``escalation_level`` is the level wanted (0 =
the "new incident" notice), ``notified_level`` the last one sent, claimed with a compare-and-set update
so that several server processes never send twice.
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text, delete, event, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from citywatch.contract import SEVERITY_RANK, AnyEvent, Incident, utcnow
from server.storage.database import Database, rowcount
from server.storage.models import Base, UTCDateTime, table_of

log = logging.getLogger(__name__)

STATUSES = ("new", "acknowledged", "resolved")
_INFO_KEY = "citywatch_incidents_opened"

#: An incident as the API, the live hub and notifications show it (:func:`record`).
IncidentRecord = dict[str, Any]


class IncidentRow(Base):
    __tablename__ = "incidents"

    incident_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str] = mapped_column(String(64))
    incident_type: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(8), doc="open or closed, as the edge reports it")
    severity: Mapped[str] = mapped_column(String(8))
    confidence: Mapped[float] = mapped_column(Float)
    lane_id: Mapped[str | None] = mapped_column(String(64))
    zone_id: Mapped[str | None] = mapped_column(String(64))
    track_ids: Mapped[str] = mapped_column(Text, default="[]")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    snapshot_id: Mapped[str | None] = mapped_column(String(128))
    message: Mapped[str | None] = mapped_column(Text)
    updates: Mapped[int] = mapped_column(Integer, default=0)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="new", doc="operator workflow: new/acknowledged/resolved")
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    notified_level: Mapped[int] = mapped_column(Integer, default=-1)

    __table_args__ = (
        Index("ix_incidents_started_at", "started_at"),
        Index("ix_incidents_camera_id_started_at", "camera_id", "started_at"),
        Index("ix_incidents_incident_type_started_at", "incident_type", "started_at"),
        Index("ix_incidents_status_state", "status", "state"),
    )


class IncidentActionRow(Base):
    __tablename__ = "incident_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    action: Mapped[str] = mapped_column(String(16), doc="ack, resolve, escalate, notify, notify_failed")
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_incident_actions_incident_id", "incident_id"),)


def record(r: IncidentRow) -> IncidentRecord:
    """An incident as the API, the live hub and notifications show it."""
    return {
        "incident_id": r.incident_id,
        "camera_id": r.camera_id,
        "site_id": r.site_id,
        "incident_type": r.incident_type,
        "state": r.state,
        "severity": r.severity,
        "confidence": r.confidence,
        "lane_id": r.lane_id,
        "zone_id": r.zone_id,
        "track_ids": json.loads(r.track_ids or "[]"),
        "started_at": r.started_at.isoformat(),
        "ended_at": r.ended_at.isoformat() if r.ended_at else None,
        "snapshot_id": r.snapshot_id,
        "message": r.message,
        "updates": r.updates,
        "received_at": r.received_at.isoformat(),
        "updated_at": r.updated_at.isoformat(),
        "status": r.status,
        "acknowledged_at": r.acknowledged_at.isoformat() if r.acknowledged_at else None,
        "acknowledged_by": r.acknowledged_by,
        "resolved_at": r.resolved_at.isoformat() if r.resolved_at else None,
        "resolved_by": r.resolved_by,
        "resolution_note": r.resolution_note,
        "escalation_level": r.escalation_level,
    }


class IncidentConflict(Exception):
    """The workflow step is not allowed in the incident's current status."""


class IncidentStore:
    """The incident tables. Its :meth:`on_insert` is an ``InsertHook`` of the event writer (the store
    registers it); ``listeners`` are called with the records of incidents opened by each commit."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._session = db.session
        self.listeners: list[Callable[[list[IncidentRecord]], None]] = []
        event.listen(self._session, "after_commit", self._after_commit)
        event.listen(self._session, "after_rollback", lambda s: s.info.pop(_INFO_KEY, None))

    # --- from events (inside the store's transaction) ----------------------------------------

    def on_insert(self, s: Session, events: list[AnyEvent], /) -> None:
        """The insert hook: merge the batch's incident events into their rows."""
        incidents = sorted((e for e in events if isinstance(e, Incident)), key=lambda e: (e.ts, e.seq))
        if incidents:
            self.announce(s, self.apply(s, incidents))

    @staticmethod
    def announce(s: Session, opened: list[IncidentRecord]) -> None:
        """Have the listeners called with ``opened`` once ``s`` commits (never if it rolls back)."""
        if opened:
            s.info.setdefault(_INFO_KEY, []).extend(opened)

    def apply(self, s: Session, events: list[Incident]) -> list[dict[str, Any]]:
        """Merge incident events into their rows; returns the records of incidents first seen now (not closed)."""
        now = utcnow()
        opened: list[dict[str, Any]] = []
        for ev in events:
            iid = str(ev.incident_id)
            row = s.get(IncidentRow, iid, with_for_update=True)
            new = row is None
            if new:
                s.execute(
                    self.db.insert(table_of(IncidentRow))
                    .values(
                        incident_id=iid,
                        camera_id=ev.camera_id,
                        site_id=ev.site_id,
                        incident_type=ev.incident_type,
                        state="closed" if ev.state == "closed" else "open",
                        severity=ev.severity,
                        confidence=ev.confidence,
                        lane_id=ev.lane_id,
                        zone_id=ev.zone_id,
                        track_ids=json.dumps(list(ev.track_ids)),
                        started_at=ev.started_at,
                        ended_at=ev.ended_at,
                        snapshot_id=ev.snapshot_id,
                        message=ev.message,
                        updates=int(ev.state == "update"),
                        last_seq=ev.seq,
                        received_at=now,
                        updated_at=now,
                        status="new",
                        escalation_level=0,
                        notified_level=-1,
                    )
                    .on_conflict_do_nothing(index_elements=["incident_id"])
                )
                row = s.get(IncidentRow, iid, with_for_update=True, populate_existing=True)
                assert row is not None
                if ev.state != "closed":
                    opened.append(record(row))
                continue
            assert row is not None
            if row.camera_id != ev.camera_id:  # incident ids are public uuid5s: one camera never edits another's
                log.warning(
                    "camera %s sent incident %s, which belongs to camera %s: ignored", ev.camera_id, iid, row.camera_id
                )
                continue
            tracks = json.loads(row.track_ids or "[]")
            tracks += [t for t in ev.track_ids if t not in tracks]
            row.track_ids = json.dumps(tracks[:100])
            if ev.state == "closed":
                row.state, row.ended_at = "closed", ev.ended_at or row.ended_at
            if SEVERITY_RANK.get(ev.severity, 1) > SEVERITY_RANK.get(row.severity, 1):
                row.severity = ev.severity
            row.started_at = min(row.started_at, ev.started_at)
            row.snapshot_id = row.snapshot_id or ev.snapshot_id
            if ev.seq >= row.last_seq:
                row.last_seq, row.confidence = ev.seq, ev.confidence
                row.message = ev.message or row.message
            row.updates += int(ev.state == "update")
            row.updated_at = now
        return opened

    def _after_commit(self, s: Session) -> None:
        opened = s.info.pop(_INFO_KEY, None)
        if not opened:
            return
        for fn in list(self.listeners):
            try:
                fn(opened)
            except Exception:
                log.exception("incident listener failed")

    # --- reads ------------------------------------------------------------------------------

    def list(
        self,
        *,
        incident_type: str | None = None,
        camera_id: str | None = None,
        state: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Newest first; ``since``/``until`` select incidents active in that range (started before ``until``,
        not ended before ``since``)."""
        conds = []
        if incident_type:
            conds.append(IncidentRow.incident_type == incident_type)
        if camera_id:
            conds.append(IncidentRow.camera_id == camera_id)
        if state:
            conds.append(IncidentRow.state == state)
        if status:
            conds.append(IncidentRow.status == status)
        if until is not None:
            conds.append(IncidentRow.started_at < until)
        if since is not None:
            conds.append((IncidentRow.ended_at.is_(None)) | (IncidentRow.ended_at >= since))
        with self._session() as s:
            total = int(s.scalar(select(func.count()).select_from(IncidentRow).where(*conds)) or 0)
            rows = s.scalars(
                select(IncidentRow)
                .where(*conds)
                .order_by(IncidentRow.started_at.desc(), IncidentRow.incident_id)
                .limit(limit)
                .offset(offset)
            ).all()
        return [record(r) for r in rows], total

    def prune(self, days: float, now: datetime | None = None) -> dict[str, int]:
        """Retention: closed (ended) or resolved incidents unchanged for ``days``, with their audit trail
        (operator names are personal data). Open, unresolved incidents are kept however old."""
        cutoff = (now or utcnow()) - timedelta(days=days)
        finished = (IncidentRow.state == "closed") | (IncidentRow.status == "resolved")
        done = finished & (IncidentRow.updated_at < cutoff)
        quick = {"synchronize_session": False}
        with self._session.begin() as s:
            ids = select(IncidentRow.incident_id).where(done)
            actions = rowcount(
                s, delete(IncidentActionRow).where(IncidentActionRow.incident_id.in_(ids)).execution_options(**quick)
            )
            incidents = rowcount(s, delete(IncidentRow).where(done).execution_options(**quick))
        return {"incidents": incidents, "incident_actions": actions}

    def get(self, incident_id: str) -> dict[str, Any] | None:
        with self._session() as s:
            r = s.get(IncidentRow, incident_id)
            if r is None:
                return None
            out = record(r)
            acts = s.scalars(
                select(IncidentActionRow)
                .where(IncidentActionRow.incident_id == incident_id)
                .order_by(IncidentActionRow.id)
            ).all()
        out["actions"] = [
            {"at": a.at.isoformat(), "action": a.action, "actor": a.actor, "role": a.role, "note": a.note} for a in acts
        ]
        return out

    # --- operator workflow --------------------------------------------------------------------

    def acknowledge(self, incident_id: str, actor: str, role: str | None, note: str | None) -> dict[str, Any] | None:
        return self._step(incident_id, "ack", actor, role, note)

    def resolve(self, incident_id: str, actor: str, role: str | None, note: str) -> dict[str, Any] | None:
        return self._step(incident_id, "resolve", actor, role, note)

    def _step(
        self, incident_id: str, action: str, actor: str, role: str | None, note: str | None
    ) -> dict[str, Any] | None:
        now = utcnow()
        with self._session.begin() as s:
            r = s.get(IncidentRow, incident_id, with_for_update=True)
            if r is None:
                return None
            if r.status == "resolved":
                raise IncidentConflict(f"incident {incident_id} is already resolved")
            if action == "ack":
                if r.status == "acknowledged":
                    raise IncidentConflict(f"incident {incident_id} is already acknowledged by {r.acknowledged_by}")
                r.status, r.acknowledged_at, r.acknowledged_by = "acknowledged", now, actor
            else:
                if r.acknowledged_at is None:
                    r.acknowledged_at, r.acknowledged_by = now, actor
                r.status, r.resolved_at, r.resolved_by, r.resolution_note = "resolved", now, actor, note
            r.updated_at = now
            s.add(IncidentActionRow(incident_id=incident_id, at=now, action=action, actor=actor, role=role, note=note))
            s.flush()
            return record(r)

    def add_action(self, incident_id: str, action: str, note: str | None, actor: str = "system") -> None:
        with self._session.begin() as s:
            s.add(IncidentActionRow(incident_id=incident_id, at=utcnow(), action=action, actor=actor, note=note))

    # --- notification outbox and escalation -----------------------------------------------------

    def escalate_due(
        self, after_s: float, max_level: int, now: datetime | None = None
    ) -> builtins.list[tuple[dict[str, Any], int]]:
        """Raise ``escalation_level`` of open, unacknowledged incidents received ``after_s`` × (level + 1) ago."""
        now = now or utcnow()
        out = []
        with self._session() as s:
            rows = s.scalars(
                select(IncidentRow).where(
                    IncidentRow.status == "new",
                    IncidentRow.state == "open",
                    IncidentRow.escalation_level < max_level,
                    IncidentRow.received_at <= now - timedelta(seconds=after_s),
                )
            ).all()
        for r in rows:
            if now < r.received_at + timedelta(seconds=after_s * (r.escalation_level + 1)):
                continue
            level = r.escalation_level + 1
            with self._session.begin() as s:
                done = rowcount(
                    s,
                    update(IncidentRow)
                    .where(
                        IncidentRow.incident_id == r.incident_id,
                        IncidentRow.escalation_level == level - 1,
                        IncidentRow.status == "new",
                    )
                    .values(escalation_level=level),
                )
                if done:
                    s.add(
                        IncidentActionRow(
                            incident_id=r.incident_id,
                            at=now,
                            action="escalate",
                            actor="system",
                            note=f"not acknowledged after {after_s * level:g} s: escalation level {level}",
                        )
                    )
            if done:
                r.escalation_level = level
                out.append((record(r), level))
        return out

    def claim_notifications(self, limit: int = 50) -> builtins.list[tuple[dict[str, Any], int]]:
        """Incidents with a notification level not sent yet; each returned one is claimed by this process."""
        with self._session() as s:
            rows = s.scalars(
                select(IncidentRow)
                .where(IncidentRow.notified_level < IncidentRow.escalation_level)
                .order_by(IncidentRow.received_at)
                .limit(limit)
            ).all()
        out = []
        for r in rows:
            with self._session.begin() as s:
                got = rowcount(
                    s,
                    update(IncidentRow)
                    .where(IncidentRow.incident_id == r.incident_id, IncidentRow.notified_level == r.notified_level)
                    .values(notified_level=r.escalation_level),
                )
            if got and not (r.status == "resolved" and r.escalation_level > 0):
                out.append((record(r), r.escalation_level))
        return out
