"""MqttLink: non-blocking start, will/online status, control parsing, robustness of callbacks."""

from __future__ import annotations

import time
import uuid

import pytest
from edge_testkit import make_config
from support import free_port, wait_for

from citywatch.contract import ControlCommitted
from edge.mqtt_link import MqttLink


def link_for(config, camera="cam-a", device=None, **kw) -> MqttLink:
    return MqttLink(config.mqtt, site=config.site, camera_id=camera, device_id=device or config.edge.device_id, **kw)


def test_start_with_broker_down_returns_at_once_and_does_not_crash(tmp_path) -> None:
    config = make_config(tmp_path, [], port=free_port())
    link = link_for(config)
    t0 = time.monotonic()
    link.start()
    try:
        assert time.monotonic() - t0 < 0.5
        time.sleep(0.3)
        assert not link.connected
        assert link.publish(link.event_topic("line_crossing"), "{}") is False  # refused, not queued
    finally:
        link.stop()


@pytest.mark.services
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_callback_exception_does_not_kill_the_network_loop(tmp_path, mosquitto_1883, protocol) -> None:
    config = make_config(tmp_path, [], protocol=protocol)
    got: list[int] = []

    def on_control(control) -> None:
        got.append(control.seq)
        if control.seq == 1:
            raise RuntimeError("boom in a user callback")

    link = link_for(config, on_control=on_control)
    link.start()
    other = link_for(config, device=f"pub-{uuid.uuid4().hex[:6]}")
    other.start()
    try:
        assert link.wait_subscribed(5) and other.wait_connected(5)
        topic = link.topics.control(config.site, "cam-a", "committed")
        for seq in (1, 2):
            other.publish(topic, ControlCommitted(camera_id="cam-a", seq=seq).model_dump_json())
        assert wait_for(lambda: got == [1, 2], 5), got
        assert link.connected
    finally:
        link.stop()
        other.stop()


@pytest.mark.services
def test_second_client_with_same_id_is_reported_as_session_taken_over(tmp_path, mosquitto_1883, caplog) -> None:
    config = make_config(tmp_path, [], protocol="5")
    first = link_for(config)
    first.start()
    second = link_for(config)
    try:
        assert first.wait_connected(5)
        second.start()
        assert wait_for(lambda: "session taken over" in (first.last_error, second.last_error), 10)
        assert "SESSION TAKEN OVER" in caplog.text
    finally:
        second.stop()
        first.stop()
