"""citywatch.mqtt: clients built one way for edge and server, and callbacks that cannot stop paho's thread."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from support import require_service

from citywatch.config import MQTTConfig
from citywatch.mqtt import build_client, connect_async, guard


def test_a_guarded_callback_logs_the_exception_hands_it_on_and_returns(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Exception] = []
    calls: list[tuple[int, str]] = []

    def on_thing(n: int, *, word: str) -> None:
        calls.append((n, word))
        if n == 2:
            raise ValueError("boom")

    guarded = guard(on_thing, on_error=seen.append)
    guarded(1, word="a")
    with caplog.at_level(logging.ERROR, logger="citywatch.mqtt"):
        assert guarded(2, word="b") is None
    assert calls == [(1, "a"), (2, "b")]
    assert [str(e) for e in seen] == ["boom"]
    assert "MQTT callback on_thing failed" in caplog.text and "ValueError: boom" in caplog.text


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_built_client_connects_and_finds_its_persistent_session_again(protocol: str) -> None:
    """What the edge and the ingest rely on: messages not acknowledged before a drop are redelivered."""
    require_service("Mosquitto", "127.0.0.1", 1883)
    config = MQTTConfig.model_validate(
        {"host": "127.0.0.1", "port": 1883, "protocol": protocol, "session_expiry_s": 60,
         "username_env": None, "password_env": None}
    )  # fmt: skip
    client_id = f"cw-helper-{uuid.uuid4().hex[:8]}"
    sessions: list[bool] = []
    connected = threading.Event()

    def on_connect(_c: mqtt.Client, _u: Any, flags: mqtt.ConnectFlags, reason: Any, _p: Any) -> None:
        sessions.append(bool(flags.session_present))
        connected.set()

    for _ in range(2):
        connected.clear()
        client = build_client(config, client_id=client_id, credentials=(None, None), client_class=mqtt.Client)
        client.on_connect = guard(on_connect)
        connect_async(client, config)
        try:
            assert connected.wait(10)
        finally:
            client.disconnect()
            client.loop_stop()
    assert sessions == [False, True]
    end = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    end.connect("127.0.0.1", 1883, 30)  # a clean 3.1.1 session ends the persistent one
    end.disconnect()
