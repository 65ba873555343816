"""Watermarks: a camera's ``committed_seq`` is the highest N with seqs 1..N all filled (an event stored
with that seq, or the seq resolved by a dead letter). Ingest confirms it to the edge, which may then
drop those events; a filled seq above it means the ones in between never arrived (a gap)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import TextClause, select, text
from sqlalchemy.orm import Session

from citywatch.contract import MAX_SEQ
from server.storage.database import Database
from server.storage.models import CameraRow

log = logging.getLogger(__name__)

_WALK_CHUNK = 1000

#: ``(committed_seq, lowest filled seq above it or None)`` after a walk.
Mark = tuple[int, int | None]

#: A camera's filled seqs above ``:n`` (stored events and resolved seqs), lowest first, ``:lim`` at most;
#: each side limited on its own (index range scans), in subqueries as SQLite wants compound members plain.
_FILLED_ABOVE = text(
    "SELECT seq FROM (SELECT DISTINCT seq FROM events WHERE camera_id = :c AND seq > :n ORDER BY seq LIMIT :lim) a "
    "UNION SELECT seq FROM (SELECT seq FROM resolved_seqs WHERE camera_id = :c AND seq > :n "
    "ORDER BY seq LIMIT :lim) b ORDER BY seq LIMIT :lim"
)
_FIRST_ABOVE = text(
    "SELECT MIN(u.seq) FROM (SELECT MIN(seq) AS seq FROM events WHERE camera_id = :c AND seq > :n "
    "UNION ALL SELECT MIN(seq) FROM resolved_seqs WHERE camera_id = :c AND seq > :n) u"
)
_PRESENT_UP_TO = text(
    "SELECT COUNT(*) FROM (SELECT seq FROM events WHERE camera_id = :c AND seq > :n AND seq <= :f "
    "UNION SELECT seq FROM resolved_seqs WHERE camera_id = :c AND seq > :n AND seq <= :f) u"
)


class Watermarks:
    """Walks of the locked camera rows' watermarks (the caller holds the rows: ``Cameras``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def committed_seqs(self) -> dict[str, int]:
        with self.db.session() as s:
            return {cid: int(seq) for cid, seq in s.execute(select(CameraRow.camera_id, CameraRow.committed_seq))}

    def first_seq_above(self, camera_id: str, seq: int) -> int | None:
        """The lowest filled seq above ``seq`` (None: nothing above): ``seq + 1`` up to it is a gap."""
        with self.db.session() as s:
            return self.first_above(s, camera_id, seq)

    @staticmethod
    def first_above(s: Session, camera_id: str, seq: int) -> int | None:
        v = s.scalar(_FIRST_ABOVE, {"c": camera_id, "n": seq})
        return int(v) if v is not None else None

    def walk(self, s: Session, cam: CameraRow, floor: int | None) -> Mark:
        """Advance the locked ``cam`` row's watermark; returns ``(committed, lowest filled seq above it)``.

        ``floor`` (outbox_first_seq - 1 from a status event) lifts the watermark over events the edge
        no longer keeps: they were committed before, or are lost for good (logged as a warning)."""
        camera_id = cam.camera_id
        n = start = cam.committed_seq
        if floor is not None and floor > n:
            present = s.scalar(_PRESENT_UP_TO, {"c": camera_id, "n": n, "f": floor})
            missing = (floor - n) - int(present or 0)
            if missing > 0:
                log.warning(
                    "camera %s: edge outbox starts at seq %d; %d event(s) between %d and %d were never "
                    "received and are skipped",
                    camera_id,
                    floor + 1,
                    missing,
                    n + 1,
                    floor,
                )
            n = floor
        above: int | None = None
        while True:
            seqs = s.scalars(_FILLED_ABOVE, {"c": camera_id, "n": n, "lim": _WALK_CHUNK}).all()
            contiguous = True
            for q in seqs:
                if q != n + 1:
                    contiguous = False
                    above = int(q)
                    break
                n = q
            if not contiguous or len(seqs) < _WALK_CHUNK:
                break
        if n != start:
            cam.committed_seq = n
        return n, above

    def walk_many(self, s: Session, cams: Sequence[tuple[CameraRow, int | None]]) -> dict[str, Mark]:
        """:meth:`walk` for many locked cameras, with one query for all of them in the common case.

        The query (:meth:`_window_query`) finds each camera's run in ``(committed, committed +
        _WALK_CHUNK]``; only a camera whose window is full, whose gap reaches past its window, or that
        has a floor above its watermark needs a query of its own.
        """
        out: dict[str, Mark] = {}
        quick: list[CameraRow] = []
        for cam, floor in cams:
            if floor is not None and floor > cam.committed_seq:
                out[cam.camera_id] = self.walk(s, cam, floor)
            else:
                quick.append(cam)
        if not quick:
            return out
        sql, params = self._window_query([(c.camera_id, c.committed_seq) for c in quick])
        found = {row[0]: row[1:] for row in s.execute(sql, params)}
        for cam in quick:
            camera_id = cam.camera_id
            start = cam.committed_seq
            run_end, above, top = found.get(camera_id, (None, None, None))
            n = start if run_end is None else int(run_end)
            if n != start:
                cam.committed_seq = n
            if above is None and n == start + _WALK_CHUNK:  # a full window: walk on from there
                out[camera_id] = self.walk(s, cam, None)
                continue
            if above is None and top is not None and top > n:  # the gap reaches past the window
                above = self.first_above(s, camera_id, n)
            out[camera_id] = (n, None if above is None else int(above))
        return out

    def _window_query(self, marks: list[tuple[str, int]]) -> tuple[TextClause, dict[str, Any]]:
        """One row per camera: ``(camera_id, run_end, above, top)``.

        In each camera's window ``(n, n + _WALK_CHUNK]`` above its watermark ``n``, ``seq - dense_rank``
        is ``n`` along the contiguous run from ``n + 1`` and larger after its first gap (a seq stored
        twice ranks once): ``run_end`` is where the run ends, ``above`` the first seq after the gap
        (both NULL when absent); ``top`` is the camera's highest stored seq.
        """
        params: dict[str, Any]
        if self.db.dialect == "postgresql":
            marks_cte = "SELECT * FROM unnest(CAST(:cams AS varchar[]), CAST(:marks AS bigint[])) AS w(camera_id, n)"
            params = {"cams": [m[0] for m in marks], "marks": [m[1] for m in marks]}
            # a watermark near 2^63 - 1 must not overflow bigint in n + window
            window = "{t}.camera_id = w.camera_id AND {t}.seq > w.n AND {t}.seq <= LEAST(w.n, :top_n) + :window"
            params["top_n"] = MAX_SEQ - _WALK_CHUNK

            def source(table: str) -> str:  # LATERAL with LIMIT (never pulled up into a join): one range scan
                cond = window.format(t="e")
                return (
                    f"SELECT w.camera_id, w.n, e.seq FROM w CROSS JOIN LATERAL "
                    f"(SELECT e.seq FROM {table} e WHERE {cond} ORDER BY e.seq LIMIT :window) e"
                )
        else:
            marks_cte = (
                "SELECT json_extract(value, '$[0]') AS camera_id, json_extract(value, '$[1]') AS n "
                "FROM json_each(:marks)"
            )
            params = {"marks": json.dumps(marks)}
            window = "{t}.camera_id = w.camera_id AND {t}.seq > w.n AND {t}.seq <= w.n + :window"  # SQLite: no overflow

            def source(table: str) -> str:  # SQLite loops over w with the (camera_id, seq) index
                return f"SELECT w.camera_id, w.n, e.seq FROM w JOIN {table} e ON {window.format(t='e')}"

        params["window"] = _WALK_CHUNK
        sql = text(
            f"WITH w AS ({marks_cte}), "
            f"f AS ({source('events')} UNION ALL {source('resolved_seqs')}), "
            "r AS (SELECT camera_id, seq, seq - n - DENSE_RANK() OVER (PARTITION BY camera_id ORDER BY seq) AS g "
            "      FROM f), "
            "runs AS (SELECT camera_id, MAX(CASE WHEN g = 0 THEN seq END) AS run_end, "
            "         MIN(CASE WHEN g > 0 THEN seq END) AS above FROM r GROUP BY camera_id) "
            "SELECT w.camera_id, runs.run_end, runs.above, "
            "       (SELECT MAX(t.seq) FROM (SELECT MAX(e.seq) AS seq FROM events e WHERE e.camera_id = w.camera_id "
            "        UNION ALL SELECT MAX(x.seq) FROM resolved_seqs x WHERE x.camera_id = w.camera_id) t) "
            "FROM w LEFT JOIN runs ON runs.camera_id = w.camera_id"
        )
        return sql, params
