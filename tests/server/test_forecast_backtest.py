"""``citywatch forecast backtest``: the issue's interface, the look-ahead probe, DST and duplicate rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from forecast_series import FAST, synthetic_flow
from typer.testing import CliRunner

from commands.cli import app
from server.forecasting.model.backtest import BacktestError, read_counts, run_backtest

TZ = "America/Chicago"


def _csv(series: pd.Series, path: Path, repeat_every: int = 0) -> Path:
    rows = pd.DataFrame({"date_time": series.index.strftime("%Y-%m-%d %H:%M:%S"), "traffic_volume": series.values,
                         "weather": "clear"})
    if repeat_every:  # one hour on several rows (one per weather description), as in the real file
        rows = pd.concat([rows, rows.iloc[::repeat_every].assign(weather="mist")]).sort_values("date_time")
    rows.to_csv(path, index=False)
    return path


def test_deleting_the_rows_from_an_origin_on_does_not_change_its_forecasts() -> None:
    series = synthetic_flow(weeks=12)
    start = pd.Timestamp("2017-03-06")
    full = run_backtest(series, timezone=TZ, start=start, settings=FAST).forecasts
    for origin in (pd.Timestamp("2017-03-08"), pd.Timestamp("2017-03-14")):  # mid-week and after a refit
        cut = run_backtest(series[series.index < origin], timezone=TZ, start=start, settings=FAST).forecasts
        pd.testing.assert_frame_equal(full[full["origin"] == origin].reset_index(drop=True),
                                      cut[cut["origin"] == origin].reset_index(drop=True))
        assert (cut["origin"] == origin).sum() == 24


def test_cli_writes_the_forecasts_and_prints_the_scores(tmp_path: Path) -> None:
    path = _csv(synthetic_flow(weeks=11), tmp_path / "counts.csv", repeat_every=5)
    out = tmp_path / "forecasts.csv"
    res = CliRunner().invoke(app, [
        "forecast", "backtest", str(path), "--time-column", "date_time", "--value-column", "traffic_volume",
        "--timezone", TZ, "--country", "US", "--start", "2017-03-06", "--horizon", "24", "--every", "24",
        "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "WAPE" in text and "MAE" in text and "coverage" in text and "seasonal naive" in text
    assert "origin-hours forecast 100.0 %" in text
    frame = pd.read_csv(out, dtype=str)
    assert list(frame.columns) == ["origin", "ds", "forecast", "lo80", "hi80"]
    assert frame["origin"].iloc[0] == "2017-03-06 00:00:00" and frame["ds"].iloc[1] == "2017-03-06 01:00:00"
    assert not frame.duplicated(["origin", "ds"]).any()


def test_dst_days_have_each_local_hour_once(tmp_path: Path) -> None:
    series = synthetic_flow(start="2016-08-29", weeks=12)
    # as the station writes it: no 02:00 on the spring-forward day, the repeated 01:00 once in the fall
    result = run_backtest(series, timezone=TZ, start=pd.Timestamp("2016-11-05"), every=24, settings=FAST)
    fall = result.forecasts[result.forecasts["origin"] == pd.Timestamp("2016-11-06")]
    assert len(fall) == 24 and fall["ds"].is_unique
    spring_series = synthetic_flow(start="2017-01-02", weeks=12)
    spring_series = spring_series.drop(pd.Timestamp("2017-03-12 02:00"))
    spring = run_backtest(spring_series, timezone=TZ, start=pd.Timestamp("2017-03-12"), settings=FAST).forecasts
    day = spring[spring["origin"] == pd.Timestamp("2017-03-12")]
    assert pd.Timestamp("2017-03-12 02:00") not in set(day["ds"]) and len(day) == 23


def test_repeated_rows_are_one_observation_and_bad_rows_are_named(tmp_path: Path) -> None:
    series = synthetic_flow(weeks=1)
    path = _csv(series, tmp_path / "c.csv", repeat_every=3)
    assert read_counts(path, "date_time", "traffic_volume").equals(series.astype(float))
    assert read_counts(path, "date_time", "traffic_volume").attrs["conflicting_times"] == []
    bad = tmp_path / "bad.csv"
    bad.write_text("date_time,traffic_volume\n2017-01-02 00:00:00,5\n2017-01-02 00:00:00,6\n")
    clash = read_counts(bad, "date_time", "traffic_volume")
    assert clash.tolist() == [5.5] and clash.attrs["conflicting_times"] == [pd.Timestamp("2017-01-02")]
    bad.write_text("date_time,traffic_volume\n2017-01-02 00:00:00,5\n2017-01-02 01:00:00,many\n")
    with pytest.raises(BacktestError, match=r"bad.csv:3: traffic_volume 'many'"):
        read_counts(bad, "date_time", "traffic_volume")
    bad.write_text("date_time,traffic_volume\n2017-01-02 00:00:00,5\n02/01/2017 01:00,6\n")
    with pytest.raises(BacktestError, match=r"bad.csv:3: date_time"):
        read_counts(bad, "date_time", "traffic_volume")


def test_origins_without_history_are_counted_not_invented() -> None:
    series = synthetic_flow(weeks=3)
    result = run_backtest(series, timezone=TZ, start=pd.Timestamp("2017-01-03"), settings=FAST)
    assert "2017-01-03 00:00:00" in result.skipped
    assert result.forecasts["origin"].min() >= pd.Timestamp("2017-01-09")
    assert result.forecast_share < 1.0


def test_cli_says_so_when_no_origin_has_enough_history(tmp_path: Path) -> None:
    path = tmp_path / "tiny.csv"
    path.write_text("date_time,traffic_volume\n2017-01-02 00:00:00,5\n2017-01-02 00:00:00,6\n"
                    "2017-01-02 01:00:00,7\n")
    out = tmp_path / "forecasts.csv"
    res = CliRunner().invoke(app, [
        "forecast", "backtest", str(path), "--time-column", "date_time", "--value-column", "traffic_volume",
        "--timezone", TZ, "--start", "2017-01-02", "--out", str(out)])
    text = " ".join(res.output.split())
    assert res.exit_code == 1
    assert "no forecast from any of the 2 origins" in text and "days observed" in text
    assert "1 times have rows with different traffic_volume values" in text
    assert out.read_text().splitlines() == ["origin,ds,forecast,lo80,hi80"]
