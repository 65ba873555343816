"""Response models of the API, by resource, so that the OpenAPI document describes every answer.

The routes build plain dicts; FastAPI validates them against these models. Every model lets a key it
does not name through (``extra="allow"``): a field a route adds before its model does still reaches the
client instead of vanishing. Numbers that are sometimes whole are ``int | float`` so that a ``180`` is not
sent as ``180.0``. Times are ISO-8601 strings with an offset (the city's time zone unless said).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.camera_health import Level

Number = int | float


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class RangeOut(Out):
    """The range actually served: ``[from, to)``."""

    from_: str = Field(alias="from")
    to: str


# --- counts and flows ----------------------------------------------------------------------------


class CountRow(Out):
    bucket_start: str | None
    camera_id: str
    line_id: str
    direction: str
    class_name: str
    count: int


class CountsOut(RangeOut):
    bucket: str
    timezone: str
    rows: list[CountRow]
    total: int


class FlowRow(Out):
    bucket_start: str | None = Field(description="None: the whole range (bucket total).")
    camera_id: str
    line_id: str
    direction: str
    counts: dict[str, int] = Field(description="Vehicles by class.")
    total: int
    pcu: Number
    mean_speed_kmh: Number | None
    speed_samples: int
    observed_s: Number = Field(description="Seconds the camera was observing in the bucket.")
    coverage: Number | None = Field(description="Observed share of the bucket: 0 is a data gap, not zero traffic.")


class FlowOut(RangeOut):
    bucket: str
    unit: Literal["vehicles", "pcu"]
    timezone: str
    pcu_weights: dict[str, Number]
    rows: list[FlowRow]
    total: Number


class PeriodOut(RangeOut):
    cameras: list[str] = Field(description="The camera set of both periods.")
    counts: dict[str, int]
    total: int
    pcu: Number
    observed_s: Number
    observed_h: Number
    coverage: Number | None = Field(description="Observed share of what could have been observed.")
    per_observed_hour: Number | None = Field(description="None under 15 observed minutes: no rate from noise.")
    pcu_per_observed_hour: Number | None


class ChangeOut(Out):
    total: int | None = Field(description="None unless both periods were observed alike (totals_comparable).")
    total_pct: Number | None
    totals_comparable: bool = Field(description="Both observed shares within 5 points.")
    per_observed_hour_pct: Number | None
    pcu_per_observed_hour_pct: Number | None


class CompareOut(Out):
    a: PeriodOut
    b: PeriodOut
    change: ChangeOut
    notes: list[str] = Field(description="Why a figure is missing.")


class ProfileHour(Out):
    hour_of_week: int = Field(description="0 = Monday 00:00 local.")
    day: str
    hour: int
    total: int
    counts: dict[str, int]
    pcu: Number
    observed_h: Number
    per_observed_hour: Number | None
    pcu_per_observed_hour: Number | None


class ProfileOut(RangeOut):
    timezone: str
    hours: list[ProfileHour]


class OdRow(Out):
    camera_id: str
    entry_zone: str
    exit_zone: str
    count: int
    by_class: dict[str, int]
    mean_duration_s: Number
    mean_speed_kmh: Number | None


class OdOut(RangeOut):
    camera_id: str
    origins: list[str]
    destinations: list[str]
    matrix: list[list[int]] = Field(description="matrix[origin][destination]: movements.")
    rows: list[OdRow]
    total: int


class ZoneRow(Out):
    bucket_start: str | None
    camera_id: str
    zone_id: str
    lane: bool
    samples: int
    reported_s: Number
    occupancy: Number | None = Field(description="Share of the reported time the zone was occupied.")
    vehicles_entered: int
    mean_occupancy: dict[str, Number]
    mean_queue_m: Number | None
    mean_queue_vehicles: Number | None
    mean_speed_kmh: Number | None


class OccupancyOut(RangeOut):
    bucket: str
    rows: list[ZoneRow]


# --- dashboard -----------------------------------------------------------------------------------


class LatLon(Out):
    lat: float
    lon: float


class UiLine(Out):
    id: str
    labels: dict[str, str]


class UiZone(Out):
    id: str
    kind: str


class UiCamera(Out):
    id: str
    name: str
    location: LatLon | None
    lines: list[UiLine]
    lanes: list[str]
    zones: list[UiZone]
    reference_picture: bool = Field(
        description="This user may see the camera's reference picture (its site allows them, and the role)."
    )


class UiMap(Out):
    tiles_url: str | None


class UiConfigOut(Out):
    role: str
    timezone: str
    map: UiMap
    pcu_weights: dict[str, Number]
    classes: list[str]
    heartbeat_s: Number
    cameras: list[UiCamera]


class CoverageRow(Out):
    bucket_start: str
    observed_s: Number
    observable_s: Number = Field(description="Seconds that could have been observed (before now, after install).")
    coverage: Number | None = Field(description="observed / observable; None when nothing was observable.")
    state: Literal["gap", "before_install", "future", "partial", "observed"]


class CoverageOut(RangeOut):
    bucket: str = Field(description="The bucket answered (coarser than asked when the range needs it).")
    requested_bucket: str
    coarsened: bool
    max_buckets: int
    message: str | None
    timezone: str
    cameras: list[str]
    gaps: int = Field(description="Buckets in state gap.")
    rows: list[CoverageRow]


# --- cameras -------------------------------------------------------------------------------------


class CameraStatus(Out):
    """The camera's last heartbeat (``camera_status`` event) fields the API shows."""

    source_state: str | None = None
    fps_in: Number | None = None
    fps_processed: Number | None = None
    inference_ms: Number | None = None
    outbox_depth: int | None = None
    outbox_first_seq: int | None = None
    uptime_s: Number | None = None
    frames_total: int | None = None
    message: str | None = None
    ts: str | None = None
    seq: int | None = None


