"""A live RTSP camera (GStreamer's RTSP server) cut, stalled and restored under a running worker.

Proves: a dropped stream (server killed) and a stalled one (server SIGSTOPped: the TCP connection
stays open and ``cap.read()`` would block) are detected within seconds, reported in heartbeats as
``reconnecting``, reconnected with back-off, and every crossing counted reaches the server once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from edge_testkit import FakeServer, RtspServer, fake_factory, gst_rtsp_available, make_config
from support import free_port, require, wait_for

from edge.worker import EdgeWorker

pytestmark = pytest.mark.services

STALL_S = 2.0


def test_rtsp_stream_cut_and_stall_are_detected_reconnected_and_lose_no_count(
    tmp_path: Path, private_broker, capsys
) -> None:
    require(gst_rtsp_available(), "GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) not installed")
    rtsp = RtspServer(free_port(), fps=10, log_path=tmp_path / "rtsp.log")
    rtsp.start()
    cam = {"id": "cam-rtsp", "source": rtsp.url, "lines": [{"id": "l1", "points": [[0, 60], [160, 60]]}]}
    config = make_config(
        tmp_path,
        [cam],
        port=private_broker.port,
        heartbeat_s=0.5,
        sources={"open_timeout_s": 8, "stall_timeout_s": STALL_S, "reconnect_min_s": 0.5, "reconnect_max_s": 2},
    )
    worker = EdgeWorker(config, pipeline_factory=fake_factory(range(0, 10**6, 5)))
    state = lambda: worker.stats()["cam-rtsp"]["source_state"]  # noqa: E731
    numbers: dict[str, float] = {}
    try:
        with FakeServer(config) as server:
            worker.start()
            assert wait_for(lambda: len(server.crossings("cam-rtsp")) >= 4, 60), worker.stats()
            # 1. cut: the RTSP server dies
            rtsp.kill()
            t = time.monotonic()
            assert wait_for(lambda: state() == "reconnecting", 20), worker.stats()
            numbers["cut_detected_s"] = time.monotonic() - t
            assert wait_for(
                lambda: any(s.source_state == "reconnecting" for s in server.statuses("cam-rtsp")), 10
            )
            time.sleep(1.5)  # stays down across a few reconnect attempts
            before = len(server.crossings("cam-rtsp"))
            rtsp.start()
            t = time.monotonic()
            assert wait_for(lambda: state() == "ok", 30), worker.stats()
            numbers["cut_recovered_s"] = time.monotonic() - t
            assert wait_for(lambda: len(server.crossings("cam-rtsp")) >= before + 4, 30)
            # 2. stall: the server stops sending but keeps the connection open
            rtsp.pause()
            t = time.monotonic()
            assert wait_for(lambda: state() == "reconnecting", 20), worker.stats()
            numbers["stall_detected_s"] = time.monotonic() - t
            rtsp.resume()
            t = time.monotonic()
            assert wait_for(lambda: state() == "ok", 30), worker.stats()
            numbers["stall_recovered_s"] = time.monotonic() - t
            before = len(server.crossings("cam-rtsp"))
            assert wait_for(lambda: len(server.crossings("cam-rtsp")) >= before + 4, 30)
            assert worker.stop_sources(15)
            assert worker.wait_drained(20), worker.stats()
            stats = worker.stats()["cam-rtsp"]
            got = server.crossings("cam-rtsp")
            receipts = sum(server.receipts[str(e.event_id)] for e in got)
    finally:
        worker.stop(10)
        rtsp.kill()
    counted = sum(stats["crossings"].values())
    assert len(got) == counted, (len(got), counted)
    assert len({e.event_id for e in got}) == counted
    assert server.seqs["cam-rtsp"] == set(range(1, max(server.seqs["cam-rtsp"]) + 1))
    assert stats["source_reconnects"] >= 2 and stats["source_stalls"] >= 1
    assert numbers["stall_detected_s"] < STALL_S + 3
    assert numbers["cut_detected_s"] < 5
    with capsys.disabled():
        print(
            f"\n[rtsp] counted={counted} stored(unique)={len(got)} received={receipts} "
            f"duplicates={receipts - len(got)} reconnects={stats['source_reconnects']} stalls={stats['source_stalls']} "
            + " ".join(f"{k}={v:.2f}" for k, v in numbers.items())
        )
