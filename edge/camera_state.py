"""What one camera's two threads share: the configuration and pipeline it runs, its source's state,
its counters and the events that wake the sender.

The vision thread owns the pipeline (it builds a fresh one at each pass) and the sender thread may
reconfigure it (a pushed configuration): both hold ``pipeline_lock`` while they touch it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from citywatch.config import CameraConfig
from citywatch.contract import SourceState
from edge.counters import CameraCounters
from edge.frame_events import Envelope
from edge.vision_port import PipelineLike

log = logging.getLogger(__name__)


class CameraState:
    """One camera's shared state; ``file_camera`` is its configuration as in the file (base of pushes)."""

    def __init__(self, camera: CameraConfig, site_id: str, fallback_model_version: Callable[[], str]) -> None:
        self.id = camera.id
        self.site_id = site_id
        self.file_camera = camera
        self.camera = camera
        self.pipeline: PipelineLike | None = None
        self.pipeline_lock = threading.Lock()
        self.source_state: SourceState = "starting"
        self.message: str | None = None
        self.fps: float | None = None
        self.tamper_signs: list[str] = []
        self.counters = CameraCounters()
        #: the sender has something to do (events, controls, a state change)
        self.wake = threading.Event()
        #: a state change: the sender appends a heartbeat at once instead of at its next period
        self.heartbeat_now = threading.Event()
        self._fallback_model_version = fallback_model_version

    @property
    def model_version(self) -> str:
        """The running pipeline's model, else the worker's detector's (before the first frame)."""
        p = self.pipeline
        return str(p.model_version if p is not None else self._fallback_model_version())[:128]

    def envelope(self) -> Envelope:
        return Envelope(self.id, self.site_id, self.camera.config_version(), self.model_version)

    def report(self, state: SourceState, message: str | None) -> None:
        """The source (or a thread) changed state: record it and have a heartbeat sent now."""
        self.source_state, self.message = state, message
        self.heartbeat_now.set()
        self.wake.set()

    def run_config(self, new: CameraConfig) -> None:
        """Run ``new`` from the next frame on (lines, lanes, zones), keeping the tracker."""
        with self.pipeline_lock:
            if self.pipeline is not None:
                self.pipeline.reconfigure(new)
            self.camera = new
