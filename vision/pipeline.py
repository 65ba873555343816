"""One camera's vision: detect -> track -> count, frame by frame, over plain data."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from citywatch.config import CameraConfig, CountingConfig, ModelConfig, TrackerConfig
from vision.counting import Crossing, LineCounter
from vision.detections import Detections
from vision.detector import Detector, load_detector
from vision.results import MovementResult, ZoneReport
from vision.tracker import Tracker


@dataclass
class FrameResult:
    frame_index: int
    detections: Detections  # tracked; tracker_id >= 0 for confirmed tracks
    crossings: list[Crossing] = field(default_factory=list)
    inference_ms: float = 0.0
    movements: list[MovementResult] = field(default_factory=list)
    zone_reports: list[ZoneReport] = field(default_factory=list)


class VisionPipeline:
    """Per-camera state (tracker, counters); the detector may be shared between cameras."""

    def __init__(
        self,
        camera: CameraConfig,
        *,
        model: ModelConfig | None = None,
        tracker: TrackerConfig | None = None,
        counting: CountingConfig | None = None,
        detector: Detector | None = None,
        fps: float = 25.0,
    ) -> None:
        self.camera = camera
        self.model_config = model or ModelConfig()
        self.detector = detector if detector is not None else load_detector(self.model_config)
        self.tracker = Tracker(tracker or TrackerConfig(), fps=fps)
        counting = counting or CountingConfig()
        self.counters = [LineCounter(line, counting, anchor=camera.anchor) for line in camera.lines]

    @property
    def model_version(self) -> str:
        return self.detector.version

    def reconfigure(self, camera: CameraConfig, counting: CountingConfig | None = None) -> None:
        """Apply new lines without dropping the tracker (a pushed remote configuration)."""
        counting = counting or self.counters[0].config if self.counters else CountingConfig()
        self.camera = camera
        self.counters = [LineCounter(line, counting, anchor=camera.anchor) for line in camera.lines]

    def process(self, frame: np.ndarray, frame_index: int) -> FrameResult:
        t0 = time.perf_counter()
        dets = self.detector.detect(frame)
        inference_ms = (time.perf_counter() - t0) * 1000.0
        return self.process_detections(dets, frame_index, inference_ms)

    def process_detections(self, dets: Detections, frame_index: int, inference_ms: float = 0.0) -> FrameResult:
        """The stages after detection: lets tests and cached detections skip the model."""
        tracked = self.tracker.update(dets)
        crossings: list[Crossing] = []
        for counter in self.counters:
            crossings.extend(counter.update(tracked, frame_index))
        return FrameResult(frame_index, tracked, crossings, inference_ms)
