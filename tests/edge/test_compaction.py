"""The full-outbox policy (edge/compaction.py) on its own: what is dropped, what is merged, what is kept."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from citywatch.contract import CameraStatus, CountTotal, LineCrossing, Movement, ZoneOccupancy
from edge.compaction import Compaction, shrink_suffix

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)
BASE = {"camera_id": "cam-1", "site_id": "s", "ts": T0, "config_version": "c", "model_version": "m"}


def row(event: LineCrossing | CameraStatus | ZoneOccupancy | Movement) -> tuple[str, str]:
    return event.kind, event.model_dump_json()


def status(seq: int) -> tuple[str, str]:
    return row(CameraStatus(event_id=uuid.uuid4(), seq=seq, **BASE, source_state="ok", fps_in=1, fps_processed=1,
                            inference_ms=1, outbox_depth=0, uptime_s=1))  # fmt: skip


def zone(seq: int) -> tuple[str, str]:
    return row(ZoneOccupancy(event_id=uuid.uuid4(), seq=seq, **BASE, zone_id="z1", interval_s=1, frame_index=seq,
                             occupied_fraction=0.5))  # fmt: skip


def crossing(seq: int) -> tuple[str, str]:
    return row(LineCrossing(event_id=uuid.uuid4(), seq=seq, **BASE, line_id="l1", direction="in", class_name="car",
                            track_id=seq, frame_index=seq))  # fmt: skip


def movement(seq: int) -> tuple[str, str]:
    return row(Movement(event_id=uuid.uuid4(), seq=seq, **BASE, track_id=seq, class_name="car", entry_zone="a",
                        exit_zone="b", entry_frame=0, exit_frame=seq, duration_s=1))  # fmt: skip


def test_heartbeats_go_first_except_the_newest_even_when_that_is_enough() -> None:
    res = Compaction()
    kept = shrink_suffix(
        [status(1), crossing(2), status(3), status(4)], fixed=0, target=10, merge_interval_s=900, res=res
    )
    assert [e.kind for e in kept] == ["line_crossing", "camera_status"] and kept[1].seq == 4
    assert res.status_dropped == 2 and res.crossings_merged == 0


def test_zone_reports_go_oldest_first_and_only_as_many_as_needed() -> None:
    res = Compaction()
    rows = [zone(1), zone(2), crossing(3), zone(4)]
    kept = shrink_suffix(rows, fixed=1, target=3, merge_interval_s=900, res=res)
    assert [(e.kind, e.seq) for e in kept] == [("line_crossing", 3), ("zone_occupancy", 4)] and res.zone_dropped == 2


def test_crossings_merge_into_one_total_that_keeps_every_count_and_movements_stay() -> None:
    res = Compaction()
    rows = [crossing(1), crossing(2), movement(3), crossing(4)]
    kept = shrink_suffix(rows, fixed=0, target=2, merge_interval_s=900, res=res)
    assert [e.kind for e in kept] == ["count_total", "movement"]
    total = kept[0]
    assert isinstance(total, CountTotal) and total.count == 3 and total.interval_s == 900
    assert (res.crossings_merged, res.totals, res.interval_s) == (3, 1, 900)
