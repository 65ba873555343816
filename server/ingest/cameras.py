"""After a commit: what the batch says about each camera (status, watermark floor, versions), applied to
the camera rows, and the watermarks that moved published to the edges."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from citywatch.contract import AnyEvent, CameraStatus, Topics
from server import db_errors
from server.ingest.control import ControlPublisher
from server.ingest.gaps import GapTracker
from server.ingest.health import IngestCounters
from server.ingest.messages import DEAD, Dropped, Events, Invalid, Received, Rejected, Status
from server.ingest.writing import resolving_dead_letter
from server.storage.cameras import CameraUpdateIn
from server.storage.store import Store

log = logging.getLogger(__name__)


@dataclass
class CameraUpdate:
    site_id: str
    seen_at: datetime | None = None
    state: Literal["online", "offline"] | None = None
    status: CameraStatus | None = None
    latest: AnyEvent | None = None
    floor: int | None = None
    has_events: bool = False
    had_duplicates: bool = False


@dataclass
class StateChange:
    camera_id: str
    site_id: str
    state: Literal["online", "offline"]


@dataclass
class BatchSummary:
    """The committed messages of one batch, by camera."""

    events: list[AnyEvent] = field(default_factory=list)
    updates: dict[str, CameraUpdate] = field(default_factory=dict)
    state_changes: list[StateChange] = field(default_factory=list)
    #: Dead letters stored (a dropped message is not one).
    dead_letters: int = 0


def summarize(topics: Topics, msgs: list[Received], duplicates: list[str]) -> BatchSummary:
    """What ``msgs`` (committed) change for each camera. ``duplicates``: event ids already stored before."""
    out = BatchSummary()
    updates = out.updates
    for m in msgs:
        result = m.result
        if isinstance(result, DEAD):
            out.dead_letters += not isinstance(result, Dropped)
            if isinstance(result, Invalid):
                log.warning("dead letter on %s: %s", m.topic, result.reason)
            if isinstance(result, (Invalid, Rejected)):
                letter, site = resolving_dead_letter(topics, m, result)
                if letter.camera_id and site:  # walk its watermark: the letter resolved some of its seqs
                    updates.setdefault(letter.camera_id, CameraUpdate(site_id=site)).has_events = True
        elif isinstance(result, Events):
            out.events.extend(result.events)
            for ev in result.events:
                u = updates.get(ev.camera_id)
                if u is None:
                    u = updates[ev.camera_id] = CameraUpdate(site_id=ev.site_id)
                u.has_events = True
                u.state = "online"
                if u.seen_at is None or m.received_at > u.seen_at:
                    u.seen_at = m.received_at
                if u.latest is None or ev.seq >= u.latest.seq:
                    u.latest = ev
                if isinstance(ev, CameraStatus):
                    if u.status is None or ev.seq >= u.status.seq:
                        u.status = ev
                    if ev.outbox_first_seq is not None:
                        # the outbox cannot start above the heartbeat's own seq: never lift past it
                        f = min(ev.outbox_first_seq - 1, ev.seq)
                        u.floor = f if u.floor is None else max(u.floor, f)
        elif isinstance(result, Status):
            u = updates.setdefault(result.camera_id, CameraUpdate(site_id=result.site_id))
            u.state = result.status.state
            out.state_changes.append(StateChange(result.camera_id, result.site_id, result.status.state))
    if duplicates:
        dup_set = set(duplicates)
        for ev in out.events:
            if ev.camera_id in updates and str(ev.event_id) in dup_set:
                updates[ev.camera_id].had_duplicates = True
    return out


class CameraSync:
    """Applies a batch's camera updates and publishes the watermarks that moved (or were asked again)."""

    def __init__(self, store: Store, counters: IngestCounters, gaps: GapTracker, control: ControlPublisher) -> None:
        self._store = store
        self._counters = counters
        self._gaps = gaps
        self._control = control

    def apply(self, updates: dict[str, CameraUpdate]) -> None:
        """Status and watermark of every camera of the batch, then publish. One camera's failure (a
        value its row cannot hold) leaves the others' updates in place (``Store.apply_cameras``)."""
        items = [
            CameraUpdateIn(
                camera_id=camera_id,
                site_id=u.site_id,
                seen_at=u.seen_at,
                state=u.state,
                status=u.status,
                config_version=u.latest.config_version if u.latest else None,
                model_version=u.latest.model_version if u.latest else None,
                floor=u.floor,
                has_events=u.has_events,
            )
            for camera_id, u in updates.items()
        ]

        def failed(camera_id: str, exc: Exception) -> None:
            self._counters.camera_errors += 1
            log.error("updating camera %s failed: %s", camera_id, db_errors.describe(exc))

        try:
            marks = self._store.apply_cameras(items, on_error=failed)
        except Exception:
            log.exception("updating cameras %s failed", sorted(updates))
            return
        for camera_id, (committed, above) in marks.items():
            u = updates[camera_id]
            self._counters.committed[camera_id] = committed
            self._gaps.note(u.site_id, camera_id, committed, above)
            if committed != self._control.published.get(camera_id) or u.had_duplicates:
                self._control.publish_committed(u.site_id, camera_id, committed)
