"""One YAML file configures an edge box, a server or the demo; pydantic validates all of it.

Secrets never live in the file: MQTT credentials are read from the environment variables the file
names. Errors name the key path (``cameras.0.lines.1.points``) so an installer can find the typo.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from citywatch.contract import CLASS_NAMES, ID_PATTERN, ClassName

Point = tuple[float, float]
Ident = Annotated[str, Field(pattern=ID_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TLSConfig(_Strict):
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(False, description="Skip hostname verification (test benches only).")


class MQTTConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = Field(
        "5", description="MQTT version. The embedded amqtt broker speaks 3.1.1 only."
    )
    topic_prefix: str = Field("citywatch", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
    keepalive_s: int = Field(30, ge=5, le=3600)
    session_expiry_s: int = Field(7 * 24 * 3600, ge=60, description="MQTT v5 persistent session lifetime.")
    username_env: str | None = Field("CITYWATCH_MQTT_USERNAME", description="Environment variable with the user.")
    password_env: str | None = Field("CITYWATCH_MQTT_PASSWORD", description="Environment variable with the password.")
    camera_id_as_username: bool = Field(
        False,
        description="Edge only: each camera's link logs in as its camera id (the broker's per-camera credential "
        "from `citywatch broker add-device`; one password for the box from password_env); username_env is unused.",
    )
    tls: TLSConfig = TLSConfig()
    shared_group: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]+$", description="Server only: subscribe via $share/<group>/ to scale out."
    )

    def credentials(self, camera_id: str | None = None) -> tuple[str | None, str | None]:
        """(user, password) from the environment; with ``camera_id_as_username`` an edge camera's user is its id."""
        if self.camera_id_as_username and camera_id:
            user: str | None = camera_id
        else:
            user = os.environ.get(self.username_env) if self.username_env else None
        password = os.environ.get(self.password_env) if self.password_env else None
        return user or None, password or None


