"""Planner forecast API: forecast vs actual with the band, the typical week, the anomaly history and the
CSV export (site time zone stated in the file); planner and admin only; every bad parameter is a 422."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta

import holidays
import numpy as np
import pytest
from fastapi.testclient import TestClient
from forecast_kit import HANOI, seed_forecast_scene
from server_testkit import make_config

from server.app import create_app
from server.forecasting.history import load_histories
from server.forecasting.tables import LINE, SeriesKey
from server.storage.store import Store

NOW = datetime(2026, 3, 2, 10, 10, tzinfo=HANOI)
KEYS = "admin:admin-key-123,planner:planner-key-1,operator:operator-key-1"
LINE_A = {"camera_id": "cam-a", "series_id": "l1", "direction": "in"}


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Store, dict]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('fcapi')}/db.sqlite"
    store = Store(url)
    info = seed_forecast_scene(store, NOW)
    cfg = make_config(run_id="fcapi", database_url=url)
    with TestClient(create_app(cfg, ingest=False, store=store, api_keys=KEYS)) as c:
        c.headers["X-API-Key"] = "planner-key-1"
        yield c, store, info
    store.close()


def test_forecast_vs_actual_has_the_band_and_the_observed_flow(scene: tuple[TestClient, Store, dict]) -> None:
    c, store, info = scene
    r = c.get("/api/v1/forecasts/vs-actual", params={
        **LINE_A, "freq": "15min", "from": "2026-03-02T09:00:00+07:00", "to": "2026-03-02T12:00:00+07:00"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and body["timezone"] == "Asia/Ho_Chi_Minh"
    rows = {x["bucket_start"]: x for x in body["rows"]}
    assert len(rows) == 12
    first = rows["2026-03-02T10:00:00+07:00"]  # forecast made at 10:10 for this bucket, then observed low
    assert first["lo80"] <= first["forecast"] <= first["hi80"]
    assert first["actual"] == round(0.3 * first["forecast"]) and first["coverage"] == 1.0
    assert rows["2026-03-02T09:00:00+07:00"]["forecast"] is None  # before the first refresh: no forecast
    assert rows["2026-03-02T09:00:00+07:00"]["coverage"] == 0.0  # the history ends at midnight
    later = rows["2026-03-02T11:45:00+07:00"]
    assert later["actual"] is None and later["forecast"] is not None  # not observed yet: missing, not zero


def test_typical_week_is_the_median_and_quantiles_per_hour_of_week_without_holidays(
    scene: tuple[TestClient, Store, dict],
) -> None:
    c, store, info = scene
    r = c.get("/api/v1/forecasts/typical-week", params={
        **LINE_A, "from": "2026-01-05T00:00:00+07:00", "to": "2026-03-02T00:00:00+07:00"})
    assert r.status_code == 200, r.text
    hours = r.json()["hours"]
    assert len(hours) == 168 and hours[0]["day"] == "Mon" and hours[8]["hour"] == 8
    # Monday 08:00 recomputed from the hourly rollups by hand, Vietnamese holidays (Tết 2026) left out

    lo = int(datetime(2026, 1, 5, tzinfo=HANOI).timestamp())
    h = load_histories(store, lo, lo + 8 * 7 * 86400, 3600, classes=["car"], min_coverage=0.5)
    v = h.values[SeriesKey(LINE, "cam-a", "l1", "in")]
    vn = holidays.country_holidays("VN", years=2026)
    mondays_8 = [v[d * 24 + 8] for d in range(0, 56, 7)
                 if (datetime.fromtimestamp(lo, HANOI) + timedelta(days=d)).date() not in vn]
    mondays_8 = [x for x in mondays_8 if not np.isnan(x)]
    assert hours[8]["n"] == len(mondays_8) > 2
    assert hours[8]["median"] == round(float(np.median(mondays_8)), 2)
    assert hours[8]["q10"] <= hours[8]["q25"] <= hours[8]["median"] <= hours[8]["q75"] <= hours[8]["q90"]


def test_anomaly_history_lists_the_flow_anomaly_with_expected_and_observed(
    scene: tuple[TestClient, Store, dict],
) -> None:
    c, _, info = scene
    assert info["check"].opened == 1
    r = c.get("/api/v1/forecasts/anomalies", params={"camera_id": "cam-a", "from": "2026-03-01T00:00:00+07:00",
                                                      "to": "2026-03-03T00:00:00+07:00"})
    assert r.status_code == 200, r.text
    [a] = r.json()["items"]
    assert a["anomaly"] == "drop" and a["state"] == "open" and a["status"] == "new"
    assert a["observed"] < 0.5 * a["expected"] and a["lo80"] <= a["expected"] <= a["hi80"]
    assert a["window_start"].endswith("+07:00")
    # operators see the same incident in the incident list
    c2 = c.get("/api/v1/incidents", params={"type": "flow_anomaly"}, headers={"X-API-Key": "operator-key-1"})
    assert c2.status_code == 200 and c2.json()["items"][0]["incident_id"] == a["incident_id"]


def test_series_list_says_why_a_line_has_no_forecast(scene: tuple[TestClient, Store, dict]) -> None:
    c, _, _ = scene
    series = {s["camera_id"]: s for s in c.get("/api/v1/forecasts/series").json()["series"]}
    assert series["cam-a"]["status"] == "ok" and series["cam-a"]["anomaly_open"] is True
    assert series["cam-b"]["status"] == "cold_start"
    assert series["cam-b"]["message"].startswith("not enough history: ") and "need 14" in series["cam-b"]["message"]


def test_csv_export_states_the_site_time_zone(scene: tuple[TestClient, Store, dict]) -> None:
    c, _, _ = scene
    r = c.get("/api/v1/export/forecasts.csv", params={"camera_id": "cam-a", "freq": "h",
                                                       "from": "2026-03-02T10:00:00+07:00"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    text = r.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert len(rows) == 48
    assert rows[0]["bucket_start"] == "2026-03-02T10:00:00+07:00" and rows[0]["timezone"] == "Asia/Ho_Chi_Minh"
    assert float(rows[0]["lo80"]) <= float(rows[0]["forecast"]) <= float(rows[0]["hi80"])
    api = c.get("/api/v1/forecasts/vs-actual", params={**LINE_A, "freq": "h", "from": "2026-03-02T10:00:00+07:00",
                                                      "to": "2026-03-02T11:00:00+07:00"}).json()["rows"][0]
    assert float(rows[0]["forecast"]) == api["forecast"]


def test_only_planners_and_admins_read_forecasts(scene: tuple[TestClient, Store, dict]) -> None:
    c, _, _ = scene
    for path in ("/api/v1/forecasts/series", "/api/v1/forecasts/anomalies", "/api/v1/export/forecasts.csv"):
        assert c.get(path, headers={"X-API-Key": "operator-key-1"}).status_code == 403
        assert c.get(path, headers={"X-API-Key": "admin-key-123"}).status_code == 200
        assert c.get(path, headers={"X-API-Key": "nope-nope-nope"}).status_code == 401


@pytest.mark.parametrize("params", [
    {"camera_id": "cam-a", "series_id": "l1"},  # a line needs its direction
    {"camera_id": "cam-a", "series_id": "lane-1", "kind": "lane", "direction": "in"},  # lanes have none
    {**LINE_A, "freq": "5min"},
    {**LINE_A, "kind": "zone"},
    {**LINE_A, "camera_id": "cam a/../x"},
    {**LINE_A, "direction": "up"},
    {**LINE_A, "from": "2026-03-02T10:00:00"},  # no offset
    {**LINE_A, "from": "2026-03-03T00:00:00+07:00", "to": "2026-03-02T00:00:00+07:00"},
    {**LINE_A, "from": "2020-01-01T00:00:00+07:00", "to": "2026-03-02T00:00:00+07:00"},  # over 400 days
    {"series_id": "l1", "direction": "in"},  # no camera
])
def test_bad_parameters_are_422(scene: tuple[TestClient, Store, dict], params: dict) -> None:
    c, _, _ = scene
    r = c.get("/api/v1/forecasts/vs-actual", params=params)
    assert r.status_code == 422, (params, r.text)
    assert c.get("/api/v1/export/forecasts.csv", params={"freq": "day"}).status_code == 422
    assert c.get("/api/v1/forecasts/anomalies", params={"limit": 0}).status_code == 422


def test_forecast_routes_are_in_the_openapi_schema(scene: tuple[TestClient, Store, dict]) -> None:
    paths = scene[0].get("/openapi.json").json()["paths"]
    for p in ("/api/v1/forecasts/vs-actual", "/api/v1/forecasts/typical-week", "/api/v1/forecasts/anomalies",
              "/api/v1/forecasts/series", "/api/v1/export/forecasts.csv"):
        assert p in paths
