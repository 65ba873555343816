"""Setting a camera up from the browser (server/api/camera_setup.py) against the real Mosquitto and
database: the reference picture (off by default, admin-only, in memory only, audited), the live check,
pushes recorded with who and when, rollback, and a real edge offline during the push picking it up."""

from __future__ import annotations

import base64
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from server_testkit import close_client, make_config, publisher, wait_for

from citywatch.config import CitywatchConfig
from citywatch.contract import ControlReferencePicture, ReferencePicture, Topics, parse_control, utcnow
from edge.worker import EdgeWorker
from server.reference_pictures import ReferencePictures
from server.runner import ServerHandle, serve_in_thread
from server.storage.store import Store
from vision.detections import Detections

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edge"))
from edge_testkit import fake_factory, make_clip  # noqa: E402

SITE = "site-1"
KEYS = "admin:admin-key-1,operator:operator-key-1,planner:planner-key-1"
ADMIN = {"X-API-Key": "admin-key-1"}
OPERATOR = {"X-API-Key": "operator-key-1"}
PLANNER = {"X-API-Key": "planner-key-1"}
JPEG = bytes.fromhex("ffd8ffe000104a46494600") + b"\x00" * 64 + bytes.fromhex("ffd9")


def _body(line: str = "l2", **extra: Any) -> dict[str, Any]:
    return {"id": "cam-1", "source": "file:///dev/null", "lines": [{"id": line, "points": [[0, 0], [50, 50]]}],
            **extra}  # fmt: skip


class FakeEdge:
    """A camera's edge as far as the broker sees it: answers reference-picture requests with ``jpeg``."""

    def __init__(self, host: str, port: int, config: CitywatchConfig, jpeg: bytes = JPEG) -> None:
        self.topics = Topics(config.mqtt.topic_prefix)
        self.jpeg = jpeg
        self.controls: list[Any] = []
        self.subscribed = threading.Event()
        self.client = publisher(host, port, f"fake-edge-{config.mqtt.topic_prefix}")
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.subscribe(self.topics.camera_control(SITE, "cam-1"), qos=1)
        assert self.subscribed.wait(10)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if not msg.payload:
            return
        control = parse_control(msg.payload)
        self.controls.append(control)
        if isinstance(control, ControlReferencePicture):
            self.send(control.request_id)

    def send(self, request_id: str) -> None:
        pic = ReferencePicture(camera_id="cam-1", site_id=SITE, request_id=request_id, taken_at=utcnow(), width=8,
                               height=8, frames_used=25, blurred_regions=1, frame_width=12, frame_height=12,
                               jpeg_base64=base64.b64encode(self.jpeg).decode())  # fmt: skip
        self.client.publish(self.topics.reference(SITE, "cam-1"), pic.model_dump_json(), qos=1)

    def close(self) -> None:
        close_client(self.client)


@pytest.fixture
def setup(
    mqtt_broker: tuple[str, int], store: Store, run_id: str, request: pytest.FixtureRequest
) -> Iterator[tuple[ServerHandle, FakeEdge, Store]]:
    host, port = mqtt_broker
    privacy = getattr(request, "param", {"reference_pictures": True})
    config = make_config(run_id=run_id, database_url="sqlite://", host=host, port=port,
                         server={"database_url": "sqlite://", "client_id": f"cw-server-{run_id}", "privacy": privacy})
    handle = serve_in_thread(config, store=store, api_keys=KEYS, host="127.0.0.1")
    edge = FakeEdge(host, port, config)
    try:
        assert handle.app.state.ingest.subscribed.wait(10)
        yield handle, edge, store
    finally:
        edge.close()
        handle.stop()


