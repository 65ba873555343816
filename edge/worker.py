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
and the new ``config_version`` is carried by the next events and heartbeats. The applied
configuration is kept in the outbox database with the file version it replaced: a restart runs it
again, unless the file's own configuration of that camera changed since (then the file wins).

Sources (``edge.sources``): files, RTSP, HTTP/MJPEG, USB. A live source reconnects by itself and
reports ``reconnecting``; its state changes trigger an immediate heartbeat. A file source's position
is checkpointed with every frame's events (atomically) and every ``checkpoint_every_s``; a restarted
worker resumes ``resume_warmup_frames`` before the checkpoint to warm the tracker up, and drops the
results of frames at or before it, so a kill -9 neither loses nor double-counts a crossing that
was stored. A file already read to its end is not read again (delete the outbox's ``positions``
row, or change the file, to re-read it).

Besides crossings, the pipeline's ``FrameResult.movements`` and ``.zone_reports`` (may be absent or
empty) become ``Movement`` and ``ZoneOccupancy`` events with ids deterministic from camera, source
position, track/zone. Due events are published as one ``EventBatch`` on the ``batch`` topic when
more than one is due (``edge.batch_publish``), keeping each event's seq and id.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, Protocol

from citywatch.config import CameraConfig, CitywatchConfig, ConfigError, validate_camera
from citywatch.contract import (
    SCHEMA_VERSION,
    CameraStatus,
    ControlCommitted,
    ControlConfig,
    ControlReplay,
    Incident,
    LineCrossing,
    Movement,
    ZoneOccupancy,
    deterministic_event_id,
    utcnow,
)
from edge.mqtt_link import Control, MqttLink
from edge.outbox import Outbox, StoredEvent
from edge.snapshots import SnapshotStore
from edge.sources import FileSource, LiveOptions, LiveSource, open_source
from edge.tamper import TamperDetector

log = logging.getLogger(__name__)


class PipelineLike(Protocol):
    """What the worker needs of ``vision.pipeline.VisionPipeline`` (tests inject a fake)."""

    @property
    def model_version(self) -> str: ...

    def process(self, frame: Any, frame_index: int) -> Any: ...  # -> FrameResult (.crossings, .inference_ms)

    def reconfigure(self, camera: CameraConfig) -> None: ...


#: ``pipeline_factory(camera, fps)`` builds one camera's pipeline.
PipelineFactory = Callable[[CameraConfig, float], PipelineLike]

#: Kinds published one per message, never inside a batch (none since the contract has count_total).
_UNBATCHABLE: set[str] = set()


class _AlreadyDone(Exception):
    """A non-looping file that an earlier run read to its end (its checkpoint says so)."""


@dataclass
class _Counters:
    """Written by one thread each, read by others: plain ints are fine under the GIL."""

    frames: int = 0  # offered by the source
    frames_processed: int = 0
    frames_detected: int = 0  # the detector ran
    frames_skipped: int = 0  # skipped by design (adaptive stride, detect_every), bridged by the tracker
    inference_ms_total: float = 0.0
    crossings: Counter[str] = field(default_factory=Counter)
    movements: int = 0
    zone_reports: int = 0
    incidents: int = 0
    snapshots: int = 0
    suppressed: int = 0
    events_appended: int = 0
    events_rejected: int = 0
    events_published: int = 0
    resends: int = 0
    replayed: int = 0
    committed_seq: int = 0
    config_rejected: int = 0
    config_applied: int = 0
    batches: int = 0
    fps_in: float = 0.0
    fps_processed: float = 0.0
    inference_ms: float = 0.0