class Location(_Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class LineConfig(_Strict):
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


class LaneConfig(_Strict):
    id: Ident
    polygon: list[Point]
    direction: tuple[Point, Point] | None = Field(
        None, description="Travel direction as two image points (from, to)."
    )
    _check = field_validator("polygon")(_polygon)


class ZoneConfig(_Strict):
    id: Ident
    polygon: list[Point]
    kind: Literal["generic", "entry", "exit", "gateway", "parking", "carriageway"] = Field(
        "generic", description="entry/exit: origin or destination of movements; gateway: both (an arm of a junction)."
    )
    _check = field_validator("polygon")(_polygon)


class CalibrationConfig(_Strict):
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


class _IncidentRule(_Strict):
    """Debounce shared by every incident rule: neither flicker nor flood."""

    enabled: bool = True
    open_after_s: float = Field(5.0, ge=0, le=3600, description="The condition must hold this long to open.")
    close_after_s: float = Field(5.0, gt=0, le=3600, description="...and be absent this long to close.")
    cooldown_s: float = Field(
        30.0, ge=0, le=86400, description="No new incident of the same key this long after one closed."
    )
    update_every_s: float = Field(
        30.0, gt=0, le=86400, description="An open incident sends an update at most this often."
    )
    severity: Literal["low", "medium", "high"] = "medium"


class StoppedVehicleRule(_IncidentRule):
    """A vehicle standing in a live lane (not a parking zone) while traffic moves past it, or alone."""

    open_after_s: float = Field(20.0, ge=0, le=3600, description="Stationary this long while others pass it.")
    alone_after_s: float = Field(
        90.0, ge=0, le=3600, description="Stationary this long alone in its lane (longer than a red phase)."
    )
    passing_window_s: float = Field(
        10.0, gt=0, le=600, description="'Others pass it': moving in the lane this recently."
    )
    cooldown_s: float = Field(60.0, ge=0, le=86400)
    severity: Literal["low", "medium", "high"] = "high"


class WrongWayRule(_IncidentRule):
    """Sustained motion against a lane's configured ``direction``."""

    open_after_s: float = Field(1.5, ge=0, le=600, description="Moving against the lane for this long.")
    close_after_s: float = Field(3.0, gt=0, le=3600)
    min_distance_px: float = Field(40.0, ge=0, description="...and this far against it (pixels).")
    min_distance_boxes: float = Field(1.0, ge=0, le=50, description="...and this many of its box sizes.")
    max_angle_deg: float = Field(45.0, gt=0, le=90, description="Motion within this angle of the reverse direction.")
    classes: list[ClassName] = Field(default_factory=lambda: ["car", "truck", "bus", "motorcycle"])
    severity: Literal["low", "medium", "high"] = "high"


class CongestionRule(_IncidentRule):
    """A lane holding many slow vehicles for a while (longer than a signal's queue)."""

    open_after_s: float = Field(120.0, ge=0, le=86400)
    close_after_s: float = Field(30.0, gt=0, le=3600)
    cooldown_s: float = Field(120.0, ge=0, le=86400)
    update_every_s: float = Field(60.0, gt=0, le=86400)
    min_vehicles: int = Field(4, ge=1, le=1000, description="Vehicles in the lane at least.")
    max_speed_kmh: float = Field(10.0, gt=0, le=300, description="Mean speed at most (calibrated cameras).")
    min_stationary_share: float = Field(
        0.5, gt=0, le=1, description="Share of its vehicles standing still (uncalibrated cameras)."
    )


class PeopleOnCarriagewayRule(_IncidentRule):
    """Pedestrians (or cyclists) inside carriageway zones (and lanes, with ``in_lanes``)."""

    open_after_s: float = Field(3.0, ge=0, le=600)
    close_after_s: float = Field(5.0, gt=0, le=3600)
    in_lanes: bool = Field(True, description="Lanes count as carriageway too.")
    severity: Literal["low", "medium", "high"] = "medium"


class CrashCandidateRule(_IncidentRule):
    """Two or more vehicles stopping suddenly close together: lower confidence, for a human to check."""

    open_after_s: float = Field(0.0, ge=0, le=600)
    close_after_s: float = Field(10.0, gt=0, le=3600)
    cooldown_s: float = Field(60.0, ge=0, le=86400)
    min_speed_boxes_s: float = Field(
        1.5, gt=0, le=100, description="Moving at least this many box sizes per second..."
    )
    stop_within_s: float = Field(1.0, gt=0, le=10, description="...this shortly before it stood still.")
    pair_window_s: float = Field(2.0, gt=0, le=30, description="The stops happen this close in time...")
    max_gap_boxes: float = Field(1.2, ge=0, le=10, description="...and the vehicles this close (box sizes).")
    confidence: float = Field(0.4, ge=0, le=1)
    severity: Literal["low", "medium", "high"] = "high"


class IncidentsConfig(_Strict):
    """Incident rules (``vision/incidents.py``); top-level defaults, a camera's ``incidents`` overrides keys."""

    enabled: bool = True
    stopped_vehicle: StoppedVehicleRule = StoppedVehicleRule()
    wrong_way: WrongWayRule = WrongWayRule()
    congestion: CongestionRule = CongestionRule()
    pedestrian: PeopleOnCarriagewayRule = PeopleOnCarriagewayRule()
    cyclist: PeopleOnCarriagewayRule = PeopleOnCarriagewayRule(in_lanes=False, severity="low")
    crash_candidate: CrashCandidateRule = CrashCandidateRule()


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


class MotionGateConfig(_Strict):
    """Skip the detector on frames where nothing moved since the last detection (cheap low-res differencing)."""

    enabled: bool = False
    width: int = Field(96, ge=16, le=640, description="Frames are compared at this width (grey, blurred).")
    pixel_delta: int = Field(12, ge=1, le=255, description="A pixel changed when its grey level moved this much.")
    min_changed: float = Field(
        0.002, ge=0, le=1, description="Detect when at least this share of pixels changed since the last detection."
    )
    max_skip_s: float = Field(1.0, gt=0, le=60, description="Detect at least this often even without motion.")


Box = tuple[float, float, float, float]


class ProcessingConfig(_Strict):
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


class CameraConfig(_Strict):
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


class ModelConfig(_Strict):
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
    classes: list[ClassName] = Field(default_factory=lambda: list(CLASS_NAMES))
    device: str = "cpu"
    threads: int | None = Field(None, ge=1, le=256, description="Inference threads; default: all cores.")


class TrackerConfig(_Strict):
    """ByteTrack settings (the ``trackers`` package); only confirmed tracks are counted."""

    # 0.35 and 60 since the detector sees frames at their own size (imgsz: auto): on the London lines 0.4/30
    # counted 39 of 41 with 8 line/direction errors, 0.35/60 41 of 41 with 6 (main's 640 px: 41, 8)
    track_activation_threshold: float = Field(0.35, gt=0, lt=1, description="Score to start a track.")
    high_conf_det_threshold: float = Field(0.35, gt=0, lt=1, description="First-stage association score.")
    minimum_iou_threshold: float = Field(0.2, gt=0, lt=1, description="Least IoU to associate (ByteTrack: 0.2).")
    lost_track_buffer: int = Field(
        60, ge=0, le=600, description="Frames (at 30 fps) a lost track is kept: 2 s, a vehicle hidden in a queue."
    )
    minimum_consecutive_frames: int = Field(2, ge=1, le=60, description="Frames before a track is confirmed.")


class CountingConfig(_Strict):
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


class EdgeSourcesConfig(_Strict):
    """Live sources (RTSP, HTTP/MJPEG, USB): time-outs, reconnect back-off; file checkpoints."""

    open_timeout_s: float = Field(10.0, gt=0, le=300, description="Give up opening a stream after this.")
    stall_timeout_s: float = Field(5.0, gt=0, le=300, description="No frame for this long = stalled stream.")
    reconnect_min_s: float = Field(1.0, gt=0, le=600, description="First reconnect delay (doubles each failure).")
    reconnect_max_s: float = Field(30.0, gt=0, le=3600, description="Longest reconnect delay.")
    buffer_frames: int = Field(4, ge=1, le=100, description="Live frames buffered; older ones dropped when slow.")
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    checkpoint_every_s: float = Field(2.0, gt=0, le=3600, description="File position checkpoint interval.")
    resume: bool = Field(True, description="Resume a file at its checkpoint after a restart.")
    resume_warmup_frames: int = Field(
        50, ge=0, le=10000, description="Frames re-read before the checkpoint (tracker warm-up, no events)."
    )


class EdgeTamperConfig(_Strict):
    """Camera tamper signs reported in camera_status.tamper."""

    enabled: bool = True
    check_every_s: float = Field(1.0, gt=0, le=60)
    hold_checks: int = Field(3, ge=1, le=100, description="Consecutive checks before a sign is raised or cleared.")
    dark_level: float = Field(20.0, ge=0, le=255, description="Mean brightness below this is too_dark.")
    covered_std: float = Field(6.0, ge=0, le=128, description="Brightness spread below this is covered.")
    focus_ratio: float = Field(0.25, gt=0, lt=1, description="Sharpness below this share of the reference.")
    moved_ratio: float = Field(0.5, gt=0, lt=1, description="Reference similarity below this is view_moved.")


class EdgeSnapshotsConfig(_Strict):
    """Optional incident snapshots, kept on the edge only, with people and plates blurred."""

    enabled: bool = Field(False, description="No image is ever written unless this is true.")
    directory: Path = Path("data/snapshots")
    ttl_s: float = Field(7 * 24 * 3600, gt=0, description="Snapshots are deleted after this many seconds.")
    vehicle_lower_fraction: float = Field(
        0.4, ge=0, le=1, description="Lower share of each vehicle box blurred (plates; no plate detector)."
    )
    jpeg_quality: int = Field(80, ge=10, le=100)


class EdgeConfig(_Strict):
    device_id: Ident = "edge-01"
    outbox_path: Path = Path("data/outbox.sqlite")
    heartbeat_s: float = Field(10.0, gt=0, le=3600)
    resend_after_s: float = Field(20.0, gt=0, description="Re-publish events not committed after this.")
    max_inflight: int = Field(200, ge=1, le=10000)
    batch_size: int = Field(50, ge=1, le=1000)
    batch_publish: bool = Field(True, description="Publish several due events as one EventBatch message.")
    outbox_max_events: int = Field(
        100_000, ge=100, description="Per camera; when full: heartbeats dropped, crossings merged (never dropped)."
    )
    merge_interval_s: int = Field(900, ge=1, le=86400, description="Interval of merged crossing totals.")
    persist_config: bool = Field(True, description="Keep a pushed configuration across restarts.")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="Prometheus port (e.g. 9108); off if unset.")
    metrics_host: str = Field("127.0.0.1", description="Prometheus bind address (local only by default).")
    log_format: Literal["text", "json"] = "text"
    mqtt_reconnect_max_s: float = Field(30.0, ge=1, le=3600, description="Longest MQTT reconnect back-off.")
    sources: EdgeSourcesConfig = EdgeSourcesConfig()
    tamper: EdgeTamperConfig = EdgeTamperConfig()
    snapshots: EdgeSnapshotsConfig = EdgeSnapshotsConfig()


