"""Cameras: the configured ones (even before they report) merged with what the database knows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter

from citywatch.contract import utcnow
from server.deps import ReaderDep, SettingsDep, StoreDep

router = APIRouter(tags=["cameras"])

STATUS_FIELDS = (
    "source_state",
    "fps_in",
    "fps_processed",
    "inference_ms",
    "outbox_depth",
    "outbox_first_seq",
    "uptime_s",
    "frames_total",
    "message",
    "ts",
    "seq",
)


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() if v else None


@router.get("/cameras")
def list_cameras(store: StoreDep, settings: SettingsDep, _who: ReaderDep) -> dict[str, Any]:
    """One entry per camera; ``stale`` means online but not heard from for 3 heartbeats (min 60 s)."""
    rows = {r["camera_id"]: r for r in store.list_cameras()}
    stale_after = timedelta(seconds=max(60.0, 3 * settings.edge.heartbeat_s))
    now = utcnow()
    out: list[dict[str, Any]] = []
    configured = {c.id: c for c in settings.cameras}
    for cam_id in list(configured) + sorted(set(rows) - set(configured)):
        cfg = configured.get(cam_id)
        row = rows.get(cam_id, {})
        location = None
        if cfg is not None and cfg.location is not None:
            location = {"lat": cfg.location.lat, "lon": cfg.location.lon}
        elif row.get("lat") is not None and row.get("lon") is not None:
            location = {"lat": row["lat"], "lon": row["lon"]}
        last_status = row.get("last_status") or None
        status = {k: last_status.get(k) for k in STATUS_FIELDS} if last_status else None
        last_seen = row.get("last_seen")
        state = row.get("state") or "unknown"
        out.append(
            {
                "id": cam_id,
                "site": row.get("site_id") or (settings.camera_site(cfg) if cfg else None),
                "name": (cfg.name if cfg and cfg.name else None) or row.get("name") or cam_id,
                "location": location,
                "configured": cfg is not None,
                "state": state,
                "stale": bool(state == "online" and last_seen and now - last_seen > stale_after),
                "first_seen": _iso(row.get("first_seen")),
                "last_seen": _iso(last_seen),
                "committed_seq": int(row.get("committed_seq") or 0),
                "status": status,
                "config_version": row.get("config_version"),
                "model_version": row.get("model_version"),
                "lines": [ln.id for ln in cfg.lines] if cfg else [],
            }
        )
    return {"cameras": out}