class CameraOut(Out):
    id: str
    site: str | None
    name: str
    location: LatLon | None
    configured: bool = Field(description="In this server's configuration (else only known from its messages).")
    state: str
    stale: bool
    health: Level = Field(description="One rule (server.camera_health): down, stale, unknown, degraded, alert, ok.")
    health_reasons: list[str] = Field(description="Why the level is not ok (reason codes).")
    status_age_s: float | None = Field(description="Seconds since the last status; the page keeps ageing it.")
    stale_after_s: float = Field(description="Age after which a status is stale.")
    open_incidents: int = Field(description="Unresolved incidents of this camera.")
    tamper: list[str]
    pushed_config_version: str | None
    pushed_at: str | None
    replay_requests: int
    first_seen: str | None
    last_seen: str | None
    committed_seq: int
    status: CameraStatus | None
    config_version: str | None
    model_version: str | None
    lines: list[str]


class CamerasOut(Out):
    cameras: list[CameraOut]


class CameraDetailOut(CameraOut):
    config: dict[str, Any] | None = Field(description="The configured ``cameras[]`` block.")
    pushed_config: dict[str, Any] | None = Field(description="The block last pushed over MQTT.")


class ConfigSentOut(Out):
    camera_id: str
    site: str
    config_version: str
    sent: bool


class ReferenceRequestedOut(Out):
    request_id: str
    camera_id: str


class ConfigProblemOut(Out):
    """``path``: the key path (``lines.0.points``); ``element``: the line, lane or zone id it is in."""

    path: str
    element: str | None
    message: str


class ConfigCheckOut(Out):
    ok: bool
    errors: list[ConfigProblemOut]


class ConfigVersionOut(Out):
    version: str
    pushed_at: str
    pushed_by: str
    config: dict[str, Any]
    confirmed_at: str | None = Field(description="When its edge first reported running it.")


class ConfigVersionsOut(Out):
    camera_id: str
    confirmed_version: str | None = Field(description="What the edge's last status says it runs.")
    versions: list[ConfigVersionOut] = Field(description="Newest first.")


class AuditRowOut(Out):
    id: int
    at: str
    actor: str
    role: str
    action: str
    camera_id: str | None
    detail: dict[str, Any] | None


class AuditOut(Out):
    items: list[AuditRowOut] = Field(description="Newest first.")


# --- events, dead letters ------------------------------------------------------------------------


class EventsOut(Out):
    events: list[dict[str, Any]] = Field(description="Contract messages as stored, plus ``received_at``.")


class DeadLetter(Out):
    id: int
    received_at: str
    topic: str
    reason: str
    payload: str | None
    payload_b64: str | None
    size_bytes: int
    truncated: bool


class DeadLettersOut(Out):
    items: list[DeadLetter]
    total: int
    limit: int
    offset: int


