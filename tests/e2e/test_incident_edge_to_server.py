"""Incidents through the real parts: edge worker -> private Mosquitto -> server ingest -> incident store and API,
with a blurred snapshot saved on the edge when the incident opens and referenced by its events."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from support import MOSQUITTO, PrivateBroker, require, wait_for

from citywatch.config import parse_config
from edge.worker import EdgeWorker
from server.runner import serve_in_thread
from vision.detections import Detections
from vision.pipeline import FrameResult
from vision.results import IncidentResult

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edge"))
from edge_testkit import make_clip  # noqa: E402


class IncidentPipeline:
    """A stopped car (track 4) in lane nb-1: open at frame 5, an update at 10, closed at 20."""

    model_version = "fake-incidents-1"
    incidents = None
    lag_s = 0.0

    def __init__(self, camera: Any, fps: float) -> None:
        self.camera, self.fps = camera, fps

    def process(self, frame: Any, i: int) -> FrameResult:
        dets = Detections(np.asarray([[4.0, 4.0, 20.0, 20.0]], np.float32), np.ones(1), np.zeros(1, np.int64),
                          np.asarray([4]))
        incidents = []
        common = {"incident_id": "vision-1", "incident_type": "stopped_vehicle", "started_frame": 2,
                  "started_s": 0.1, "severity": "high", "lane_id": "nb-1", "track_ids": (4,)}
        if i == 5:
            incidents.append(IncidentResult(state="open", frame_index=i, update_no=0, **common))
        elif i == 10:
            incidents.append(IncidentResult(state="update", frame_index=i, update_no=1, **common))
        elif i == 20:
            incidents.append(IncidentResult(state="closed", frame_index=i, update_no=2, ended_frame=18,
                                            ended_s=0.9, **common))
        return FrameResult(i, dets, inference_ms=1.0, incidents=incidents)

    def reconfigure(self, camera: Any) -> None:
        self.camera = camera


def test_an_edge_incident_reaches_the_server_as_one_closed_incident_with_its_blurred_snapshot(tmp_path: Path) -> None:
    require(Path(MOSQUITTO).exists(), f"the mosquitto binary ({MOSQUITTO}) is not installed")
    clip = make_clip(tmp_path / "c.avi", frames=30, fps=20.0)
    broker = PrivateBroker(tmp_path)
    broker.start()
    run = uuid.uuid4().hex[:8]
    cfg = parse_config({
        "site": "e2e",
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "protocol": "5", "topic_prefix": f"cw-inc-{run}",
                 "username_env": None, "password_env": None},
        "edge": {"device_id": f"edge-{run}", "outbox_path": str(tmp_path / "outbox.sqlite"), "heartbeat_s": 1,
                 "resend_after_s": 2, "snapshots": {"enabled": True, "directory": str(tmp_path / "snaps")}},
        "server": {"database_url": f"sqlite:///{tmp_path}/cw.sqlite", "client_id": f"server-{run}"},
        "cameras": [{"id": "cam-i", "source": str(clip), "realtime": False,
                     "lanes": [{"id": "nb-1", "polygon": [[0, 0], [32, 0], [32, 32], [0, 32]]}]}],
    })
    try:
        with serve_in_thread(cfg, port=0) as server:
            worker = EdgeWorker(cfg, pipeline_factory=IncidentPipeline)
            worker.start()
            try:
                assert worker.wait_sources_done(30)
                assert worker.wait_drained(30), worker.stats()
                stats = worker.stats()["cam-i"]
            finally:
                worker.stop(5)
            items = wait_for(lambda: httpx.get(f"{server.url}/api/v1/incidents", timeout=5).json()["items"], 10)
            events = server.app.state.store.event_log.recent_events(kind="incident")
    finally:
        broker.stop()
    assert stats["incidents"] == 3 and stats["snapshots"] == 1
    assert len(items) == 1
    inc = items[0]
    assert (inc["incident_type"], inc["state"], inc["lane_id"], inc["track_ids"], inc["updates"]) == (
        "stopped_vehicle", "closed", "nb-1", [4], 1)
    assert inc["ended_at"] > inc["started_at"]
    assert sorted(e["state"] for e in events) == ["closed", "open", "update"]
    assert {e["incident_id"] for e in events} == {inc["incident_id"]}
    assert {e["snapshot_id"] for e in events} == {inc["snapshot_id"]} and inc["snapshot_id"]
    snap = tmp_path / "snaps" / f"{inc['snapshot_id']}.jpg"
    assert snap.is_file() and cv2.imread(str(snap)) is not None
