"""The forecast core: only the past is used, missing is not zero, DST and cold start are handled."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from forecast_series import FAST, synthetic_flow

from server.forecasting.model import (
    HolidayCalendar,
    ModelSettings,
    NotEnoughHistory,
    fit,
    forecast,
    nowcasts,
    predict,
    to_wall_clock,
    wall_clock_to_utc,
)


def test_forecast_uses_only_rows_before_the_origin() -> None:
    series = synthetic_flow()
    origin = pd.Timestamp("2017-03-13")
    spoiled = series.copy()
    spoiled[spoiled.index >= origin] = 0.0  # whatever comes after the origin must not matter
    a = forecast(series, origin=origin, horizon=24, settings=FAST)
    b = forecast(spoiled, origin=origin, horizon=24, settings=FAST)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["ds", "forecast", "lo80", "hi80"]
    assert a["ds"].iloc[0] == origin and len(a) == 24
    assert a.attrs["method"] == "lightgbm"


def test_forecast_follows_the_weekly_rhythm_with_an_interval() -> None:
    series = synthetic_flow()
    origin = pd.Timestamp("2017-03-13")  # a Monday
    frame = forecast(series, origin=origin, horizon=48, settings=FAST)
    truth = synthetic_flow(weeks=13, seed=1).reindex(frame["ds"]).to_numpy()
    wape = np.abs(frame["forecast"] - truth).sum() / truth.sum()
    assert wape < 0.1
    assert (frame["lo80"] <= frame["forecast"]).all() and (frame["forecast"] <= frame["hi80"]).all()


def test_missing_hours_are_not_observed_rather_than_zero() -> None:
    series = synthetic_flow()
    origin = pd.Timestamp("2017-03-13")
    # the whole Monday a week before the origin was not observed: its lags are gone, not zero
    gappy = series.drop(series.index[(series.index >= origin - pd.Timedelta(days=7))
                                      & (series.index < origin - pd.Timedelta(days=6))])
    full = forecast(series, origin=origin, horizon=24, settings=FAST)
    gap = forecast(gappy, origin=origin, horizon=24, settings=FAST)
    assert gap["forecast"].sum() == pytest.approx(full["forecast"].sum(), rel=0.05)


def test_a_new_camera_gets_no_invented_forecast() -> None:
    series = synthetic_flow(weeks=1).iloc[: 3 * 24]
    with pytest.raises(NotEnoughHistory, match="days observed"):
        forecast(series, origin=series.index[-1] + pd.Timedelta(hours=1), horizon=24, settings=FAST)
    with pytest.raises(NotEnoughHistory):
        forecast(series.iloc[:0], origin=pd.Timestamp("2017-01-05"), horizon=24, settings=FAST)


def test_a_few_weeks_of_history_fall_back_to_the_weekly_median() -> None:
    series = synthetic_flow(weeks=3)
    frame = forecast(series, origin=pd.Timestamp("2017-01-23"), horizon=24, settings=FAST)
    assert frame.attrs["method"] == "weekly-median"
    assert frame["forecast"].notna().all() and (frame["forecast"] > 0).all()


def test_predict_refuses_an_origin_before_the_fit_cut_off() -> None:
    series = synthetic_flow()
    model = fit(series, cutoff=pd.Timestamp("2017-03-13"), settings=FAST)
    with pytest.raises(ValueError, match="see the future"):
        predict(model, series, origin=pd.Timestamp("2017-03-12"), horizon=24)


def test_history_must_be_wall_clock_without_repeats() -> None:
    series = synthetic_flow()
    with pytest.raises(ValueError, match="to_wall_clock"):
        forecast(series.tz_localize("UTC"), origin=pd.Timestamp("2017-03-13"), horizon=24)
    with pytest.raises(ValueError, match="repeated"):
        forecast(pd.concat([series, series.iloc[:1]]), origin=pd.Timestamp("2017-03-13"), horizon=24)


def test_dst_changes_keep_the_local_hour() -> None:
    """UTC buckets → wall clock: the repeated fall-back hour is one bucket, the skipped hour has none."""
    utc = pd.date_range("2016-11-06 04:00", periods=6, freq="h", tz="UTC")  # 23:00 CDT … 03:00 CST
    wall = to_wall_clock(pd.Series([10.0, 20, 30, 50, 60, 70], utc), "America/Chicago")
    assert list(wall.index.strftime("%H")) == ["23", "00", "01", "02", "03"]
    assert wall["2016-11-06 01:00"] == 40.0
    frame = pd.DataFrame({"ds": pd.date_range("2016-11-06 00:00", periods=3, freq="h"), "forecast": [1.0, 2, 3]})
    back = wall_clock_to_utc(frame, "America/Chicago")
    assert list(back["forecast"]) == [1.0, 2, 2, 3]  # both real 01:00 buckets get the 01:00 forecast
    spring = pd.DataFrame({"ds": pd.date_range("2016-03-13 01:00", periods=3, freq="h"), "forecast": [1.0, 2, 3]})
    assert list(wall_clock_to_utc(spring, "America/Chicago")["forecast"]) == [1.0, 3]  # 02:00 does not exist


def test_holiday_calendar_knows_tet_and_the_time_zone_country() -> None:
    import datetime as dt

    vn = HolidayCalendar()
    assert dt.date(2027, 2, 6) in vn.dates(2027, 2027)  # Tết 2027
    assert HolidayCalendar.for_timezone("America/Chicago").country == "US"
    assert dt.date(2027, 3, 3) in HolidayCalendar(extra=frozenset({dt.date(2027, 3, 3)})).dates(2027, 2027)
    with pytest.raises(ValueError, match="XX"):
        HolidayCalendar("XX")


def test_15_minute_series_are_forecast_per_quarter_hour() -> None:
    hourly = synthetic_flow(weeks=10)
    quarter = hourly.resample("15min").ffill() / 4
    frame = forecast(quarter, origin=pd.Timestamp("2017-03-13"), horizon=8, freq="15min", settings=FAST)
    assert list(frame["ds"].dt.minute) == [0, 15, 30, 45] * 2
    assert frame["forecast"].notna().all()


def test_a_holiday_is_forecast_from_the_same_holiday_last_year() -> None:
    series = synthetic_flow(start="2016-01-04", weeks=80)
    july4 = (series.index >= "2016-07-04") & (series.index < "2016-07-05")
    series[july4] *= 0.3  # last Independence Day the road was nearly empty
    history = series[series.index < "2017-07-04"]
    origin = pd.Timestamp("2017-07-04")
    holiday = forecast(history, origin=origin, horizon=24, calendar=HolidayCalendar("US"), settings=FAST)
    plain = forecast(history, origin=origin, horizon=24, calendar=None, settings=FAST)
    assert holiday["forecast"].sum() < 0.8 * plain["forecast"].sum()


def test_model_settings_refuse_an_unknown_target_by_name() -> None:
    with pytest.raises(ValueError, match="target must be 'level' or 'median'"):
        ModelSettings(target="log")
    with pytest.raises(ValueError, match="between 0 and 1"):
        ModelSettings(holiday_analog=1.5)


def test_the_median_target_follows_a_level_shift_as_the_level_target_does() -> None:
    """Dividing by the slot's weekly median must still forecast on the series' own scale."""
    series = synthetic_flow() * 3.0
    origin = pd.Timestamp("2017-03-13")
    truth = synthetic_flow(weeks=13, seed=1) * 3.0
    for target in ("level", "median"):
        frame = forecast(series, origin=origin, horizon=24, settings=replace(FAST, target=target))
        got = truth.reindex(frame["ds"]).to_numpy()
        assert np.abs(frame["forecast"] - got).sum() / got.sum() < 0.1, target
        assert (frame["lo80"] <= frame["forecast"]).all() and (frame["forecast"] <= frame["hi80"]).all()


def test_nowcasts_are_what_each_buckets_own_origin_forecasts_and_see_no_later_rows() -> None:
    series = synthetic_flow()
    cutoff = pd.Timestamp("2017-03-13")
    model = fit(series, cutoff=cutoff, settings=FAST)
    end = cutoff + pd.Timedelta(days=2)
    got = nowcasts(model, series, start=cutoff, end=end).set_index("ds")
    assert len(got) == 48 and got.index[0] == cutoff and got.index[-1] == end - pd.Timedelta(hours=1)
    for origin in (cutoff, cutoff + pd.Timedelta(hours=7), end - pd.Timedelta(hours=1)):
        one = predict(model, series, origin=origin, horizon=24).iloc[0]
        assert got.loc[origin, ["forecast", "lo80", "hi80"]].tolist() == [one.forecast, one.lo80, one.hi80]
    # a drop in the rows after a bucket's origin never changes that bucket's forecast
    changed = series.copy()
    changed[cutoff + pd.Timedelta(hours=8):] *= 0.1
    again = nowcasts(model, changed, start=cutoff, end=end).set_index("ds")
    first = got.index < cutoff + pd.Timedelta(hours=9)
    pd.testing.assert_frame_equal(again[first], got[first])
    assert not again[~first].equals(got[~first])
