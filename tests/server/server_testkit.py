"""Helpers for the server tests: build events and configs, publish with paho, wait for conditions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from citywatch.config import CitywatchConfig
from citywatch.contract import CameraStatus, LineCrossing


def crossing(
    seq: int,
    *,
    camera_id: str = "cam-1",
    site_id: str = "site-1",
    ts: datetime | None = None,
    event_id: uuid.UUID | None = None,
    line_id: str = "l1",
    direction: str = "in",
    class_name: str = "car",
) -> LineCrossing:
    return LineCrossing(
        event_id=event_id or uuid.uuid4(),
        camera_id=camera_id,
        site_id=site_id,
        seq=seq,
        ts=ts or datetime.now(timezone.utc),
        config_version="t",
        model_version="t",
        line_id=line_id,
        direction=direction,  # type: ignore[arg-type]
        class_name=class_name,  # type: ignore[arg-type]
        track_id=1,
        frame_index=0,
    )


def status_event(
    seq: int, *, camera_id: str = "cam-1", site_id: str = "site-1", outbox_first_seq: int | None = None
) -> CameraStatus:
    return CameraStatus(
        event_id=uuid.uuid4(),
        camera_id=camera_id,
        site_id=site_id,
        seq=seq,
        ts=datetime.now(timezone.utc),
        config_version="t",
        model_version="t",
        source_state="ok",
        fps_in=25.0,
        fps_processed=12.5,
        inference_ms=30.0,
        outbox_depth=3,
        outbox_first_seq=outbox_first_seq,
        uptime_s=10.0,
    )


def make_config(
    *, run_id: str, database_url: str, host: str = "127.0.0.1", port: int = 1883, protocol: str = "5", **extra: Any
) -> CitywatchConfig:
    data: dict[str, Any] = {
        "site": "site-1",
        "mqtt": {
            "host": host,
            "port": port,
            "protocol": protocol,
            "topic_prefix": f"cwtest-{run_id}",
            "session_expiry_s": 60,
            "username_env": None,
            "password_env": None,
        },
        "server": {"database_url": database_url, "client_id": f"cw-server-{run_id}"},
        "cameras": [
            {
                "id": "cam-1",
                "name": "Ngã tư / Crossroads",
                "source": "file:///dev/null",
                "location": {"lat": 10.77, "lon": 106.7},
                "lines": [{"id": "l1", "points": [[0, 0], [100, 0]]}],
            }
        ],
    }
    data.update(extra)
    return CitywatchConfig.model_validate(data)


def publisher(host: str, port: int, client_id: str) -> mqtt.Client:
    """A connected MQTT v5 client with its network loop running."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.connect(host, port, 30)
    c.loop_start()
    return c


def close_client(client: mqtt.Client) -> None:
    """Disconnect first: stopping the loop first waits for its 1 s select timeout."""
    client.disconnect()
    client.loop_stop()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy; return its value or raise AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def shipped_broker(tmp_path: Any) -> Any:
    """A private Mosquitto with the delivery settings the product ships (deploy/mosquitto), on a free
    loopback port, persistence in ``tmp_path``, anonymous (tests/server/test_server_mqtt_acl.py runs the
    shipped authentication and TLS)."""
    from support import ShippedBroker

    return ShippedBroker(tmp_path)
