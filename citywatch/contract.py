"""The event contract between edge and server: the only definition of what travels over MQTT.

Why one file of over 500 lines: the wire is reviewed, versioned and diffed as one unit, and a reader
must see every message and every bound of a version in one place.

Edge and server both import this module; nothing else defines an event. A message on an event topic
is one event or a batch of events (``EventBatch``); a message on a control topic is one of the
``Control*`` models. ``citywatch schema`` prints the JSON Schema of both for non-Python consumers.

Versioning: ``schema_version`` is ``MAJOR.MINOR``. A reader accepts any minor version of its own
major (minor versions only add optional fields, or narrow what is accepted) and rejects another major
with a clear reason. 1.4 added the reference picture (``control/reference_picture`` asks for one,
``.../reference`` carries it: the one image that may leave an edge, see :class:`ReferencePicture`).
1.3 narrowed the wire: every number is bounded (to what the server's columns hold
and what is plausible, see the ``MAX_*`` constants), floats are finite, text is length-bounded and free
of NUL, and JSON types are strict (``"seq": true`` or ``"seq": "1"`` is an error, not 1). A 1.2 edge
whose values were sane is read unchanged.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = "1.4"
SCHEMA_MAJOR = 1
SCHEMA_VERSION_PATTERN = r"^[0-9]{1,4}\.[0-9]{1,4}$"

# --- bounds (1.3) ---------------------------------------------------------------------------------
# Every integer fits the server's signed 64-bit columns (BigInteger) with room for the arithmetic done
# on it, and every bound is far beyond any real camera, so only a broken or hostile sender meets one.

#: A seq is a 63-bit counter: what a signed 64-bit column holds.
MAX_SEQ = 2**63 - 1
#: Track ids, frame numbers and other running totals: exact in a JSON number (a double, as JavaScript
#: reads it on the dashboard). 2^53 frames are 4.7 million years of 60 fps video.
MAX_COUNTER = 2**53 - 1
#: Crossings of one line (or entries into one zone) per second of an interval at most: a 10-lane road
#: at saturation flows about 5 vehicles/s, a crowd over a line some tens of people/s.
MAX_CROSSINGS_PER_S = 100
#: Objects inside one zone at once, vehicles in one queue.
MAX_IN_VIEW = 10_000
MAX_FPS = 1000.0
#: A day: the longest interval, movement or dwell time.
MAX_DURATION_S = 86400.0
#: A century of uptime.
MAX_UPTIME_S = 100 * 366 * 86400.0
MAX_INFERENCE_MS = 3_600_000.0
MAX_QUEUE_M = 100_000.0
MAX_SPEED_KMH = 300.0
#: Times outside these years are refused outright: converting them to UTC or to a local day could
#: overflow. Plausibility (an edge clock back in 1970 or ahead in 2199) is the server's to judge.
MIN_TIME = datetime(1900, 1, 1, tzinfo=timezone.utc)
MAX_TIME = datetime(9000, 1, 1, tzinfo=timezone.utc)

#: No NUL: PostgreSQL text cannot hold it.
_NO_NUL = r"^[^\x00]*$"


def _utc_in_range(v: datetime) -> datetime:
    # the local year, before any conversion can overflow (a year check: cheaper than comparing aware times)
    if not MIN_TIME.year <= v.year < MAX_TIME.year:
        raise ValueError(f"time must be in the years [{MIN_TIME.year}, {MAX_TIME.year})")
    return v.astimezone(timezone.utc)


#: An aware time in the representable range, as UTC.
Time = Annotated[AwareDatetime, AfterValidator(_utc_in_range)]
Seq = Annotated[int, Field(ge=1, le=MAX_SEQ)]
Counter = Annotated[int, Field(ge=0, le=MAX_COUNTER)]


#: Free text of at most 64, 128 or 500 characters, without NUL.
Text64 = Annotated[str, Field(max_length=64, pattern=_NO_NUL)]
Text128 = Annotated[str, Field(max_length=128, pattern=_NO_NUL)]
Message500 = Annotated[str, Field(max_length=500, pattern=_NO_NUL)]

#: Classes citywatch counts, in this order everywhere (detections carry indices into it).
CLASS_NAMES: tuple[str, ...] = ("car", "truck", "bus", "motorcycle", "bicycle", "person")
ClassName = Literal["car", "truck", "bus", "motorcycle", "bicycle", "person"]
#: Road vehicles, bicycles included: what blurs as a plate carrier, what the stopped-vehicle and congestion rules watch.
VEHICLE_CLASSES: frozenset[str] = frozenset({"car", "truck", "bus", "motorcycle", "bicycle"})
#: Motor vehicles only: the tracks that the offline tracking scores (MOTA, IDF1) compare with ground truth.
MOTOR_VEHICLE_CLASSES: frozenset[str] = frozenset({"car", "truck", "bus", "motorcycle"})
Direction = Literal["in", "out"]
SourceState = Literal["starting", "ok", "reconnecting", "ended", "error"]
IncidentType = Literal[
    "stopped_vehicle", "wrong_way", "congestion", "pedestrian_on_carriageway", "cyclist_on_carriageway",
    "crash_candidate",
]
IncidentState = Literal["open", "update", "closed"]
Severity = Literal["low", "medium", "high"]
#: Order of severities, for sorting and thresholds (low < medium < high).
SEVERITY_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2}
TamperSign = Literal["view_moved", "covered", "out_of_focus", "too_dark"]

#: Identifiers end up in MQTT topics and URLs: no wildcards, slashes or spaces.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)


def is_id(value: str) -> bool:
    """``value`` may name a camera, site, line or zone (topic levels, URL parts, table keys)."""
    return _ID_RE.fullmatch(value) is not None


Ident = Annotated[str, Field(pattern=ID_PATTERN)]

#: Namespace of the deterministic event ids (uuid5), fixed forever: changing it breaks de-duplication.
EVENT_NAMESPACE = uuid.UUID("6f1c3d2e-8a4b-5c7d-9e0f-1a2b3c4d5e6f")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def deterministic_event_id(camera_id: str, kind: str, *parts: object) -> uuid.UUID:
    """Same camera, kind and source position give the same id, so a replayed clip de-duplicates."""
    key = "|".join([camera_id, kind, *(str(p) for p in parts)])
    return uuid.uuid5(EVENT_NAMESPACE, key)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EventBase(_Model):
    schema_version: str = Field(default=SCHEMA_VERSION, pattern=SCHEMA_VERSION_PATTERN)
    event_id: uuid.UUID
    camera_id: Ident
    site_id: Ident
    seq: Seq = Field(description="Per-camera, strictly increasing, assigned by the edge outbox.")
    ts: Time = Field(description="When it happened, by the edge clock (UTC).")
    config_version: Text64
    model_version: Text128

    @field_validator("schema_version")
    @classmethod
    def _same_major(cls, v: str) -> str:
        major = int(v.split(".", 1)[0])
        if major != SCHEMA_MAJOR:
            raise ValueError(f"schema major version {major} is not supported (this reader speaks {SCHEMA_MAJOR}.x)")
        return v


class LineCrossing(EventBase):
    """A confirmed track crossed a counting line (counted at most once per line and direction)."""

    kind: Literal["line_crossing"] = "line_crossing"
    line_id: Ident
    direction: Direction
    class_name: ClassName
    track_id: Counter
    frame_index: Counter = Field(description="Frame of the source at which the crossing was seen.")
    speed_kmh: float | None = Field(default=None, ge=0, le=MAX_SPEED_KMH)


class CameraStatus(EventBase):
    """Heartbeat: how the camera and its edge pipeline are doing."""

    kind: Literal["camera_status"] = "camera_status"
    source_state: SourceState
    fps_in: float = Field(ge=0, le=MAX_FPS)
    fps_processed: float = Field(ge=0, le=MAX_FPS)
    inference_ms: float = Field(ge=0, le=MAX_INFERENCE_MS)
    outbox_depth: int = Field(ge=0, le=MAX_SEQ, description="Events kept on the edge, not yet committed by the server.")
    outbox_first_seq: Seq | None = Field(
        default=None,
        description="Lowest seq the edge still keeps; everything below was committed or is gone for good.",
    )
    uptime_s: float = Field(ge=0, le=MAX_UPTIME_S)
    frames_total: Counter = 0
    frames_offered: Counter | None = Field(default=None, description="Frames the source delivered (1.3).")
    frames_detected: Counter | None = Field(default=None, description="...the detector ran on (1.3).")
    frames_skipped: Counter | None = Field(
        default=None, description="...skipped by design (adaptive stride, catching up), bridged by the tracker (1.3)."
    )
    message: Message500 | None = None
    tamper: list[TamperSign] = Field(
        default_factory=list, max_length=8, description="Signs the camera was tampered with (1.1)."
    )


class CountTotal(EventBase):
    """Line crossings merged on the edge while its outbox was full (added in 1.2).

    ``count`` crossings of one line, direction and class whose edge times fall in
    ``[interval_start, interval_end)``; only never-published crossings are merged, so the server never
    holds both a crossing and a total that includes it. ``ts`` is ``interval_start``.
    """

    kind: Literal["count_total"] = "count_total"
    line_id: Ident
    direction: Direction
    class_name: ClassName
    count: int = Field(ge=1, le=MAX_CROSSINGS_PER_S * 86400, description="At most MAX_CROSSINGS_PER_S per s.")
    interval_start: Time
    interval_end: Time
    interval_s: int = Field(ge=1, le=86400)
    first_frame_index: Counter
    last_frame_index: Counter

    @model_validator(mode="after")
    def _ordered(self) -> CountTotal:
        if self.interval_end <= self.interval_start:
            raise ValueError("interval_end must be after interval_start")
        if self.count > MAX_CROSSINGS_PER_S * self.interval_s:
            raise ValueError(
                f"count {self.count} is more than {MAX_CROSSINGS_PER_S} crossings/s over interval_s {self.interval_s}"
            )
        if self.last_frame_index < self.first_frame_index:
            raise ValueError("last_frame_index must not be before first_frame_index")
        return self


class ZoneOccupancy(EventBase):
    """A zone's (or lane's) state over the interval ending at ``ts`` (added in 1.1)."""

    kind: Literal["zone_occupancy"] = "zone_occupancy"
    zone_id: Ident
    lane: bool = Field(default=False, description="True when zone_id names a lane of the configuration.")
    interval_s: float = Field(gt=0, le=MAX_DURATION_S)
    frame_index: Counter
    occupancy: dict[ClassName, Annotated[int, Field(ge=0, le=MAX_IN_VIEW)]] = Field(
        default_factory=dict, description="Tracks inside at ts, by class."
    )
    occupied_fraction: float = Field(ge=0, le=1, description="Share of the interval with anything inside.")
    vehicles_entered: int = Field(
        default=0, ge=0, le=MAX_CROSSINGS_PER_S * 86400, description="At most MAX_CROSSINGS_PER_S per s."
    )
    mean_dwell_s: float | None = Field(default=None, ge=0, le=MAX_DURATION_S)
    queue_length_m: float | None = Field(default=None, ge=0, le=MAX_QUEUE_M)
    queue_vehicles: int | None = Field(default=None, ge=0, le=MAX_IN_VIEW)
    mean_speed_kmh: float | None = Field(default=None, ge=0, le=MAX_SPEED_KMH)

    @model_validator(mode="after")
    def _plausible(self) -> ZoneOccupancy:
        if self.vehicles_entered > MAX_CROSSINGS_PER_S * max(self.interval_s, 1.0):
            raise ValueError(
                f"vehicles_entered {self.vehicles_entered} is more than {MAX_CROSSINGS_PER_S}/s "
                f"over interval_s {self.interval_s}"
            )
        return self


class Movement(EventBase):
    """A track's origin -> destination through entry and exit zones (turning movements; added in 1.1)."""

    kind: Literal["movement"] = "movement"
    track_id: Counter
    class_name: ClassName
    entry_zone: Ident
    exit_zone: Ident
    entry_frame: Counter
    exit_frame: Counter
    duration_s: float = Field(ge=0, le=MAX_DURATION_S)
    speed_kmh: float | None = Field(default=None, ge=0, le=MAX_SPEED_KMH)


