"""The worker against the real Mosquitto on 127.0.0.1:1883, with a fake pipeline and a fake server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from edge_testkit import FakeServer, camera_dict, fake_factory, make_clip, make_config
from support import wait_for

from citywatch.contract import ControlConfig, ControlReplay
from edge.worker import EdgeWorker

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("mosquitto_1883")]

CROSS_FRAMES = list(range(3, 40, 4))  # 10 crossings on a 40-frame clip


def clip(tmp_path: Path, frames: int = 40) -> str:
    return str(make_clip(tmp_path / "clip.avi", frames=frames))


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_every_crossing_arrives_and_outbox_drains_after_commits(tmp_path: Path, protocol: str) -> None:
    config = make_config(tmp_path, [camera_dict("cam-a", clip(tmp_path))], protocol=protocol)
    with FakeServer(config) as server:
        worker = EdgeWorker(config, pipeline_factory=fake_factory(CROSS_FRAMES))
        worker.start()
        try:
            assert wait_for(lambda: worker.stats()["cam-a"]["source_state"] == "ended", 10)
            assert worker.wait_drained(10), worker.stats()
            stats = worker.stats()["cam-a"]
        finally:
            worker.stop(5)
        got = server.crossings("cam-a")
        assert [e.frame_index for e in got] == CROSS_FRAMES
        assert all(e.config_version == config.cameras[0].config_version() for e in got)
        assert all(e.model_version == "fake-model-1" for e in got)
        # seqs are 1..N without gaps across crossings and heartbeats
        assert server.seqs["cam-a"] == set(range(1, max(server.seqs["cam-a"]) + 1))
        assert stats["frames"] == 40 and stats["outbox_depth"] == 0
        assert sum(stats["crossings"].values()) == len(CROSS_FRAMES)
        assert stats["committed_seq"] >= len(CROSS_FRAMES)
        ended = [s for s in server.statuses("cam-a") if s.source_state == "ended"]
        assert ended and ended[0].frames_total == 40
        # a clean stop leaves the retained status "offline"
        assert wait_for(lambda: server.status.get("cam-a", {}).get("state") == "offline", 5), server.status


def test_without_commits_events_are_resent_and_kept(tmp_path: Path) -> None:
    config = make_config(tmp_path, [camera_dict("cam-a", clip(tmp_path))], resend_after_s=0.5, heartbeat_s=30)
    with FakeServer(config, commit=False) as server:
        worker = EdgeWorker(config, pipeline_factory=fake_factory(CROSS_FRAMES))
        worker.start()
        try:
            ids = lambda: [str(e.event_id) for e in server.crossings("cam-a")]  # noqa: E731
            assert wait_for(lambda: len(ids()) == len(CROSS_FRAMES), 10)
            assert wait_for(lambda: all(server.receipts[i] >= 2 for i in ids()), 5), server.receipts
            stats = worker.stats()["cam-a"]
            assert stats["resends"] >= len(CROSS_FRAMES)
            assert stats["outbox_depth"] >= len(CROSS_FRAMES) + 1  # nothing deleted without a commit
            assert worker.outbox.first_seq("cam-a") == 1
        finally:
            worker.stop(5)


def test_no_more_than_max_inflight_uncommitted_events_are_sent(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, [camera_dict("cam-a", clip(tmp_path))], max_inflight=3, resend_after_s=0.3, heartbeat_s=30
    )
    with FakeServer(config, commit=False) as server:
        worker = EdgeWorker(config, pipeline_factory=fake_factory(CROSS_FRAMES))
        worker.start()
        try:
            assert wait_for(lambda: worker.stats()["cam-a"]["resends"] >= 6, 10)
            assert server.seqs["cam-a"] == {1, 2, 3}  # the oldest three, re-sent; nothing newer
            # a commit opens the window
            server.commit = True
            server.publish_control("cam-a", "committed", '{"kind":"committed","camera_id":"cam-a","seq":3}')
            assert worker.wait_drained(10), worker.stats()
        finally:
            worker.stop(5)
        assert [e.frame_index for e in server.crossings("cam-a")] == CROSS_FRAMES


def test_replay_request_republishes_the_range(tmp_path: Path) -> None:
    config = make_config(tmp_path, [camera_dict("cam-a", clip(tmp_path))], resend_after_s=60, heartbeat_s=30)
    with FakeServer(config, commit=False) as server:
        worker = EdgeWorker(config, pipeline_factory=fake_factory(CROSS_FRAMES))
        worker.start()
        try:
            assert wait_for(lambda: len(server.crossings("cam-a")) == len(CROSS_FRAMES), 10)
            time.sleep(0.2)
            assert max(server.seq_receipts["cam-a"].values()) == 1
            server.publish_control(
                "cam-a", "replay", ControlReplay(camera_id="cam-a", from_seq=3, to_seq=5).model_dump_json()
            )
            counts = server.seq_receipts["cam-a"]
            assert wait_for(lambda: all(counts[s] == 2 for s in (3, 4, 5)), 5), counts
            time.sleep(0.2)
            assert counts[2] == 1 and counts[6] == 1
            assert worker.stats()["cam-a"]["replayed"] == 3
        finally:
            worker.stop(5)


def test_a_message_on_a_topic_the_camera_did_not_subscribe_to_is_not_taken_for_a_control(tmp_path: Path) -> None:
    import paho.mqtt.client as mqtt

    from edge.mqtt_link import MqttLink

    config = make_config(tmp_path, [camera_dict("cam-a", str(make_clip(tmp_path / "c.avi", 5, fps=20)))])
    got: list[object] = []
    link = MqttLink(config.mqtt, site=config.site, camera_id="cam-a", device_id="d", on_control=got.append)
    stray = mqtt.MQTTMessage(topic=link.topics.status(config.site, "cam-b").encode())
    stray.payload = b'{"state": "online"}'
    link._handle_message(link.client, None, stray)
    assert (link.misrouted, link.invalid_controls, got) == (1, 0, [])
    committed = mqtt.MQTTMessage(topic=link.topics.control(config.site, "cam-a", "committed").encode())
    committed.payload = json.dumps({"kind": "committed", "camera_id": "cam-a", "seq": 3}).encode()
    link._handle_message(link.client, None, committed)
    assert link.misrouted == 1 and len(got) == 1


def test_invalid_control_payloads_are_ignored_and_nothing_dies(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, [camera_dict("cam-a", str(make_clip(tmp_path / "c.avi", 40, fps=20)), realtime=True)]
    )
    with FakeServer(config) as server:
        worker = EdgeWorker(config, pipeline_factory=fake_factory(CROSS_FRAMES))
        worker.start()
        try:
            assert worker.cameras["cam-a"].link.wait_subscribed(5)
            server.publish_control("cam-a", "committed", b"\xff not json")
            server.publish_control("cam-a", "config", json.dumps({"kind": "config", "camera_id": "cam-a"}))
            server.publish_control("cam-a", "committed", json.dumps({"kind": "committed", "camera_id": "x", "seq": 1}))
            server.publish_control("cam-a", "replay", json.dumps({"kind": "bogus"}))
            assert wait_for(lambda: worker.stats()["cam-a"]["invalid_controls"] == 4, 5)
            assert wait_for(lambda: worker.stats()["cam-a"]["source_state"] == "ended", 10)
            assert worker.wait_drained(10)
            assert worker.cameras["cam-a"].link.connected
        finally:
            worker.stop(5)
        assert [e.frame_index for e in server.crossings("cam-a")] == CROSS_FRAMES


def test_config_push_changes_lines_and_config_version_without_restart(tmp_path: Path) -> None:
    source = str(make_clip(tmp_path / "c.avi", 60, fps=20))  # 3 s in real time
    cam = camera_dict("cam-a", source, realtime=True)
    config = make_config(tmp_path, [cam])
    every_frame = range(0, 60, 2)
    with FakeServer(config) as server:
        worker = EdgeWorker(config, pipeline_factory=fake_factory(every_frame))
        worker.start()
        try:
            assert wait_for(lambda: server.crossings("cam-a"), 5)
            old_version = server.crossings("cam-a")[0].config_version
            bad = {
                **camera_dict("cam-a", source, realtime=True),
                "lines": [{"id": "x", "points": [[0, 0], [0, 0]]}],
            }
            server.publish_control(
                "cam-a",
                "config",
                ControlConfig(camera_id="cam-a", config_version="bad", camera=bad).model_dump_json(),
            )
            other = camera_dict("cam-zz", source, realtime=True)
            server.publish_control(
                "cam-a",
                "config",
                ControlConfig(camera_id="cam-a", config_version="bad2", camera=other).model_dump_json(),
            )
            new = camera_dict("cam-a", source, realtime=True, line="l2")
            server.publish_control(
                "cam-a",
                "config",
                ControlConfig(camera_id="cam-a", config_version="v2", camera=new).model_dump_json(),
            )
            assert wait_for(lambda: any(e.config_version == "v2" for e in server.crossings("cam-a")), 5)
            assert wait_for(lambda: any(s.config_version == "v2" for s in server.statuses("cam-a")), 5)
            stats = worker.stats()["cam-a"]
            assert stats["config_rejected"] == 2 and stats["config_applied"] == 1
            assert stats["config_version"] == "v2"
        finally:
            worker.stop(5)
        got = server.crossings("cam-a")
        assert {e.line_id for e in got if e.config_version == "v2"} == {"l2"}
        assert {e.line_id for e in got if e.config_version == old_version} == {"l1"}
        assert {e.config_version for e in got} == {old_version, "v2"}
        # after the switch no event goes back to the old version
        first_v2 = min(e.seq for e in got if e.config_version == "v2")
        assert all(e.config_version == "v2" for e in got if e.seq > first_v2)


def test_missing_video_file_sets_error_state_and_other_cameras_keep_counting(tmp_path: Path) -> None:
    missing = tmp_path / "missing.mp4"
    config = make_config(tmp_path, [camera_dict("cam-bad", str(missing)), camera_dict("cam-ok", clip(tmp_path))])
    with FakeServer(config) as server:
        worker = EdgeWorker(config, pipeline_factory=fake_factory(CROSS_FRAMES))
        worker.start()
        try:
            assert wait_for(lambda: worker.stats()["cam-ok"]["source_state"] == "ended", 10)
            assert worker.wait_drained(10)
            bad = worker.stats()["cam-bad"]
            assert bad["source_state"] == "error" and "missing.mp4" in bad["message"]
            assert wait_for(lambda: server.statuses("cam-bad"), 5)
            status = server.statuses("cam-bad")[-1]
            assert status.source_state == "error" and "missing.mp4" in status.message
        finally:
            worker.stop(5)
        assert [e.frame_index for e in server.crossings("cam-ok")] == CROSS_FRAMES
        assert server.crossings("cam-bad") == []


class EmptyDetector:
    """Stands in for ``vision.detector.load_detector(...)``: no weights needed."""

    version = "fake-detector-7"

    def detect(self, frame):
        from vision.detections import Detections

        return Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int))


def test_default_pipeline_uses_the_injected_shared_detector(tmp_path: Path) -> None:
    config = make_config(tmp_path, [camera_dict("cam-a", clip(tmp_path, 10)), camera_dict("cam-b", clip(tmp_path, 10))])
    with FakeServer(config) as server:
        worker = EdgeWorker(config, detector=EmptyDetector())
        worker.start()
        try:
            assert worker.wait_sources_done(10)
            assert all(s["source_state"] == "ended" for s in worker.stats().values())
            assert worker.wait_drained(10)
            assert all(s["frames"] == 10 for s in worker.stats().values())
        finally:
            worker.stop(5)
        for cam in ("cam-a", "cam-b"):
            last = server.statuses(cam)[-1]
            assert last.model_version == "fake-detector-7" and last.frames_total == 10
