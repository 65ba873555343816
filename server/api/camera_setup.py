"""Setting a camera up from the browser (admin): its reference picture, checking and pushing a
configuration, the versions pushed and a rollback, and the audit log of all of it.

The reference picture is the one image that leaves an edge, so it is built as a privacy exception:
off unless ``server.privacy.reference_pictures`` allows the camera's site (and the edge allows it,
``edge.reference_picture.enabled``), asked for by an admin, held in memory only
(:mod:`server.reference_pictures`), and every request and every picture served is in the audit log.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Response
from fastapi import status as http

from citywatch.config import CameraConfig, CitywatchConfig, ConfigError, validate_camera
from citywatch.contract import MAX_REFERENCE_SECONDS, utcnow
from server.api.models import AuditOut, ConfigCheckOut, ConfigSentOut, ConfigVersionsOut, ReferenceRequestedOut
from server.api.params import CONFLICT, NOT_FOUND, IdParam, IdPath, bad, conflict, invalid, not_found, unavailable
from server.auth import Principal
from server.deps import AdminDep, ControlDep, ReaderDep, ReferencesDep, SettingsDep, StoreDep
from server.ingest import ControlChannel
from server.storage.store import Store

router = APIRouter(tags=["camera setup"])

JPEG_CONTENT: dict[str, Any] = {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}
#: A camera block's lists whose items have an ``id`` an error can name.
_ELEMENT_LISTS = ("lines", "lanes", "zones")


def actor(principal: Principal, store: Store) -> str:
    """Who, for the audit log: a managed key's name, else the key's fingerprint; open local mode says so."""
    if principal.key_id is None:
        return "local (open mode)"
    for k in store.keys.list_api_keys():
        if k["key_hash"].startswith(principal.key_id):
            return f"key {k['name']!r} ({principal.key_id})"
    return f"key {principal.key_id}"


def _audit(store: Store, who: Principal, action: str, camera_id: str, **detail: Any) -> None:
    store.audit.add(actor(who, store), who.role, action, camera_id, detail or None)


def _site_of(camera_id: str, store: Store, settings: CitywatchConfig) -> str:
    """The camera's site: configured, else as its edge reports it; 404 for a camera nobody knows."""
    cfg = next((c for c in settings.cameras if c.id == camera_id), None)
    if cfg is not None:
        return settings.camera_site(cfg)
    row = next((r for r in store.list_cameras() if r["camera_id"] == camera_id), None)
    if row is None:
        raise not_found(f"unknown camera {camera_id!r}")
    return str(row["site_id"] or settings.site)


def _allowed_site(camera_id: str, store: Store, settings: CitywatchConfig) -> str:
    site = _site_of(camera_id, store, settings)
    if not settings.server.privacy.allows_reference(site):
        raise conflict(
            f"site {site!r} does not allow reference pictures (server.privacy.reference_pictures; the edge "
            "needs edge.reference_picture.enabled too)"
        )
    return site


# --- the reference picture -------------------------------------------------------------------------


@router.post(
    "/cameras/{camera_id}/reference-picture",
    status_code=202,
    response_model=ReferenceRequestedOut,
    responses={**NOT_FOUND, **CONFLICT},
)
def request_reference_picture(
    camera_id: IdPath,
    store: StoreDep,
    settings: SettingsDep,
    control: ControlDep,
    references: ReferencesDep,
    who: AdminDep,
    seconds: Annotated[float, Query(gt=0, le=MAX_REFERENCE_SECONDS, description="Video the median spans.")] = 10.0,
) -> dict[str, Any]:
    """Ask the camera's edge for one reference picture (admin; audit-logged): a median of ``seconds`` of
    video with people and plates blurred. Fetch it with GET when it has arrived (404 until then)."""
    site = _allowed_site(camera_id, store, settings)
    if control is None or not control.connected:
        raise unavailable("not connected to the MQTT broker: the request cannot be sent")
    request_id = uuid.uuid4().hex
    references.expect(camera_id, request_id)
    _audit(store, who, "reference_picture_requested", camera_id, request_id=request_id, seconds=seconds)
    if not control.request_reference(site, camera_id, request_id, seconds):
        raise unavailable("the broker did not acknowledge the request")
    return {"request_id": request_id, "camera_id": camera_id}


