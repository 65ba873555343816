"""Flow histories for the model, read from the rollups with "not observed" kept apart from "no vehicles".

Why its own reader and not ``server.storage.history.History.flow``: a refresh reads every line's history at
once (500 lines × 12 weeks of hours is a million cells), always over ranges aligned to the table's own
buckets, so one plain query per table is exact and an order of magnitude cheaper than building a
cell object per bucket.

A bucket counts as observed when its camera observed at least ``min_coverage`` of it (heartbeats with
the source ok, or an imported count); its flow is then scaled to the whole bucket (vehicles per
observed second × bucket length). Any other bucket is NaN: a camera that was down is missing data,
never a zero.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import literal, select

from server.forecasting.tables import LANE, LINE, SeriesKey
from server.storage.models import FLOW_TABLES, OBSERVED_TABLES, ZONE_TABLES
from server.storage.store import Store

#: Bucket seconds -> rollup resolution read for it.
RES_OF: dict[int, str] = {900: "15m", 3600: "1h"}


@dataclass
class Histories:
    """Every series' values on one regular UTC grid ``start + i * step`` (NaN: not observed)."""

    start: int
    step: int
    n: int
    values: dict[SeriesKey, np.ndarray]
    coverage: dict[str, np.ndarray]  # per camera: observed share of each bucket

    def observed_days(self, key: SeriesKey) -> float:
        """Days of observed buckets (a bucket counts in full once it is observed enough to be used)."""
        return float(np.count_nonzero(~np.isnan(self.values[key])) * self.step / 86400)

    def regrid(self, lo: int, hi: int) -> Histories:
        """The same series on the grid ``[lo, hi)`` (NaN and zero coverage where this one has no data)."""
        n = (hi - lo) // self.step
        a = (lo - self.start) // self.step  # where the new grid starts in the old one
        src = slice(max(a, 0), max(min(a + n, self.n), 0))
        dst = slice(src.start - a, src.stop - a)

        def move(arrs: dict[Any, np.ndarray], fill: float) -> dict[Any, np.ndarray]:
            out = {}
            for k, v in arrs.items():
                w = np.full(n, fill)
                if src.stop > src.start:
                    w[dst] = v[src]
                out[k] = w
            return out

        return Histories(lo, self.step, n, move(self.values, np.nan), move(self.coverage, 0.0))

    def without(self, cameras: set[str]) -> Histories:
        """The same grid without the series and coverage of ``cameras``."""
        if not cameras:
            return self
        return Histories(self.start, self.step, self.n,
                         {k: v for k, v in self.values.items() if k.camera_id not in cameras},
                         {c: v for c, v in self.coverage.items() if c not in cameras})

    def update(self, newer: Histories) -> None:
        """Overwrite the tail of this grid with ``newer`` (a more recent read on the same grid)."""
        a = (newer.start - self.start) // self.step
        for key, v in newer.values.items():
            arr = self.values.setdefault(key, np.full(self.n, np.nan))
            arr[a : a + len(v)] = v
        for cam, c in newer.coverage.items():
            arr = self.coverage.setdefault(cam, np.zeros(self.n))
            arr[a : a + len(c)] = c

    def series(self, key: SeriesKey) -> pd.Series:
        """The values as a UTC-indexed series (what ``server.forecasting.model.series.to_wall_clock`` takes)."""
        idx = pd.to_datetime(self.start + np.arange(self.n) * self.step, unit="s", utc=True)
        return pd.Series(self.values[key], index=idx)


