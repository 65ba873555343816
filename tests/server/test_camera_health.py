"""The one health rule behind the map, the camera table and the panel (server.camera_health)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fastapi.testclient import TestClient
from server_testkit import make_config, status_event

from citywatch.contract import Incident
from server.app import create_app
from server.camera_health import assess
from server.storage.store import Store

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=timezone.utc)
FINE = {"source_state": "ok", "fps_in": 25.0, "fps_processed": 12.5, "outbox_depth": 0, "tamper": []}


def level(state: str | None = "online", age_s: float | None = 5, status: dict | None = None, **kw: int) -> str:
    seen = NOW - timedelta(seconds=age_s) if age_s is not None else None
    return assess(state, seen, FINE if status is None else status, NOW, stale_after=60, **kw).level


def test_a_camera_heard_from_recently_with_a_fine_status_is_ok() -> None:
    assert level() == "ok"


def test_a_status_older_than_the_limit_is_stale_whatever_it_said() -> None:
    h = assess("online", NOW - timedelta(seconds=61), FINE, NOW, stale_after=60)
    assert (h.level, h.reasons, h.age_s) == ("stale", ["status_too_old"], 61)


def test_offline_is_down_and_never_reported_is_unknown() -> None:
    assert level("offline") == "down"
    assert level(None, None) == "unknown"
    assert level("online", None) == "unknown"


def test_processing_far_below_the_frames_offered_is_degraded() -> None:
    h = assess("online", NOW, {**FINE, "fps_processed": 1.8}, NOW, stale_after=60)
    assert (h.level, h.reasons) == ("degraded", ["fps_low"])


def test_a_dead_source_tamper_or_a_full_outbox_is_degraded_with_each_reason() -> None:
    h = assess("online", NOW, {**FINE, "source_state": "reconnecting", "fps_in": 0.0, "fps_processed": 0.0,
                               "tamper": ["covered"], "outbox_depth": 5000}, NOW, stale_after=60)
    assert h.level == "degraded"
    assert h.reasons == ["source_reconnecting", "tamper_covered", "outbox_full"]


def test_open_incidents_keep_a_working_camera_off_green() -> None:
    assert level(open_incidents=14) == "alert"
    assert level(status={**FINE, "tamper": ["covered"]}, open_incidents=3) == "degraded"


def test_the_cameras_api_reports_the_rule_with_its_reasons_age_and_open_incidents(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/h.sqlite")
    config = make_config(run_id="health", database_url=store.url)
    try:
        with TestClient(create_app(config, ingest=False, store=store, api_keys="")) as client:
            now = datetime.now(timezone.utc)
            slow = status_event(1).model_copy(update={"fps_in": 25.0, "fps_processed": 1.8})
            store.cameras.upsert_camera_status("cam-1", "site-1", seen_at=now, state="online", status=slow)
            cam = client.get("/api/v1/cameras").json()["cameras"][0]
            assert (cam["health"], cam["health_reasons"], cam["open_incidents"]) == ("degraded", ["fps_low"], 0)
            assert cam["status_age_s"] < 5 and cam["stale_after_s"] == 60

            fine = status_event(2)
            store.cameras.upsert_camera_status("cam-1", "site-1", seen_at=now, state="online", status=fine)
            store.insert_events([Incident(
                event_id=uuid.uuid4(), camera_id="cam-1", site_id="site-1", seq=3, ts=now, config_version="t",
                model_version="t", incident_id=uuid.uuid4(), incident_type="wrong_way", state="open", started_at=now,
            )])
            cam = client.get("/api/v1/cameras").json()["cameras"][0]
            assert (cam["health"], cam["open_incidents"]) == ("alert", 1)
            detail = client.get("/api/v1/cameras/cam-1").json()
            assert detail["health"] == "alert"
    finally:
        store.close()
