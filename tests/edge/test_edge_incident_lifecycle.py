"""An incident the pipeline still holds open when its source ends or loops is closed, never left open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_testkit import FakeServer, camera_dict, make_clip, make_config
from support import wait_for

from edge.worker import EdgeWorker
from vision.detections import Detections
from vision.pipeline import FrameResult
from vision.results import IncidentResult


class _Engine:
    def __init__(self) -> None:
        self.open: IncidentResult | None = None

    def close_all(self, frame_index: int) -> list[IncidentResult]:
        if self.open is None:
            return []
        r = self.open
        self.open = None
        return [IncidentResult(r.incident_id, r.incident_type, "closed", frame_index, r.started_frame,
                               r.started_s, update_no=1, ended_frame=frame_index)]


class StoppedVehiclePipeline:
    """Opens one stopped-vehicle incident at frame 5 of every pass and never closes it itself."""

    model_version = "fake-model-1"
    lag_s = 0.0

    def __init__(self, camera: Any, fps: float) -> None:
        self.camera = camera
        self.incidents = _Engine()

    def process(self, frame: Any, frame_index: int) -> FrameResult:
        opened = []
        if frame_index == 5:
            self.incidents.open = IncidentResult("inc-1", "stopped_vehicle", "open", 5, 5, 0.2, track_ids=(7,))
            opened.append(self.incidents.open)
        return FrameResult(frame_index, Detections.empty(), incidents=opened, inference_ms=1.0)

    def reconfigure(self, camera: Any) -> None:
        self.camera = camera


def incidents(server: FakeServer) -> list[Any]:
    return sorted((e for e in server.events.values() if e.kind == "incident"), key=lambda e: e.seq)


def test_incident_open_at_the_end_of_a_clip_is_closed_when_the_source_ends(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.avi", 20, fps=20)
    config = make_config(tmp_path, [camera_dict("cam-i", str(clip))])
    with FakeServer(config) as server:
        worker = EdgeWorker(config, pipeline_factory=lambda cam, fps: StoppedVehiclePipeline(cam, fps))
        worker.start()
        try:
            assert worker.wait_sources_done(30)
            assert wait_for(lambda: len(incidents(server)) == 2, 10), incidents(server)
        finally:
            worker.stop(5)
    opened, closed = incidents(server)
    assert (opened.state, closed.state) == ("open", "closed")
    assert opened.incident_id == closed.incident_id
    assert closed.ended_at is not None and closed.ended_at >= opened.started_at


def test_each_loop_of_a_clip_closes_the_previous_pass_incident(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.avi", 12, fps=20)
    config = make_config(tmp_path, [camera_dict("cam-l", str(clip), loop=True)])
    with FakeServer(config) as server:
        worker = EdgeWorker(config, pipeline_factory=lambda cam, fps: StoppedVehiclePipeline(cam, fps))
        worker.start()
        try:
            assert wait_for(lambda: len(incidents(server)) >= 4, 20), incidents(server)
        finally:
            worker.stop(5)
    evs = incidents(server)
    first_pass = [e for e in evs if e.incident_id == evs[0].incident_id]
    assert [e.state for e in first_pass] == ["open", "closed"]  # closed before the next pass opened its own
    assert len({e.incident_id for e in evs}) >= 2  # each pass is its own incident
