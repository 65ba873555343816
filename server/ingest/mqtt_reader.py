"""The ingest's MQTT client: paho, with a receive path built for a subscriber that takes thousands of
QoS 1 messages a second.

Why: paho reads a packet with three or more ``recv`` calls (one byte of command, the length byte by
byte, then the body), and turns every PUBLISH into an ``MQTTMessage`` with a ``Properties`` object, a
``Condition`` and a topic-filter match before the callback runs: about half of what the ingest process
spends per message (``bench/ingest_throughput.py`` prints the cost per message). This client
reads what the socket holds in one call, cuts every complete packet out of that buffer, and hands the
PUBLISH packets of one read to ``on_publishes`` as ``(topic, payload, mid, qos)`` tuples in one call.
Every other packet (CONNACK, SUBACK, PUBACK of our own publishes, PINGRESP, DISCONNECT) and QoS 2
goes through paho's own handlers unchanged, so connecting, keep-alive, reconnecting and publishing
are paho's.

It relies on paho 2.x internals (``_sock_recv``, ``_in_packet``, ``_packet_handle``); where they are
missing it says so once in the log and falls back to paho's reader, which then delivers through
``on_message``. The tests check the fast path is in use with the installed paho.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

if TYPE_CHECKING:
    from paho.mqtt.client import _InPacket

log = logging.getLogger(__name__)

#: (topic as sent, payload, packet id, QoS) of one PUBLISH.
Publish = tuple[bytes, bytes, int, int]

_READ_SIZE = 256 * 1024
_U16 = struct.Struct("!H")
_PAHO_INTERNALS = ("_sock_recv", "_packet_handle", "_in_packet", "_msgtime_mutex", "_last_bytes_received")


class MalformedPublish(ValueError):
    pass


def _fresh_in_packet() -> _InPacket:
    """paho's reader state between packets."""
    return {
        "command": 0,
        "have_remaining": 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": 0,
        "packet": bytearray(b""),
        "to_process": 0,
        "pos": 0,
    }


def _whole_packet(command: int, length: int, body: bytes) -> _InPacket:
    """paho's reader state holding one whole packet, as its own reader leaves it for the handler."""
    return {**_fresh_in_packet(), "command": command, "have_remaining": 1, "remaining_length": length,
            "packet": bytearray(body)}  # fmt: skip


def read_varint(buf: bytes | bytearray, p: int, end: int) -> tuple[int, int] | None:
    """MQTT's variable byte integer at ``buf[p:end]``: ``(value, position after it)``, or None when
    ``end`` comes first; more than 4 bytes is :class:`MalformedPublish`."""
    value = 0
    for shift in (0, 7, 14, 21):
        if p >= end:
            return None
        b = buf[p]
        p += 1
        value += (b & 127) << shift
        if not b & 128:
            return value, p
    raise MalformedPublish("variable byte integer longer than 4 bytes")


def decode_publish(command: int, buf: bytes | bytearray, start: int, end: int, v5: bool) -> Publish:
    """One PUBLISH body ``buf[start:end]``. MQTT 5 properties are skipped: the ingest reads none, and
    without a Topic Alias Maximum in CONNECT the broker may not replace topics by aliases."""
    qos = (command & 0x06) >> 1
    if end - start < 2:
        raise MalformedPublish("PUBLISH shorter than its topic length")
    (tlen,) = _U16.unpack_from(buf, start)
    p = start + 2 + tlen
    topic = bytes(buf[start + 2 : p])
    mid = 0
    if qos:
        if p + 2 > end:
            raise MalformedPublish("PUBLISH ends inside its packet id")
        (mid,) = _U16.unpack_from(buf, p)
        p += 2
    if v5:
        props = read_varint(buf, p, end)
        if props is None:
            raise MalformedPublish("PUBLISH ends inside its property length")
        plen, p = props
        p += plen
    if p > end:
        raise MalformedPublish("PUBLISH header longer than the packet")
    return topic, bytes(buf[p:end]), mid, qos


class IngestClient(mqtt.Client):
    """A paho client whose PUBLISH packets (QoS 0 and 1) arrive in bulk at ``on_publishes``."""

    def __init__(self, *args: Any, on_publishes: Callable[[list[Publish]], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_publishes = on_publishes
        self._rbuf = bytearray()
        self._rbuf_sock: object = None
        missing = [name for name in _PAHO_INTERNALS if not hasattr(self, name)]
        self.fast_path = not missing
        if missing:
            log.warning("paho-mqtt %s lacks %s: using its own (slower) receive path", paho.mqtt.__version__, missing)

    def _packet_read(self) -> MQTTErrorCode:
        if not self.fast_path:
            return super()._packet_read()
        sock = self._sock
        if sock is not self._rbuf_sock:  # a new connection: nothing of the old one's stream counts
            self._rbuf.clear()
            self._rbuf_sock = sock
        try:
            data = self._sock_recv(_READ_SIZE)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as err:  # TimeoutError and ConnectionError included
            self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if not data:
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        buf = self._rbuf
        buf += data
        try:
            return self._handle_buffer(buf)
        finally:  # for paho's keep-alive, as its own reader does after each packet
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()

    def _handle_buffer(self, buf: bytearray) -> MQTTErrorCode:
        """Handle every complete packet in ``buf`` and keep the incomplete rest."""
        n = len(buf)
        pos = 0
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        v5 = self._protocol == mqtt.MQTTv5
        publishes: list[Publish] = []
        try:
            while n - pos >= 2:
                command = buf[pos]
                try:
                    remaining = read_varint(buf, pos + 1, n)
                except MalformedPublish:
                    self._easy_log(mqtt.MQTT_LOG_ERR, "remaining length longer than 4 bytes")
                    return MQTTErrorCode.MQTT_ERR_PROTOCOL
                if remaining is None:
                    return rc  # the length itself is not complete yet
                length, i = remaining
                end = i + length
                if end > n:
                    return rc  # body not complete yet
                if command & 0xF0 == mqtt.PUBLISH and command & 0x06 != 0x04:
                    try:
                        publishes.append(decode_publish(command, buf, i, end, v5))
                    except MalformedPublish as exc:
                        self._easy_log(mqtt.MQTT_LOG_ERR, "malformed PUBLISH: %s", exc)
                        return MQTTErrorCode.MQTT_ERR_PROTOCOL
                    pos = end
                    continue
                if publishes:  # keep the broker's order: deliver before e.g. a DISCONNECT
                    self._deliver(publishes)
                    publishes = []
                rc = self._handle_other(command, bytes(buf[i:end]), length)
                pos = end
                if rc:
                    return rc
            return rc
        finally:
            if publishes:
                self._deliver(publishes)
            del buf[:pos]

    def _deliver(self, publishes: list[Publish]) -> None:
        self.on_publishes(publishes)
        if not self._manual_ack:
            for _topic, _payload, mid, qos in publishes:
                if qos == 1:
                    self._send_puback(mid)

    def _handle_other(self, command: int, body: bytes, length: int) -> MQTTErrorCode:
        self._in_packet = _whole_packet(command, length, body)
        try:
            return self._packet_handle()
        except MalformedPacket as exc:
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        finally:
            self._in_packet = _fresh_in_packet()
