"""Flow forecasting and "unusual versus typical" detection (issue 16): pure pandas/numpy/LightGBM, no
database, web or vision code, so it runs in the ``server`` extra without torch.

Conventions
- A flow series is a ``pd.Series`` of counts indexed by **naive local wall-clock** bucket starts on a regular
  ``freq`` grid ("h" or "15min"); NaN (or a missing row) means *not observed*, never zero. Convert the
  server's UTC buckets with ``to_wall_clock(series_utc, tz)`` (the repeated fall-back hour becomes one bucket;
  the skipped spring-forward hour has none) and forecasts back with ``wall_clock_to_utc(frame, tz)``.
  Working on wall-clock time makes "the same hour last week" and holidays exact across DST changes.
- ``forecast(history, origin=, horizon=, freq=, calendar=)`` uses only rows strictly before ``origin`` and
  returns ``ds, forecast, lo80, hi80`` for the ``horizon`` buckets ``origin, origin + freq, …`` (≤ one week).
  Too little history raises ``NotEnoughHistory`` (say so to the operator; never invent a forecast).
  ``frame.attrs["method"]`` says which model answered ("lightgbm", or "weekly-median" with little history).
- For many origins on one series (the backtest, a server refresh loop) ``fit(history, cutoff=…)`` once and
  ``predict(model, history, origin=…)`` for every origin at or after the cut-off: the same model and settings;
  ``nowcasts(model, history, start=…, end=…)``: each bucket forecast from its own origin, in one pass.
- ``detect_anomalies(observed, forecast, camera_ok)`` → ``list[Anomaly]`` (start, end exclusive, kind
  drop|surge, expected, observed): runs of ≥ ``min_buckets`` buckets outside the interval and far from the
  forecast, never while the camera is not ok.
"""

from server.forecasting.model.anomaly import Anomaly, AnomalySettings, detect_anomalies
from server.forecasting.model.forecaster import (
    FittedModel,
    ModelSettings,
    NotEnoughHistory,
    fit,
    forecast,
    nowcasts,
    predict,
)
from server.forecasting.model.holiday import HolidayCalendar, country_of_timezone
from server.forecasting.model.series import to_wall_clock, wall_clock_to_utc

__all__ = [
    "Anomaly", "AnomalySettings", "FittedModel", "HolidayCalendar", "ModelSettings", "NotEnoughHistory",
    "country_of_timezone", "detect_anomalies", "fit", "forecast", "nowcasts", "predict", "to_wall_clock",
    "wall_clock_to_utc",
]
