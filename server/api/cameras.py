"""Cameras: the configured ones (even before they report) merged with what the database knows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from citywatch.contract import utcnow
from server import camera_health
from server.api.models import CameraDetailOut, CamerasOut
from server.api.params import NOT_FOUND, IdPath, not_found
from server.deps import ReaderDep, SettingsDep, StoreDep
from server.storage.store import Store

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


def _open_incidents(store: Store) -> dict[str, int]:
    """Unresolved incidents per camera (new or acknowledged, ended or not): the operator still owes them."""
    db = store.incidents
    out: dict[str, int] = {}
    for status in ("new", "acknowledged"):
        items, _ = db.list(status=status, limit=1000)
        for it in items:
            out[it["camera_id"]] = out.get(it["camera_id"], 0) + 1
    return out


@router.get("/cameras", response_model=CamerasOut)
def list_cameras(store: StoreDep, settings: SettingsDep, _who: ReaderDep) -> dict[str, Any]:
    """One entry per camera with its ``health`` by the one rule (:mod:`server.camera_health`): level,
    ``health_reasons``, ``status_age_s`` and ``stale_after_s`` (the page ages the status itself, so a
    frozen page goes stale too); ``stale`` means online but not heard from for 3 heartbeats (min 60 s)."""
    rows = {r["camera_id"]: r for r in store.list_cameras()}
    states = store.cameras.camera_states()
    stale_after = camera_health.stale_after_s(settings)
    open_incidents = _open_incidents(store)
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
        health = camera_health.assess(
            state, last_seen, last_status, now, stale_after=stale_after, open_incidents=open_incidents.get(cam_id, 0)
        )
        pushed = states.get(cam_id, {})
        out.append(
            {
                "id": cam_id,
                "site": row.get("site_id") or (settings.camera_site(cfg) if cfg else None),
                "name": (cfg.name if cfg and cfg.name else None) or row.get("name") or cam_id,
                "location": location,
                "configured": cfg is not None,
                "state": state,
                "stale": health.level == "stale",
                "health": health.level,
                "health_reasons": health.reasons,
                "status_age_s": round(health.age_s, 1) if health.age_s is not None else None,
                "stale_after_s": stale_after,
                "open_incidents": open_incidents.get(cam_id, 0),
                "checked_at": now.isoformat(),
                "tamper": (last_status or {}).get("tamper") or [],
                "pushed_config_version": pushed.get("pushed_config_version"),
                "pushed_at": _iso(pushed.get("pushed_at")),
                "replay_requests": pushed.get("replay_requests", 0),
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


@router.get("/cameras/{camera_id}", response_model=CameraDetailOut, responses=NOT_FOUND)
def camera_detail(camera_id: IdPath, store: StoreDep, settings: SettingsDep, _who: ReaderDep) -> dict[str, Any]:
    """One camera: registry entry, its configured block (lines, lanes, zones) and the last pushed one."""
    cams = {c["id"]: c for c in list_cameras(store, settings, _who)["cameras"]}
    if camera_id not in cams:
        raise not_found(f"unknown camera {camera_id!r}")
    cfg = next((c for c in settings.cameras if c.id == camera_id), None)
    pushed = store.cameras.camera_states().get(camera_id, {})
    return {
        **cams[camera_id],
        "config": cfg.model_dump(mode="json") if cfg else None,
        "pushed_config": pushed.get("pushed_config"),
    }
