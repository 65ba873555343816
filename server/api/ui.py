"""What the dashboard needs besides the data endpoints: its settings (time zone, map tiles, PCU
weights, each camera's lines, lanes and zones) and the observed share of every bucket in a range
(``/coverage``), so that a chart draws a camera that was down as a gap, not as zero traffic."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query

from citywatch.config import CitywatchConfig
from citywatch.contract import CLASS_NAMES
from server.api.models import CoverageOut, UiConfigOut
from server.api.params import BUCKET_SECONDS, FromQ, IdParam, ToQ, city_offset_s, time_range
from server.deps import ReaderDep, SettingsDep, StoreDep
from server.storage.history import epoch_bounds

router = APIRouter(tags=["dashboard"])

MAX_COVERAGE_BUCKETS = 5000


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
    (``null``: a schematic), PCU weights and each configured camera's lines, lanes and zones."""
    w = settings.server.pcu
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
) -> dict[str, Any]:
    """Every bucket of the range (the same buckets as ``/flow``), with the seconds observed and
    ``coverage`` = observed / (bucket length x cameras). Without ``camera_id``: the cameras that
    observed anything in the range. ``coverage`` 0 is a data gap (camera down), not zero traffic."""
    bucket_s = int(BUCKET_SECONDS[bucket] or 3600)
    start, end = time_range("from", from_, to, timedelta(hours=24), bucket_s)
    lo, hi = epoch_bounds(start, end)
    off = city_offset_s(settings, start)
    first = (lo + off) // bucket_s * bucket_s - off
    if (hi - first) / bucket_s > MAX_COVERAGE_BUCKETS:
        first = hi  # the caller asked for too many buckets: an empty list, not a slow answer
    obs = store.history.observed(
        lo, hi, bucket_s=bucket_s, offset_s=off, camera_ids=[camera_id] if camera_id else None
    )
    cams = {camera_id} if camera_id else {cam for _, cam in obs}
    by_bucket: dict[int, float] = {}
    for (b, _cam), seconds in obs.items():
        by_bucket[b] = by_bucket.get(b, 0.0) + seconds
    tz = ZoneInfo(settings.server.timezone)
    rows = []
    for b in range(first, hi, bucket_s):
        span = float(min(b + bucket_s, hi) - max(b, lo))
        seconds = by_bucket.get(b, 0.0)
        rows.append(
            {
                "bucket_start": datetime.fromtimestamp(b, tz).isoformat(),
                "observed_s": round(seconds, 1),
                "coverage": round(min(1.0, seconds / (span * len(cams))), 4) if cams and span > 0 else 0.0,
            }
        )
    return {
        "bucket": bucket,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "timezone": settings.server.timezone,
        "cameras": sorted(cams),
        "rows": rows,
    }
