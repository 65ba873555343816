"""The shipped Mosquitto password file + ACL: an edge may publish only under its own camera's topics,
anonymous clients are refused, and the server reads everything (also through $share)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from server_testkit import SHIPPED_ACL, close_client, crossing, shipped_broker, wait_for
from support import require

MOSQUITTO_PASSWD = Path("/usr/bin/mosquitto_passwd")


def _client(port: int, cid: str, user: str | None, password: str | None) -> tuple[mqtt.Client, object]:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    if user:
        c.username_pw_set(user, password)
    rc: dict[str, object] = {}
    done = threading.Event()

    def on_connect(_c, _u, _f, reason, _p):  # type: ignore[no-untyped-def]
        rc["rc"] = reason
        done.set()

    c.on_connect = on_connect
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    done.wait(10)
    return c, rc.get("rc")


def test_edges_publish_only_under_their_own_topics(tmp_path: Path, run_id: str) -> None:
    require(MOSQUITTO_PASSWD.exists(), "mosquitto_passwd is not installed")
    pw = tmp_path / "passwd"
    pw.write_text("")
    for user, password in (("citywatch-server", "server-pw"), ("cam-1", "cam1-pw"), ("cam-2", "cam2-pw")):
        subprocess.run([str(MOSQUITTO_PASSWD), "-b", str(pw), user, password], check=True)
    broker = shipped_broker(tmp_path, passwd=pw, acl=SHIPPED_ACL)
    broker.start()
    got: list[str] = []
    try:
        anon, rc = _client(broker.port, f"anon-{run_id}", None, None)
        assert rc is None or rc.is_failure  # type: ignore[attr-defined]
        close_client(anon)

        server, rc = _client(broker.port, f"srv-{run_id}", "citywatch-server", "server-pw")
        assert rc is not None and not rc.is_failure  # type: ignore[attr-defined]
        server.on_message = lambda _c, _u, m: got.append(m.topic)
        server.subscribe("$share/ingest/citywatch/+/+/event/+", qos=1)
        server.subscribe("citywatch/+/+/status", qos=1)
        edge, rc = _client(broker.port, f"cam1-{run_id}", "cam-1", "cam1-pw")
        assert rc is not None and not rc.is_failure  # type: ignore[attr-defined]
        import time

        time.sleep(0.5)
        payload = crossing(1).model_dump_json()
        ok = edge.publish("citywatch/site-1/cam-1/event/line_crossing", payload, qos=1)
        spoof = edge.publish("citywatch/site-1/cam-2/event/line_crossing", payload, qos=1)
        control = edge.publish("citywatch/site-1/cam-2/control/committed", b"{}", qos=1)
        for info in (ok, spoof, control):
            info.wait_for_publish(5)
        assert wait_for(lambda: "citywatch/site-1/cam-1/event/line_crossing" in got, 5)
        time.sleep(0.5)
        assert got == ["citywatch/site-1/cam-1/event/line_crossing"]  # the spoofed publish never arrived
        close_client(edge)
        close_client(server)
    finally:
        broker.stop()
