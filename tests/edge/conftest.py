from __future__ import annotations

import os

import pytest
from support import MOSQUITTO, PrivateBroker, require
from support import service_up as port_open


@pytest.fixture
def mosquitto_1883() -> None:
    """The shared Mosquitto on 127.0.0.1:1883 (skip locally when it is down; fail when CI=true)."""
    require(port_open("127.0.0.1", 1883), "Mosquitto is not reachable on 127.0.0.1:1883")


@pytest.fixture
def private_broker(tmp_path):
    require(os.path.exists(MOSQUITTO), f"the mosquitto binary ({MOSQUITTO}) is not installed")
    broker = PrivateBroker(tmp_path)
    broker.start()
    yield broker
    broker.stop()
