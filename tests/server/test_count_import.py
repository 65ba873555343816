"""``citywatch import counts``: a city's own counts become observed history of a camera line (forecasts
start with history); a bad row is named by its line number and nothing is stored; daylight-saving
times and repeated times are handled, and a bucket is never imported twice."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from commands.cli import app
from server.forecasting.count_import import CountImportError, parse_counts, split_evenly
from server.forecasting.history import load_histories
from server.forecasting.tables import LINE, SeriesKey
from server.storage.history import FlowFilter
from server.storage.store import Store

CHICAGO = ZoneInfo("America/Chicago")


def _run(db_url: str, csv_path: Path, *extra: str) -> object:
    return CliRunner().invoke(app, [
        "import", "counts", str(csv_path), "--camera", "loop-7", "--line", "l1", "--direction", "in",
        "--time-column", "date_time", "--value-column", "volume", "--database-url", db_url, *extra,
    ])


def _flow_total(store: Store) -> int:
    return sum(r.count for r in store.history.counts(start=datetime(2000, 1, 1, tzinfo=timezone.utc),
                                             end=datetime(2100, 1, 1, tzinfo=timezone.utc)))


def _schema_url(store: Store) -> str:
    return store.url if store.schema is None else f"{store.url}?options=-csearch_path%3D{store.schema}"


def test_a_good_file_becomes_observed_history_at_every_resolution(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "loop.csv"
    rows = ["date_time,volume,weather"] + [f"2026-03-02 {h:02d}:00:00,{100 + h},sunny" for h in range(24)]
    f.write_text("\ufeff" + "\n".join(rows) + "\n", encoding="utf-8")
    res = _run(_schema_url(store), f, "--timezone", "Asia/Ho_Chi_Minh")
    assert res.exit_code == 0, res.output
    assert "imported 24 hour buckets" in res.output
    want = sum(100 + h for h in range(24))
    assert _flow_total(store) == want
    t0 = int(datetime(2026, 3, 2, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")).timestamp())
    hourly = load_histories(store, t0, t0 + 86400, 3600, classes=["car"], min_coverage=1.0)
    assert list(hourly.values[SeriesKey(LINE, "loop-7", "l1", "in")]) == [100.0 + h for h in range(24)]
    quarter = load_histories(store, t0, t0 + 3600, 900, classes=["car"], min_coverage=1.0)
    assert list(quarter.values[SeriesKey(LINE, "loop-7", "l1", "in")]) == [25.0, 25.0, 25.0, 25.0]  # spread, observed
    # the planner's /flow reads the same rows, observed in full
    day = store.history.observed(t0, t0 + 86400)
    assert sum(day.values()) == 86400
    assert store.history.flow(t0, t0 + 86400, flt=FlowFilter(["loop-7"]))
    # importing the same file again would count it twice: refused, nothing added
    again = _run(_schema_url(store), f, "--timezone", "Asia/Ho_Chi_Minh")
    assert again.exit_code == 2 and "never counts a bucket twice" in again.output
    assert _flow_total(store) == want


def test_one_bad_row_is_named_by_its_line_and_nothing_is_stored(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "bad.csv"
    lines = ["date_time,volume"] + [f"2026-03-02 {h:02d}:00:00,{10 + h}" for h in range(10)]
    lines[7] = "2026-03-02 06:00:00,twelve"  # file line 8
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = _run(_schema_url(store), f)
    assert res.exit_code == 2
    assert "line 8:" in res.output and "nothing was stored" in res.output
    assert _flow_total(store) == 0
    assert store.history.observed(0, 2**40) == {}


def test_named_errors_for_each_kind_of_bad_row() -> None:
    rows = [
        {"t": "2026-03-02 07:00:00", "v": "5"},
        {"t": "2026-03-02 07:10:00", "v": "5"},  # not a bucket start
        {"t": "yesterday", "v": "5"},
        {"t": "2026-03-02 09:00:00", "v": "-1"},
        {"t": "2026-03-02 07:00:00", "v": "6"},  # repeats line 2
    ]
    with pytest.raises(CountImportError) as e:
        parse_counts(rows, time_column="t", value_column="v", tz=ZoneInfo("Asia/Ho_Chi_Minh"), bucket_s=900)
    assert [n for n, _ in e.value.problems] == [3, 4, 5, 6]
    assert "repeats line 2" in e.value.problems[-1][1]


def test_daylight_saving_the_repeated_hour_is_two_buckets_and_a_skipped_hour_is_an_error() -> None:
    # 2016-11-06: Chicago's clock shows 01:00-02:00 twice
    rows = [{"t": f"2016-11-06 {h}", "v": str(v)} for h, v in
            (("00:00", 10), ("01:00", 11), ("01:00", 12), ("02:00", 13))]
    got = parse_counts(rows, time_column="t", value_column="v", tz=CHICAGO, bucket_s=3600)
    starts = [b.start for b in got]
    assert [b - starts[0] for b in starts] == [0, 3600, 7200, 10800]  # four real hours, in order
    assert [b.count for b in got] == [10, 11, 12, 13]
    first_one = datetime.fromtimestamp(starts[1], CHICAGO)
    assert first_one.utcoffset() == timedelta(hours=-5) and datetime.fromtimestamp(starts[2], CHICAGO).utcoffset() \
        == timedelta(hours=-6)
    # 2017-03-12: 02:00-03:00 never happened there
    with pytest.raises(CountImportError, match="line 3: 2017-03-12 02:00:00 does not exist"):
        parse_counts([{"t": "2017-03-12 01:00", "v": "1"}, {"t": "2017-03-12 02:00", "v": "1"}],
                     time_column="t", value_column="v", tz=CHICAGO, bucket_s=3600)
    # a third 01:00 on the fall-back day is a duplicate
    with pytest.raises(CountImportError, match="repeats line"):
        parse_counts(rows + [{"t": "2016-11-06 01:00", "v": "1"}], time_column="t", value_column="v", tz=CHICAGO,
                     bucket_s=3600)


def test_a_missing_column_and_bad_options_are_clear(tmp_path: Path, sqlite_url: str) -> None:
    f = tmp_path / "x.csv"
    f.write_text("when,volume\n2026-03-02 00:00,1\n", encoding="utf-8")
    res = _run(sqlite_url, f)
    assert res.exit_code == 2 and "no column 'date_time'" in res.output
    res = _run(sqlite_url, f, "--bucket", "5min", "--timezone", "Mars/Olympus")
    assert res.exit_code == 2 and "--bucket '5min'" in res.output and "Mars/Olympus" in res.output


def test_split_evenly_keeps_every_vehicle() -> None:
    assert split_evenly(10, 4) == [2, 3, 2, 3] and sum(split_evenly(7, 60)) == 7
