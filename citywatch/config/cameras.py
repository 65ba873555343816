"""``cameras``: a camera's source, counting lines, lanes, zones, calibration and processing levers."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from citywatch.config.base import Ident, Point, StrictModel
from citywatch.config.incidents import IncidentsConfig


class Location(StrictModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class LineConfig(StrictModel):
    """A counting segment from A to B. ``in`` = anchor moves from the side where (B-A)x(P-A) < 0 to > 0."""

    id: Ident
    points: tuple[Point, Point]
    labels: dict[Literal["in", "out"], str] = Field(
        default_factory=dict, description="Human names of the directions, e.g. in: northbound."
    )

    @field_validator("points")
    @classmethod
    def _not_degenerate(cls, v: tuple[Point, Point]) -> tuple[Point, Point]:
        (x1, y1), (x2, y2) = v
        if (x1 - x2) ** 2 + (y1 - y2) ** 2 < 4.0:
            raise ValueError("line end points must be at least 2 pixels apart")
        return v


def _polygon(v: list[Point]) -> list[Point]:
    if len(v) < 3:
        raise ValueError("a polygon needs at least 3 points")
    return v


class LaneConfig(StrictModel):
    id: Ident
    polygon: list[Point]
    direction: tuple[Point, Point] | None = Field(
        None, description="Travel direction as two image points (from, to)."
    )
    _check = field_validator("polygon")(_polygon)


class ZoneConfig(StrictModel):
    id: Ident
    polygon: list[Point]
    kind: Literal["generic", "entry", "exit", "gateway", "parking", "carriageway"] = Field(
        "generic", description="entry/exit: origin or destination of movements; gateway: both (an arm of a junction)."
    )
    _check = field_validator("polygon")(_polygon)


class CalibrationConfig(StrictModel):
    """Image -> ground-plane homography of one camera, from 4+ surveyed point pairs (README: Calibrating a camera).

    ``ground_points`` are metres on a local flat plane (x east, y north, any origin), e.g. measured with a
    tape along lane markings or converted from GNSS/map coordinates; ``image_points`` are the same marks in
    pixels of the camera's frame at its configured resolution.
    """

    image_points: list[Point] = Field(min_length=4, description="Pixels (x right, y down) of the surveyed marks.")
    ground_points: list[Point] = Field(min_length=4, description="The same marks on the ground, in metres.")
    max_speed_kmh: float = Field(200.0, gt=0, le=300, description="Faster estimates are dropped as implausible.")
    speed_window_s: float = Field(1.0, gt=0, le=10, description="Speed = ground distance over this much track.")
    max_reprojection_m: float = Field(
        1.0, gt=0, description="Refuse a calibration whose points disagree with the fitted plane by more than this."
    )

    @model_validator(mode="after")
    def _pairs(self) -> CalibrationConfig:
        if len(self.image_points) != len(self.ground_points):
            raise ValueError("image_points and ground_points must pair up one to one")
        return self


class MotionGateConfig(StrictModel):
    """Skip the detector on frames where nothing moved since the last detection (cheap low-res differencing)."""

    enabled: bool = False
    width: int = Field(96, ge=16, le=640, description="Frames are compared at this width (grey, blurred).")
    pixel_delta: int = Field(12, ge=1, le=255, description="A pixel changed when its grey level moved this much.")
    min_changed: float = Field(
        0.002, ge=0, le=1, description="Detect when at least this share of pixels changed since the last detection."
    )
    max_skip_s: float = Field(1.0, gt=0, le=60, description="Detect at least this often even without motion.")


Box = tuple[float, float, float, float]


class ProcessingConfig(StrictModel):
    """Per-camera throughput levers. The defaults: detect inside the counting area only (``roi: auto``),
    on every frame while a track is close to a line, every ``max_stride``-th frame otherwise."""

    detect_every: int = Field(
        1, ge=1, le=30, description="Run the pipeline on every Nth source frame (frame indices stay source indices)."
    )
    imgsz: int | None = Field(
        None, ge=64, le=2048, multiple_of=32, description="Model input size for this camera; default: model.imgsz."
    )
    motion: MotionGateConfig = MotionGateConfig()
    max_stride: int = Field(
        2, ge=1, le=10,
        description="Adaptive stride: detect every frame while a track nears a line, else every Nth (1: off). "
        "The tracker bridges the skipped frames.",
    )
    shed_max_stride: int = Field(
        5, ge=1, le=30,
        description="Real-time sources: while the camera is behind the clock, detect at least every Nth frame "
        "and skip the others (bridged by the tracker) until it has caught up (1: never skip to catch up).",
    )
    roi: Literal["auto", "full"] | Box = Field(
        "auto",
        description="Detect inside this box only: auto = the lines, lanes and zones plus roi_margin on every side; "
        "full = the whole frame; or [x1, y1, x2, y2] in pixels.",
    )
    roi_margin: float = Field(
        0.5, ge=0, le=2,
        description="auto ROI: approach kept on every side, as a share of the frame's size (about a second of "
        "traffic on a CCTV view).",
    )

    @field_validator("roi")
    @classmethod
    def _roi_box(cls, v: Any) -> Any:
        if isinstance(v, tuple) and (v[2] - v[0] < 16 or v[3] - v[1] < 16):
            raise ValueError("roi must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1 (16 px at least)")
        return v


class CameraConfig(StrictModel):
    id: Ident
    name: str = ""
    site: Ident | None = Field(None, description="Overrides the top-level site for this camera.")
    source: str = Field(
        description="file path, file://, rtsp://, http(s)://, usb:N, or sample:<folder>/<clip> (CITYWATCH_SAMPLES)"
    )
    location: Location | None = None
    realtime: bool = Field(True, description="Pace file sources to their frame rate (live streams always are).")
    loop: bool = Field(False, description="Start a file source again at its end (demo).")
    anchor: Literal["bottom_center", "center", "top_center"] = "bottom_center"
    lines: list[LineConfig] = Field(default_factory=list)
    lanes: list[LaneConfig] = Field(default_factory=list)
    zones: list[ZoneConfig] = Field(default_factory=list)
    calibration: CalibrationConfig | None = Field(None, description="Ground-plane calibration: speeds, metres.")
    report_interval_s: float = Field(
        60.0, gt=0, le=86400, description="Zone and lane reports every this many seconds of source time."
    )
    version: str | None = Field(None, max_length=64, description="Config version; defaults to a content hash.")
    incidents: IncidentsConfig | None = Field(None, description="Overrides keys of the top-level incidents section.")
    processing: ProcessingConfig | None = Field(
        None, description="Throughput levers (frame stride, input size, motion gating); default: every frame."
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> CameraConfig:
        for name in ("lines", "lanes", "zones"):
            ids = [item.id for item in getattr(self, name)]
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"duplicate {name} ids: {', '.join(dupes)}")
        return self

    def config_version(self) -> str:
        if self.version:
            return self.version
        exclude = {"version", "name", "location"} | ({"processing"} if self.processing is None else set())
        body = self.model_dump(mode="json", exclude=exclude)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


def effective_incidents(defaults: IncidentsConfig | None, camera: CameraConfig) -> IncidentsConfig:
    """The top-level ``incidents`` with the keys a camera sets in its own ``incidents`` replacing them."""
    base = (defaults or IncidentsConfig()).model_dump()
    if camera.incidents is None:
        return IncidentsConfig.model_validate(base)

    def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    return IncidentsConfig.model_validate(merge(base, camera.incidents.model_dump(exclude_unset=True)))
