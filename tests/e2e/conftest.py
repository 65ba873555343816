"""End-to-end fixtures: the real detector run once per session on a real clip, cached by frame."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_kit import CachedDetector, frame_key

from citywatch.config import ModelConfig
from vision.video import open_video


@pytest.fixture(scope="session")
def london_detector(london_clip: Path, weights_path: Path) -> CachedDetector:
    from vision.detector import load_detector

    real = load_detector(ModelConfig(weights=weights_path))
    _, frames = open_video(london_clip)
    cache = {frame_key(f): real.detect(f) for f in frames}
    return CachedDetector(cache, real.version)