def load_histories(
    store: Store,
    lo: int,
    hi: int,
    step: int,
    *,
    classes: Sequence[str],
    min_coverage: float,
    lanes: bool = True,
    known: Iterable[SeriesKey] = (),
    camera_ids: Sequence[str] | None = None,
) -> Histories:
    """Histories of every line/direction (and lane) with flow in ``[lo, hi)``, plus the ``known`` series.

    ``lo`` and ``hi`` must be multiples of ``step`` (900 or 3600); ``camera_ids`` limits the read.
    """
    if step not in RES_OF or lo % step or hi % step or hi <= lo:
        raise ValueError(f"range [{lo}, {hi}) is not aligned to {step} s buckets")
    res = RES_OF[step]
    n = (hi - lo) // step
    counts: dict[SeriesKey, np.ndarray] = {k: np.zeros(n) for k in known}
    flow = FLOW_TABLES[res]
    total = functools.reduce(operator.add, [flow.c[f"n_{c}"] for c in classes])
    with store.db.session() as s:
        line_rows = s.execute(
            select(flow.c.camera_id, flow.c.line_id, flow.c.direction, flow.c.bucket, total)
            .where(flow.c.bucket >= lo, flow.c.bucket < hi, *_cams(flow, camera_ids))
        ).all()
        lane_rows: Sequence[Any] = []
        if lanes:
            zone = ZONE_TABLES[res]
            lane_rows = s.execute(
                select(zone.c.camera_id, zone.c.zone_id, literal(""), zone.c.bucket, zone.c.entered)
                .where(zone.c.bucket >= lo, zone.c.bucket < hi, zone.c.lane.is_(True), *_cams(zone, camera_ids))
            ).all()
        for kind, rows in ((LINE, line_rows), (LANE, lane_rows)):
            _fill(counts, kind, rows, lo, step, n)
        cams = sorted({k.camera_id for k in counts})
        coverage = {c: np.zeros(n) for c in cams}
        obs = OBSERVED_TABLES[res]
        if cams:
            rows = s.execute(
                select(obs.c.camera_id, obs.c.bucket, obs.c.observed_s)
                .where(obs.c.bucket >= lo, obs.c.bucket < hi, *_cams(obs, None if camera_ids is None else cams))
            ).all()
            if rows:
                df = _frame(rows, ["camera_id", "bucket", "observed_s"])
                for cam, idx in df.groupby("camera_id", sort=False).indices.items():
                    if cam in coverage:
                        np.add.at(coverage[cam], (df["bucket"].to_numpy()[idx] - lo) // step,
                                  df["observed_s"].to_numpy(dtype=float)[idx] / step)
    values: dict[SeriesKey, np.ndarray] = {}
    for key, arr in counts.items():
        cov = np.minimum(coverage[key.camera_id], 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            values[key] = np.where(cov >= min_coverage, arr / cov, np.nan)
    return Histories(lo, step, n, values, coverage)


def _cams(table: Any, camera_ids: Sequence[str] | None) -> list[Any]:
    return [] if camera_ids is None else [table.c.camera_id.in_(list(camera_ids))]


def _frame(rows: Sequence[Any], columns: list[str]) -> pd.DataFrame:
    """Result rows as a frame, column by column: ``pd.DataFrame(rows)`` probes every SQLAlchemy ``Row`` for
    attributes (an exception per row and column inside SQLAlchemy), which cost most of a full history read."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    return pd.DataFrame({name: np.asarray(col) for name, col in zip(columns, cols, strict=True)})


def _fill(counts: dict[SeriesKey, np.ndarray], kind: str, rows: Sequence[Any], lo: int, step: int, n: int) -> None:
    """Add ``(camera, id, direction, bucket, value)`` rows to their series (vectorised per series)."""
    if not rows:
        return
    df = _frame(rows, ["camera_id", "series_id", "direction", "bucket", "value"])
    pos = (df["bucket"].to_numpy() - lo) // step
    val = df["value"].to_numpy(dtype=float)
    for (cam, sid, direction), idx in df.groupby(["camera_id", "series_id", "direction"], sort=False).indices.items():
        key = SeriesKey(kind, cam, sid, direction)
        arr = counts.get(key)
        if arr is None:
            arr = counts[key] = np.zeros(n)
        np.add.at(arr, pos[idx], val[idx])
