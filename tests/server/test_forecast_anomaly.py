"""Unusual versus typical: debounced drops and surges, never while the camera is degraded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from server.forecasting.model import AnomalySettings, detect_anomalies

DS = pd.date_range("2017-03-13", periods=24, freq="h")
FORECAST = pd.DataFrame({"ds": DS, "forecast": 1000.0, "lo80": 900.0, "hi80": 1100.0})


def _observed(changes: dict[int, float]) -> pd.Series:
    values = np.full(24, 1000.0)
    for hour, value in changes.items():
        values[hour] = value
    return pd.Series(values, index=DS)


def test_one_odd_hour_is_not_an_anomaly_but_two_are() -> None:
    assert detect_anomalies(_observed({9: 0.0}), FORECAST) == []
    [drop] = detect_anomalies(_observed({9: 0.0, 10: 400.0}), FORECAST)
    assert (drop.kind, drop.start, drop.end) == ("drop", DS[9], DS[11])
    assert (drop.expected, drop.observed) == (2000.0, 400.0)


def test_a_sustained_surge_is_reported_with_its_window() -> None:
    [surge] = detect_anomalies(_observed({14: 1800.0, 15: 1900.0, 16: 1700.0}), FORECAST)
    assert (surge.kind, surge.start, surge.end, surge.observed) == ("surge", DS[14], DS[17], 5400.0)


def test_small_departures_inside_the_ratio_are_not_anomalies() -> None:
    # below the interval but only 20 % down: a slow day, not an incident
    assert detect_anomalies(_observed({9: 800.0, 10: 800.0, 11: 800.0}), FORECAST) == []


def test_no_traffic_anomaly_while_the_camera_is_degraded() -> None:
    observed = _observed({9: 0.0, 10: 0.0, 11: 0.0})
    camera_ok = pd.Series(True, index=DS)
    camera_ok[DS[9:12]] = False
    assert detect_anomalies(observed, FORECAST, camera_ok) == []
    camera_ok[DS[11]] = True  # healthy for one hour only: still shorter than the debounce
    assert detect_anomalies(observed, FORECAST, camera_ok) == []


def test_not_observed_hours_are_not_drops() -> None:
    observed = _observed({}).astype(float)
    observed[DS[9:12]] = np.nan
    assert detect_anomalies(observed, FORECAST) == []


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="min_buckets"):
        detect_anomalies(_observed({}), FORECAST, settings=AnomalySettings(min_buckets=0))
    with pytest.raises(ValueError, match="lo80"):
        detect_anomalies(_observed({}), FORECAST.drop(columns="lo80"))


def test_night_surges_on_a_quiet_road_are_not_incidents_but_night_drops_are() -> None:
    frame = FORECAST.copy()
    frame.loc[:5, ["forecast", "lo80", "hi80"]] = [100.0, 80.0, 120.0]  # night: a tenth of the day's flow
    night = _observed({1: 250.0, 2: 250.0, 3: 0.0, 4: 0.0})
    [drop] = detect_anomalies(night, frame)
    assert (drop.kind, drop.start) == ("drop", DS[3])