class PCUWeights(_Strict):
    """Passenger-car-unit factors per class (server: flows in PCU).

    Defaults follow the Vietnamese conversion table "hệ số quy đổi từ xe các loại ra xe con" of
    TCVN 4054:2005 (flat terrain): bicycle 0.2, motorcycle 0.3, car 1.0, 2-axle truck / bus < 25 seats
    2.0, truck with 3+ axles / large bus 2.5. A camera cannot count axles, so truck and bus take 2.5.
    Pedestrians are not vehicles (0). Override per city (e.g. with the table of TCVN 13592:2022).
    """

    car: float = Field(1.0, ge=0, le=20)
    truck: float = Field(2.5, ge=0, le=20)
    bus: float = Field(2.5, ge=0, le=20)
    motorcycle: float = Field(0.3, ge=0, le=20)
    bicycle: float = Field(0.2, ge=0, le=20)
    person: float = Field(0.0, ge=0, le=20)


class RetentionConfig(_Strict):
    """Days each table keeps (None: forever). Rollups make raw events unnecessary for history."""

    events_days: float | None = Field(90, gt=0, description="Raw events (also the de-duplication horizon).")
    dead_letters_days: float | None = Field(90, gt=0)
    rollup_1m_days: float | None = Field(14, gt=0)
    rollup_15m_days: float | None = Field(400, gt=0)
    rollup_1h_days: float | None = Field(5 * 366, gt=0)
    rollup_1d_days: float | None = Field(None, gt=0)
    incidents_days: float | None = Field(
        365, gt=0, le=36600,
        description="Closed or resolved incidents and their audit trail (operator names: personal data), "
        "counted from their last change; open, unresolved incidents are always kept.",
    )  # fmt: skip
    interval_s: float = Field(3600, ge=10, description="How often the server prunes.")


