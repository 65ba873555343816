"""One camera's vision: detect -> track -> count, zones, lanes, movements and speeds, frame by frame.

``process_detections`` runs every stage after the detector: crossings each frame (with km/h where the
camera is calibrated), movements when a track reaches an exit zone, and a ``ZoneReport`` per zone and
lane every ``camera.report_interval_s`` seconds of source time (counted in frames at the source fps).

Throughput levers (``camera.processing``, all off by default): ``detect_every`` N runs the pipeline on
source frames whose index is a multiple of N only (the others return at once with ``processed``
false); the tracker then runs at fps/N, so its time-based settings (lost-track buffer) keep their
meaning, while everything counted in frames (TTLs, relink window, stationary and report intervals)
keeps using source frame indices. ``motion.enabled`` reuses the last detections on a frame where
nothing moved since the detector last ran (``vision.motion``); ``imgsz`` picks this camera's input size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from citywatch.config import (
    CameraConfig,
    CountingConfig,
    IncidentsConfig,
    ModelConfig,
    ProcessingConfig,
    TrackerConfig,
    effective_incidents,
)
from vision.counting import Crossing, LineCounter
from vision.detections import Detections
from vision.detector import Detector, load_detector
from vision.geometry import GroundPlane
from vision.incidents import IncidentEngine
from vision.motion import MotionGate
from vision.results import IncidentResult, MovementResult, ZoneReport
from vision.speed import SpeedEstimator
from vision.tracker import Tracker
from vision.zones import MovementTracker, StationaryState, ZoneMonitor


@dataclass
class FrameResult:
    frame_index: int
    detections: Detections  # tracked; tracker_id >= 0 for confirmed tracks
    crossings: list[Crossing] = field(default_factory=list)
    inference_ms: float = 0.0
    movements: list[MovementResult] = field(default_factory=list)
    zone_reports: list[ZoneReport] = field(default_factory=list)
    incidents: list[IncidentResult] = field(default_factory=list)
    processed: bool = True  # False: a frame skipped by ``detect_every`` (nothing ran, nothing changed)
    detected: bool = True  # False: the detector was skipped (no motion) and the last detections reused


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
        incidents: IncidentsConfig | None = None,
    ) -> None:
        self.camera = camera
        self.incident_defaults = incidents  # top-level section; the camera's own keys override it
        self.incidents: IncidentEngine | None = None
        self.model_config = model or ModelConfig()
        processing = camera.processing or ProcessingConfig()
        if processing.imgsz and processing.imgsz != self.model_config.imgsz:
            self.model_config = self.model_config.model_copy(update={"imgsz": processing.imgsz})
        self.detector = detector if detector is not None else load_detector(self.model_config)
        self.fps = fps if fps and fps > 0 else 25.0
        self.stride = processing.detect_every
        self.tracker = Tracker(tracker or TrackerConfig(), fps=self.fps / self.stride)
        self.motion = MotionGate(processing.motion, self.fps) if processing.motion.enabled else None
        self._last_dets = Detections.empty()
        self._last_tracked = Detections.empty()
        self._build(camera, counting or CountingConfig())

    def _build(self, camera: CameraConfig, counting: CountingConfig) -> None:
        self.camera = camera
        self.counting = counting
        self.counters = [LineCounter(line, counting, anchor=camera.anchor) for line in camera.lines]
        self.speed = SpeedEstimator(camera.calibration, self.fps, camera.anchor) if camera.calibration else None
        plane: GroundPlane | None = self.speed.plane if self.speed else None
        self.stationary = StationaryState(counting, self.fps, camera.anchor)
        self.zones = [
            ZoneMonitor(area, self.fps, anchor=camera.anchor, plane=plane, grace_frames=5 * self.stride)
            for area in [*camera.lanes, *camera.zones]
        ]
        self.movements = MovementTracker(camera, self.fps, ttl_frames=counting.track_ttl_frames)
        self.report_every = max(1, int(round(camera.report_interval_s * self.fps)))
        rules = effective_incidents(self.incident_defaults, camera)
        if self.incidents is None:
            self.incidents = IncidentEngine(camera, rules, fps=self.fps, counting=counting)
        else:
            self.incidents.reconfigure(camera, rules)
        self._frames_in_interval = 0

    @property
    def model_version(self) -> str:
        return self.detector.version

    @property
    def stationary_tracks(self) -> set[int]:
        """Confirmed tracks standing still in the last frame."""
        return self.stationary.stationary

    def reconfigure(self, camera: CameraConfig, counting: CountingConfig | None = None) -> None:
        """Apply new lines, zones and calibration without dropping the tracker (a pushed remote configuration)."""
        self._build(camera, counting or self.counting)

    def wants(self, frame_index: int) -> bool:
        """Whether ``process`` would run on this source frame (``detect_every``): sources may skip decoding others."""
        return frame_index % self.stride == 0

    def process(self, frame: np.ndarray, frame_index: int) -> FrameResult:
        if frame_index % self.stride:
            return FrameResult(frame_index, self._last_tracked, processed=False, detected=False)
        if self.motion is not None and not self.motion.should_detect(frame, frame_index):
            result = self.process_detections(self._last_dets, frame_index, 0.0)
            result.detected = False
            return result
        t0 = time.perf_counter()
        dets = self._last_dets = self.detector.detect(frame)
        inference_ms = (time.perf_counter() - t0) * 1000.0
        if self.motion is not None:
            self.motion.detected(frame_index)
        return self.process_detections(dets, frame_index, inference_ms)

    def process_detections(self, dets: Detections, frame_index: int, inference_ms: float = 0.0) -> FrameResult:
        """The stages after detection: lets tests and cached detections skip the model."""
        tracked = self._last_tracked = self.tracker.update(dets)
        speeds = self.speed.update(tracked, frame_index) if self.speed else {}
        stationary = self.stationary.update(tracked, frame_index)
        crossings: list[Crossing] = []
        for counter in self.counters:
            crossings.extend(counter.update(tracked, frame_index, speeds))
        for zone in self.zones:
            zone.update(tracked, frame_index, speeds, stationary)
        movements: list[MovementResult] = self.movements.update(tracked, frame_index, speeds)
        reports: list[ZoneReport] = []
        self._frames_in_interval += self.stride  # source frames, whatever the stride
        if self._frames_in_interval >= self.report_every:
            self._frames_in_interval = 0
            reports = [zone.report(frame_index) for zone in self.zones]
        incidents = self.incidents.update(tracked, frame_index, stationary, speeds) if self.incidents else []
        return FrameResult(frame_index, tracked, crossings, inference_ms, movements, reports, incidents)
