"""Unusual versus typical: sustained drops and surges of observed flow against its forecast interval."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Anomaly:
    """A sustained run of buckets far outside the forecast: ``start`` inclusive, ``end`` exclusive."""

    start: pd.Timestamp
    end: pd.Timestamp
    kind: Literal["drop", "surge"]
    expected: float  # sum of the forecasts over the window
    observed: float  # sum of the observed counts over the window


@dataclass(frozen=True)
class AnomalySettings:
    """A bucket is unusual when it is outside the 80 % interval AND far from the forecast in ratio; a run of
    ``min_buckets`` such buckets in a row (camera healthy, observed throughout) is an anomaly (the debounce:
    one odd bucket is noise, not an incident)."""

    drop_ratio: float = 0.7  # observed ≤ this × forecast (tuned on the shared years: bench/forecast_accuracy.py)
    surge_ratio: float = 1.5  # observed ≥ this × forecast
    min_buckets: int = 2
    min_expected: float = 0.0  # buckets forecast below this are too quiet to judge (ratios are noise there)
    # surges are judged only where the forecast is at least this share of the frame's highest forecast (pass a
    # day or more): at night a closure elsewhere doubles a quiet road's flow, which is not worth an incident,
    # while a drop to nothing at night still is
    surge_min_share: float = 0.3


def detect_anomalies(observed: pd.Series, forecast: pd.DataFrame, camera_ok: pd.Series | None = None,
                     settings: AnomalySettings | None = None) -> list[Anomaly]:
    """Anomalies of ``observed`` (indexed like ``forecast.ds``; NaN = not observed) against ``forecast``
    (columns ds, forecast, lo80, hi80). Buckets where ``camera_ok`` is False (a degraded or blind camera) are
    never traffic anomalies: a camera problem is reported as one, not as a drop in traffic."""
    settings = settings or AnomalySettings()
    if settings.min_buckets < 1:
        raise ValueError("min_buckets must be at least 1")
    missing = {"ds", "forecast", "lo80", "hi80"} - set(forecast.columns)
    if missing:
        raise ValueError(f"forecast lacks columns {sorted(missing)}")
    fc = forecast.set_index("ds").sort_index()
    if fc.index.has_duplicates:
        raise ValueError("forecast has repeated ds values")
    obs = observed.reindex(fc.index).to_numpy(dtype=float)
    ok = np.ones(len(fc), dtype=bool)
    if camera_ok is not None:
        ok = camera_ok.reindex(fc.index).fillna(False).to_numpy(dtype=bool)  # unknown health: not judged
    f, lo, hi = (fc[c].to_numpy(dtype=float) for c in ("forecast", "lo80", "hi80"))
    judged = ok & ~np.isnan(obs) & ~np.isnan(f) & (f >= settings.min_expected) & (f > 0)
    with np.errstate(invalid="ignore"):
        drop = judged & (obs < lo) & (obs <= settings.drop_ratio * f)
        surge = judged & (obs > hi) & (obs >= settings.surge_ratio * f) & (f >= settings.surge_min_share * np.nanmax(f))
    step = fc.index[1] - fc.index[0] if len(fc) > 1 else pd.Timedelta(0)
    found: list[Anomaly] = []
    for kind, flags in (("drop", drop), ("surge", surge)):
        for a, b in _runs(flags):
            if b - a >= settings.min_buckets:
                found.append(Anomaly(start=fc.index[a], end=fc.index[b - 1] + step, kind=kind,  # type: ignore[arg-type]
                                     expected=float(f[a:b].sum()), observed=float(obs[a:b].sum())))
    return sorted(found, key=lambda x: x.start)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the runs of True."""
    padded = np.concatenate([[False], flags, [False]]).astype(int)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2], edges[1::2], strict=True))