class IngestConfig(_Strict):
    """Server ingest tuning: batching, gap repair (replay requests), observation time."""

    batch_max: int = Field(2000, ge=1, le=100000, description="Messages per transaction at most.")
    batch_max_events: int = Field(
        5000, ge=1, le=1000000,
        description="Events per transaction at most (a message is never split): under a backlog of "
        "envelopes this bounds a transaction's commit delay, memory and row locks.",
    )  # fmt: skip
    linger_s: float = Field(0.1, ge=0, le=10, description="Wait this long to fill a batch.")
    gap_grace_s: float = Field(2.0, ge=0, le=3600, description="A seq gap this old is asked to be replayed.")
    replay_interval_s: float = Field(
        10.0, ge=0.1, le=86400, description="At most one replay request per camera per this."
    )
    heartbeat_s: float | None = Field(
        None, gt=0, le=3600, description="Edge heartbeat period for observed time (default: edge.heartbeat_s)."
    )
    max_future_s: float | None = Field(
        86400.0, gt=0, le=366 * 86400,
        description="An event whose time is further ahead of the server clock than this is a dead letter "
        "(timestamp_out_of_range): it cannot be real and would never be pruned. A day tolerates an edge that "
        "labels local time as UTC (at most 14 h off); None: no limit.",
    )  # fmt: skip
    retry_initial_s: float = Field(
        0.5, gt=0, le=60, description="First wait before retrying a batch after a transient database error."
    )
    retry_max_s: float = Field(10.0, gt=0, le=600, description="Longest wait between retries (doubling up to it).")
    stall_after_s: float = Field(
        30.0, gt=0, le=3600,
        description="Health: ingest is 'stalled' when a received message stays unacknowledged this long.",
    )  # fmt: skip
    dead_letters_warn_per_min: float = Field(
        60.0, ge=0, le=1e9, description="Health: 'degraded' above this many dead letters in the last minute."
    )
    db_timeout_s: float = Field(
        2.0, gt=0, le=60,
        description="Health: the database ping (a read of events) must answer within this, else 'degraded'.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _retry_bounds(self) -> IngestConfig:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError(
                f"server.ingest.retry_max_s ({self.retry_max_s}) is below retry_initial_s ({self.retry_initial_s})"
            )
        return self


