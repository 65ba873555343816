"""What the dashboard needs besides the data endpoints: its settings (time zone, map tiles, PCU
weights, each camera's lines, lanes and zones) and the observed share of every bucket in a range
(``/coverage``), so that a chart draws a camera that was down as a gap, not as zero traffic."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query

from citywatch.config import CitywatchConfig
from citywatch.contract import CLASS_NAMES
from server.api.coverage import coverage_answer
from server.api.models import CoverageOut, UiConfigOut
from server.api.params import BUCKET_SECONDS, FromQ, IdParam, ToQ, time_range
from server.coverage import MAX_COVERAGE_BUCKETS
from server.deps import ReaderDep, SettingsDep, StoreDep

router = APIRouter(tags=["dashboard"])


def tiles_origin(config: CitywatchConfig) -> str | None:
    """``scheme://host[:port]`` of the configured tile server (for the page's CSP), None if unset or local."""
    url = config.server.map_tiles_url
    if not url or url.startswith("/"):
        return None
    parts = urlsplit(url.replace("{s}", "a"))
    return f"{parts.scheme}://{parts.netloc}"


@router.get("/ui-config", response_model=UiConfigOut)
def ui_config(settings: SettingsDep, who: ReaderDep) -> dict[str, Any]:
    """Dashboard settings: the city's time zone (every time on the page is shown in it), map tiles
    (``null``: a schematic), PCU weights and each configured camera's lines, lanes and zones, and whether
    this user may see its reference picture (``server.privacy``)."""
    w = settings.server.pcu
    privacy = settings.server.privacy
    sees = who.role == "admin" or privacy.operators_see_reference_picture
    return {
        "role": who.role,
        "timezone": settings.server.timezone,
        "map": {"tiles_url": settings.server.map_tiles_url},
        "pcu_weights": {c: float(getattr(w, c)) for c in CLASS_NAMES},
        "classes": list(CLASS_NAMES),
        "heartbeat_s": settings.edge.heartbeat_s,
        "cameras": [
            {
                "id": c.id,
                "name": c.name or c.id,
                "location": c.location.model_dump() if c.location else None,
                "lines": [{"id": ln.id, "labels": dict(ln.labels)} for ln in c.lines],
                "lanes": [ln.id for ln in c.lanes],
                "zones": [{"id": z.id, "kind": z.kind} for z in c.zones],
                "reference_picture": sees and privacy.allows_reference(settings.camera_site(c)),
            }
            for c in settings.cameras
        ],
    }


@router.get("/coverage", response_model=CoverageOut)
def coverage(
    store: StoreDep,
    settings: SettingsDep,
    _who: ReaderDep,
    camera_id: IdParam = None,
    from_: FromQ = None,
    to: ToQ = None,
    bucket: Annotated[str, Query(pattern=r"^(1m|15m|1h|1d)$")] = "1h",
    max_buckets: Annotated[int, Query(ge=1, le=MAX_COVERAGE_BUCKETS)] = MAX_COVERAGE_BUCKETS,
) -> dict[str, Any]:
    """Every bucket of the range (the same buckets as ``/flow``) with the seconds observed, the seconds
    that could have been observed and ``coverage`` = observed / observable. ``state`` says why a bucket
    is empty: ``gap`` (a camera existed but observed nothing: down, not zero traffic), ``before_install``
    (before the first status or data of every camera asked about), ``future``; else ``partial`` or
    ``observed``. Without ``camera_id``: every configured or known camera. A range needing more than
    ``max_buckets`` is answered at the finest coarser bucket that fits (``bucket``, ``coarsened``,
    ``message``), never with an empty list."""
    start, end = time_range("from", from_, to, timedelta(hours=24), BUCKET_SECONDS[bucket])
    return coverage_answer(store, settings, camera_id, start, end, bucket, max_buckets)
