"""Day-ahead and next-hours flow forecasts: a global LightGBM model on robust, level-scaled weekly lags.

Everything works on a regular grid of **naive local wall-clock** bucket starts (see ``series.py`` for the
conversion from UTC), so "the same hour a week earlier" is always 7 × 24 wall-clock hours back, across
daylight-saving changes too. NaN means "not observed", never zero.

The model (why each part is there):
- every lag is divided by a robust recent level (mean of the last 4 weeks, holidays and outages left out), so
  one model serves quiet and busy lines and follows slow drifts; the target is the bucket divided by its slot's
  weekly median (the level where there is none), weighted by that median so that L1 on it is WAPE's loss
  (``bench/forecast_accuracy.py`` shows each choice's effect);
- features: slot of the week, holiday / day-before / day-after / bridge-day flags, the same slot 1…8 weeks
  ago with their median and quartiles (holidays and outage buckets masked out, so a closure day does not
  poison the lags), the latest same slot of day before the origin, and how the last 24 h and 3 h before the
  origin compared with their typical values (today's weather, an event, a drift), and the day of the year
  (school holidays, summer, winter weather);
- L1 loss for the point forecast and two quantile models for the 80 % interval, trained on the daily origins
  of the three years before the fit's cut-off only, weighted by a one-year half-life (recent years count more,
  each holiday is still seen three times);
- too little history for the model but some weeks of data: the median of the same slot in the last 8 weeks;
  too little for that: ``NotEnoughHistory``, never an invented forecast.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from server.forecasting.model.holiday import HolidayCalendar

if TYPE_CHECKING:
    from lightgbm import Booster

STEPS = {"h": 24, "15min": 96}  # buckets per day for each supported frequency
WEEKS = 8  # weekly lags
LEVEL_DAYS = 28  # robust level window
TRAIN_DAYS = 1092  # rolling training window (days of origins): three years, older ones weighted down
MIN_TRAIN_DAYS = 28  # fewer training days with data: the profile fallback
MIN_HISTORY_DAYS = 7  # fewer observed days in the last 8 weeks: NotEnoughHistory
OUTAGE_RATIO = 0.25  # a bucket below this share of its typical value is left out of the lags (closure, outage)

FEATURES = [
    "slot_of_week", "slot_of_day", "dow", "hol", "hol_prev", "hol_next", "bridge", "hol_dist",
    *[f"lag{k}w" for k in range(1, WEEKS + 1)], "lag_med", "lag_q25", "lag_q75", "lag_n",
    "last_same_slot", "last_same_slot_rel", "recent_day_rel", "recent_3h_rel", "level_log",
    "year_rel", "year_day_rel", "recent_week_rel", "prev_same_slot_rel", "day_of_year",
]
YEAR_DAYS = 364  # the yearly analog: same weekday 52 weeks back (a holiday: the same holiday last year)


class NotEnoughHistory(ValueError):
    """The series has too little observed history before the origin to forecast it honestly."""


@dataclass(frozen=True)
class ModelSettings:
    """The knobs of the model; the server and the backtest use the same defaults."""

    train_days: int = TRAIN_DAYS
    n_estimators: int = 150
    learning_rate: float = 0.1
    num_leaves: int = 31
    min_child_samples: int = 40
    interval_widen: float = 1.3  # multiplies the quantile models' distance from the point forecast
    holiday_weight: float = 4.0  # training weight of holiday buckets (rare, and the biggest errors)
    decay_days: float = 365.0  # half-life (days) of the training origins' weights; 0: all equal
    holiday_analog: float = 0.75  # share of last year's same holiday (level-scaled) in a holiday's forecast
    target: str = "median"  # "median": value / the slot's weekly median (level where none); "level": value / level


    def __post_init__(self) -> None:
        if self.target not in ("level", "median"):
            raise ValueError(f"ModelSettings.target must be 'level' or 'median', got {self.target!r}")
        if not 0 <= self.holiday_analog <= 1:
            raise ValueError(f"ModelSettings.holiday_analog is a share between 0 and 1, got {self.holiday_analog}")


def _check_freq(freq: str) -> int:
    if freq not in STEPS:
        raise ValueError(f"unsupported frequency {freq!r}: use one of {sorted(STEPS)}")
    return STEPS[freq]


def _step(freq: str) -> pd.Timedelta:
    _check_freq(freq)
    return pd.Timedelta(minutes=1440 // STEPS[freq])


def regular_grid(history: pd.Series, freq: str, end: pd.Timestamp, keep_days: int | None = None) -> pd.Series:
    """The history on a regular naive wall-clock grid ending just before ``end`` (NaN where not observed)."""
    _check_freq(freq)
    if not isinstance(history.index, pd.DatetimeIndex):
        raise TypeError("history must be indexed by bucket start times (a DatetimeIndex)")
    if history.index.tz is not None:
        raise ValueError("history must be indexed by naive local wall-clock times: convert with to_wall_clock()")
    if history.index.has_duplicates:
        raise ValueError("history has repeated bucket times: merge them first (to_wall_clock or groupby)")
    values = pd.to_numeric(history, errors="raise").astype(float)
    if (values < 0).any():
        raise ValueError("history has negative counts")
    values = values[values.index < end]
    if keep_days is not None:
        values = values[values.index >= (end - pd.Timedelta(days=keep_days)).normalize()]
    step = _step(freq)
    off = values.index[(values.index - values.index.normalize()) % step != pd.Timedelta(0)]
    if len(off):
        raise ValueError(f"history has times off the {freq} grid, e.g. {off[0]}")
    start = values.index.min() if len(values) else end - step
    # start the grid on a local midnight so that slot arithmetic is plain integer division
    grid = pd.date_range(start.normalize(), end - step, freq=step)
    return values.reindex(grid)


@dataclass
class _Arrays:
    """Origin-independent arrays on the grid (computed once, shared by fit and predict)."""

    t0: pd.Timestamp
    freq: str
    steps: int
    v: np.ndarray  # raw values (NaN = not observed)
    vm: np.ndarray  # values with holidays and outages masked (for lags and the level)
    lags: np.ndarray  # (WEEKS, n) lag k+1 weeks of vm
    med: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    nlag: np.ndarray
    cal: np.ndarray  # (n_days, 5) holiday features per grid day
    cs_v: np.ndarray  # cumulative sums for window ratios
    cs_med: np.ndarray
    cs_vm: np.ndarray
    cs_vm_n: np.ndarray
    level_at: np.ndarray  # the robust level as seen at each position (for the yearly analog)
    day_mean: np.ndarray  # mean per grid day (NaN with fewer than 80 % of its buckets observed)


def _calendar_features(days: pd.DatetimeIndex, calendar: HolidayCalendar | None) -> np.ndarray:
    """Holiday features per day; the series of one refresh share their grid's days, so they are computed once."""
    if len(days) == 0:
        return np.zeros((0, 7))
    out = _calendar_features_of(days[0], len(days), calendar)
    out.flags.writeable = False  # shared between calls
    return out


