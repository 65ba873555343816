"""A broker that silently drops messages (``max_queued_messages 5``) while the server is away.

The broker PUBACKs every edge publish but keeps only 5 messages for the offline server session and
drops the rest. The edge must not take the PUBACK as delivery: the server's committed watermark
stalls at the gap, and resends/replays fill it. Asserted at the real server: every count once.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
from edge_testkit import camera_dict, fake_factory, make_clip, make_config
from support import MOSQUITTO, PrivateBroker, require, wait_for

from citywatch.config import ServerConfig
from edge.worker import EdgeWorker

pytestmark = pytest.mark.services

FRAMES, FPS = 120, 20  # 6 s in real time, a crossing on every 2nd frame
CROSS = list(range(1, FRAMES, 2))


def _total(url: str, camera: str) -> int:
    with urllib.request.urlopen(f"{url}/api/v1/counts?bucket=total&camera_id={camera}", timeout=10) as r:
        return sum(row["count"] for row in json.load(r)["rows"])


def test_broker_dropping_queued_messages_is_repaired_by_resend_and_replay(tmp_path: Path, capsys) -> None:
    from server.runner import serve_in_thread

    require(Path(MOSQUITTO).exists(), f"the mosquitto binary ({MOSQUITTO}) is not installed")
    broker = PrivateBroker(tmp_path, extra_conf="max_queued_messages 5\n")
    broker.start()
    clip = str(make_clip(tmp_path / "c.avi", FRAMES, fps=FPS))
    config = make_config(
        tmp_path,
        [camera_dict("cam-q", clip, realtime=True)],
        port=broker.port,
        batch_publish=False,  # one message per event: the tiny queue overflows
        resend_after_s=1.0,
        heartbeat_s=1.0,
    )
    config = config.model_copy(
        update={"server": ServerConfig(database_url=f"sqlite:///{tmp_path / 'srv.sqlite'}", client_id="srv-tinyq")}
    )
    worker = EdgeWorker(config, pipeline_factory=fake_factory(CROSS))
    h = serve_in_thread(config, port=0)
    h2 = None
    try:
        assert h.app.state.ingest.subscribed.wait(20)
        worker.start()
        assert wait_for(lambda: _total(h.url, "cam-q") >= 5, 30)
        h.stop()  # the server's persistent session stays on the broker, with a 5-message queue
        away_from = time.monotonic()
        published_before = worker.stats()["cam-q"]["events_published"]
        time.sleep(2.0)
        published_away = worker.stats()["cam-q"]["events_published"] - published_before
        h2 = serve_in_thread(config, port=0)
        back_at = time.monotonic()
        assert worker.wait_sources_done(30)
        assert wait_for(lambda: _total(h2.url, "cam-q") >= len(CROSS), 60), _total(h2.url, "cam-q")
        repaired_s = time.monotonic() - back_at
        assert worker.wait_drained(30), worker.stats()
        time.sleep(0.5)
        total = _total(h2.url, "cam-q")
        c = h2.app.state.ingest.counters
        ingest = {"stored": c.stored, "duplicates": c.duplicates, "gaps": c.gaps_detected, "replays": c.replay_requests}
        stats = worker.stats()["cam-q"]
    finally:
        worker.stop(10)
        if h2 is not None:
            h2.stop()
        broker.stop()
    assert total == len(CROSS), (total, len(CROSS))
    assert stats["resends"] + stats["replayed"] > 0  # delivery needed more than the broker's PUBACKs
    with capsys.disabled():
        print(
            f"\n[tiny-queue] crossings={len(CROSS)} counted_at_server={total} published_while_server_away="
            f"{published_away} (broker keeps 5) edge_published={stats['events_published']} "
            f"resends={stats['resends']} replayed={stats['replayed']} server_after_restart={ingest} "
            f"server_away={back_at - away_from:.2f}s all_counts_stored_after_server_back={repaired_s:.2f}s"
        )
