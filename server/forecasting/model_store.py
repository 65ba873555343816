"""Fitted models and history grids in the database, so that a restart does not refit or re-read everything.

Why: fitting every series again takes the refresh budget of a whole day, and reading every line's full
history takes longer than a refresh may; both are what a running server already had. So each fitted model
is stored as it is fitted (``forecast_models``), and each camera's history grid once a local day or when it
was read in full (``forecast_history``); a new process loads them and carries on as the old one would have.
A stored model is reused only with the settings and holiday calendar it was fitted with.

Anything that changes a camera's past (``citywatch import counts``) turns its history rows into marks with
the next generation (``forget_camera``, in the import's own transaction): the refresh then reads that camera
in full again. A refresh saves a grid only under the generation it saw before it read the rollups
(compare-and-set), so an import that commits between a refresh's read and its save is never hidden by a
grid that lacks it.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.orm import Session

from server.forecasting.history import Histories
from server.forecasting.model.forecaster import FittedModel
from server.forecasting.model.persist import calendar_key, dump_model, load_model, settings_key
from server.forecasting.tables import FREQ_SECONDS, ForecastHistoryRow, ForecastModelRow, SeriesKey
from server.storage.models import table_of
from server.storage.store import Store

log = logging.getLogger(__name__)

ModelKey = tuple[SeriesKey, str]


def model_row(key: SeriesKey, freq: str, model: FittedModel, now: datetime,
              data: bytes | None = None) -> dict[str, object]:
    """The ``forecast_models`` row of a fitted model (``data``: its bytes when already dumped)."""
    data = dump_model(model) if data is None else data
    return {
        "series_kind": key.kind, "camera_id": key.camera_id, "series_id": key.series_id, "direction": key.direction,
        "freq": freq, "cutoff": model.cutoff.isoformat(), "calendar": calendar_key(model.calendar),
        "settings": settings_key(model.settings), "fitted_at": now, "model": data,
    }


def save_models(store: Store, rows: list[dict[str, object]]) -> None:
    """Upsert ``model_row`` rows (one small transaction per few rows: a row is a few hundred KB)."""
    table = table_of(ForecastModelRow)
    stmt = store.db.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["series_kind", "camera_id", "series_id", "direction", "freq"],
        set_={c: stmt.excluded[c] for c in ("cutoff", "calendar", "settings", "fitted_at", "model")})
    for i in range(0, len(rows), 50):
        with store.db.session.begin() as s:
            s.execute(stmt, rows[i : i + 50])


def load_models(store: Store, wanted: dict[str, str], settings: str) -> dict[ModelKey, FittedModel]:
    """The stored models whose settings are ``settings`` and whose calendar is ``wanted[camera_id]`` (a
    camera missing from ``wanted`` takes ``wanted[""]``); others are left for the refresh to refit."""
    out: dict[ModelKey, FittedModel] = {}
    skipped = 0
    t = table_of(ForecastModelRow)
    with store.db.session() as s:
        result = s.execute(select(t.c.series_kind, t.c.camera_id, t.c.series_id, t.c.direction, t.c.freq,
                                  t.c.calendar, t.c.settings, t.c.model).execution_options(yield_per=100))
        for kind, cam, sid, direction, freq, cal, sett, data in result:
            if sett != settings or cal != wanted.get(cam, wanted.get("")):
                skipped += 1
                continue
            try:
                out[(SeriesKey(kind, cam, sid, direction), freq)] = load_model(data)
            except ValueError as exc:
                skipped += 1
                log.warning("stored forecast model of %s %s %s %s unusable (%s): refitting it", kind, cam, sid,
                            direction, exc)
    if skipped:
        log.info("forecast models: %d stored with other settings or calendars, refitted when due", skipped)
    return out


# --- history grids --------------------------------------------------------------------------------


def _pack(h: Histories, camera_id: str) -> bytes:
    keys = sorted(k for k in h.values if k.camera_id == camera_id)
    header = np.array(json.dumps([[k.kind, k.series_id, k.direction] for k in keys]))
    buf = io.BytesIO()  # arr_0: the series keys, arr_1: coverage, arr_2…: the series in that order
    np.savez_compressed(buf, header, h.coverage.get(camera_id, np.zeros(h.n)), *(h.values[k] for k in keys))
    return buf.getvalue()


def _unpack(data: bytes, camera_id: str) -> tuple[dict[SeriesKey, np.ndarray], np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        keys = [SeriesKey(kind, camera_id, sid, direction) for kind, sid, direction in json.loads(str(z["arr_0"]))]
        return {k: z[f"arr_{i + 2}"] for i, k in enumerate(keys)}, z["arr_1"]


def history_generations(store: Store, freq: str) -> dict[str, int]:
    """Each camera's stored generation of ``freq`` (marks included): what a save must still find."""
    t = table_of(ForecastHistoryRow)
    with store.db.session() as s:
        return dict(s.execute(select(t.c.camera_id, t.c.generation).where(t.c.freq == freq)).all())


