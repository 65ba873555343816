"""FastAPI dependencies: everything the routers need comes from ``app.state`` set by the lifespan."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request

from citywatch.config import CitywatchConfig
from server.auth import Principal, Role, require_role
from server.ingest import ControlChannel, Ingest
from server.live import LiveHub
from server.reference_pictures import ReferencePictures
from server.storage.store import Store


def get_store(request: Request) -> Store:
    store = getattr(request.app.state, "store", None)
    if store is None:
        raise HTTPException(503, detail="the database is not ready")
    return cast(Store, store)


def get_settings(request: Request) -> CitywatchConfig:
    return cast(CitywatchConfig, request.app.state.config)


def get_hub(request: Request) -> LiveHub:
    return cast(LiveHub, request.app.state.hub)


def get_ingest(request: Request) -> Ingest | None:
    return getattr(request.app.state, "ingest", None)


def get_control(request: Request) -> ControlChannel | None:
    """Control messages to the edges (None: the ingest, which holds the broker connection, is off)."""
    ingest = get_ingest(request)
    return ingest.control if ingest is not None else None


def get_references(request: Request) -> ReferencePictures:
    """Reference pictures held in memory for the configuration editor."""
    return cast(ReferencePictures, request.app.state.references)


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[CitywatchConfig, Depends(get_settings)]
HubDep = Annotated[LiveHub, Depends(get_hub)]
IngestDep = Annotated[Ingest | None, Depends(get_ingest)]
ControlDep = Annotated[ControlChannel | None, Depends(get_control)]
ReferencesDep = Annotated[ReferencePictures, Depends(get_references)]

READERS: tuple[Role, ...] = ("operator", "planner")
ReaderDep = Annotated[Principal, Depends(require_role(*READERS))]
AdminDep = Annotated[Principal, Depends(require_role("admin"))]
