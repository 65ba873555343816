"""Counting a whole clip offline: what ``citywatch count`` prints and what ``eval``/benchmarks build on."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citywatch.config import CameraConfig, CountingConfig, ModelConfig, TrackerConfig
from vision.counting import Crossing
from vision.detector import Detector
from vision.pipeline import FrameResult, VisionPipeline
from vision.video import open_video

#: Frames decoded ahead of the pipeline (decoding overlaps the detector, which releases the GIL).
PREFETCH_FRAMES = 8


@dataclass
class CountResult:
    lines: dict[str, dict[str, dict[str, int]]]
    frames: int
    seconds: float
    crossings: list[Crossing] = field(default_factory=list)
    fps: float = 0.0
    model_version: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"lines": self.lines, "frames": self.frames, "seconds": round(self.seconds, 3)}


def count_video(
    path: str | Path,
    camera: CameraConfig,
    *,
    model: ModelConfig | None = None,
    tracker: TrackerConfig | None = None,
    counting: CountingConfig | None = None,
    detector: Detector | None = None,
    max_frames: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_result: Callable[[FrameResult], None] | None = None,
    lines_only: bool = False,
) -> CountResult:
    """Run detect -> track -> count over every frame; ``seconds`` is the wall time it took.

    ``lines_only``: compute line crossings and nothing else (no zones, movements or incidents), as
    ``citywatch count`` reports. Frames are decoded on a thread of their own, ahead of the pipeline."""
    info, frames = open_video(path, prefetch=PREFETCH_FRAMES)
    pipeline = VisionPipeline(
        camera, model=model, tracker=tracker, counting=counting, detector=detector, fps=info.fps,
        frame_hw=(info.height, info.width),  # the model is sized (and exported) before the clock starts
        lines_only=lines_only,
    )
    lines: dict[str, dict[str, dict[str, int]]] = {ln.id: {"in": {}, "out": {}} for ln in camera.lines}
    crossings: list[Crossing] = []
    t0 = time.perf_counter()
    n = 0
    total = info.frame_count if max_frames is None else min(info.frame_count, max_frames)
    for index, frame in enumerate(frames):
        if max_frames is not None and index >= max_frames:
            break
        result = pipeline.process(frame, index)
        for c in result.crossings:
            by_class = lines[c.line_id][c.direction]
            by_class[c.class_name] = by_class.get(c.class_name, 0) + 1
        crossings.extend(result.crossings)
        if on_result:
            on_result(result)
        n += 1
        if progress:
            progress(n, total)
    seconds = time.perf_counter() - t0
    return CountResult(lines, n, seconds, crossings, n / seconds if seconds else 0.0, pipeline.model_version)
