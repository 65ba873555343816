"""The shipped broker setup (deploy/mosquitto: TLS for devices, plain MQTT on loopback only, the
dynamic-security plugin with credentials made by ``citywatch broker``) against a real Mosquitto: a
device may publish only its own site's and camera's topics, may not join the server's shared group,
may not log in with the server's (or another camera's) client id; the server reads everything, also
through ``$share``; retained control messages and the last will still work."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from server_testkit import crossing, wait_for
from support import ShippedBroker, broker_cli, make_certs

from citywatch.config import MQTTConfig
from citywatch.dynsec import edge_client_id
from edge.mqtt_link import MqttLink

SERVER_PW = "server-password-0123456789"
BOX_PW = "box-password-0123456789"
EVENTS = "citywatch/+/+/event/+"
SHARED = f"$share/ingest/{EVENTS}"


@dataclass
class Secure:
    broker: ShippedBroker
    ca: Path
    dynsec: Path


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[Secure]:
    """The shipped setup: the server's credential and two one-camera boxes at site-1, one at site-2."""
    ca = make_certs(tmp_path)
    ds = tmp_path / "dynamic-security.json"
    broker_cli("add-server", "--file", str(ds), password=SERVER_PW)
    boxes = (("site-1", "box-1", "cam-1"), ("site-1", "box-2", "cam-2"), ("site-2", "box-3", "cam-3"))
    for site, box, camera in boxes:
        broker_cli("add-device", "--file", str(ds), "--site", site, "--device", box, "--camera", camera,
                   password=BOX_PW)
    broker = ShippedBroker(tmp_path, dynsec=ds, certs=tmp_path)
    broker.start()
    yield Secure(broker, ca, ds)
    broker.stop()


@dataclass
class Probe:
    """A paho v5 client that records what the broker answered."""

    client: mqtt.Client
    connack: Any = None
    subacks: list[list[str]] = field(default_factory=list)
    pubacks: dict[int, str] = field(default_factory=dict)
    messages: list[mqtt.MQTTMessage] = field(default_factory=list)
    disconnects: int = 0
    connected: threading.Event = field(default_factory=threading.Event)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def subscribe(self, topic: str) -> list[str]:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(5), "no SUBACK"
        return self.subacks[-1]

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> str:
        """The PUBACK's reason ("Success", or "Not authorized" for a refused v5 publish)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)
        return wait_for(lambda: self.pubacks.get(info.mid), 5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    port: int, client_id: str, user: str | None, password: str | None, *, ca: Path | None = None,
    clean_start: bool = True, will: str | None = None, host: str = "127.0.0.1",
) -> Probe:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    p = Probe(c)
    if user:
        c.username_pw_set(user, password)
    if ca:
        c.tls_set(ca_certs=str(ca))
    if will:
        c.will_set(will, b"offline", qos=1, retain=True)

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        p.connack = reason
        p.connected.set()

    def on_subscribe(_c: Any, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        p.subacks.append([str(r) for r in reasons])
        p.subscribed.set()

    def on_disconnect(*_a: Any) -> None:
        p.disconnects += 1

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_disconnect = on_disconnect
    c.on_message = lambda _c, _u, m: p.messages.append(m)
    c.on_publish = lambda _c, _u, mid, reason, _p: p.pubacks.__setitem__(mid, str(reason))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600
    c.connect(host, port, 30, clean_start=clean_start, properties=props)
    c.loop_start()
    p.connected.wait(10)
    return p


def server(s: Secure, client_id: str = "citywatch-server", *, clean_start: bool = True) -> Probe:
    """The server logs in on the loopback listener, as the shipped setup has it."""
    p = connect(s.broker.port, client_id, "citywatch-server", SERVER_PW, clean_start=clean_start)
    assert p.connack is not None and not p.connack.is_failure, p.connack
    return p


def device(s: Secure, camera: str, device_id: str, *, client_id: str | None = None, **kw: Any) -> Probe:
    """A remote edge: TLS listener, its camera's credential."""
    return connect(s.broker.tls_port, client_id or edge_client_id(device_id, camera), camera, BOX_PW, ca=s.ca, **kw)


def test_a_device_cannot_join_the_servers_shared_group_and_the_server_receives_every_event(secure: Secure) -> None:
    srv = server(secure)
    assert srv.subscribe(SHARED) == ["Granted QoS 1"]  # several ingest processes share the load
    rogue = device(secure, "cam-2", "box-2")
    assert not rogue.connack.is_failure
    for topic in (SHARED, "$share/ingest/#", "$share/other/citywatch/site-1/cam-1/event/+", EVENTS, "#"):
        assert rogue.subscribe(topic) == ["Not authorized"], topic
    edge = device(secure, "cam-1", "box-1")
    payload = crossing(1).model_dump_json()
    infos = [edge.client.publish("citywatch/site-1/cam-1/event/line_crossing", payload, qos=1) for _ in range(300)]
    for i in infos:
        i.wait_for_publish(10)
    wait_for(lambda: len(srv.messages) >= 300, 15)
    time.sleep(0.5)
    print(f"server received {len(srv.messages)} of 300 events; the rogue shared-group member {len(rogue.messages)}")
    assert (len(srv.messages), len(rogue.messages)) == (300, 0)
    for p in (edge, rogue, srv):
        p.close()


