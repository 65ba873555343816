"""The slice through a broker set up as the product ships it (deploy/mosquitto): the edge over TLS on the
device listener, the server on the loopback listener, a credential per camera and one for the server
made with `citywatch broker`, the dynamic-security plugin's topic rules.

Credentials reach edge and server only through the environment variables the configuration names.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_kit import LONDON_LINE, CachedDetector
from support import ShippedBroker, broker_cli, make_certs, wait_for

from citywatch.config import CitywatchConfig, parse_config
from edge.worker import EdgeWorker
from server.runner import serve_in_thread

pytestmark = pytest.mark.slow
CAMERA = "london-tls"
DEVICE = "edge-tls-1"
EDGE_PW = "edge-secret-0123456789"
SERVER_PW = "server-secret-0123456789"


def secure_broker(tmp_path: Path) -> ShippedBroker:
    make_certs(tmp_path)
    ds = tmp_path / "dynamic-security.json"
    broker_cli("add-server", "--file", str(ds), password=SERVER_PW)
    broker_cli("add-device", "--file", str(ds), "--site", "secure", "--device", DEVICE, "--camera", CAMERA,
               password=EDGE_PW)
    return ShippedBroker(tmp_path, dynsec=ds, certs=tmp_path)


def config(tmp_path: Path, port: int, clip: Path, role: str, ca: Path | None) -> CitywatchConfig:
    return parse_config({
        "site": "secure",
        "mqtt": {"port": port, "protocol": "5", "topic_prefix": "citywatch",  # the prefix the broker file names
                 "username_env": f"CW_{role}_USER", "password_env": f"CW_{role}_PASSWORD",
                 "tls": {"enabled": ca is not None, "ca_file": str(ca) if ca else None}},
        "edge": {"device_id": DEVICE, "outbox_path": str(tmp_path / "outbox.sqlite"), "heartbeat_s": 1},
        "server": {"database_url": f"sqlite:///{tmp_path}/citywatch.sqlite", "client_id": "citywatch-server"},
        "cameras": [{"id": CAMERA, "source": str(clip), "realtime": False, "lines": [LONDON_LINE]}],
    })


def test_edge_and_server_deliver_everything_over_tls_with_per_device_passwords_and_the_acl(
    tmp_path: Path, london_clip: Path, london_detector: CachedDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = secure_broker(tmp_path)
    monkeypatch.setenv("CW_EDGE_USER", CAMERA)
    monkeypatch.setenv("CW_EDGE_PASSWORD", EDGE_PW)
    monkeypatch.setenv("CW_SERVER_USER", "citywatch-server")
    monkeypatch.setenv("CW_SERVER_PASSWORD", SERVER_PW)
    broker.start()
    try:
        server_cfg = config(tmp_path, broker.port, london_clip, "SERVER", None)  # on the broker's host
        edge_cfg = config(tmp_path, broker.tls_port, london_clip, "EDGE", tmp_path / "ca.crt")
        with serve_in_thread(server_cfg, port=0, api_keys="") as server:
            ingest = server.app.state.ingest
            assert wait_for(lambda: ingest.connected, 15), "the server could not log in"
            worker = EdgeWorker(edge_cfg, detector=london_detector)
            worker.start()
            try:
                assert worker.wait_sources_done(120)
                assert worker.wait_drained(60), worker.stats()
            finally:
                worker.stop(10)
            stats = worker.stats()[CAMERA]
            store = server.app.state.store
            assert wait_for(lambda: store.count_events(CAMERA) == stats["events_appended"], 15)
            assert sum(stats["crossings"].values()) >= 5
    finally:
        broker.stop()


def test_a_wrong_password_is_refused_and_nothing_is_published(
    tmp_path: Path, london_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = secure_broker(tmp_path)
    broker.start()
    monkeypatch.setenv("CW_EDGE_USER", CAMERA)
    monkeypatch.setenv("CW_EDGE_PASSWORD", "not-the-password")
    try:
        cfg = config(tmp_path, broker.tls_port, london_clip, "EDGE", tmp_path / "ca.crt")
        from edge.mqtt_link import MqttLink

        link = MqttLink(cfg.mqtt, site="secure", camera_id=CAMERA, device_id=DEVICE)
        link.start()
        try:
            assert not link.wait_connected(3)
            assert wait_for(lambda: link.last_error is not None and "refused" in link.last_error, 5), link.last_error
        finally:
            link.stop()
    finally:
        broker.stop()
