"""The ingest's counters (read by ``/metrics`` and ``/health``) and how its health state is judged."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, TypedDict

#: Ingest health states, worst first (``Ingest.health``).
IngestState = Literal["stalled", "retrying", "disconnected", "degraded", "ok"]
INGEST_STATES: tuple[IngestState, ...] = ("stalled", "retrying", "disconnected", "degraded", "ok")


class CountersSnapshot(TypedDict):
    received: int
    stored: int
    duplicates: int
    dead_letters: int
    batches: int
    db_errors: int
    events_received: int
    gaps_detected: int
    replay_requests: int
    retries: int
    retrying: int
    db_rejected: int
    splits: int
    camera_errors: int
    last_batch_ms: float
    event_lag_s: float
    commit_lag_s: float
    missing: dict[str, int]


@dataclass
class IngestCounters:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    batches: int = 0
    db_errors: int = 0
    events_received: int = 0
    gaps_detected: int = 0
    replay_requests: int = 0
    #: Transient database failures retried (each wait counts once); ``retrying``: how many in a row now.
    retries: int = 0
    retrying: int = 0
    #: Messages the database refused for good (kept as dead letters with its error), batch splits it took.
    db_rejected: int = 0
    splits: int = 0
    #: Cameras whose status/watermark update failed (other cameras of the batch still moved on).
    camera_errors: int = 0
    last_batch_ms: float = 0.0
    #: Event time to commit (edge clock vs server clock: includes clock drift), newest batch, max.
    event_lag_s: float = 0.0
    #: MQTT receive to commit, newest batch, max.
    commit_lag_s: float = 0.0
    committed: dict[str, int] = field(default_factory=dict)
    #: Open gaps per camera: number of seqs missing between the watermark and the next stored seq.
    missing: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> CountersSnapshot:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "dead_letters": self.dead_letters,
            "batches": self.batches,
            "db_errors": self.db_errors,
            "events_received": self.events_received,
            "gaps_detected": self.gaps_detected,
            "replay_requests": self.replay_requests,
            "retries": self.retries,
            "retrying": self.retrying,
            "db_rejected": self.db_rejected,
            "splits": self.splits,
            "camera_errors": self.camera_errors,
            "last_batch_ms": round(self.last_batch_ms, 3),
            "event_lag_s": round(self.event_lag_s, 3),
            "commit_lag_s": round(self.commit_lag_s, 3),
            "missing": dict(self.missing),
        }


class DeadLetterRate:
    """Dead letters stored in the last minute (the writer adds, health reads from any thread)."""

    def __init__(self) -> None:
        self._times: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        now = time.monotonic()
        with self._lock:  # trimmed here too: nobody may be reading the rate
            self._trim(now)
            self._times.append((now, n))

    def per_min(self) -> int:
        with self._lock:
            self._trim(time.monotonic())
            return sum(n for _t, n in self._times)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0][0] < now - 60.0:
            self._times.popleft()


@dataclass(frozen=True)
class HealthInputs:
    """What the health state is judged from, read at one moment."""

    oldest_unacked_s: float
    #: Seconds the current run of transient database failures has lasted (None: not retrying).
    retrying_for_s: float | None
    retries_in_a_row: int
    connected: bool
    dead_letters_per_min: int


def assess(h: HealthInputs, *, stall_after_s: float, dead_letters_warn_per_min: float) -> tuple[IngestState, list[str]]:
    """``(state, problems)``: the worst of ``stalled`` (a message unacknowledged longer than
    ``stall_after_s``), ``retrying`` (transient database errors now), ``disconnected`` (from the
    broker), ``degraded`` (dead letters above ``dead_letters_warn_per_min``), else ``ok``."""
    problems: list[str] = []
    states: list[IngestState] = []
    if h.oldest_unacked_s > stall_after_s:
        states.append("stalled")
        problems.append(
            f"the oldest unacknowledged message is {h.oldest_unacked_s:.0f} s old "
            f"(server.ingest.stall_after_s {stall_after_s:g})"
        )
    if h.retrying_for_s is not None:
        states.append("retrying")
        problems.append(f"database errors: batch retried {h.retries_in_a_row} times in {h.retrying_for_s:.0f} s")
    if not h.connected:
        states.append("disconnected")
        problems.append("not connected to the MQTT broker")
    if h.dead_letters_per_min > dead_letters_warn_per_min:
        states.append("degraded")
        problems.append(
            f"{h.dead_letters_per_min} dead letters in the last minute (server.ingest.dead_letters_warn_per_min "
            f"{dead_letters_warn_per_min:g})"
        )
    return (states[0] if states else "ok"), problems


class IngestStats(CountersSnapshot):
    """``Ingest.stats()``: the counters with the health state and the queue."""

    state: IngestState
    problems: list[str]
    connected: bool
    queue_depth: int
    oldest_unacked_s: float
    dead_letters_per_min: int
