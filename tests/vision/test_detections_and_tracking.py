"""The Detections type and the tracker stage, on plain arrays."""

from __future__ import annotations

import numpy as np
import pytest

from citywatch.config import CameraConfig, LineConfig, TrackerConfig
from citywatch.contract import CLASS_NAMES
from vision.detections import Detections
from vision.pipeline import VisionPipeline
from vision.tracker import Tracker

CAR, TRUCK = CLASS_NAMES.index("car"), CLASS_NAMES.index("truck")


def test_detections_validate_shapes_and_classes() -> None:
    with pytest.raises(ValueError, match="xyxy"):
        Detections(np.zeros((2, 3)), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="confidence"):
        Detections(np.zeros((2, 4)), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="class_id"):
        Detections(np.zeros((1, 4)), np.zeros(1), np.array([99]))


def test_detections_mask_indexing_keeps_rows_together() -> None:
    d = Detections(np.array([[0, 0, 10, 10], [5, 5, 25, 45]]), np.array([0.5, 0.9]), np.array([CAR, TRUCK]), [3, -1])
    picked = d[d.confidence > 0.6]
    assert len(picked) == 1 and picked.class_names == ["truck"] and picked.tracker_id.tolist() == [-1]
    assert d.anchors("bottom_center").tolist() == [[5, 10], [15, 45]]
    assert d.anchors("center").tolist() == [[5, 5], [15, 25]]
    assert len(Detections.merge([d, Detections.empty(), d])) == 4


class FakeDetector:
    """Boxes of one vehicle driving down the image; stands in for the model in stage tests."""

    version = "fake@0"

    def __init__(self, frames: list[Detections]) -> None:
        self.frames = frames
        self.i = 0

    def detect(self, frame: np.ndarray) -> Detections:
        d = self.frames[self.i]
        self.i += 1
        return d


def moving_box(y: float, cls: int = CAR, conf: float = 0.9) -> Detections:
    return Detections(np.array([[90, y - 20, 130, y]]), np.array([conf]), np.array([cls]))


def test_tracker_confirms_a_track_only_after_consecutive_frames() -> None:
    tracker = Tracker(TrackerConfig(minimum_consecutive_frames=3), fps=25)
    ids = [tracker.update(moving_box(50 + 3 * i)).tracker_id.tolist() for i in range(6)]
    assert ids[0] == [-1]
    confirmed = [i for i, t in enumerate(ids) if t and t[0] >= 0]
    assert confirmed and confirmed[0] >= 2
    assert len({ids[i][0] for i in confirmed}) == 1  # one id for one vehicle


def test_track_class_is_a_vote_over_its_life_not_one_frame() -> None:
    tracker = Tracker(TrackerConfig(minimum_consecutive_frames=1), fps=25)
    classes = [CAR] * 8 + [TRUCK] + [CAR] * 3
    out = [tracker.update(moving_box(50 + 3 * i, cls)).class_names for i, cls in enumerate(classes)]
    assert out[8] == ["car"]  # the one frame that said truck does not change the track's class


def test_pipeline_counts_a_vehicle_from_detector_boxes_without_a_model() -> None:
    frames = [moving_box(50 + 4 * i) for i in range(40)]  # bottom from y=50 to y=206
    camera = CameraConfig(id="cam", source="x", lines=[LineConfig(id="l", points=((0, 120), (300, 120)))])
    pipeline = VisionPipeline(camera, detector=FakeDetector(frames), fps=25)
    blank = np.zeros((240, 320, 3), np.uint8)
    crossings = [c for i in range(len(frames)) for c in pipeline.process(blank, i).crossings]
    assert [(c.line_id, c.direction, c.class_name) for c in crossings] == [("l", "in", "car")]
    assert pipeline.model_version == "fake@0"
