"""Control messages through the ingest's connection: the API pushes a camera configuration to its edge."""

from __future__ import annotations

import queue
import threading

import httpx
import paho.mqtt.client as mqtt
from server_testkit import close_client, make_config, publisher

from citywatch.contract import ControlConfig, parse_control
from server.runner import serve_in_thread

SITE = "site-1"


def test_a_configuration_pushed_through_the_api_reaches_the_cameras_control_topic(
    mqtt_broker: tuple[str, int], sqlite_url: str, run_id: str
) -> None:
    host, port = mqtt_broker
    config = make_config(run_id=run_id, database_url=sqlite_url, host=host, port=port)
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    edge = publisher(host, port, f"cw-edge-{run_id}")
    subscribed = threading.Event()
    edge.on_message = lambda _c, _u, msg: got.put(msg)
    edge.on_subscribe = lambda *_args: subscribed.set()
    edge.subscribe(f"{config.mqtt.topic_prefix}/{SITE}/cam-1/control/config", qos=1)
    handle = serve_in_thread(config, api_keys="admin:admin-key-1", host="127.0.0.1")
    try:
        assert handle.app.state.ingest.subscribed.wait(10) and subscribed.wait(10)
        body = {"id": "cam-1", "source": "file:///dev/null", "lines": [{"id": "l2", "points": [[0, 0], [50, 50]]}]}
        r = httpx.put(
            f"{handle.url}/api/v1/cameras/cam-1/config", json=body, headers={"X-API-Key": "admin-key-1"}, timeout=10
        )
        assert r.status_code == 202, r.text
        assert r.json()["sent"] is True and r.json()["site"] == SITE
        msg = got.get(timeout=10)
        control = parse_control(msg.payload)
        assert isinstance(control, ControlConfig) and control.camera_id == "cam-1"
        assert control.config_version == r.json()["config_version"]
        assert [line["id"] for line in control.camera["lines"]] == ["l2"]
    finally:
        handle.stop()
        close_client(edge)
