"""A broker killed -9 mid-run (no persistence: it forgets sessions and retained messages) and restarted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from edge_testkit import FakeServer, camera_dict, fake_factory, make_clip, make_config
from support import wait_for

from edge.worker import EdgeWorker

pytestmark = pytest.mark.services

FRAMES = 80  # 4 s at 20 fps, in real time
CROSS_FRAMES = list(range(1, FRAMES, 2))


def test_broker_kill_and_restart_loses_nothing_and_duplicates_dedupe(tmp_path: Path, private_broker, capsys) -> None:
    source = str(make_clip(tmp_path / "c.avi", FRAMES, fps=20))
    config = make_config(
        tmp_path,
        [camera_dict("cam-a", source, realtime=True)],
        port=private_broker.port,
        resend_after_s=1.0,
        heartbeat_s=0.5,
    )
    with FakeServer(config) as server:
        worker = EdgeWorker(config, pipeline_factory=fake_factory(CROSS_FRAMES))
        worker.start()
        link = worker.cameras["cam-a"].link
        try:
            assert link.wait_connected(5)
            assert wait_for(lambda: len(server.crossings()) >= 10, 5)
            private_broker.kill()
            killed_at = time.monotonic()
            before = len(server.crossings())
            time.sleep(1.0)  # crossings keep being counted into the outbox meanwhile
            private_broker.start()
            restarted_at = time.monotonic()
            assert wait_for(lambda: link.connected, 35), "edge did not reconnect"
            reconnected_at = time.monotonic()
            assert wait_for(lambda: worker.stats()["cam-a"]["source_state"] == "ended", 10)
            assert worker.wait_drained(20), worker.stats()
            drained_at = time.monotonic()
            stats = worker.stats()["cam-a"]
        finally:
            worker.stop(5)
        got = server.crossings("cam-a")
        receipts = sum(server.receipts[str(e.event_id)] for e in got)
        # every crossing, each event_id once after de-duplication, and seqs without gaps
        assert [e.frame_index for e in got] == CROSS_FRAMES
        assert len({e.event_id for e in got}) == len(CROSS_FRAMES)
        assert server.seqs["cam-a"] == set(range(1, max(server.seqs["cam-a"]) + 1))
        with capsys.disabled():
            print(
                f"\n[broker-restart] crossings={len(CROSS_FRAMES)} stored(unique)={len(got)} "
                f"received={receipts} duplicates={receipts - len(got)} before_kill={before} "
                f"events_appended={stats['events_appended']} publishes={stats['events_published']} "
                f"resends={stats['resends']} broker_down={restarted_at - killed_at:.2f}s "
                f"reconnect_after_restart={reconnected_at - restarted_at:.2f}s "
                f"drained_after_restart={drained_at - restarted_at:.2f}s"
            )
