"""Rollup arithmetic (``server.storage.rollups``) on its own: bucket clock, range planning, the deltas
newly stored events add, and their upsert on a SQLite database in a temporary folder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from server_testkit import crossing
from sqlalchemy import select

from citywatch.contract import CountTotal
from server.storage import rollups as ru
from server.storage.database import Database
from server.storage.models import FLOW_TABLES, OBSERVED_TABLES

HCM = ru.Clock("Asia/Ho_Chi_Minh")  # UTC+7 all year
BERLIN = ru.Clock("Europe/Berlin")  # summer time from the last Sunday of March
#: 2024-06-03 00:00 in Ho Chi Minh City (a Monday), as epoch seconds.
MIDNIGHT_HCM = int(datetime(2024, 6, 3, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")).timestamp())


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/rollups.sqlite")
    yield database
    database.close()


def test_day_buckets_start_at_local_midnight_and_shorter_ones_at_utc_multiples() -> None:
    noon = MIDNIGHT_HCM + 12 * 3600 + 17
    assert HCM.floor(noon, ru.DAY) == MIDNIGHT_HCM
    assert HCM.floor(noon, 3600) == MIDNIGHT_HCM + 12 * 3600
    assert HCM.floor(noon, 60) == noon - 17
    assert HCM.ceil(MIDNIGHT_HCM, ru.DAY) == MIDNIGHT_HCM
    assert HCM.next(MIDNIGHT_HCM, ru.DAY) == MIDNIGHT_HCM + ru.DAY
    assert HCM.minute_aligned


def test_a_day_across_the_spring_change_is_23_hours_and_ranges_split_at_the_change() -> None:
    midnight = int(datetime(2024, 3, 31, tzinfo=ZoneInfo("Europe/Berlin")).timestamp())
    assert BERLIN.next(midnight, ru.DAY) - midnight == 23 * 3600
    pieces = BERLIN.offset_segments(midnight, midnight + ru.DAY)
    assert [p[2] for p in pieces] == [3600, 7200]
    assert pieces[0][0] == midnight and pieces[-1][1] == midnight + ru.DAY and pieces[0][1] == pieces[1][0]
    assert not BERLIN.minute_aligned  # the offset changes: buckets are cut by the second


def test_a_range_is_covered_exactly_by_the_coarsest_tables_with_raw_ends_under_a_minute() -> None:
    lo = MIDNIGHT_HCM - 3600 - 90  # 22:58:30 the day before
    hi = MIDNIGHT_HCM + 2 * ru.DAY + 3600 + 90  # 01:01:30 two days later
    segs = ru.plan_segments(HCM, lo, hi)
    assert segs[0].lo == lo and segs[-1].hi == hi
    assert all(a.hi == b.lo for a, b in zip(segs, segs[1:], strict=False))
    assert [(s.lo, s.hi) for s in segs if s.res == "1d"] == [(MIDNIGHT_HCM, MIDNIGHT_HCM + 2 * ru.DAY)]
    assert [s.res for s in segs] == [None, "1m", "1h", "1d", "1h", "1m", None]
    raw = [s for s in segs if s.res is None]
    assert raw and all(s.hi - s.lo < 60 for s in raw)
    assert sum(s.hi - s.lo for s in segs) == hi - lo


def test_an_output_bucket_caps_the_table_resolution() -> None:
    segs = ru.plan_segments(HCM, MIDNIGHT_HCM, MIDNIGHT_HCM + 2 * ru.DAY, max_res_s=3600)
    assert {s.res for s in segs} == {"1h"}


def test_tables_without_raw_events_round_the_ends_outwards_to_whole_minutes() -> None:
    lo, hi = MIDNIGHT_HCM + 10, MIDNIGHT_HCM + 3 * 60 + 5
    segs = ru.plan_segments(HCM, lo, hi, min_res_s=60)
    assert all(s.res == "1m" for s in segs)
    assert segs[0].lo == MIDNIGHT_HCM and segs[-1].hi == MIDNIGHT_HCM + 4 * 60


def test_deltas_add_numbers_and_or_flags() -> None:
    d = ru.Deltas()
    assert not d
    d.add("zone_1m", ("cam", 0, "z"), {"samples": 1, "lane": False})
    d.add("zone_1m", ("cam", 0, "z"), {"samples": 2, "lane": True})
    assert d.tables["zone_1m"][("cam", 0, "z")] == {"samples": 3, "lane": True}
    assert d


def test_crossings_add_one_per_class_to_their_bucket_at_every_resolution_with_speed_sums() -> None:
    t = datetime.fromtimestamp(MIDNIGHT_HCM + 3 * 3600 + 125, timezone.utc)  # 03:02:05
    a = crossing(1, ts=t)
    b = crossing(2, ts=t + timedelta(seconds=10), class_name="truck").model_copy(update={"speed_kmh": 40.0})
    c = crossing(3, ts=t + timedelta(seconds=20)).model_copy(update={"speed_kmh": 20.0})
    d = ru.event_deltas(HCM, [a, b, c])
    minute = MIDNIGHT_HCM + 3 * 3600 + 120
    assert d.tables["flow_1m"][("cam-1", minute, "l1", "in")] == {
        "n_car": 2, "n_truck": 1, "speed_sum": 60.0, "speed_n": 2,
    }  # fmt: skip
    assert d.tables["flow_1h"][("cam-1", MIDNIGHT_HCM + 3 * 3600, "l1", "in")]["n_car"] == 2
    assert d.tables["flow_1d"][("cam-1", MIDNIGHT_HCM, "l1", "in")]["n_truck"] == 1
    assert set(d.tables) == {f"flow_{r}" for r in ru.RESOLUTIONS}


def test_a_merged_count_total_lands_whole_in_the_bucket_of_its_interval_start() -> None:
    start = datetime.fromtimestamp(MIDNIGHT_HCM + 59, timezone.utc)
    total = CountTotal(
        event_id=uuid.uuid4(), camera_id="cam-1", site_id="site-1", seq=1, ts=start + timedelta(minutes=5),
        config_version="t", model_version="t", line_id="l1", direction="out", class_name="bus", count=7,
        interval_start=start, interval_end=start + timedelta(minutes=5), interval_s=300, first_frame_index=0,
        last_frame_index=10,
    )  # fmt: skip
    d = ru.event_deltas(HCM, [total])
    assert d.tables["flow_1m"] == {("cam-1", MIDNIGHT_HCM, "l1", "out"): {"n_bus": 7}}


def test_observed_time_is_split_exactly_over_the_buckets_it_spans() -> None:
    lo = MIDNIGHT_HCM + 50
    d = ru.observed_deltas(HCM, [("cam-1", lo, lo + 20)])
    assert d.tables["observed_1m"] == {
        ("cam-1", MIDNIGHT_HCM): {"observed_s": 10.0},
        ("cam-1", MIDNIGHT_HCM + 60): {"observed_s": 10.0},
    }
    assert d.tables["observed_1d"] == {("cam-1", MIDNIGHT_HCM): {"observed_s": 20.0}}
    assert not ru.observed_deltas(HCM, [("cam-1", lo, lo)])


def test_upserting_the_same_deltas_twice_adds_them_and_caps_observed_time_at_the_bucket(db: Database) -> None:
    t = datetime.fromtimestamp(MIDNIGHT_HCM + 30, timezone.utc)
    d = ru.event_deltas(HCM, [crossing(1, ts=t), crossing(2, ts=t)])
    ru.observed_deltas(HCM, [("cam-1", MIDNIGHT_HCM, MIDNIGHT_HCM + 45)], d)
    for _ in range(2):
        with db.session.begin() as s:
            assert ru.upsert(s, db.dialect, d) == 2 * len(ru.RESOLUTIONS)
    flow, observed = FLOW_TABLES["1m"], OBSERVED_TABLES["1m"]
    with db.session() as s:
        assert s.execute(select(flow.c.bucket, flow.c.n_car, flow.c.n_bus)).all() == [(MIDNIGHT_HCM, 4, 0)]
        assert s.scalar(select(observed.c.observed_s)) == 60.0  # 2 x 45 s, capped at the minute
