"""Conversions between UTC bucket series (what the server stores) and the naive local wall-clock series the
model works on, so that "same hour last week" and holidays follow the local clock across DST changes."""

from __future__ import annotations

import pandas as pd


def to_wall_clock(series: pd.Series, timezone: str) -> pd.Series:
    """A tz-aware (e.g. UTC) bucket series as naive local wall-clock times.

    The repeated fall-back hour's two buckets become one wall-clock bucket (their mean: a typical hour, not a
    double one); the skipped spring-forward hour simply has no row (not observed). NaN stays NaN.
    """
    if not isinstance(series.index, pd.DatetimeIndex) or series.index.tz is None:
        raise ValueError("to_wall_clock needs a series indexed by tz-aware times (e.g. UTC bucket starts)")
    local = series.tz_convert(timezone)
    local.index = local.index.tz_localize(None)
    if local.index.is_monotonic_increasing and local.index.is_unique:  # no fall-back hour: nothing to merge
        return local
    return local.groupby(level=0).mean().sort_index()


def wall_clock_to_utc(frame: pd.DataFrame, timezone: str, column: str = "ds") -> pd.DataFrame:
    """Forecast rows at naive local times as UTC instants.

    A wall-clock time that does not exist (spring forward) is dropped; one that occurs twice (fall back)
    becomes two rows, one per real bucket, both with the forecast of that wall-clock time.
    """
    try:  # the usual case: every wall-clock time exists once
        local = frame[column].dt.tz_localize(timezone, ambiguous="raise", nonexistent="raise")
    except ValueError:  # a repeated or skipped wall-clock time: both readings below
        pass
    else:
        out = frame.assign(**{column: local.dt.tz_convert("UTC")})
        out = out[out[column].notna()]
        if not out[column].is_monotonic_increasing:
            out = out.sort_values(column)
        return out.drop_duplicates(subset=[column]).reset_index(drop=True)
    rows = []
    for when, dst in ((frame, True), (frame, False)):
        local = when[column].dt.tz_localize(timezone, ambiguous=[dst] * len(when), nonexistent="NaT")
        part = when.assign(**{column: local.dt.tz_convert("UTC")})
        rows.append(part[part[column].notna()])
    out = pd.concat(rows).drop_duplicates(subset=[column]).sort_values(column)
    return out.reset_index(drop=True)