@lru_cache(maxsize=32)
def _calendar_features_of(first: pd.Timestamp, n_days: int, calendar: HolidayCalendar | None) -> np.ndarray:
    days = pd.date_range(first, periods=n_days, freq="D")
    if len(days) == 0:
        return np.zeros((0, 7))
    if calendar is None:
        return np.column_stack([np.zeros((len(days), 5)), np.full(len(days), YEAR_DAYS), np.zeros(len(days))])
    dates = calendar.dates(days[0].year - 1, days[-1].year + 1)
    names = calendar.named(days[0].year - 2, days[-1].year + 1)
    names = {d: name.replace(" (observed)", "") for d, name in names.items()}
    by_name: dict[tuple[str, int], dt.date] = {(name, d.year): d for d, name in sorted(names.items(), reverse=True)}
    last_year = [by_name.get((names[day], day.year - 1)) if day in names else None for day in (x.date() for x in days)]
    year_back = np.array([(day.date() - prev).days if prev else YEAR_DAYS for day, prev in zip(days, last_year,
                                                                                                 strict=True)])
    matched = np.array([prev is not None for prev in last_year])
    hol_days = np.array(sorted(np.datetime64(d) for d in dates), dtype="datetime64[D]")
    d = days.values.astype("datetime64[D]")
    hol = np.isin(d, hol_days)
    prev = np.isin(d - 1, hol_days)
    nxt = np.isin(d + 1, hol_days)
    dow = days.day_of_week.values
    # a working day squeezed between a holiday and a weekend (Thursday holiday → Friday, Tuesday → Monday)
    bridge = ~hol & (((dow == 4) & prev) | ((dow == 0) & nxt))
    idx = np.searchsorted(hol_days, d)
    nxt_d = np.where(idx < len(hol_days), (hol_days[np.minimum(idx, len(hol_days) - 1)] - d).astype(int), 99)
    prv_d = np.where(idx > 0, (d - hol_days[np.maximum(idx - 1, 0)]).astype(int), 99)
    dist = np.where(nxt_d <= prv_d, -np.minimum(nxt_d, 7), np.minimum(prv_d, 7)).astype(float)
    return np.column_stack([hol, prev, nxt, bridge, dist, year_back, matched]).astype(float)


