"""Every number the planner's charts show equals the API, at the edges where they used to mislead: a range
that starts before the camera existed and ends in the future, 60 days at 1-minute buckets, two periods
observed unlike each other, a camera that counts in a lane only. Debian's Chromium, driven by Playwright,
against one real server whose database holds a camera's last two days."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from axe_contrast import contrast_failures
from e2e_kit import sign_in
from support import REPO
from test_dashboard_in_a_browser import browser  # noqa: F401 - the browser fixture

from citywatch.config import parse_config
from citywatch.contract import CameraStatus, LineCrossing, ZoneOccupancy
from server.runner import serve_in_thread
from server.storage.store import Store

pytestmark = pytest.mark.slow

CITY = ZoneInfo("Asia/Ho_Chi_Minh")
KEY = "pl-key-0123"
ARTIFACTS = REPO / "test-artifacts"
#: The camera was installed 30 h ago; it observed since, except 20 h to 15 h ago (down).
INSTALLED_H, DOWN = 30, (20, 15)


def _common(cam: str, seq: int, ts: datetime) -> dict[str, Any]:
    return {"event_id": uuid.uuid4(), "camera_id": cam, "site_id": "pn", "seq": seq, "ts": ts,
            "config_version": "t", "model_version": "t"}


def history(now: datetime) -> list[Any]:
    """Heartbeats each minute; two cars and a motorcycle on the line and three vehicles entering the lane of
    the lane-only camera every 10 minutes; nothing while down."""
    evs: list[Any] = []
    seq = defaultdict(int)
    t = (now - timedelta(hours=INSTALLED_H)).replace(second=0, microsecond=0)
    while t < now - timedelta(minutes=1):
        if not now - timedelta(hours=DOWN[0]) <= t < now - timedelta(hours=DOWN[1]):
            for cam in ("cam-line", "cam-lane"):
                seq[cam] += 1
                evs.append(CameraStatus(**_common(cam, seq[cam], t), source_state="ok", fps_in=25, fps_processed=25,
                                        inference_ms=20, outbox_depth=0, uptime_s=1e6))
            if t.minute % 10 == 3:
                for k, cls in enumerate(("car", "car", "motorcycle")):
                    seq["cam-line"] += 1
                    evs.append(LineCrossing(**_common("cam-line", seq["cam-line"], t + timedelta(seconds=k)),
                                            line_id="main", direction="in", class_name=cls, track_id=k,
                                            frame_index=0))
                seq["cam-lane"] += 1
                evs.append(ZoneOccupancy(**_common("cam-lane", seq["cam-lane"], t + timedelta(seconds=30)),
                                         zone_id="lane-1", lane=True, interval_s=60, frame_index=0, occupancy={},
                                         occupied_fraction=0.3, vehicles_entered=3))
        t += timedelta(minutes=1)
    return evs


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("planner-numbers")
    url = f"sqlite:///{tmp}/citywatch.sqlite"
    now = datetime.now(timezone.utc)
    store = Store(url, heartbeat_s=60)
    store.insert_events(history(now))
    store.close()
    cfg = parse_config({
        "site": "pn",
        "server": {"database_url": url, "ingest": {"heartbeat_s": 60}},
        "cameras": [
            {"id": "cam-line", "source": "file:///dev/null", "lines": [{"id": "main", "points": [[0, 9], [99, 9]]}],
             "name": "Dien Bien Phu at Dinh Tien Hoang, towards the bridge"},  # long: the camera list fits a phone
            {"id": "cam-lane", "source": "file:///dev/null",
             "lanes": [{"id": "lane-1", "polygon": [[0, 0], [50, 0], [50, 50], [0, 50]]}]},
        ],
    })
    with serve_in_thread(cfg, port=0, ingest=False, api_keys=f"planner:{KEY}") as server:
        api = httpx.Client(base_url=f"{server.url}/api/v1", headers={"X-API-Key": KEY}, timeout=20)
        yield {"server": server, "api": api, "now": now}
        api.close()


def city_input(t: datetime) -> str:
    return t.astimezone(CITY).strftime("%Y-%m-%dT%H:%M")


def open_planner(browser, site):  # noqa: ANN001, F811
    ctx = browser.new_context(viewport={"width": 1366, "height": 900}, timezone_id="Europe/Paris", locale="en-GB")
    page = ctx.new_page()
    page.on("console", lambda m: print("CONSOLE", m.type, m.text))
    page.on("pageerror", lambda e: print("PAGEERROR", e))
    sign_in(page, site['server'].url, KEY)
    page.wait_for_selector("body[data-ready=true]", timeout=15000)
    page.wait_for_selector('#flow-chart[data-state="ready"]', timeout=15000)
    return ctx, page


def show(page, camera: str, bucket: str, frm: datetime, to: datetime) -> None:  # noqa: ANN001
    page.select_option("#pf-camera", camera)
    page.select_option("#pf-bucket", bucket)
    page.fill("#pf-from", city_input(frm))
    page.fill("#pf-to", city_input(to))
    page.evaluate("for (const id of ['flow-chart', 'compare-table', 'heatmap']) "
                  "document.getElementById(id).setAttribute('data-state', 'stale')")
    page.click("#pf-submit")
    page.wait_for_selector('#flow-chart[data-state="ready"]', timeout=20000)


def bars(page) -> dict[str, dict[str, str]]:  # noqa: ANN001
    return {
        b.get_attribute("data-bucket-start"): {"value": b.get_attribute("data-value"),
                                               "state": b.get_attribute("data-state"),
                                               "gap": b.get_attribute("data-gap")}
        for b in page.locator("#flow-chart g.bucket").all()
    }


def assert_axes_readable(page) -> None:  # noqa: ANN001
    ticks = [t.text_content() for t in page.locator("#flow-chart text.y-tick").all()]
    assert len(ticks) == len(set(ticks)) >= 2, ticks  # never "0,0" five times
    values = [float(t.get_attribute("data-value")) for t in page.locator("#flow-chart text.y-tick").all()]
    assert all(v == int(v) for v in values), values  # whole vehicles
    boxes = [t.bounding_box() for t in page.locator("#flow-chart text.x-tick").all()]
    assert len(boxes) >= 2
    for a, b in zip(boxes, boxes[1:], strict=False):
        assert a["x"] + a["width"] <= b["x"], (a, b)  # x labels do not overlap
    chart = page.locator("#flow-chart").bounding_box()
    assert boxes[-1]["x"] + boxes[-1]["width"] <= chart["x"] + chart["width"]  # nor run off the chart


def test_a_range_from_before_install_into_the_future_reads_equal_to_the_api(browser, site) -> None:  # noqa: F811
    api, now = site["api"], site["now"]
    frm = (now - timedelta(hours=INSTALLED_H + 6)).astimezone(CITY).replace(minute=0, second=0, microsecond=0)
    to = (now + timedelta(hours=5)).astimezone(CITY).replace(minute=0, second=0, microsecond=0)
    ctx, page = open_planner(browser, site)
    try:
        show(page, "cam-line", "1h", frm, to)
        q = {"camera_id": "cam-line", "bucket": "1h", "from": frm.isoformat(), "to": to.isoformat()}
        flow = api.get("/flow", params=q).json()
        cov = api.get("/coverage", params={**q, "max_buckets": 750}).json()
        want = defaultdict(float)
        for r in flow["rows"]:
            want[r["bucket_start"]] += r["total"]
        got = bars(page)
        assert set(got) == {r["bucket_start"] for r in cov["rows"]}
        assert {k: float(v["value"]) for k, v in got.items() if float(v["value"])} == dict(want)
        assert {k: v["state"] for k, v in got.items()} == {r["bucket_start"]: r["state"] for r in cov["rows"]}
        states = [r["state"] for r in cov["rows"]]
        assert states[:5] == ["before_install"] * 5 and states[-4:] == ["future"] * 4
        assert 4 <= cov["gaps"] <= 6  # the five hours down, not the hours before install or to come
        assert int(page.locator("#flow-gaps").get_attribute("data-value")) == cov["gaps"]
        assert {k for k, v in got.items() if v["gap"] == "true"} == {
            r["bucket_start"] for r in cov["rows"] if r["state"] == "gap"}
        assert float(page.locator("#flow-chart").get_attribute("data-total")) == flow["total"]
        # the gap hatch is not a class colour (red is bicycles)
        fill = page.locator("#flow-chart g.bucket.gap rect").first.get_attribute("fill")
        assert fill == "url(#pattern-gap)"
        assert page.locator('#flow-legend [data-legend="before_install"]').count() == 1
        assert page.locator('#flow-legend [data-legend="future"]').count() == 1
        legend = {s.get_attribute("data-class") for s in page.locator("#flow-legend .swatch[data-class]").all()}
        assert legend == {"car", "motorcycle"}  # the classes drawn, no others
        assert_axes_readable(page)
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#planner-filters").screenshot(path=str(ARTIFACTS / "planner-before-install-and-future.png"))

        # compare: the chart's period against the one before it, which the camera observed only in part
        page.wait_for_selector('#compare-table[data-state="ready"]', timeout=10000)
        cmp = api.get("/flow/compare", params={"camera_id": "cam-line",
                                               "a_from": (frm - (to - frm)).isoformat(), "a_to": frm.isoformat(),
                                               "b_from": frm.isoformat(), "b_to": to.isoformat()}).json()
        for field, key in (("total", "total"), ("observed_h", "observed_h"), ("per_observed_hour",
                                                                               "per_observed_hour")):
            for period in ("a", "b"):
                cell = page.locator(f'#compare-table tr[data-field="{field}"] td[data-period="{period}"]')
                shown = cell.get_attribute("data-value")
                assert (float(shown) if shown else None) == cmp[period][key], (field, period)
        share = page.locator('#compare-table tr[data-field="coverage"] td[data-period="b"]').get_attribute("data-value")
        assert float(share) == pytest.approx(cmp["b"]["coverage"] * 100, abs=0.2)  # "now" moved on a little
        assert cmp["a"]["coverage"] is None and not cmp["change"]["totals_comparable"]
        assert page.locator('#compare-table tr[data-field="total"] td.change').inner_text() == "không so sánh"
    finally:
        ctx.close()


def test_sixty_days_at_one_minute_are_drawn_coarser_with_their_gaps_counted(browser, site) -> None:  # noqa: F811
    api, now = site["api"], site["now"]
    to = (now + timedelta(days=1)).astimezone(CITY).replace(hour=0, minute=0, second=0, microsecond=0)
    frm = to - timedelta(days=60)
    ctx, page = open_planner(browser, site)
    try:
        show(page, "cam-line", "1m", frm, to)
        cov = api.get("/coverage", params={"camera_id": "cam-line", "bucket": "1m", "from": frm.isoformat(),
                                           "to": to.isoformat(), "max_buckets": 750}).json()
        assert cov["coarsened"] and cov["bucket"] == "1d" and len(cov["rows"]) == 60
        chart = page.locator("#flow-chart")
        assert chart.get_attribute("data-bucket") == "1d" and chart.get_attribute("data-buckets") == "60"
        assert page.locator("#flow-coarsened").count() == 1
        gaps = int(page.locator("#flow-gaps").get_attribute("data-value"))
        assert gaps == cov["gaps"] == 0  # each day since install was observed in part: no whole-day gap
        flow = api.get("/flow", params={"camera_id": "cam-line", "bucket": "1d", "from": frm.isoformat(),
                                        "to": to.isoformat()}).json()
        assert float(chart.get_attribute("data-total")) == flow["total"] > 0
        assert sum(1 for v in bars(page).values() if v["state"] == "before_install") >= 57
        assert_axes_readable(page)
    finally:
        ctx.close()


def test_a_camera_that_counts_in_a_lane_only_shows_its_lane(browser, site) -> None:  # noqa: F811
    api, now = site["api"], site["now"]
    frm = (now - timedelta(hours=12)).astimezone(CITY).replace(minute=0, second=0, microsecond=0)
    to = (now + timedelta(hours=1)).astimezone(CITY).replace(minute=0, second=0, microsecond=0)
    ctx, page = open_planner(browser, site)
    try:
        page.select_option("#pf-camera", "cam-lane")
        assert page.locator("#pf-source").input_value() == "lane"  # no line to count on: its lane is shown
        show(page, "cam-lane", "1h", frm, to)
        occ = api.get("/occupancy", params={"camera_id": "cam-lane", "zone_id": "lane-1", "lanes_only": True,
                                            "bucket": "1h", "from": frm.isoformat(), "to": to.isoformat()}).json()
        total = sum(r["vehicles_entered"] for r in occ["rows"])
        assert total > 0
        assert float(page.locator("#flow-chart").get_attribute("data-total")) == total
        got = {k: float(v["value"]) for k, v in bars(page).items() if float(v["value"])}
        assert got == {r["bucket_start"]: r["vehicles_entered"] for r in occ["rows"] if r["vehicles_entered"]}
    finally:
        ctx.close()


#: Letters only Vietnamese uses (English text must have none of them; camera names here are plain ids).
VIETNAMESE = re.compile(r"[ăâđêôơưĂÂĐÊÔƠƯàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ]")


def test_the_planner_in_english_has_no_vietnamese_and_the_same_numbers(browser, site) -> None:  # noqa: F811
    now = site["now"]
    frm = (now - timedelta(hours=INSTALLED_H + 2)).astimezone(CITY).replace(minute=0, second=0, microsecond=0)
    to = (now + timedelta(hours=2)).astimezone(CITY).replace(minute=0, second=0, microsecond=0)
    ctx, page = open_planner(browser, site)
    try:
        show(page, "cam-line", "1h", frm, to)
        page.wait_for_selector('#compare-table[data-state="ready"]', timeout=10000)
        page.wait_for_selector('#heatmap[data-state="ready"]', timeout=10000)
        vi_total = page.locator("#flow-chart").get_attribute("data-total")
        assert "Tổng" in page.locator("#flow-summary").inner_text()
        page.click("#lang-switch")
        page.wait_for_function("document.documentElement.lang === 'en'", timeout=5000)
        page.wait_for_selector('#fc-chart[data-state="ready"]', timeout=10000)
        assert page.locator("#fc-status").inner_text().startswith("Not enough history")
        for sel in ("#planner-filters", "#forecast-section", "#compare-section", "#heatmap-section", "#od-section"):
            text = page.locator(sel).inner_text() + " ".join(
                t.text_content() or "" for t in page.locator(f"{sel} svg title, {sel} svg text").all())
            assert not VIETNAMESE.search(text), (sel, VIETNAMESE.findall(text)[:10], text[:300])
        assert "Total" in page.locator("#flow-summary").inner_text()
        assert page.locator("#flow-chart").get_attribute("data-total") == vi_total
        page.locator("#view-planner").screenshot(path=str(ARTIFACTS / "planner-english.png"))
    finally:
        ctx.close()


def test_times_are_typed_and_shown_one_way_and_a_bad_range_is_said_plainly(browser, site) -> None:  # noqa: F811
    # an en-US browser: its own date control would show "12/06/2026, 06:00 AM" beside charts reading "06/12"
    ctx = browser.new_context(viewport={"width": 1366, "height": 900}, timezone_id="America/New_York", locale="en-US")
    page = ctx.new_page()
    try:
        sign_in(page, site['server'].url, KEY)
        page.wait_for_selector('#flow-chart[data-state="ready"]', timeout=15000)
        one_format = re.compile(r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}$")
        for field in ("#pf-from", "#pf-to", "#cmp-a-from", "#cmp-b-to"):
            assert one_format.match(page.locator(field).input_value()), field
        ticks = [t.text_content() or "" for t in page.locator("#flow-chart text.x-tick").all()]
        assert ticks and all(re.fullmatch(r"\d{2}:\d{2} \d{2}/\d{2}", t) for t in ticks), ticks  # "06:00 06/12"

        def submit(frm: str, to: str) -> str:
            page.fill("#pf-from", frm)
            page.fill("#pf-to", to)
            page.click("#pf-submit")
            page.wait_for_selector('#flow-chart[data-state="ready"], #flow-chart[data-state="error"]', timeout=15000)
            return page.locator("#planner-error").inner_text()

        assert submit("31/02/2026 10:00", "01/03/2026 10:00").startswith("Không đọc được thời gian “31/02/2026 10:00”")
        assert page.locator("#flow-chart").get_attribute("data-state") == "error"
        assert submit("02/03/2026 10:00", "01/03/2026 10:00") == "“Từ” phải trước “Đến”"
        page.click("#lang-switch")
        page.wait_for_function("document.documentElement.lang === 'en'", timeout=5000)
        assert submit("02/03/2026 10:00", "01/03/2026 10:00") == "“From” must be before “To”"
        # typed day first and read as city time, whatever the browser's locale and zone
        assert submit("01/03/2026 7:00", "2026-03-02T07:00") == ""
        assert page.locator("#flow-chart").get_attribute("data-state") == "ready"
        assert page.locator("#pf-from").input_value() == "01/03/2026 07:00"  # said back in the one format
        href = page.locator("#export-flow-csv").get_attribute("href") or ""
        assert "from=2026-03-01T07%3A00%3A00%2B07%3A00" in href and "to=2026-03-02T07%3A00%3A00%2B07%3A00" in href
    finally:
        ctx.close()




@pytest.mark.parametrize("lang", ["vi", "en"])
@pytest.mark.parametrize("size", [(1920, 1080), (1366, 768), (390, 844)], ids=["wall", "laptop", "phone"])
def test_the_planner_fits_each_screen_in_each_language_with_aa_contrast(
    browser, site, size: tuple[int, int], lang: str  # noqa: F811
) -> None:
    now = site["now"]
    # bypass_csp: axe-core is injected as a script, which the page's CSP (script-src 'self') refuses
    ctx = browser.new_context(viewport={"width": size[0], "height": size[1]}, timezone_id="Asia/Ho_Chi_Minh",
                              is_mobile=size[0] < 500, has_touch=size[0] < 500, bypass_csp=True)
    page = ctx.new_page()
    try:
        sign_in(page, site['server'].url, KEY)
        page.wait_for_selector('#flow-chart[data-state="ready"]', timeout=15000)
        if lang == "en":
            page.click("#lang-switch")
            page.wait_for_function("document.documentElement.lang === 'en'", timeout=5000)
        frm = (now - timedelta(hours=INSTALLED_H + 2)).astimezone(CITY).replace(minute=0, second=0, microsecond=0)
        show(page, "cam-line", "1h", frm, (now + timedelta(hours=2)).astimezone(CITY).replace(minute=0, second=0,
                                                                                             microsecond=0))
        for ready in ("#heatmap", "#compare-table", "#fc-chart"):
            page.wait_for_selector(f'{ready}[data-state="ready"]', timeout=10000)
        page.screenshot(path=str(ARTIFACTS / f"planner-{lang}-{size[0]}x{size[1]}.png"), full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= size[0], f"{width} px wide in a {size[0]} px viewport: the page scrolls sideways"
        wide = page.evaluate("[...document.querySelectorAll('#view-planner *')]"
                             ".filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)"
                             ".filter((e) => !e.closest('.scroll, .scroll-x, details, table'))"
                             ".map((e) => e.id || e.tagName)")
        assert not wide, wide  # nothing of the planner runs off the screen (tables scroll in their box)
        heights = page.evaluate("['#flow-chart', '#fc-chart', '#heatmap'].map((c) => "
                                "document.querySelector(c + ' text.tick').getBoundingClientRect().height)")
        assert min(heights) >= 9, heights  # chart text stays legible at this size
        failures = contrast_failures(page)
        assert failures == [], "\n".join(failures)
    finally:
        ctx.close()