# --- keys and sessions ---------------------------------------------------------------------------


class KeyOut(Out):
    id: int
    role: str
    name: str
    prefix: str = Field(description="The key's first characters: identifies it, never the secret.")
    created_at: str
    revoked_at: str | None


class KeysOut(Out):
    keys: list[KeyOut]


class NewKeyOut(KeyOut):
    key: str = Field(description="The secret: shown this once.")


class LoginOut(Out):
    role: str
    mode: Literal["open", "keys"]


class WhoAmIOut(LoginOut):
    via: Literal["open", "header", "cookie"]


# --- incidents -----------------------------------------------------------------------------------

#: Who acknowledged or resolved: a person, or the key of a machine client; never a bare role.
WHO = (
    "The name the person gave; for a client with an API key that gave none, the key: \"API key 'name'\" "
    "(a managed key) or \"API key N of CITYWATCH_API_KEYS\"."
)


class IncidentOut(Out):
    incident_id: str
    camera_id: str
    site_id: str
    incident_type: str
    state: str
    severity: str
    confidence: Number
    lane_id: str | None
    zone_id: str | None
    track_ids: list[int]
    started_at: str
    ended_at: str | None
    snapshot_id: str | None
    message: str | None
    updates: int
    received_at: str
    updated_at: str
    status: str
    acknowledged_at: str | None
    acknowledged_by: str | None = Field(description=WHO)
    resolved_at: str | None
    resolved_by: str | None = Field(description=WHO)
    resolution_note: str | None
    escalation_level: int


class IncidentAction(Out):
    at: str
    action: str
    actor: str | None = Field(description=WHO + " \"system\" for the server's own (notices, escalations).")
    role: str | None = Field(description="The role the person or key acted in.")
    note: str | None


class IncidentDetailOut(IncidentOut):
    actions: list[IncidentAction] = Field(description="The audit trail, oldest first.")


class IncidentsOut(Out):
    items: list[IncidentOut]
    total: int
    limit: int
    offset: int


# --- forecasts -----------------------------------------------------------------------------------


class SeriesStatus(Out):
    """A series' forecast status; the counts of days only once the series was refreshed."""

    status: str
    message: str | None
    observed_days: Number | None = None
    needed_days: int | None = None
    refreshed_at: str | None = None


class SeriesOut(SeriesStatus):
    camera_id: str
    kind: str
    series_id: str
    direction: str | None
    site_id: str | None
    anomaly_open: bool


class SeriesListOut(Out):
    series: list[SeriesOut]


class VsActualRow(Out):
    bucket_start: str
    forecast: Number | None
    lo80: Number | None
    hi80: Number | None
    actual: Number | None = Field(description="None where the camera observed too little: missing, not zero.")
    coverage: Number


class VsActualOut(SeriesStatus):
    camera_id: str
    kind: str
    series_id: str
    direction: str | None
    freq: str
    from_: str = Field(alias="from")
    to: str
    timezone: str
    rows: list[VsActualRow]


class TypicalHour(Out):
    hour_of_week: int
    day: str
    hour: int
    n: int
    q10: Number | None
    q25: Number | None
    median: Number | None
    q75: Number | None
    q90: Number | None


class TypicalWeekOut(RangeOut):
    camera_id: str
    kind: str
    series_id: str
    direction: str | None
    timezone: str
    hours: list[TypicalHour]


class AnomalyOut(Out):
    incident_id: str
    camera_id: str
    kind: str
    series_id: str
    direction: str | None
    anomaly: str
    window_start: str
    window_end: str
    expected: Number
    lo80: Number
    hi80: Number
    observed: Number
    state: str | None
    status: str | None
    severity: str | None


class AnomaliesOut(RangeOut):
    items: list[AnomalyOut]


# --- health --------------------------------------------------------------------------------------


class DbHealth(Out):
    ok: bool
    state: Literal["ok", "slow", "down"]
    detail: str | None
    dialect: str | None


class MqttHealth(Out):
    enabled: bool
    connected: bool


class HealthOut(Out):
    status: Literal["ok", "degraded", "error"]
    problems: list[str]
    db: DbHealth
    mqtt: MqttHealth
    ingest: dict[str, Any] | None = Field(description="The ingest's counters and state; None without MQTT.")
    auth: Literal["open", "keys"]
