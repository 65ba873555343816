"""FastAPI application factory. The lifespan owns the store (migrations run there) and the MQTT ingest;
nothing is created at import time, so tests can build several apps in one process."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from citywatch.config import CitywatchConfig
from server.api import (
    camera_setup,
    cameras,
    counts,
    dead_letters,
    events,
    forecasts,
    health,
    incidents,
    keys,
    planner,
    session,
    ui,
)
from server.api.params import ERRORS
from server.api_docs import mount_docs
from server.auth import ENV_API_KEYS, Auth, OpenModeRefused, open_mode_problem
from server.forecasting.service import ForecastService
from server.incidents import IncidentService
from server.ingest import Ingest
from server.live import LiveHub
from server.metrics import make_registry, route_template
from server.reference_pictures import ReferencePictures
from server.storage.retention import Retention
from server.storage.store import Store

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_PREFIX = "/api/v1"
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
def trusted_proxies(config: CitywatchConfig) -> list[str]:
    """Proxies whose X-Forwarded-For uvicorn believes: ``server.auth.trusted_proxies``, else the
    ``FORWARDED_ALLOW_IPS`` environment variable uvicorn itself reads; empty: none."""
    env = [p.strip() for p in os.environ.get("FORWARDED_ALLOW_IPS", "").split(",") if p.strip()]
    return list(config.server.auth.trusted_proxies) or env


def create_app(
    config: CitywatchConfig,
    *,
    ingest: bool = True,
    store: Store | None = None,
    api_keys: str | None = None,
    retention: bool | None = None,
    bind_host: str | None = None,
    forecasts_schedule: bool | None = None,
) -> FastAPI:
    """Build the app.

    ``ingest``: start the MQTT subscriber in the lifespan (off for API-only tests).
    ``store``: use this store (the caller closes it) instead of ``Store.from_config(config)``.
    ``api_keys``: ``"role:key,..."``; default: the ``CITYWATCH_API_KEYS`` environment variable.
    ``retention``: prune old rows every ``server.retention.interval_s`` (default: only with its own store).
    ``bind_host``: the address uvicorn binds (default ``server.host``): open local mode refuses any other
    than loopback, and any proxy setting.
    ``forecasts_schedule``: refresh forecasts on ``server.forecasts`` (default: like ``retention``, if enabled).
    """
    auth = Auth.from_spec(api_keys if api_keys is not None else os.environ.get(ENV_API_KEYS), config.server.auth)
    open_problem = open_mode_problem(config.server.auth, bind_host or config.server.host, trusted_proxies(config))
    auth.open_allowed = open_problem is None
    if retention is None:
        retention = store is None  # a caller's store (tests, demo) is the caller's to prune
    hub = LiveHub()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = store is None
        st = store if store is not None else await run_in_threadpool(Store.from_config, config)
        auth.attach_key_source(st.keys.active_key_hashes)
        auth.attach_session_store(st.sessions.is_session_revoked, st.sessions.revoke_session)
        if auth.locked:
            if own_store:
                st.close()
            raise OpenModeRefused(str(open_problem))
        if auth.open:
            auth.announce_open_mode()
        hub.attach_loop(asyncio.get_running_loop())
        incident_service = IncidentService(config, st.incidents, hub)  # before ingest: its store hook stores incidents
        incident_service.start()
        app.state.incidents = incident_service
        ing = Ingest(config, st, hub, references=app.state.references) if ingest else None
        app.state.store = st
        app.state.ingest = ing
        if ing is not None:
            ing.start()
        janitor = Retention(st, config.server.retention) if retention else None
        if janitor is not None:
            janitor.start()
        schedule = retention if forecasts_schedule is None else forecasts_schedule
        forecaster = ForecastService(st, config) if schedule and config.server.forecasts.enabled else None
        if forecaster is not None:
            forecaster.start()
        try:
            yield
        finally:
            if forecaster is not None:
                await run_in_threadpool(forecaster.stop)
            if janitor is not None:
                janitor.stop()
            await run_in_threadpool(incident_service.stop)
            hub.close()
            if ing is not None:
                await run_in_threadpool(ing.stop)
            app.state.ingest = None
            if own_store:
                st.close()

    app = FastAPI(
        title="citywatch",
        description="Traffic counts from citywatch edge cameras",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from a CDN: /docs is served locally (server.api_docs)
        redoc_url=None,
    )
    app.state.config = config
    app.state.auth = auth
    app.state.hub = hub
    app.state.references = ReferencePictures(config.server.privacy.reference_picture_ttl_s)
    app.state.store = None
    app.state.ingest = None
    registry = make_registry(app)
    tiles = ui.tiles_origin(config)  # the dashboard map may load images from the configured tile server
    csp = CSP.replace("img-src 'self' data:", f"img-src 'self' data: {tiles}") if tiles else CSP
    app.state.registry = registry

    routers = (health, cameras, camera_setup, counts, planner, forecasts, events, dead_letters, keys, session)
    for module in (*routers, incidents, ui):
        app.include_router(module.router, prefix=API_PREFIX, responses=ERRORS)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        response = await call_next(request)
        if request.url.path.startswith(API_PREFIX) and not request.url.path.endswith("/live"):
            app.state.request_seconds.labels(
                route_template(request, API_PREFIX), request.method, str(response.status_code)
            ).observe(time.perf_counter() - t0)
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on the page's own
        # POSTs, and the cross-origin check needs the real one. Other sites still get no Referer.
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        """Anything unforeseen: logged in full with a request id, answered without internals."""
        request_id = uuid.uuid4().hex[:16]
        log.error("request %s %s %s failed", request_id, request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            {"detail": "internal server error (the server log has the details)", "request_id": request_id},
            status_code=500,
            headers={"X-Request-ID": request_id},
        )

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    if config.server.auth.api_docs:
        mount_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
