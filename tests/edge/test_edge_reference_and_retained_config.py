"""The edge's side of the configuration editor against the real Mosquitto on 127.0.0.1:1883: a reference
picture is sent once on request, only when the edge allows it, blurred where the detector finds people;
a configuration published retained while the edge was offline is run when it connects."""

from __future__ import annotations

import base64
import contextlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from edge_testkit import FakeServer, camera_dict, fake_factory, make_clip, make_config
from paho.mqtt.enums import CallbackAPIVersion
from support import wait_for

from citywatch.config import CitywatchConfig
from citywatch.contract import ControlConfig, ControlReferencePicture, Topics, parse_reference
from edge.worker import EdgeWorker
from vision.detections import Detections

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("mosquitto_1883")]


class OnePersonDetector:
    """Finds a person in the middle of every picture it is shown (what the real one does is proven in
    test_reference_picture.py)."""

    version = "fake-detector"

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, frame: np.ndarray) -> Detections:
        self.calls += 1
        h, w = frame.shape[:2]
        box = [[w * 0.25, h * 0.25, w * 0.75, h * 0.75]]
        return Detections(xyxy=np.array(box, np.float32), confidence=np.array([0.9], np.float32),
                          class_id=np.array([5]))


class ReferenceListener:
    """Subscribes to every camera's reference topic, as the server does."""

    def __init__(self, config: CitywatchConfig) -> None:
        self.topics = Topics(config.mqtt.topic_prefix)
        self.messages: list[mqtt.MQTTMessage] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-ref-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(self.topics.all_references(), qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append(m)

    def __enter__(self) -> ReferenceListener:
        self.client.connect("127.0.0.1", 1883, 10)
        self.client.loop_start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _looping(tmp_path: Path, cam: str = "cam-a", **edge: object) -> CitywatchConfig:
    source = str(make_clip(tmp_path / "c.avi", 40, fps=20, size=64))
    return make_config(tmp_path, [camera_dict(cam, source, realtime=True, loop=True)], **edge)


@contextlib.contextmanager
def _picture_requested(
    config: CitywatchConfig, server: FakeServer, detector: OnePersonDetector
) -> Iterator[EdgeWorker]:
    """A running worker for ``cam-a`` whose server has just asked it for a reference picture (request
    ``req-1``, 1 s); stopped on leaving."""
    worker = EdgeWorker(config, detector=detector, pipeline_factory=fake_factory([]))  # type: ignore[arg-type]
    worker.start()
    try:
        assert worker.cameras["cam-a"].link.wait_subscribed(10)
        ask = ControlReferencePicture(camera_id="cam-a", request_id="req-1", seconds=1.0)
        server.publish_control("cam-a", "reference_picture", ask.model_dump_json())
        yield worker
    finally:
        worker.stop(5)


def test_a_requested_reference_picture_is_sent_once_blurred_on_its_own_topic(tmp_path: Path) -> None:
    config = _looping(tmp_path, reference_picture={"enabled": True, "samples": 5})
    detector = OnePersonDetector()
    with (
        FakeServer(config) as server,
        ReferenceListener(config) as listener,
        _picture_requested(config, server, detector),
    ):
        assert wait_for(lambda: listener.messages, 15), "no reference picture"
        threading.Event().wait(1.5)  # nothing more comes
    assert len(listener.messages) == 1
    msg = listener.messages[0]
    assert msg.topic == f"{config.mqtt.topic_prefix}/testsite/cam-a/reference" and not msg.retain and msg.qos == 0
    pic = parse_reference(msg.payload)
    assert (pic.request_id, pic.camera_id, pic.width, pic.height) == ("req-1", "cam-a", 64, 64)
    assert pic.frames_used == 5 and pic.blurred_regions == 1 and detector.calls == 1
    img = cv2.imdecode(np.frombuffer(base64.b64decode(pic.jpeg_base64), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (64, 64, 3)


def test_an_edge_that_does_not_allow_reference_pictures_sends_none(tmp_path: Path) -> None:
    config = _looping(tmp_path)  # edge.reference_picture.enabled is false by default
    assert config.edge.reference_picture.enabled is False
    detector = OnePersonDetector()
    with (
        FakeServer(config) as server,
        ReferenceListener(config) as listener,
        _picture_requested(config, server, detector) as worker,
    ):
        assert wait_for(lambda: worker.cameras["cam-a"].reference.refused == 1, 5)
        threading.Event().wait(2.0)
    assert listener.messages == [] and detector.calls == 0


def test_a_configuration_published_retained_while_the_edge_was_offline_runs_when_it_connects(tmp_path: Path) -> None:
    source = str(make_clip(tmp_path / "c.avi", 60, fps=20))
    config = make_config(tmp_path, [camera_dict("cam-a", source, realtime=True)])
    new = camera_dict("cam-a", source, realtime=True, line="l2")
    with FakeServer(config) as server:
        push = ControlConfig(camera_id="cam-a", config_version="v2", camera=new)
        server.publish_control("cam-a", "config", push.model_dump_json(), retain=True)  # no edge is online
        worker = EdgeWorker(config, pipeline_factory=fake_factory(range(0, 60, 2)))
        worker.start()
        try:
            assert wait_for(lambda: worker.stats()["cam-a"]["config_version"] == "v2", 10)
            assert wait_for(lambda: any(s.config_version == "v2" for s in server.statuses("cam-a")), 10)
            assert wait_for(lambda: any(e.line_id == "l2" for e in server.crossings("cam-a")), 10)
            applied = worker.stats()["cam-a"]["config_applied"]
            link = worker.cameras["cam-a"].link
            link.client.reconnect()  # the retained message comes again: the running version is kept as it is
            assert wait_for(lambda: link.connects >= 2 and link.wait_subscribed(5), 10)
            threading.Event().wait(0.5)
            assert worker.stats()["cam-a"]["config_applied"] == applied == 1
        finally:
            worker.stop(5)
            server.publish_control("cam-a", "config", b"", retain=True)  # clear the retained message
