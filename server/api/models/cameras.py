"""Response models of the camera routes: registry, health, configuration and its history, audit."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from server.api.models.base import LatLon, Number, Out
from server.camera_health import Level

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
