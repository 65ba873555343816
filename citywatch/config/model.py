"""``model``, ``tracker`` and ``counting``: the detector, the tracker and the counting stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import Field

from citywatch.config.base import StrictModel
from citywatch.contract import ClassName


class ModelConfig(StrictModel):
    weights: Path | None = Field(
        None, description="Model file or OpenVINO folder; default: $CITYWATCH_WEIGHTS, then weights/yolov8n.pt"
    )
    backend: Literal["auto", "ultralytics", "onnxruntime", "openvino"] = Field(
        "auto",
        description="auto: the fastest runtime installed (OpenVINO, then ONNX Runtime, then PyTorch); a .pt is "
        "exported once to it and cached outside the repository (CITYWATCH_CACHE).",
    )
    imgsz: Literal["auto"] | Annotated[int, Field(ge=64, le=2048, multiple_of=32)] = Field(
        "auto",
        description="Detector input size. auto: follows the source (the region of interest's shape, rounded up "
        "to 32, never larger than the frame, at most 640 on its longer side); or a fixed square side.",
    )
    confidence: float = Field(
        0.1, gt=0, lt=1,
        description="Lowest box score passed on. ByteTrack uses boxes down to this score only to keep existing "
        "tracks (second association); new tracks need tracker.track_activation_threshold.",
    )
    iou: float = Field(0.5, gt=0, lt=1)
    agnostic_nms: bool = Field(
        True, description="One box per object across classes: a pickup seen as car and truck is one vehicle."
    )
    classes: list[ClassName] = Field(default_factory=lambda: list(get_args(ClassName)))
    device: str = "cpu"
    threads: int | None = Field(None, ge=1, le=256, description="Inference threads; default: all cores.")


class TrackerConfig(StrictModel):
    """ByteTrack settings (the ``trackers`` package); only confirmed tracks are counted."""

    # 0.35 and 60 since the detector sees frames at their own size (imgsz: auto): on the London lines 0.4/30
    # counted 39 of 41 with 8 line/direction errors, 0.35/60 41 of 41 with 6 (main's 640 px: 41, 8)
    track_activation_threshold: float = Field(0.35, gt=0, lt=1, description="Score to start a track.")
    high_conf_det_threshold: float = Field(0.35, gt=0, lt=1, description="First-stage association score.")
    # 0.1, not ByteTrack's 0.2: at a camera's own resolution and with the adaptive stride (a detection every
    # 2nd frame away from the lines) a small, fast vehicle's box overlaps its last one by less than 0.2, its
    # track breaks and it may not be counted. London lines (bench/counting_accuracy.py, 2026-12-07): 0.2
    # counted 39 of 41 with 8 line/direction errors, 0.15 39 with 6, 0.1 40 with 5, 0.05 46 with 11 (wrong
    # associations); IDF1 0.685 -> 0.667 at 0.1 (more switches far from the lines, where nothing is counted)
    minimum_iou_threshold: float = Field(0.1, gt=0, lt=1, description="Least IoU to associate (ByteTrack: 0.2).")
    lost_track_buffer: int = Field(
        60, ge=0, le=600, description="Frames (at 30 fps) a lost track is kept: 2 s, a vehicle hidden in a queue."
    )
    minimum_consecutive_frames: int = Field(2, ge=1, le=60, description="Frames before a track is confirmed.")


class CountingConfig(StrictModel):
    min_travel_px: float = Field(4.0, ge=0, description="Anchor must move this far across the line.")
    hysteresis_px: float = Field(2.0, ge=0, description="Dead band around the line; no side inside it.")
    hysteresis_box_fraction: float = Field(
        0.05, ge=0, le=1, description="Wider dead band for big boxes: this fraction of the box's larger side."
    )
    track_ttl_frames: int = Field(150, ge=1, description="Per-track counting state dropped after this.")
    relink_window_frames: int = Field(
        30, ge=0, le=600,
        description="A new track may take over a track lost this many frames ago (0: off; at most track_ttl_frames).",
    )
    relink_distance: float = Field(
        0.75, ge=0, le=5, description="...if it appears within this many box sizes of where that track was last seen."
    )
    stationary_s: float = Field(2.0, gt=0, le=600, description="A track is stationary after this long without moving.")
    stationary_box_fraction: float = Field(
        0.2, gt=0, le=5, description="'Without moving': the anchor stays within this fraction of the box size."
    )
