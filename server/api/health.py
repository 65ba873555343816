"""Health: no auth, so load balancers and the demo script can poll it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from server.deps import IngestDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(request: Request, ingest: IngestDep) -> JSONResponse:
    """200 when the database answers (MQTT down only degrades), 503 otherwise."""
    store = getattr(request.app.state, "store", None)
    db_ok = bool(store is not None and await run_in_threadpool(store.ping))
    body: dict[str, Any] = {
        "status": "ok",
        "db": {"ok": db_ok, "dialect": store.dialect if store is not None else None},
        "mqtt": {"enabled": ingest is not None, "connected": bool(ingest and ingest.connected)},
        "ingest": ingest.stats() if ingest is not None else None,
        "auth": "open" if request.app.state.auth.open else "keys",
    }
    if not db_ok:
        body["status"] = "error"
    elif ingest is not None and not ingest.connected:
        body["status"] = "degraded"
    return JSONResponse(body, status_code=200 if db_ok else 503)
