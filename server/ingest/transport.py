"""The ingest's MQTT connection: the only ingest code that knows paho, its internals included.

It connects (persistent session, so that what was not acknowledged is redelivered), subscribes to every
camera's events, status and reference pictures, hands the PUBLISH packets of each socket read to one callback, sends the
PUBACKs the writer asks for after its commit (manual acknowledgement), and publishes control messages.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.client import ConnectFlags, DisconnectFlags, MQTTMessage, MQTTMessageInfo
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from citywatch.config import CitywatchConfig
from citywatch.contract import Topics
from citywatch.mqtt import build_client, connect_async, guard, is_v5
from server.ingest.messages import Received
from server.ingest.mqtt_reader import IngestClient, Publish

log = logging.getLogger(__name__)

#: A successful PUBACK without properties: 4 bytes in MQTT 3.1.1 and 5, as paho writes it.
_PUBACK = struct.Struct("!BBH")


class IngestTransport:
    """One paho client (:class:`IngestClient`, manual acknowledgements) and its connection state."""

    def __init__(
        self,
        config: CitywatchConfig,
        topics: Topics,
        on_publishes: Callable[[list[Publish]], None],
        stopping: threading.Event,
    ) -> None:
        self.config = config
        self.topics = topics
        self._on_publishes = on_publishes
        self._stopping = stopping
        self.connected = False
        #: Set once the broker granted the subscriptions of the current connection.
        self.subscribed = threading.Event()
        #: Counts connections: a packet id of an earlier one may name another message now.
        self._generation = 0
        self._lock = threading.Lock()
        self.client: IngestClient | None = None
        #: Packet id of the reference-picture SUBSCRIBE (refused by an older broker file: not fatal).
        self._references_mid: int | None = None
        self._events_subscribed = False

    @property
    def generation(self) -> int:
        """The current connection (read on paho's thread, which alone changes it)."""
        return self._generation

    def start(self) -> None:
        """Connect in the background (the broker may come later)."""
        m = self.config.mqtt
        client = self.client = build_client(
            m,
            client_id=self.config.server.client_id,
            credentials=m.credentials(),
            client_class=IngestClient,
            manual_ack=True,
            on_publishes=guard(self._on_publishes, logger=log),
        )
        client.on_connect = guard(self._on_connect, logger=log)
        client.on_disconnect = guard(self._on_disconnect, logger=log)
        client.on_message = guard(self._on_message, logger=log)
        client.on_subscribe = guard(self._on_subscribe, logger=log)
        connect_async(client, m)
        log.info(
            "ingest connecting to mqtt://%s:%d (MQTT %s) as %s, prefix %s",
            m.host,
            m.port,
            m.protocol,
            self.config.server.client_id,
            self.topics.prefix,
        )

    def stop(self) -> None:
        client = self.client
        if client is not None:
            client.disconnect()
            client.loop_stop()
        self.client = None
        self.connected = False

    # --- the writer's side ---------------------------------------------------------------------------

    def ack(self, batch: Sequence[Received]) -> None:
        """Acknowledge the QoS 1 messages of ``batch`` received on the current connection.

        A packet id from an earlier connection may now name another message: the broker redelivers the
        old one anyway, and the database de-duplicates it by event_id."""
        client = self.client
        if client is None:
            return
        with self._lock:
            generation = self._generation
        current = [m for m in batch if m.qos > 0 and m.generation == generation]
        queue_packet = getattr(client, "_packet_queue", None)
        if queue_packet is None or any(m.qos != 1 for m in current):
            for m in current:
                client.ack(m.mid, m.qos)
        elif current:
            # All of the batch's PUBACKs as one write. ``client.ack`` queues each one separately: a
            # wake-up of paho's thread and a send() per message, a cost the broker's side does not need.
            queue_packet(mqtt.PUBACK, b"".join(_PUBACK.pack(mqtt.PUBACK, 2, m.mid) for m in current), 0, 0)

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> MQTTMessageInfo | None:
        """Hand a QoS 1 message to paho; None when not started."""
        client = self.client
        if client is None:
            return None
        return client.publish(topic, payload, qos=1, retain=retain)

    @staticmethod
    def wait_for(info: MQTTMessageInfo, timeout: float) -> bool:
        """Whether the broker acknowledged ``info``'s message within ``timeout``."""
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(timeout)
        return info.is_published()

    # --- paho's thread -------------------------------------------------------------------------------

    def _subscriptions(self, filters: list[str] | None = None) -> list[str]:
        filters = filters or [self.topics.all_events(), self.topics.all_status()]
        group = self.config.mqtt.shared_group
        if group:
            if is_v5(self.config.mqtt):
                filters = [f"$share/{group}/{f}" for f in filters]
            else:
                log.warning("mqtt.shared_group is ignored with MQTT 3.1.1 (shared subscriptions need v5)")
        return filters

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("MQTT connection refused: %s", reason_code)
            return
        with self._lock:
            self._generation += 1
        sock = client.socket()
        if isinstance(sock, socket.socket):
            # paho leaves Nagle on: a committed publish queued behind PUBACKs would wait ~40 ms.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connected = True
        subs = self._subscriptions()
        self._events_subscribed = False
        client.subscribe([(t, 1) for t in subs])
        # apart: a broker file made before the reference picture refuses it, and events must still flow
        references = self._subscriptions([self.topics.all_references()])
        self._references_mid = client.subscribe([(t, 1) for t in references])[1]
        log.info("MQTT connected (session present: %s); subscribed to %s", flags.session_present, subs + references)

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _mid: int,
        reason_codes: list[ReasonCode],
        _props: Properties | None,
    ) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if _mid == self._references_mid:  # acknowledged after the events' (the broker answers in order)
            if failed:
                log.warning(
                    "the broker refused the reference-picture subscription (%s): reference pictures cannot "
                    "arrive; add the .../reference topics to the server's role (citywatch broker add-server "
                    "--replace) and restart the broker", failed[0],
                )  # fmt: skip
            if self._events_subscribed:
                self.subscribed.set()
            return
        for rc in failed:
            log.error("MQTT subscription refused: %s", rc)
        self._events_subscribed = not failed

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: DisconnectFlags,
        reason_code: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self.connected = False
        self.subscribed.clear()
        if not self._stopping.is_set():
            log.warning("MQTT disconnected (%s); reconnecting", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: MQTTMessage) -> None:
        """paho's own delivery: only where :class:`IngestClient` cannot take the fast path."""
        self._on_publishes([(msg._topic, bytes(msg.payload), msg.mid, msg.qos)])