class Incident(EventBase):
    """An incident's lifecycle: ``open``, any ``update``s, then ``closed`` (added in 1.1)."""

    kind: Literal["incident"] = "incident"
    incident_id: uuid.UUID
    incident_type: IncidentType
    state: IncidentState
    severity: Severity = "medium"
    confidence: float = Field(default=1.0, ge=0, le=1)
    lane_id: Ident | None = None
    zone_id: Ident | None = None
    track_ids: list[Counter] = Field(default_factory=list, max_length=100)
    started_at: Time
    ended_at: Time | None = None
    snapshot_id: Text128 | None = Field(
        default=None, description="Evidence image kept on the edge."
    )
    message: Message500 | None = None


Event = Annotated[
    LineCrossing | CameraStatus | CountTotal | ZoneOccupancy | Movement | Incident, Field(discriminator="kind")
]
EVENT_KINDS: tuple[str, ...] = (
    "line_crossing", "camera_status", "count_total", "zone_occupancy", "movement", "incident",
)


class EventBatch(_Model):
    """Many events of one camera in one message (published on the ``batch`` kind topic)."""

    schema_version: str = Field(default=SCHEMA_VERSION, pattern=SCHEMA_VERSION_PATTERN)
    kind: Literal["batch"] = "batch"
    events: list[Event] = Field(min_length=1, max_length=1000)