def save_histories(store: Store, freq: str, h: Histories, cameras: Iterable[str], now: datetime,
                   seen: dict[str, int]) -> set[str]:
    """Store the grid of each of ``cameras`` (every series of the camera in ``h`` and its coverage) where its
    row still has the generation in ``seen`` (read before ``h`` was), or has no row when ``seen`` has none;
    returns the cameras not stored (an import changed their past meanwhile: they stay marked)."""
    cams = sorted(set(cameras))
    if not cams:
        return set()
    table = table_of(ForecastHistoryRow)
    rows = {cam: {"freq": freq, "camera_id": cam, "start": h.start, "n": h.n, "saved_at": now,
                  "data": _pack(h, cam), "generation": seen.get(cam, 0)} for cam in cams}
    stmt = update(table).where(and_(table.c.freq == bindparam("b_freq"), table.c.camera_id == bindparam("b_cam"),
                                    table.c.generation == bindparam("b_gen")))
    stmt = stmt.values(start=bindparam("b_start"), n=bindparam("b_n"), saved_at=bindparam("b_at"),
                       data=bindparam("b_data"))
    insert = store.db.insert(table).on_conflict_do_nothing(index_elements=["freq", "camera_id"])
    saved: set[str] = set()
    for i in range(0, len(cams), 100):
        part = cams[i : i + 100]
        with store.db.session.begin() as s:
            for cam in part:  # one statement each: its row count says whether the grid was stored
                r = rows[cam]
                if cam in seen:
                    done = _rowcount(s.execute(stmt, {"b_freq": freq, "b_cam": cam, "b_gen": r["generation"],
                                            "b_start": r["start"], "b_n": r["n"], "b_at": now,
                                            "b_data": r["data"]}))
                else:
                    done = _rowcount(s.execute(insert, r))
                if done:
                    saved.add(cam)
    lost = set(cams) - saved
    if lost:
        log.info("%s history of %d camera(s) not stored: their past changed while it was read", freq, len(lost))
    return lost


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


def saved_cameras(store: Store, freq: str) -> set[str]:
    """Cameras with a stored grid of ``freq`` (not a mark left by an import)."""
    t = table_of(ForecastHistoryRow)
    with store.db.session() as s:
        return set(s.execute(select(t.c.camera_id).where(t.c.freq == freq, t.c.n > 0)).scalars())


def load_saved_histories(store: Store, freq: str, lo: int, hi: int) -> tuple[Histories, int] | None:
    """The stored grids of ``freq`` moved onto ``[lo, hi)``, and the end of the oldest one (what must be read
    again from the rollups); ``None`` when nothing is stored. A grid starting after ``lo`` (a longer history
    configured since) is left out: its camera is then read in full."""
    step = FREQ_SECONDS[freq]
    h = Histories(lo, step, (hi - lo) // step, {}, {})
    end: int | None = None
    t = table_of(ForecastHistoryRow)
    with store.db.session() as s:
        for cam, start, n, data in s.execute(select(t.c.camera_id, t.c.start, t.c.n, t.c.data)
                                              .where(t.c.freq == freq)):
            if start > lo or n == 0:  # n 0: a mark left by an import (or a grid from a longer history)
                continue
            values, coverage = _unpack(data, cam)
            if len(coverage) != n or any(len(v) != n for v in values.values()):
                log.warning("stored %s history of camera %s is damaged: reading it again", freq, cam)
                continue
            h.update(Histories(start, step, n, values, {cam: coverage}).regrid(lo, hi))
            end = start + n * step if end is None else min(end, start + n * step)
    return None if end is None else (h, end)


def forget_camera(store: Store, s: Session, camera_id: str, now: datetime) -> None:
    """Mark a camera's stored history grids as outdated (its past changed, in the caller's transaction): the
    next refresh reads it in full, and a refresh that read it before cannot store its grid over the mark."""
    table = table_of(ForecastHistoryRow)
    stmt = store.db.insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=["freq", "camera_id"], set_={
        "start": 0, "n": 0, "saved_at": now, "data": b"", "generation": table.c.generation + 1})
    s.execute(stmt, [{"freq": freq, "camera_id": camera_id, "start": 0, "n": 0, "saved_at": now, "data": b"",
                      "generation": 1} for freq in FREQ_SECONDS])
