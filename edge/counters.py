"""One camera's running totals, read by ``EdgeWorker.stats()``, the heartbeat and the metrics endpoint."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TypedDict

from citywatch.contract import SourceState


@dataclass
class CameraCounters:
    """Each field is written by one thread and read by others: plain ints are fine under the GIL."""

    frames: int = 0  # offered by the source
    frames_processed: int = 0
    frames_detected: int = 0  # the detector ran
    frames_skipped: int = 0  # skipped by design (adaptive stride, detect_every), bridged by the tracker
    inference_ms_total: float = 0.0
    crossings: Counter[str] = field(default_factory=Counter)
    movements: int = 0
    zone_reports: int = 0
    incidents: int = 0
    snapshots: int = 0
    suppressed: int = 0
    events_appended: int = 0
    events_rejected: int = 0
    events_published: int = 0
    resends: int = 0
    replayed: int = 0
    committed_seq: int = 0
    config_rejected: int = 0
    config_applied: int = 0
    batches: int = 0
    fps_in: float = 0.0
    fps_processed: float = 0.0
    inference_ms: float = 0.0


class CameraStats(TypedDict):
    """One camera's entry of ``EdgeWorker.stats()`` (read by the metrics endpoint, the demo and the benches)."""

    frames: int
    frames_processed: int
    frames_detected: int
    frames_skipped: int
    frames_handled: int
    frames_dropped: int
    source_reconnects: int
    source_stalls: int
    source_last_recovery_s: float | None
    fps_in: float
    fps_processed: float
    inference_ms: float
    tamper: list[str]
    resumed_from: tuple[int, int] | None
    suppressed: int
    movements: int
    zone_reports: int
    incidents: int
    snapshots: int
    batches: int
    events_rejected: int
    outbox_status_dropped: int
    outbox_zone_dropped: int
    outbox_crossings_merged: int
    crossings: dict[str, int]
    events_appended: int
    events_published: int
    resends: int
    replayed: int
    committed_seq: int
    outbox_depth: int | None
    source_state: SourceState
    message: str | None
    mqtt_connected: bool
    config_version: str
    config_applied: int
    config_rejected: int
    invalid_controls: int
