"""The slice through a broker set up as a city would run it: TLS, a password per device, the shipped ACL.

Credentials reach edge and server only through the environment variables the configuration names.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import uuid
from pathlib import Path

import pytest
from e2e_kit import LONDON_LINE, CachedDetector
from support import REPO, PrivateBroker, require, wait_for

from citywatch.config import CitywatchConfig, parse_config
from edge.worker import EdgeWorker
from server.runner import serve_in_thread

pytestmark = pytest.mark.slow
PASSWD = Path("/usr/bin/mosquitto_passwd")
ACL = REPO / "deploy/mosquitto/citywatch.acl"
CAMERA = "london-tls"
AS_ME = f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"  # as root, mosquitto would drop to "mosquitto"


def _need(path: Path, what: str) -> None:
    require(path.exists(), f"{what} not found at {path}")


def make_certs(d: Path) -> None:
    """A throw-away CA and a server certificate for 127.0.0.1, valid for a day."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-subj", "/CN=citywatch-test-ca", "-days", "1")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "1", "-extfile", "san.ext")


def config(tmp_path: Path, port: int, clip: Path, role: str, ca: Path) -> CitywatchConfig:
    run = uuid.uuid4().hex[:8]
    return parse_config({
        "site": "secure",
        "mqtt": {"port": port, "protocol": "5", "topic_prefix": "citywatch",  # the prefix the shipped ACL names
                 "username_env": f"CW_{role}_USER", "password_env": f"CW_{role}_PASSWORD",
                 "tls": {"enabled": True, "ca_file": str(ca)}},
        "edge": {"device_id": f"edge-{run}", "outbox_path": str(tmp_path / "outbox.sqlite"), "heartbeat_s": 1},
        "server": {"database_url": f"sqlite:///{tmp_path}/citywatch.sqlite", "client_id": "citywatch-server"},
        "cameras": [{"id": CAMERA, "source": str(clip), "realtime": False, "lines": [LONDON_LINE]}],
    })


def test_edge_and_server_deliver_everything_over_tls_with_per_device_passwords_and_the_acl(
    tmp_path: Path, london_clip: Path, london_detector: CachedDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need(PASSWD, "mosquitto_passwd")
    make_certs(tmp_path)
    pw = tmp_path / "passwd"
    pw.write_text("")
    for user, password in (("citywatch-server", "server-secret-1"), (CAMERA, "edge-secret-1")):
        subprocess.run([str(PASSWD), "-b", str(pw), user, password], check=True)
    broker = PrivateBroker(tmp_path, extra_conf=(
        f"certfile {tmp_path / 'server.crt'}\nkeyfile {tmp_path / 'server.key'}\n"
        f"password_file {pw}\nacl_file {ACL}\n{AS_ME}"
    ))
    broker.conf.write_text(broker.conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    monkeypatch.setenv("CW_EDGE_USER", CAMERA)
    monkeypatch.setenv("CW_EDGE_PASSWORD", "edge-secret-1")
    monkeypatch.setenv("CW_SERVER_USER", "citywatch-server")
    monkeypatch.setenv("CW_SERVER_PASSWORD", "server-secret-1")
    broker.start()
    try:
        server_cfg = config(tmp_path, broker.port, london_clip, "SERVER", tmp_path / "ca.crt")
        edge_cfg = config(tmp_path, broker.port, london_clip, "EDGE", tmp_path / "ca.crt")
        with serve_in_thread(server_cfg, port=0, api_keys="") as server:
            ingest = server.app.state.ingest
            assert wait_for(lambda: ingest.connected, 15), "the server could not log in over TLS"
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
    _need(PASSWD, "mosquitto_passwd")
    pw = tmp_path / "passwd"
    pw.write_text("")
    subprocess.run([str(PASSWD), "-b", str(pw), CAMERA, "edge-secret-1"], check=True)
    broker = PrivateBroker(tmp_path, extra_conf=f"password_file {pw}\nacl_file {ACL}\n{AS_ME}")
    broker.conf.write_text(broker.conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    broker.start()
    monkeypatch.setenv("CW_EDGE_USER", CAMERA)
    monkeypatch.setenv("CW_EDGE_PASSWORD", "not-the-password")
    try:
        cfg = config(tmp_path, broker.port, london_clip, "EDGE", tmp_path / "none")
        cfg = cfg.model_copy(update={"mqtt": cfg.mqtt.model_copy(update={"tls": cfg.mqtt.tls.model_copy(
            update={"enabled": False})})})
        from edge.mqtt_link import MqttLink

        link = MqttLink(cfg.mqtt, site="secure", camera_id=CAMERA, device_id="edge-x")
        link.start()
        try:
            assert not link.wait_connected(3)
            assert wait_for(lambda: link.last_error is not None and "refused" in link.last_error, 5), link.last_error
        finally:
            link.stop()
    finally:
        broker.stop()