class _Camera:
    """Everything the worker keeps for one camera."""

    def __init__(self, worker: EdgeWorker, camera: CameraConfig) -> None:
        self.worker = worker
        self.file_camera = camera  # as in the configuration file (base of persisted pushes)
        self.camera = camera
        self.id = camera.id
        self.site = worker.config.camera_site(camera)
        self.pipeline: PipelineLike | None = None
        self.pipeline_lock = threading.Lock()
        self.source_state = "starting"
        self.message: str | None = None
        self.fps: float | None = None
        self.source: FileSource | LiveSource | None = None
        self.resumed_from: tuple[int, int] | None = None
        self.tamper = TamperDetector(worker.config.edge.tamper)
        self.tamper_signs: list[str] = []
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
            reconnect_max_s=worker.config.edge.mqtt_reconnect_max_s,
        )
        self.vision_thread = threading.Thread(
            target=self._guard(self.run_vision), name=f"vision-{self.id}", daemon=True
        )
        self.sender_thread = threading.Thread(
            target=self._guard(self.run_sender), name=f"sender-{self.id}", daemon=True
        )
        self._last_hb = (time.monotonic(), 0, 0, 0.0)
        #: open incidents: edge incident id -> (started_at, snapshot id); bounded, dropped at close
        self._incidents: OrderedDict[uuid.UUID, tuple[datetime, str | None]] = OrderedDict()

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

    def _on_source_state(self, state: str, message: str | None) -> None:
        self.source_state, self.message = state, message
        if state == "reconnecting":
            log.warning("camera %s: %s", self.id, message)
        else:
            log.info("camera %s: source %s", self.id, state)
        self.heartbeat_now.set()
        self.wake.set()

    def _open_source(self) -> FileSource | LiveSource:
        w = self.worker
        src_cfg = w.config.edge.sources
        live = LiveOptions(
            open_timeout_s=src_cfg.open_timeout_s,
            stall_timeout_s=src_cfg.stall_timeout_s,
            reconnect_min_s=src_cfg.reconnect_min_s,
            reconnect_max_s=src_cfg.reconnect_max_s,
            buffer_frames=src_cfg.buffer_frames,
            rtsp_transport=src_cfg.rtsp_transport,
        )
        source = open_source(self.camera.source, realtime=self.camera.realtime, loop=self.camera.loop, live=live)
        if isinstance(source, LiveSource) or not src_cfg.resume:
            if isinstance(source, FileSource):
                w.outbox.clear_position(self.id)
            return source
        pos = w.outbox.position(self.id)
        if pos is None or pos.source_key != source.source_key:
            return source
        if pos.ended and not self.camera.loop:
            source.close()
            raise _AlreadyDone(pos.frame_index)
        resume_at = pos.frame_index + 1
        warm = max(0, resume_at - src_cfg.resume_warmup_frames)
        source.close()
        source = FileSource(
            self.camera.source,
            realtime=self.camera.realtime,
            loop=self.camera.loop,
            start_pass=pos.pass_no,
            start_index=warm,
        )
        self.resumed_from = (pos.pass_no, pos.frame_index)
        log.info(
            "camera %s: resuming %s at pass %d frame %d (re-reading from frame %d without events)",
            self.id,
            source.source_key,
            pos.pass_no,
            resume_at,
            warm,
        )
        return source

    def run_vision(self) -> None:
        w = self.worker
        try:
            source = self._open_source()
        except _AlreadyDone as done:
            self.source_state = "ended"
            self.message = f"file already read to its end (frame {done.args[0]}) by an earlier run"
            log.info("camera %s: %s", self.id, self.message)
            self.heartbeat_now.set()
            self.wake.set()
            return
        except Exception as exc:
            self.source_state = "error"
            self.message = str(exc)[:500]
            log.error("camera %s: cannot start: %s", self.id, exc)
            self.heartbeat_now.set()
            self.wake.set()
            return
        self.source = source
        if isinstance(source, LiveSource):
            source.on_state = self._on_source_state
            log.info("camera %s: live source %s, connecting", self.id, source.source_key)
        else:
            self.fps = source.fps
            self.source_state = "ok"
            log.info(
                "camera %s: source %s open (%.1f fps, %s frames)",
                self.id,
                source.path,
                source.fps,
                source.frame_count,
            )
        checkpoint_s = w.config.edge.sources.checkpoint_every_s
        tamper_s = w.config.edge.tamper.check_every_s
        next_checkpoint = next_tamper = time.monotonic()
        current_pass: int | None = None
        last: tuple[int, int] | None = None
        prev: Any = None
        for frame in source.frames(w._stop_sources):
            self.n.frames += 1
            with self.pipeline_lock:
                if frame.pass_no != current_pass or self.pipeline is None:
                    if prev is not None:
                        self._close_open_incidents(source, prev)  # the old pass's pipeline is replaced
                    current_pass = frame.pass_no
                    self.fps = source.fps
                    self.pipeline = w.pipeline_factory(self.camera, source.fps, frame_hw=frame.image.shape[:2])
                    if isinstance(source, LiveSource):
                        self.tamper.reset()
                if hasattr(self.pipeline, "lag_s"):  # a real-time file this camera is behind: shed detections
                    self.pipeline.lag_s = getattr(source, "lag_s", 0.0)
                result = self.pipeline.process(frame.image, frame.index)
            if getattr(result, "processed", True):  # frames skipped by a stride are not
                self.n.frames_processed += 1
                if getattr(result, "detected", True):
                    self.n.frames_detected += 1
            elif getattr(result, "skipped", False):
                self.n.frames_skipped += 1
            self.n.inference_ms_total += float(getattr(result, "inference_ms", 0.0) or 0.0)
            self._record(result, source, frame)
            prev = frame
            last = (frame.pass_no, frame.index)
            now = time.monotonic()
            if now >= next_tamper and w.config.edge.tamper.enabled:
                next_tamper = now + tamper_s
                signs = self.tamper.check(frame.image)
                if signs != self.tamper_signs:
                    log.warning("camera %s: tamper signs %s (were %s)", self.id, signs, self.tamper_signs)
                    self.tamper_signs = signs
                    self.heartbeat_now.set()
            if isinstance(source, FileSource) and now >= next_checkpoint:
                next_checkpoint = now + checkpoint_s
                if not self._suppressed(frame.pass_no, frame.index):
                    w.outbox.save_position(self.id, source.source_key, frame.pass_no, frame.index)
        if prev is not None:
            with self.pipeline_lock:
                self._close_open_incidents(source, prev)  # ended or stopping: nothing stays open forever
        if isinstance(source, FileSource) and last is not None and w.config.edge.sources.resume:
            w.outbox.save_position(
                self.id, source.source_key, last[0], last[1], ended=not w._stop_sources.is_set() and not source.loop
            )
        if not w._stop_sources.is_set():
            self.source_state = "ended"
            log.info("camera %s: source ended after %d frames", self.id, self.n.frames)
            self.heartbeat_now.set()
            self.wake.set()

    def _close_open_incidents(self, source: FileSource | LiveSource, frame: Any) -> None:
        """Close what the current pipeline still has open, as of ``frame`` (its last processed frame)."""
        engine = getattr(self.pipeline, "incidents", None)
        close_all = getattr(engine, "close_all", None)
        if close_all is None:
            return
        closed = close_all(frame.index)
        if closed:
            self._record(SimpleNamespace(incidents=closed, detections=None), source, frame)

    def _suppressed(self, pass_no: int, frame_index: int) -> bool:
        """True for frames at or before the checkpoint a resumed file restarted from (warm-up)."""
        r = self.resumed_from
        return r is not None and (pass_no, frame_index) <= r

    def _record(self, result: Any, source: FileSource | LiveSource, frame: Any) -> None:
        """Turn one frame's results into events and store them, with the checkpoint, atomically."""
        crossings = list(getattr(result, "crossings", None) or [])
        movements = list(getattr(result, "movements", None) or [])
        zones = list(getattr(result, "zone_reports", None) or [])
        incidents = list(getattr(result, "incidents", None) or [])
        if not (crossings or movements or zones or incidents):
            return
        if self._suppressed(frame.pass_no, frame.index):
            self.n.suppressed += len(crossings) + len(movements) + len(zones) + len(incidents)
            return
        # files keep the integer pass in their ids (as before); a live connection its start time
        pass_ref: Any = frame.pass_no if isinstance(source, FileSource) else frame.pass_key
        key = source.source_key
        makers: list[tuple[str, Any, Callable[[int], Any]]] = []
        for c in crossings:
            makers.append(("line_crossing", c, self._crossing_maker(c, key, pass_ref)))
        for m in movements:
            makers.append(("movement", m, self._movement_maker(m, key, pass_ref)))
        for z in zones:
            makers.append(("zone_occupancy", z, self._zone_maker(z, key, pass_ref)))
        for inc in incidents:
            makers.append(("incident", inc, self._incident_maker(inc, key, pass_ref, frame, result)))
        valid = []
        for kind, item, make in makers:
            try:
                make(1)  # validate before the transaction: one bad result must not lose the others
            except Exception as exc:
                self.n.events_rejected += 1
                log.error("camera %s: %s %r not recorded: %s", self.id, kind, item, exc)
                continue
            valid.append((kind, item, make))
        position = (key, frame.pass_no, frame.index) if isinstance(source, FileSource) else None
        try:
            events = self.worker.outbox.append_many(self.id, [m for _, _, m in valid], position)
        except Exception as exc:
            self.n.events_rejected += len(valid)
            log.error("camera %s: %d results of frame %d not recorded: %s", self.id, len(valid), frame.index, exc)
            return
        for (kind, item, _), event in zip(valid, events, strict=True):
            self.n.events_appended += 1
            if kind == "line_crossing":
                self.n.crossings[f"{item.line_id}/{item.direction}/{item.class_name}"] += 1
            elif kind == "movement":
                self.n.movements += 1
            elif kind == "incident":
                self.n.incidents += 1
            else:
                self.n.zone_reports += 1
            self.worker._emit(event)
        self.wake.set()

    def _envelope(self, seq: int) -> dict[str, Any]:
        return {
            "camera_id": self.id,
            "site_id": self.site,
            "seq": seq,
            "ts": utcnow(),
            "config_version": self.camera.config_version(),
            "model_version": self.model_version,
        }

    def _crossing_maker(self, c: Any, source_key: str, pass_ref: Any) -> Callable[[int], LineCrossing]:
        speed = c.speed_kmh if c.speed_kmh is not None and 0 <= c.speed_kmh <= 300 else None
        event_id = deterministic_event_id(
            self.id, "line_crossing", source_key, pass_ref, c.frame_index, c.track_id, c.line_id, c.direction
        )

        def make(seq: int) -> LineCrossing:
            return LineCrossing(
                event_id=event_id,
                **self._envelope(seq),
                line_id=c.line_id,
                direction=c.direction,
                class_name=c.class_name,
                track_id=c.track_id,
                frame_index=c.frame_index,
                speed_kmh=speed,
            )

        return make

    def _movement_maker(self, m: Any, source_key: str, pass_ref: Any) -> Callable[[int], Movement]:
        fields = asdict(m) if is_dataclass(m) else dict(vars(m))
        if fields.get("speed_kmh") is not None and not 0 <= fields["speed_kmh"] <= 300:
            fields["speed_kmh"] = None
        event_id = deterministic_event_id(
            self.id, "movement", source_key, pass_ref, m.exit_frame, m.track_id, m.entry_zone, m.exit_zone
        )
        return lambda seq: Movement(event_id=event_id, **self._envelope(seq), **fields)

    def _zone_maker(self, z: Any, source_key: str, pass_ref: Any) -> Callable[[int], ZoneOccupancy]:
        fields = asdict(z) if is_dataclass(z) else dict(vars(z))
        if fields.get("mean_speed_kmh") is not None and not 0 <= fields["mean_speed_kmh"] <= 300:
            fields["mean_speed_kmh"] = None
        event_id = deterministic_event_id(
            self.id, "zone_occupancy", source_key, pass_ref, z.frame_index, z.zone_id, bool(z.lane)
        )
        return lambda seq: ZoneOccupancy(event_id=event_id, **self._envelope(seq), **fields)

    def _incident_maker(
        self, r: Any, source_key: str, pass_ref: Any, frame: Any, result: Any
    ) -> Callable[[int], Incident]:
        """``Incident`` event of one lifecycle step; ids: incident from source and pass, event from incident,
        state and update number (a replayed clip de-duplicates). A snapshot is saved on ``open`` only."""
        iid = deterministic_event_id(self.id, "incident", source_key, pass_ref, r.incident_id)
        event_id = deterministic_event_id(self.id, "incident_event", iid, r.state, r.update_no)
        fps = self.fps or 25.0
        known = self._incidents.get(iid)
        started = known[0] if known else utcnow() - timedelta(seconds=max(0.0, (r.frame_index - r.started_frame) / fps))
        snapshot_id = known[1] if known else None
        if r.state == "open" and known is None and self.worker.snapshots.enabled:
            snapshot_id = self._snapshot(iid, frame, result)
        ended = None
        if r.state == "closed":
            self._incidents.pop(iid, None)
            end_frame = r.ended_frame if r.ended_frame is not None else r.frame_index
            ended = started + timedelta(seconds=max(0.0, (end_frame - r.started_frame) / fps))
        else:
            self._incidents[iid] = (started, snapshot_id)
            while len(self._incidents) > 1000:  # incidents whose close never came (a replaced pipeline)
                self._incidents.popitem(last=False)
        fields = {
            "incident_id": iid,
            "incident_type": r.incident_type,
            "state": r.state,
            "severity": r.severity,
            "confidence": min(1.0, max(0.0, float(r.confidence))),
            "lane_id": r.lane_id,
            "zone_id": r.zone_id,
            "track_ids": [int(t) for t in r.track_ids][:100],
            "started_at": started,
            "ended_at": ended,
            "snapshot_id": snapshot_id,
            "message": (r.message or None) and str(r.message)[:500],
        }
        return lambda seq: Incident(event_id=event_id, **self._envelope(seq), **fields)

    def _snapshot(self, incident_id: uuid.UUID, frame: Any, result: Any) -> str | None:
        """Blurred evidence of the frame an incident opened on (edge only); None when it cannot be saved."""
        image = getattr(frame, "image", None)
        if image is None:
            return None
        dets = getattr(result, "detections", None)
        boxes: list[Any] = []
        names: list[str] = []
        if dets is not None and len(dets):
            from citywatch.contract import CLASS_NAMES

            boxes = [tuple(float(v) for v in b) for b in dets.xyxy]
            names = [CLASS_NAMES[int(c)] for c in dets.class_id]
        try:
            sid = self.worker.snapshots.save(self.id, image, boxes, names, snapshot_id=f"{self.id}-{incident_id.hex}")
        except Exception:
            log.exception("camera %s: incident snapshot not saved", self.id)
            return None
        if sid:
            self.n.snapshots += 1
        return sid

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
        self.n.fps_in = (frames - frames0) / dt
        self.n.fps_processed = done / dt
        self.n.inference_ms = (inf - inf0) / done if done else 0.0
        if w.snapshots.enabled:
            w.snapshots.expire()

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
                fps_in=self.n.fps_in,
                fps_processed=self.n.fps_processed,
                inference_ms=self.n.inference_ms,
                outbox_depth=depth,
                outbox_first_seq=first,
                uptime_s=now - w._started_at,
                frames_total=frames,
                frames_offered=frames,
                frames_detected=self.n.frames_detected,
                frames_skipped=self.n.frames_skipped,
                message=self.message,
                tamper=list(self.tamper_signs),
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
        self.tamper.reset()
        if self.worker.config.edge.persist_config:
            try:
                self.worker.outbox.save_config(
                    self.id, new.config_version(), self.file_camera.config_version(), new.model_dump(mode="json")
                )
            except Exception:
                log.exception("camera %s: pushed configuration applied but not persisted", self.id)
        self.n.config_applied += 1
        log.info("camera %s: applied pushed configuration %s", self.id, new.config_version())
        self.heartbeat_now.set()

    def restore_config(self) -> None:
        """At start: run the pushed configuration a previous run applied, unless the file changed since."""
        w = self.worker
        if not w.config.edge.persist_config:
            return
        saved = w.outbox.applied_config(self.id)
        if saved is None:
            return
        version, base, data = saved
        if base != self.file_camera.config_version():
            log.warning(
                "camera %s: the configuration file changed since configuration %s was pushed; the file wins",
                self.id,
                version,
            )
            w.outbox.clear_config(self.id)
            return
        try:
            new = validate_camera(data)
        except ConfigError as exc:
            log.error("camera %s: persisted configuration %s is invalid, ignored: %s", self.id, version, exc)
            return
        self.camera = new.model_copy(
            update={
                "source": self.file_camera.source,
                "realtime": self.file_camera.realtime,
                "loop": self.file_camera.loop,
            }
        )
        log.info("camera %s: running pushed configuration %s (persisted)", self.id, version)

    def _publish(self, rows: list[StoredEvent]) -> list[int]:
        """Publish rows in order, several per ``EventBatch`` when enabled; returns the seqs accepted."""
        link = self.link
        cfg = self.worker.config.edge
        sent: list[int] = []
        i = 0
        while i < len(rows):
            r = rows[i]
            group = [r]
            if cfg.batch_publish and r.kind not in _UNBATCHABLE:
                while (
                    i + len(group) < len(rows)
                    and len(group) < cfg.batch_size
                    and rows[i + len(group)].kind not in _UNBATCHABLE
                ):
                    group.append(rows[i + len(group)])
            if len(group) == 1:
                ok = link.publish(link.event_topic(r.kind), r.payload)
            else:
                # the stored JSON of each event, byte for byte: ids, seqs and timestamps are unchanged
                payload = (
                    f'{{"schema_version":"{SCHEMA_VERSION}","kind":"batch","events":['
                    + ",".join(g.payload for g in group)
                    + "]}"
                )
                ok = link.publish(link.event_topic("batch"), payload)
                if ok:
                    self.n.batches += 1
            if not ok:
                break
            sent.extend(g.seq for g in group)
            self.n.resends += sum(1 for g in group if g.send_count)
            i += len(group)
        return sent

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
            resends = self.n.resends
            sent = self._publish(rows)
            self.n.resends = resends  # a replay is not a resend
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
        sent = self._publish(rows)
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
        self._given_detector = detector is not None  # used for every camera as it is
        self._detectors: dict[Any, Any] = {}  # per input size (imgsz: auto, processing.imgsz); see prepare()
        self._detectors_lock = threading.Lock()
        self._factory = pipeline_factory
        self.on_event = on_event
        self.outbox: Outbox = None  # type: ignore[assignment]  # opened by start()
        self.cameras: dict[str, _Camera] = {}
        self._stop_sources = threading.Event()
        self._stop_senders = threading.Event()
        self._started_at = time.monotonic()
        self._running = False
        self._final_depth: dict[str, int] = {}
        self.snapshots = SnapshotStore(config.edge.snapshots)
        self.metrics: Any = None
        self.metrics_port: int | None = None

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self._started_at

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

    def _detector_for(self, camera: CameraConfig, frame_hw: tuple[int, int] | None = None) -> Any:
        """The detector for this camera's input size: ``processing.imgsz``, else (``imgsz: auto``) the shape of
        its region of interest in ``frame_hw`` frames, else the shared one. One per size, shared by cameras."""
        from vision.detector import input_size, load_detector
        from vision.pipeline import detector_input_hw

        model = self.config.model
        imgsz: Any = camera.processing.imgsz if camera.processing else None
        if imgsz:
            model = model.model_copy(update={"imgsz": imgsz})
        elif model.imgsz == "auto" and frame_hw is not None:
            imgsz = input_size(model, detector_input_hw(camera, frame_hw))
        shared = getattr(self.detector, "imgsz", None)
        if imgsz is None or self._given_detector or self._factory is not None or imgsz == shared:
            if self.detector is None and self._factory is None:
                with self._detectors_lock:
                    if self.detector is None:
                        self.detector = load_detector(model, streams=len(self.config.cameras))
            return self.detector
        with self._detectors_lock:
            det = self._detectors.get(imgsz)
            if det is None:
                # auto: the (multiple of 32) size as the picture it follows; a fixed size ignores it
                hw = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
                det = self._detectors[imgsz] = load_detector(model, hw, streams=len(self.config.cameras))
            return det

    def prepare(self) -> None:
        """Export and load every file camera's detector now, before any source's clock starts (a first export
        takes seconds; a real-time camera must not fall behind for it). Live cameras get theirs on connecting."""
        from edge.sources import probe_size

        for camera in self.config.cameras:
            hw = probe_size(camera.source)
            if hw is not None:
                self._detector_for(camera, hw)

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
        if self._factory is None and self.config.cameras:
            self.prepare()
        edge = self.config.edge
        self.outbox = Outbox(
            edge.outbox_path, max_events=edge.outbox_max_events, merge_interval_s=edge.merge_interval_s
        )
        self._started_at = time.monotonic()
        self._stop_sources.clear()
        self._stop_senders.clear()
        self.cameras = {c.id: _Camera(self, c) for c in self.config.cameras}
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

    def stats(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for cid, cam in self.cameras.items():
            n = cam.n
            src = cam.source
            comp = self.outbox.compactions.get(cid) if self.outbox is not None else None
            out[cid] = {
                "frames": n.frames,
                "frames_processed": n.frames_processed,
                "frames_detected": n.frames_detected,
                "frames_skipped": n.frames_skipped,
                "frames_handled": n.frames_processed + n.frames_skipped,
                "frames_dropped": src.frames_dropped if src is not None else 0,
                "source_reconnects": src.reconnects if src is not None else 0,
                "source_stalls": getattr(src, "stalls", 0),
                "source_last_recovery_s": getattr(src, "last_recovery_s", None),
                "fps_in": n.fps_in,
                "fps_processed": n.fps_processed,
                "inference_ms": n.inference_ms,
                "tamper": list(cam.tamper_signs),
                "resumed_from": cam.resumed_from,
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
