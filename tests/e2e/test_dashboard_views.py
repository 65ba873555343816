"""The operator's screen and the planner's workbench as people use them: Debian's Chromium driven by
Playwright against one real server, fed by a real edge run (the London clip) and, over MQTT, by a second
camera's day and a half of history (with a three-hour outage), movements and an incident.

The browser runs in New York time: every time on the page must still be the city's (Asia/Ho_Chi_Minh).
Screenshots of each view land in ``test-artifacts/``.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import paho.mqtt.client as mqtt
import pytest
from e2e_kit import LONDON_LINE, CachedDetector
from support import REPO, wait_for
from test_dashboard_in_a_browser import browser  # noqa: F401 - the browser fixture

from citywatch.broker import EmbeddedBroker
from citywatch.config import parse_config
from citywatch.contract import (
    CameraStatus,
    EventBatch,
    Incident,
    LineCrossing,
    Movement,
    StatusPayload,
    Topics,
)
from edge.worker import EdgeWorker
from server.runner import serve_in_thread

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "test-artifacts"
KEYS = {"operator": "op-key-0123", "planner": "pl-key-0123", "admin": "ad-key-0123"}
CITY = ZoneInfo("Asia/Ho_Chi_Minh")
SITE = "ui"
HB_S = 60
#: The second camera's history: 36 h up to now, with no data 20 h to 17 h ago (the camera was down).
HISTORY_H, OUTAGE = 36, (20, 17)
CLASSES = ("car", "motorcycle", "motorcycle", "truck", "bus", "bicycle")


class Feeder:
    """Publishes events of the synthetic cameras over MQTT, with per-camera seqs like an edge outbox."""

    def __init__(self, port: int, prefix: str) -> None:
        self.topics = Topics(prefix)
        self.seq: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"feeder-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv311)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def common(self, cam: str, ts: datetime) -> dict[str, Any]:
        self.seq[cam] += 1
        return {"event_id": uuid.uuid4(), "camera_id": cam, "site_id": SITE, "seq": self.seq[cam], "ts": ts,
                "config_version": "ui-1", "model_version": "synthetic"}

    def heartbeat(self, cam: str, ts: datetime, tamper: list[str] | None = None) -> CameraStatus:
        return CameraStatus(**self.common(cam, ts), source_state="ok", fps_in=25.0, fps_processed=12.5,
                            inference_ms=31.0, outbox_depth=0, uptime_s=HISTORY_H * 3600.0 + 7200,
                            frames_total=1000, tamper=tamper or [])  # type: ignore[arg-type]

    def send(self, cam: str, events: list[Any]) -> None:
        for i in range(0, len(events), 500):
            body = EventBatch(events=events[i : i + 500]).model_dump_json()
            self.client.publish(self.topics.event(SITE, cam, "batch"), body, qos=1).wait_for_publish(10)

    def online(self, cam: str) -> None:
        body = StatusPayload(state="online", camera_id=cam, device_id="feeder").model_dump_json()
        self.client.publish(self.topics.status(SITE, cam), body, qos=1, retain=True).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def history(feed: Feeder, cam: str, now: datetime) -> list[Any]:
    """Heartbeats each minute and a few crossings and movements each 15 minutes, but none in the outage."""
    start = (now - timedelta(hours=HISTORY_H)).replace(second=0, microsecond=0)
    out: list[Any] = []
    t, i = start, 0
    while t < now - timedelta(minutes=2):
        down = now - timedelta(hours=OUTAGE[0]) <= t < now - timedelta(hours=OUTAGE[1])
        if not down:
            out.append(feed.heartbeat(cam, t))
            if t.minute % 15 == 7:
                hour = t.astimezone(CITY).hour
                for k in range(1 + (hour % 5) + (3 if 7 <= hour <= 9 else 0)):
                    cls = CLASSES[(i + k) % len(CLASSES)]
                    out.append(LineCrossing(**feed.common(cam, t + timedelta(seconds=k)), line_id="main",
                                            direction="in" if k % 3 else "out", class_name=cls,  # type: ignore[arg-type]
                                            track_id=i * 10 + k, frame_index=i, speed_kmh=30.0 + k))
                entry, exit_ = ("north", "south") if i % 3 else ("north", "east")
                out.append(Movement(**feed.common(cam, t + timedelta(seconds=20)), track_id=i, class_name="car",
                                    entry_zone=entry, exit_zone=exit_, entry_frame=i, exit_frame=i + 50,
                                    duration_s=12.0))
                i += 1
        t += timedelta(seconds=HB_S)
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, london_clip: Path):
    tmp = tmp_path_factory.mktemp("ui-views")
    run = uuid.uuid4().hex[:8]
    london = {"id": "london-03601", "name": "Blackfriars Rd", "source": str(london_clip), "realtime": True,
              "location": {"lat": 51.5053, "lon": -0.1044}, "lines": [LONDON_LINE]}
    others = [
        {"id": "southwark-jn", "name": "Southwark St", "source": "file:///dev/null",
         "location": {"lat": 51.5063, "lon": -0.1032}, "lines": [{"id": "main", "points": [[0, 100], [300, 100]]}],
         "zones": [{"id": z, "kind": "gateway", "polygon": [[0, 0], [10, 0], [10, 10]]}
                   for z in ("north", "south", "east")]},
        {"id": "waterloo-rd", "name": "Waterloo Rd", "source": "file:///dev/null",
         "location": {"lat": 51.5030, "lon": -0.1070}},
        {"id": "stamford-st", "name": "Stamford St", "source": "file:///dev/null",
         "location": {"lat": 51.5072, "lon": -0.1085}},
    ]
    base = {
        "site": SITE,
        "mqtt": {"port": 0, "protocol": "3.1.1", "topic_prefix": f"cw-views-{run}"},
        "edge": {"device_id": f"edge-{run}", "outbox_path": str(tmp / "outbox.sqlite"), "heartbeat_s": 1},
        "server": {"database_url": f"sqlite:///{tmp}/citywatch.sqlite", "client_id": f"server-{run}",
                   "ingest": {"heartbeat_s": HB_S}},
    }
    with EmbeddedBroker() as broker:
        base["mqtt"]["port"] = broker.port
        server_cfg = parse_config({**base, "cameras": [london, *others]})
        edge_cfg = parse_config({**base, "cameras": [london]})
        keys = ",".join(f"{r}:{k}" for r, k in KEYS.items())
        with serve_in_thread(server_cfg, port=0, api_keys=keys) as server:
            feed = Feeder(broker.port, server_cfg.mqtt.topic_prefix)
            now = datetime.now(timezone.utc)
            for cam in ("southwark-jn", "waterloo-rd"):
                feed.online(cam)
            feed.send("southwark-jn", history(feed, "southwark-jn", now))
            stop = threading.Event()

            def beat() -> None:  # the synthetic cameras stay alive (one says it is covered) while tests run
                while True:
                    with feed.lock:
                        t = datetime.now(timezone.utc)
                        feed.send("southwark-jn", [feed.heartbeat("southwark-jn", t)])
                        feed.send("waterloo-rd", [feed.heartbeat("waterloo-rd", t, tamper=["covered"])])
                    if stop.wait(15):
                        return

            beater = threading.Thread(target=beat, daemon=True)
            beater.start()
            api = httpx.Client(base_url=f"{server.url}/api/v1", headers={"X-API-Key": KEYS["admin"]}, timeout=10)
            assert wait_for(lambda: api.get("/cameras/southwark-jn").json()["committed_seq"] >= feed.seq["southwark-jn"]
                            - 2, 30)
            yield {"server": server, "feed": feed, "api": api, "edge_cfg": edge_cfg, "now": now}
            stop.set()
            beater.join(5)
            feed.close()
            api.close()


def new_page(browser, site, width: int = 1600, height: int = 1000):  # noqa: F811
    ctx = browser.new_context(viewport={"width": width, "height": height}, timezone_id="America/New_York",
                              locale="en-US", accept_downloads=True)
    page = ctx.new_page()
    page.goto(f"{site['server'].url}/")
    page.wait_for_selector("#login:not([hidden])", timeout=15000)
    return ctx, page


def sign_in(page, key: str) -> None:
    page.fill("#login-key", key)
    page.click("#login-form button[type=submit]")


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def city_input(t: datetime) -> str:
    return t.astimezone(CITY).strftime("%Y-%m-%dT%H:%M")


def test_operator_signs_in_sees_the_map_live_counts_and_acknowledges_an_incident_from_mqtt(
    browser, site, london_detector: CachedDetector  # noqa: F811
) -> None:
    api, feed = site["api"], site["feed"]
    ctx, page = new_page(browser, site)
    try:
        sign_in(page, "wrong-key-123")
        page.wait_for_selector('#login-error[data-state="invalid"]', timeout=5000)
        assert page.locator("#dashboard").is_hidden()
        shot(page, "login-refused")
        sign_in(page, KEYS["operator"])
        page.wait_for_selector("body[data-ready=true]", timeout=15000)
        page.wait_for_selector('#live-status[data-state="open"]', timeout=15000)
        assert page.locator("#role-badge").get_attribute("data-role") == "operator"
        assert page.locator("#server-clock").get_attribute("data-tz") == "Asia/Ho_Chi_Minh"

        # The map places every configured camera, coloured by health.
        page.wait_for_selector('#camera-map .map-camera[data-camera-id="waterloo-rd"][data-health="degraded"]',
                               timeout=15000)
        health = {g.get_attribute("data-camera-id"): g.get_attribute("data-health")
                  for g in page.locator("#camera-map .map-camera").all()}
        assert health == {c["id"]: c["health"] for c in api.get("/cameras").json()["cameras"]}
        assert health["southwark-jn"] == "ok" and health["stamford-st"] == "unknown"
        assert page.locator("#camera-map").get_attribute("data-mode") == "schematic"

        # The detail panel of the covered camera shows its tamper sign and its data gaps.
        page.click('#camera-map .map-camera[data-camera-id="waterloo-rd"]')
        page.wait_for_selector('#camera-detail[data-loaded="waterloo-rd"]', timeout=10000)
        assert page.locator('#camera-detail dd[data-field="tamper"]').get_attribute("data-value") == "covered"
        page.click('#camera-map .map-camera[data-camera-id="southwark-jn"]')
        page.wait_for_selector('#camera-detail[data-loaded="southwark-jn"]', timeout=10000)
        strip = page.locator("#detail-coverage")
        assert int(strip.get_attribute("data-gaps")) >= 10  # the three-hour outage, in 15-minute buckets

        # Live counts per camera rise while the edge runs, without a reload, and end equal to the API.
        worker = EdgeWorker(site["edge_cfg"], detector=london_detector)
        worker.start()
        try:
            card = page.locator('#live-cameras [data-camera-id="london-03601"] [data-field="count"]')
            wait_for(lambda: int(card.get_attribute("data-value") or 0) > 0, 30)
            assert worker.wait_sources_done(60)
            assert worker.wait_drained(30)
        finally:
            worker.stop(10)
        since = datetime.now(timezone.utc) - timedelta(minutes=14)
        rows = api.get("/flow", params={"camera_id": "london-03601", "bucket": "total",
                                        "from": since.isoformat()}).json()["rows"]
        expected = sum(r["total"] for r in rows)
        assert expected >= 5
        assert wait_for(lambda: int(card.get_attribute("data-value")) == expected, 10), (
            card.get_attribute("data-value"), expected)
        # The edge said goodbye: its camera turns red on the map without a reload (once ingest has it).
        assert wait_for(lambda: api.get("/cameras/london-03601").json()["health"] == "down", 10)
        page.wait_for_selector('#camera-map .map-camera[data-camera-id="london-03601"][data-health="down"]',
                               timeout=15000)
        shot(page, "operator")

        # An incident published on MQTT appears on the page with a banner; the latency is measured.
        iid = uuid.uuid4()
        started = datetime.now(timezone.utc) - timedelta(seconds=20)
        with feed.lock:
            inc = Incident(**feed.common("southwark-jn", datetime.now(timezone.utc)), incident_id=iid,
                           incident_type="stopped_vehicle", state="open", severity="high", confidence=0.92,
                           lane_id="nb-1", track_ids=[42], started_at=started, snapshot_id="southwark-jn-snap-0001",
                           message="Xe dừng trên làn / vehicle stopped in lane")
            t0 = time.monotonic()
            feed.send("southwark-jn", [inc])
        item = page.locator(f'#alerts-list li[data-incident-id="{iid}"]')
        item.wait_for(timeout=10000)
        latency = time.monotonic() - t0
        print(f"\nincident published on MQTT -> on the page in {latency * 1000:.0f} ms")
        page.wait_for_selector(f'#incident-banner:not([hidden])[data-incident-id="{iid}"]', timeout=5000)
        assert item.locator('[data-field="snapshot"]').get_attribute("data-value") == "southwark-jn-snap-0001"
        assert item.locator('[data-field="camera"]').get_attribute("data-value") == "southwark-jn"
        assert "Xe dừng" in item.locator('[data-field="type"]').inner_text()
        assert started.astimezone(CITY).strftime("%H:%M:%S") in item.locator('[data-field="started"]').inner_text()
        assert page.locator("#incident-banner").get_attribute("data-sound") in (
            "running", "suspended", "unavailable")
        page.wait_for_selector('#camera-map .map-camera[data-camera-id="southwark-jn"][data-open-incidents="1"]',
                               timeout=5000)
        shot(page, "incident-banner")
        assert latency < 5

        page.fill("#operator-name", "Nguyễn Văn An")
        item.locator('button[data-action="ack"]').click()
        page.wait_for_selector(f'#alerts-list li[data-incident-id="{iid}"][data-status="acknowledged"]', timeout=5000)
        rec = api.get(f"/incidents/{iid}").json()
        assert (rec["status"], rec["acknowledged_by"]) == ("acknowledged", "Nguyễn Văn An")
        assert page.locator("#incident-banner").is_hidden()
        site["incident_id"] = str(iid)
    finally:
        ctx.close()


def test_a_planner_cannot_acknowledge_and_reads_charts_equal_to_the_api(browser, site) -> None:  # noqa: F811
    api, feed = site["api"], site["feed"]
    iid = uuid.uuid4()
    with feed.lock:
        feed.send("southwark-jn", [Incident(
            **feed.common("southwark-jn", datetime.now(timezone.utc)), incident_id=iid, incident_type="wrong_way",
            state="open", severity="medium", started_at=datetime.now(timezone.utc), snapshot_id=None)])
    wait_for(lambda: api.get(f"/incidents/{iid}").status_code == 200, 10)
    ctx, page = new_page(browser, site)
    try:
        sign_in(page, KEYS["planner"])
        page.wait_for_selector("body[data-ready=true]", timeout=15000)
        assert page.locator("body").get_attribute("data-view") == "planner"  # a planner starts at the workbench
        page.wait_for_selector('#flow-chart[data-state="ready"]', timeout=15000)

        # The operator view is readable, but acknowledging is not the planner's to do.
        page.click("#tab-operator")
        item = page.locator(f'#alerts-list li[data-incident-id="{iid}"]')
        item.wait_for(timeout=10000)
        assert item.locator('button[data-action="ack"]').is_disabled()
        assert item.locator('button[data-action="resolve"]').is_disabled()
        refused = page.request.post(f"{site['server'].url}/api/v1/incidents/{iid}/ack", data={"by": "planner"})
        assert refused.status == 403
        assert api.get(f"/incidents/{iid}").json()["status"] == "new"

        # Flow history of one camera: every bar reads back equal to the API, the outage shows as gaps.
        page.click("#tab-planner")
        now = site["now"]
        frm = (now - timedelta(hours=HISTORY_H)).astimezone(CITY).replace(minute=0, second=0, microsecond=0)
        to = (now + timedelta(hours=1)).astimezone(CITY).replace(minute=0, second=0, microsecond=0)
        next_hour = datetime.fromtimestamp((time.time() // 3600 + 1) * 3600, timezone.utc).astimezone(CITY)
        # city time, not New York's, in the page's one format (not the browser's en-US "12/06/2026, 06:00 PM")
        assert page.locator("#pf-to").input_value() == next_hour.strftime("%d/%m/%Y %H:%M")
        page.select_option("#pf-camera", "southwark-jn")
        page.select_option("#pf-line", "main")
        page.select_option("#pf-bucket", "1h")
        page.fill("#pf-from", city_input(frm))
        page.fill("#pf-to", city_input(to))
        totals: dict[str, float] = {}
        for unit in ("pcu", "vehicles"):
            page.select_option("#pf-unit", unit)
            page.click("#pf-submit")
            page.wait_for_selector(f'#flow-chart[data-state="ready"][data-unit="{unit}"]', timeout=10000)
            params = {"camera_id": "southwark-jn", "line_id": "main", "bucket": "1h", "unit": unit,
                      "from": frm.isoformat(), "to": to.isoformat()}
            flow = api.get("/flow", params=params).json()
            want: dict[str, float] = defaultdict(float)
            for r in flow["rows"]:
                want[r["bucket_start"]] += r["pcu" if unit == "pcu" else "total"]
            bars = page.locator("#flow-chart g.bucket").all()
            got = {b.get_attribute("data-bucket-start"): float(b.get_attribute("data-value")) for b in bars}
            assert {k: v for k, v in got.items() if v} == pytest.approx(dict(want))
            assert float(page.locator("#flow-chart").get_attribute("data-total")) == pytest.approx(flow["total"])
            cov = api.get("/coverage", params={k: params[k] for k in ("camera_id", "bucket", "from", "to")}).json()
            gap_bars = page.locator('#flow-chart g.bucket[data-gap="true"]').all()
            gaps = {b.get_attribute("data-bucket-start") for b in gap_bars}
            assert gaps == {r["bucket_start"] for r in cov["rows"] if r["coverage"] == 0}
            assert 2 <= len(gaps) <= 4  # the three-hour outage
            totals[unit] = sum(want.values())

        # Comparison, heatmap and OD matrix against their endpoints.
        page.wait_for_selector('#compare-table[data-state="ready"]', timeout=10000)
        page.wait_for_selector('#heatmap[data-state="ready"]', timeout=10000)
        page.wait_for_selector("#od-table", timeout=10000)
        od = api.get("/od", params={"camera_id": "southwark-jn", "from": frm.isoformat(), "to": to.isoformat()}).json()
        cells = {
            (c.get_attribute("data-origin"), c.get_attribute("data-destination")): int(c.get_attribute("data-value"))
            for c in page.locator("#od-table td.od-cell").all()
        }
        assert cells == {(o, d): od["matrix"][i][j] for i, o in enumerate(od["origins"])
                         for j, d in enumerate(od["destinations"])}
        assert od["total"] > 0
        cmp = api.get("/flow/compare", params={"camera_id": "southwark-jn", "line_id": "main",
                                               "a_from": (frm - (to - frm)).isoformat(), "a_to": frm.isoformat(),
                                               "b_from": frm.isoformat(), "b_to": to.isoformat()}).json()
        for period in ("a", "b"):
            cell = page.locator(f'#compare-table tr[data-field="total"] td[data-period="{period}"]')
            assert int(cell.get_attribute("data-value")) == cmp[period]["total"]
        assert cmp["b"]["total"] == totals["vehicles"]
        profile_cells = page.locator('#heatmap rect.cell:not(.gap)').count()
        assert profile_cells >= 20
        shot(page, "planner")

        # Exports download what the API serves.
        with page.expect_download() as dl:
            page.click("#export-flow-csv")
        text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert sum(int(r["total"]) for r in rows) == totals["vehicles"]
        with page.expect_download() as dl:
            page.click("#export-flow-fiware")
        entities = json.loads(Path(dl.value.path()).read_text(encoding="utf-8"))
        assert entities and all(e["type"] == "TrafficFlowObserved" for e in entities)
    finally:
        ctx.close()


def test_the_map_falls_back_to_the_schematic_when_the_tile_server_is_unreachable(
    browser, tmp_path: Path  # noqa: F811
) -> None:
    cfg = parse_config({
        "server": {"database_url": f"sqlite:///{tmp_path}/t.sqlite", "map_tiles_url": "http://127.0.0.1:9/{z}/{x}/{y}.png"},
        "cameras": [{"id": "cam-a", "name": "Ngã tư Hàng Xanh", "source": "file:///dev/null",
                     "location": {"lat": 10.8013, "lon": 106.7113}}],
    })
    with serve_in_thread(cfg, port=0, ingest=False, api_keys=f"operator:{KEYS['operator']}") as server:
        r = httpx.get(f"{server.url}/", timeout=10)
        assert "img-src 'self' data: http://127.0.0.1:9;" in r.headers["content-security-policy"]
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        page = ctx.new_page()
        try:
            page.goto(f"{server.url}/")
            sign_in(page, KEYS["operator"])
            page.wait_for_selector('#camera-map .map-camera[data-camera-id="cam-a"]', timeout=15000)
            page.wait_for_selector('#camera-map[data-mode="schematic"]', timeout=10000)
            assert page.locator("#map-tiles").count() == 0
            assert page.locator("#map-scale").count() == 1
        finally:
            ctx.close()
