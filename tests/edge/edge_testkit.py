"""Helpers for the edge tests: a tiny clip, a fake pipeline, a minimal "server", a private broker."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from citywatch.config import CameraConfig, CitywatchConfig
from citywatch.contract import ControlCommitted, Topics
from edge.merged import stored_adapter
from vision.detections import Detections
from vision.pipeline import FrameResult


def parse_message(payload: bytes | str) -> list[Any]:
    """Like ``citywatch.contract.parse_message``, plus the edge's local ``count_total`` kind."""
    data = json.loads(payload)
    if data.get("kind") == "batch":
        return [stored_adapter.validate_python(e) for e in data["events"]]
    return [stored_adapter.validate_python(data)]





def make_clip(path: Path, frames: int = 40, fps: float = 20.0, size: int = 32) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    for i in range(frames):
        w.write(np.full((size, size, 3), (i * 5) % 255, np.uint8))
    w.release()
    return path


@dataclass(frozen=True)
class FakeCrossing:
    """Same fields as ``vision.counting.Crossing``."""

    line_id: str
    direction: str
    class_name: str
    track_id: int
    frame_index: int
    speed_kmh: float | None = None


class FakePipeline:
    """Emits one crossing per configured line on every frame in ``frames``."""

    model_version = "fake-model-1"
    incidents = None
    lag_s = 0.0

    def __init__(self, camera: CameraConfig, fps: float, frames: Iterable[int]) -> None:
        self.camera = camera
        self.fps = fps
        self.frames = set(frames)

    def process(self, frame: Any, frame_index: int) -> FrameResult:
        crossings: list[Any] = []
        if frame_index in self.frames:
            for line in self.camera.lines:
                crossings.append(
                    FakeCrossing(line.id, "in" if frame_index % 2 else "out", "car", frame_index, frame_index, 30.0)
                )
        return FrameResult(frame_index, Detections.empty(), crossings=crossings, inference_ms=1.5)

    def reconfigure(self, camera: CameraConfig) -> None:
        self.camera = camera


def fake_factory(frames: Iterable[int]) -> Callable[[CameraConfig, float], FakePipeline]:
    frames = list(frames)
    return lambda camera, fps: FakePipeline(camera, fps, frames)


def camera_dict(cam_id: str, source: str, *, realtime: bool = False, loop: bool = False, line: str = "l1") -> dict:
    return {
        "id": cam_id,
        "source": source,
        "realtime": realtime,
        "loop": loop,
        "lines": [{"id": line, "points": [[0, 16], [32, 16]]}],
    }


def make_config(
    tmp_path: Path, cameras: list[dict], *, port: int = 1883, protocol: str = "5", **edge: Any
) -> CitywatchConfig:
    run = uuid.uuid4().hex[:8]
    edge_cfg = {
        "device_id": f"test-{run}",
        "outbox_path": str(tmp_path / "outbox.sqlite"),
        "heartbeat_s": 0.5,
        "resend_after_s": 1.0,
        **edge,
    }
    return CitywatchConfig.model_validate(
        {
            "site": "testsite",
            "mqtt": {
                "host": "127.0.0.1",
                "port": port,
                "protocol": protocol,
                "topic_prefix": f"cwtest-{run}",
                "username_env": None,
                "password_env": None,
            },
            "edge": edge_cfg,
            "cameras": cameras,
        }
    )


