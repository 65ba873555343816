"""The bounded outbox: heartbeats dropped first, crossings merged into per-interval totals, never lost."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from edge_testkit import FakeServer, camera_dict, fake_factory, make_clip, make_config
from support import wait_for

from citywatch.contract import CameraStatus, LineCrossing, ZoneOccupancy
from edge.merged import CountTotal
from edge.outbox import Outbox
from edge.worker import EdgeWorker

T0 = datetime(2025, 1, 1, 7, 0, tzinfo=timezone.utc)


def _crossing(seq: int, i: int, direction: str = "in") -> LineCrossing:
    return LineCrossing(
        event_id=uuid.uuid4(), camera_id="c", site_id="s", seq=seq, ts=T0 + timedelta(seconds=i * 10),
        config_version="v", model_version="m", line_id="l1", direction=direction, class_name="car",
        track_id=i, frame_index=i,
    )  # fmt: skip


def _status(seq: int) -> CameraStatus:
    return CameraStatus(
        event_id=uuid.uuid4(), camera_id="c", site_id="s", seq=seq, ts=T0, config_version="v", model_version="m",
        source_state="ok", fps_in=1, fps_processed=1, inference_ms=1, outbox_depth=0, uptime_s=1,
    )  # fmt: skip


def _zone(seq: int) -> ZoneOccupancy:
    return ZoneOccupancy(
        event_id=uuid.uuid4(), camera_id="c", site_id="s", seq=seq, ts=T0, config_version="v", model_version="m",
        zone_id="z", interval_s=10, frame_index=1, occupied_fraction=0.5,
    )  # fmt: skip


def test_compaction_drops_heartbeats_then_merges_unsent_crossings_and_keeps_seqs_contiguous(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", max_events=None, merge_interval_s=900)
    for i in range(150):  # 150 crossings over 25 min, a heartbeat and a zone report after every 10th
        ob.append("c", lambda s, i=i: _crossing(s, i, "in" if i % 3 else "out"))
        if i % 10 == 9:
            ob.append("c", _status)
            ob.append("c", _zone)
    published = [r.seq for r in ob.pending("c", 20)]
    ob.mark_sent("c", published, time.monotonic())  # the first 20 may be at the server: untouchable
    before = {r.seq: r.payload for r in ob.pending("c", 20)}
    ob.max_events = 100
    res = ob.compact("c")
    rows = ob.pending("c", 10_000)
    events = [r.event() for r in rows]
    assert {r.seq: r.payload for r in rows[:20]} == before
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert ob.last_seq("c") == len(rows)
    assert [e.kind for e in events[20:]].count("camera_status") == 1  # only the newest heartbeat is kept
    assert res.status_dropped == 13 and res.zone_dropped > 0  # 14 unsent, the newest kept and res.crossings_merged > 0
    counts = [e.count if isinstance(e, CountTotal) else 1 for e in events if e.kind in ("line_crossing", "count_total")]
    counted = sum(counts)
    assert counted == 150  # no count is lost
    totals = [e for e in events if isinstance(e, CountTotal)]
    assert {(t.interval_s, t.interval_start.minute) for t in totals} <= {(900, 0), (900, 15)}
    assert all(t.interval_end - t.interval_start == timedelta(seconds=900) for t in totals)
    assert len(rows) <= 100


def test_compaction_goes_coarser_when_totals_are_still_too_many(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", merge_interval_s=60)
    for i in range(400):  # 400 crossings 10 s apart: 67 one-minute totals, 2 hourly ones
        ob.append("c", lambda s, i=i: _crossing(s, i))
    ob.max_events = 100
    res = ob.compact("c", target=50)
    events = [r.event() for r in ob.pending("c", 10_000)]
    assert res.interval_s == 3600 and all(e.kind == "count_total" and e.interval_s == 3600 for e in events)
    assert sum(e.count for e in events) == 400 and len(events) == 2


def test_outbox_survives_reopen_with_its_checkpoint_and_config(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as ob:
        ob.append("c", lambda s: _crossing(s, 1), position=("clip.avi:10", 0, 41))
        ob.save_position("c", "clip.avi:10", 0, 30)  # never moves backwards
        ob.save_config("c", "v2", "v1", {"id": "c", "source": "x"})
    with Outbox(tmp_path / "o.sqlite") as ob:
        pos = ob.position("c")
        assert (pos.source_key, pos.pass_no, pos.frame_index, pos.ended) == ("clip.avi:10", 0, 41, False)
        assert ob.applied_config("c") == ("v2", "v1", {"id": "c", "source": "x"})
        assert ob.depth("c") == 1


@pytest.mark.services
def test_full_outbox_while_broker_is_down_delivers_every_count_as_crossings_or_totals(
    tmp_path: Path, private_broker, capsys
) -> None:
    frames = 600
    clip = str(make_clip(tmp_path / "c.avi", frames))
    config = make_config(
        tmp_path,
        [camera_dict("cam-f", clip)],
        port=private_broker.port,
        outbox_max_events=100,
        heartbeat_s=0.05,
        mqtt_reconnect_max_s=2,
    )
    private_broker.stop()
    worker = EdgeWorker(config, pipeline_factory=fake_factory(range(frames)))
    worker.start()
    try:
        assert worker.wait_sources_done(60)
        # More heartbeats into the full outbox until a compaction has dropped some (it runs on its own
        # schedule: a fixed 0.3 s was sometimes too short on a quiet machine, which had finished the clip
        # before two heartbeats met in one compaction).
        wait_for(lambda: worker.stats()["cam-f"]["outbox_status_dropped"] > 0, 10)
        stats = worker.stats()["cam-f"]
        depth_full = stats["outbox_depth"]
        # Heartbeats keep arriving every 50 ms, so an empty outbox is a race; what must get through is
        # everything the outbox held when the broker came back.
        held_up_to = worker.outbox.last_seq("cam-f")
        private_broker.start()
        t = time.monotonic()
        with FakeServer(config) as server:
            assert wait_for(lambda: (worker.stats()["cam-f"]["committed_seq"] or 0) >= held_up_to, 60), worker.stats()
            drained_s = time.monotonic() - t
            final = worker.stats()["cam-f"]
    finally:
        worker.stop(10)
    counted = server.counted("cam-f")
    assert counted == frames, (counted, frames)
    assert server.totals("cam-f") and final["outbox_crossings_merged"] > 0 and final["outbox_status_dropped"] > 0
    assert server.seqs["cam-f"] == set(range(1, max(server.seqs["cam-f"]) + 1))
    receipts = sum(server.receipts.values())
    with capsys.disabled():
        print(
            f"\n[outbox-full] crossings_counted={frames} delivered_count={counted} "
            f"crossings_sent_individually={len(server.crossings('cam-f'))} totals={len(server.totals('cam-f'))} "
            f"merged={final['outbox_crossings_merged']} heartbeats_dropped={final['outbox_status_dropped']} "
            f"depth_when_full={depth_full} (bound 100) messages={sum(server.messages.values())} "
            f"events_received={receipts} unique={len(server.events)} duplicates={receipts - len(server.events)} "
            f"drained_after_broker_up={drained_s:.2f}s"
        )
