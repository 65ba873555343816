"""Response models of events, dead letters, keys and sessions, incidents and health."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from server.api.models.base import Number, Out

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
    '(a managed key) or "API key N of CITYWATCH_API_KEYS".'
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
    actor: str | None = Field(description=WHO + ' "system" for the server\'s own (notices, escalations).')
    role: str | None = Field(description="The role the person or key acted in.")
    note: str | None


class IncidentDetailOut(IncidentOut):
    actions: list[IncidentAction] = Field(description="The audit trail, oldest first.")


class IncidentsOut(Out):
    items: list[IncidentOut]
    total: int
    limit: int
    offset: int


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
