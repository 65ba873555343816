"""Movements, zone reports and batched envelopes; pushed configuration kept across a restart."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from edge_testkit import FakePipeline, FakeServer, camera_dict, make_clip, make_config
from support import wait_for

from citywatch.contract import ControlConfig
from edge.worker import EdgeWorker
from vision.results import MovementResult, ZoneReport

pytestmark = pytest.mark.services


class ODPipeline(FakePipeline):
    """Crossings on every 4th frame, a movement on every 10th, a zone report on every 20th."""

    def process(self, frame, frame_index):
        out = super().process(frame, frame_index)
        movements, zones = [], []
        if frame_index % 10 == 5:
            movements.append(MovementResult(frame_index, "car", "north", "east", frame_index - 5, frame_index, 0.25))
        if frame_index % 10 == 7:
            movements.append(MovementResult(99, "spaceship", "north", "east", 0, 1, 0.1))  # invalid: rejected alone
        if frame_index % 20 == 19:
            zones.append(ZoneReport("z1", frame_index, 1.0, occupancy={"car": 2}, occupied_fraction=0.5))
        return replace(out, movements=movements, zone_reports=zones)


@pytest.mark.parametrize("batch", [True, False])
def test_movements_and_zone_reports_become_events_and_batches_keep_ids_and_seqs(
    tmp_path: Path, private_broker, batch: bool
) -> None:
    clip = str(make_clip(tmp_path / "c.avi", 40))
    config = make_config(
        tmp_path, [camera_dict("cam-e", clip)], port=private_broker.port, batch_publish=batch, mqtt_reconnect_max_s=1
    )
    private_broker.stop()  # a backlog builds up while the uplink is down, then goes out
    worker = EdgeWorker(config, pipeline_factory=lambda cam, fps: ODPipeline(cam, fps, range(0, 40, 4)))
    worker.start()
    try:
        assert worker.wait_sources_done(20)
        private_broker.start()
        with FakeServer(config) as server:
            assert worker.wait_drained(20), worker.stats()
            stats = worker.stats()["cam-e"]
    finally:
        worker.stop(5)
    events = list(server.events.values())
    moves = sorted((e for e in events if e.kind == "movement"), key=lambda e: e.exit_frame)
    zones = [e for e in events if e.kind == "zone_occupancy"]
    assert [m.exit_frame for m in moves] == [5, 15, 25, 35] and moves[0].entry_zone == "north"
    assert [z.frame_index for z in zones] == [19, 39] and zones[0].occupancy == {"car": 2}
    assert len(server.crossings("cam-e")) == 10
    assert stats["events_rejected"] == 4  # the invalid movements, and nothing else of their frames
    assert server.seqs["cam-e"] == set(range(1, max(server.seqs["cam-e"]) + 1))
    assert max(server.receipts.values()) == 1
    if batch:
        assert server.messages["batch"] >= 1 and stats["batches"] >= 1
    else:
        assert server.messages["batch"] == 0


def test_pushed_configuration_survives_a_restart_until_the_file_changes(tmp_path: Path, private_broker) -> None:
    clip = str(make_clip(tmp_path / "c.avi", 20))
    config = make_config(tmp_path, [camera_dict("cam-p", clip)], port=private_broker.port)
    factory = lambda cam, fps: FakePipeline(cam, fps, [])  # noqa: E731
    with FakeServer(config) as server:
        worker = EdgeWorker(config, pipeline_factory=factory)
        worker.start()
        try:
            assert worker.cameras["cam-p"].link.wait_subscribed(10)
            pushed = camera_dict("cam-p", clip, line="l9")
            server.publish_control(
                "cam-p",
                "config",
                ControlConfig(camera_id="cam-p", config_version="v7", camera=pushed).model_dump_json(),
            )
            assert wait_for(lambda: worker.stats()["cam-p"]["config_version"] == "v7", 10)
        finally:
            worker.stop(5)
        again = EdgeWorker(config, pipeline_factory=factory)
        again.start()
        try:
            assert again.stats()["cam-p"]["config_version"] == "v7"
            assert [line.id for line in again.cameras["cam-p"].camera.lines] == ["l9"]
            assert wait_for(lambda: any(s.config_version == "v7" for s in server.statuses("cam-p")), 10)
        finally:
            again.stop(5)
    edited = config.model_copy(update={"cameras": [config.cameras[0].model_copy(update={"version": "file-2"})]})
    third = EdgeWorker(edited, pipeline_factory=factory)
    third.start()
    try:
        assert third.stats()["cam-p"]["config_version"] == "file-2"  # the technician's edit wins
    finally:
        third.stop(5)
