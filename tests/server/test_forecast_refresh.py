"""Server forecasts from the rollups: a refresh forecasts every line with its 80 % band from real history,
says "not enough history" instead of inventing one, treats unobserved buckets as missing (not zero), and
opens/closes flow_anomaly incidents only for a healthy camera. SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from fastapi.testclient import TestClient
from forecast_kit import HANOI, seed_line, set_health
from server_testkit import wait_for
from sqlalchemy import delete, select
from test_server_rollups import heartbeat

from citywatch.config import CitywatchConfig, ConfigError, parse_config
from citywatch.contract import ZoneOccupancy
from server.app import create_app
from server.forecasting.anomaly_watch import FlowAnomalyWatch
from server.forecasting.count_import import BucketCount, store_counts
from server.forecasting.history import load_histories
from server.forecasting.refresh import ForecastRefresher
from server.forecasting.tables import LANE, LINE, FlowAnomalyRow, ForecastRow, ForecastSeriesRow, SeriesKey
from server.storage.incidents import IncidentRow
from server.storage.models import FLOW_TABLES, OBSERVED_TABLES
from server.storage.store import Store

END = datetime(2026, 3, 2, tzinfo=HANOI)  # Monday 00:00 local
NOW = END + timedelta(hours=10, minutes=10)
A = SeriesKey(LINE, "cam-a", "l1", "in")


def _forecasts(store: Store, key: SeriesKey, freq: str) -> list[ForecastRow]:
    with store.db.session() as s:
        return list(s.scalars(select(ForecastRow).where(
            ForecastRow.camera_id == key.camera_id, ForecastRow.series_id == key.series_id,
            ForecastRow.direction == key.direction, ForecastRow.freq == freq).order_by(ForecastRow.ds)))


def _series(store: Store) -> dict[str, ForecastSeriesRow]:
    with store.db.session() as s:
        return {r.camera_id: r for r in s.scalars(select(ForecastSeriesRow))}


def test_refresh_forecasts_each_line_with_its_band_and_says_when_history_is_too_short(store: Store) -> None:
    seed_line(store, camera_id="cam-a", end=END, days=70)
    seed_line(store, camera_id="cam-b", end=END, days=4, source_start="2016-03-07")
    rep = ForecastRefresher(store, CitywatchConfig(), fit_budget_s=3600).refresh(NOW)
    assert rep.by_status == {"ok": 1, "cold_start": 1}

    hourly = _forecasts(store, A, "h")
    quarter = _forecasts(store, A, "15min")
    origin_h = int(NOW.timestamp()) // 3600 * 3600
    assert [r.ds for r in hourly] == [origin_h + 3600 * i for i in range(48)]  # today and tomorrow
    assert [r.ds for r in quarter] == [int(NOW.timestamp()) // 900 * 900 + 900 * i for i in range(24)]
    for r in hourly + quarter:
        assert 0 <= r.lo80 <= r.forecast <= r.hi80
    # a Monday 17:00 on I-94 (scaled 0.1) carries hundreds of vehicles, 03:00 far fewer: the model learnt the day
    by_hour = {datetime.fromtimestamp(r.ds, HANOI).hour: r.forecast for r in hourly[:24]}
    assert by_hour[17] > 3 * by_hour[3] > 0

    rows = _series(store)
    assert rows["cam-a"].status == "ok" and rows["cam-a"].message is None
    cold = rows["cam-b"]
    assert cold.status == "cold_start"
    assert cold.message == f"not enough history: {int(cold.observed_days)} observed days, need 14"
    assert 1 <= cold.observed_days <= 4
    assert _forecasts(store, SeriesKey(LINE, "cam-b", "l1", "in"), "h") == []  # never an invented forecast


def test_unobserved_buckets_are_missing_and_observed_empty_buckets_are_zero(store: Store) -> None:
    t0 = int(END.timestamp())
    buckets = [BucketCount(t0, 40, 2), BucketCount(t0 + 900, 0, 3), BucketCount(t0 + 2700, 12, 4)]
    store_counts(store, buckets, camera_id="cam-z", line_id="l1", direction="out", class_name="car", bucket_s=900)
    h = load_histories(store, t0, t0 + 3600, 900, classes=["car"], min_coverage=0.5)
    assert np.array_equal(h.values[SeriesKey(LINE, "cam-z", "l1", "out")], [40.0, 0.0, np.nan, 12.0], equal_nan=True)


def test_a_restarted_refresher_forecasts_at_once_from_the_stored_models_and_history(store: Store) -> None:
    seed_line(store, camera_id="cam-a", end=END, days=70)
    ForecastRefresher(store, CitywatchConfig(), fit_budget_s=3600).refresh(NOW)
    before = {f: [(r.ds, r.forecast, r.lo80, r.hi80) for r in _forecasts(store, A, f)] for f in ("h", "15min")}
    # the old rollups are gone: forecasting the same as before proves the history came from the stored grid
    with store.db.session.begin() as s:
        for table in (*FLOW_TABLES.values(), *OBSERVED_TABLES.values()):
            s.execute(delete(table).where(table.c.bucket < int(END.timestamp()) - 2 * 86400))
    restarted = ForecastRefresher(store, CitywatchConfig(), fit_budget_s=0)  # a new process, no time to fit
    rep = restarted.refresh(NOW)
    assert rep.fitted == 0 and rep.by_status == {"ok": 1}
    assert {f: [(r.ds, r.forecast, r.lo80, r.hi80) for r in _forecasts(store, A, f)] for f in ("h", "15min")} == before


def test_an_import_into_a_cameras_past_is_read_by_the_next_refresh(store: Store) -> None:
    seed_line(store, camera_id="cam-a", end=END, days=70)
    refresher = ForecastRefresher(store, CitywatchConfig(), fit_budget_s=3600)
    refresher.refresh(NOW)
    old = int(END.timestamp()) - 80 * 86400  # before the seeded weeks: not observed yet
    store_counts(store, [BucketCount(old, 77, 2)], camera_id="cam-a", line_id="l1", direction="in",
                 class_name="car", bucket_s=3600)
    origin = int((NOW + timedelta(minutes=15)).timestamp()) // 3600 * 3600
    for r in (refresher, ForecastRefresher(store, CitywatchConfig())):  # the running process and a new one
        h = r.histories("h", origin)
        assert h.values[A][(old - h.start) // 3600] == 77


def test_refit_budget_bounds_a_refresh_and_series_without_a_model_wait(store: Store) -> None:
    seed_line(store, camera_id="cam-a", end=END, days=42)
    r = ForecastRefresher(store, CitywatchConfig(), fit_budget_s=0)
    rep = r.refresh(NOW)
    assert rep.fitted == 0 and rep.by_status == {"pending": 1}
    assert _series(store)["cam-a"].message == "model not fitted yet (queued for the next refresh)"
    r.fit_budget_s = 60
    assert r.refresh(NOW).by_status == {"ok": 1}
    # later the same hour: the cached models answer, nothing is refitted, the hourly forecast stands
    again = r.refresh(NOW + timedelta(minutes=15))
    assert again.fitted == 0 and again.by_status == {"ok": 1} and again.skipped == 1
    assert _forecasts(store, A, "15min")[-1].ds == (int(NOW.timestamp()) // 900 + 24) * 900  # moved on
    # the next hour: made again
    assert r.refresh(NOW + timedelta(minutes=60)).skipped == 0


def _observe(store: Store, camera_id: str, start: datetime, values: list[float]) -> None:
    t0 = int(start.timestamp())
    store_counts(store, [BucketCount(t0 + 900 * i, round(v), 0) for i, v in enumerate(values)],
                 camera_id=camera_id, line_id="l1", direction="in", class_name="car", bucket_s=900)


def test_a_sustained_drop_opens_one_flow_anomaly_and_typical_flow_closes_it(store: Store) -> None:
    seed_line(store, camera_id="cam-a", end=END, days=70)
    ForecastRefresher(store, CitywatchConfig(), fit_budget_s=3600).refresh(NOW)
    expected = [r.forecast for r in _forecasts(store, A, "15min")]
    t0 = datetime.fromtimestamp(int(NOW.timestamp()) // 900 * 900, timezone.utc)
    watch = FlowAnomalyWatch(store, CitywatchConfig())

    alerts: list[dict] = []  # what the live hub and the notifier are handed after the commit
    store.incidents.listeners.append(alerts.extend)
    _observe(store, "cam-a", t0, [0.3 * f for f in expected[:5]])  # 75 min at 30 % of the forecast
    set_health(store, "cam-a", t0 + timedelta(minutes=75))
    rep = watch.check(t0 + timedelta(minutes=75))
    assert rep.opened == 1
    assert [a["incident_type"] for a in alerts] == ["flow_anomaly"]
    incidents, total = store.incidents.list(incident_type="flow_anomaly")
    assert total == 1
    inc = incidents[0]
    assert inc["state"] == "open" and inc["status"] == "new" and inc["camera_id"] == "cam-a"
    assert "drop on line l1 (in)" in inc["message"] and "expected" in inc["message"]
    with store.db.session() as s:
        fa = s.get(FlowAnomalyRow, inc["incident_id"])
    assert fa is not None and fa.kind == "drop" and fa.observed < 0.5 * fa.expected
    assert fa.window_end == int((t0 + timedelta(minutes=75)).timestamp())

    # still low 15 min later: the same incident goes on (debounced: no second one)
    _observe(store, "cam-a", t0 + timedelta(minutes=75), [0.3 * expected[5]])
    set_health(store, "cam-a", t0 + timedelta(minutes=90))
    assert watch.check(t0 + timedelta(minutes=90)).updated == 1
    assert store.incidents.list(incident_type="flow_anomaly")[1] == 1

    # operators handle it like any other incident
    acked = store.incidents.acknowledge(inc["incident_id"], "an", "operator", None)
    assert acked is not None and acked["status"] == "acknowledged"

    # typical again for 45 min: closed
    _observe(store, "cam-a", t0 + timedelta(minutes=90), expected[6:9])
    set_health(store, "cam-a", t0 + timedelta(minutes=135))
    assert watch.check(t0 + timedelta(minutes=135)).closed == 1
    with store.db.session() as s:
        row = s.get(IncidentRow, inc["incident_id"])
        assert row is not None and row.state == "closed" and row.ended_at is not None
        assert s.get(FlowAnomalyRow, inc["incident_id"]).closed_at is not None
    assert _series(store)["cam-a"].anomaly_incident_id is None


def test_a_drop_to_zero_with_a_degraded_or_silent_camera_is_no_traffic_anomaly(store: Store) -> None:
    seed_line(store, camera_id="cam-a", end=END, days=70)
    seed_line(store, camera_id="cam-c", end=END, days=70)
    ForecastRefresher(store, CitywatchConfig(), fit_budget_s=3600).refresh(NOW)
    t0 = datetime.fromtimestamp(int(NOW.timestamp()) // 900 * 900, timezone.utc)
    later = t0 + timedelta(minutes=90)
    _observe(store, "cam-a", t0, [0.0] * 6)  # zero vehicles counted while the source reconnects
    set_health(store, "cam-a", later, source_state="reconnecting")
    set_health(store, "cam-c", later)  # healthy, but nothing observed at all (no heartbeats credited)
    rep = FlowAnomalyWatch(store, CitywatchConfig()).check(later)
    assert rep.opened == 0 and rep.camera_not_ok == 1
    assert store.incidents.list(incident_type="flow_anomaly")[1] == 0


def test_forecast_config_is_validated_with_named_keys() -> None:
    with pytest.raises(ConfigError, match="server.forecasts.holidays"):
        parse_config({"server": {"forecasts": {"holidays": {"country": "XX"}}}})
    with pytest.raises(ConfigError, match="min_history_days"):
        parse_config({"server": {"forecasts": {"min_history_days": 100, "history_days_15min": 50}}})
    cfg = parse_config({"server": {"forecasts": {"sites": {"hue": {"country": "VN", "extra_dates": ["2026-06-10"]}}}}})
    assert cfg.server.forecasts.sites["hue"].extra_dates[0].isoformat() == "2026-06-10"


def test_lanes_are_series_of_their_own_from_vehicles_entered(store: Store) -> None:
    t0 = datetime(2026, 3, 2, 8, tzinfo=HANOI)
    evs = [ZoneOccupancy(
        event_id=uuid.uuid4(), camera_id="cam-l", site_id="site-1", seq=i + 1, ts=t0 + timedelta(minutes=5 + i),
        config_version="t", model_version="t", zone_id="lane-a", lane=True, interval_s=60, frame_index=0,
        occupied_fraction=0.2, vehicles_entered=n, occupancy={"car": 1},
    ) for i, n in enumerate((4, 6))]
    evs += [heartbeat(10 + i, t0 + timedelta(seconds=10 * (i + 1)), camera_id="cam-l") for i in range(360)]
    store.insert_events(evs)
    lo = int(t0.timestamp())
    h = load_histories(store, lo, lo + 7200, 3600, classes=["car"], min_coverage=0.5)
    assert np.array_equal(h.values[SeriesKey(LANE, "cam-l", "lane-a", "")], [10.0, np.nan], equal_nan=True)
    assert not any(k.kind == LINE for k in h.values)


def test_the_app_refreshes_forecasts_on_its_schedule(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    try:
        today = datetime.now(HANOI).replace(hour=0, minute=0, second=0, microsecond=0)
        seed_line(store, camera_id="cam-b", end=today, days=3)
        assert _series(store)["cam-b"].status == "pending"  # the import registered the line
        cfg = parse_config({"server": {"database_url": sqlite_url, "forecasts": {"refresh_interval_s": 60}}})
        with TestClient(create_app(cfg, ingest=False, store=store, forecasts_schedule=True, api_keys="")):
            row = wait_for(lambda: (r := _series(store).get("cam-b")) and r.status != "pending" and r, timeout=30)
        assert row.status == "cold_start"
    finally:
        store.close()


def test_cached_history_moves_forward_and_rereads_the_last_day(store: Store) -> None:
    seed_line(store, camera_id="cam-a", end=END, days=20)
    r = ForecastRefresher(store, CitywatchConfig(), fit_budget_s=3600)
    origin = int(END.timestamp()) + 3 * 3600
    full = r.histories("15min", origin)
    # an hour arrives (imported, as a late replay would) two hours after the first read
    _observe(store, "cam-a", END + timedelta(hours=3), [11, 12, 13, 14])
    later = r.histories("15min", origin + 2 * 3600)
    fresh = load_histories(store, later.start, origin + 2 * 3600, 900, classes=r.cfg.classes,
                           min_coverage=r.cfg.min_coverage)
    assert later.start == full.start + 2 * 3600
    assert np.array_equal(later.values[A], fresh.values[A], equal_nan=True)
    assert list(later.values[A][-8:-4]) == [11, 12, 13, 14] and np.isnan(later.values[A][-4:]).all()


def test_a_series_that_falls_back_to_cold_start_keeps_no_stale_future_forecasts(store: Store) -> None:
    seed_line(store, camera_id="cam-a", end=END, days=70)
    r = ForecastRefresher(store, CitywatchConfig(), fit_budget_s=3600)
    r.refresh(NOW)
    assert _forecasts(store, A, "h")
    # weeks later, with nothing observed since, the line has too little recent history
    later = NOW + timedelta(days=80)
    assert r.refresh(later).by_status == {"cold_start": 1}
    assert [f for f in _forecasts(store, A, "h") if f.ds >= int(later.timestamp()) // 900 * 900] == []


def test_a_line_imported_after_the_first_refresh_gets_its_whole_history(store: Store) -> None:
    seed_line(store, camera_id="cam-a", end=END, days=20)
    r = ForecastRefresher(store, CitywatchConfig(), fit_budget_s=3600)
    origin = int(END.timestamp())
    r.histories("h", origin, r._known_series())
    seed_line(store, camera_id="cam-n", end=END - timedelta(days=3), days=20)  # ends before the re-read day
    h = r.histories("h", origin + 3600, r._known_series())
    n = SeriesKey(LINE, "cam-n", "l1", "in")
    assert h.observed_days(n) == load_histories(store, h.start, origin + 3600, 3600, classes=r.cfg.classes,
                                                min_coverage=0.5).observed_days(n) > 5


class _ImportWhileReading(ForecastRefresher):
    """A refresher during whose next history read an import into cam-a's past commits (after the read, before
    the grid is saved): the race between ``citywatch import counts`` and a refresh's save."""

    at: int | None = None

    def _read(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        h = super()._read(*args, **kwargs)
        if self.at is not None:
            store_counts(self.store, [BucketCount(self.at, 77, 2)], camera_id="cam-a", line_id="l1",
                         direction="in", class_name="car", bucket_s=3600)
            self.at = None
        return h


@pytest.mark.parametrize("when", ["first read ever", "daily save"])
def test_an_import_committed_during_a_refresh_read_is_never_lost_from_the_saved_grid(store: Store, when: str) -> None:
    seed_line(store, camera_id="cam-a", end=END, days=70)
    old = int(END.timestamp()) - 80 * 86400  # before the seeded weeks: not observed yet
    origin = int(NOW.timestamp()) // 3600 * 3600
    r = _ImportWhileReading(store, CitywatchConfig(), fit_budget_s=0)
    if when == "daily save":
        r.histories("h", origin)  # grids stored; the next local day re-reads a week and stores them again
        origin += 86400
    r.at = old
    h = r.histories("h", origin)
    assert np.isnan(h.values[A][(old - h.start) // 3600])  # this read came before the import
    for x in (r, ForecastRefresher(store, CitywatchConfig())):  # the running process and a new one
        h = x.histories("h", origin + 3600)
        assert h.values[A][(old - h.start) // 3600] == 77
    # once read again in full, the grid is stored again and a further restart needs no full read
    assert ForecastRefresher(store, CitywatchConfig()).histories("h", origin + 7200).observed_days(A) > 0
