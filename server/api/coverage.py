"""The ``/coverage`` answer and the cameras' install times, shared by the planner endpoints.

The rules (future, before install, gap, partial, observed; coarsening of long ranges) are in
:mod:`server.coverage`; this module only gathers their inputs from the store and shapes the JSON.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

from citywatch.config import CitywatchConfig
from citywatch.contract import utcnow
from server.api.params import city_offset_s
from server.coverage import BUCKET_S, MAX_COVERAGE_BUCKETS, bucket_coverage, fit_bucket
from server.storage.history import epoch_bounds
from server.storage.store import Store


class CoverageRow(TypedDict):
    bucket_start: str
    observed_s: float
    observable_s: float
    coverage: float | None
    state: str


def query_cameras(store: Store, settings: CitywatchConfig, camera_ids: Sequence[str] | None) -> list[str]:
    """The cameras a query is about: the ones named, else every configured or known camera."""
    if camera_ids:
        return sorted(set(camera_ids))
    return sorted({c.id for c in settings.cameras} | {r["camera_id"] for r in store.list_cameras()})


#: store -> camera -> (install, monotonic time read): an install moves only when older data arrives (an
#: import, a replay), so a minute-old answer is good enough and every chart saves 16 queries a camera.
_INSTALLS: weakref.WeakKeyDictionary[Store, dict[str, tuple[int | None, float]]] = weakref.WeakKeyDictionary()
INSTALL_CACHE_S = 60.0


def installs(store: Store, cameras: Sequence[str]) -> dict[str, int | None]:
    """Each camera's first sign of life (epoch s): its first status or its earliest data, whichever is
    first (replayed or imported data may predate the first status). None: never heard from."""
    if not cameras:
        return {}
    cache = _INSTALLS.setdefault(store, {})
    now = time.monotonic()
    fresh = {c: cache[c][0] for c in cameras if c in cache and now - cache[c][1] < INSTALL_CACHE_S}
    missing = [c for c in cameras if c not in fresh]
    if missing:
        for cam, t in _read_installs(store, missing).items():
            cache[cam] = (t, now)
            fresh[cam] = t
    return {c: fresh[c] for c in cameras}


def _read_installs(store: Store, cameras: Sequence[str]) -> dict[str, int | None]:
    first = store.history.first_data(cameras)
    seen = {r["camera_id"]: r["first_seen"] for r in store.list_cameras()}
    out: dict[str, int | None] = {}
    for cam in cameras:
        t = seen.get(cam)
        s = int((t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()) if t is not None else None
        known = [v for v in (first.get(cam), s) if v is not None]
        out[cam] = min(known) if known else None
    return out


def coverage_answer(
    store: Store,
    settings: CitywatchConfig,
    camera_id: str | None,
    start: datetime,
    end: datetime,
    bucket: str,
    max_buckets: int = MAX_COVERAGE_BUCKETS,
) -> dict[str, Any]:
    """Every bucket of ``[start, end)`` with its observed seconds, coverage and state; a range that
    would need more than ``max_buckets`` is answered at a coarser bucket, named in the answer."""
    lo, hi = epoch_bounds(start, end)
    off = city_offset_s(settings, start)
    fit = fit_bucket(bucket, lo, hi, off, max_buckets)
    bucket_s = BUCKET_S[fit.bucket]
    cams = query_cameras(store, settings, [camera_id] if camera_id else None)
    obs = store.history.observed(lo, hi, bucket_s=bucket_s, offset_s=off, camera_ids=cams) if cams else {}
    by_bucket: dict[int, float] = {}
    for (b, _cam), seconds in obs.items():
        by_bucket[b] = by_bucket.get(b, 0.0) + seconds
    tz = ZoneInfo(settings.server.timezone)
    now = utcnow().timestamp()
    rows: list[CoverageRow] = [
        {
            "bucket_start": datetime.fromtimestamp(r.start, tz).isoformat(),
            "observed_s": r.observed_s,
            "observable_s": r.observable_s,
            "coverage": r.coverage,
            "state": r.state,
        }
        for r in bucket_coverage(lo, hi, bucket_s, off, now, installs(store, cams), by_bucket)
    ]
    return {
        "bucket": fit.bucket,
        "requested_bucket": fit.requested,
        "coarsened": fit.coarsened,
        "max_buckets": fit.max_buckets,
        "message": fit.message,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "timezone": settings.server.timezone,
        "cameras": cams,
        "gaps": sum(r["state"] == "gap" for r in rows),
        "rows": rows,
    }
