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

On by default: the adaptive stride (``max_stride``) detects on every frame while a track's anchor may
reach a counting line before the next detection, and on every ``max_stride``-th frame otherwise (an
empty or slow scene); the frames between are "skipped by design" (``FrameResult.skipped``) and the
tracker bridges them. The region of interest (``roi``, ``detection_area``) is the part of the frame
the detector sees: the lines, lanes and zones with a margin of approach, so a camera whose counting
area is a quarter of the frame is detected at that quarter's resolution.
"""

from __future__ import annotations

import time

import numpy as np

from citywatch.config import (
    CameraConfig,
    CountingConfig,
    IncidentsConfig,
    LaneConfig,
    ModelConfig,
    ProcessingConfig,
    TrackerConfig,
    ZoneConfig,
    effective_incidents,
)
from vision.counting import Crossing, LineCounter
from vision.detections import Detections
from vision.detector import Detector, RegionDetector, load_detector
from vision.geometry import GroundPlane
from vision.incidents import IncidentEngine
from vision.motion import MotionGate
from vision.results import FrameResult as FrameResult  # re-exported: the edge imports it from here too
from vision.results import MovementResult, ZoneReport
from vision.speed import SpeedEstimator
from vision.tracker import Tracker
from vision.zones import MovementTracker, StationaryState, ZoneMonitor

#: A real-time camera this many seconds behind its source's clock sheds detections (``shed_max_stride``).
SHED_AFTER_S = 0.2


def detection_area(camera: CameraConfig, frame_hw: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The box (x1, y1, x2, y2) the detector sees in a ``frame_hw`` (height, width) frame; None: all of it.

    ``roi: auto`` is the bounding box of the camera's lines, lanes and zones, widened by ``roi_margin`` of
    the frame's size on every side (room for a vehicle to be found and confirmed before it reaches a line);
    a box covering nearly the whole frame (90 % of its area) is the whole frame."""
    h, w = frame_hw
    processing = camera.processing or ProcessingConfig()
    roi: tuple[float, float, float, float]
    if processing.roi == "full":
        return None
    if processing.roi != "auto":
        roi = processing.roi
    else:
        pts = [p for ln in camera.lines for p in ln.points]
        pts += [p for lane in camera.lanes for p in lane.polygon] + [p for z in camera.zones for p in z.polygon]
        if not pts:
            return None
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        mx, my = processing.roi_margin * w, processing.roi_margin * h
        roi = (min(xs) - mx, min(ys) - my, max(xs) + mx, max(ys) + my)
    x1, y1 = max(0, int(roi[0])), max(0, int(roi[1]))
    x2, y2 = min(w, int(-(-roi[2] // 1))), min(h, int(-(-roi[3] // 1)))
    if x2 - x1 < 16 or y2 - y1 < 16:
        raise ValueError(f"camera {camera.id}: roi {roi} lies outside its {w}x{h} frame")
    if (x2 - x1) * (y2 - y1) >= 0.9 * w * h:
        return None
    return x1, y1, x2, y2


def detector_input_hw(camera: CameraConfig, frame_hw: tuple[int, int]) -> tuple[int, int]:
    """Height and width of what the detector sees of this camera's frames (its region of interest)."""
    area = detection_area(camera, frame_hw)
    return frame_hw if area is None else (area[3] - area[1], area[2] - area[0])


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
        frame_hw: tuple[int, int] | None = None,
        lines_only: bool = False,
    ) -> None:
        self.camera = camera
        #: counting lines only (``citywatch count``): no zones, lanes, movements or incidents are computed
        self.lines_only = lines_only
        self.incident_defaults = incidents  # top-level section; the camera's own keys override it
        self.incidents: IncidentEngine | None = None
        self.model_config = model or ModelConfig()
        processing = camera.processing or ProcessingConfig()
        if processing.imgsz and processing.imgsz != self.model_config.imgsz:
            self.model_config = self.model_config.model_copy(update={"imgsz": processing.imgsz})
        self.frame_hw = frame_hw
        self.area = detection_area(camera, frame_hw) if frame_hw else None
        if detector is None:  # sized for this camera's region of interest (``imgsz: auto``)
            detector = load_detector(self.model_config, detector_input_hw(camera, frame_hw) if frame_hw else None)
        self.detector = detector
        self.fps = fps if fps and fps > 0 else 25.0
        self.stride = processing.detect_every
        self.max_stride = processing.max_stride
        self.shed_max_stride = processing.shed_max_stride
        #: set by a real-time source before each frame: seconds behind its clock; past SHED_AFTER_S the
        #: pipeline detects only every ``shed_max_stride``-th frame until it has caught up
        self.lag_s = 0.0
        self._last_detected = -(10**9)
        self._next_detect = 0
        self._last_index: int | None = None
        self._anchors: dict[int, tuple[int, float, float]] = {}  # track -> (frame, x, y) when last detected
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
        areas: list[LaneConfig | ZoneConfig] = [] if self.lines_only else [*camera.lanes, *camera.zones]
        self.zones = [
            ZoneMonitor(
                area, self.fps, anchor=camera.anchor, plane=plane, grace_frames=5 * self.stride * self.max_stride
            )
            for area in areas
        ]
        self.movements = MovementTracker(camera, self.fps, ttl_frames=counting.track_ttl_frames)
        self.report_every = max(1, int(round(camera.report_interval_s * self.fps)))
        rules = effective_incidents(self.incident_defaults, camera)
        if self.incidents is not None:
            self.incidents.reconfigure(camera, rules)
        elif not self.lines_only:
            self.incidents = IncidentEngine(camera, rules, fps=self.fps, counting=counting)
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
        shedding = self.lag_s > SHED_AFTER_S and frame_index - self._last_detected < self.shed_max_stride
        if frame_index % self.stride or frame_index < self._next_detect or shedding:
            return FrameResult(frame_index, self._last_tracked, processed=False, detected=False, skipped=True)
        self._last_detected = frame_index
        if self.motion is not None and not self.motion.should_detect(frame, frame_index):
            result = self.process_detections(self._last_dets, frame_index, 0.0)
            result.detected = False
            return result
        t0 = time.perf_counter()
        dets = self._last_dets = self._detect(frame)
        inference_ms = (time.perf_counter() - t0) * 1000.0
        if self.motion is not None:
            self.motion.detected(frame_index)
        return self.process_detections(dets, frame_index, inference_ms)

    def _detect(self, frame: np.ndarray) -> Detections:
        """The detector on the region of interest (when the detector can take one), boxes in frame pixels."""
        if not isinstance(self.detector, RegionDetector):
            return self.detector.detect(frame)
        if self.frame_hw != frame.shape[:2]:  # first frame, or the stream changed resolution
            self.frame_hw = (frame.shape[0], frame.shape[1])
            self.area = detection_area(self.camera, self.frame_hw)
        return self.detector.detect_region(frame, self.area) if self.area else self.detector.detect(frame)

    def _stride_after(self, tracked: Detections, frame_index: int) -> int:
        """Frames until the next detection: 1 while any track's anchor could reach a counting line
        before then (its speed over ``max_stride`` + 1 frames, plus half its box), else ``max_stride``."""
        if self.max_stride <= 1:
            return 1
        anchors = tracked.anchors(self.camera.anchor) if len(tracked) else np.empty((0, 2))
        seen: dict[int, tuple[int, float, float]] = {}
        near = False
        for i, tid in enumerate(tracked.tracker_id):
            x, y = float(anchors[i, 0]), float(anchors[i, 1])
            x1, y1, x2, y2 = tracked.xyxy[i]
            speed = 0.0
            prev = self._anchors.get(int(tid)) if tid >= 0 else None
            if prev is not None and frame_index > prev[0]:
                speed = float(np.hypot(x - prev[1], y - prev[2])) / (frame_index - prev[0])
            elif tid < 0:  # a new, unconfirmed track: assume it moves a box per second
                speed = max(x2 - x1, y2 - y1) / self.fps
            if tid >= 0:
                seen[int(tid)] = (frame_index, x, y)
            # half a box: a track at the dead band's edge (a narrower reach misses crossings: see
            # bench/counting_accuracy.py --max-stride)
            reach = speed * (self.max_stride + 1) + 0.5 * max(x2 - x1, y2 - y1)
            if not near and any(counter.distance_to(x, y) <= reach for counter in self.counters):
                near = True
        self._anchors = seen
        return 1 if near else self.max_stride

    def process_detections(self, dets: Detections, frame_index: int, inference_ms: float = 0.0) -> FrameResult:
        """The stages after detection: lets tests and cached detections skip the model."""
        tracked = self._last_tracked = self.tracker.update(dets)
        self._next_detect = frame_index + self._stride_after(tracked, frame_index)
        speeds = self.speed.update(tracked, frame_index) if self.speed else {}
        # what stands still matters to zones and incidents only
        stationary = self.stationary.update(tracked, frame_index) if self.zones or self.incidents is not None else set()
        crossings: list[Crossing] = []
        for counter in self.counters:
            crossings.extend(counter.update(tracked, frame_index, speeds))
        for zone in self.zones:
            zone.update(tracked, frame_index, speeds, stationary)
        movements: list[MovementResult] = [] if self.lines_only else self.movements.update(tracked, frame_index, speeds)
        reports: list[ZoneReport] = []
        # source frames since the last processed one, whatever the stride
        self._frames_in_interval += self.stride if self._last_index is None else frame_index - self._last_index
        self._last_index = frame_index
        if self._frames_in_interval >= self.report_every:
            self._frames_in_interval = 0
            reports = [zone.report(frame_index) for zone in self.zones]
        incidents = self.incidents.update(tracked, frame_index, stationary, speeds) if self.incidents else []
        return FrameResult(frame_index, tracked, crossings, inference_ms, movements, reports, incidents)
