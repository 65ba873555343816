"""A fitted model stored as bytes predicts exactly as the original, carries its calendar and settings, and
bytes of anything else are refused (the server refits instead of guessing)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from forecast_series import FAST, synthetic_flow

from server.forecasting.model import HolidayCalendar, fit, predict
from server.forecasting.model.persist import calendar_key, dump_model, load_model


def test_a_stored_model_predicts_exactly_as_the_fitted_one() -> None:
    series = synthetic_flow()
    cutoff = pd.Timestamp("2017-03-13")
    calendar = HolidayCalendar("VN", extra=frozenset({dt.date(2017, 3, 20)}))
    model = fit(series, cutoff=cutoff, calendar=calendar, settings=FAST)
    loaded = load_model(dump_model(model))
    assert (loaded.cutoff, loaded.freq, loaded.settings, loaded.fallback_q) == (
        model.cutoff, model.freq, model.settings, model.fallback_q)
    assert calendar_key(loaded.calendar) == calendar_key(calendar)
    origin = cutoff + pd.Timedelta(hours=30)
    a = predict(model, series, origin=origin, horizon=48)
    b = predict(loaded, series, origin=origin, horizon=48)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert b.attrs["method"] == "lightgbm"


def test_a_profile_fallback_model_round_trips_without_boosters() -> None:
    series = synthetic_flow(weeks=3)
    model = fit(series, cutoff=pd.Timestamp("2017-01-23"), settings=FAST)
    assert model.point is None
    loaded = load_model(dump_model(model))
    assert loaded.point is None and loaded.calendar is None and loaded.fallback_q == model.fallback_q


@pytest.mark.parametrize("data", [b"", b"not zlib", b"x\x9c\x03\x00\x00\x00\x00\x01"])
def test_bytes_that_are_no_stored_model_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="stored forecast model"):
        load_model(data)
