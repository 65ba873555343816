"""Vision fixtures: the real model's detections on the shared London clips, computed once per session."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from support import REPO, require_asset, samples_dir

from citywatch.config import LineConfig, ModelConfig
from vision.detections import Detections
from vision.video import VideoInfo, open_video

LONDON_LINES = REPO / "bench/vision_london_lines.json"


def frame_key(frame: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(frame[::4, ::4]).tobytes(), digest_size=16).digest()


@dataclass
class LondonClip:
    name: str
    video: Path
    tracks_csv: Path
    cvat_xml: Path
    lines: list[LineConfig]
    info: VideoInfo
    detections: list[Detections]  # the real model's output, frame by frame
    by_frame: dict[bytes, Detections]


class CachedDetector:
    """Stands in for the model: the detections computed once for these exact frames."""

    def __init__(self, clips: list[LondonClip], version: str) -> None:
        self.by_frame = {k: v for c in clips for k, v in c.by_frame.items()}
        self.version = version

    def detect(self, frame: np.ndarray) -> Detections:
        return self.by_frame[frame_key(frame)]


def london_lines() -> dict[str, list[LineConfig]]:
    data = json.loads(LONDON_LINES.read_text())
    return {
        clip: [LineConfig(id=k, points=(tuple(a), tuple(b))) for k, (a, b) in lines.items()]
        for clip, lines in data.items() if not clip.startswith("_")
    }


@pytest.fixture(scope="session")
def london_clips(weights_path: Path) -> list[LondonClip]:
    """Each shared London clip with its ground truth, lines and the model's detections (default ModelConfig)."""
    from vision.detector import load_detector

    root = samples_dir()
    folder = require_asset(root / "tfl_london_jamcam" if root else None, "London clips")
    detector = None
    clips = []
    for name, lines in london_lines().items():
        video = require_asset(folder / f"{name}.mp4", f"London clip {name}")
        info, frames = open_video(video)
        if detector is None:  # sized as the default sizes it for these (352x288) clips: imgsz auto
            detector = load_detector(ModelConfig(weights=weights_path), (info.height, info.width))
        dets, by_frame = [], {}
        for f in frames:
            d = detector.detect(f)
            dets.append(d)
            by_frame[frame_key(f)] = d
        clips.append(LondonClip(name, video, folder / f"{name}.tracks.csv", folder / f"{name}.cvat.xml",
                                lines, info, dets, by_frame))
    return clips


@pytest.fixture(scope="session")
def london_detector(london_clips: list[LondonClip], weights_path: Path) -> CachedDetector:
    from vision.detector import model_version

    return CachedDetector(london_clips, model_version(weights_path))
