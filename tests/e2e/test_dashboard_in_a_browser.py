"""The dashboard as a person sees it: Debian's Chromium driven by Playwright, fed by a real edge run.

The page is opened before the clip starts; its counts must rise live (no reload) and end equal to
the API's. Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
from e2e_kit import LONDON_LINE, CachedDetector
from support import REPO, require, wait_for

from citywatch.broker import EmbeddedBroker
from citywatch.config import parse_config
from edge.worker import EdgeWorker
from server.runner import serve_in_thread

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("CITYWATCH_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


@pytest.fixture(scope="module")
def browser():
    require(Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_dashboard_shows_the_camera_and_live_counts_equal_to_the_api(
    tmp_path: Path, london_clip: Path, london_detector: CachedDetector, browser
) -> None:
    run = uuid.uuid4().hex[:8]
    with EmbeddedBroker() as broker:
        cfg = parse_config({
            "site": "ui",
            "mqtt": {"port": broker.port, "protocol": "3.1.1", "topic_prefix": f"cw-ui-{run}"},
            "edge": {"device_id": f"edge-{run}", "outbox_path": str(tmp_path / "outbox.sqlite"), "heartbeat_s": 1},
            "server": {"database_url": f"sqlite:///{tmp_path}/citywatch.sqlite", "client_id": f"server-{run}"},
            "cameras": [{"id": "london-03601", "name": "Blackfriars Rd", "source": str(london_clip),
                         "realtime": True, "lines": [LONDON_LINE]}],
        })
        with serve_in_thread(cfg, port=0, api_keys="") as server:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{server.url}/")
            page.wait_for_selector("body[data-ready=true]", timeout=15000)
            page.wait_for_selector('#live-status[data-state="open"]', timeout=15000)
            row = page.locator('#cameras-body tr[data-camera-id="london-03601"]')
            assert row.count() == 1  # configured cameras are listed before they report

            worker = EdgeWorker(cfg, detector=london_detector)
            worker.start()
            try:
                t0 = time.monotonic()
                # The first crossing appears on the page without a reload.
                page.wait_for_selector('#counts-total:not([data-count="0"])', timeout=30000)
                first_seen_s = time.monotonic() - t0
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"), full_page=True)
                assert worker.wait_sources_done(60)
                assert worker.wait_drained(30)
            finally:
                worker.stop(10)

            api = httpx.get(f"{server.url}/api/v1/counts", params={"bucket": "total"}, timeout=10).json()
            expected = {
                f'{r["camera_id"]}|{r["line_id"]}|{r["direction"]}|{r["class_name"]}': r["count"] for r in api["rows"]
            }
            assert api["total"] >= 5

            def page_counts() -> dict[str, int]:
                # Read through selectors, not page.evaluate: the page's CSP forbids eval, as it should.
                rows = page.locator("#counts-body tr").all()
                cells = [tr.locator('[data-field="count"]') for tr in rows]
                return {
                    tr.get_attribute("data-count-key"): int(cell.get_attribute("data-value"))
                    for tr, cell in zip(rows, cells, strict=True)
                }

            assert wait_for(lambda: page_counts() == expected, 10), (page_counts(), expected)
            total = int(page.locator("#counts-total").get_attribute("data-count"))
            assert total == api["total"]
            assert row.locator('[data-field="state"]').get_attribute("data-value") in ("online", "offline")
            page.screenshot(path=str(ARTIFACTS / "dashboard-after-run.png"), full_page=True)
            page.close()
    assert first_seen_s < 30
