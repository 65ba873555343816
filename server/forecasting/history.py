"""Flow histories for the model, read from the rollups with "not observed" kept apart from "no vehicles".

Why its own reader and not ``server.storage.history.History.flow``: a refresh reads every line's history at
once (500 lines × 12 weeks of hours is a million cells), always over ranges aligned to the table's own
buckets, so one plain query per table is exact and an order of magnitude cheaper than building a
cell object per bucket. Each query returns one row per series, its buckets and values as one text the
database aggregates (``_pairs``): a Python object per bucket row, not the database, cost most of a full
history read.

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
from sqlalchemy import Text, cast, func, literal, select

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
            select(flow.c.camera_id, flow.c.line_id, flow.c.direction, _pairs(flow.c.bucket, total))
            .where(flow.c.bucket >= lo, flow.c.bucket < hi, *_cams(flow, camera_ids))
            .group_by(flow.c.camera_id, flow.c.line_id, flow.c.direction)
        ).all()
        lane_rows: Sequence[Any] = []
        if lanes:
            zone = ZONE_TABLES[res]
            lane_rows = s.execute(
                select(zone.c.camera_id, zone.c.zone_id, literal(""), _pairs(zone.c.bucket, zone.c.entered))
                .where(zone.c.bucket >= lo, zone.c.bucket < hi, zone.c.lane.is_(True), *_cams(zone, camera_ids))
                .group_by(zone.c.camera_id, zone.c.zone_id)
            ).all()
        for kind, rows in ((LINE, line_rows), (LANE, lane_rows)):
            for cam, sid, direction, pairs in rows:
                key = SeriesKey(kind, cam, sid, direction)
                arr = counts.get(key)
                if arr is None:
                    arr = counts[key] = np.zeros(n)
                _add(arr, pairs, lo, step)
        cams = sorted({k.camera_id for k in counts})
        coverage = {c: np.zeros(n) for c in cams}
        obs = OBSERVED_TABLES[res]
        if cams:
            for cam, pairs in s.execute(
                select(obs.c.camera_id, _pairs(obs.c.bucket, obs.c.observed_s))
                .where(obs.c.bucket >= lo, obs.c.bucket < hi, *_cams(obs, None if camera_ids is None else cams))
                .group_by(obs.c.camera_id)
            ):
                if cam in coverage:
                    _add(coverage[cam], pairs, lo, step, scale=1 / step)
    values: dict[SeriesKey, np.ndarray] = {}
    for key, arr in counts.items():
        cov = np.minimum(coverage[key.camera_id], 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            values[key] = np.where(cov >= min_coverage, arr / cov, np.nan)
    return Histories(lo, step, n, values, coverage)


def _cams(table: Any, camera_ids: Sequence[str] | None) -> list[Any]:
    return [] if camera_ids is None else [table.c.camera_id.in_(list(camera_ids))]


def _pairs(bucket: Any, value: Any) -> Any:
    """One text per group: ``bucket,value,bucket,value…`` (every dialect's string aggregate)."""
    return func.aggregate_strings(cast(bucket, Text) + "," + cast(value, Text), ",")


def _add(arr: np.ndarray, pairs: str | None, lo: int, step: int, scale: float = 1.0) -> None:
    """Add a ``_pairs`` text's values to their buckets of ``arr`` (the grid starting at ``lo``)."""
    if not pairs:
        return
    flat = np.fromstring(pairs, sep=",").reshape(-1, 2)
    np.add.at(arr, (flat[:, 0].astype(np.int64) - lo) // step, flat[:, 1] * scale)
