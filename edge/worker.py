"""The edge worker: cameras -> vision -> outbox -> MQTT, with the server's commits closing the loop.

Per camera there are two threads:

* the **vision thread** reads the source, runs the camera's pipeline and appends each crossing to the
  outbox (never touching the network, so a slow or absent broker cannot stall counting);
* the **sender thread** appends heartbeats, applies control messages (committed, replay, config) and
  publishes due events from the outbox in seq order, at QoS 1, at most ``edge.max_inflight``
  uncommitted events ahead of the oldest kept one. An event is deleted only when the server's
  ``ControlCommitted`` watermark covers it; events not committed ``resend_after_s`` after their
  last publication are published again (same bytes, same event_id, same seq).

Timestamps: ``ts`` is the edge's UTC clock when the crossing was counted, for every source. For a
file processed faster than real time this compresses the clip's time; the source position is in
``frame_index`` (and in the event id), which is what de-duplication relies on.

A looping file gets a fresh pipeline (tracker and counters) at each pass, so a track that ends at the
last frame does not "jump" to the first frame and count a phantom crossing.

Pushed configurations (``ControlConfig``) change lines/lanes/zones at once (``pipeline.reconfigure``)
and the new ``config_version`` is carried by the next events; they are not persisted yet, so a
restart returns to the file's configuration until the server pushes again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from citywatch.config import CameraConfig, CitywatchConfig, ConfigError, validate_camera
from citywatch.contract import (
    CameraStatus,
    ControlCommitted,
    ControlConfig,
    ControlReplay,
    LineCrossing,
    deterministic_event_id,
    utcnow,
)
from edge.mqtt_link import Control, MqttLink
from edge.outbox import Outbox
from edge.sources import VideoSource

log = logging.getLogger(__name__)


class PipelineLike(Protocol):
    """What the worker needs of ``vision.pipeline.VisionPipeline`` (tests inject a fake)."""

    @property
    def model_version(self) -> str: ...

    def process(self, frame: Any, frame_index: int) -> Any: ...  # -> FrameResult (.crossings, .inference_ms)

    def reconfigure(self, camera: CameraConfig) -> None: ...


#: ``pipeline_factory(camera, fps)`` builds one camera's pipeline.
PipelineFactory = Callable[[CameraConfig, float], PipelineLike]


@dataclass
class _Counters:
    """Written by one thread each, read by others: plain ints are fine under the GIL."""

    frames: int = 0
    frames_processed: int = 0
    inference_ms_total: float = 0.0
    crossings: Counter[str] = field(default_factory=Counter)
    events_appended: int = 0
    events_rejected: int = 0
    events_published: int = 0
    resends: int = 0
    replayed: int = 0
    committed_seq: int = 0
    config_rejected: int = 0
    config_applied: int = 0


class _Camera:
    """Everything the worker keeps for one camera."""

    def __init__(self, worker: EdgeWorker, camera: CameraConfig) -> None:
        self.worker = worker
        self.camera = camera
        self.id = camera.id
        self.site = worker.config.camera_site(camera)
        self.pipeline: PipelineLike | None = None
        self.pipeline_lock = threading.Lock()
        self.source_state = "starting"
        self.message: str | None = None
        self.fps: float | None = None
        self.n = _Counters()
        self.controls: queue.Queue[Control] = queue.Queue()
        self.replays: list[tuple[int, int | None]] = []
        self.wake = threading.Event()
        self.heartbeat_now = threading.Event()
        self.reconnected = threading.Event()
        self.link = MqttLink(
            worker.config.mqtt,
            site=self.site,
            camera_id=self.id,
            device_id=worker.config.edge.device_id,
            on_control=self._on_control,
            on_connect=self._on_connect,
            max_inflight=worker.config.edge.max_inflight,
        )
        self.vision_thread = threading.Thread(
            target=self._guard(self.run_vision), name=f"vision-{self.id}", daemon=True
        )
        self.sender_thread = threading.Thread(
            target=self._guard(self.run_sender), name=f"sender-{self.id}", daemon=True
        )
        self._last_hb = (time.monotonic(), 0, 0, 0.0)

    # --- paho thread -> sender thread ------------------------------------------------------

    def _on_control(self, control: Control) -> None:
        self.controls.put(control)
        self.wake.set()

    def _on_connect(self, session_present: bool) -> None:
        self.reconnected.set()
        self.wake.set()

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Exception as exc:
                log.exception("camera %s: %s crashed", self.id, fn.__name__)
                self.source_state = "error"
                self.message = f"{fn.__name__} crashed: {exc}"[:500]
                self.heartbeat_now.set()
                self.wake.set()

        return run

    @property
    def model_version(self) -> str:
        p = self.pipeline
        if p is not None:
            return str(p.model_version)[:128]
        det = self.worker.detector
        return str(getattr(det, "version", "unknown"))[:128]

    # --- vision thread ---------------------------------------------------------------------

    def run_vision(self) -> None:
        w = self.worker
        try:
            source = VideoSource(self.camera.source, realtime=self.camera.realtime, loop=self.camera.loop)
            self.fps = source.fps
            with self.pipeline_lock:
                self.pipeline = w.pipeline_factory(self.camera, source.fps)
        except Exception as exc:
            self.source_state = "error"
            self.message = str(exc)[:500]
            log.error("camera %s: cannot start: %s", self.id, exc)
            self.heartbeat_now.set()
            self.wake.set()
            return
        self.source_state = "ok"
        log.info(
            "camera %s: source %s open (%.1f fps, %s frames)",
            self.id,
            source.path,
            source.fps,
            source.frame_count,
        )
        current_pass = 0
        for frame_index, pass_no, frame in source.frames(w._stop_sources):
            self.n.frames += 1
            with self.pipeline_lock:
                if pass_no != current_pass:
                    current_pass = pass_no
                    self.pipeline = w.pipeline_factory(self.camera, source.fps)
                assert self.pipeline is not None
                result = self.pipeline.process(frame, frame_index)
            self.n.frames_processed += 1
            self.n.inference_ms_total += float(getattr(result, "inference_ms", 0.0) or 0.0)
            for crossing in result.crossings:
                self._append_crossing(crossing, source.source_key, pass_no)
        if not w._stop_sources.is_set():
            self.source_state = "ended"
            log.info("camera %s: source ended after %d frames", self.id, self.n.frames)
            self.heartbeat_now.set()
            self.wake.set()

    def _append_crossing(self, c: Any, source_key: str, pass_no: int) -> None:
        camera = self.camera
        speed = c.speed_kmh if c.speed_kmh is not None and 0 <= c.speed_kmh <= 300 else None

        def make(seq: int) -> LineCrossing:
            return LineCrossing(
                event_id=deterministic_event_id(
                    self.id,
                    "line_crossing",
                    source_key,
                    pass_no,
                    c.frame_index,
                    c.track_id,
                    c.line_id,
                    c.direction,
                ),
                camera_id=self.id,
                site_id=self.site,
                seq=seq,
                ts=utcnow(),
                config_version=camera.config_version(),
                model_version=self.model_version,
                line_id=c.line_id,
                direction=c.direction,
                class_name=c.class_name,
                track_id=c.track_id,
                frame_index=c.frame_index,
                speed_kmh=speed,
            )

        try:
            event = self.worker.outbox.append(self.id, make)
        except Exception as exc:
            self.n.events_rejected += 1
            log.error("camera %s: crossing %r not recorded: %s", self.id, c, exc)
            return
        self.n.events_appended += 1
        self.n.crossings[f"{c.line_id}/{c.direction}/{c.class_name}"] += 1
        self.wake.set()
        self.worker._emit(event)

    # --- sender thread ---------------------------------------------------------------------

    def append_heartbeat(self) -> None:
        w = self.worker
        now = time.monotonic()
        t0, frames0, processed0, inf0 = self._last_hb
        frames, processed, inf = self.n.frames, self.n.frames_processed, self.n.inference_ms_total
        dt = max(now - t0, 1e-6)
        self._last_hb = (now, frames, processed, inf)
        done = processed - processed0
        depth, first = w.outbox.depth(self.id), w.outbox.first_seq(self.id)

        def make(seq: int) -> CameraStatus:
            return CameraStatus(
                event_id=uuid.uuid4(),
                camera_id=self.id,
                site_id=self.site,
                seq=seq,
                ts=utcnow(),
                config_version=self.camera.config_version(),
                model_version=self.model_version,
                source_state=self.source_state,
                fps_in=(frames - frames0) / dt,
                fps_processed=done / dt,
                inference_ms=(inf - inf0) / done if done else 0.0,
                outbox_depth=depth,
                outbox_first_seq=first,
                uptime_s=now - w._started_at,
                frames_total=frames,
                message=self.message,
            )

        event = w.outbox.append(self.id, make)
        self.n.events_appended += 1
        w._emit(event)

    def handle_control(self, control: Control) -> None:
        outbox = self.worker.outbox
        if isinstance(control, ControlCommitted):
            last = outbox.last_seq(self.id)
            if control.seq > last:
                moved = outbox.rebase(self.id, control.seq)
                log.error(
                    "camera %s: the server has committed up to seq %d but this outbox only ever assigned up "
                    "to %d: the outbox was reset or another edge uses camera id %s. "
                    "Renumbered %d kept events "
                    "after %d so none is lost.",
                    self.id,
                    control.seq,
                    last,
                    self.id,
                    moved,
                    control.seq,
                )
            else:
                if control.seq < outbox.committed_seq(self.id):
                    log.warning(
                        "camera %s: committed watermark went back to %d (was %d): server store reset?",
                        self.id,
                        control.seq,
                        outbox.committed_seq(self.id),
                    )
                deleted = outbox.commit_up_to(self.id, control.seq)
                log.debug("camera %s: committed %d, deleted %d", self.id, control.seq, deleted)
            self.n.committed_seq = control.seq
        elif isinstance(control, ControlReplay):
            first = outbox.first_seq(self.id)
            if first is None or control.from_seq < first:
                log.warning(
                    "camera %s: replay from seq %d asked, but the outbox keeps only from %s (the rest was committed)",
                    self.id,
                    control.from_seq,
                    first,
                )
            self.replays.append((control.from_seq, control.to_seq))
        elif isinstance(control, ControlConfig):
            self.apply_config(control)

    def apply_config(self, control: ControlConfig) -> None:
        data = dict(control.camera)
        data.setdefault("version", control.config_version)
        try:
            new = validate_camera(data)
        except ConfigError as exc:
            self.n.config_rejected += 1
            log.error("camera %s: rejected pushed configuration %s: %s", self.id, control.config_version, exc)
            return
        if new.id != self.id:
            self.n.config_rejected += 1
            log.error("camera %s: rejected pushed configuration for camera id %r", self.id, new.id)
            return
        if (new.source, new.realtime, new.loop) != (
            self.camera.source,
            self.camera.realtime,
            self.camera.loop,
        ):
            log.warning(
                "camera %s: pushed source/realtime/loop changes need a restart; keeping the current source",
                self.id,
            )
            new = new.model_copy(
                update={
                    "source": self.camera.source,
                    "realtime": self.camera.realtime,
                    "loop": self.camera.loop,
                }
            )
        with self.pipeline_lock:
            if self.pipeline is not None:
                self.pipeline.reconfigure(new)
            self.camera = new
        self.n.config_applied += 1
        log.info("camera %s: applied pushed configuration %s", self.id, new.config_version())
        self.heartbeat_now.set()

    def send_pass(self) -> None:
        """Publish replays, then due events in the window; mark what paho accepted."""
        w = self.worker
        cfg = w.config.edge
        outbox, link = w.outbox, self.link
        if not link.connected:
            return
        if self.reconnected.is_set():
            self.reconnected.clear()
            outbox.mark_unsent(self.id)  # the broker may have lost what was in flight
        while self.replays:
            lo, hi = self.replays[0]
            rows = outbox.range(self.id, lo, hi, limit=cfg.batch_size)
            sent = [r.seq for r in rows if link.publish(link.event_topic(r.kind), r.payload)]
            outbox.mark_sent(self.id, sent, time.monotonic())
            self.n.events_published += len(sent)
            self.n.replayed += len(sent)
            if len(sent) < len(rows):
                return  # disconnected meanwhile: the rest of the range stays queued
            if len(rows) < cfg.batch_size or (hi is not None and rows[-1].seq >= hi):
                self.replays.pop(0)
            else:
                self.replays[0] = (rows[-1].seq + 1, hi)
        first = outbox.first_seq(self.id)
        if first is None:
            return
        now = time.monotonic()
        rows = outbox.due_for_send(
            self.id, now, cfg.resend_after_s, cfg.batch_size, max_seq=first + cfg.max_inflight - 1
        )
        sent = []
        for r in rows:
            if not link.publish(link.event_topic(r.kind), r.payload):
                break
            sent.append(r.seq)
            if r.send_count:
                self.n.resends += 1
        outbox.mark_sent(self.id, sent, now)
        self.n.events_published += len(sent)

    def run_sender(self) -> None:
        w = self.worker
        next_hb = time.monotonic()
        while not w._stop_senders.is_set():
            self.wake.clear()
            while True:
                try:
                    control = self.controls.get_nowait()
                except queue.Empty:
                    break
                try:
                    self.handle_control(control)
                except Exception:
                    log.exception("camera %s: control message %s failed", self.id, control.kind)
            try:
                if self.heartbeat_now.is_set() or time.monotonic() >= next_hb:
                    self.heartbeat_now.clear()
                    self.append_heartbeat()
                    next_hb = time.monotonic() + w.config.edge.heartbeat_s
                self.send_pass()
            except Exception:  # e.g. a transient SQLite error: log, back off, keep the camera alive
                log.exception("camera %s: sender pass failed; retrying", self.id)
                w._stop_senders.wait(1.0)
            self.wake.wait(0.1)
        # stopping: a last heartbeat, one more send pass, and wait for the broker's PUBACKs.
        self.message = self.message or "edge stopping"
        self.append_heartbeat()
        self.send_pass()


class EdgeWorker:
    """Runs every configured camera; see the module docstring for the delivery contract.

    ``detector``: a shared detector (loaded once from ``config.model`` when omitted and no
    ``pipeline_factory`` is given). ``pipeline_factory(camera, fps)``: builds a camera's pipeline
    (default: ``vision.pipeline.VisionPipeline`` with the shared detector). ``on_event(event)``: called
    (on the appending thread) with every event stored in the outbox, e.g. for a local display.
    """

    def __init__(
        self,
        config: CitywatchConfig,
        *,
        detector: Any = None,
        pipeline_factory: PipelineFactory | None = None,
        on_event: Callable[[Any], None] | None = None,
    ) -> None:
        self.config = config
        self.detector = detector
        self._factory = pipeline_factory
        self.on_event = on_event
        self.outbox: Outbox = None  # type: ignore[assignment]  # opened by start()
        self.cameras: dict[str, _Camera] = {}
        self._stop_sources = threading.Event()
        self._stop_senders = threading.Event()
        self._started_at = time.monotonic()
        self._running = False
        self._final_depth: dict[str, int] = {}

    def pipeline_factory(self, camera: CameraConfig, fps: float) -> PipelineLike:
        if self._factory is not None:
            return self._factory(camera, fps)
        from vision.pipeline import VisionPipeline

        return VisionPipeline(
            camera,
            model=self.config.model,
            tracker=self.config.tracker,
            counting=self.config.counting,
            detector=self.detector,
            fps=fps,
        )

    def _emit(self, event: Any) -> None:
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
        if self.detector is None and self._factory is None and self.config.cameras:
            from vision.detector import load_detector

            self.detector = load_detector(self.config.model)
        self.outbox = Outbox(self.config.edge.outbox_path)
        self._started_at = time.monotonic()
        self._stop_sources.clear()
        self._stop_senders.clear()
        self.cameras = {c.id: _Camera(self, c) for c in self.config.cameras}
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
        self._stop_sources.set()
        for cam in self.cameras.values():
            cam.vision_thread.join(max(0.1, deadline - time.monotonic()))
        self._stop_senders.set()
        for cam in self.cameras.values():
            cam.wake.set()
        for cam in self.cameras.values():
            cam.sender_thread.join(max(0.1, deadline - time.monotonic()))
        for cam in self.cameras.values():
            cam.link.flush(max(0.1, min(2.0, deadline - time.monotonic())))
            cam.link.stop(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
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

    def stats(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for cid, cam in self.cameras.items():
            n = cam.n
            out[cid] = {
                "frames": n.frames,
                "crossings": dict(n.crossings),
                "events_appended": n.events_appended,
                "events_published": n.events_published,
                "resends": n.resends,
                "replayed": n.replayed,
                "committed_seq": n.committed_seq,
                "outbox_depth": self.outbox.depth(cid) if self._running else self._final_depth.get(cid),
                "source_state": cam.source_state,
                "message": cam.message,
                "mqtt_connected": cam.link.connected,
                "config_version": cam.camera.config_version(),
                "config_applied": n.config_applied,
                "config_rejected": n.config_rejected,
                "invalid_controls": cam.link.invalid_controls,
            }
        return out

    def stop_sources(self, timeout: float = 10.0) -> bool:
        """Stop reading and counting but keep sending, so what was counted can still be delivered."""
        self._stop_sources.set()
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
