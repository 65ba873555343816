"""One forecast refresh for N line/direction series (default 500) on SQLite and PostgreSQL.

History: the shared I-94 hourly series (../shared/data/metro_i94), a different 400-day stretch per
series (the last 84 days also as 15-minute buckets: the server's default history lengths), scaled to a
city street (0.05-0.5x) with 10 % multiplicative noise; 15-minute buckets split each hour with a random
within-hour shape and Poisson noise; hours missing in the source stay unobserved (missing, not zero).
Rows go straight into the tables a refresh reads (flow_1h, flow_15m, observed_1h, observed_15m) in
bulk, as ingest would have left them; two series (in/out) per camera.

What is timed:
- the steady refresh: every series predicted from its model of the day, with the history cached by the
  previous refresh and its last 24 h re-read (what runs every 15 minutes), at the top of an hour (hourly
  and 15-minute forecasts) and mid-hour (15-minute only);
- the first refresh ever (a fresh install or an upgrade to forecasting): no stored grids, no models; every
  history read in full and stored, ``fit_budget_s`` of fits, the other series pending;
- the first refresh after a restart: a new refresher on the same database, at the next top of the hour,
  loading the stored models and history grids and re-reading the recent end (nothing may be fitted);
- fits: a sample of real fits per frequency; the daily refit cost = N x (hourly + 15-min fit), spread
  over the day's refreshes by ``server.forecasts.fit_budget_s``. All series share two of these models
  (one per frequency, stored for every series as a refresh would have): a prediction costs the same
  whichever model makes it.

    python bench/forecast_refresh.py                    # 500 series, SQLite and PostgreSQL
    python bench/forecast_refresh.py --series 500 --db postgresql --fits 1

Measured 2026-12-07, 500 series, PostgreSQL, the shared 2-core machine at load average 6-7, one after the
other: before (models and grids only in memory, pandas frames built from SQLAlchemy rows, LightGBM predicting
on its thread pool): top of the hour 73.0 s (predict 57.8), mid-hour 19.0 s, full history read 185.8 s, so
the first refresh after a restart >= 259 s and even then without models (pending). After: top of the hour
8.6 s (predict 5.7), mid-hour 4.2 s, first refresh after a restart 25.5 s (models loaded 9.1, history read
0.6, predict 9.8, write 3.2); the first refresh ever (full read, grids stored) 69.9 s.

Measured 2026-12-07 later, 500 series, PostgreSQL, load average 7-9, `--series 500 --db postgresql --fits 1`,
this script on main's code and then on the history read that lets the database aggregate each series into
one text (one row per series instead of a Python row per bucket): the first refresh ever 113.9 s (history
read and stored 99.4, fit 12.9) -> 47.3 s (read and stored 33.5, fit 12.1); top of the hour 15.4 -> 18.1 s,
mid-hour 9.2 -> 6.4 s, first refresh after a restart 41.5 -> 22.1 s (models loaded 26.7 -> 12.3): those
three do not read history in full, their changes are the box's load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from citywatch.config import CitywatchConfig  # noqa: E402
from server.forecasting.model.forecaster import fit  # noqa: E402
from server.forecasting.model.persist import dump_model  # noqa: E402
from server.forecasting.model.series import to_wall_clock  # noqa: E402
from server.forecasting.model_store import model_row, save_models  # noqa: E402
from server.forecasting.refresh import ForecastRefresher  # noqa: E402
from server.forecasting.tables import LINE, SeriesKey  # noqa: E402
from server.storage.models import FLOW_TABLES, OBSERVED_TABLES  # noqa: E402
from server.storage.rollups import pg_execute_columns, pg_unnest_insert  # noqa: E402
from server.storage.store import Store  # noqa: E402

PG_URL = os.environ.get("CITYWATCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SHARED = Path(os.environ.get("CITYWATCH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
METRO = SHARED / "data/metro_i94/metro_interstate_traffic_volume_2012-10_2017-09.csv"
HANOI = timezone(timedelta(hours=7))
NOW = datetime(2026, 3, 2, 10, 10, tzinfo=HANOI)  # a Monday morning
H_DAYS, Q_DAYS = 400, 84  # the default server.forecasts.history_days and history_days_15min


def metro() -> pd.Series:
    df = pd.read_csv(METRO, usecols=["date_time", "traffic_volume"])
    s = df.groupby("date_time")["traffic_volume"].first()
    s.index = pd.to_datetime(s.index)
    return s.sort_index()


def synth(n_series: int, seed: int = 1) -> tuple[dict[str, list], dict[str, list]]:
    """Column lists for the four tables."""
    rng = np.random.default_rng(seed)
    src = metro()
    src = src[src.index >= pd.Timestamp("2015-07-01")]  # the long 2014-15 gap left out
    hours = pd.date_range(src.index.min().normalize(), src.index.max().normalize(), freq="h")
    full = src.reindex(hours).to_numpy(dtype=float)
    end = int(NOW.replace(hour=0, minute=0).timestamp())
    start = end - H_DAYS * 86400
    n_h = H_DAYS * 24
    q_from = (H_DAYS - Q_DAYS) * 24  # 15-minute rows for the last Q_DAYS only
    h_starts = start + 3600 * np.arange(n_h)
    flow: dict[str, dict[str, list[Any]]] = {
        res: {k: [] for k in ("camera_id", "bucket", "line_id", "direction", "n_car")} for res in ("1h", "15m")}
    obs: dict[str, dict[str, list[Any]]] = {"1h": {k: [] for k in ("camera_id", "bucket", "observed_s")},
           "15m": {k: [] for k in ("camera_id", "bucket", "observed_s")}}
    n_cams = (n_series + 1) // 2
    for c in range(n_cams):
        cam = f"cam-{c:04d}"
        seen = np.ones(n_h, dtype=bool)
        for d, direction in enumerate(("in", "out")):
            if 2 * c + d >= n_series:
                break
            # a stretch starting on a Monday, so weekdays line up with the target's
            first = int(rng.integers(0, (len(full) - n_h) // 168)) * 168
            first += (7 - hours[first].day_of_week) % 7 * 24
            v = full[first : first + n_h] * rng.uniform(0.05, 0.5) * rng.lognormal(0, 0.1, n_h)
            seen &= ~np.isnan(v)
            v = np.nan_to_num(v)
            ok = ~np.isnan(full[first : first + n_h])
            counts = np.rint(v[ok]).astype(int)
            flow["1h"]["camera_id"] += [cam] * int(ok.sum())
            flow["1h"]["bucket"] += h_starts[ok].tolist()
            flow["1h"]["line_id"] += ["l1"] * int(ok.sum())
            flow["1h"]["direction"] += [direction] * int(ok.sum())
            flow["1h"]["n_car"] += counts.tolist()
            recent = ok.copy()
            recent[:q_from] = False
            qc = np.rint(v[recent]).astype(int)
            shape = rng.dirichlet([8, 8, 8, 8], size=len(qc))
            q = rng.poisson(shape * qc[:, None])
            flow["15m"]["camera_id"] += [cam] * q.size
            flow["15m"]["bucket"] += (h_starts[recent][:, None] + 900 * np.arange(4)).ravel().tolist()
            flow["15m"]["line_id"] += ["l1"] * q.size
            flow["15m"]["direction"] += [direction] * q.size
            flow["15m"]["n_car"] += q.ravel().tolist()
        obs["1h"]["camera_id"] += [cam] * int(seen.sum())
        obs["1h"]["bucket"] += h_starts[seen].tolist()
        obs["1h"]["observed_s"] += [3600.0] * int(seen.sum())
        seen_q = seen.copy()
        seen_q[:q_from] = False
        q_starts = (h_starts[seen_q][:, None] + 900 * np.arange(4)).ravel()
        obs["15m"]["camera_id"] += [cam] * q_starts.size
        obs["15m"]["bucket"] += q_starts.tolist()
        obs["15m"]["observed_s"] += [900.0] * q_starts.size
    return flow, obs  # type: ignore[return-value]


def load(store: Store, flow: dict, obs: dict) -> None:
    """Bulk rows into the rollups (PostgreSQL: one binary-array insert per table; SQLite: executemany)."""
    with store.db.session.begin() as s:
        for tables, data in ((FLOW_TABLES, flow), (OBSERVED_TABLES, obs)):
            for res, cols in data.items():
                table = cast(Table, tables[res])
                n = len(cols["bucket"])
                full = {c.name: cols.get(c.name) for c in table.columns}
                for c in table.columns:
                    if full[c.name] is None:
                        full[c.name] = [0.0 if "sum" in c.name or c.name == "observed_s" else 0] * n
                if store.dialect == "postgresql":
                    pg_execute_columns(s, pg_unnest_insert(table, ""), full)
                else:
                    sql = f"INSERT INTO {table.name} ({', '.join(full)}) VALUES ({', '.join('?' * len(full))})"
                    s.connection().exec_driver_sql(sql, list(zip(*full.values(), strict=True)))


def bench(store: Store, n_series: int, fits: int) -> dict[str, float]:
    t = time.perf_counter()
    flow, obs = synth(n_series)
    load(store, flow, obs)
    seed_s = time.perf_counter() - t
    cfg = CitywatchConfig()
    r = ForecastRefresher(store, cfg)
    # real fits on a sample of series, per frequency; two of them serve every series of the timed refresh
    fit_s: dict[str, list[float]] = {"h": [], "15min": []}
    shared = {}
    before = NOW - timedelta(minutes=15)  # the previous refresh read the whole history (once a day)
    # the first refresh ever (a fresh install or an upgrade): no stored grids, no models; it reads every
    # history in full, stores the grids and fits within its budget (the other series are pending)
    ever = r.refresh(NOW - timedelta(minutes=30))
    full_read_s = ever.read_s
    for freq in ("h", "15min"):
        step = 3600 if freq == "h" else 900
        origin = int(before.timestamp()) // step * step
        hist = r.histories(freq, origin)
        cutoff = pd.Timestamp(NOW.replace(tzinfo=None)).normalize()
        for key in sorted(hist.values)[:fits]:
            series = to_wall_clock(hist.series(key), cfg.server.timezone)
            t = time.perf_counter()
            shared[freq] = fit(series, cutoff=cutoff, freq=freq, calendar=r.calendar(None))
            fit_s[freq].append(time.perf_counter() - t)
    rows = []
    data = {freq: dump_model(m) for freq, m in shared.items()}
    for i in range(n_series):
        key = SeriesKey(LINE, f"cam-{i // 2:04d}", "l1", ("in", "out")[i % 2])
        for freq in ("h", "15min"):
            r.models[(key, freq)] = shared[freq]
            rows.append(model_row(key, freq, shared[freq], NOW, data[freq]))
    save_models(store, rows)  # what the refreshes that fitted them would have stored
    r.refresh(before)  # the previous refresh (this process's first: it loads the stored models)
    cpu = time.process_time()
    rep = r.refresh(NOW)  # the first refresh of an hour: hourly and 15-minute forecasts
    cpu = time.process_time() - cpu
    assert rep.fitted == 0, rep
    mid = r.refresh(NOW + timedelta(minutes=15))  # three in four: the hourly forecasts stand
    assert mid.skipped == n_series, mid
    restarted = ForecastRefresher(store, cfg)  # a new process on the same database
    first = restarted.refresh(NOW + timedelta(minutes=50))  # at the top of the next hour: both frequencies
    assert first.fitted == 0 and first.by_status.get("ok", 0) == n_series, first
    return {
        "seed_s": seed_s, "full_read_s": full_read_s, "refresh_s": rep.seconds, "refresh_cpu_s": cpu,
        "read_s": rep.read_s, "mid_s": mid.seconds,
        "predict_s": rep.predict_s,
        "write_s": rep.write_s, "rows": rep.rows, "ok": rep.by_status.get("ok", 0), "series": rep.series,
        "fit_h_s": statistics.median(fit_s["h"]), "fit_15min_s": statistics.median(fit_s["15min"]),
        "restart_s": first.seconds, "restart_load_s": first.load_s, "restart_read_s": first.read_s,
        "restart_predict_s": first.predict_s, "restart_write_s": first.write_s,
        "ever_s": ever.seconds, "ever_fit_s": ever.fit_s, "ever_fitted": ever.fitted, "ever_write_s": ever.write_s,
        "ever_pending": ever.by_status.get("pending", 0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=500, help="line/direction series")
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--fits", type=int, default=3, help="real fits timed per frequency")
    args = ap.parse_args()
    for db in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        if db == "sqlite":
            tmp = tempfile.TemporaryDirectory()
            store = Store(f"sqlite:///{tmp.name}/bench.sqlite")
        else:
            schema = f"bench_fc_{uuid.uuid4().hex[:8]}"
            store = Store(PG_URL, schema=schema)
        try:
            f = bench(store, args.series, args.fits)
        finally:
            store.close()
            if db == "postgresql":
                eng = create_engine(PG_URL)
                with eng.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                eng.dispose()
        daily = args.series * (f["fit_h_s"] + f["fit_15min_s"])
        print(f"{db}: {f['series']} series ({f['ok']} forecast, {f['rows']} rows): refresh {f['refresh_s']:.1f} s "
              f"(read {f['read_s']:.1f}, predict {f['predict_s']:.1f}, write {f['write_s']:.1f}; "
              f"CPU of this process {f['refresh_cpu_s']:.1f} s); a mid-hour refresh {f['mid_s']:.1f} s; "
              f"seeding {f['seed_s']:.0f} s", flush=True)
        print(f"{db}: first refresh ever (no stored grids or models) {f['ever_s']:.1f} s (history read and stored "
              f"{f['full_read_s']:.1f}, fit {f['ever_fit_s']:.1f} for {f['ever_fitted']} models, write "
              f"{f['ever_write_s']:.1f}; {f['ever_pending']} series pending their first model)", flush=True)
        print(f"{db}: first refresh after a restart {f['restart_s']:.1f} s (models loaded {f['restart_load_s']:.1f}, "
              f"history read {f['restart_read_s']:.1f}, predict {f['restart_predict_s']:.1f}, "
              f"write {f['restart_write_s']:.1f})", flush=True)
        print(f"{db}: fit per series {f['fit_h_s']:.2f} s hourly + {f['fit_15min_s']:.2f} s 15-min -> daily refit "
              f"{daily:.0f} s = {daily / 96:.1f} s per 15-min refresh (fit_budget_s 12)", flush=True)


if __name__ == "__main__":
    main()
