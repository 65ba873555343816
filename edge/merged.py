"""Per-interval totals of line crossings, for a full outbox (``citywatch.contract.CountTotal``, schema 1.2).

Only never-published crossings are merged (the server cannot hold a crossing and the total that
includes it), and a total is never merged away: counts are never dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from pydantic import TypeAdapter

from citywatch.contract import (
    CameraStatus,
    CountTotal,
    Event,
    Incident,
    LineCrossing,
    Movement,
    ZoneOccupancy,
    deterministic_event_id,
)

#: Everything the outbox may hold: the contract's events (``count_total`` included since 1.2).
AnyEvent = LineCrossing | CameraStatus | CountTotal | ZoneOccupancy | Movement | Incident
stored_adapter: TypeAdapter[AnyEvent] = TypeAdapter(Event)
#: ``emit(event)``: called with every event stored in the outbox (e.g. a local display).
Emit = Callable[[AnyEvent], None]

__all__ = ["AnyEvent", "CountTotal", "Emit", "interval_start", "merge_group", "stored_adapter"]


def interval_start(ts: datetime, interval_s: int) -> datetime:
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % interval_s, timezone.utc)


def merge_group(events: list[LineCrossing | CountTotal], interval_s: int, seq: int) -> CountTotal:
    """One total from crossings and/or earlier totals of the same line, direction, class and interval."""
    first = events[0]
    start = interval_start(first.ts, interval_s)
    count = sum(e.count if isinstance(e, CountTotal) else 1 for e in events)
    frames_lo = [e.first_frame_index if isinstance(e, CountTotal) else e.frame_index for e in events]
    frames_hi = [e.last_frame_index if isinstance(e, CountTotal) else e.frame_index for e in events]
    ids = sorted(str(e.event_id) for e in events)
    event_id: uuid.UUID = deterministic_event_id(
        first.camera_id,
        "count_total",
        first.line_id,
        first.direction,
        first.class_name,
        start.isoformat(),
        interval_s,
        *ids,
    )
    return CountTotal(
        event_id=event_id,
        camera_id=first.camera_id,
        site_id=first.site_id,
        seq=seq,
        ts=start,
        config_version=events[-1].config_version,
        model_version=events[-1].model_version,
        line_id=first.line_id,
        direction=first.direction,
        class_name=first.class_name,
        count=count,
        interval_start=start,
        interval_end=start + timedelta(seconds=interval_s),
        interval_s=interval_s,
        first_frame_index=min(frames_lo),
        last_frame_index=max(frames_hi),
    )
