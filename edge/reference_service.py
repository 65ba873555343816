"""One camera's reference-picture requests: sample frames, build the picture, publish it once.

Only when ``edge.reference_picture.enabled``; a request otherwise is logged and ignored. The sender
thread starts a request (:meth:`ReferenceService.request`) and, once the vision thread has offered
enough frames (:meth:`offer`), builds the picture on a short-lived thread (a median and one detector
run must not hold up events) and publishes it on ``.../reference``, QoS 0, not retained: a broker
queues QoS 0 for no offline session, so the picture is never written to the broker's persistence
file either (a lost one is asked for again). The frames and the picture live only in memory: nothing
is written to disk.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable

import numpy as np

from citywatch.config import EdgeReferencePictureConfig
from citywatch.contract import ControlReferencePicture, ReferencePicture, utcnow
from edge.reference_picture import Detect, FrameSampler, build_reference

log = logging.getLogger(__name__)

#: ``publish(topic, payload) -> handed to the client`` (:meth:`edge.mqtt_link.MqttLink.publish`).
Publish = Callable[[str, str], bool]


class ReferenceService:
    """Takes at most one reference picture at a time for one camera."""

    def __init__(
        self,
        config: EdgeReferencePictureConfig,
        *,
        camera_id: str,
        site_id: str,
        topic: str,
        publish: Publish,
        detect: Detect | None,
    ) -> None:
        self.config = config
        self.camera_id = camera_id
        self.site_id = site_id
        self.topic = topic
        self._publish = publish
        self._detect = detect
        self.sampler: FrameSampler | None = None
        self.sent = 0
        self.refused = 0
        self._builder: threading.Thread | None = None

    def request(self, control: ControlReferencePicture) -> bool:
        """Start sampling for ``control``; False (logged) when this edge does not send pictures."""
        if not self.config.enabled:
            self.refused += 1
            log.warning(
                "camera %s: reference picture %s asked, but edge.reference_picture.enabled is false: nothing sent",
                self.camera_id,
                control.request_id,
            )
            return False
        if self._detect is None:
            self.refused += 1
            log.error("camera %s: no detector to blur a reference picture with: nothing sent", self.camera_id)
            return False
        if self.sampler is not None:
            log.info("camera %s: reference picture %s replaces %s, not sent yet", self.camera_id,
                     control.request_id, self.sampler.request_id)  # fmt: skip
        self.sampler = FrameSampler(control.request_id, control.seconds, self.config.samples, self.config.max_side)
        log.info("camera %s: taking reference picture %s over %.0f s", self.camera_id, control.request_id,
                 control.seconds)  # fmt: skip
        return True

    def offer(self, image: np.ndarray) -> None:
        """The vision thread's frame (a time check unless a sample is due)."""
        sampler = self.sampler
        if sampler is not None:
            sampler.offer(image)

    def poll(self) -> None:
        """The sender thread's turn: build and publish once enough frames are in."""
        sampler = self.sampler
        if sampler is None:
            return
        if sampler.expired():
            self.sampler = None
            log.error("camera %s: reference picture %s: too few frames (source down?)", self.camera_id,
                      sampler.request_id)  # fmt: skip
            return
        if not sampler.ready():
            return
        self.sampler = None
        frames = sampler.take()
        self._builder = threading.Thread(
            target=self._build_and_publish, args=(sampler.request_id, frames, sampler.frame_size),
            name=f"reference-{self.camera_id}",
            daemon=True,
        )  # fmt: skip
        self._builder.start()

    def wait_idle(self, timeout: float) -> bool:
        builder = self._builder
        if builder is not None:
            builder.join(timeout)
        return self.sampler is None and (builder is None or not builder.is_alive())

    def _build_and_publish(
        self, request_id: str, frames: list[np.ndarray], frame_size: tuple[int, int] | None = None
    ) -> None:
        detect = self._detect
        if detect is None:
            return
        try:
            ref = build_reference(frames, detect, vehicle_lower_fraction=self.config.vehicle_lower_fraction)
            msg = ReferencePicture(
                camera_id=self.camera_id,
                site_id=self.site_id,
                request_id=request_id,
                taken_at=utcnow(),
                width=ref.width,
                height=ref.height,
                frames_used=ref.frames_used,
                blurred_regions=ref.blurred_regions,
                frame_width=frame_size[0] if frame_size else None,
                frame_height=frame_size[1] if frame_size else None,
                jpeg_base64=base64.b64encode(ref.jpeg).decode("ascii"),
            )
        except Exception:
            log.exception("camera %s: reference picture %s could not be built: nothing sent", self.camera_id,
                          request_id)  # fmt: skip
            return
        if self._publish(self.topic, msg.model_dump_json()):
            self.sent += 1
            log.info(
                "camera %s: sent reference picture %s (%dx%d, %d frames, %d regions blurred, %d bytes)",
                self.camera_id, request_id, ref.width, ref.height, ref.frames_used, ref.blurred_regions,
                len(ref.jpeg),
            )  # fmt: skip
        else:
            log.error("camera %s: reference picture %s could not be handed to MQTT", self.camera_id, request_id)