def _nan_quantiles(x: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Quantiles over axis 0 ignoring NaN (linear interpolation, as numpy's): one sort instead of numpy's
    per-column nanpercentile, which is ~100× slower on (8, n) lag arrays."""
    srt = np.sort(x, axis=0)  # NaN sort last
    n = np.sum(~np.isnan(x), axis=0)
    out = []
    for q in qs:
        pos = q * np.maximum(n - 1, 0)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
        a = np.take_along_axis(srt, lo[None], axis=0)[0]
        b = np.take_along_axis(srt, hi[None], axis=0)[0]
        out.append(np.where(n > 0, a + (b - a) * (pos - lo), np.nan))
    return out


def _prepare(grid: pd.Series, freq: str, calendar: HolidayCalendar | None, horizon_days: int) -> _Arrays:
    steps = STEPS[freq]
    week = 7 * steps
    v = grid.to_numpy(dtype=float)
    n = len(v)
    days = pd.date_range(grid.index[0], periods=math.ceil(n / steps) + horizon_days + 1, freq="D")
    cal = _calendar_features(days, calendar)
    day_of = np.arange(n) // steps
    vm = v.copy()
    vm[cal[day_of, 0] > 0] = np.nan

    def weekly(x: np.ndarray) -> np.ndarray:
        out = np.full((WEEKS, n), np.nan)
        for k in range(1, WEEKS + 1):
            out[k - 1, k * week:] = x[: n - k * week] if n > k * week else []
        return out

    with np.errstate(all="ignore"):
        (raw_med,) = _nan_quantiles(weekly(vm), (0.5,))
        outage = v < OUTAGE_RATIO * raw_med
        vm[outage] = np.nan
        lags = weekly(vm)
        med, q25, q75 = _nan_quantiles(lags, (0.5, 0.25, 0.75))
    nlag = np.sum(~np.isnan(lags), axis=0).astype(float)

    def cs(x: np.ndarray) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(np.nan_to_num(x))])

    both = ~np.isnan(v) & ~np.isnan(med)
    n_days = math.ceil(n / steps)
    padded = np.full(n_days * steps, np.nan)
    padded[:n] = v
    per_day = padded.reshape(n_days, steps)
    observed = np.sum(~np.isnan(per_day), axis=1)
    day_mean = np.where(observed >= 0.8 * steps, np.nansum(per_day, axis=1) / np.maximum(observed, 1), np.nan)
    a = _Arrays(
        t0=grid.index[0], freq=freq, steps=steps, v=v, vm=vm, lags=lags, med=med, q25=q25, q75=q75, nlag=nlag,
        cal=cal, cs_v=cs(np.where(both, v, 0)), cs_med=cs(np.where(both, med, 0)), cs_vm=cs(vm),
        cs_vm_n=cs(~np.isnan(vm)), level_at=np.empty(0), day_mean=day_mean,
    )
    a.level_at = _level(a, np.arange(n))
    return a


def _level(a: _Arrays, o: np.ndarray) -> np.ndarray:
    """Robust recent level per origin position: mean of the masked values in the last 4 (else 8) weeks."""
    out = np.full(len(o), np.nan)
    for days in (LEVEL_DAYS, 2 * LEVEL_DAYS):
        lo = np.maximum(o - days * a.steps, 0)
        cnt = a.cs_vm_n[o] - a.cs_vm_n[lo]
        mean = (a.cs_vm[o] - a.cs_vm[lo]) / np.maximum(cnt, 1)
        ok = np.isnan(out) & (cnt >= 3 * a.steps)
        out[ok] = mean[ok]
    return out


def _ratio(a: _Arrays, o: np.ndarray, width: int) -> np.ndarray:
    lo = np.maximum(o - width, 0)
    num = a.cs_v[o] - a.cs_v[lo]
    den = a.cs_med[o] - a.cs_med[lo]
    with np.errstate(all="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _features(a: _Arrays, o: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix for (origin position, target position) pairs, and each pair's level."""
    s = a.steps
    level = _level(a, o)
    lvl = np.where(level > 0, level, np.nan)
    day = t // s
    # the grid starts on a midnight: weekday of grid day 0 is t0's
    dow = (day + a.t0.day_of_week) % 7
    slot = t % s
    cal = a.cal[day]
    lags = np.where(t < len(a.v), a.lags[:, np.minimum(t, len(a.v) - 1)], np.nan)
    # for targets beyond the grid the lags come from the grid (horizon ≤ 1 week)
    if (t >= len(a.v)).any():
        for k in range(1, WEEKS + 1):
            src = t - k * 7 * s
            ok = (src >= 0) & (src < len(a.v))
            lags[k - 1] = np.where(ok, a.vm[np.clip(src, 0, len(a.v) - 1)], np.nan)
    med, q25, q75 = _nan_quantiles(lags, (0.5, 0.25, 0.75))
    nlag = np.sum(~np.isnan(lags), axis=0)
    last = t - s * ((t - o) // s + 1)  # the latest same slot of day before the origin
    last_v = np.where(last >= 0, a.v[np.clip(last, 0, None)], np.nan)
    last_med = np.where(last >= 0, a.med[np.clip(last, 0, None)], np.nan)
    prev = last - s  # the same slot one day earlier still
    prev_v = np.where(prev >= 0, a.v[np.clip(prev, 0, None)], np.nan)
    prev_med = np.where(prev >= 0, a.med[np.clip(prev, 0, None)], np.nan)
    with np.errstate(all="ignore"):
        x = np.column_stack([
            dow * s + slot, slot, dow, cal[:, :5],
            (lags / lvl).T, med / lvl, q25 / lvl, q75 / lvl, nlag,
            last_v / lvl, np.where(last_med > 0, last_v / last_med, np.nan),
            _ratio(a, o, s), _ratio(a, o, max(s // 8, 1)), np.log1p(level),
            *_yearly(a, t, cal[:, 5].astype(int)),
            _ratio(a, o, 7 * s), np.where(prev_med > 0, prev_v / prev_med, np.nan),
            _day_of_year(a.t0, day),
        ])
    return x, level


def _day_of_year(t0: pd.Timestamp, day: np.ndarray) -> np.ndarray:
    """Day of the year of grid days (school holidays, summer, the winter weather season)."""
    dates = np.datetime64(t0.normalize().date(), "D") + day
    return (dates - dates.astype("datetime64[Y]").astype("datetime64[D]")).astype(int) + 1


def _target_base(x: np.ndarray, level: np.ndarray, settings: ModelSettings) -> np.ndarray:
    """What the target is divided by: the recent level, or the weekly median of the slot (level if none)."""
    lvl = np.where(level > 0, level, np.nan)
    if settings.target == "level":
        return lvl
    med = x[:, FEATURES.index("lag_med")] * lvl
    return np.where(np.isfinite(med) & (med > 0.05 * lvl), med, lvl)


def _yearly(a: _Arrays, t: np.ndarray, days_back: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The yearly analog relative to its own level then: the bucket, and its day's mean."""
    q = t - days_back * a.steps
    ok = (q >= 0) & (q < len(a.v))
    qc = np.clip(q, 0, max(len(a.v) - 1, 0))
    with np.errstate(all="ignore"):
        lvl = np.where(ok, a.level_at[qc], np.nan)
        rel = np.where(ok, a.v[qc], np.nan) / lvl
        day_rel = np.where(ok, a.day_mean[qc // a.steps], np.nan) / lvl
    return rel, day_rel


@dataclass
class FittedModel:
    """A model fitted on the history before ``cutoff``; serves any origin at or after it."""

    cutoff: pd.Timestamp
    freq: str
    calendar: HolidayCalendar | None
    settings: ModelSettings
    point: Booster | None  # LightGBM boosters, None = profile fallback
    lower: Booster | None
    upper: Booster | None
    fallback_q: tuple[float, float]  # ratio quantiles for the profile fallback's interval


def fit(history: pd.Series, *, cutoff: pd.Timestamp, freq: str = "h", calendar: HolidayCalendar | None = None,
        settings: ModelSettings | None = None) -> FittedModel:
    """Fit on daily origins before ``cutoff`` using only rows before it (the look-ahead rule)."""
    settings = settings or ModelSettings()
    cutoff = pd.Timestamp(cutoff)
    grid = regular_grid(history, freq, cutoff, keep_days=settings.train_days + WEEKS * 7 + 2 * LEVEL_DAYS + 400)
    a = _prepare(grid, freq, calendar, horizon_days=0)
    s = a.steps
    n = len(a.v)
    first_day = max(n // s - settings.train_days, WEEKS * 7)
    origins = np.arange(first_day, n // s) * s
    point = lower = upper = None
    fallback_q = (0.8, 1.2)
    if len(origins):
        o = np.repeat(origins, s)
        t = o + np.tile(np.arange(s), len(origins))
        keep = t < n
        o, t = o[keep], t[keep]
        x, level = _features(a, o, t)
        base = _target_base(x, level, settings)
        y = a.v[t] / base
        ok = ~np.isnan(y) & np.isfinite(base) & (base > 0)
        # buckets far below their typical value (closures, outages) teach the model nothing about traffic
        with np.errstate(all="ignore"):
            ok &= ~(a.v[t] < OUTAGE_RATIO * a.med[t])
        with np.errstate(all="ignore"):
            rel = a.v[t] / a.med[t]
        rel = rel[ok & np.isfinite(rel)]
        if len(rel) >= 50:
            fallback_q = (float(np.quantile(rel, 0.1)), float(np.quantile(rel, 0.9)))
        if ok.sum() >= MIN_TRAIN_DAYS * s * 0.5:
            import lightgbm as lgb  # imported here: a heavy import that only fitting needs
            params = dict(learning_rate=settings.learning_rate, num_leaves=settings.num_leaves,
                          min_data_in_leaf=settings.min_child_samples, bagging_fraction=0.8, bagging_freq=1,
                          feature_fraction=0.8, verbose=-1, num_threads=1, seed=0)
            cal = x[ok][:, FEATURES.index("hol"):FEATURES.index("bridge") + 1]
            weight = np.where(cal[:, 0] > 0, settings.holiday_weight, np.where(cal[:, 1:].any(axis=1), 2.0, 1.0))
            if settings.decay_days > 0:
                age = (n - o[ok]) / s
                weight = weight * 0.5 ** (age / settings.decay_days)
            if settings.target == "median":  # L1 on value / median weighs each bucket by its median: WAPE's
                weight = weight * (base[ok] / level[ok])
            data = lgb.Dataset(x[ok], y[ok], weight=weight, free_raw_data=False)

            def train(**extra: object) -> Booster:
                return lgb.train({**params, **extra}, data, num_boost_round=settings.n_estimators)

            point = train(objective="l1")
            lower = train(objective="quantile", alpha=0.1)
            upper = train(objective="quantile", alpha=0.9)
    return FittedModel(cutoff=cutoff, freq=freq, calendar=calendar, settings=settings, point=point, lower=lower,
                       upper=upper, fallback_q=fallback_q)


def predict(model: FittedModel, history: pd.Series, *, origin: pd.Timestamp, horizon: int) -> pd.DataFrame:
    """Forecast ``horizon`` buckets from ``origin`` with a fitted model, using only rows before ``origin``."""
    origin = pd.Timestamp(origin)
    s = _check_freq(model.freq)
    if origin < model.cutoff:
        raise ValueError(f"origin {origin} is before the model's cut-off {model.cutoff}: it would see the future")
    step = _step(model.freq)
    if origin.tz is not None:
        raise ValueError("origin must be a naive local wall-clock time, like the history")
    if (origin - origin.normalize()) % step:
        raise ValueError(f"origin {origin} is not on the {model.freq} grid")
    if not 1 <= horizon <= 7 * s:
        raise ValueError(f"horizon must be 1…{7 * s} buckets (one week), got {horizon}")
    grid = regular_grid(history, model.freq, origin, keep_days=WEEKS * 7 + 2 * LEVEL_DAYS + 400)
    n = len(grid)
    lookback = grid.iloc[max(n - WEEKS * 7 * s, 0):]
    observed_days = lookback.notna().sum() / s
    if observed_days < MIN_HISTORY_DAYS:
        raise NotEnoughHistory(
            f"only {observed_days:.1f} days observed in the {WEEKS} weeks before {origin}; "
            f"forecasts need at least {MIN_HISTORY_DAYS}")
    a = _prepare(grid, model.freq, model.calendar, horizon_days=math.ceil(horizon / s) + 1)
    f, lo, hi, method = _rows(model, a, np.full(horizon, n), np.arange(n, n + horizon))
    ds = pd.date_range(origin, periods=horizon, freq=step)
    frame = pd.DataFrame({"ds": ds, "forecast": f, "lo80": np.minimum(lo, f), "hi80": np.maximum(hi, f)})
    frame.attrs["method"] = method
    return frame


def _rows(model: FittedModel, a: _Arrays, o: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                               np.ndarray, str]:
    """Forecast, lower and upper bound for (origin, target) position pairs, and the method that made them."""
    s = a.steps
    x, level = _features(a, o, t)
    med_abs = x[:, FEATURES.index("lag_med")] * level
    base = _target_base(x, level, model.settings)
    if model.point is not None and model.lower is not None and model.upper is not None and np.isfinite(base).all():
        # one thread: a few days of rows are tiny, and waking a thread pool per call costs far more than that
        f, lo, hi = (np.asarray(b.predict(x, num_threads=1)) * base for b in (model.point, model.lower, model.upper))
        w = model.settings.interval_widen
        lo, hi = f - w * np.maximum(f - lo, 0), f + w * np.maximum(hi - f, 0)
        # a holiday seen last year: a quarter the model, three quarters last year's same holiday scaled by the level
        # since (the training years hold too few holidays for the model alone; bench/forecast_accuracy.py)
        analog = x[:, FEATURES.index("year_rel")] * level
        use = (a.cal[t // s, 6] > 0) & np.isfinite(analog)
        if use.any():
            h = model.settings.holiday_analog
            scale = np.where(f > 0, ((1 - h) * f + h * analog) / np.where(f > 0, f, 1), 1.0)
            f, lo, hi = (np.where(use, z * scale, z) for z in (f, lo, hi))
        method = "lightgbm"
    else:
        f = med_abs
        lo, hi = f * model.fallback_q[0], f * model.fallback_q[1]
        method = "weekly-median"
    f, lo, hi = (np.clip(z, 0, None) for z in (f, lo, hi))
    return f, lo, hi, method


def nowcasts(model: FittedModel, history: pd.Series, *, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Each bucket of ``[start, end)`` forecast from its own origin (only rows before it), in one pass: what a
    bucket's stored forecast is once the 15-minute refreshes have reached it, which anomalies are judged
    against (``bench/forecast_anomaly.py`` replays a quarter of refreshes with it); one day at a time, as a
    refresh's day of horizon would fall back to the weekly median."""
    s = _check_freq(model.freq)
    if start < model.cutoff:
        raise ValueError(f"start {start} is before the model's cut-off {model.cutoff}: it would see the future")
    grid = regular_grid(history, model.freq, end, keep_days=WEEKS * 7 + 2 * LEVEL_DAYS + 400 + (end - start).days)
    a = _prepare(grid, model.freq, model.calendar, horizon_days=1)
    first = int((start - grid.index[0]) / _step(model.freq))
    parts = []
    for d0 in range(first, len(grid), s):
        t = np.arange(d0, min(d0 + s, len(grid)))
        f, lo, hi, _ = _rows(model, a, t, t)
        parts.append(pd.DataFrame({"ds": grid.index[t], "forecast": f, "lo80": np.minimum(lo, f),
                                   "hi80": np.maximum(hi, f)}))
    return pd.concat(parts, ignore_index=True)


def forecast(history: pd.Series, *, origin: pd.Timestamp | dt.datetime, horizon: int, freq: str = "h",
             calendar: HolidayCalendar | None = None, settings: ModelSettings | None = None) -> pd.DataFrame:
    """Fit on the rows before ``origin`` and forecast ``horizon`` buckets from it (see the package docs)."""
    origin = pd.Timestamp(origin)
    model = fit(history, cutoff=origin, freq=freq, calendar=calendar, settings=settings)
    return predict(model, history, origin=origin, horizon=horizon)
