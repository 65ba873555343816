"""The edge worker: cameras -> vision -> outbox -> MQTT, with the server's commits closing the loop.

This module keeps the threads and the lifecycle; each job has its own module:

* :mod:`edge.capture` - the **vision thread**: reads the source (:mod:`edge.resume` resumes a file at
  its checkpoint), runs the pipeline, checks tamper signs and stores each frame's events
  (:mod:`edge.frame_events`) in the outbox, never touching the network, so a slow or absent broker
  cannot stall counting;
* the **sender thread** (here) applies control messages (:mod:`edge.control`: committed, replay,
  config; pushed configurations persist through :mod:`edge.pushed_config`), appends heartbeats
  (:mod:`edge.heartbeat`) and publishes due events from the outbox (:mod:`edge.sender`).

Sources (``edge.sources``): files, RTSP, HTTP/MJPEG, USB. A live source reconnects by itself and
reports ``reconnecting``; its state changes trigger an immediate heartbeat.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from citywatch.config import CameraConfig, CitywatchConfig
from citywatch.mqtt import guard
from edge.camera_state import CameraState
from edge.capture import CaptureLoop
from edge.control import Control, ControlHandler
from edge.counters import CameraStats
from edge.heartbeat import Heartbeat
from edge.merged import AnyEvent, Emit
from edge.mqtt_link import MqttLink
from edge.outbox import Outbox
from edge.pushed_config import PushedConfigs
from edge.reference_service import ReferenceService
from edge.sender import Sender
from edge.snapshots import SnapshotStore
from edge.sources import LiveSource
from edge.tamper import TamperDetector
from edge.vision_port import PipelineFactory, PipelineLike
from vision.detections import Detections
from vision.detector import Detector
from vision.export import Size

if TYPE_CHECKING:  # prometheus_client is imported only when metrics are on
    from edge.metrics import MetricsServer

log = logging.getLogger(__name__)

__all__ = ["EdgeWorker", "PipelineFactory", "PipelineLike"]


class _Camera:
    """One camera's collaborators and its two threads (vision: ``capture``; sender: :meth:`_run_sender`)."""

    def __init__(self, worker: EdgeWorker, camera: CameraConfig, outbox: Outbox, emit: Emit) -> None:
        config = worker.config
        edge = config.edge
        self.id = camera.id
        self.state = CameraState(camera, config.camera_site(camera), worker.detector_version)
        self.n = self.state.counters
        tamper = TamperDetector(edge.tamper)
        self.controls: queue.Queue[Control] = queue.Queue()
        self.link = MqttLink(
            config.mqtt,
            site=self.state.site_id,
            camera_id=self.id,
            device_id=edge.device_id,
            on_control=self._on_control,
            on_connect=self._on_connect,
            max_inflight=edge.max_inflight,
            reconnect_max_s=edge.mqtt_reconnect_max_s,
        )
        self.reference = ReferenceService(
            edge.reference_picture,
            camera_id=self.id,
            site_id=self.state.site_id,
            topic=self.link.topics.reference(self.state.site_id, self.id),
            publish=lambda topic, payload: self.link.publish(topic, payload, qos=0),
            detect=worker.reference_detector(self.state) if edge.reference_picture.enabled else None,
        )
        self.capture = CaptureLoop(
            self.state,
            edge=edge,
            outbox=outbox,
            build_pipeline=worker.pipeline_factory,
            tamper=tamper,
            snapshots=worker.snapshots,
            stop=worker.sources_stopping,
            emit=emit,
            on_frame=self.reference.offer,
        )
        self.sender = Sender(self.id, outbox=outbox, link=self.link, edge=edge, counters=self.n)
        self.pushed = PushedConfigs(outbox, enabled=edge.persist_config)
        self.control = ControlHandler(
            self.state, outbox=outbox, sender=self.sender, pushed=self.pushed, tamper=tamper, reference=self.reference
        )
        self.heartbeat = Heartbeat(
            self.state, outbox=outbox, snapshots=worker.snapshots, started_at=worker.started_at, emit=emit
        )
        self._heartbeat_s = edge.heartbeat_s
        self._senders_stopping = worker.senders_stopping
        self.vision_thread = threading.Thread(
            target=self._guard(self.capture.run), name=f"vision-{self.id}", daemon=True
        )
        self.sender_thread = threading.Thread(
            target=self._guard(self._run_sender), name=f"sender-{self.id}", daemon=True
        )

    @property
    def camera(self) -> CameraConfig:
        """The configuration this camera runs now (the file's, or one the server pushed)."""
        return self.state.camera

    def restore_config(self) -> None:
        """At start: run the pushed configuration a previous run applied, unless the file changed since."""
        restored = self.pushed.restore(self.state.file_camera)
        if restored is not None:
            self.state.camera = restored

    # --- paho thread -> sender thread ------------------------------------------------------

    def _on_control(self, control: Control) -> None:
        self.controls.put(control)
        self.state.wake.set()

    def _on_connect(self, session_present: bool) -> None:
        self.sender.reconnected.set()
        self.state.wake.set()

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        """A thread body that reports a crash as the camera's ``error`` state instead of dying silently."""
        name = getattr(fn, "__name__", repr(fn))

        def report(exc: Exception) -> None:
            self.state.report("error", f"{name} crashed: {exc}"[:500])

        return guard(fn, logger=log, message=f"camera {self.id}: %s crashed", on_error=report)

    # --- sender thread ---------------------------------------------------------------------

    def _run_sender(self) -> None:
        st, stopping = self.state, self._senders_stopping
        next_hb = time.monotonic()
        while not stopping.is_set():
            st.wake.clear()
            while True:
                try:
                    control = self.controls.get_nowait()
                except queue.Empty:
                    break
                try:
                    self.control.handle(control)
                except Exception:
                    log.exception("camera %s: control message %s failed", self.id, control.kind)
            try:
                if st.heartbeat_now.is_set() or time.monotonic() >= next_hb:
                    st.heartbeat_now.clear()
                    self.heartbeat.append()
                    next_hb = time.monotonic() + self._heartbeat_s
                self.sender.send_pass()
                self.reference.poll()
            except Exception:  # e.g. a transient SQLite error: log, back off, keep the camera alive
                log.exception("camera %s: sender pass failed; retrying", self.id)
                stopping.wait(1.0)
            st.wake.wait(0.1)
        # stopping: a last heartbeat, one more send pass, and wait for the broker's PUBACKs.
        st.message = st.message or "edge stopping"
        self.heartbeat.append()
        self.sender.send_pass()