def test_a_device_cannot_log_in_with_the_servers_client_id_and_the_servers_queued_events_all_arrive(
    secure: Secure,
) -> None:
    srv = server(secure, clean_start=False)
    srv.subscribe(EVENTS)
    taker = device(secure, "cam-2", "box-2", client_id="citywatch-server")
    assert str(taker.connack) == "Not authorized"
    time.sleep(0.3)
    assert srv.disconnects == 0 and srv.client.is_connected()  # the live server was not dropped
    taker.close()
    srv.close()  # offline: the broker queues for its persistent session

    edge = device(secure, "cam-1", "box-1")
    for i in [edge.client.publish("citywatch/site-1/cam-1/event/line_crossing", crossing(n).model_dump_json(), qos=1)
              for n in range(1, 201)]:
        i.wait_for_publish(10)
    for cid in ("citywatch-server", edge_client_id("box-1", "cam-1")):  # the server's, another camera's
        taker = device(secure, "cam-2", "box-2", client_id=cid, clean_start=True)
        assert str(taker.connack) == "Not authorized", cid
        taker.close()
    assert not edge.disconnects  # nor was cam-1's link taken over

    srv = server(secure, clean_start=False)
    wait_for(lambda: len(srv.messages) >= 200, 15)
    time.sleep(0.3)
    print(f"the server's queued events after the takeover attempts: {len(srv.messages)} of 200")
    assert len(srv.messages) == 200
    srv.close()
    edge.close()


def test_plain_mqtt_listens_on_loopback_only_and_remote_devices_use_tls(secure: Secure) -> None:
    port, tls_port = secure.broker.port, secure.broker.tls_port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=2).close()  # another address of this host
    socket.create_connection(("127.0.0.2", tls_port), timeout=2).close()  # the TLS listener is for remote devices

    ctx = ssl.create_default_context(cafile=str(secure.ca))
    with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as raw, ctx.wrap_socket(
        raw, server_hostname="127.0.0.1"
    ) as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    plain = connect(tls_port, edge_client_id("box-1", "cam-1"), "cam-1", BOX_PW)  # no TLS on the TLS port
    assert plain.connack is None, "a plaintext MQTT CONNECT was answered on the TLS listener"
    plain.client.loop_stop()
    edge = device(secure, "cam-1", "box-1")
    assert not edge.connack.is_failure
    edge.close()


def test_a_device_publishes_only_under_its_own_site_and_camera(secure: Secure) -> None:
    srv = server(secure)
    srv.subscribe(EVENTS)
    srv.subscribe("citywatch/+/+/status")
    edge = device(secure, "cam-1", "box-1")
    payload = crossing(1).model_dump_json()
    assert edge.publish("citywatch/site-1/cam-1/event/line_crossing", payload) == "Success"
    refused = {
        topic: edge.publish(topic, payload)
        for topic in (
            "citywatch/site-2/cam-1/event/line_crossing",  # its camera id under another site
            "citywatch/site-2/cam-3/event/line_crossing",  # another site's camera
            "citywatch/site-1/cam-2/event/line_crossing",  # another camera of its site
            "citywatch/site-1/cam-2/status",
            "citywatch/site-1/cam-1/control/config",  # only the server writes control messages
            "other/site-1/cam-1/event/line_crossing",
        )
    }
    assert all(r == "Not authorized" for r in refused.values()), refused  # v5 PUBACK 0x87
    wait_for(lambda: srv.messages, 5)
    time.sleep(0.5)
    assert [m.topic for m in srv.messages] == ["citywatch/site-1/cam-1/event/line_crossing"]
    edge.close()
    srv.close()


def test_anonymous_and_wrong_passwords_are_refused(secure: Secure) -> None:
    for user, password in ((None, None), ("cam-1", "not-the-password"), ("citywatch-server", BOX_PW)):
        p = connect(secure.broker.port, f"citywatch-box-1-{user}", user, password)
        assert p.connack is not None and p.connack.is_failure, (user, p.connack)
        p.client.loop_stop()


def test_retained_control_per_camera_and_the_last_will_still_work(secure: Secure) -> None:
    srv = server(secure)
    srv.subscribe("citywatch/+/+/status")
    assert srv.publish("citywatch/site-1/cam-1/control/config", b'{"v": 1}', retain=True) in (
        "Success", "No matching subscribers")
    edge = device(secure, "cam-1", "box-1", will="citywatch/site-1/cam-1/status")
    assert edge.subscribe("citywatch/site-1/cam-1/control/+") == ["Granted QoS 1"]
    wait_for(lambda: edge.messages, 5)
    assert [(m.topic, m.retain) for m in edge.messages] == [("citywatch/site-1/cam-1/control/config", True)]
    other = device(secure, "cam-2", "box-2")
    assert other.subscribe("citywatch/site-1/cam-1/control/+") == ["Not authorized"]  # not its camera's
    other.close()
    edge.client.loop_stop()
    edge.client.socket().close()  # the box loses power: no DISCONNECT, so the broker sends the will
    wait_for(lambda: any(m.payload == b"offline" for m in srv.messages), 60)
    srv.close()


