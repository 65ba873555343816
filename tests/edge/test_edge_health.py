"""Health and privacy on the edge: tamper signs, Prometheus metrics, JSON logs, blurred snapshots."""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from edge_testkit import FakeServer, camera_dict, fake_factory, make_clip, make_config
from support import wait_for

from citywatch.config import EdgeSnapshotsConfig, EdgeTamperConfig
from edge.logs import JsonFormatter
from edge.privacy import blur_sensitive
from edge.snapshots import SnapshotStore
from edge.tamper import TamperDetector
from edge.worker import EdgeWorker


def _scene(shift: int = 0) -> np.ndarray:
    rng = np.random.default_rng(7)
    img = np.full((240, 320, 3), 110, np.uint8)
    for _ in range(40):  # buildings, markings: a textured, static street
        x, y = rng.integers(0, 300), rng.integers(0, 220)
        cv2.rectangle(
            img, (int(x), int(y)), (int(x) + 30, int(y) + 15), tuple(int(c) for c in rng.integers(0, 255, 3)), -1
        )
    return np.roll(img, shift, axis=1) if shift else img


def _run(det: TamperDetector, frame: np.ndarray, n: int = 4) -> list[str]:
    for _ in range(n):
        signs = det.check(frame)
    return signs


@pytest.mark.parametrize(
    ("sign", "frame"),
    [
        ("too_dark", lambda: (_scene() * 0.08).astype(np.uint8)),
        ("covered", lambda: np.full((240, 320, 3), 128, np.uint8)),
        ("out_of_focus", lambda: cv2.GaussianBlur(_scene(), (31, 31), 12)),
        ("view_moved", lambda: np.flipud(_scene()).copy()),
    ],
)
def test_tamper_sign_is_raised_after_hold_checks_and_cleared_when_the_view_returns(sign, frame) -> None:
    det = TamperDetector(EdgeTamperConfig(hold_checks=3))
    assert _run(det, _scene(), 6) == []  # learns the reference
    bad = frame()
    assert det.check(bad) == [] and det.check(bad) == []  # one passing bus is not tampering
    assert sign in det.check(bad)
    assert _run(det, _scene(), 3) == []


def test_normal_traffic_in_front_of_the_camera_raises_no_sign() -> None:
    det = TamperDetector()
    for i in range(30):
        frame = _scene()
        cv2.rectangle(frame, (10 + 8 * i, 150), (70 + 8 * i, 190), (30, 30, 200), -1)  # a car driving by
        assert det.check(frame) == [], (i, det.last)


def test_snapshot_blurs_people_and_vehicle_lower_part_and_expires(tmp_path: Path) -> None:
    img = _scene()
    boxes = [(20, 20, 80, 120), (150, 100, 300, 200)]
    out = blur_sensitive(img, boxes, ["person", "car"], vehicle_lower_fraction=0.4)
    diff = lambda y1, y2, x1, x2: float(np.abs(out[y1:y2, x1:x2].astype(int) - img[y1:y2, x1:x2]).mean())  # noqa: E731
    assert diff(20, 120, 20, 80) > 5  # person obscured
    assert diff(161, 200, 150, 300) > 5  # lower 40 % of the car (plate) obscured
    assert diff(100, 155, 150, 300) == 0  # upper part of the car untouched
    assert diff(0, 20, 0, 320) == 0  # rest of the scene untouched
    off = SnapshotStore(EdgeSnapshotsConfig(directory=tmp_path / "snaps"))
    assert off.save("cam", img, boxes, ["person", "car"]) is None and not (tmp_path / "snaps").exists()
    store = SnapshotStore(EdgeSnapshotsConfig(enabled=True, directory=tmp_path / "snaps", ttl_s=60))
    sid = store.save("cam", img, boxes, ["person", "car"])
    saved = cv2.imread(str(store.path(sid)))
    assert saved is not None and float(np.abs(saved[20:120, 20:80].astype(int) - img[20:120, 20:80]).mean()) > 5
    old = store.save("cam", img, [], [])
    past = time.time() - 120
    os.utime(store.path(old), (past, past))
    assert store.expire() == 1 and store.path(old) is None and store.path(sid) is not None


def test_json_log_lines_are_parseable_with_level_logger_and_message() -> None:
    rec = logging.LogRecord("edge.worker", logging.WARNING, __file__, 1, "camera %s: %s", ("cam-a", "stalled"), None)
    line = json.loads(JsonFormatter().format(rec))
    assert line["level"] == "warning" and line["logger"] == "edge.worker" and line["msg"] == "camera cam-a: stalled"
    assert line["ts"].endswith("+00:00")


@pytest.mark.services
def test_metrics_port_serves_per_camera_counters_on_localhost(tmp_path: Path, private_broker) -> None:
    clip = str(make_clip(tmp_path / "c.avi", 40))
    config = make_config(tmp_path, [camera_dict("cam-m", clip)], port=private_broker.port, metrics_port=0)
    assert config.edge.metrics_host == "127.0.0.1"
    worker = EdgeWorker(config, pipeline_factory=fake_factory(range(0, 40, 4)))
    with FakeServer(config):
        worker.start()
        try:
            assert worker.wait_sources_done(20) and worker.wait_drained(20)
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=10) as r:
                text = r.read().decode()
        finally:
            worker.stop(5)
    assert 'citywatch_edge_frames_total{camera="cam-m"} 40.0' in text
    assert 'citywatch_edge_crossings_total{camera="cam-m",class="car",direction="out",line="l1"} 10.0' in text
    assert 'citywatch_edge_source_state{camera="cam-m",state="ended"} 1.0' in text
    assert 'citywatch_edge_outbox_depth{camera="cam-m"} 0.0' in text


@pytest.mark.services
def test_worker_reports_tamper_signs_in_heartbeats(tmp_path: Path, private_broker) -> None:
    path = tmp_path / "dark.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20, (320, 240))
    for i in range(100):
        w.write(_scene() if i < 40 else np.full((240, 320, 3), 3, np.uint8))  # the lights go out
    w.release()
    config = make_config(
        tmp_path,
        [camera_dict("cam-t", str(path), realtime=True)],
        port=private_broker.port,
        tamper={"check_every_s": 0.1, "hold_checks": 3},
        heartbeat_s=0.5,
    )
    worker = EdgeWorker(config, pipeline_factory=fake_factory([]))
    with FakeServer(config) as server:
        worker.start()
        try:
            assert wait_for(lambda: any("too_dark" in s.tamper for s in server.statuses("cam-t")), 20)
        finally:
            worker.stop(5)