AnyEvent = LineCrossing | CameraStatus | CountTotal | ZoneOccupancy | Movement | Incident
Message = Annotated[
    LineCrossing | CameraStatus | CountTotal | ZoneOccupancy | Movement | Incident | EventBatch,
    Field(discriminator="kind"),
]
_message_adapter: TypeAdapter[Any] = TypeAdapter(Message)


def read_message(payload: bytes | str) -> tuple[str, list[AnyEvent]]:
    """Parse one MQTT event payload (one pass, no separate ``json.loads``): ``(message kind, events)``,
    where the kind is ``"batch"`` for an envelope. Raises ``pydantic.ValidationError`` or ``ValueError``.

    Strict: a JSON type that would only be coerced (``true`` or ``"1"`` for an integer, ``1`` for a
    boolean) is an error; times and UUIDs are read from their JSON strings."""
    msg = _message_adapter.validate_json(payload, strict=True)
    if isinstance(msg, EventBatch):
        return "batch", list(msg.events)
    return msg.kind, [msg]


def parse_message(payload: bytes | str) -> list[AnyEvent]:
    """Parse one MQTT event payload into its events; raises ``pydantic.ValidationError`` or ``ValueError``."""
    return read_message(payload)[1]


# --- server -> edge ---------------------------------------------------------------------------


