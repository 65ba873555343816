"""The whole slice with real parts: real clip and model -> edge worker -> MQTT broker -> server -> API.

Each test asserts that the counts the API returns equal the counts the edge published, and equal
an offline run of the same detections, with zero events lost or duplicated.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from e2e_kit import LONDON_LINE, CachedDetector
from support import PrivateBroker, require_service, wait_for

from citywatch.broker import EmbeddedBroker
from citywatch.config import CitywatchConfig, parse_config
from edge.worker import EdgeWorker
from evaluation.offline import count_video
from server.runner import serve_in_thread

pytestmark = pytest.mark.slow


def slice_config(
    tmp_path: Path, clip: Path, *, port: int, protocol: str, database_url: str, realtime: bool = False
) -> CitywatchConfig:
    run = uuid.uuid4().hex[:8]
    return parse_config({
        "site": "e2e",
        "mqtt": {"host": "127.0.0.1", "port": port, "protocol": protocol, "topic_prefix": f"cw-test-{run}"},
        "edge": {"device_id": f"edge-{run}", "outbox_path": str(tmp_path / "outbox.sqlite"),
                 "heartbeat_s": 1, "resend_after_s": 2},
        "server": {"database_url": database_url, "client_id": f"server-{run}"},
        "cameras": [{"id": "london-03601", "source": str(clip), "realtime": realtime, "lines": [LONDON_LINE]}],
    })


def offline_counts(clip: Path, cfg: CitywatchConfig, detector: CachedDetector) -> Counter:
    result = count_video(clip, cfg.cameras[0], tracker=cfg.tracker, counting=cfg.counting, detector=detector)
    return Counter((c.line_id, c.direction, c.class_name) for c in result.crossings)


def api_counts(url: str) -> Counter:
    r = httpx.get(f"{url}/api/v1/counts", params={"bucket": "total"}, timeout=10)
    r.raise_for_status()
    return Counter({(row["line_id"], row["direction"], row["class_name"]): row["count"] for row in r.json()["rows"]})


def run_clip(cfg: CitywatchConfig, detector: CachedDetector, store, *, during=None) -> dict:
    worker = EdgeWorker(cfg, detector=detector)
    worker.start()
    try:
        if during is not None:
            during(worker)
        assert worker.wait_sources_done(180), "the clip did not finish"
        assert worker.wait_drained(60), f"outbox not drained: {worker.stats()}"
    finally:
        worker.stop(10)  # sends a last heartbeat too
    stats = worker.stats()["london-03601"]
    assert stats["source_state"] == "ended", stats
    # Every event the edge created is stored exactly once (event ids are unique keys).
    stored = wait_for(lambda: store.count_events("london-03601") >= stats["events_appended"], 15)
    assert stored and store.count_events("london-03601") == stats["events_appended"]
    edge_counts = Counter()
    for key, n in stats["crossings"].items():
        line, direction, cls = key.split("/")
        edge_counts[(line, direction, cls)] += n
    return {"stats": stats, "edge_counts": edge_counts}


def check(result: dict, api: Counter, offline: Counter) -> None:
    assert sum(offline.values()) >= 5, f"the clip should have crossings on the line: {offline}"
    assert result["edge_counts"] == offline
    assert api == result["edge_counts"]


def test_real_clip_through_mosquitto_and_postgresql_loses_nothing(
    tmp_path: Path, london_clip: Path, london_detector: CachedDetector, pg_database
) -> None:
    require_service("Mosquitto", "127.0.0.1", 1883)
    cfg = slice_config(tmp_path, london_clip, port=1883, protocol="5", database_url=pg_database.url)
    from server.storage.store import Store

    store = Store(pg_database.url, schema=pg_database.schema)
    try:
        with serve_in_thread(cfg, port=0, store=store) as server:
            result = run_clip(cfg, london_detector, store)
            check(result, api_counts(server.url), offline_counts(london_clip, cfg, london_detector))
            cams = httpx.get(f"{server.url}/api/v1/cameras", timeout=10).json()
    finally:
        store.close()
    cam = next(c for c in cams["cameras"] if c["id"] == "london-03601")
    assert cam["committed_seq"] == result["stats"]["events_appended"]
    assert cam["model_version"] == london_detector.version


def test_real_clip_on_the_embedded_defaults_amqtt_and_sqlite(
    tmp_path: Path, london_clip: Path, london_detector: CachedDetector
) -> None:
    with EmbeddedBroker() as broker:
        cfg = slice_config(tmp_path, london_clip, port=broker.port, protocol="3.1.1",
                           database_url=f"sqlite:///{tmp_path}/citywatch.sqlite")
        with serve_in_thread(cfg, port=0) as server:
            result = run_clip(cfg, london_detector, server.app.state.store)
            check(result, api_counts(server.url), offline_counts(london_clip, cfg, london_detector))


def test_broker_stopped_mid_run_still_delivers_every_event_once_it_is_back(
    tmp_path: Path, london_clip: Path, london_detector: CachedDetector
) -> None:
    broker = PrivateBroker(tmp_path)
    broker.start()
    # Paced to the clip's 25 fps (about 10 s), so counting goes on while the broker is away.
    cfg = slice_config(tmp_path, london_clip, port=broker.port, protocol="5",
                       database_url=f"sqlite:///{tmp_path}/citywatch.sqlite", realtime=True)
    outage = {}

    def kill_and_restart(worker: EdgeWorker) -> None:
        wait_for(lambda: worker.stats()["london-03601"]["events_appended"] >= 3, 60)
        broker.kill()
        outage["appended_at_kill"] = worker.stats()["london-03601"]["events_appended"]
        time.sleep(2.5)  # counting goes on while the broker is away; events wait in the outbox
        outage["appended_while_down"] = worker.stats()["london-03601"]["events_appended"]
        broker.start()
        outage["restarted"] = time.monotonic()

    try:
        with serve_in_thread(cfg, port=0) as server:
            result = run_clip(cfg, london_detector, server.app.state.store, during=kill_and_restart)
            check(result, api_counts(server.url), offline_counts(london_clip, cfg, london_detector))
    finally:
        broker.stop()
    assert outage["appended_while_down"] > outage["appended_at_kill"]  # created during the outage
