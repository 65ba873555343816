"""The dashboard's system banner in Chromium: shown while the events table is locked (the database does
not answer in time), gone once it answers again. Screenshot in ``test-artifacts/``."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import create_engine, text
from test_dashboard_in_a_browser import ARTIFACTS, browser  # noqa: F401 - the browser fixture

from citywatch.config import parse_config
from server.runner import serve_in_thread
from server.storage.store import Store


def test_the_banner_says_the_database_is_not_answering_while_events_are_locked(
    pg_database: Any,
    browser: Any,  # noqa: F811
) -> None:
    store = Store(pg_database.url, schema=pg_database.schema)
    cfg = parse_config({
        "site": "ui",
        "server": {"database_url": pg_database.url, "client_id": f"server-{uuid.uuid4().hex[:8]}",
                   "ingest": {"db_timeout_s": 1}},
        "cameras": [{"id": "cam-1", "name": "Ngã tư", "source": "file:///dev/null",
                     "lines": [{"id": "l1", "points": [[0, 0], [100, 0]]}]}],
    })  # fmt: skip
    locker = create_engine(pg_database.url, connect_args={"options": f"-csearch_path={pg_database.schema}"})
    try:
        with serve_in_thread(cfg, port=0, ingest=False, store=store, api_keys="") as server:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{server.url}/")
            page.wait_for_selector("body[data-ready=true]", timeout=15000)
            page.click("#lang-switch")  # Vietnamese is the default; this test reads the English text
            page.wait_for_selector('#system-banner[data-problem=""]', state="attached", timeout=15000)
            assert page.locator("#system-banner").is_hidden()
            with locker.connect() as conn:
                conn.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
                page.wait_for_selector('#system-banner[data-problem="db_slow"]', timeout=20000)
                assert page.locator("#system-banner").is_visible()
                assert "Database not answering" in page.locator("#system-banner-text").inner_text()
                assert "did not answer within 1 s" in page.locator("#system-banner-detail").inner_text()
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "dashboard-health-banner.png"))
                conn.rollback()
            page.wait_for_selector('#system-banner[data-problem=""]', state="hidden", timeout=20000)
            page.close()
    finally:
        locker.dispose()
        store.close()
