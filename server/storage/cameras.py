"""Cameras: what the server knows about each (site, last seen, state, newest status heartbeat,
versions, watermark) and its bookkeeping row (observation cursor, pushed configuration, replays)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from citywatch.contract import CameraStatus
from server import db_errors
from server.storage.database import Database
from server.storage.models import CameraRow, CameraStateRow, EventRow, table_of
from server.storage.watermarks import Mark, Watermarks

log = logging.getLogger(__name__)

CameraState = Literal["online", "offline", "unknown"]


@dataclass(frozen=True)
class CameraUpdateIn:
    """What one ingest batch tells about a camera (:meth:`Cameras.apply_cameras`)."""

    camera_id: str
    site_id: str | None
    seen_at: datetime | None = None
    state: CameraState | None = None
    status: CameraStatus | None = None
    config_version: str | None = None
    model_version: str | None = None
    floor: int | None = None
    has_events: bool = False


def _set_status(
    cam: CameraRow,
    site_id: str | None,
    *,
    seen_at: datetime | None,
    state: CameraState | None,
    status: CameraStatus | None,
    config_version: str | None,
    model_version: str | None,
) -> None:
    if site_id and cam.site_id != site_id:
        cam.site_id = site_id
    if seen_at is not None:
        if cam.first_seen is None:
            cam.first_seen = seen_at
        if cam.last_seen is None or seen_at > cam.last_seen:
            cam.last_seen = seen_at
    if state and cam.state != state:
        cam.state = state
    if status is not None:
        old_seq = -1
        if cam.last_status:
            try:
                old_seq = int(json.loads(cam.last_status).get("seq", -1))
            except (ValueError, TypeError, AttributeError):
                old_seq = -1
        if status.seq >= old_seq:  # a redelivered old heartbeat must not hide a newer one
            cam.last_status = status.model_dump_json()
    if config_version and cam.config_version != config_version:
        cam.config_version = config_version
    if model_version and cam.model_version != model_version:
        cam.model_version = model_version


class Cameras:
    """The ``cameras`` and ``camera_state`` tables; watermarks are walked on the rows locked here."""

    def __init__(self, db: Database, watermarks: Watermarks) -> None:
        self.db = db
        self.watermarks = watermarks

    # --- rows inside a caller's transaction ---------------------------------------------------

    def ensure(self, s: Session, camera_id: str, site_id: str | None) -> CameraRow:
        """The camera's row, created if missing, locked (``FOR UPDATE`` on PostgreSQL)."""
        cam = s.get(CameraRow, camera_id, with_for_update=True)
        if cam is None:
            s.execute(
                self.db.insert(table_of(CameraRow))
                .values(camera_id=camera_id, site_id=site_id, state="unknown", committed_seq=0)
                .on_conflict_do_nothing(index_elements=["camera_id"])
            )
            cam = s.get(CameraRow, camera_id, with_for_update=True, populate_existing=True)
            assert cam is not None
        return cam

    def state_row(self, s: Session, camera_id: str) -> CameraStateRow:
        """The camera's ``camera_state`` row, created if missing, locked."""
        st = s.get(CameraStateRow, camera_id, with_for_update=True)
        if st is None:
            s.execute(
                self.db.insert(table_of(CameraStateRow))
                .values(camera_id=camera_id, replay_requests=0)
                .on_conflict_do_nothing(index_elements=["camera_id"])
            )
            st = s.get(CameraStateRow, camera_id, with_for_update=True, populate_existing=True)
            assert st is not None
        return st

    def _lock(self, s: Session, sites: dict[str, str | None]) -> dict[str, CameraRow]:
        """The camera rows of ``sites`` (camera -> site), created if missing, locked in camera order."""
        ids = sorted(sites)

        def load() -> dict[str, CameraRow]:
            rows = s.scalars(
                select(CameraRow)
                .where(CameraRow.camera_id.in_(ids))
                .order_by(CameraRow.camera_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).all()
            return {r.camera_id: r for r in rows}

        cams = load()
        missing = [cid for cid in ids if cid not in cams]
        if missing:
            s.execute(
                self.db.insert(table_of(CameraRow))
                .values(
                    [
                        {"camera_id": cid, "site_id": sites[cid], "state": "unknown", "committed_seq": 0}
                        for cid in missing
                    ]
                )
                .on_conflict_do_nothing(index_elements=["camera_id"])
            )
            cams = load()
        return cams

    # --- writes -------------------------------------------------------------------------------

    def upsert_camera_status(
        self,
        camera_id: str,
        site_id: str | None = None,
        *,
        seen_at: datetime | None = None,
        state: CameraState | None = None,
        status: CameraStatus | None = None,
        config_version: str | None = None,
        model_version: str | None = None,
    ) -> None:
        """Record that a camera was heard from: last seen, state, newest status heartbeat, versions."""
        with self.db.session.begin() as s:
            cam = self.ensure(s, camera_id, site_id)
            _set_status(
                cam,
                site_id,
                seen_at=seen_at,
                state=state,
                status=status,
                config_version=config_version,
                model_version=model_version,
            )

    def advance_watermark(self, camera_id: str, *, floor: int | None = None, site_id: str | None = None) -> int:
        """Move ``committed_seq`` to the highest N with seqs 1..N all stored; returns N (``Watermarks.walk``)."""
        with self.db.session.begin() as s:
            if site_id is None:
                site_id = s.scalar(select(EventRow.site_id).where(EventRow.camera_id == camera_id).limit(1))
            cam = self.ensure(s, camera_id, site_id)
            return self.watermarks.walk(s, cam, floor)[0]

    def apply_cameras(
        self,
        updates: Sequence[CameraUpdateIn],
        *,
        on_error: Callable[[str, Exception], None] | None = None,
    ) -> dict[str, Mark]:
        """After a committed batch: every camera's status (``upsert_camera_status``) and, for cameras that
        sent events, its watermark (``advance_watermark``), all in one transaction.

        With ``on_error``, one camera's bad values cannot hold the others back: when the transaction
        fails for a reason that is not transient, each camera is applied alone and a camera that still
        fails is reported as ``on_error(camera_id, exc)`` and left out of the result.

        Returns ``{camera_id: (committed_seq, lowest stored seq above it or None)}`` for those with events.
        """
        if not updates:
            return {}
        try:
            return self._apply(updates)
        except Exception as exc:
            if on_error is None or db_errors.classify(exc) == "transient":
                raise
            if len(updates) == 1:
                on_error(updates[0].camera_id, exc)
                return {}
            first = exc
        log.warning(
            "updating %d cameras together failed (%s); applying each alone", len(updates), db_errors.describe(first)
        )
        out: dict[str, Mark] = {}
        for u in updates:
            try:
                out.update(self._apply([u]))
            except Exception as exc:  # noqa: BLE001 - reported to the caller, the other cameras go on
                on_error(u.camera_id, exc)
        return out

    def _apply(self, updates: Sequence[CameraUpdateIn]) -> dict[str, Mark]:
        with self.db.session.begin() as s:
            cams = self._lock(s, {u.camera_id: u.site_id for u in updates})
            # the walks read events only: flush the camera rows once, at commit (one executemany)
            s.autoflush = False
            for u in sorted(updates, key=lambda u: u.camera_id):
                _set_status(
                    cams[u.camera_id],
                    u.site_id,
                    seen_at=u.seen_at,
                    state=u.state,
                    status=u.status,
                    config_version=u.config_version,
                    model_version=u.model_version,
                )
            return self.watermarks.walk_many(s, [(cams[u.camera_id], u.floor) for u in updates if u.has_events])

    def note_replay_request(self, camera_id: str, at: datetime) -> None:
        with self.db.session.begin() as s:
            st = self.state_row(s, camera_id)
            st.replay_requests = (st.replay_requests or 0) + 1
            st.last_replay_at = at

    def set_pushed_config(self, camera_id: str, config_json: str, version: str, at: datetime) -> None:
        with self.db.session.begin() as s:
            st = self.state_row(s, camera_id)
            st.pushed_config = config_json
            st.pushed_config_version = version
            st.pushed_at = at

    # --- reads --------------------------------------------------------------------------------

    def camera_states(self) -> dict[str, dict[str, Any]]:
        with self.db.session() as s:
            rows = s.scalars(select(CameraStateRow)).all()
        return {
            r.camera_id: {
                "pushed_config_version": r.pushed_config_version,
                "pushed_config": json.loads(r.pushed_config) if r.pushed_config else None,
                "pushed_at": r.pushed_at,
                "replay_requests": int(r.replay_requests or 0),
                "last_replay_at": r.last_replay_at,
                "observed_to": datetime.fromtimestamp(r.observed_to_s, tz=timezone.utc) if r.observed_to_s else None,
            }
            for r in rows
        }

    def list_cameras(self) -> list[dict[str, Any]]:
        with self.db.session() as s:
            rows = s.scalars(select(CameraRow).order_by(CameraRow.camera_id)).all()
        out = []
        for r in rows:
            status = None
            if r.last_status:
                try:
                    status = json.loads(r.last_status)
                except ValueError:
                    status = None
            out.append(
                {
                    "camera_id": r.camera_id,
                    "site_id": r.site_id,
                    "name": r.name,
                    "lat": r.lat,
                    "lon": r.lon,
                    "first_seen": r.first_seen,
                    "last_seen": r.last_seen,
                    "state": r.state,
                    "last_status": status,
                    "config_version": r.config_version,
                    "model_version": r.model_version,
                    "committed_seq": r.committed_seq,
                }
            )
        return out