class FakeServer:
    """Records events by event_id and (optionally) publishes the contiguous committed watermark.

    Like the real server should, it republishes the watermark on every message it receives, even a
    duplicate, so an edge that missed a retained commit (broker restarted without persistence) learns it.
    """

    def __init__(self, config: CitywatchConfig, *, commit: bool = True) -> None:
        self.config = config
        self.topics = Topics(config.mqtt.topic_prefix)
        self.commit = commit
        self.lock = threading.Lock()
        self.events: dict[str, Any] = {}
        self.receipts: Counter[str] = Counter()  # event_id -> times received
        self.seq_receipts: dict[str, Counter[int]] = defaultdict(Counter)
        self.seqs: dict[str, set[int]] = defaultdict(set)
        self.watermark: dict[str, int] = defaultdict(int)
        self.status: dict[str, dict] = {}
        self.bad_payloads = 0
        self.messages: Counter[str] = Counter()  # kind topic -> messages received
        self.delay_s = 0.0  # a slow consumer (tiny broker queues overflow behind it)
        self.subscribed = threading.Event()
        v5 = config.mqtt.protocol == "5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-server-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        )
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message

    def __enter__(self) -> FakeServer:
        self.client.connect_async(self.config.mqtt.host, self.config.mqtt.port, 10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "test server could not subscribe"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        client.subscribe([(self.topics.all_events(), 1), (self.topics.all_status(), 1)])

    def _on_message(self, client, userdata, msg) -> None:
        try:
            _site, camera, channel, kind = self.topics.parse(msg.topic)
            if channel == "status":
                self.status[camera] = json.loads(msg.payload)
                return
            self.messages[kind or ""] += 1
            events = parse_message(msg.payload)
            if self.delay_s:
                time.sleep(self.delay_s)
        except Exception:
            self.bad_payloads += 1
            return
        with self.lock:
            for e in events:
                eid = str(e.event_id)
                self.receipts[eid] += 1
                self.seq_receipts[e.camera_id][e.seq] += 1
                self.events.setdefault(eid, e)
                self.seqs[e.camera_id].add(e.seq)
                wm = self.watermark[e.camera_id]
                while wm + 1 in self.seqs[e.camera_id]:
                    wm += 1
                self.watermark[e.camera_id] = wm
            if self.commit:
                for cam, wm in {e.camera_id: self.watermark[e.camera_id] for e in events}.items():
                    self.publish_control(
                        cam,
                        "committed",
                        ControlCommitted(camera_id=cam, seq=wm).model_dump_json(),
                        retain=True,
                    )

    def publish_control(self, camera: str, kind: str, payload: str | bytes, retain: bool = False) -> None:
        topic = self.topics.control(self.config.site, camera, kind)
        self.client.publish(topic, payload, qos=1, retain=retain)

    def crossings(self, camera: str | None = None) -> list[Any]:
        with self.lock:
            return sorted(
                (e for e in self.events.values() if e.kind == "line_crossing" and camera in (None, e.camera_id)),
                key=lambda e: e.seq,
            )

    def totals(self, camera: str | None = None) -> list[Any]:
        with self.lock:
            return [e for e in self.events.values() if e.kind == "count_total" and camera in (None, e.camera_id)]

    def counted(self, camera: str) -> int:
        """Crossings plus merged totals: what the server would count for this camera."""
        return len(self.crossings(camera)) + sum(t.count for t in self.totals(camera))

    def statuses(self, camera: str) -> list[Any]:
        with self.lock:
            return sorted(
                (e for e in self.events.values() if e.kind == "camera_status" and e.camera_id == camera),
                key=lambda e: e.seq,
            )


class RandomTrackPipeline(FakePipeline):
    """Like FakePipeline, but track ids start at a random offset per pipeline, as a real tracker's do
    after a restart: a re-read frame then gives a *different* event id, so only the checkpoint
    prevents a double count."""

    def __init__(self, camera: CameraConfig, fps: float, frames: Iterable[int]) -> None:
        super().__init__(camera, fps, frames)
        self.offset = int.from_bytes(os.urandom(3), "big")

    def process(self, frame: Any, frame_index: int) -> FrameResult:
        out = super().process(frame, frame_index)
        out.crossings = [
            FakeCrossing(c.line_id, c.direction, c.class_name, c.track_id + self.offset, c.frame_index, c.speed_kmh)
            for c in out.crossings
        ]
        return out


GST_PYTHON = "/usr/bin/python3"
RTSP_SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")


def gst_rtsp_available() -> bool:
    import subprocess

    if not os.path.exists(GST_PYTHON):
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([GST_PYTHON, "-c", probe], capture_output=True, timeout=30).returncode == 0


class RtspServer:
    """GStreamer's RTSP server in a child process: ``start``, ``kill`` (drop), ``pause``/``resume`` (stall)."""

    def __init__(self, port: int, fps: int = 10, log_path: Path | None = None) -> None:
        self.port, self.fps = port, fps
        self.url = f"rtsp://127.0.0.1:{port}/cam"
        self.log_path = log_path
        self.proc: Any = None

    def start(self, timeout: float = 20.0) -> None:
        import subprocess

        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [GST_PYTHON, str(RTSP_SERVER_SCRIPT), str(self.port), str(self.fps)],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        line = self.proc.stdout.readline().decode().strip()
        if line != "READY":
            self.kill()
            raise RuntimeError(f"RTSP server did not start: {line!r}")

    def kill(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def pause(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGCONT)
