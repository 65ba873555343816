"""What the edge needs of a camera's vision pipeline: ``vision.pipeline.VisionPipeline`` or a test's fake.

The frame result and its parts (crossings, movements, zone reports, incidents) are vision's own types,
imported from ``vision``: the edge reads their fields, it does not redefine them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from citywatch.config import CameraConfig
from vision.pipeline import FrameResult
from vision.results import IncidentResult

__all__ = ["FrameResult", "IncidentCloser", "PipelineFactory", "PipelineLike"]


class IncidentCloser(Protocol):
    """The pipeline's incident engine, as far as the edge uses it: closing what is open when a pass ends."""

    def close_all(self, frame_index: int) -> list[IncidentResult]: ...


class PipelineLike(Protocol):
    """One camera's pipeline (tests inject a fake with the same members)."""

    #: seconds a real-time source is behind its clock, set before each frame (the pipeline sheds detections)
    lag_s: float

    @property
    def model_version(self) -> str: ...

    @property
    def incidents(self) -> IncidentCloser | None: ...

    def process(self, frame: np.ndarray, frame_index: int) -> FrameResult: ...

    def reconfigure(self, camera: CameraConfig) -> None: ...


#: ``pipeline_factory(camera, fps)`` builds one camera's pipeline.
PipelineFactory = Callable[[CameraConfig, float], PipelineLike]
