"""Incidents: list and filter, one with its audit trail, acknowledge and resolve (operator or admin), and
the export as FIWARE ``Alert`` entities or CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from citywatch.config import CitywatchConfig
from server import export
from server.api.params import IdParam, aware_time
from server.auth import Principal, require_role
from server.deps import ReaderDep, SettingsDep, StoreDep
from server.incidents import IncidentConflict, IncidentService, IncidentStore

router = APIRouter(tags=["incidents"])

OperatorDep = Annotated[Principal, Depends(require_role("operator"))]
#: Incident ids are UUIDs (the contract): anything else is a 422, never a database error.
IncidentId = Annotated[UUID, Path(description="The incident's UUID.")]
TypeQ = Annotated[
    str | None,
    Query(pattern=r"^(stopped_vehicle|wrong_way|congestion|pedestrian_on_carriageway|cyclist_on_carriageway|"
                  r"crash_candidate|flow_anomaly)$"),
]


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=2000)
    by: str | None = Field(None, min_length=1, max_length=100, description="Operator's name (the audit trail).")


class ResolveIn(StepIn):
    note: str = Field(min_length=1, max_length=2000)


def _incidents(store: Any) -> IncidentStore:
    return IncidentStore.for_store(store)


def _service(request: Request) -> IncidentService | None:
    return getattr(request.app.state, "incidents", None)


@router.get("/incidents")
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


@router.get("/incidents/{incident_id}")
def get_incident(incident_id: IncidentId, store: StoreDep, _who: ReaderDep) -> dict[str, Any]:
    """One incident with its audit trail (``actions``: acknowledgements, resolution, escalations, notices)."""
    rec = _incidents(store).get(str(incident_id))
    if rec is None:
        raise HTTPException(404, detail=f"no incident {incident_id}")
    return rec


def _step(request: Request, store: Any, who: Principal, incident_id: str, action: str, body: StepIn) -> dict[str, Any]:
    actor = body.by or who.role
    db = _incidents(store)
    try:
        if action == "ack":
            rec = db.acknowledge(incident_id, actor, who.role, body.note)
        else:
            rec = db.resolve(incident_id, actor, who.role, body.note or "")
    except IncidentConflict as exc:
        raise HTTPException(409, detail=str(exc)) from None
    if rec is None:
        raise HTTPException(404, detail=f"no incident {incident_id}")
    svc = _service(request)
    if svc is not None:
        svc.publish_status(rec)
    return rec


@router.post("/incidents/{incident_id}/ack")
def acknowledge(
    incident_id: IncidentId, request: Request, store: StoreDep, who: OperatorDep, body: StepIn | None = None
) -> dict[str, Any]:
    """An operator has seen it: escalation stops. 409 when already acknowledged or resolved."""
    return _step(request, store, who, str(incident_id), "ack", body or StepIn())


@router.post("/incidents/{incident_id}/resolve")
def resolve(
    incident_id: IncidentId, request: Request, store: StoreDep, who: OperatorDep, body: ResolveIn
) -> dict[str, Any]:
    """Dealt with, with a note (required). 409 when already resolved."""
    return _step(request, store, who, str(incident_id), "resolve", body)


def _where(settings: CitywatchConfig, store: Any) -> Any:
    configured = {c.id: c for c in settings.cameras}
    known = {r["camera_id"]: r for r in store.list_cameras()}

    def where(cam: str) -> tuple[dict[str, Any] | None, str | None]:
        cfg = configured.get(cam)
        if cfg is not None and cfg.location is not None:
            return export.geo_point(cfg.location.lat, cfg.location.lon), cfg.name or None
        row = known.get(cam, {})
        return export.geo_point(row.get("lat"), row.get("lon")), row.get("name")

    return where


@router.get(
    "/export/incidents",
    response_model=None,
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
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
    where = _where(settings, store)
    out = []
    for it in items:
        location, name = where(it["camera_id"])
        out.append(export.alert(it, location=location, name=name))
    return out
