"""The configuration a server pushed to a camera, kept across restarts (``edge.persist_config``).

Stored in the outbox database (so it survives kill -9 and power loss like the events) with the
version of the file's configuration it replaced: a restart runs it again, unless the file's own
configuration of that camera changed since (then the file wins and the pushed one is forgotten).
A pushed configuration never changes how the source is read (source, realtime, loop): those need a
restart and always come from the file.
"""

from __future__ import annotations

import logging

from citywatch.config import CameraConfig, ConfigError, validate_camera
from edge.outbox import Outbox

log = logging.getLogger(__name__)


def keep_source(new: CameraConfig, running: CameraConfig) -> CameraConfig:
    """``new`` reading the source the way ``running`` does (source, realtime, loop)."""
    return new.model_copy(update={"source": running.source, "realtime": running.realtime, "loop": running.loop})


def changes_source(new: CameraConfig, running: CameraConfig) -> bool:
    return (new.source, new.realtime, new.loop) != (running.source, running.realtime, running.loop)


class PushedConfigs:
    """Saves and restores one edge's pushed camera configurations; a no-op when ``enabled`` is false."""

    def __init__(self, outbox: Outbox, *, enabled: bool) -> None:
        self.outbox = outbox
        self.enabled = enabled

    def save(self, new: CameraConfig, file_camera: CameraConfig) -> None:
        """Keep ``new`` as what camera ``new.id`` runs instead of the file's ``file_camera``."""
        if self.enabled:
            self.outbox.save_config(
                new.id, new.config_version(), file_camera.config_version(), new.model_dump(mode="json")
            )

    def restore(self, file_camera: CameraConfig) -> CameraConfig | None:
        """The pushed configuration an earlier run applied to this camera, or None to run the file's."""
        if not self.enabled:
            return None
        saved = self.outbox.applied_config(file_camera.id)
        if saved is None:
            return None
        version, base, data = saved
        if base != file_camera.config_version():
            log.warning(
                "camera %s: the configuration file changed since configuration %s was pushed; the file wins",
                file_camera.id,
                version,
            )
            self.outbox.clear_config(file_camera.id)
            return None
        try:
            new = validate_camera(data)
        except ConfigError as exc:
            log.error("camera %s: persisted configuration %s is invalid, ignored: %s", file_camera.id, version, exc)
            return None
        log.info("camera %s: running pushed configuration %s (persisted)", file_camera.id, version)
        return keep_source(new, file_camera)