class EdgeWorker:
    """Runs every configured camera (the delivery contract: :mod:`edge.sender` and :mod:`edge.control`).

    ``detector``: a shared detector (loaded once from ``config.model`` when omitted and no
    ``pipeline_factory`` is given). ``pipeline_factory(camera, fps)``: builds a camera's pipeline
    (default: ``vision.pipeline.VisionPipeline`` with the shared detector). ``on_event(event)``: called
    (on the appending thread) with every event stored in the outbox, e.g. for a local display.
    """

    def __init__(
        self,
        config: CitywatchConfig,
        *,
        detector: Detector | None = None,
        pipeline_factory: PipelineFactory | None = None,
        on_event: Emit | None = None,
    ) -> None:
        self.config = config
        self.detector = detector
        self._given_detector = detector is not None  # used for every camera as it is
        self._detectors: dict[Size, Detector] = {}  # per input size (imgsz: auto, processing.imgsz); see prepare()
        self._detectors_lock = threading.Lock()
        self._file_sizes: dict[str, tuple[int, int] | None] = {}  # camera id -> probed frame size (files)
        self._factory = pipeline_factory
        self.on_event = on_event
        self._outbox: Outbox | None = None  # opened by start()
        self.cameras: dict[str, _Camera] = {}
        #: set to stop reading the sources (the vision threads end), then to stop sending
        self.sources_stopping = threading.Event()
        self.senders_stopping = threading.Event()
        self.started_at = time.monotonic()
        self._running = False
        self._final_depth: dict[str, int] = {}
        self.snapshots = SnapshotStore(config.edge.snapshots)
        self.metrics: MetricsServer | None = None
        self.metrics_port: int | None = None

    @property
    def outbox(self) -> Outbox:
        """The outbox, once :meth:`start` has opened it."""
        if self._outbox is None:
            raise RuntimeError("EdgeWorker not started: no outbox yet")
        return self._outbox

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_at

    def detector_version(self) -> str:
        """The shared detector's model version (a camera's before its pipeline exists)."""
        return self.detector.version if self.detector is not None else "unknown"

    def pipeline_factory(
        self, camera: CameraConfig, fps: float, frame_hw: tuple[int, int] | None = None
    ) -> PipelineLike:
        if self._factory is not None:
            return self._factory(camera, fps)
        from vision.pipeline import VisionPipeline

        return VisionPipeline(
            camera,
            model=self.config.model,
            tracker=self.config.tracker,
            counting=self.config.counting,
            detector=self._detector_for(camera, frame_hw),
            fps=fps,
            incidents=self.config.incidents,
            frame_hw=frame_hw,
        )

    def _input_size(self, camera: CameraConfig, frame_hw: tuple[int, int] | None) -> Size | None:
        """This camera's detector input: ``processing.imgsz``, else (``imgsz: auto``) the shape of its region
        of interest in ``frame_hw`` frames; None: the shared detector's."""
        from vision.detector import input_size
        from vision.pipeline import detector_input_hw

        imgsz: Size | None = camera.processing.imgsz if camera.processing else None
        if not imgsz and self.config.model.imgsz == "auto" and frame_hw is not None:
            imgsz = input_size(self.config.model, detector_input_hw(camera, frame_hw))
        return imgsz or None

    def _sharers(self, imgsz: Size, frame_hw: tuple[int, int] | None) -> int:
        """How many configured cameras will run the model of this input size: what the model is compiled for
        (one infer stream each, up to the cores). A file tells its frame size; a live camera's is taken to be
        ``frame_hw``, this camera's (the cameras of one box are mostly alike)."""
        return max(1, sum(self._input_size(c, self._file_size(c) or frame_hw) == imgsz for c in self.config.cameras))

    def _file_size(self, camera: CameraConfig) -> tuple[int, int] | None:
        """A file camera's frame size, probed once (:meth:`prepare` and every new model ask for it); None for
        a live camera or a file that cannot be read."""
        from edge.sources import probe_size

        if camera.id not in self._file_sizes:
            self._file_sizes[camera.id] = probe_size(camera.source)
        return self._file_sizes[camera.id]

    def _detector_for(self, camera: CameraConfig, frame_hw: tuple[int, int] | None = None) -> Detector:
        """The detector for this camera's input size (:meth:`_input_size`), else the shared one. One per size,
        shared by the cameras of that size and compiled for that many streams: four cameras with four sizes
        each compiled for four streams on two cores starved the largest (bench/edge_throughput.py, 1080p-roi)."""
        from vision.detector import load_detector

        model = self.config.model
        imgsz = self._input_size(camera, frame_hw)
        if imgsz and camera.processing and camera.processing.imgsz:
            model = model.model_copy(update={"imgsz": imgsz})
        shared = getattr(self.detector, "imgsz", None)
        if imgsz is None or self._given_detector or self._factory is not None or imgsz == shared:
            if self.detector is None and self._factory is None:
                with self._detectors_lock:
                    if self.detector is None:
                        self.detector = load_detector(model, streams=len(self.config.cameras))
            if self.detector is None:  # a pipeline_factory brings its own detectors
                raise RuntimeError("no shared detector: the worker was given a pipeline_factory")
            return self.detector
        with self._detectors_lock:
            det = self._detectors.get(imgsz)
            if det is None:
                # auto: the (multiple of 32) size as the picture it follows; a fixed size ignores it
                hw = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
                det = self._detectors[imgsz] = load_detector(model, hw, streams=self._sharers(imgsz, frame_hw))
            return det

    def reference_detector(self, state: CameraState) -> Callable[[np.ndarray], Detections]:
        """The detector a camera's reference picture is blurred by: its own (loaded on first use). With a
        ``pipeline_factory`` and no shared detector there is none: the picture fails and is not sent. It
        runs under the camera's pipeline lock: not at the same time as the camera's own frames."""

        def detect(image: np.ndarray) -> Detections:
            detector = self._detector_for(state.camera, (int(image.shape[0]), int(image.shape[1])))
            with state.pipeline_lock:
                return detector.detect(image)

        return detect

    def prepare(self) -> None:
        """Export and load every file camera's detector now, before any source's clock starts (a first export
        takes seconds; a real-time camera must not fall behind for it). Live cameras get theirs on connecting."""
        for camera in self.config.cameras:
            hw = self._file_size(camera)
            if hw is not None:
                self._detector_for(camera, hw)

    def _emit(self, event: AnyEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            log.exception("on_event callback failed")

    def start(self) -> None:
        """Open the outbox, load the detector, connect and start every camera; returns at once."""
        if self._running:
            raise RuntimeError("EdgeWorker already started")
        if self._factory is None and self.config.cameras:
            self.prepare()
        edge = self.config.edge
        outbox = self._outbox = Outbox(
            edge.outbox_path, max_events=edge.outbox_max_events, merge_interval_s=edge.merge_interval_s
        )
        self.started_at = time.monotonic()
        self.sources_stopping.clear()
        self.senders_stopping.clear()
        self.cameras = {c.id: _Camera(self, c, outbox, self._emit) for c in self.config.cameras}
        for cam in self.cameras.values():
            cam.restore_config()
        if edge.metrics_port is not None:
            from edge.metrics import MetricsServer

            self.metrics = MetricsServer(self, edge.metrics_host, edge.metrics_port)
            try:
                self.metrics_port = self.metrics.start()
            except OSError as exc:
                log.error("edge metrics: cannot listen on %s:%s: %s", edge.metrics_host, edge.metrics_port, exc)
                self.metrics = None
        for cam in self.cameras.values():
            cam.link.start()
            cam.sender_thread.start()
            cam.vision_thread.start()
        self._running = True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the sources, send a last heartbeat, flush to the broker, publish ``offline``, disconnect.

        Events not yet committed stay in the outbox and are sent by the next run.
        """
        if not self._running:
            return
        deadline = time.monotonic() + timeout
        self.sources_stopping.set()
        for cam in self.cameras.values():
            cam.vision_thread.join(max(0.1, deadline - time.monotonic()))
        self.senders_stopping.set()
        for cam in self.cameras.values():
            cam.state.wake.set()
        for cam in self.cameras.values():
            cam.sender_thread.join(max(0.1, deadline - time.monotonic()))
        for cam in self.cameras.values():
            cam.link.flush(max(0.1, min(2.0, deadline - time.monotonic())))
            cam.link.stop(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        alive = [t.name for c in self.cameras.values() for t in (c.vision_thread, c.sender_thread) if t.is_alive()]
        if alive:
            log.warning("threads still running after stop(): %s (outbox left open)", ", ".join(alive))
        else:
            self._final_depth = {cid: self.outbox.depth(cid) for cid in self.cameras}
            self.outbox.close()
        self._running = False

    def run_until(self, stop_event: threading.Event, timeout: float = 10.0) -> None:
        """Start, block until ``stop_event`` is set, then stop (the CLI's ``edge run``)."""
        self.start()
        try:
            stop_event.wait()
        finally:
            self.stop(timeout)

    def stats(self) -> dict[str, CameraStats]:
        out: dict[str, CameraStats] = {}
        for cid, cam in self.cameras.items():
            n, st = cam.n, cam.state
            src = cam.capture.source
            resumed = cam.capture.resumed
            comp = self._outbox.compactions.get(cid) if self._outbox is not None else None
            out[cid] = {
                "frames": n.frames,
                "frames_processed": n.frames_processed,
                "frames_detected": n.frames_detected,
                "frames_skipped": n.frames_skipped,
                "frames_handled": n.frames_processed + n.frames_skipped,
                "frames_dropped": src.frames_dropped if src is not None else 0,
                "source_reconnects": src.reconnects if src is not None else 0,
                "source_stalls": src.stalls if isinstance(src, LiveSource) else 0,
                "source_last_recovery_s": src.last_recovery_s if isinstance(src, LiveSource) else None,
                "fps_in": n.fps_in,
                "fps_processed": n.fps_processed,
                "inference_ms": n.inference_ms,
                "tamper": list(st.tamper_signs),
                "resumed_from": (resumed.pass_no, resumed.frame_index) if resumed is not None else None,
                "suppressed": n.suppressed,
                "movements": n.movements,
                "zone_reports": n.zone_reports,
                "incidents": n.incidents,
                "snapshots": n.snapshots,
                "batches": n.batches,
                "events_rejected": n.events_rejected,
                "outbox_status_dropped": comp.status_dropped if comp else 0,
                "outbox_zone_dropped": comp.zone_dropped if comp else 0,
                "outbox_crossings_merged": comp.crossings_merged if comp else 0,
                "crossings": dict(n.crossings),
                "events_appended": n.events_appended,
                "events_published": n.events_published,
                "resends": n.resends,
                "replayed": n.replayed,
                "committed_seq": n.committed_seq,
                "outbox_depth": self.outbox.depth(cid) if self._running else self._final_depth.get(cid),
                "source_state": st.source_state,
                "message": st.message,
                "mqtt_connected": cam.link.connected,
                "config_version": cam.camera.config_version(),
                "config_applied": n.config_applied,
                "config_rejected": n.config_rejected,
                "invalid_controls": cam.link.invalid_controls,
            }
        return out

    def stop_sources(self, timeout: float = 10.0) -> bool:
        """Stop reading and counting but keep sending, so what was counted can still be delivered."""
        self.sources_stopping.set()
        return self.wait_sources_done(timeout)

    def wait_sources_done(self, timeout: float) -> bool:
        """True once every camera's source has ended or failed (a non-looping file read to its end)."""
        deadline = time.monotonic() + timeout
        for cam in self.cameras.values():
            cam.vision_thread.join(max(0.0, deadline - time.monotonic()))
        return not any(cam.vision_thread.is_alive() for cam in self.cameras.values())

    def wait_drained(self, timeout: float) -> bool:
        """True once every camera's outbox is empty (everything committed by the server).

        Empty is an instant: before the first crossing it is trivially true. For "all of the clip
        was delivered", call ``wait_sources_done`` first.
        """
        deadline = time.monotonic() + timeout
        while True:
            if all(self.outbox.depth(cid) == 0 for cid in self.cameras):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
