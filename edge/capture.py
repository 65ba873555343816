"""One camera's vision thread: read the source, run the pipeline, store each frame's events.

Never touches the network, so a slow or absent broker cannot stall counting. Each frame's events
and the file's checkpoint go to the outbox in one transaction (``Outbox.append_many``).

A looping file gets a fresh pipeline (tracker and counters) at each pass, so a track that ends at the
last frame does not "jump" to the first frame and count a phantom crossing; what the old pipeline
still holds open (incidents) is closed first, as it is when the source ends or the worker stops.
Timestamps: ``ts`` is the edge's UTC clock when the result was counted, for every source; the source
position is in ``frame_index`` and in the event ids, which is what de-duplication relies on.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import get_args

import numpy as np

from citywatch.config import CameraConfig, EdgeConfig
from citywatch.contract import CLASS_NAMES, Incident, LineCrossing, Movement, SourceState
from edge.camera_state import CameraState
from edge.frame_events import EventMaker, Origin, PendingEvent, SnapshotTaker, result_count
from edge.merged import Emit
from edge.outbox import Outbox
from edge.resume import AlreadyRead, Resumed, open_camera_source
from edge.snapshots import SnapshotStore
from edge.sources import FileSource, Frame, LiveSource
from edge.tamper import TamperDetector
from edge.vision_port import FrameResult, PipelineLike
from vision.detections import Detections

log = logging.getLogger(__name__)

#: ``build_pipeline(camera, fps, frame_hw)``: a fresh pipeline for a new pass of the source.
BuildPipeline = Callable[[CameraConfig, float, tuple[int, int] | None], PipelineLike]

_STATES: dict[str, SourceState] = {s: s for s in get_args(SourceState)}


class CaptureLoop:
    """Runs one camera's source through its pipeline into the outbox until the source ends or ``stop`` is set."""

    def __init__(
        self,
        state: CameraState,
        *,
        edge: EdgeConfig,
        outbox: Outbox,
        build_pipeline: BuildPipeline,
        tamper: TamperDetector,
        snapshots: SnapshotStore,
        stop: threading.Event,
        emit: Emit,
        on_frame: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        self.state = state
        #: every frame read, before the pipeline (the reference picture's sampler)
        self.on_frame = on_frame
        self.edge = edge
        self.outbox = outbox
        self.build_pipeline = build_pipeline
        self.tamper = tamper
        self.snapshots = snapshots
        self.stop = stop
        self.emit = emit
        self.events = EventMaker(state.id)
        self.source: FileSource | LiveSource | None = None
        self.resumed: Resumed | None = None

    def run(self) -> None:
        st = self.state
        try:
            source, self.resumed = open_camera_source(st.camera, self.edge.sources, self.outbox)
        except AlreadyRead as done:
            log.info("camera %s: %s", st.id, done)
            st.report("ended", str(done))
            return
        except Exception as exc:
            log.error("camera %s: cannot start: %s", st.id, exc)
            st.report("error", str(exc)[:500])
            return
        self.source = source
        if isinstance(source, LiveSource):
            source.on_state = self._on_source_state
            log.info("camera %s: live source %s, connecting", st.id, source.source_key)
        else:
            st.fps = source.fps
            st.source_state = "ok"
            log.info(
                "camera %s: source %s open (%.1f fps, %s frames)", st.id, source.path, source.fps, source.frame_count
            )
        last = self._frames(source)
        if last is not None:
            with st.pipeline_lock:
                self._close_open_incidents(source, last)  # ended or stopping: nothing stays open forever
            if isinstance(source, FileSource) and self.edge.sources.resume:
                ended = not self.stop.is_set() and not source.loop
                self.outbox.save_position(st.id, source.source_key, last.pass_no, last.index, ended=ended)
        if not self.stop.is_set():
            log.info("camera %s: source ended after %d frames", st.id, st.counters.frames)
            st.report("ended", st.message)

    def _frames(self, source: FileSource | LiveSource) -> Frame | None:
        """The frame loop; returns the last frame read (None: none was)."""
        st, n = self.state, self.state.counters
        tamper_cfg = self.edge.tamper
        next_checkpoint = next_tamper = time.monotonic()
        current_pass: int | None = None
        prev: Frame | None = None
        for frame in source.frames(self.stop):
            n.frames += 1
            if self.on_frame is not None:
                self.on_frame(frame.image)
            with st.pipeline_lock:
                pipeline = st.pipeline
                if frame.pass_no != current_pass or pipeline is None:
                    if prev is not None:
                        self._close_open_incidents(source, prev)  # the old pass's pipeline is replaced
                    current_pass = frame.pass_no
                    st.fps = source.fps
                    hw = (int(frame.image.shape[0]), int(frame.image.shape[1]))
                    pipeline = st.pipeline = self.build_pipeline(st.camera, source.fps, hw)
                    if isinstance(source, LiveSource):
                        self.tamper.reset()
                # a real-time file or a live stream this camera is behind: the pipeline sheds detections
                pipeline.lag_s = source.lag_s
                result = pipeline.process(frame.image, frame.index)
            if result.processed:  # frames skipped by a stride are not
                n.frames_processed += 1
                if result.detected:
                    n.frames_detected += 1
            elif result.skipped:
                n.frames_skipped += 1
            n.inference_ms_total += result.inference_ms
            self._record(result, source, frame)
            prev = frame
            now = time.monotonic()
            if tamper_cfg.enabled and now >= next_tamper:
                next_tamper = now + tamper_cfg.check_every_s
                self._check_tamper(frame.image)
            if isinstance(source, FileSource) and now >= next_checkpoint:
                next_checkpoint = now + self.edge.sources.checkpoint_every_s
                if not self._suppressed(frame):
                    self.outbox.save_position(st.id, source.source_key, frame.pass_no, frame.index)
        return prev

    def _on_source_state(self, state: str, message: str | None) -> None:
        if state == "reconnecting":
            log.warning("camera %s: %s", self.state.id, message)
        else:
            log.info("camera %s: source %s", self.state.id, state)
        self.state.report(_STATES.get(state, "error"), message)

    def _check_tamper(self, image: np.ndarray) -> None:
        st = self.state
        signs = self.tamper.check(image)
        if signs != st.tamper_signs:
            log.warning("camera %s: tamper signs %s (were %s)", st.id, signs, st.tamper_signs)
            st.tamper_signs = signs
            st.heartbeat_now.set()

    def _suppressed(self, frame: Frame) -> bool:
        """True for frames at or before the checkpoint a resumed file restarted from (warm-up)."""
        return self.resumed is not None and self.resumed.covers(frame.pass_no, frame.index)

    def _close_open_incidents(self, source: FileSource | LiveSource, frame: Frame) -> None:
        """Close what the current pipeline still has open, as of ``frame`` (its last processed frame).
        The caller holds the pipeline lock."""
        engine = self.state.pipeline.incidents if self.state.pipeline is not None else None
        if engine is None:
            return
        closed = engine.close_all(frame.index)
        if closed:
            self._record(FrameResult(frame.index, Detections.empty(), incidents=closed), source, frame)

    def _record(self, result: FrameResult, source: FileSource | LiveSource, frame: Frame) -> None:
        """Turn one frame's results into events and store them, with the checkpoint, atomically."""
        st, n = self.state, self.state.counters
        count = result_count(result)
        if not count:
            return
        if self._suppressed(frame):
            n.suppressed += count
            return
        # files keep the integer pass in their ids; a live connection its start time
        origin = Origin(source.source_key, frame.pass_no if isinstance(source, FileSource) else frame.pass_key)
        snapshot: SnapshotTaker | None = None
        if self.snapshots.enabled:
            snapshot = lambda iid: self._snapshot(iid, frame.image, result.detections)  # noqa: E731
        pending = self.events.pending(result, origin, st.envelope(), fps=st.fps, snapshot=snapshot)
        valid: list[PendingEvent] = []
        for p in pending:
            try:
                p.make(1)  # validate before the transaction: one bad result must not lose the others
            except Exception as exc:
                n.events_rejected += 1
                log.error("camera %s: %s %r not recorded: %s", st.id, p.kind, p.item, exc)
                continue
            valid.append(p)
        position = (source.source_key, frame.pass_no, frame.index) if isinstance(source, FileSource) else None
        try:
            events = self.outbox.append_many(st.id, [p.make for p in valid], position)
        except Exception as exc:
            n.events_rejected += len(valid)
            log.error("camera %s: %d results of frame %d not recorded: %s", st.id, len(valid), frame.index, exc)
            return
        for event in events:
            n.events_appended += 1
            if isinstance(event, LineCrossing):
                n.crossings[f"{event.line_id}/{event.direction}/{event.class_name}"] += 1
            elif isinstance(event, Movement):
                n.movements += 1
            elif isinstance(event, Incident):
                n.incidents += 1
            else:
                n.zone_reports += 1
            self.emit(event)
        st.wake.set()

    def _snapshot(self, incident_id: uuid.UUID, image: np.ndarray, dets: Detections) -> str | None:
        """Blurred evidence of the frame an incident opened on (edge only); None when it cannot be saved."""
        boxes = [(float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in dets.xyxy]
        names = [CLASS_NAMES[int(c)] for c in dets.class_id]
        try:
            sid = self.snapshots.save(
                self.state.id, image, boxes, names, snapshot_id=f"{self.state.id}-{incident_id.hex}"
            )
        except Exception:
            log.exception("camera %s: incident snapshot not saved", self.state.id)
            return None
        if sid:
            self.state.counters.snapshots += 1
        return sid