@router.get(
    "/cameras/{camera_id}/reference-picture",
    response_class=Response,
    responses={200: {"content": JPEG_CONTENT, "description": "The picture (JPEG)."}, **NOT_FOUND, **CONFLICT},
)
def get_reference_picture(
    camera_id: IdPath,
    store: StoreDep,
    settings: SettingsDep,
    references: ReferencesDep,
    who: ReaderDep,
) -> Response:
    """The camera's reference picture while the server holds it (admins; operators and planners only when
    ``server.privacy.operators_see_reference_picture``). Every picture served is audit-logged."""
    if who.role != "admin" and not settings.server.privacy.operators_see_reference_picture:
        raise HTTPException(http.HTTP_403_FORBIDDEN, detail="only admins may see reference pictures here")
    _allowed_site(camera_id, store, settings)
    pic = references.get(camera_id)
    if pic is None:
        waiting = references.waiting(camera_id)
        raise not_found(
            "no reference picture yet: it takes the requested seconds and a little more; if none comes, the "
            "edge may be offline or not allow it (edge.reference_picture.enabled)"
            if waiting
            else "no reference picture: ask for one (POST), it is kept for the editing session only"
        )
    _audit(store, who, "reference_picture_viewed", camera_id, request_id=pic.request_id)
    return Response(
        pic.jpeg,
        media_type="image/jpeg",
        headers={
            "Cache-Control": "no-store",
            "X-Reference-Request-Id": pic.request_id,
            "X-Reference-Taken-At": pic.taken_at.isoformat(),
            "X-Reference-Frames": str(pic.frames_used),
            "X-Reference-Blurred-Regions": str(pic.blurred_regions),
            # lines and zones are drawn in the camera frame's pixels, which a large frame's picture is scaled from
            "X-Reference-Frame-Width": str(pic.frame_width or pic.width),
            "X-Reference-Frame-Height": str(pic.frame_height or pic.height),
        },
    )


# --- configurations ------------------------------------------------------------------------------


def _element(body: Any, path: str) -> str | None:
    """The id of the line, lane or zone an error path points into (``lines.0.points`` -> its id)."""
    parts = path.split(".")
    if len(parts) < 2 or parts[0] not in _ELEMENT_LISTS or not parts[1].isdigit() or not isinstance(body, dict):
        return None
    items = body.get(parts[0])
    i = int(parts[1])
    if isinstance(items, list) and i < len(items) and isinstance(items[i], dict):
        ident = items[i].get("id")
        return ident if isinstance(ident, str) else None
    return None


def _check(camera_id: str, body: Any) -> tuple[CameraConfig | None, list[dict[str, Any]]]:
    """The camera block validated by the rules of ``citywatch config check``, or its errors."""
    try:
        cam = validate_camera(body)
    except ConfigError as exc:
        return None, [{"path": p, "element": _element(body, p), "message": m} for p, m in exc.errors]
    if cam.id != camera_id:
        return None, [{"path": "id", "element": None, "message": f"the body is camera {cam.id!r}, not {camera_id!r}"}]
    return cam, []


@router.post("/cameras/{camera_id}/config/validate", response_model=ConfigCheckOut)
def validate_camera_config(
    camera_id: IdPath, body: Annotated[Any, Body()], _who: AdminDep
) -> dict[str, Any]:
    """Check a ``cameras[]`` block as ``citywatch config check`` and the edge do (admin); errors name the
    key path and the line, lane or zone they are in."""
    _cam, errors = _check(camera_id, body)
    return {"ok": not errors, "errors": errors}


def _push(
    cam: CameraConfig, store: Store, settings: CitywatchConfig, control: ControlChannel | None, who: Principal,
    action: str, **detail: Any,
) -> dict[str, Any]:  # fmt: skip
    """Validated ``cam`` to its edge (retained), recorded in the history and the audit log."""
    camera_id = cam.id
    if control is None or not control.connected:
        raise unavailable("not connected to the MQTT broker: the configuration cannot be sent")
    site = cam.site or next((r["site_id"] for r in store.list_cameras() if r["camera_id"] == camera_id), None)
    site = site or settings.site
    version = cam.config_version()
    data = cam.model_dump(mode="json")
    for earlier in store.config_history.versions(camera_id):
        if earlier["version"] == version and earlier["config"] != data:
            raise bad(
                "version", f"version {version!r} was pushed before with another configuration: change "
                "'version' or leave it out (then the content names the version)", "body",
            )  # fmt: skip
    if not control.push_config(site, camera_id, data, version):
        raise unavailable("the broker did not acknowledge the configuration message")
    now = utcnow()
    who_name = actor(who, store)
    store.cameras.set_pushed_config(camera_id, json.dumps(data), version, now)
    store.config_history.record(camera_id, version, data, who_name, now)
    store.audit.add(who_name, who.role, action, camera_id, {"version": version, **detail}, at=now)
    return {"camera_id": camera_id, "site": site, "config_version": version, "sent": True}


