"""Control messages from the server to the edges: committed watermarks, replay requests, pushed
camera configurations and reference-picture requests. The API gets a :class:`ControlChannel`
(``server.deps``), not the ingest.

A pushed configuration is retained (QoS 1): an edge offline at push time gets it when it connects,
and the next push (or a rollback, which pushes the older one again) replaces it."""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from paho.mqtt.client import MQTTMessageInfo

from citywatch.contract import ControlCommitted, ControlConfig, ControlReferencePicture, ControlReplay, Topics, utcnow
from server.ingest.health import IngestCounters
from server.ingest.transport import IngestTransport
from server.storage.store import Store

log = logging.getLogger(__name__)


class ControlChannel(Protocol):
    """What the API may do with the broker connection."""

    @property
    def connected(self) -> bool: ...

    def push_config(self, site_id: str, camera_id: str, camera: dict[str, Any], version: str) -> bool: ...

    def request_reference(self, site_id: str, camera_id: str, request_id: str, seconds: float) -> bool: ...


class ControlPublisher:
    """Publishes ``.../control/{committed,replay,config}`` through the ingest's connection."""

    def __init__(self, transport: IngestTransport, topics: Topics, store: Store, counters: IngestCounters) -> None:
        self._transport = transport
        self._topics = topics
        self._store = store
        self._counters = counters
        #: Last watermark published per camera.
        self.published: dict[str, int] = {}
        #: Monotonic time of the last replay request per camera.
        self.last_replay: dict[str, float] = {}
        self._last_publish: MQTTMessageInfo | None = None
        #: Cameras pushed a configuration their edge has not yet reported running.
        self.unconfirmed: set[str] = set()

    @property
    def connected(self) -> bool:
        return self._transport.client is not None and self._transport.connected

    def publish_committed(self, site_id: str, camera_id: str, seq: int) -> None:
        """Tell the edge everything up to ``seq`` is stored (retained, QoS 1: it survives restarts)."""
        msg = ControlCommitted(camera_id=camera_id, seq=seq)
        info = self._transport.publish(
            self._topics.control(site_id, camera_id, "committed"), msg.model_dump_json(), retain=True
        )
        if info is None:
            return
        self._last_publish = info
        self.published[camera_id] = seq

    def wait_published(self, timeout: float = 5.0) -> bool:
        """Wait until the broker acknowledged the latest committed publish (it is retained then)."""
        info = self._last_publish
        return True if info is None else self._transport.wait_for(info, timeout)

    def request_replay(self, site_id: str, camera_id: str, from_seq: int, to_seq: int | None) -> None:
        """Ask the edge to send ``from_seq .. to_seq`` again (None: everything from ``from_seq``)."""
        msg = ControlReplay(camera_id=camera_id, from_seq=from_seq, to_seq=to_seq)
        if self._transport.publish(self._topics.control(site_id, camera_id, "replay"), msg.model_dump_json()) is None:
            return
        self.last_replay[camera_id] = time.monotonic()
        self._counters.replay_requests += 1
        log.info("camera %s: asked the edge to replay seq %d..%s", camera_id, from_seq, to_seq)
        try:
            self._store.note_replay_request(camera_id, utcnow())
        except Exception:
            log.exception("recording the replay request of camera %s failed", camera_id)

    def push_config(self, site_id: str, camera_id: str, camera: dict[str, Any], version: str) -> bool:
        """Send a new camera configuration to its edge (QoS 1, retained: it reaches an edge that is offline
        now when it connects); False when not connected or the broker did not acknowledge it."""
        if not self.connected:
            return False
        msg = ControlConfig(camera_id=camera_id, config_version=version, camera=camera)
        topic = self._topics.control(site_id, camera_id, "config")
        info = self._transport.publish(topic, msg.model_dump_json(), retain=True)
        self.unconfirmed.add(camera_id)
        return info is not None and self._transport.wait_for(info, 5.0)

    def request_reference(self, site_id: str, camera_id: str, request_id: str, seconds: float) -> bool:
        """Ask the edge for one reference picture (QoS 1, not retained: an edge offline now never takes
        one later); False when not connected or the broker did not acknowledge it."""
        if not self.connected:
            return False
        msg = ControlReferencePicture(camera_id=camera_id, request_id=request_id, seconds=seconds)
        info = self._transport.publish(self._topics.control(site_id, camera_id, "reference_picture"),
                                       msg.model_dump_json())  # fmt: skip
        return info is not None and self._transport.wait_for(info, 5.0)
