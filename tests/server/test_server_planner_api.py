"""Planner API over the rollups: flows in vehicles and PCU with observed coverage, period comparison,
hour-of-week profile, OD, occupancy, CSV with BOM, FIWARE entities valid against the official schemas;
key rotation and configuration push."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_testkit import crossing, make_config, status_event
from support import require

from citywatch.contract import Movement, ZoneOccupancy
from server.app import create_app
from server.storage.store import Store

FIWARE = Path(__file__).resolve().parents[3] / "shared/standards/fiware"
T0 = datetime(2025, 3, 3, 0, 0, tzinfo=timezone(timedelta(hours=7)))  # Monday 00:00 in Hanoi


def _hb(seq: int, ts: datetime):  # type: ignore[no-untyped-def]
    return status_event(seq).model_copy(update={"ts": ts, "uptime_s": 1e6})


@pytest.fixture
def loaded(sqlite_url: str) -> Iterator[tuple[TestClient, Store]]:
    store = Store(sqlite_url)
    evs = []
    seq = 0
    for minute in range(60):  # Monday 08:00-09:00 local: observed, 2 cars + 1 motorcycle per minute
        t = T0 + timedelta(hours=8, minutes=minute)
        for cls in ("car", "car", "motorcycle"):
            seq += 1
            evs.append(crossing(seq, ts=t + timedelta(seconds=seq % 50), class_name=cls))
        for s in range(0, 60, 10):
            seq += 1
            evs.append(_hb(seq, t + timedelta(seconds=s + 10)))
    seq += 1
    evs.append(
        ZoneOccupancy(
            event_id=uuid.uuid4(),
            camera_id="cam-1",
            site_id="site-1",
            seq=seq,
            ts=T0 + timedelta(hours=8, minutes=30),
            config_version="t",
            model_version="t",
            zone_id="lane-a",
            lane=True,
            interval_s=60,
            frame_index=0,
            occupancy={"car": 1},
            occupied_fraction=0.4,
            vehicles_entered=12,
            mean_speed_kmh=25.0,
        )
    )
    for a, b in (("north", "south"), ("north", "south"), ("north", "east")):
        seq += 1
        evs.append(
            Movement(
                event_id=uuid.uuid4(),
                camera_id="cam-1",
                site_id="site-1",
                seq=seq,
                ts=T0 + timedelta(hours=8, minutes=5),
                config_version="t",
                model_version="t",
                track_id=seq,
                class_name="car",
                entry_zone=a,
                exit_zone=b,
                entry_frame=0,
                exit_frame=5,
                duration_s=3.0,
            )
        )
    store.insert_events(evs)
    cam = {
        "id": "cam-1",
        "name": "Ngã tư / Crossroads",
        "source": "file:///dev/null",
        "location": {"lat": 10.77, "lon": 106.7},
        "lines": [{"id": "l1", "points": [[0, 0], [100, 0]]}],
        "lanes": [{"id": "lane-a", "polygon": [[0, 0], [10, 0], [10, 10]]}],
    }
    cfg = make_config(run_id="planner", database_url=sqlite_url, cameras=[cam])
    with TestClient(
        create_app(cfg, ingest=False, store=store, api_keys="admin:admin-key-123,planner:planner-key-1")
    ) as c:
        c.headers["X-API-Key"] = "planner-key-1"
        yield c, store
    store.close()


def test_flow_in_pcu_with_observed_coverage(loaded: tuple[TestClient, Store]) -> None:
    c, _ = loaded
    params = {"from": "2025-03-03T07:00:00+07:00", "to": "2025-03-03T10:00:00+07:00", "bucket": "1h", "unit": "pcu"}
    body = c.get("/api/v1/flow", params=params).json()
    rows = {r["bucket_start"]: r for r in body["rows"]}
    r = rows["2025-03-03T08:00:00+07:00"]
    assert r["counts"]["car"] == 120 and r["counts"]["motorcycle"] == 60 and r["total"] == 180
    assert r["pcu"] == pytest.approx(120 * 1.0 + 60 * 0.3)
    assert r["coverage"] == 1.0 and r["observed_s"] == 3600
    assert body["total"] == pytest.approx(138.0) and body["pcu_weights"]["motorcycle"] == 0.3


def test_compare_two_periods_per_observed_hour(loaded: tuple[TestClient, Store]) -> None:
    c, _ = loaded
    body = c.get(
        "/api/v1/flow/compare",
        params={
            "a_from": "2025-03-03T08:00:00+07:00",
            "a_to": "2025-03-03T08:30:00+07:00",
            "b_from": "2025-03-03T08:00:00+07:00",
            "b_to": "2025-03-03T09:00:00+07:00",
        },
    ).json()
    assert body["a"]["total"] == 90 and body["b"]["total"] == 180
    assert body["change"]["total_pct"] == 100.0
    assert body["change"]["per_observed_hour_pct"] == 0.0  # same rate: the longer period is not "busier"


def test_hour_of_week_profile_is_in_the_city_time_zone(loaded: tuple[TestClient, Store]) -> None:
    c, _ = loaded
    body = c.get(
        "/api/v1/flow/profile", params={"from": "2025-03-01T00:00:00+07:00", "to": "2025-03-08T00:00:00+07:00"}
    ).json()
    hours = body["hours"]
    assert len(hours) == 168
    busy = [h for h in hours if h["total"]]
    assert [(h["day"], h["hour"], h["total"], h["per_observed_hour"]) for h in busy] == [("Mon", 8, 180, 180.0)]


def test_od_matrix_and_lane_occupancy(loaded: tuple[TestClient, Store]) -> None:
    c, _ = loaded
    rng = {"from": "2025-03-03T07:00:00+07:00", "to": "2025-03-03T10:00:00+07:00"}
    od = c.get("/api/v1/od", params={**rng, "camera_id": "cam-1"}).json()
    assert od["origins"] == ["north"] and od["destinations"] == ["east", "south"] and od["matrix"] == [[1, 2]]
    occ = c.get("/api/v1/occupancy", params={**rng, "bucket": "total", "lanes_only": True}).json()
    (row,) = occ["rows"]
    assert row["zone_id"] == "lane-a" and row["occupancy"] == 0.4 and row["vehicles_entered"] == 12


def test_csv_export_has_a_bom_and_one_row_per_bucket(loaded: tuple[TestClient, Store]) -> None:
    c, _ = loaded
    r = c.get(
        "/api/v1/export/flow.csv",
        params={"from": "2025-03-03T08:00:00+07:00", "to": "2025-03-03T09:00:00+07:00", "bucket": "15m"},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == 4 and sum(int(x["total"]) for x in rows) == 180


def test_fiware_traffic_flow_entities_validate_against_the_official_schema(
    loaded: tuple[TestClient, Store], tmp_path: Path
) -> None:
    c, _ = loaded
    r = c.get(
        "/api/v1/export/fiware/traffic-flow",
        params={"from": "2025-03-03T08:00:00+07:00", "to": "2025-03-03T09:00:00+07:00", "bucket": "1h"},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/ld+json")
    ents = r.json()
    kinds = {e.get("vehicleType") for e in ents}
    assert kinds == {None, "car", "motorcycle"}  # vehicleType in the schema's vocabulary
    line_all = next(e for e in ents if "vehicleType" not in e and "laneId" not in e)
    assert line_all["intensity"] == 180 and line_all["laneDirection"] == "forward"
    assert line_all["location"] == {"type": "Point", "coordinates": [106.7, 10.77]}
    lane = next(e for e in ents if e.get("laneId") == 1)
    assert lane["occupancy"] == 0.4 and lane["intensity"] == 12 and lane["averageVehicleSpeed"] == 25.0
    assert len({e["id"] for e in ents}) == len(ents)
    require((FIWARE / "validate.py").exists(), "../shared/standards/fiware is not beside the checkout")
    f = tmp_path / "flows.json"
    f.write_text(json.dumps(ents))
    out = subprocess.run([sys.executable, str(FIWARE / "validate.py"), str(f)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_keys_rotate_without_a_restart(loaded: tuple[TestClient, Store]) -> None:
    c, _ = loaded
    admin = {"X-API-Key": "admin-key-123"}
    assert c.post("/api/v1/keys", json={"role": "planner", "name": "x"}).status_code == 403
    made = c.post("/api/v1/keys", json={"role": "operator", "name": "ops laptop"}, headers=admin).json()
    key = made["key"]
    assert c.get("/api/v1/cameras", headers={"X-API-Key": key}).status_code == 200
    login = c.post("/api/v1/session", json={"key": key})
    assert login.status_code == 200
    listed = c.get("/api/v1/keys", headers=admin).json()["keys"]
    assert [k["name"] for k in listed] == ["ops laptop"] and "key" not in listed[0] and "key_hash" not in listed[0]
    assert c.delete(f"/api/v1/keys/{made['id']}", headers=admin).status_code == 204
    assert c.get("/api/v1/cameras", headers={"X-API-Key": key}).status_code == 401
    c.cookies.clear()
    assert c.delete(f"/api/v1/keys/{made['id']}", headers=admin).status_code == 404


def test_config_push_is_admin_only_and_validated(loaded: tuple[TestClient, Store]) -> None:
    c, _ = loaded
    body = {"id": "cam-1", "source": "file:///dev/null", "lines": [{"id": "l2", "points": [[0, 0], [50, 50]]}]}
    assert c.put("/api/v1/cameras/cam-1/config", json=body).status_code == 403
    admin = {"X-API-Key": "admin-key-123"}
    bad = c.put(
        "/api/v1/cameras/cam-1/config",
        json={**body, "lines": [{"id": "l2", "points": [[0, 0], [0, 0]]}]},
        headers=admin,
    )
    assert bad.status_code == 422 and "lines" in bad.text
    assert c.put("/api/v1/cameras/cam-9/config", json=body, headers=admin).status_code == 422
    assert c.put("/api/v1/cameras/cam-1/config", json=body, headers=admin).status_code == 503  # no broker here


def test_metrics_include_query_latency_and_gap_counters(loaded: tuple[TestClient, Store]) -> None:
    c, _ = loaded
    c.get("/api/v1/flow")
    text = c.get("/metrics").text
    assert 'citywatch_http_request_seconds_bucket{le="0.05",method="GET",route="/api/v1/flow",status="200"}' in text
    for name in (
        "citywatch_ingest_events_received",
        "citywatch_ingest_replay_requests",
        "citywatch_ingest_commit_lag_seconds",
    ):
        assert name in text