class ControlCommitted(_Model):
    """The server has committed every event of this camera up to and including ``seq`` (retained)."""

    schema_version: str = SCHEMA_VERSION
    kind: Literal["committed"] = "committed"
    camera_id: Ident
    seq: int = Field(ge=0, le=MAX_SEQ)
    ts: Time = Field(default_factory=utcnow)


class ControlReplay(_Model):
    """Ask the edge to publish again the events it keeps in ``[from_seq, to_seq]``."""

    schema_version: str = SCHEMA_VERSION
    kind: Literal["replay"] = "replay"
    camera_id: Ident
    from_seq: Seq
    to_seq: Seq | None = None
    request_id: uuid.UUID = Field(default_factory=uuid.uuid4)


class ControlConfig(_Model):
    """Push a new camera configuration (lines, lanes, zones); validated by the edge before it applies it."""

    schema_version: str = SCHEMA_VERSION
    kind: Literal["config"] = "config"
    camera_id: Ident
    config_version: Text64
    camera: dict[str, Any]


#: Seconds of video a reference picture's median may span at most (it holds frames in memory).
MAX_REFERENCE_SECONDS = 60.0


class ControlReferencePicture(_Model):
    """Ask the edge for one reference picture (added in 1.4): a temporal median of ``seconds`` of
    frames, people and plates blurred, published once on ``.../reference``. An edge whose
    ``edge.reference_picture.enabled`` is false ignores it."""

    schema_version: str = SCHEMA_VERSION
    kind: Literal["reference_picture"] = "reference_picture"
    camera_id: Ident
    request_id: Ident
    seconds: float = Field(default=10.0, gt=0, le=MAX_REFERENCE_SECONDS)


AnyControl = ControlCommitted | ControlReplay | ControlConfig | ControlReferencePicture
Control = Annotated[AnyControl, Field(discriminator="kind")]
_control_adapter: TypeAdapter[AnyControl] = TypeAdapter(Control)


def parse_control(payload: bytes | str) -> AnyControl:
    """Parse a control message, strictly like :func:`read_message`."""
    return _control_adapter.validate_json(payload, strict=True)


# --- edge -> server: the reference picture ------------------------------------------------------

#: What a reference picture's JPEG may weigh at most: its message (base64, a third more) stays far
#: under the shipped broker's ``max_packet_size`` (1 MiB, deploy/mosquitto/mosquitto.conf).
MAX_REFERENCE_JPEG_BYTES = 256 * 1024
_MAX_REFERENCE_B64 = (MAX_REFERENCE_JPEG_BYTES + 2) // 3 * 4


class ReferencePicture(_Model):
    """One still picture of a camera's view for drawing lines and zones (added in 1.4).

    The only image that leaves an edge, and only on an admin's request: a temporal median of
    ``frames_used`` frames (moving people and vehicles vanish), then blurred where the detector still
    finds people or vehicles (plates), JPEG in base64."""

    schema_version: str = Field(default=SCHEMA_VERSION, pattern=SCHEMA_VERSION_PATTERN)
    kind: Literal["reference_picture"] = "reference_picture"
    camera_id: Ident
    site_id: Ident
    request_id: Ident
    taken_at: Time
    width: int = Field(ge=1, le=16384)
    height: int = Field(ge=1, le=16384)
    frames_used: int = Field(ge=1, le=100_000)
    blurred_regions: int = Field(default=0, ge=0, le=MAX_IN_VIEW)
    #: the camera's frame size the picture was scaled down from: lines and zones are drawn in these pixels
    frame_width: int | None = Field(default=None, ge=1, le=16384)
    frame_height: int | None = Field(default=None, ge=1, le=16384)
    jpeg_base64: str = Field(min_length=4, max_length=_MAX_REFERENCE_B64, pattern=r"^[A-Za-z0-9+/]+={0,2}$")


