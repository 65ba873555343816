"""The dashboard script, run in node with a DOM stand-in against a live server (no browser on CI)."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from server_testkit import crossing, make_config

from server.runner import serve_in_thread
from server.store import Store

HERE = Path(__file__).resolve().parent
APP_JS = HERE.parent.parent / "server" / "static" / "app.js"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_dashboard_renders_counts_and_applies_live_events(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    now = datetime.now(timezone.utc)
    store.insert_events([crossing(1, ts=now - timedelta(minutes=3)), crossing(2, ts=now - timedelta(minutes=2))])
    store.advance_watermark("cam-1")
    handle = serve_in_thread(make_config(run_id="ui", database_url=sqlite_url), ingest=False, store=store, api_keys="")
    try:
        out = subprocess.run(
            ["node", str(HERE / "dashboard_smoke.js"), handle.url, str(APP_JS)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        handle.stop()
        store.close()
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["login_hidden"] is True and seen["dashboard_hidden"] is False
    assert (seen["total_before"], seen["total_after"], seen["row_count"]) == (2, 3, 3)
    assert (seen["camera_state"], seen["committed_seq"]) == ("online", 2)
    assert (seen["fps"], seen["outbox"]) == (9.5, 4)
    assert seen["bars"] == 60 and seen["bar_sum"] == 3 and seen["ticker"] == 1
