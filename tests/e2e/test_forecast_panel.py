"""The planner's forecast panel in Debian's Chromium: with ten weeks of real history seeded and forecasts
refreshed, the chart shows the forecast and its 80 % band with the API's numbers, the actual flow (the
drop that opened a flow anomaly), the typical week and the anomaly in the list; the CSV link downloads
the forecasts. A screenshot lands in the test's tmp dir."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from e2e_kit import sign_in
from forecast_kit import seed_forecast_scene
from test_dashboard_in_a_browser import browser  # noqa: F401 - the browser fixture

from citywatch.config import parse_config
from server.runner import serve_in_thread
from server.storage.store import Store

pytestmark = pytest.mark.slow
PLANNER = "pl-key-fc-0123"


def test_forecast_panel_draws_the_forecast_band_and_actual_equal_to_the_api(browser, tmp_path: Path) -> None:  # noqa: F811
    url = f"sqlite:///{tmp_path}/fc.sqlite"
    store = Store(url)
    now = datetime.now(timezone.utc) - timedelta(minutes=80)  # the refresh, then 75 min observed since
    scene = seed_forecast_scene(store, now)
    assert scene["check"].opened == 1
    cfg = parse_config({"server": {"database_url": url}})
    try:
        with serve_in_thread(cfg, port=0, ingest=False, store=store, api_keys=f"planner:{PLANNER}") as server:
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="America/New_York",
                                      locale="en-US", accept_downloads=True)
            page = ctx.new_page()
            try:
                sign_in(page, server.url, PLANNER)
                page.wait_for_selector('#fc-chart[data-state="ready"]', timeout=20000)
                page.wait_for_selector('#fc-week[data-state="ready"]', timeout=10000)
                page.wait_for_selector('#fc-anomalies[data-state="ready"]', timeout=10000)
                page.locator("#forecast-section").scroll_into_view_if_needed()
                shot = tmp_path / "forecast-panel.png"
                page.locator("#forecast-section").screenshot(path=str(shot))
                page.screenshot(path=str(tmp_path / "planner-full.png"), full_page=True)
                print(f"screenshot: {shot}")

                assert page.locator("#fc-status").get_attribute("data-status") == "ok"
                assert page.locator("#fc-series option").count() == 2  # cam-a (ok) and cam-b (cold start)
                # the chart's buckets carry exactly the API's numbers for the same request
                buckets = page.locator("#fc-chart g.fc-bucket").all()
                first = buckets[0].get_attribute("data-bucket-start")
                last = buckets[-1].get_attribute("data-bucket-start")
                api = httpx.get(f"{server.url}/api/v1/forecasts/vs-actual", headers={"X-API-Key": PLANNER},
                                params={"camera_id": "cam-a", "series_id": "l1", "direction": "in", "freq": "h",
                                        "from": first, "to": (datetime.fromisoformat(last) + timedelta(hours=1))
                                        .isoformat()}, timeout=30).json()
                assert len(api["rows"]) == len(buckets)
                shown = 0
                for g, row in zip(buckets, api["rows"], strict=True):
                    assert g.get_attribute("data-bucket-start") == row["bucket_start"]
                    for k in ("forecast", "lo80", "hi80", "actual"):
                        got = g.get_attribute(f"data-{k}")
                        assert (got == "" if row[k] is None else float(got) == row[k]), (k, got, row)
                    shown += row["forecast"] is not None
                assert shown >= 24  # today and tomorrow's hours are forecast
                assert int(page.locator("#fc-chart").get_attribute("data-forecasts")) == shown
                assert page.locator("#fc-chart polygon.fc-band").count() >= 1
                assert page.locator("#fc-chart polyline.fc-line").count() >= 1
                assert page.locator("#fc-chart polyline.fc-actual").count() >= 1
                # typical week: 168 hours, medians from the API
                week = httpx.get(f"{server.url}/api/v1/forecasts/typical-week", headers={"X-API-Key": PLANNER},
                                 params={"camera_id": "cam-a", "series_id": "l1", "direction": "in"}, timeout=30).json()
                hours = page.locator("#fc-week g.fc-hour").all()
                assert len(hours) == 168
                med = hours[8].get_attribute("data-median")
                assert (med == "" if week["hours"][8]["median"] is None else float(med) == week["hours"][8]["median"])
                # the anomaly in the list
                rows = page.locator("#fc-anomalies tbody tr[data-incident-id]")
                assert rows.count() == 1 and rows.first.get_attribute("data-anomaly") == "drop"
                # the CSV link downloads the forecasts, times in the city's zone
                with page.expect_download() as dl:
                    page.click("#fc-export-csv")
                text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
                table = list(csv.DictReader(io.StringIO(text)))
                assert table and table[0]["timezone"] == "Asia/Ho_Chi_Minh" and "+07:00" in table[0]["bucket_start"]
            finally:
                ctx.close()
    finally:
        store.close()
