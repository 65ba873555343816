"""A synthetic hourly flow with a daily and weekly rhythm, shared by the forecast tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from server.forecasting.model import ModelSettings

FAST = ModelSettings(n_estimators=40, learning_rate=0.3, train_days=60)  # the real model, fewer trees: tests stay fast

_DAY = np.array([3, 2, 1, 1, 2, 6, 20, 40, 45, 35, 30, 30, 32, 32, 34, 40, 48, 46, 30, 20, 14, 10, 7, 5], float)


def synthetic_flow(start: str = "2017-01-02", weeks: int = 12, seed: int = 0) -> pd.Series:
    """Hourly counts on naive local times: weekdays busy, weekends at 60 %, multiplicative noise."""
    index = pd.date_range(start, periods=weeks * 7 * 24, freq="h")
    rng = np.random.default_rng(seed)
    weekday = np.where(index.day_of_week < 5, 1.0, 0.6)
    values = 100 * _DAY[index.hour] * weekday * rng.normal(1, 0.05, len(index))
    return pd.Series(np.round(values), index=index)