@router.put("/cameras/{camera_id}/config", status_code=202, response_model=ConfigSentOut)
def push_camera_config(
    camera_id: IdPath,
    body: dict[str, Any],
    store: StoreDep,
    settings: SettingsDep,
    control: ControlDep,
    who: AdminDep,
) -> dict[str, Any]:
    """Send a camera's new configuration (lines, lanes, zones) to its edge over ``.../control/config``,
    retained so that an edge offline now gets it when it connects (admin; audit-logged, kept in the
    history). The body is a ``cameras[]`` block; it is validated here and again by the edge."""
    try:
        cam = validate_camera(body)
    except ConfigError as exc:
        raise invalid([(("body", *p.split(".")), m) for p, m in exc.errors]) from None
    if cam.id != camera_id:
        raise bad("camera_id", f"the body is camera {cam.id!r}, the path says {camera_id!r}", "path")
    return _push(cam, store, settings, control, who, "config_pushed")


def _iso(v: Any) -> str | None:
    return v.isoformat() if v is not None else None


@router.get("/cameras/{camera_id}/config/versions", response_model=ConfigVersionsOut)
def config_versions(camera_id: IdPath, store: StoreDep, _who: AdminDep) -> dict[str, Any]:
    """The configurations pushed to the camera, newest first, and the version its edge reports running."""
    row = next((r for r in store.list_cameras() if r["camera_id"] == camera_id), None)
    versions = [
        {
            "version": v["version"],
            "pushed_at": _iso(v["pushed_at"]),
            "pushed_by": v["pushed_by"],
            "config": v["config"],
            "confirmed_at": _iso(v["confirmed_at"]),
        }
        for v in store.config_history.versions(camera_id)
    ]
    return {
        "camera_id": camera_id,
        "confirmed_version": row.get("config_version") if row else None,
        "versions": versions,
    }


@router.post(
    "/cameras/{camera_id}/config/rollback", status_code=202, response_model=ConfigSentOut, responses=CONFLICT
)
def rollback_config(
    camera_id: IdPath, store: StoreDep, settings: SettingsDep, control: ControlDep, who: AdminDep
) -> dict[str, Any]:
    """Push the configuration before the newest push again (admin; audit-logged): the newest earlier
    push of another version, else the camera's configured block (what ran before the first push)."""
    history = store.config_history.versions(camera_id)
    if not history:
        raise conflict(f"no configuration was pushed to camera {camera_id!r}: nothing to roll back")
    current = history[0]["version"]
    earlier = next((v["config"] for v in history[1:] if v["version"] != current), None)
    if earlier is None:
        configured = next((c for c in settings.cameras if c.id == camera_id), None)
        if configured is None or configured.config_version() == current:
            raise conflict(f"camera {camera_id!r} has no earlier configuration to roll back to")
        earlier = configured.model_dump(mode="json")
    cam, errors = _check(camera_id, earlier)
    if cam is None:  # rules got stricter since it was pushed
        raise conflict(f"the earlier configuration no longer validates: {errors[0]['path']}: {errors[0]['message']}")
    return _push(cam, store, settings, control, who, "config_rolled_back", rolled_back_from=current)


# --- the audit log ---------------------------------------------------------------------------------


@router.get("/audit", response_model=AuditOut)
def audit_log(
    store: StoreDep,
    _who: AdminDep,
    camera_id: IdParam = None,
    action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Recent admin actions, newest first (admin): reference pictures asked for and seen, pushes, rollbacks."""
    rows = store.audit.recent(limit, camera_id=camera_id, action=action)
    return {"items": [{**r, "at": _iso(r["at"])} for r in rows]}
