"""One camera's MQTT connection: persistent session, last will, control subscription.

One client per camera (client id ``citywatch-<device>-<camera>``) so each camera has its own
persistent session and its own ``offline`` will, and a stuck camera cannot hold up another's acks.
The network runs on paho's own thread (``loop_start``); ``connect_async`` means a broker that is
down at start neither blocks nor crashes the edge: paho keeps retrying (1 s .. 30 s back-off).
``publish`` only hands the message to paho and returns at once, so it never blocks the vision loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.client import ConnectFlags, DisconnectFlags
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from citywatch.config import MQTTConfig
from citywatch.contract import (
    AnyControl,
    StatusPayload,
    Topics,
    parse_control,
    utcnow,
)
from citywatch.mqtt import build_client, connect_async, guard

log = logging.getLogger(__name__)

Control = AnyControl

#: MQTT v5 DISCONNECT reason "Session taken over": another client connected with our client id.
SESSION_TAKEN_OVER = 142
#: Dropped this many times within FLAP_WINDOW_S, each time less than FLAP_CONNECTION_S after connecting.
FLAP_COUNT, FLAP_WINDOW_S, FLAP_CONNECTION_S = 3, 60.0, 5.0


class MqttLink:
    """MQTT client of one camera: publish events, receive control messages."""

    def __init__(
        self,
        mqtt_config: MQTTConfig,
        *,
        site: str,
        camera_id: str,
        device_id: str,
        on_control: Callable[[Control], None] | None = None,
        on_connect: Callable[[bool], None] | None = None,
        max_inflight: int = 200,
        reconnect_max_s: float = 30.0,
    ) -> None:
        self.config = mqtt_config
        self.site = site
        self.camera_id = camera_id
        self.device_id = device_id
        self.topics = Topics(mqtt_config.topic_prefix)
        self.control_filter = self.topics.camera_control(site, camera_id)  # what this camera subscribes to
        self.client_id = f"citywatch-{device_id}-{camera_id}"
        self._on_control = on_control
        self._on_connect_cb = on_connect
        self._connected = threading.Event()
        self._subscribed = threading.Event()  # the broker granted the control subscription
        self._started = False
        self.connects = 0
        self.disconnects = 0
        self.invalid_controls = 0
        #: messages the broker delivered on topics this camera never subscribed to (a broker routing fault)
        self.misrouted = 0
        self.last_error: str | None = None
        self._connected_at = 0.0
        self._short_disconnects: list[float] = []
        self._unacked: list[mqtt.MQTTMessageInfo] = []
        self._unacked_lock = threading.Lock()

        self.v5 = mqtt_config.protocol == "5"
        self.client = build_client(
            mqtt_config,
            client_id=self.client_id,
            credentials=mqtt_config.credentials(camera_id),
            client_class=mqtt.Client,
            reconnect_max_s=reconnect_max_s,
        )
        self.client.will_set(self.status_topic, self._status("offline"), qos=1, retain=True)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.on_connect = guard(self._handle_connect, logger=log)
        self.client.on_disconnect = guard(self._handle_disconnect, logger=log)
        self.client.on_message = guard(self._handle_message, logger=log)
        self.client.on_subscribe = guard(self._handle_subscribe, logger=log)

    @property
    def status_topic(self) -> str:
        return self.topics.status(self.site, self.camera_id)

    def event_topic(self, kind: str) -> str:
        return self.topics.event(self.site, self.camera_id, kind)

    def _status(self, state: str) -> str:
        return StatusPayload(
            state=state, camera_id=self.camera_id, device_id=self.device_id, ts=utcnow()
        ).model_dump_json()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; returns at once even when the broker is down."""
        connect_async(self.client, self.config)
        self._started = True

    def stop(self, timeout: float = 2.0) -> None:
        """Publish the retained ``offline`` status (a clean exit sends no will) and disconnect."""
        if not self._started:
            return
        self._started = False
        if self._connected.is_set():
            try:
                info = self.client.publish(self.status_topic, self._status("offline"), qos=1, retain=True)
                info.wait_for_publish(timeout)
            except Exception as exc:  # not connected any more, or timed out: the will covers it
                log.warning("camera %s: could not publish offline status: %s", self.camera_id, exc)
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def wait_subscribed(self, timeout: float) -> bool:
        """Connected and subscribed to the control topic: a control message published now arrives."""
        return self._subscribed.wait(timeout)

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> bool:
        """Hand a message to paho (non-blocking); False if it was not accepted."""
        if not self._connected.is_set():
            return False
        try:
            info = self.client.publish(topic, payload, qos=qos, retain=retain)
        except Exception as exc:
            log.warning("camera %s: publish to %s failed: %s", self.camera_id, topic, exc)
            return False
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        if qos > 0:
            with self._unacked_lock:
                self._unacked = [i for i in self._unacked if not i.is_published()]
                self._unacked.append(info)
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until the broker has acknowledged what was handed to paho (PUBACK, not delivery)."""
        deadline = time.monotonic() + timeout
        with self._unacked_lock:
            pending = list(self._unacked)
        for info in pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                info.wait_for_publish(remaining)
            except (RuntimeError, ValueError):
                return False
        return all(i.is_published() for i in pending)

    # --- callbacks (paho network thread) ---------------------------------------------------

    def _handle_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.last_error = f"connect refused: {reason}"
            log.error(
                "camera %s: MQTT connect to %s:%s refused: %s (user %r, client id %r: the broker's credential "
                "binds both; see `citywatch broker add-device`)",
                self.camera_id,
                self.config.host,
                self.config.port,
                reason,
                self.client.username,
                self.client_id,
            )
            return
        self.connects += 1
        self._connected_at = time.monotonic()
        session_present = bool(getattr(flags, "session_present", False))
        log.info(
            "camera %s: MQTT connected to %s:%s (session present: %s)",
            self.camera_id,
            self.config.host,
            self.config.port,
            session_present,
        )
        self._subscribed.clear()
        client.subscribe(self.control_filter, qos=1)
        client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
        self._connected.set()
        if self._on_connect_cb is not None:
            self._on_connect_cb(session_present)

    def _handle_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, reasons: list[ReasonCode], properties: Properties | None
    ) -> None:
        if any(getattr(r, "is_failure", False) for r in reasons):
            log.error("camera %s: the broker refused the control subscription: %s", self.camera_id, reasons)
            return
        self._subscribed.set()

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        self._subscribed.clear()
        now = time.monotonic()
        short_lived = was and now - self._connected_at < FLAP_CONNECTION_S
        if was:
            self.disconnects += 1
        code = getattr(reason, "value", reason)
        if short_lived:
            self._short_disconnects = [t for t in self._short_disconnects if now - t < FLAP_WINDOW_S] + [now]
        flapping = len(self._short_disconnects) >= FLAP_COUNT
        if code == SESSION_TAKEN_OVER or (flapping and self._started):
            # MQTT v5 brokers may say so (0x8E); Mosquitto 2.0 just closes the socket, so a client
            # that keeps being dropped seconds after connecting is taken to be the same symptom.
            self._short_disconnects.clear()
            log.error(
                "camera %s: MQTT SESSION TAKEN OVER%s: another client is most likely connected with client id "
                "%r. Two edge processes are configured with the same device_id and camera id; they will keep "
                "kicking each other off. Stop one of them.",
                self.camera_id,
                "" if code == SESSION_TAKEN_OVER else " (connection keeps dropping right after connect)",
                self.client_id,
            )
            self.last_error = "session taken over"
        elif self._started:
            log.warning("camera %s: MQTT disconnected (%s); paho reconnects in the background", self.camera_id, reason)

    def _handle_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if not mqtt.topic_matches_sub(self.control_filter, msg.topic):
            # not a control message at all: seen once from the embedded amqtt broker at start-up (another
            # camera's retained status); counted apart so it does not read as a server sending bad controls
            self.misrouted += 1
            log.info("camera %s: ignoring a message on %s, a topic it did not subscribe to (%d so far)",
                     self.camera_id, msg.topic, self.misrouted)
            return
        if not msg.payload:
            return  # a retained control message cleared by the server
        try:
            control = parse_control(bytes(msg.payload))
        except (ValidationError, ValueError) as exc:
            self.invalid_controls += 1
            log.warning(
                "camera %s: ignoring invalid control message on %s: %s",
                self.camera_id,
                msg.topic,
                str(exc).splitlines()[0] if str(exc) else exc,
            )
            return
        if control.camera_id != self.camera_id:
            self.invalid_controls += 1
            log.warning(
                "camera %s: ignoring control message for camera %s on %s",
                self.camera_id,
                control.camera_id,
                msg.topic,
            )
            return
        if self._on_control is not None:
            self._on_control(control)
