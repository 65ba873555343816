"""Gap repair: seqs missing under a camera's stored events are asked for again.

A stored seq above a camera's watermark means the seqs between never arrived (lost, or still in
flight). After ``gap_grace_s`` the edge is asked to replay them, at most once per
``replay_interval_s`` per camera, until the watermark walks past them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from server.ingest.control import ControlPublisher
from server.ingest.health import IngestCounters
from server.storage.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gap:
    site_id: str
    from_seq: int
    to_seq: int
    #: Monotonic time the gap was first seen starting at ``from_seq``.
    since: float


class GapTracker:
    """Open gaps per camera, and the replay requests that close them."""

    def __init__(
        self,
        store: Store,
        control: ControlPublisher,
        counters: IngestCounters,
        *,
        grace_s: float,
        replay_interval_s: float,
    ) -> None:
        self._store = store
        self._control = control
        self._counters = counters
        self.grace_s = grace_s
        self.replay_interval_s = replay_interval_s
        self.gaps: dict[str, Gap] = {}

    def note(self, site_id: str, camera_id: str, committed: int, above: int | None | bool = False) -> None:
        """A stored seq above the watermark means ``committed + 1 .. next - 1`` never arrived.

        ``above``: that next stored seq when the caller already knows it (``False``: look it up)."""
        if above is False:
            above = self._store.first_seq_above(camera_id, committed)
        if above is None:
            self.gaps.pop(camera_id, None)
            self._counters.missing.pop(camera_id, None)
            return
        lo, hi = committed + 1, int(above) - 1
        old = self.gaps.get(camera_id)
        if old is None or old.from_seq != lo:
            self._counters.gaps_detected += 1
            log.info("camera %s: seq %d..%d missing; will ask the edge to replay them", camera_id, lo, hi)
            self.gaps[camera_id] = Gap(site_id, lo, hi, time.monotonic())
        else:
            self.gaps[camera_id] = Gap(site_id, lo, hi, old.since)
        self._counters.missing[camera_id] = hi - lo + 1

    def check(self) -> None:
        """Ask edges to replay gaps older than ``grace_s`` (in-flight events get that long to arrive),
        at most once per ``replay_interval_s`` per camera."""
        if not self.gaps or not self._control.connected:
            return
        now = time.monotonic()
        for camera_id, gap in list(self.gaps.items()):
            if now - gap.since < self.grace_s:
                continue
            last = self._control.last_replay.get(camera_id)
            if last is not None and now - last < self.replay_interval_s:
                continue
            try:  # another ingest process (shared subscription) may have filled it meanwhile
                committed = self._store.advance_watermark(camera_id, site_id=gap.site_id)
                self._counters.committed[camera_id] = committed
                self.note(gap.site_id, camera_id, committed)
            except Exception:
                log.exception("re-checking the gap of camera %s failed", camera_id)
                continue
            still = self.gaps.get(camera_id)
            if still is not None:
                self._control.request_replay(gap.site_id, camera_id, still.from_seq, still.to_seq)
