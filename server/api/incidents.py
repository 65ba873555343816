"""Incidents: list and filter, one with its audit trail, acknowledge and resolve (operator or admin), and
the export as FIWARE ``Alert`` entities or CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from server import export
from server.api.models import IncidentDetailOut, IncidentOut, IncidentsOut
from server.api.params import (
    CONFLICT,
    CSV_CONTENT,
    ENTITIES_SCHEMA,
    NOT_FOUND,
    IdParam,
    aware_time,
    bad,
    conflict,
    not_found,
)
from server.auth import Principal, get_auth, hash_key, presented_key, require_role
from server.deps import ReaderDep, SettingsDep, StoreDep
from server.incidents import IncidentService
from server.storage.incidents import IncidentConflict, IncidentStore
from server.storage.store import Store

router = APIRouter(tags=["incidents"])

OperatorDep = Annotated[Principal, Depends(require_role("operator"))]
#: Incident ids are UUIDs (the contract): anything else is a 422, never a database error.
IncidentId = Annotated[UUID, Path(description="The incident's UUID.")]
TypeQ = Annotated[
    str | None,
    Query(pattern=r"^(stopped_vehicle|wrong_way|congestion|pedestrian_on_carriageway|cyclist_on_carriageway|"
                  r"crash_candidate|flow_anomaly)$"),
]


#: Who acts, as the audit trail records them: a person's name (surrounding spaces dropped).
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=2000)
    by: Name | None = Field(
        None,
        description="The name of the person acting, recorded in the audit trail. Required from a browser "
        "session and in open local mode; a client with an API key that gives none is recorded under the "
        "key's name.",
    )


class ResolveIn(StepIn):
    note: str = Field(min_length=1, max_length=2000)


def _incidents(store: Store) -> IncidentStore:
    return store.incidents


def _service(request: Request) -> IncidentService | None:
    return getattr(request.app.state, "incidents", None)


@router.get("/incidents", response_model=IncidentsOut)
def list_incidents(
    store: StoreDep,
    _who: ReaderDep,
    type: TypeQ = None,  # noqa: A002 - the public query parameter name
    camera_id: IdParam = None,
    state: Annotated[Literal["open", "closed"] | None, Query()] = None,
    status: Annotated[Literal["new", "acknowledged", "resolved"] | None, Query()] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> dict[str, Any]:
    """Newest first. ``since``/``until``: incidents active in that range."""
    items, total = _incidents(store).list(
        incident_type=type, camera_id=camera_id, state=state, status=status,
        since=aware_time("since", since), until=aware_time("until", until), limit=limit, offset=offset,
    )
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/incidents/{incident_id}", response_model=IncidentDetailOut, responses=NOT_FOUND)
def get_incident(incident_id: IncidentId, store: StoreDep, _who: ReaderDep) -> dict[str, Any]:
    """One incident with its audit trail (``actions``: acknowledgements, resolution, escalations, notices)."""
    rec = _incidents(store).get(str(incident_id))
    if rec is None:
        raise not_found(f"no incident {incident_id}")
    return rec


def _actor(request: Request, store: Any, who: Principal, by: str | None) -> str:
    """Who the audit trail records: the person ``by`` names; a client with an API key that names nobody
    (a machine) under the key's name. A browser session or open local mode must name the person: a role
    ("operator") says nothing about who acknowledged."""
    if by:
        return by
    key = presented_key(request) if who.via == "header" else None
    if key:
        label = get_auth(request).env_key_label(key)
        name = None if label else store.keys.name_of(hash_key(key))
        if label or name:
            return (label or f"API key {name!r}")[:100]  # the audit trail's column width
    raise bad("by", "say who acts: the name of the person acknowledging or resolving", where="body")


def _step(request: Request, store: Any, who: Principal, incident_id: str, action: str, body: StepIn) -> dict[str, Any]:
    actor = _actor(request, store, who, body.by)
    db = _incidents(store)
    try:
        if action == "ack":
            rec = db.acknowledge(incident_id, actor, who.role, body.note)
        else:
            rec = db.resolve(incident_id, actor, who.role, body.note or "")
    except IncidentConflict as exc:
        raise conflict(str(exc)) from None
    if rec is None:
        raise not_found(f"no incident {incident_id}")
    svc = _service(request)
    if svc is not None:
        svc.publish_status(rec)
    return rec


@router.post("/incidents/{incident_id}/ack", response_model=IncidentOut, responses=NOT_FOUND | CONFLICT)
def acknowledge(
    incident_id: IncidentId, request: Request, store: StoreDep, who: OperatorDep, body: StepIn | None = None
) -> dict[str, Any]:
    """An operator has seen it: escalation stops. ``by`` names who (a browser session or open local mode
    must give it). 409 when already acknowledged or resolved."""
    return _step(request, store, who, str(incident_id), "ack", body or StepIn())


@router.post(
    "/incidents/{incident_id}/resolve", response_model=IncidentOut, responses=NOT_FOUND | CONFLICT
)
def resolve(
    incident_id: IncidentId, request: Request, store: StoreDep, who: OperatorDep, body: ResolveIn
) -> dict[str, Any]:
    """Dealt with, with a note (required). 409 when already resolved."""
    return _step(request, store, who, str(incident_id), "resolve", body)


@router.get(
    "/export/incidents",
    response_model=None,
    responses={200: {"content": {"application/json": {"schema": ENTITIES_SCHEMA}, **CSV_CONTENT}}},
)
def export_incidents(
    store: StoreDep,
    settings: SettingsDep,
    _who: ReaderDep,
    format: Annotated[Literal["fiware", "csv"], Query()] = "fiware",  # noqa: A002
    type: TypeQ = None,  # noqa: A002
    camera_id: IdParam = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> Any:
    """FIWARE ``Alert`` entities (key-values, category ``traffic``, UTC times) or CSV (UTF-8 with BOM, city
    times with offset): the one time rule of every export, ``server.export.TIME_RULE``."""
    items, _ = _incidents(store).list(
        incident_type=type, camera_id=camera_id, since=aware_time("since", since), until=aware_time("until", until),
        limit=limit,
    )
    if format == "csv":
        return Response(
            export.incidents_csv(items, settings.server.timezone), media_type=export.CSV_MEDIA_TYPE,
            headers=export.attachment(export.incidents_file_name(since, until, settings.server.timezone)),
        )
    place = export.camera_places(settings, store.list_cameras())
    out = []
    for it in items:
        at = place(it["camera_id"])
        out.append(export.alert(it, location=at.location, name=at.name))
    return out
