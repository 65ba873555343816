"""Planner numbers at their edges, against the API: long ranges at fine buckets, periods before the camera
existed and in the future, periods observed unlike each other, a lane's own counts, and the one time rule
of the exports."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_testkit import crossing, make_config, status_event

from citywatch.contract import ZoneOccupancy, utcnow
from server.app import create_app
from server.coverage import bucket_coverage, fit_bucket
from server.storage.store import Store

HANOI = timezone(timedelta(hours=7))
T0 = datetime(2025, 3, 3, 0, 0, tzinfo=HANOI)  # Monday 00:00 in Hanoi
#: The camera's life that day: installed 08:00, observing 08:00-09:00 and 10:00-10:30, down otherwise.
UP = ((8 * 60, 9 * 60), (10 * 60, 10 * 60 + 30))


def _hb(seq: int, ts: datetime, camera_id: str = "cam-1") -> Any:
    return status_event(seq, camera_id=camera_id).model_copy(update={"ts": ts, "uptime_s": 1e6})


def _lane_report(seq: int, ts: datetime, entered: int) -> ZoneOccupancy:
    return ZoneOccupancy(
        event_id=uuid.uuid4(), camera_id="cam-1", site_id="site-1", seq=seq, ts=ts, config_version="t",
        model_version="t", zone_id="lane-a", lane=True, interval_s=60, frame_index=0, occupancy={},
        occupied_fraction=0.2, vehicles_entered=entered,
    )


def day_events() -> list[Any]:
    evs: list[Any] = []
    seq = 0
    for lo, hi in UP:
        for minute in range(lo, hi):
            t = T0 + timedelta(minutes=minute)
            seq += 1
            evs.append(crossing(seq, ts=t + timedelta(seconds=30)))  # one car a minute
            for s in range(0, 60, 10):
                seq += 1
                evs.append(_hb(seq, t + timedelta(seconds=s + 10)))
            seq += 1
            evs.append(_lane_report(seq, t + timedelta(seconds=60), 2))  # two vehicles enter the lane a minute
    return evs


@pytest.fixture
def api(sqlite_url: str) -> Iterator[tuple[TestClient, Store]]:
    store = Store(sqlite_url)
    store.insert_events(day_events())
    cam = {"id": "cam-1", "source": "file:///dev/null", "lines": [{"id": "l1", "points": [[0, 0], [100, 0]]}],
           "lanes": [{"id": "lane-a", "polygon": [[0, 0], [10, 0], [10, 10]]}]}
    cfg = make_config(run_id="coverage", database_url=sqlite_url, cameras=[cam],
                      server={"database_url": sqlite_url, "timezone": "Asia/Ho_Chi_Minh"})
    with TestClient(create_app(cfg, ingest=False, store=store, api_keys="planner:planner-key-1")) as c:
        c.headers["X-API-Key"] = "planner-key-1"
        yield c, store
    store.close()


def _iso(t: datetime) -> str:
    return t.isoformat()


# --- the rules alone -------------------------------------------------------------------------------


def test_sixty_days_at_one_minute_is_answered_per_hour_not_with_nothing() -> None:
    lo = int(T0.timestamp())
    fit = fit_bucket("1m", lo, lo + 60 * 86400, 7 * 3600)
    assert (fit.bucket, fit.buckets, fit.coarsened) == ("1h", 1440, True)
    assert fit.message and "1m" in fit.message and "1h" in fit.message
    assert not fit_bucket("1m", lo, lo + 3600, 7 * 3600).coarsened


def test_a_bucket_is_future_before_install_gap_partial_or_observed() -> None:
    lo, now = 0, 5 * 3600 + 1800  # now: half way through the sixth hour
    rows = bucket_coverage(lo, 8 * 3600, 3600, 0, now, {"cam": 2 * 3600}, {2 * 3600: 3600.0, 4 * 3600: 900.0,
                                                                           5 * 3600: 1800.0})
    assert [r.state for r in rows] == ["before_install", "before_install", "observed", "gap", "partial", "observed",
                                       "future", "future"]
    assert [r.coverage for r in rows] == [None, None, 1.0, 0.0, 0.25, 1.0, None, None]
    assert rows[5].observable_s == 1800  # the hour holding now is judged on what has happened


def test_with_two_cameras_the_hour_before_the_second_exists_is_judged_on_the_first_alone() -> None:
    rows = bucket_coverage(0, 2 * 3600, 3600, 0, 10 * 3600, {"a": 0, "b": 3600, "never": None}, {0: 3600.0,
                                                                                                 3600: 3600.0})
    assert [(r.state, r.coverage) for r in rows] == [("observed", 1.0), ("partial", 0.5)]


# --- against the API -------------------------------------------------------------------------------


def test_coverage_of_a_day_names_before_install_gaps_and_partial_hours(api: tuple[TestClient, Store]) -> None:
    c, _ = api
    body = c.get("/api/v1/coverage", params={"camera_id": "cam-1", "bucket": "1h", "from": _iso(T0),
                                             "to": _iso(T0 + timedelta(hours=12))}).json()
    states = [r["state"] for r in body["rows"]]
    assert states == ["before_install"] * 8 + ["observed", "gap", "partial", "gap"]
    assert body["gaps"] == 2 and not body["coarsened"]
    assert [r["coverage"] for r in body["rows"][8:]] == [1.0, 0.0, 0.5, 0.0]


def test_sixty_days_at_one_minute_counts_the_gaps_per_hour(api: tuple[TestClient, Store]) -> None:
    c, _ = api
    frm, to = T0 - timedelta(days=30), T0 + timedelta(days=30)
    body = c.get("/api/v1/coverage", params={"camera_id": "cam-1", "bucket": "1m", "from": _iso(frm),
                                             "to": _iso(to)}).json()
    assert body["bucket"] == "1h" and body["requested_bucket"] == "1m" and body["coarsened"]
    assert len(body["rows"]) == 60 * 24 and body["message"]
    by = {r["bucket_start"]: r for r in body["rows"]}
    assert by[_iso(T0 + timedelta(hours=7))]["state"] == "before_install"
    assert by[_iso(T0 + timedelta(hours=8))]["state"] == "observed"
    # every hour after the camera's install that it did not observe is a gap (up to now: the past)
    after = [r for r in body["rows"] if r["bucket_start"] > _iso(T0 + timedelta(hours=10))]
    assert all(r["state"] == "gap" for r in after)
    assert body["gaps"] == len(after) + 1  # and 09:00
    fine = c.get("/api/v1/coverage", params={"camera_id": "cam-1", "bucket": "1m", "from": _iso(frm),
                                             "to": _iso(to), "max_buckets": 100}).json()
    assert fine["bucket"] == "1d" and len(fine["rows"]) == 60


def test_buckets_in_the_future_are_not_gaps(api: tuple[TestClient, Store]) -> None:
    c, store = api
    now = utcnow()
    into_hour = now.minute * 60 + now.second + now.microsecond / 1e6  # the city's offset is whole hours
    if into_hour < 10:  # both heartbeats must fall in the current hour, not straddle its start
        time.sleep(10 - into_hour)
        now = utcnow()
    store.insert_events([_hb(10_000, now - timedelta(seconds=5)), _hb(10_001, now - timedelta(seconds=1))])
    frm = now.astimezone(HANOI).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    body = c.get("/api/v1/coverage", params={"camera_id": "cam-1", "bucket": "1h", "from": _iso(frm),
                                             "to": _iso(frm + timedelta(hours=6))}).json()
    states = [r["state"] for r in body["rows"]]
    assert states[:2] == ["gap", "gap"] and states[2] == "partial" and states[3:] == ["future"] * 3
    cur = body["rows"][2]
    assert cur["observable_s"] < 3600  # the current hour is judged on what has happened so far


def test_flow_coverage_is_judged_from_the_install_on(api: tuple[TestClient, Store]) -> None:
    c, _ = api
    body = c.get("/api/v1/flow", params={"camera_id": "cam-1", "bucket": "total", "from": _iso(T0),
                                         "to": _iso(T0 + timedelta(hours=11))}).json()
    (row,) = body["rows"]
    assert row["total"] == 90 and row["observed_s"] == 90 * 60
    assert row["coverage"] == pytest.approx(90 / 180)  # 08:00-11:00 could have been observed, not 00:00-11:00


def test_compare_does_not_set_totals_of_unlike_periods_against_each_other(api: tuple[TestClient, Store]) -> None:
    c, _ = api
    body = c.get("/api/v1/flow/compare", params={
        "a_from": _iso(T0 + timedelta(hours=8)), "a_to": _iso(T0 + timedelta(hours=9)),  # fully observed
        "b_from": _iso(T0 + timedelta(hours=9)), "b_to": _iso(T0 + timedelta(hours=11)),  # a quarter observed
    }).json()
    a, b, ch = body["a"], body["b"], body["change"]
    assert (a["total"], b["total"]) == (60, 30)
    assert (a["observed_h"], b["observed_h"]) == (1.0, 0.5)
    assert (a["coverage"], b["coverage"]) == (1.0, 0.25)
    assert (a["per_observed_hour"], b["per_observed_hour"]) == (60.0, 60.0)
    assert ch["per_observed_hour_pct"] == 0.0
    assert ch["total_pct"] is None and ch["totals_comparable"] is False
    assert any("observed shares differ" in n for n in body["notes"])


def test_compare_gives_no_rate_from_a_few_observed_minutes(api: tuple[TestClient, Store]) -> None:
    c, _ = api
    body = c.get("/api/v1/flow/compare", params={
        "a_from": _iso(T0 + timedelta(hours=8, minutes=55)), "a_to": _iso(T0 + timedelta(hours=9, minutes=55)),
        "b_from": _iso(T0 + timedelta(hours=8)), "b_to": _iso(T0 + timedelta(hours=9)),
    }).json()
    assert body["a"]["observed_s"] == 300 and body["a"]["per_observed_hour"] is None
    assert body["change"]["per_observed_hour_pct"] is None and body["change"]["total_pct"] is None
    assert any("period A" in n for n in body["notes"])


def test_compare_before_install_is_said_not_computed(api: tuple[TestClient, Store]) -> None:
    c, _ = api
    body = c.get("/api/v1/flow/compare", params={
        "a_from": _iso(T0), "a_to": _iso(T0 + timedelta(hours=2)),
        "b_from": _iso(T0 + timedelta(hours=8)), "b_to": _iso(T0 + timedelta(hours=10)),
    }).json()
    assert body["a"]["coverage"] is None and body["a"]["total"] == 0
    assert body["change"]["total_pct"] is None and any("before" in n for n in body["notes"])


def test_a_lane_reports_its_own_vehicles(api: tuple[TestClient, Store]) -> None:
    c, _ = api
    body = c.get("/api/v1/occupancy", params={"camera_id": "cam-1", "zone_id": "lane-a", "lanes_only": True,
                                              "bucket": "1h", "from": _iso(T0 + timedelta(hours=8)),
                                              "to": _iso(T0 + timedelta(hours=11))}).json()
    assert sum(r["vehicles_entered"] for r in body["rows"]) == 2 * 90


# --- exports: one time rule ------------------------------------------------------------------------


def test_flow_csv_is_in_city_time_with_the_zone_named_and_the_file_in_the_query_zone(
    api: tuple[TestClient, Store],
) -> None:
    c, _ = api
    utc_from = (T0 + timedelta(hours=8)).astimezone(timezone.utc)
    r = c.get("/api/v1/export/flow.csv", params={"camera_id": "cam-1", "bucket": "1h", "from": _iso(utc_from),
                                                 "to": _iso(utc_from + timedelta(hours=1))})
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(x["bucket_start"], x["timezone"], x["total"]) for x in rows] == [
        ("2025-03-03T08:00:00+07:00", "Asia/Ho_Chi_Minh", "60")]
    assert 'filename="citywatch-flow-20250303T0100+0000-1h.csv"' in r.headers["content-disposition"]
    local = c.get("/api/v1/export/flow.csv", params={"bucket": "1h", "from": _iso(T0 + timedelta(hours=8)),
                                                     "to": _iso(T0 + timedelta(hours=9))})
    assert 'filename="citywatch-flow-20250303T0800+0700-1h.csv"' in local.headers["content-disposition"]


def test_fiware_times_are_utc() -> None:
    from server import export

    e = export.traffic_flow_observed(site_id="s", camera_id="c", start=T0, end=T0 + timedelta(hours=1), intensity=1,
                                     line_id="l")
    assert e["dateObservedFrom"] == "2025-03-02T17:00:00Z"


def test_incidents_csv_is_in_city_time_with_the_zone_named() -> None:
    from server import export

    inc = {"incident_id": "i-1", "started_at": "2025-03-03T01:00:00+00:00", "ended_at": None, "track_ids": [3, 4]}
    text = export.incidents_csv([inc], "Asia/Ho_Chi_Minh")
    (row,) = list(csv.DictReader(io.StringIO(text.removeprefix(export.BOM))))
    assert (row["started_at"], row["ended_at"], row["timezone"], row["track_ids"]) == (
        "2025-03-03T08:00:00+07:00", "", "Asia/Ho_Chi_Minh", "3 4")
    since = datetime(2025, 3, 3, 8, 0, tzinfo=HANOI)
    assert export.incidents_file_name(since, None, "UTC") == "citywatch-incidents-20250303T0800+0700.csv"


def test_an_hour_of_the_week_observed_a_few_minutes_has_no_rate(api: tuple[TestClient, Store]) -> None:
    c, store = api
    t = T0 + timedelta(days=1, hours=12)  # Tuesday 12:00, observed five minutes, five cars
    evs: list[Any] = []
    for m in range(5):
        evs.append(crossing(50_000 + m, ts=t + timedelta(minutes=m, seconds=30)))
        evs += [_hb(50_100 + m * 6 + s, t + timedelta(minutes=m, seconds=10 * s + 10)) for s in range(6)]
    store.insert_events(evs)
    hours = c.get("/api/v1/flow/profile", params={"from": _iso(T0), "to": _iso(T0 + timedelta(days=7))}).json()["hours"]
    tue = hours[24 + 12]
    assert (tue["total"], tue["observed_h"], tue["per_observed_hour"]) == (5, 0.083, None)
    mon = hours[8]
    assert mon["per_observed_hour"] == 60.0  # a whole observed hour keeps its rate


def test_a_cameras_install_is_its_first_minute_of_data_on_both_databases(store: Store) -> None:
    evs = day_events()
    evs.append(crossing(90_000, camera_id="cam-2", ts=T0 + timedelta(days=2, hours=3, minutes=17, seconds=5)))
    store.insert_events(evs)
    first = store.history.first_data(["cam-1", "cam-2", "cam-never"])
    # cam-1's first heartbeat at 08:00:10 covers one heartbeat period (10 s) before it: 08:00 is its first minute
    assert first["cam-1"] == int((T0 + timedelta(hours=8)).timestamp())
    assert first["cam-2"] == int((T0 + timedelta(days=2, hours=3, minutes=17)).timestamp())
    assert first["cam-never"] is None
