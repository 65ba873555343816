"""Opening a camera's source, resuming a file where an earlier run's checkpoint left it.

A file source's position is checkpointed in the outbox with every frame's events (atomically) and
every ``checkpoint_every_s``. A restarted worker re-reads from ``resume_warmup_frames`` before the
checkpoint to warm the tracker up; the capture loop drops the results of frames at or before it
(:meth:`Resumed.covers`), so a kill -9 neither loses nor double-counts a crossing that was stored. A
file already read to its end is not read again (:class:`AlreadyRead`; delete the outbox's
``positions`` row, or change the file, to re-read it). Live sources never resume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from citywatch.config import CameraConfig, EdgeSourcesConfig
from edge.outbox import Outbox
from edge.sources import FileSource, LiveOptions, LiveSource, open_source

log = logging.getLogger(__name__)


class AlreadyRead(Exception):
    """A non-looping file that an earlier run read to its end (its checkpoint says so)."""

    def __init__(self, frame_index: int) -> None:
        super().__init__(f"file already read to its end (frame {frame_index}) by an earlier run")
        self.frame_index = frame_index


@dataclass(frozen=True)
class Resumed:
    """The checkpoint a file source restarted from: frames up to it were counted by an earlier run."""

    pass_no: int
    frame_index: int

    def covers(self, pass_no: int, frame_index: int) -> bool:
        """True for frames at or before the checkpoint (re-read only to warm the tracker up)."""
        return (pass_no, frame_index) <= (self.pass_no, self.frame_index)


def live_options(cfg: EdgeSourcesConfig) -> LiveOptions:
    return LiveOptions(
        open_timeout_s=cfg.open_timeout_s,
        stall_timeout_s=cfg.stall_timeout_s,
        reconnect_min_s=cfg.reconnect_min_s,
        reconnect_max_s=cfg.reconnect_max_s,
        buffer_frames=cfg.buffer_frames,
        rtsp_transport=cfg.rtsp_transport,
    )


def open_camera_source(
    camera: CameraConfig, cfg: EdgeSourcesConfig, outbox: Outbox
) -> tuple[FileSource | LiveSource, Resumed | None]:
    """The camera's source, positioned after the outbox's checkpoint when ``cfg.resume`` allows.

    Raises :class:`AlreadyRead` for a finished non-looping file, and the source's errors otherwise."""
    source = open_source(camera.source, realtime=camera.realtime, loop=camera.loop, live=live_options(cfg))
    if isinstance(source, LiveSource):
        return source, None
    if not cfg.resume:
        outbox.clear_position(camera.id)
        return source, None
    pos = outbox.position(camera.id)
    if pos is None or pos.source_key != source.source_key:
        return source, None
    if pos.ended and not camera.loop:
        source.close()
        raise AlreadyRead(pos.frame_index)
    resume_at = pos.frame_index + 1
    warm = max(0, resume_at - cfg.resume_warmup_frames)
    source.close()
    source = FileSource(
        camera.source, realtime=camera.realtime, loop=camera.loop, start_pass=pos.pass_no, start_index=warm
    )
    log.info(
        "camera %s: resuming %s at pass %d frame %d (re-reading from frame %d without events)",
        camera.id,
        source.source_key,
        pos.pass_no,
        resume_at,
        warm,
    )
    return source, Resumed(pos.pass_no, pos.frame_index)
