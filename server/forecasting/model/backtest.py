"""The backtest behind ``citywatch forecast backtest``: day-ahead forecasts from many origins of one hourly CSV
series, scored against the data beside a seasonal-naive forecast, with the server's own model and settings."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from server.forecasting.model.forecaster import FittedModel, ModelSettings, NotEnoughHistory, fit, predict
from server.forecasting.model.holiday import HolidayCalendar

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
REFIT_DAYS = 7  # the model is refitted on the first origin of every week of origins (only data before it)


class BacktestError(ValueError):
    """The input file or the options are unusable; the message names what and where."""


def read_counts(path: Path, time_column: str, value_column: str) -> pd.Series:
    """One hourly series from a CSV file: naive local times → count; rows with the same time are one
    observation (rows that disagree are averaged and listed in ``attrs["conflicting_times"]``); hours without
    a row are not observed (no row, never a zero)."""
    times: list[str] = []
    values: list[float] = []
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise BacktestError(f"{path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        for col in (time_column, value_column):
            if col not in (reader.fieldnames or []):
                raise BacktestError(f"{path}: no column {col!r} (columns: {', '.join(reader.fieldnames or [])})")
        for row in reader:
            line = reader.line_num
            raw = row[value_column]
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise BacktestError(f"{path}:{line}: {value_column} {raw!r} is not a number") from None
            if not math.isfinite(value) or value < 0:
                raise BacktestError(f"{path}:{line}: {value_column} {raw!r} is not a count (finite, ≥ 0)")
            times.append(row[time_column])
            values.append(value)
    index = pd.to_datetime(pd.Series(times, dtype=object), format=TIME_FORMAT, errors="coerce")
    bad = np.flatnonzero(index.isna().to_numpy())
    if len(bad):
        raise BacktestError(f"{path}:{bad[0] + 2}: {time_column} {times[bad[0]]!r} is not {TIME_FORMAT}")
    series = pd.Series(values, index=pd.DatetimeIndex(index), dtype=float)
    off = series.index[series.index != series.index.floor("h")]
    if len(off):
        raise BacktestError(f"{path}: {time_column} {off[0]} is not on the hour: the backtest reads hourly series")
    spread = series.groupby(level=0).agg(["min", "max"])
    merged = series.groupby(level=0).mean().sort_index()
    # one observation per time; rows that disagree are averaged and named (the caller reports them), rather than
    # failing a whole backtest on one odd hour
    merged.attrs["conflicting_times"] = list(spread.index[spread["min"] != spread["max"]])
    return merged


@dataclass(frozen=True)
class Score:
    wape: float
    mae: float
    coverage: float  # share of hours inside [lo80, hi80]; NaN for the naive forecast
    hours: int


@dataclass(frozen=True)
class BacktestResult:
    forecasts: pd.DataFrame  # origin, ds, forecast, lo80, hi80 (naive local times)
    model: Score
    naive: Score
    forecast_share: float  # observed origin-hours that got a forecast
    origins: int
    skipped: dict[str, str]  # origin → why it has no forecast

    @property
    def ratio(self) -> float:
        return self.model.wape / self.naive.wape if self.naive.wape else math.nan


def origins_for(series: pd.Series, start: pd.Timestamp, every: int) -> list[pd.Timestamp]:
    """Local midnights every ``every`` hours from ``start`` up to the first one after the data's last hour."""
    if every <= 0 or every % 24:
        raise BacktestError(f"--every must be a positive multiple of 24 hours (origins are midnights), got {every}")
    if start != start.normalize():
        raise BacktestError(f"--start {start} is not a local midnight")
    if series.empty:
        raise BacktestError("the file has no rows")
    last = series.index.max() + pd.Timedelta(hours=1)
    out = []
    origin = start
    while True:
        out.append(origin)
        if origin >= last:
            return out
        origin = origin + pd.Timedelta(hours=every)  # naive: wall-clock arithmetic keeps midnights across DST