class WebhookConfig(_Strict):
    """An incident webhook: JSON POST signed with HMAC-SHA256 of ``<timestamp>.<body>``."""

    url: str = Field(pattern=r"^https?://")
    secret_env: str | None = Field(None, description="Environment variable holding the HMAC secret.")
    timeout_s: float = Field(5.0, gt=0, le=120)


class EmailConfig(_Strict):
    """Incident e-mail through an SMTP relay; credentials from the environment only."""

    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    from_addr: str = "citywatch@localhost"
    to: list[str] = Field(default_factory=list, description="Recipients of new incidents.")
    escalate_to: list[str] = Field(default_factory=list, description="Added recipients of escalations.")
    starttls: bool = False
    ssl: bool = False
    username_env: str | None = None
    password_env: str | None = None
    timeout_s: float = Field(10.0, gt=0, le=120)


#: A web origin: scheme://host[:port], no path (what browsers send in the Origin header).
ORIGIN_PATTERN = r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(:\d{1,5})?"


class LoginThrottleConfig(_Strict):
    """Failed authentications (log-ins and wrong API keys), counted in memory per server process."""

    max_failures: int = Field(5, ge=1, le=1000, description="Failures per client address before it must wait.")
    total_max_failures: int = Field(
        100, ge=1, le=100000,
        description="Failures from all addresses together before every log-in must wait (the API has no user "
        "names: a key is the account, so this is the per-account budget).",
    )  # fmt: skip
    window_s: float = Field(600, gt=0, le=86400, description="A failure counts for this long after the last one.")
    lockout_s: float = Field(1, gt=0, le=86400, description="The first wait; it doubles with every further failure.")
    max_lockout_s: float = Field(900, gt=0, le=86400, description="The longest wait.")


