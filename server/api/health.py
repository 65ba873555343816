"""Health: no auth, so load balancers, the demo script and the dashboard can poll it.

``status``: ``ok``; ``degraded`` (HTTP 200) when the database is slow to answer (a locked table, an
overloaded or hung server) or ingest is not ``ok`` (``Ingest.health``: stalled, retrying, disconnected,
too many dead letters); ``error`` (HTTP 503) when the database refuses or fails. ``problems`` says why.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from server.api.models import HealthOut
from server.deps import IngestDep
from server.storage.store import Store

router = APIRouter(tags=["health"])

DbState = Literal["ok", "slow", "down"]


class _Ping:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.done = threading.Event()
        self.result: tuple[DbState, str | None] = ("down", "not answered")


class DbProbe:
    """At most one database ping in flight, and an answer within ``timeout_s`` even when the database
    does not answer at all (a hung ping is waited for, never stacked up by later checks)."""

    def __init__(self, store: Store, timeout_s: float) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._ping: _Ping | None = None
        #: The newest answer, for ``/metrics``: ``(state, detail)``.
        self.last: tuple[DbState, str | None] = ("ok", None)

    def _run(self, ping: _Ping) -> None:
        try:
            ping.result = self.store.db.probe(self.timeout_s)
        finally:
            ping.done.set()

    def check(self) -> tuple[DbState, str | None]:
        """Blocks up to ``timeout_s`` (plus a little for the round trip): call it from a worker thread."""
        with self._lock:
            ping = self._ping
            if ping is None or ping.done.is_set():
                ping = self._ping = _Ping()
                threading.Thread(target=self._run, args=(ping,), name="citywatch-db-probe", daemon=True).start()
        # the server-side timeouts answer first; this one covers a server that says nothing at all
        wait = self.timeout_s + 1.0 - (time.monotonic() - ping.started)
        if ping.done.wait(max(0.0, wait)):
            self.last = ping.result
        else:
            self.last = ("slow", f"the database did not answer within {self.timeout_s:g} s")
        return self.last


def db_probe(app: FastAPI) -> DbProbe | None:
    """The app's probe of its current store (made on first use)."""
    store = getattr(app.state, "store", None)
    if store is None:
        return None
    probe = getattr(app.state, "db_probe", None)
    if probe is None or probe.store is not store:
        probe = app.state.db_probe = DbProbe(store, app.state.config.server.ingest.db_timeout_s)
    return probe


def health_report(app: Any, ingest: Any) -> tuple[dict[str, Any], int]:
    """The ``/health`` body and HTTP status (blocking: the database is pinged)."""
    store = getattr(app.state, "store", None)
    probe = db_probe(app)
    db_state, db_detail = probe.check() if probe is not None else ("down", "the database is not open yet")
    problems: list[str] = []
    if db_detail:
        problems.append(db_detail)
    ingest_stats = ingest.stats() if ingest is not None else None
    if ingest_stats is not None:
        problems.extend(ingest_stats["problems"])
    status = "ok"
    if db_state == "down":
        status = "error"
    elif db_state == "slow" or (ingest_stats is not None and ingest_stats["state"] != "ok"):
        status = "degraded"
    body: dict[str, Any] = {
        "status": status,
        "problems": problems,
        "db": {
            "ok": db_state == "ok",
            "state": db_state,
            "detail": db_detail,
            "dialect": store.dialect if store is not None else None,
        },
        "mqtt": {"enabled": ingest is not None, "connected": bool(ingest and ingest.connected)},
        "ingest": ingest_stats,
        "auth": "open" if app.state.auth.open else "keys",
    }
    return body, 503 if status == "error" else 200


@router.get(
    "/health",
    response_class=JSONResponse,
    responses={200: {"model": HealthOut}, 503: {"model": HealthOut, "description": "The database is down."}},
)
async def health(request: Request, ingest: IngestDep) -> JSONResponse:
    """200 ``ok`` or ``degraded`` (with ``problems``), 503 ``error`` when the database fails."""
    body, code = await run_in_threadpool(health_report, request.app, ingest)
    return JSONResponse(body, status_code=code)
