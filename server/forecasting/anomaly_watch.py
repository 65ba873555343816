"""Unusual versus typical: ``flow_anomaly`` incidents when a line's observed flow stays far outside its
forecast interval, closed when the flow is typical again.

Why server-side incidents: no edge sees a line's history, so the server opens the incident itself,
straight into the incident store (same row, same operator ack/resolve flow, same live alert and
notifications as the edge's incidents); the numbers behind it (expected, observed, the window) go to
``flow_anomalies``.

A camera problem is not a traffic anomaly: buckets the camera did not observe (coverage below
``min_coverage``) are not judged, and nothing is judged while the camera's health is not ``ok``
(degraded, stale, offline, tamper signs): a drop to zero from a blind camera opens nothing.
Debounce: the core's detector only reports runs of several buckets; an incident opens when such a run
reaches the end of the window (the flow is unusual now) and closes once the last
``anomaly_close_after_min`` minutes were all observed, judged and typical.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from citywatch.config import CitywatchConfig
from citywatch.contract import utcnow
from server.camera_health import sensing_health
from server.forecasting.history import load_histories
from server.forecasting.model.anomaly import Anomaly, detect_anomalies
from server.forecasting.tables import FlowAnomalyRow, ForecastRow, ForecastSeriesRow, SeriesKey
from server.storage.incidents import IncidentRow, IncidentStore, record
from server.storage.models import table_of
from server.storage.store import Store

log = logging.getLogger(__name__)

INCIDENT_TYPE = "flow_anomaly"
STEP = 900  # anomalies are judged on 15-minute buckets


@dataclass
class CheckReport:
    judged: int = 0
    opened: int = 0
    updated: int = 0
    closed: int = 0
    camera_not_ok: int = 0


def _when(ts: int, tz: Any) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%H:%M")


class FlowAnomalyWatch:
    """Compares the recent observed flow of every forecast series with its stored 15-minute forecasts."""

    def __init__(self, store: Store, config: CitywatchConfig) -> None:
        self.store = store
        self.config = config
        self.cfg = config.server.forecasts
        self.tz = store.clock.tz

    def check(self, now: datetime | None = None) -> CheckReport:
        now = now or utcnow()
        end = int(now.timestamp()) // STEP * STEP
        n = self.cfg.anomaly_window_min * 60 // STEP
        lo = end - n * STEP
        rep = CheckReport()
        with self.store.db.session() as s:
            series = {r.key(): r for r in s.scalars(select(ForecastSeriesRow))}
            ft = table_of(ForecastRow)
            fc: dict[SeriesKey, list[tuple[int, float, float, float]]] = {}
            for r in s.execute(
                select(ft.c.series_kind, ft.c.camera_id, ft.c.series_id, ft.c.direction, ft.c.ds, ft.c.forecast,
                       ft.c.lo80, ft.c.hi80)
                .where(ft.c.freq == "15min", ft.c.ds >= lo, ft.c.ds < end).order_by(ft.c.ds)
            ):
                fc.setdefault(SeriesKey(*r[:4]), []).append((r[4], r[5], r[6], r[7]))
        if not series:
            return rep
        hist = load_histories(self.store, lo, end, STEP, classes=self.cfg.classes,
                              min_coverage=self.cfg.min_coverage, lanes=self.cfg.lanes, known=series)
        health = sensing_health(self.store, self.config, now)
        idx = pd.to_datetime(lo + np.arange(n) * STEP, unit="s", utc=True)
        close_n = self.cfg.anomaly_close_after_min * 60 // STEP
        for key, row in sorted(series.items()):
            rows = fc.get(key)
            if not rows or len(rows) < n:
                continue  # no forecast for the whole window (cold start, new series): nothing to judge
            frame = pd.DataFrame(rows, columns=["ds", "forecast", "lo80", "hi80"])
            frame["ds"] = pd.to_datetime(frame["ds"], unit="s", utc=True)
            observed = pd.Series(hist.values[key], index=idx)
            healthy = health.get(key.camera_id, "unknown") == "ok"
            if not healthy:
                rep.camera_not_ok += 1
            camera_ok = pd.Series(healthy & ~np.isnan(hist.values[key]), index=idx)
            found = detect_anomalies(observed, frame, camera_ok)
            rep.judged += 1
            now_unusual = [a for a in found if int(a.end.timestamp()) == end]
            if row.anomaly_incident_id is None:
                if now_unusual:
                    self._open(key, row, now_unusual[-1], now)
                    rep.opened += 1
                continue
            if now_unusual:
                self._extend(row.anomaly_incident_id, now_unusual[-1], frame, observed, now)
                rep.updated += 1
                continue
            last_end = max((int(a.end.timestamp()) for a in found), default=lo)
            tail = camera_ok.to_numpy()[-close_n:]
            if end - last_end >= close_n * STEP and tail.all():
                self._close(key, row.anomaly_incident_id, end, now)
                rep.closed += 1
        return rep

    # --- incident rows ---------------------------------------------------------------------------

    def _message(self, key: SeriesKey, kind: str, a0: int, a1: int, exp: float, lo: float, hi: float,
                 obs: float) -> str:
        what = "drop" if kind == "drop" else "surge"
        where = f"lane {key.series_id}" if key.kind == "lane" else f"line {key.series_id} ({key.direction})"
        return (f"Flow {what} on {where}: {obs:.0f} vehicles observed vs {exp:.0f} expected "
                f"(80 % interval {lo:.0f}–{hi:.0f}), {_when(a0, self.tz)}–{_when(a1, self.tz)}")[:500]

    def _open(self, key: SeriesKey, series: ForecastSeriesRow, a: Anomaly, now: datetime) -> None:
        a0, a1 = int(a.start.timestamp()), int(a.end.timestamp())
        with self.store.db.session() as s:
            lo80, hi80 = self._band(s, key, a0, a1)
        iid = str(uuid.uuid4())
        started = datetime.fromtimestamp(a0, timezone.utc)
        msg = self._message(key, a.kind, a0, a1, a.expected, lo80, hi80, a.observed)
        with self.store.db.session.begin() as s:
            s.add(FlowAnomalyRow(
                incident_id=iid, series_kind=key.kind, camera_id=key.camera_id, series_id=key.series_id,
                direction=key.direction, kind=a.kind, window_start=a0, window_end=a1, expected=a.expected,
                lo80=lo80, hi80=hi80, observed=a.observed, opened_at=now,
            ))
            row = IncidentRow(
                incident_id=iid, camera_id=key.camera_id, site_id=series.site_id or self.config.site,
                incident_type=INCIDENT_TYPE, state="open", severity=self.cfg.anomaly_severity, confidence=0.8,
                lane_id=key.series_id if key.kind == "lane" else None, zone_id=None, track_ids=json.dumps([]),
                started_at=started, ended_at=None, snapshot_id=None, message=msg, updates=0, last_seq=0,
                received_at=now, updated_at=now, status="new", escalation_level=0, notified_level=-1,
            )
            s.add(row)
            st = s.get(ForecastSeriesRow, (key.kind, key.camera_id, key.series_id, key.direction),
                       with_for_update=True)
            assert st is not None
            st.anomaly_incident_id = iid
            s.flush()
            IncidentStore.announce(s, [record(row)])  # live alert and notifications after commit
        log.warning("flow anomaly opened: %s", msg)

    @staticmethod
    def _band(s: Any, key: SeriesKey, a0: int, a1: int) -> tuple[float, float]:
        """The window's interval as the sum of its buckets' bounds (what the planner chart shows)."""
        ft = table_of(ForecastRow)
        lo, hi = s.execute(
            select(func.sum(ft.c.lo80), func.sum(ft.c.hi80)).where(
                ft.c.series_kind == key.kind, ft.c.camera_id == key.camera_id, ft.c.series_id == key.series_id,
                ft.c.direction == key.direction, ft.c.freq == "15min", ft.c.ds >= a0, ft.c.ds < a1)
        ).one()
        return float(lo or 0.0), float(hi or 0.0)

    def _extend(self, iid: str, a: Anomaly, frame: pd.DataFrame, observed: pd.Series, now: datetime) -> None:
        """The anomaly goes on: add the buckets beyond its recorded window to its sums."""
        with self.store.db.session.begin() as s:
            fa = s.get(FlowAnomalyRow, iid, with_for_update=True)
            inc = s.get(IncidentRow, iid, with_for_update=True)
            if fa is None or inc is None:
                return
            new_end = int(a.end.timestamp())
            if new_end <= fa.window_end:
                return
            ds = frame["ds"].map(lambda t: int(t.timestamp()))
            part = frame[(ds >= fa.window_end) & (ds < new_end)]
            key = SeriesKey(fa.series_kind, fa.camera_id, fa.series_id, fa.direction)
            fa.expected += float(part["forecast"].sum())
            fa.lo80 += float(part["lo80"].sum())
            fa.hi80 += float(part["hi80"].sum())
            obs = observed[(observed.index >= pd.Timestamp(fa.window_end, unit="s", tz="UTC"))
                           & (observed.index < pd.Timestamp(new_end, unit="s", tz="UTC"))]
            fa.observed += float(np.nansum(obs.to_numpy()))
            fa.window_end = new_end
            inc.message = self._message(key, fa.kind, fa.window_start, fa.window_end, fa.expected, fa.lo80,
                                        fa.hi80, fa.observed)
            inc.updates += 1
            inc.updated_at = now

    def _close(self, key: SeriesKey, iid: str, end: int, now: datetime) -> None:
        with self.store.db.session.begin() as s:
            inc = s.get(IncidentRow, iid, with_for_update=True)
            fa = s.get(FlowAnomalyRow, iid, with_for_update=True)
            if inc is not None and inc.state != "closed":
                inc.state, inc.ended_at, inc.updated_at = "closed", datetime.fromtimestamp(end, timezone.utc), now
            if fa is not None:
                fa.closed_at = now
            st = s.get(ForecastSeriesRow, (key.kind, key.camera_id, key.series_id, key.direction),
                       with_for_update=True)
            if st is not None:
                st.anomaly_incident_id = None
        log.info("flow anomaly %s closed: %s typical again", iid, key.label())
