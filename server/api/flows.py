"""What the flow endpoints and the exports share: the bucket and filter parameters, PCU weights and
the ``/flow`` rows themselves (one computation, so a chart, a CSV and a FIWARE entity agree)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import Depends

from citywatch.config import CitywatchConfig
from citywatch.contract import CLASS_NAMES, ClassName, Direction, utcnow
from server.api.coverage import installs
from server.api.params import BUCKET_SECONDS, IdParam, city_offset_s
from server.coverage import observable_seconds
from server.storage.history import FlowFilter, epoch_bounds
from server.storage.store import Store

Unit = Literal["vehicles", "pcu"]


def flow_filter(
    camera_id: IdParam = None,
    line_id: IdParam = None,
    direction: Direction | None = None,
    class_name: ClassName | None = None,
) -> FlowFilter:
    """The camera/line/direction/class query parameters every flow endpoint takes."""
    return FlowFilter([camera_id] if camera_id else None, line_id, direction, class_name)


FlowFilterDep = Annotated[FlowFilter, Depends(flow_filter)]


def pcu_weights(settings: CitywatchConfig) -> dict[str, float]:
    w = settings.server.pcu
    return {c: float(getattr(w, c)) for c in CLASS_NAMES}


def flow_rows(
    store: Store,
    settings: CitywatchConfig,
    start: datetime,
    end: datetime,
    bucket: str,
    flt: FlowFilter,
) -> list[dict[str, Any]]:
    """``/flow`` rows: per bucket (or in total), camera, line and direction, with the camera's observed
    seconds and ``coverage`` = observed / observable (in the range, before now, after its install)."""
    bucket_s = BUCKET_SECONDS[bucket]
    off = city_offset_s(settings, start)
    lo, hi = epoch_bounds(start, end)
    cells = store.history.flow(lo, hi, bucket_s=bucket_s, offset_s=off, flt=flt)
    cams = sorted({k[1] for k in cells})
    observed = store.history.observed(lo, hi, bucket_s=bucket_s, offset_s=off, camera_ids=cams) if cams else {}
    first = installs(store, cams)
    now = utcnow().timestamp()
    tz = ZoneInfo(settings.server.timezone)
    w = pcu_weights(settings)
    rows = []
    for (b, cam, line, d), cell in sorted(cells.items(), key=lambda kv: (kv[0][0] or 0, *kv[0][1:])):
        a, z = (max(b, lo), min(b + bucket_s, hi)) if b is not None and bucket_s else (lo, hi)
        obs = observed.get((b, cam), 0.0)
        # observable: inside the range, before now and after the camera's install (None: data, no status)
        installed = first.get(cam)
        span = observable_seconds(a, z, now, [installed if installed is not None else a])
        rows.append(
            {
                "bucket_start": datetime.fromtimestamp(b, tz).isoformat() if b is not None else None,
                "camera_id": cam,
                "line_id": line,
                "direction": d,
                "counts": dict(cell.counts),
                "total": cell.total,
                "pcu": round(sum(w[c] * n for c, n in cell.counts.items()), 3),
                "mean_speed_kmh": round(cell.speed_sum / cell.speed_n, 2) if cell.speed_n else None,
                "speed_samples": cell.speed_n,
                "observed_s": round(obs, 1),
                "coverage": round(min(1.0, obs / span), 4) if span > 0 else None,
            }
        )
    return rows