def _api(handle: ServerHandle, method: str, path: str, headers: dict[str, str] = ADMIN, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{handle.url}/api/v1{path}", headers=headers, timeout=10, **kw)


@pytest.mark.parametrize("setup", [{}], indirect=True)
def test_reference_pictures_are_off_by_default(setup: tuple[ServerHandle, FakeEdge, Store]) -> None:
    handle, edge, store = setup
    r = _api(handle, "POST", "/cameras/cam-1/reference-picture")
    assert r.status_code == 409 and "server.privacy.reference_pictures" in r.json()["detail"]
    assert _api(handle, "GET", "/cameras/cam-1/reference-picture").status_code == 409
    assert _api(handle, "GET", "/ui-config").json()["cameras"][0]["reference_picture"] is False
    time.sleep(0.3)
    assert edge.controls == [] and store.audit.recent() == []  # nothing was asked


def test_an_admin_gets_the_picture_the_edge_sent_and_every_request_and_view_is_audited(
    setup: tuple[ServerHandle, FakeEdge, Store],
) -> None:
    handle, edge, store = setup
    assert _api(handle, "GET", "/cameras/cam-1/reference-picture").status_code == 404  # nothing asked yet
    edge.send("nobody-asked")  # an edge cannot push a picture nobody asked for
    r = _api(handle, "POST", "/cameras/cam-1/reference-picture", params={"seconds": 5})
    assert r.status_code == 202, r.text
    request_id = r.json()["request_id"]
    assert r.json()["camera_id"] == "cam-1"
    wait_for(lambda: any(isinstance(c, ControlReferencePicture) for c in edge.controls), 10)
    asked = next(c for c in edge.controls if isinstance(c, ControlReferencePicture))
    assert (asked.request_id, asked.seconds) == (request_id, 5)
    got = wait_for(lambda: (g := _api(handle, "GET", "/cameras/cam-1/reference-picture")).status_code == 200 and g,
                   10)  # fmt: skip
    assert got.headers["content-type"] == "image/jpeg" and got.content == JPEG
    assert got.headers["cache-control"] == "no-store" and got.headers["x-reference-request-id"] == request_id
    # drawn in the camera frame's pixels: the 8 x 8 picture was scaled down from a 12 x 12 frame
    assert (got.headers["x-reference-frame-width"], got.headers["x-reference-frame-height"]) == ("12", "12")
    assert handle.app.state.references.refused == 1  # the unasked one
    assert _api(handle, "GET", "/ui-config").json()["cameras"][0]["reference_picture"] is True
    assert _api(handle, "GET", "/ui-config", OPERATOR).json()["cameras"][0]["reference_picture"] is False
    for who in (OPERATOR, PLANNER):  # server.privacy.operators_see_reference_picture is off
        assert _api(handle, "GET", "/cameras/cam-1/reference-picture", who).status_code == 403
        assert _api(handle, "POST", "/cameras/cam-1/reference-picture", who).status_code == 403
    audit = _api(handle, "GET", "/audit").json()["items"]
    assert [(a["action"], a["role"], a["camera_id"]) for a in audit] == [
        ("reference_picture_viewed", "admin", "cam-1"), ("reference_picture_requested", "admin", "cam-1"),
    ]  # fmt: skip
    assert all(a["actor"].startswith("key ") and a["at"] for a in audit)
    assert audit[1]["detail"] == {"request_id": request_id, "seconds": 5}
    assert _api(handle, "GET", "/audit", OPERATOR).status_code == 403


@pytest.mark.parametrize("setup", [{"reference_pictures": True, "operators_see_reference_picture": True}],
                         indirect=True)  # fmt: skip
def test_operators_see_the_picture_only_where_the_site_lets_them(setup: tuple[ServerHandle, FakeEdge, Store]) -> None:
    handle, _edge, store = setup
    assert _api(handle, "POST", "/cameras/cam-1/reference-picture").status_code == 202
    wait_for(lambda: _api(handle, "GET", "/cameras/cam-1/reference-picture", OPERATOR).status_code == 200, 10)
    assert _api(handle, "POST", "/cameras/cam-1/reference-picture", OPERATOR).status_code == 403  # asking: admins
    assert store.audit.recent(action="reference_picture_viewed")[0]["role"] == "operator"
    assert _api(handle, "GET", "/ui-config", PLANNER).json()["cameras"][0]["reference_picture"] is True


def test_a_held_picture_is_forgotten_after_its_time() -> None:
    held = ReferencePictures(ttl_s=0.3)
    held.expect("cam-1", "r1")
    pic = ReferencePicture(camera_id="cam-1", site_id=SITE, request_id="r1", taken_at=utcnow(), width=8, height=8,
                           frames_used=3, jpeg_base64=base64.b64encode(JPEG).decode())  # fmt: skip
    assert held.put(pic) and held.get("cam-1") is not None
    assert not held.put(pic)  # answered once
    time.sleep(0.35)
    assert held.get("cam-1") is None and not held.waiting("cam-1")


def test_a_configuration_is_checked_by_the_config_check_rules_and_errors_name_the_element(
    setup: tuple[ServerHandle, FakeEdge, Store],
) -> None:
    handle, edge, _store = setup
    ok = _api(handle, "POST", "/cameras/cam-1/config/validate", json=_body())
    assert ok.status_code == 200 and ok.json() == {"ok": True, "errors": []}
    bad = _body() | {"lines": [{"id": "l1", "points": [[0, 0], [9, 9]]}, {"id": "l9", "points": [[0, 0], [0, 0]]}]}
    r = _api(handle, "POST", "/cameras/cam-1/config/validate", json=bad).json()
    assert r["ok"] is False and [(e["path"], e["element"]) for e in r["errors"]] == [("lines.1.points", "l9")]
    assert r["errors"][0]["message"]
    other = _api(handle, "POST", "/cameras/cam-1/config/validate", json=_body() | {"id": "cam-2"}).json()
    assert other["ok"] is False and other["errors"][0]["path"] == "id"
    assert _api(handle, "POST", "/cameras/cam-1/config/validate", OPERATOR, json=_body()).status_code == 403
    time.sleep(0.2)
    assert edge.controls == []  # checking sends nothing


def test_pushes_are_recorded_with_who_and_when_and_a_rollback_pushes_the_previous_one_again(
    setup: tuple[ServerHandle, FakeEdge, Store],
) -> None:
    handle, edge, store = setup
    assert _api(handle, "POST", "/cameras/cam-1/config/rollback").status_code == 409  # nothing pushed yet
    v1 = _api(handle, "PUT", "/cameras/cam-1/config", json=_body("l2")).json()["config_version"]
    v2 = _api(handle, "PUT", "/cameras/cam-1/config", json=_body("l3")).json()["config_version"]
    clash = _api(handle, "PUT", "/cameras/cam-1/config", json=_body("l4", version=v1))
    assert clash.status_code == 422 and "version" in clash.text  # a version names one configuration
    listed = _api(handle, "GET", "/cameras/cam-1/config/versions").json()
    assert listed["camera_id"] == "cam-1" and listed["confirmed_version"] is None  # no edge status yet
    assert [v["version"] for v in listed["versions"]] == [v2, v1]
    assert listed["versions"][0]["config"]["lines"][0]["id"] == "l3"
    assert all(v["pushed_by"].startswith("key ") and v["pushed_at"] and v["confirmed_at"] is None
               for v in listed["versions"])  # fmt: skip
    back = _api(handle, "POST", "/cameras/cam-1/config/rollback")
    assert back.status_code == 202 and back.json()["config_version"] == v1
    assert [v["version"] for v in _api(handle, "GET", "/cameras/cam-1/config/versions").json()["versions"]] == [
        v1, v2, v1]  # fmt: skip
    configs = wait_for(lambda: [c for c in edge.controls if c.kind == "config"] if len(edge.controls) >= 3 else None)
    assert [c.camera["lines"][0]["id"] for c in configs] == ["l2", "l3", "l2"]
    actions = [(a["action"], (a["detail"] or {}).get("version")) for a in store.audit.recent()]
    assert actions == [("config_rolled_back", v1), ("config_pushed", v2), ("config_pushed", v1)]
    assert store.audit.recent(action="config_rolled_back")[0]["detail"]["rolled_back_from"] == v2
    for who in (OPERATOR, PLANNER):
        assert _api(handle, "GET", "/cameras/cam-1/config/versions", who).status_code == 403
        assert _api(handle, "POST", "/cameras/cam-1/config/rollback", who).status_code == 403


def test_an_edge_offline_during_the_push_runs_the_configuration_when_it_connects_and_confirms_it(
    mqtt_broker: tuple[str, int], pg_database: Any, run_id: str, tmp_path: Path
) -> None:
    host, port = mqtt_broker
    clip = str(make_clip(tmp_path / "c.avi", 60))
    camera = {"id": "cam-1", "source": clip, "realtime": True, "loop": True,
              "lines": [{"id": "l1", "points": [[0, 16], [32, 16]]}]}  # fmt: skip
    config = make_config(
        run_id=run_id, database_url="sqlite://", host=host, port=port, cameras=[camera],
        edge={"device_id": f"box-{run_id}", "outbox_path": str(tmp_path / "outbox.sqlite"), "heartbeat_s": 0.5},
    )  # fmt: skip
    store = Store(pg_database.url, schema=pg_database.schema)
    handle = serve_in_thread(config, store=store, api_keys=KEYS, host="127.0.0.1")
    worker: EdgeWorker | None = None
    try:
        assert handle.app.state.ingest.subscribed.wait(10)
        pushed = _api(handle, "PUT", "/cameras/cam-1/config", json={**camera, "lines": [
            {"id": "l7", "points": [[0, 16], [32, 16]]}]})  # fmt: skip
        assert pushed.status_code == 202, pushed.text  # no edge is connected now
        version = pushed.json()["config_version"]
        worker = EdgeWorker(config, pipeline_factory=fake_factory(range(0, 60, 2)))
        worker.start()

        def confirmed(v: str) -> dict[str, Any] | None:
            listed = _api(handle, "GET", "/cameras/cam-1/config/versions").json()
            newest = listed["versions"][0]
            return listed if listed["confirmed_version"] == v and newest["confirmed_at"] else None

        listed = wait_for(lambda: confirmed(version), 20)
        assert listed["versions"][0]["version"] == version
        assert worker.stats()["cam-1"]["config_version"] == version
        crossings = lambda: store.event_log.recent_events(camera_id="cam-1", kind="line_crossing", limit=1000)  # noqa: E731
        wait_for(lambda: any(r["config_version"] == version for r in crossings()), 10)
        assert {r["line_id"] for r in crossings() if r["config_version"] == version} == {"l7"}

        back = _api(handle, "POST", "/cameras/cam-1/config/rollback")  # before the first push: the file's
        assert back.status_code == 202, back.text
        original = config.cameras[0].config_version()
        assert back.json()["config_version"] == original
        wait_for(lambda: confirmed(original), 20)
        assert worker.stats()["cam-1"]["config_version"] == original
    finally:
        if worker is not None:
            worker.stop(5)
        handle.stop()
        store.close()


class OnePersonDetector:
    """Finds a person in the middle of the picture (the real detector on the median is proven in
    tests/edge/test_reference_picture.py)."""

    version = "fake-detector"

    def detect(self, frame: Any) -> Detections:
        h, w = frame.shape[:2]
        return Detections(xyxy=np.array([[w / 4, h / 4, w * 3 / 4, h * 3 / 4]], np.float32),
                          confidence=np.array([0.9], np.float32), class_id=np.array([5]))  # fmt: skip


def test_a_real_edge_answers_a_reference_picture_request_through_the_server(
    mqtt_broker: tuple[str, int], sqlite_url: str, run_id: str, tmp_path: Path
) -> None:
    host, port = mqtt_broker
    camera = {"id": "cam-1", "source": str(make_clip(tmp_path / "c.avi", 40, size=64)), "realtime": True,
              "loop": True, "lines": [{"id": "l1", "points": [[0, 16], [32, 16]]}]}  # fmt: skip
    config = make_config(
        run_id=run_id, database_url=sqlite_url, host=host, port=port, cameras=[camera],
        server={"database_url": sqlite_url, "client_id": f"cw-server-{run_id}",
                "privacy": {"reference_pictures": [SITE]}},
        edge={"device_id": f"box-{run_id}", "outbox_path": str(tmp_path / "outbox.sqlite"), "heartbeat_s": 0.5,
              "reference_picture": {"enabled": True, "samples": 5}},
    )  # fmt: skip
    handle = serve_in_thread(config, api_keys=KEYS, host="127.0.0.1")
    worker = EdgeWorker(config, detector=OnePersonDetector(), pipeline_factory=fake_factory([]))  # type: ignore[arg-type]
    worker.start()
    try:
        assert handle.app.state.ingest.subscribed.wait(10) and worker.cameras["cam-1"].link.wait_subscribed(10)
        r = _api(handle, "POST", "/cameras/cam-1/reference-picture", params={"seconds": 1})
        assert r.status_code == 202, r.text
        got = wait_for(lambda: (g := _api(handle, "GET", "/cameras/cam-1/reference-picture")).status_code == 200
                       and g, 20)  # fmt: skip
        img = cv2.imdecode(np.frombuffer(got.content, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (64, 64, 3)
        assert got.headers["x-reference-request-id"] == r.json()["request_id"]
        assert got.headers["x-reference-blurred-regions"] == "1" and got.headers["x-reference-frames"] == "5"
    finally:
        worker.stop(5)
        handle.stop()


def test_a_refused_reference_picture_is_a_dead_letter_without_the_image(
    setup: tuple[ServerHandle, FakeEdge, Store],
) -> None:
    handle, edge, store = setup
    topics = edge.topics
    pic = ReferencePicture(camera_id="cam-2", site_id=SITE, request_id="r1", taken_at=utcnow(), width=8, height=8,
                           frames_used=3, jpeg_base64=base64.b64encode(JPEG).decode())  # fmt: skip
    edge.client.publish(topics.reference(SITE, "cam-1"), pic.model_dump_json(), qos=1)  # another camera's picture
    letters = wait_for(lambda: store.list_dead_letters()[0], 10)
    assert len(letters) == 1 and "published on the topic of" in letters[0]["reason"]
    assert "images are never stored" in letters[0]["payload"] and "jpeg_base64" not in str(letters[0])
