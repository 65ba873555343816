"""What the server tells one camera: ``committed`` (delete what it stored), ``replay`` (publish a range
again), ``config`` (run a pushed configuration) and ``reference_picture`` (take one, see
:mod:`edge.reference_service`). Applied on the sender thread, in arrival order.

A committed watermark beyond the last seq this outbox ever assigned means the outbox was reset or
another edge uses this camera id: the kept events are renumbered after it rather than deleted unsent.
A pushed configuration changes lines, lanes and zones at once (the pipeline keeps its tracker) and the
new ``config_version`` is carried by the next events and heartbeats; it never changes how the source
is read (that needs a restart), and it is kept across restarts (:mod:`edge.pushed_config`). The server
publishes it retained, so an edge offline at push time gets it on reconnecting; the version it already
runs is not applied again.
"""

from __future__ import annotations

import logging

from citywatch.config import ConfigError, validate_camera
from citywatch.contract import AnyControl, ControlCommitted, ControlConfig, ControlReferencePicture, ControlReplay
from edge.camera_state import CameraState
from edge.outbox import Outbox
from edge.pushed_config import PushedConfigs, changes_source, keep_source
from edge.reference_service import ReferenceService
from edge.sender import Sender
from edge.tamper import TamperDetector

log = logging.getLogger(__name__)

Control = AnyControl


class ControlHandler:
    """Applies one camera's control messages to its outbox, sender and running configuration."""

    def __init__(
        self,
        state: CameraState,
        *,
        outbox: Outbox,
        sender: Sender,
        pushed: PushedConfigs,
        tamper: TamperDetector,
        reference: ReferenceService | None = None,
    ) -> None:
        self.state = state
        self.outbox = outbox
        self.sender = sender
        self.pushed = pushed
        self.tamper = tamper
        self.reference = reference

    def handle(self, control: Control) -> None:
        if isinstance(control, ControlCommitted):
            self.committed(control.seq)
        elif isinstance(control, ControlReplay):
            self.replay(control.from_seq, control.to_seq)
        elif isinstance(control, ControlReferencePicture):
            if self.reference is None:
                log.warning("camera %s: reference pictures are not wired on this edge: ignored", self.state.id)
            else:
                self.reference.request(control)
        else:
            self.apply_config(control)

    def committed(self, seq: int) -> None:
        """The server stored every event up to ``seq``: delete them (or renumber, see the module docstring)."""
        cid, outbox = self.state.id, self.outbox
        last = outbox.last_seq(cid)
        if seq > last:
            moved = outbox.rebase(cid, seq)
            log.error(
                "camera %s: the server has committed up to seq %d but this outbox only ever assigned up to %d: "
                "the outbox was reset or another edge uses camera id %s. Renumbered %d kept events after %d "
                "so none is lost.",
                cid,
                seq,
                last,
                cid,
                moved,
                seq,
            )
        else:
            was = outbox.committed_seq(cid)
            if seq < was:
                log.warning(
                    "camera %s: committed watermark went back to %d (was %d): server store reset?", cid, seq, was
                )
            deleted = outbox.commit_up_to(cid, seq)
            log.debug("camera %s: committed %d, deleted %d", cid, seq, deleted)
        self.state.counters.committed_seq = seq

    def replay(self, from_seq: int, to_seq: int | None) -> None:
        first = self.outbox.first_seq(self.state.id)
        if first is None or from_seq < first:
            log.warning(
                "camera %s: replay from seq %d asked, but the outbox keeps only from %s (the rest was committed)",
                self.state.id,
                from_seq,
                first,
            )
        self.sender.queue_replay(from_seq, to_seq)

    def apply_config(self, control: ControlConfig) -> bool:
        """Validate and run a pushed configuration; False (and counted) when it is rejected. The version
        already running (a retained configuration delivered again on reconnecting) is left as it is."""
        st = self.state
        data = dict(control.camera)
        data.setdefault("version", control.config_version)
        try:
            new = validate_camera(data)
        except ConfigError as exc:
            st.counters.config_rejected += 1
            log.error("camera %s: rejected pushed configuration %s: %s", st.id, control.config_version, exc)
            return False
        if new.id != st.id:
            st.counters.config_rejected += 1
            log.error("camera %s: rejected pushed configuration for camera id %r", st.id, new.id)
            return False
        if changes_source(new, st.camera):
            log.warning(
                "camera %s: pushed source/realtime/loop changes need a restart; keeping the current source", st.id
            )
            new = keep_source(new, st.camera)
        if new == st.camera:
            log.debug("camera %s: pushed configuration %s runs already", st.id, control.config_version)
            return True
        st.run_config(new)
        self.tamper.reset()
        try:
            self.pushed.save(new, st.file_camera)
        except Exception:
            log.exception("camera %s: pushed configuration applied but not persisted", st.id)
        st.counters.config_applied += 1
        log.info("camera %s: applied pushed configuration %s", st.id, new.config_version())
        st.heartbeat_now.set()
        return True