class ServerAuthConfig(_Strict):
    """Browser sessions, cross-origin checks, log-in throttling and the proxy in front of the server."""

    session_ttl_s: float = Field(12 * 3600, ge=60, le=30 * 86400, description="A browser session ends after this.")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) besides the server's own that may send cookie-authenticated "
        "POST/PUT/PATCH/DELETE requests, e.g. the public name behind a reverse proxy.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For/-Proto are believed (uvicorn's "
        "forwarded_allow_ips). Set: open local mode is refused at startup.",
    )
    login_throttle: LoginThrottleConfig = LoginThrottleConfig()
    api_docs: bool = Field(
        True, description="Serve /docs (Swagger UI from this server's own files; /openapi.json is always served)."
    )

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if not re.fullmatch(ORIGIN_PATTERN, o)]
        if bad:
            raise ValueError(f"allowed_origins must be scheme://host[:port] without a path: {', '.join(bad)}")
        return [o.lower() for o in v]

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: list[str]) -> list[str]:
        import ipaddress

        for p in v:
            try:
                ipaddress.ip_network(p, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {p!r} is not an IP address or network") from None
        return v


class ServerIncidentsConfig(_Strict):
    """Server side of incidents: notifications and escalation when nobody acknowledges."""

    webhooks: list[WebhookConfig] = Field(default_factory=list)
    email: EmailConfig | None = None
    min_severity: Literal["low", "medium", "high"] = Field("low", description="Notify incidents at least this severe.")
    types: list[str] | None = Field(None, description="Notify only these incident types (default: all).")
    escalate_after_s: float | None = Field(
        300.0, gt=0, description="Escalate an open incident nobody acknowledged after this (None: never)."
    )
    max_escalations: int = Field(
        2, ge=0, le=20, description="Escalate at most this many times (every escalate_after_s)."
    )
    check_interval_s: float = Field(2.0, gt=0, le=3600, description="How often escalations and retries are checked.")
    retries: int = Field(3, ge=0, le=20, description="Attempts per notification and channel beyond the first.")


class HolidaysConfig(_Strict):
    """Public holidays of a site (python ``holidays`` package): forecasts treat them apart from weekdays."""

    country: str = Field("VN", pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 (VN includes Tết).")
    subdivision: str | None = Field(None, max_length=10, description="Province/state code, where it has its own.")
    extra_dates: list[date] = Field(
        default_factory=list, description="Local days treated as holidays too (festivals, bridge days)."
    )

    @model_validator(mode="after")
    def _known_country(self) -> HolidaysConfig:
        import holidays

        if self.country not in holidays.list_supported_countries():
            raise ValueError(f"country {self.country!r} is not known to the holidays package")
        subs = holidays.list_supported_countries()[self.country]
        if self.subdivision is not None and self.subdivision not in subs:
            raise ValueError(f"subdivision {self.subdivision!r} is not one of {self.country}'s ({', '.join(subs)})")
        return self


class ForecastsConfig(_Strict):
    """Server forecasts per counting line and direction, refreshed on a schedule, and flow anomalies."""

    enabled: bool = Field(True, description="Refresh forecasts and watch for flow anomalies.")
    refresh_interval_s: float = Field(900.0, ge=60, le=86400, description="How often forecasts are refreshed.")
    horizon_15min_h: int = Field(6, ge=1, le=48, description="15-minute forecasts this many hours ahead.")
    horizon_hourly_h: int = Field(48, ge=1, le=168, description="Hourly forecasts this many hours ahead.")
    history_days: int = Field(
        400, ge=28, le=1830,
        description="Hourly rollup history given to the model (days): over a year, so the model sees last "
        "year's same week and holidays.",
    )
    history_days_15min: int = Field(
        84, ge=28, le=400, description="15-minute rollup history given to the model (days)."
    )
    min_history_days: int = Field(
        14, ge=1, le=365, description="Fewer observed days than this: no forecast (says so, never invents one)."
    )
    min_coverage: float = Field(
        0.5, gt=0, le=1, description="A bucket the camera observed less than this share of is missing data."
    )
    classes: list[ClassName] = Field(
        default_factory=lambda: ["car", "truck", "bus", "motorcycle", "bicycle"],
        description="Classes summed into the forecast flow.",
    )
    lanes: bool = Field(True, description="Forecast lanes' vehicles entered as well as lines.")
    fit_budget_s: float = Field(
        12.0, ge=0, le=3600,
        description="Seconds one refresh may spend refitting models (the rest predict from their newest model).",
    )
    keep_days: float = Field(90, gt=0, description="Past forecasts kept (forecast vs actual) this many days.")
    holidays: HolidaysConfig = HolidaysConfig()
    sites: dict[Ident, HolidaysConfig] = Field(
        default_factory=dict, description="Holidays per site id where they differ from the default."
    )
    anomaly_window_min: int = Field(
        60, ge=15, le=360, description="Flow anomalies: observed flow over this recent window is compared."
    )
    anomaly_close_after_min: int = Field(
        30, ge=15, le=360, description="A flow anomaly closes when the flow was typical for this long."
    )
    anomaly_severity: Literal["low", "medium", "high"] = "medium"

    @model_validator(mode="after")
    def _consistent(self) -> ForecastsConfig:
        if self.min_history_days > min(self.history_days, self.history_days_15min):
            raise ValueError("min_history_days must not exceed history_days or history_days_15min")
        if self.anomaly_window_min % 15 or self.anomaly_close_after_min % 15:
            raise ValueError("anomaly_window_min and anomaly_close_after_min must be whole quarter hours")
        return self


class ServerConfig(_Strict):
    database_url: str = "sqlite:///data/citywatch.sqlite"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    timezone: str = "Asia/Ho_Chi_Minh"
    client_id: str = Field("citywatch-server", pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    pcu: PCUWeights = PCUWeights()
    retention: RetentionConfig = RetentionConfig()
    ingest: IngestConfig = IngestConfig()
    auth: ServerAuthConfig = ServerAuthConfig()
    incidents: ServerIncidentsConfig = ServerIncidentsConfig()
    forecasts: ForecastsConfig = ForecastsConfig()
    map_tiles_url: str | None = Field(
        None,
        max_length=500,
        pattern=r"^(https?://[^\s'\"]+|/[^\s'\"]*)\{z\}[^\s'\"]*$",
        description="Dashboard map tiles, e.g. https://tiles.example.vn/{z}/{x}/{y}.png (a local tile server; "
        "{s} becomes a). Unset: a plain schematic of the camera positions (works with no internet).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v


class CitywatchConfig(_Strict):
    site: Ident = "site-1"
    mqtt: MQTTConfig = MQTTConfig()
    model: ModelConfig = ModelConfig()
    tracker: TrackerConfig = TrackerConfig()
    counting: CountingConfig = CountingConfig()
    edge: EdgeConfig = EdgeConfig()
    server: ServerConfig = ServerConfig()
    incidents: IncidentsConfig = IncidentsConfig()
    cameras: list[CameraConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_cameras(self) -> CitywatchConfig:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate camera ids: {', '.join(dupes)}")
        return self

    def camera_site(self, camera: CameraConfig) -> str:
        return camera.site or self.site


class ConfigError(Exception):
    """A configuration file that cannot be used; ``errors`` lists ``(key path, message)``."""

    def __init__(self, source: str, errors: list[tuple[str, str]]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  {path}: {msg}" for path, msg in errors)
        super().__init__(f"invalid configuration {source}:\n{lines}")


def _errors(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not allowed here)"
        out.append((path, msg))
    return out


def parse_config(data: Any, source: str = "<config>") -> CitywatchConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [("<root>", "the file must hold a mapping of keys")])
    try:
        return CitywatchConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _errors(exc)) from None


def load_config(path: str | os.PathLike[str]) -> CitywatchConfig:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(str(p), [("<file>", "no such file")])
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        raise ConfigError(str(p), [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    return parse_config(data, str(p))


def validate_camera(data: Any) -> CameraConfig:
    """Validate one camera block (a pushed remote configuration)."""
    try:
        return CameraConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("<camera>", _errors(exc)) from None
