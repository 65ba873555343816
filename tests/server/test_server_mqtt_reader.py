"""The ingest's buffered MQTT reader: the same packets as paho's own decoder, however TCP cuts them,
and the same stored result through a real broker on the fast path and on paho's fallback."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers
from server_testkit import close_client, crossing, make_config, publisher, wait_for

import server.ingest.mqtt_reader as reader
from citywatch.contract import EventBatch
from server.ingest import Ingest
from server.ingest.mqtt_reader import IngestClient, Publish, decode_publish
from server.storage.store import Store


def publish_packet(topic: bytes, payload: bytes, *, qos: int, mid: int = 0, props: bytes | None = None,
                   dup: bool = False, retain: bool = False) -> bytes:  # fmt: skip
    """A PUBLISH as a broker sends it; ``props`` (properties as paho packs them, length first) makes
    it MQTT 5."""
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if props is not None:
        body += props
    body += payload
    command = mqtt.PUBLISH | (qos << 1) | (8 if dup else 0) | (1 if retain else 0)
    return bytes([command]) + VariableByteIntegers.encode(len(body)) + body


def v5_properties() -> bytes:
    p = Properties(PacketTypes.PUBLISH)
    p.MessageExpiryInterval = 60
    p.ContentType = "application/json"
    p.UserProperty = [("edge", "box-7"), ("fw", "1.2")]
    return p.pack()


NO_PROPERTIES = b"\x00"


CASES = [
    (b"cw/s1/cam-1/event/line_crossing", b'{"a": 1}', 1, 17, NO_PROPERTIES, False),  # v5, no properties
    (b"cw/s1/cam-1/event/batch", b"x" * 300, 1, 65535, v5_properties(), True),  # 2-byte length, properties
    (b"cw/s1/cam-1/status", b"", 0, 0, NO_PROPERTIES, False),  # QoS 0: no packet id, empty payload
    (b"t", "Biển số 29A-123.45".encode(), 1, 1, v5_properties(), False),
]


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
@pytest.mark.parametrize("case", CASES, ids=["plain", "properties", "qos0", "utf8"])
def test_publish_packets_decode_as_paho_decodes_them(case: tuple, v5: bool) -> None:
    topic, payload, qos, mid, props, dup = case
    packet = publish_packet(topic, payload, qos=qos, mid=mid, props=props if v5 else None, dup=dup)
    # the body starts after the command byte and the remaining-length bytes
    i = 1
    while packet[i] & 128:
        i += 1
    start = i + 1
    ours = decode_publish(packet[0], packet, start, len(packet), v5)
    paho = _packet.decode_publish(
        packet[0], packet[start:], mqtt.MQTTProtocolVersion.MQTTv5 if v5 else mqtt.MQTTProtocolVersion.MQTTv311
    )
    assert ours == (paho.topic, paho.payload, paho.mid, paho.qos) == (topic, payload, mid, qos)


class _Collect:
    def __init__(self) -> None:
        self.got: list[Publish] = []

    def __call__(self, publishes: list[Publish]) -> None:
        self.got.extend(publishes)


def _client(sink: _Collect, v5: bool = True) -> IngestClient:
    return IngestClient(
        CallbackAPIVersion.VERSION2,
        client_id="reader-test",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=True,
        on_publishes=sink,
    )


def _stream() -> tuple[bytes, list[Publish]]:
    expected = [  # (topic, payload, mid, qos)
        (b"a/1", b"one", 1, 1),
        (b"a/2", b"y" * 20000, 2, 1),  # 3-byte remaining length
        (b"a/3", b"", 0, 0),
        (b"a/4", "ổn định".encode(), 65535, 1),
    ]
    parts = [publish_packet(t, p, qos=q, mid=m, props=NO_PROPERTIES) for t, p, m, q in expected[:2]]
    parts.append(bytes([mqtt.PINGRESP, 0]))  # goes through paho's own handler between two PUBLISHes
    parts += [publish_packet(t, p, qos=q, mid=m, props=v5_properties()) for t, p, m, q in expected[2:]]
    return b"".join(parts), expected


@pytest.mark.parametrize("step", [1, 2, 3, 7, 100, 4096, 1 << 20])
def test_packets_are_reassembled_however_the_stream_is_cut(step: int) -> None:
    data, expected = _stream()
    sink = _Collect()
    client = _client(sink)
    buf = bytearray()
    for at in range(0, len(data), step):
        buf += data[at : at + step]
        assert client._handle_buffer(buf) == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert sink.got == expected
    assert buf == b""  # nothing left over, nothing handled twice


def test_every_cut_point_of_two_packets_gives_the_same_two_messages() -> None:
    data, expected = _stream()
    data = data[: len(publish_packet(b"a/1", b"one", qos=1, mid=1, props=NO_PROPERTIES))] + publish_packet(
        b"a/3", b"", qos=0, props=v5_properties()
    )
    for cut in range(len(data) + 1):
        sink = _Collect()
        client = _client(sink)
        buf = bytearray(data[:cut])
        client._handle_buffer(buf)
        buf += data[cut:]
        client._handle_buffer(buf)
        assert sink.got == [expected[0], expected[2]], cut


def test_a_malformed_packet_is_a_protocol_error_and_what_came_before_is_delivered() -> None:
    sink = _Collect()
    client = _client(sink)
    good = publish_packet(b"a/1", b"one", qos=1, mid=1, props=NO_PROPERTIES)
    too_long_length = bytes([mqtt.PUBLISH | 2, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
    assert client._handle_buffer(bytearray(good + too_long_length)) == MQTTErrorCode.MQTT_ERR_PROTOCOL
    assert sink.got == [(b"a/1", b"one", 1, 1)]
    topic_past_end = bytes([mqtt.PUBLISH | 2, 4]) + struct.pack("!H", 40) + b"ab"
    assert client._handle_buffer(bytearray(topic_past_end)) == MQTTErrorCode.MQTT_ERR_PROTOCOL


# --- through the real broker ------------------------------------------------------------------------


@pytest.fixture
def broker_ingest(
    mqtt_broker: tuple[str, int], sqlite_url: str, run_id: str
) -> Iterator[tuple[Ingest, Store, mqtt.Client]]:
    host, port = mqtt_broker
    store = Store(sqlite_url)
    ingest = Ingest(make_config(run_id=run_id, database_url=sqlite_url, host=host, port=port), store)
    pub = publisher(host, port, f"cw-pub-{run_id}")
    yield ingest, store, pub
    ingest.stop()
    close_client(pub)
    store.close()


def _publish_and_store(ingest: Ingest, store: Store, pub: mqtt.Client) -> None:
    ingest.start()
    assert ingest.subscribed.wait(10)
    t = ingest.topics
    singles = [crossing(i) for i in range(1, 201)]
    # 1000 events: one message over 256 KiB, more than one socket read
    big = EventBatch(events=[crossing(i) for i in range(201, 1201)])
    assert len(big.model_dump_json()) > reader._READ_SIZE
    for ev in singles:
        pub.publish(t.event("site-1", "cam-1", ev.kind), ev.model_dump_json(), qos=1)
    pub.publish(t.event("site-1", "cam-1", "batch"), big.model_dump_json(), qos=1).wait_for_publish(10)
    wait_for(lambda: store.count_events() == 1200, timeout=30)
    assert ingest.flush(10)
    assert {c["camera_id"]: c for c in store.list_cameras()}["cam-1"]["committed_seq"] == 1200
    assert ingest.counters.received == 201 and ingest.counters.dead_letters == 0


def test_the_installed_paho_takes_the_fast_path_and_a_big_message_arrives_whole(
    broker_ingest: tuple[Ingest, Store, mqtt.Client],
) -> None:
    ingest, store, pub = broker_ingest
    _publish_and_store(ingest, store, pub)
    assert isinstance(ingest.transport.client, IngestClient) and ingest.transport.client.fast_path


def test_without_the_paho_internals_it_needs_the_reader_falls_back_to_paho(
    broker_ingest: tuple[Ingest, Store, mqtt.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "_PAHO_INTERNALS", (*reader._PAHO_INTERNALS, "_not_in_any_paho"))
    ingest, store, pub = broker_ingest
    _publish_and_store(ingest, store, pub)
    assert ingest.transport.client is not None and not ingest.transport.client.fast_path