def run_backtest(series: pd.Series, *, timezone: str, start: pd.Timestamp, horizon: int = 24, every: int = 24,
                 calendar: HolidayCalendar | None = None, settings: ModelSettings | None = None,
                 progress: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Forecast from every origin with only the rows before it (a refit serves the week of origins after it
    and uses only rows before the first of them), and score the forecasts against ``series``."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BacktestError(f"unknown time zone {timezone!r}") from None
    if not 1 <= horizon <= 168:
        raise BacktestError(f"--horizon must be 1…168 hours, got {horizon}")
    calendar = calendar or HolidayCalendar.for_timezone(timezone)
    origins = origins_for(series, start, every)
    refit_every = max(1, REFIT_DAYS * 24 // every)
    model: FittedModel | None = None
    frames: list[pd.DataFrame] = []
    skipped: dict[str, str] = {}
    for k, origin in enumerate(origins):
        if k % refit_every == 0:
            model = fit(series, cutoff=origin, freq="h", calendar=calendar, settings=settings)
        assert model is not None
        try:
            frame = predict(model, series, origin=origin, horizon=horizon)
        except NotEnoughHistory as exc:
            skipped[origin.strftime(TIME_FORMAT)] = str(exc)
            continue
        frame.insert(0, "origin", origin)
        frames.append(frame)
        if progress:
            progress(k + 1, len(origins))
    columns = ["origin", "ds", "forecast", "lo80", "hi80"]
    empty = pd.DataFrame({"origin": pd.Series(dtype="datetime64[ns]"), "ds": pd.Series(dtype="datetime64[ns]"),
                          **{c: pd.Series(dtype=float) for c in columns[2:]}})
    forecasts = pd.concat(frames, ignore_index=True) if frames else empty
    forecasts = forecasts[columns]
    if len(forecasts):
        forecasts = forecasts[_exists(forecasts["ds"], zone)].reset_index(drop=True)
    return _score(series, forecasts, origins, horizon, zone, skipped)


def _exists(ds: pd.Series, zone: ZoneInfo) -> np.ndarray:
    """False for wall-clock times skipped by a spring-forward change (no such hour, nothing to forecast)."""
    localized = ds.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    ambiguous = ds.dt.tz_localize(zone, ambiguous=True, nonexistent="NaT")
    return (localized.notna() | ambiguous.notna()).to_numpy()


def _score(series: pd.Series, forecasts: pd.DataFrame, origins: list[pd.Timestamp], horizon: int, zone: ZoneInfo,
           skipped: dict[str, str]) -> BacktestResult:
    actual = forecasts["ds"].map(series)
    naive = (forecasts["ds"] - pd.Timedelta(days=7)).map(series)
    both = actual.notna() & naive.notna() & forecasts["forecast"].notna()

    def score(pred: pd.Series, lo: pd.Series | None, hi: pd.Series | None) -> Score:
        y, p = actual[both].to_numpy(), pred[both].to_numpy()
        err = np.abs(y - p)
        cov = math.nan
        if lo is not None and hi is not None:
            cov = float(np.mean((lo[both] <= actual[both]) & (actual[both] <= hi[both])))
        total = float(np.sum(np.abs(y)))
        return Score(wape=float(err.sum() / total) if total else math.nan, mae=float(err.mean()) if len(y) else
                     math.nan, coverage=cov, hours=int(both.sum()))

    model = score(forecasts["forecast"], forecasts["lo80"], forecasts["hi80"])
    naive_score = score(naive, None, None)
    # every observed hour in the origins' windows: how many of them got a forecast
    wanted = pd.DataFrame([(o, o + pd.Timedelta(hours=h)) for o in origins for h in range(horizon)],
                          columns=["origin", "ds"])
    wanted = wanted[wanted["ds"].map(series).notna().to_numpy() & _exists(wanted["ds"], zone)]
    got = wanted.merge(forecasts[forecasts["forecast"].notna()][["origin", "ds"]], on=["origin", "ds"])
    share = len(got) / len(wanted) if len(wanted) else math.nan
    return BacktestResult(forecasts=forecasts, model=model, naive=naive_score, forecast_share=share,
                          origins=len(origins), skipped=skipped)


def write_forecasts(frame: pd.DataFrame, path: Path) -> None:
    """origin,ds,forecast,lo80,hi80 with times written as the input writes them."""
    out = frame.copy()
    out["origin"] = out["origin"].dt.strftime(TIME_FORMAT)
    out["ds"] = out["ds"].dt.strftime(TIME_FORMAT)
    out.to_csv(path, index=False, float_format="%.1f")
