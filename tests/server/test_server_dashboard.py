"""The dashboard's ES modules, run in node with a DOM stand-in against a live server (no browser on CI)."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from server_testkit import crossing, make_config, status_event
from support import free_port

from server.runner import serve_in_thread
from server.storage.store import Store

HERE = Path(__file__).resolve().parent
STATIC = HERE.parent.parent / "server" / "static"


def _smoke(sqlite_url: str, **config: Any) -> dict[str, Any]:
    """Serve two stored crossings and a heartbeat, and run ``dashboard_smoke.mjs`` against the server; its
    JSON summary. Node reads the modules from a copy of server/static marked ``"type": "module"``."""
    store = Store(sqlite_url)
    now = datetime.now(timezone.utc)
    store.insert_events([crossing(1, ts=now - timedelta(minutes=3)), crossing(2, ts=now - timedelta(minutes=2))])
    store.advance_watermark("cam-1")
    beat = status_event(3).model_copy(update={"fps_processed": 5.0, "fps_in": 10.0})
    store.cameras.upsert_camera_status("cam-1", "site-1", seen_at=now, state="online", status=beat)
    static = Path(sqlite_url.removeprefix("sqlite:///")).parent / "static"
    shutil.copytree(STATIC, static)
    (static / "package.json").write_text('{"type": "module"}\n', encoding="utf-8")
    ingest = "mqtt" in config
    cfg = make_config(run_id="ui", database_url=sqlite_url, **config)
    handle = serve_in_thread(cfg, ingest=ingest, store=store, api_keys="")
    try:
        out = subprocess.run(
            ["node", str(HERE / "dashboard_smoke.mjs"), handle.url, str(static / "app.js")],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        handle.stop()
        store.close()
    assert out.returncode == 0, out.stderr
    return cast(dict[str, Any], json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_dashboard_renders_counts_and_applies_live_events(sqlite_url: str) -> None:
    seen = _smoke(sqlite_url)
    assert seen["login_hidden"] is True and seen["dashboard_hidden"] is False
    assert (seen["total_before"], seen["total_after"], seen["row_count"]) == (2, 3, 3)
    assert (seen["camera_state"], seen["health"], seen["committed_seq"]) == ("online", "ok", 2)
    assert (seen["fps"], seen["outbox"]) == (9.5, 4)
    assert seen["bars"] == 60 and seen["bar_sum"] == 3 and seen["ticker"] == 1
    assert seen["banner_hidden"] is True and seen["banner_problem"] == ""  # /health is ok


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_dashboard_shows_a_banner_when_ingest_cannot_reach_the_broker(sqlite_url: str) -> None:
    """Ingest configured against a port where no broker listens: /health is degraded, the banner says why."""
    mqtt = {"host": "127.0.0.1", "port": free_port(), "username_env": None, "password_env": None}
    seen = _smoke(sqlite_url, mqtt=mqtt)
    assert seen["banner_hidden"] is False and seen["banner_problem"] == "disconnected"
    assert "MQTT" in seen["banner_text"] and "not connected to the MQTT broker" in seen["banner_detail"]
    assert seen["banner_text"] == "Mất kết nối MQTT"  # the operator's language: Vietnamese by default
