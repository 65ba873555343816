"""The forecast refresh: every line's (and lane's) history from the rollups through the core model into
the ``forecasts`` table, with each series' status (a cold start says why, never an invented number).

Why histories are cached: a year of hourly and 12 weeks of 15-minute rollups for 500 lines are millions
of rows; they change only at the recent end (new buckets, late events, replays), so a refresh re-reads
the last day (the last week once a day) and moves the cached grid forward. The grids are also stored
(``model_store``), so a restarted process re-reads only the recent end too; only the first refresh ever,
and a series new to the cache, read the whole history.

Why fitted models are cached: fitting is the expensive part (gradient boosting on months of history)
while a forecast from a fitted model costs milliseconds, and the core fits on rows before a cut-off
(local midnight) and then serves any later origin. So a refresh predicts every series from its newest
model and refits at most ``fit_budget_s`` seconds' worth of series whose model is older than today,
oldest first: one refresh stays bounded however many lines there are. Every fitted model is stored as it
is fitted, so a restarted process predicts every series at its first refresh (series without any model
yet, e.g. new lines, are reported ``pending`` until their turn). A forecast whose origin and model have
not changed since the previous refresh (the hourly one, three refreshes in four) is not made again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, select

from citywatch.config import CitywatchConfig, HolidaysConfig
from citywatch.contract import utcnow
from server.forecasting.history import Histories, load_histories
from server.forecasting.model.forecaster import FittedModel, ModelSettings, NotEnoughHistory, fit, predict
from server.forecasting.model.holiday import HolidayCalendar
from server.forecasting.model.persist import calendar_key, settings_key
from server.forecasting.model.series import to_wall_clock, wall_clock_to_utc
from server.forecasting.model_store import (
    history_generations,
    load_models,
    load_saved_histories,
    model_row,
    save_histories,
    save_models,
    saved_cameras,
)
from server.forecasting.tables import FREQ_SECONDS, ForecastRow, ForecastSeriesRow, SeriesKey
from server.storage.models import CameraRow, table_of
from server.storage.store import Store

log = logging.getLogger(__name__)

OK, COLD, PENDING, FAILED = "ok", "cold_start", "pending", "failed"
_SERIES_PK = ("series_kind", "camera_id", "series_id", "direction")
_FORECAST_PK = (*_SERIES_PK, "freq", "ds")
#: A refresh re-reads this much recent history (late events, replays); the first of a local day more.
RECENT_S = 24 * 3600
DAILY_S = 7 * 86400


@dataclass
class SeriesResult:
    """What one refresh concluded about one series (both frequencies)."""

    status: str = OK
    observed_days: float = 0.0
    message: str | None = None


@dataclass
class RefreshReport:
    """One refresh, for logs, metrics and the benchmark."""

    at: datetime
    seconds: float = 0.0
    series: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    fitted: int = 0
    skipped: int = 0
    rows: int = 0
    read_s: float = 0.0
    load_s: float = 0.0
    fit_s: float = 0.0
    predict_s: float = 0.0
    write_s: float = 0.0


@dataclass
class _Cached:
    """A history grid as the last refresh left it: its local day, the grid, and where its data ends."""

    day: date
    grid: Histories
    end: int


def calendar_of(cfg: HolidaysConfig) -> HolidayCalendar:
    return HolidayCalendar(country=cfg.country, subdiv=cfg.subdivision, extra=frozenset(cfg.extra_dates))


class ForecastRefresher:
    """Refreshes all forecasts of one store; keeps the fitted models between refreshes (one per process)."""

    def __init__(self, store: Store, config: CitywatchConfig, *, fit_budget_s: float | None = None) -> None:
        self.store = store
        self.config = config
        self.cfg = config.server.forecasts
        self.tz = config.server.timezone
        self.fit_budget_s = self.cfg.fit_budget_s if fit_budget_s is None else fit_budget_s
        self.models: dict[tuple[SeriesKey, str], FittedModel] = {}
        self._models_loaded = False
        self._calendars: dict[str, HolidayCalendar] = {}
        self._hist: dict[str, _Cached] = {}
        #: (series, freq) -> (origin, model) of its stored forecast: an hourly forecast is made once an hour
        self._made: dict[tuple[SeriesKey, str], tuple[int, int]] = {}
        self.last: RefreshReport | None = None

    # --- inputs ---------------------------------------------------------------------------------

    def calendar(self, site_id: str | None) -> HolidayCalendar:
        """The site's holiday calendar (``server.forecasts.sites``), else the default one."""
        name = site_id if site_id in self.cfg.sites else ""
        cal = self._calendars.get(name)
        if cal is None:
            cal = self._calendars[name] = calendar_of(self.cfg.sites[name] if name else self.cfg.holidays)
        return cal

    def _sites(self) -> dict[str, str | None]:
        configured = {c.id: self.config.camera_site(c) for c in self.config.cameras}
        with self.store.db.session() as s:
            known = dict(s.execute(select(CameraRow.camera_id, CameraRow.site_id)).all())
        return {**{k: v or self.config.site for k, v in known.items()}, **configured}

    def _known_series(self) -> list[SeriesKey]:
        with self.store.db.session() as s:
            return [r.key() for r in s.scalars(select(ForecastSeriesRow))]

    def history_days(self, freq: str) -> int:
        return self.cfg.history_days if freq == "h" else self.cfg.history_days_15min

    def histories(self, freq: str, origin: int, known: Iterable[SeriesKey] = ()) -> Histories:
        """``history_days`` before ``origin``, cached between refreshes and kept across restarts.

        Read in full once (the first refresh ever, or of a process without stored grids); afterwards the
        cached grid is moved forward and only the last ``RECENT_S`` before the cached end re-read (new
        buckets, late events, replays), ``DAILY_S`` at the first refresh of a local day; a series the cache
        does not hold yet (new line) or a camera whose stored grid was marked (an import into its past) has
        its camera's whole history read. Grids are stored once a local day and when read in full, each only
        if no import changed its camera's past since before the read (``model_store.save_histories``).
        """
        step = FREQ_SECONDS[freq]
        lo, hi = origin - self.history_days(freq) * 86400, origin
        day = datetime.fromtimestamp(origin, self.store.clock.tz).date()
        known = list(known)
        seen = history_generations(self.store, freq)  # before any read: an import after it keeps its mark
        cached = self._hist.get(freq) or self._restore(freq, lo, hi)
        if cached is None or cached.grid.start > lo:
            h = self._read(step, lo, hi, known)
            fresh = {k.camera_id for k in h.values}
        else:
            changed = self._cameras_changed(freq, cached.grid)
            old = cached.grid.without(changed)
            h = old.regrid(lo, hi)
            recent = max(lo, min(cached.end, hi) - (RECENT_S if cached.day == day else DAILY_S))
            h.update(self._read(step, recent, hi, [*h.values, *known]))
            # a changed camera is read again even when it has no recent flow (an import-only camera)
            fresh = changed | {k.camera_id for k in h.values if k not in old.values}
            if fresh:
                cams = sorted(fresh)
                h.update(self._read(step, lo, hi, [k for k in h.values if k.camera_id in fresh], camera_ids=cams))
        if cached is None or cached.day != day:
            fresh = {k.camera_id for k in h.values}
        save_histories(self.store, freq, h, fresh, utcnow(), seen)
        self._hist[freq] = _Cached(day, h, hi)
        return h

    def _restore(self, freq: str, lo: int, hi: int) -> _Cached | None:
        """The grids a previous process stored (its day: the local day of their end)."""
        saved = load_saved_histories(self.store, freq, lo, hi)
        if saved is None:
            return None
        grid, end = saved
        return _Cached(datetime.fromtimestamp(end, self.store.clock.tz).date(), grid, end)

    def _cameras_changed(self, freq: str, grid: Histories) -> set[str]:
        """Cameras of the cached grid whose stored grid is gone or marked (their past changed since it was read)."""
        return {k.camera_id for k in grid.values} - saved_cameras(self.store, freq)

    def _read(self, step: int, lo: int, hi: int, known: Iterable[SeriesKey],
              camera_ids: list[str] | None = None) -> Histories:
        return load_histories(self.store, lo, hi, step, classes=self.cfg.classes, min_coverage=self.cfg.min_coverage,
                              lanes=self.cfg.lanes, known=known, camera_ids=camera_ids)

    # --- the refresh ------------------------------------------------------------------------------

    def refresh(self, now: datetime | None = None) -> RefreshReport:
        """Forecast every series from the bucket holding ``now`` (default: the current time) onwards."""
        now = now or utcnow()
        t0 = time.perf_counter()
        rep = RefreshReport(at=now)
        known = self._known_series()
        sites = self._sites()
        if not self._models_loaded:
            t = time.perf_counter()
            self._load_models(sites)
            rep.load_s = time.perf_counter() - t
        fitted: list[dict[str, object]] = []
        results: dict[SeriesKey, SeriesResult] = {}
        rows: list[dict[str, Any]] = []
        fit_left = self.fit_budget_s
        for freq, hours in (("h", self.cfg.horizon_hourly_h), ("15min", self.cfg.horizon_15min_h)):
            step = FREQ_SECONDS[freq]
            origin = int(now.timestamp()) // step * step
            t = time.perf_counter()
            hist = self.histories(freq, origin, known)
            rep.read_s += time.perf_counter() - t
            origin_local = pd.Timestamp(datetime.fromtimestamp(origin, self.store.clock.tz).replace(tzinfo=None))
            cutoff = origin_local.normalize()
            horizon = hours * 3600 // step
            # series whose model is oldest are fitted first
            order = sorted(hist.values, key=lambda k: (self._model_cutoff(k, freq), k))
            for key in order:
                res = results.setdefault(key, SeriesResult())
                days = hist.observed_days(key)
                if freq == "h":
                    res.observed_days = days
                if res.status in (COLD, FAILED):
                    continue
                if days < self.cfg.min_history_days:
                    res.status = COLD
                    res.message = (f"not enough history: {int(days)} observed days, "
                                   f"need {self.cfg.min_history_days}")
                    continue
                model = self.models.get((key, freq))
                refit = (model is None or model.cutoff < cutoff) and fit_left > 0
                if not refit and model is not None and self._made.get((key, freq)) == (origin, id(model)):
                    rep.skipped += 1  # same origin, same model: the stored forecast stands
                    continue
                series = to_wall_clock(hist.series(key), self.tz)
                try:
                    if refit:
                        t = time.perf_counter()
                        model = fit(series, cutoff=cutoff, freq=freq, calendar=self.calendar(sites.get(key.camera_id)))
                        took = time.perf_counter() - t
                        fit_left -= took
                        rep.fit_s += took
                        rep.fitted += 1
                        self.models[(key, freq)] = model
                        fitted.append(model_row(key, freq, model, now))
                    if model is None:
                        res.status = PENDING
                        res.message = "model not fitted yet (queued for the next refresh)"
                        continue
                    t = time.perf_counter()
                    frame = predict(model, series, origin=origin_local, horizon=horizon)
                    rep.predict_s += time.perf_counter() - t
                except NotEnoughHistory as exc:
                    res.status = COLD
                    res.message = f"not enough history: {int(days)} observed days, need more ({exc})"
                    continue
                except Exception as exc:  # one bad series must not stop the others
                    log.exception("forecast of %s (%s) failed", key.label(), freq)
                    res.status, res.message = FAILED, f"{freq} forecast failed: {exc}"[:500]
                    continue
                rows.extend(self._rows(key, freq, origin, frame, now))
                self._made[(key, freq)] = (origin, id(model))
        t = time.perf_counter()
        rep.rows = self._write(rows, results, sites, now)
        save_models(self.store, fitted)
        rep.write_s = time.perf_counter() - t
        rep.series = len(results)
        for r in results.values():
            rep.by_status[r.status] = rep.by_status.get(r.status, 0) + 1
        rep.seconds = time.perf_counter() - t0
        self.last = rep
        return rep

    def _load_models(self, sites: dict[str, str | None]) -> None:
        """The models a previous process fitted, where their settings and calendar are still this server's."""
        wanted = {"": calendar_key(self.calendar(None))}
        wanted.update({cam: calendar_key(self.calendar(site)) for cam, site in sites.items()})
        loaded = load_models(self.store, wanted, settings_key(ModelSettings()))
        self.models = {**loaded, **self.models}
        self._models_loaded = True
        if loaded:
            log.info("forecast models: %d loaded from the database", len(loaded))

    def _model_cutoff(self, key: SeriesKey, freq: str) -> pd.Timestamp:
        m = self.models.get((key, freq))
        return m.cutoff if m is not None else pd.Timestamp.min

    def _rows(self, key: SeriesKey, freq: str, origin: int, frame: pd.DataFrame, now: datetime) -> list[dict[str, Any]]:
        utc = wall_clock_to_utc(frame, self.tz)
        stamps = utc["ds"].dt.tz_convert(None).to_numpy().astype("datetime64[s]").astype(np.int64).tolist()
        out = []
        for ts, f, lo, hi in zip(stamps, utc["forecast"], utc["lo80"], utc["hi80"], strict=True):
            if ts >= origin:  # the repeated fall-back hour can map a row before the origin
                out.append({
                    "series_kind": key.kind, "camera_id": key.camera_id, "series_id": key.series_id,
                    "direction": key.direction, "freq": freq, "ds": ts, "forecast": float(f),
                    "lo80": float(lo), "hi80": float(hi), "origin": origin, "made_at": now,
                })
        return out

    # --- storage ------------------------------------------------------------------------------------

    def _write(
        self, rows: list[dict[str, Any]], results: dict[SeriesKey, SeriesResult], sites: dict[str, str | None],
        now: datetime,
    ) -> int:
        """Upsert the forecasts and the series' status, prune old forecasts: one transaction."""
        ft = table_of(ForecastRow)
        st = table_of(ForecastSeriesRow)
        status_rows = [
            {"series_kind": k.kind, "camera_id": k.camera_id, "series_id": k.series_id, "direction": k.direction,
             "site_id": sites.get(k.camera_id), "status": r.status, "observed_days": round(r.observed_days, 2),
             "needed_days": self.cfg.min_history_days, "message": r.message, "refreshed_at": now}
            for k, r in sorted(results.items())
        ]
        horizon = now - timedelta(days=self.cfg.keep_days)
        with self.store.db.session.begin() as s:
            if rows:
                self._upsert(s, ft, rows, _FORECAST_PK, ("forecast", "lo80", "hi80", "origin", "made_at"))
            if status_rows:
                self._upsert(s, st, status_rows, _SERIES_PK,
                             ("site_id", "status", "observed_days", "needed_days", "message", "refreshed_at"))
            s.execute(delete(ft).where(ft.c.ds < int(horizon.timestamp())))
            for k, r in results.items():  # a series that can no longer be forecast keeps no stale future
                if r.status in (COLD, FAILED):
                    s.execute(delete(ft).where(
                        ft.c.series_kind == k.kind, ft.c.camera_id == k.camera_id, ft.c.series_id == k.series_id,
                        ft.c.direction == k.direction, ft.c.ds >= int(now.timestamp()) // 900 * 900))
        return len(rows)

    def _upsert(
        self, s: Any, table: Any, rows: list[dict[str, Any]], pk: tuple[str, ...], sets: tuple[str, ...]
    ) -> None:
        stmt = self.store.db.insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=list(pk), set_={c: stmt.excluded[c] for c in sets})
        for i in range(0, len(rows), 5000):
            s.execute(stmt, rows[i : i + 5000])