def test_a_multi_camera_box_logs_in_each_camera_with_its_own_credential(secure: Secure, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """One ``add-device`` with two cameras; the edge's links log in as their camera ids over TLS."""
    secure.broker.stop()
    broker_cli("add-device", "--file", str(secure.dynsec), "--site", "site-9", "--device", "box-9",
               "--camera", "cam-9a", "--camera", "cam-9b", password=BOX_PW)
    secure.broker.start()
    monkeypatch.setenv("CW_BOX_PW", BOX_PW)
    cfg = MQTTConfig(port=secure.broker.tls_port, camera_id_as_username=True, username_env=None,
                     password_env="CW_BOX_PW", tls={"enabled": True, "ca_file": secure.ca})
    links = [MqttLink(cfg, site="site-9", camera_id=c, device_id=d)
             for c, d in (("cam-9a", "box-9"), ("cam-9b", "box-9"), ("cam-9b", "box-other"))]
    for link in links:
        link.start()
    try:
        assert links[0].wait_connected(10) and links[1].wait_connected(10)
        assert not links[2].wait_connected(2)  # another device id: another client id, refused
        assert links[2].last_error is not None and "Not authorized" in links[2].last_error
    finally:
        for link in links:
            link.stop()


def test_a_camera_publishes_a_reference_picture_only_on_its_own_topic_and_the_server_receives_it(
    secure: Secure,
) -> None:
    srv = server(secure)
    assert srv.subscribe("citywatch/+/+/reference") == ["Granted QoS 1"]
    assert srv.subscribe("$share/ingest/citywatch/+/+/reference") == ["Granted QoS 1"]
    edge = device(secure, "cam-1", "box-1")
    picture = b'{"kind": "reference_picture"}'  # the broker does not read payloads
    assert edge.publish("citywatch/site-1/cam-1/reference", picture) == "Success"
    refused = {
        topic: edge.publish(topic, picture)
        for topic in (
            "citywatch/site-1/cam-2/reference",  # another camera of its site
            "citywatch/site-2/cam-3/reference",  # another site's camera
            "citywatch/site-2/cam-1/reference",  # its camera id under another site
        )
    }
    assert all(r == "Not authorized" for r in refused.values()), refused
    other = device(secure, "cam-2", "box-2")
    assert other.subscribe("citywatch/site-1/cam-1/reference") == ["Not authorized"]  # no camera sees another's
    assert other.subscribe("citywatch/+/+/reference") == ["Not authorized"]
    wait_for(lambda: len(srv.messages) >= 2, 5)
    time.sleep(0.5)
    assert [m.topic for m in srv.messages] == ["citywatch/site-1/cam-1/reference"] * 2  # plain and $share
    assert other.messages == []
    for p in (edge, other, srv):
        p.close()


def test_a_broker_file_from_before_the_reference_picture_still_lets_the_ingest_receive_events(
    secure: Secure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The server's role without the .../reference topics (an older broker file): that subscription is
    refused, and the ingest still subscribes to events and status and stores what arrives."""
    import json

    from citywatch.config import CitywatchConfig
    from server.ingest import Ingest
    from server.storage.store import Store

    secure.broker.stop()
    data = json.loads(secure.dynsec.read_text())
    for role in data["roles"]:
        if role["rolename"] == "citywatch-server":
            role["acls"] = [a for a in role["acls"] if not a["topic"].endswith("/reference")]
    secure.dynsec.write_text(json.dumps(data))
    secure.broker.start()
    monkeypatch.setenv("CW_SRV_USER", "citywatch-server")
    monkeypatch.setenv("CW_SRV_PW", SERVER_PW)
    config = CitywatchConfig.model_validate({
        "site": "site-1",
        "mqtt": {"port": secure.broker.port, "protocol": "5", "username_env": "CW_SRV_USER",
                 "password_env": "CW_SRV_PW"},
        "server": {"database_url": f"sqlite:///{tmp_path}/db.sqlite", "client_id": "citywatch-server"},
    })  # fmt: skip
    store = Store(config.server.database_url)
    ingest = Ingest(config, store)
    ingest.start()
    try:
        assert ingest.subscribed.wait(10)
        edge = device(secure, "cam-1", "box-1")
        assert edge.publish("citywatch/site-1/cam-1/event/line_crossing", crossing(1).model_dump_json()) == "Success"
        wait_for(lambda: store.count_events() == 1, 10)
        assert "refused the reference-picture subscription" in caplog.text
        edge.close()
    finally:
        ingest.stop()
        store.close()
