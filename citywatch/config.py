"""One YAML file configures an edge box, a server or the demo; pydantic validates all of it.

Secrets never live in the file: MQTT credentials are read from the environment variables the file
names. Errors name the key path (``cameras.0.lines.1.points``) so an installer can find the typo.
"""

from __future__ import annotations

import hashlib
import json
import os
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
    tls: TLSConfig = TLSConfig()
    shared_group: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]+$", description="Server only: subscribe via $share/<group>/ to scale out."
    )

    def credentials(self) -> tuple[str | None, str | None]:
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
    kind: Literal["generic", "entry", "exit", "parking", "carriageway"] = "generic"
    _check = field_validator("polygon")(_polygon)


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
    version: str | None = Field(None, max_length=64, description="Config version; defaults to a content hash.")

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
        body = self.model_dump(mode="json", exclude={"version", "name", "location"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


class ModelConfig(_Strict):
    weights: Path | None = Field(
        None, description="Model file or OpenVINO folder; default: $CITYWATCH_WEIGHTS, then weights/yolov8n.pt"
    )
    backend: Literal["auto", "ultralytics", "onnxruntime", "openvino"] = "auto"
    imgsz: int = Field(640, ge=64, le=2048, multiple_of=32)
    confidence: float = Field(0.25, gt=0, lt=1)
    iou: float = Field(0.5, gt=0, lt=1)
    agnostic_nms: bool = Field(
        True, description="One box per object across classes: a pickup seen as car and truck is one vehicle."
    )
    classes: list[ClassName] = Field(default_factory=lambda: list(CLASS_NAMES))
    device: str = "cpu"
    threads: int | None = Field(None, ge=1, le=256, description="Inference threads; default: all cores.")


class TrackerConfig(_Strict):
    """ByteTrack settings (the ``trackers`` package); only confirmed tracks are counted."""

    track_activation_threshold: float = Field(0.4, gt=0, lt=1, description="Score to start a track.")
    high_conf_det_threshold: float = Field(0.4, gt=0, lt=1, description="First-stage association score.")
    minimum_iou_threshold: float = Field(0.1, gt=0, lt=1)
    lost_track_buffer: int = Field(30, ge=0, le=600, description="Frames (at 30 fps) a lost track is kept.")
    minimum_consecutive_frames: int = Field(3, ge=1, le=60, description="Frames before a track is confirmed.")


class CountingConfig(_Strict):
    min_travel_px: float = Field(4.0, ge=0, description="Anchor must move this far across the line.")
    hysteresis_px: float = Field(2.0, ge=0, description="Dead band around the line; no side inside it.")
    track_ttl_frames: int = Field(150, ge=1, description="Per-track counting state dropped after this.")


class EdgeConfig(_Strict):
    device_id: Ident = "edge-01"
    outbox_path: Path = Path("data/outbox.sqlite")
    heartbeat_s: float = Field(10.0, gt=0, le=3600)
    resend_after_s: float = Field(20.0, gt=0, description="Re-publish events not committed after this.")
    max_inflight: int = Field(200, ge=1, le=10000)
    batch_size: int = Field(50, ge=1, le=1000)


class ServerConfig(_Strict):
    database_url: str = "sqlite:///data/citywatch.sqlite"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    timezone: str = "Asia/Ho_Chi_Minh"
    client_id: str = Field("citywatch-server", pattern=r"^[A-Za-z0-9_.-]{1,128}$")

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