def parse_reference(payload: bytes | str) -> ReferencePicture:
    """Parse a ``.../reference`` payload, strictly like :func:`read_message`."""
    return ReferencePicture.model_validate_json(payload, strict=True)


class StatusPayload(_Model):
    """Retained on ``.../status``: ``online`` on connect, ``offline`` as the last will."""

    state: Literal["online", "offline"]
    camera_id: Ident
    device_id: Text128
    ts: Time | None = None


def parse_status(payload: bytes | str) -> StatusPayload:
    """Parse a ``.../status`` payload, strictly like :func:`read_message`."""
    return StatusPayload.model_validate_json(payload, strict=True)


# --- topics -----------------------------------------------------------------------------------


class Topics:
    """``<prefix>/<site>/<camera>/event/<kind>``, ``.../status``, ``.../control/<kind>`` and ``.../reference``."""

    def __init__(self, prefix: str) -> None:
        prefix = prefix.strip("/")
        if not prefix or any(c in prefix for c in "+#") or "//" in prefix:
            raise ValueError(f"invalid MQTT topic prefix {prefix!r}")
        self.prefix = prefix

    def event(self, site: str, camera: str, kind: str) -> str:
        return f"{self.prefix}/{site}/{camera}/event/{kind}"

    def status(self, site: str, camera: str) -> str:
        return f"{self.prefix}/{site}/{camera}/status"

    def control(self, site: str, camera: str, kind: str) -> str:
        return f"{self.prefix}/{site}/{camera}/control/{kind}"

    def reference(self, site: str, camera: str) -> str:
        """Where a camera publishes its reference picture (its own topic: the ACL grants it alone)."""
        return f"{self.prefix}/{site}/{camera}/reference"

    # Filters the server subscribes to and the edge subscribes to.
    def all_events(self) -> str:
        return f"{self.prefix}/+/+/event/+"

    def all_status(self) -> str:
        return f"{self.prefix}/+/+/status"

    def all_references(self) -> str:
        return f"{self.prefix}/+/+/reference"

    def camera_control(self, site: str, camera: str) -> str:
        return f"{self.prefix}/{site}/{camera}/control/+"

    def parse(self, topic: str) -> tuple[str, str, str, str | None]:
        """Return ``(site, camera, channel, kind)`` for a topic under this prefix, else raise ValueError."""
        if not topic.startswith(self.prefix + "/"):
            raise ValueError(f"topic {topic!r} is not under prefix {self.prefix!r}")
        parts = topic[len(self.prefix) + 1 :].split("/")
        if len(parts) == 3 and parts[2] in ("status", "reference"):
            return parts[0], parts[1], parts[2], None
        if len(parts) == 4 and parts[2] in ("event", "control"):
            return parts[0], parts[1], parts[2], parts[3]
        raise ValueError(
            f"topic {topic!r} does not match {self.prefix}/<site>/<camera>/(event|control)/<kind>, "
            f"{self.prefix}/<site>/<camera>/status or {self.prefix}/<site>/<camera>/reference"
        )


def json_schema() -> dict[str, Any]:
    """JSON Schema of everything on the wire: event messages and control messages."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"citywatch MQTT contract {SCHEMA_VERSION}",
        "schema_version": SCHEMA_VERSION,
        "event_message": _message_adapter.json_schema(),
        "control_message": _control_adapter.json_schema(),
        "status_message": StatusPayload.model_json_schema(),
        "reference_picture_message": ReferencePicture.model_json_schema(),
    }


__all__ = [
    "CLASS_NAMES",
    "MOTOR_VEHICLE_CLASSES",
    "SEVERITY_RANK",
    "VEHICLE_CLASSES",
    "EVENT_KINDS",
    "SCHEMA_VERSION",
    "AnyEvent",
    "CameraStatus",
    "ControlCommitted",
    "ControlConfig",
    "ControlReferencePicture",
    "ControlReplay",
    "CountTotal",
    "Event",
    "EventBatch",
    "Incident",
    "LineCrossing",
    "Movement",
    "ReferencePicture",
    "StatusPayload",
    "Topics",
    "ZoneOccupancy",
    "deterministic_event_id",
    "json_schema",
    "parse_control",
    "parse_message",
    "parse_reference",
    "parse_status",
    "utcnow",
]
