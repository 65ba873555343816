"""One detector per input size, compiled for the cameras that share it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from edge_testkit import camera_dict, make_config

from edge.worker import EdgeWorker


def _clip(path: Path, w: int = 640, h: int = 480) -> str:
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
    for i in range(5):
        out.write(np.full((h, w, 3), i * 20, np.uint8))
    out.release()
    return str(path)


def test_each_input_size_gets_one_detector_compiled_for_the_cameras_that_share_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = _clip(tmp_path / "vga.avi")
    cams = [camera_dict(f"file-{i}", clip) for i in range(2)]
    cams.append({**camera_dict("far-corner", clip), "processing": {"roi": [0, 0, 320, 240]}})
    cams.append(camera_dict("live", "rtsp://127.0.0.1:9/none"))  # its frame size is known only on connecting
    for c in cams:
        c["lines"] = [{"id": "l1", "points": [[100, 240], [540, 240]]}]
    worker = EdgeWorker(make_config(tmp_path, cams))
    loaded: list[tuple[Any, int]] = []

    class Fake:
        def __init__(self, hw: Any) -> None:
            self.imgsz = hw

    def load(model: Any, hw: Any = None, streams: int = 1) -> Fake:
        loaded.append((hw, streams))
        return Fake(hw)

    monkeypatch.setattr("vision.detector.load_detector", load)
    by_id = {c.id: c for c in worker.config.cameras}
    vga = worker._detector_for(by_id["file-0"], (480, 640))
    assert worker._detector_for(by_id["file-1"], (480, 640)) is vga
    assert worker._detector_for(by_id["live"], (480, 640)) is vga  # the live camera shares the files' size
    corner = worker._detector_for(by_id["far-corner"], (480, 640))
    assert corner is not vga
    # three cameras run the whole VGA frame (the fourth only its corner): a model compiled for three
    # streams and one for one, not four streams each (four cameras of four sizes starved the largest)
    assert loaded == [((480, 640), 3), ((256, 320), 1)]
