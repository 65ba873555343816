"""History at city scale on PostgreSQL: N cameras x 2 directions of 15-min flow rollups for D days,
generated in bulk with generate_series (plus the 1 h and 1 d rollups derived from them in SQL, as
ingest would have maintained them), then p50/p95 of the planner's queries through server.storage.history.

    python bench/history_queries.py --cameras 500 --days 365     # ~35 M rows of flow_15m (long)
    python bench/history_queries.py --cameras 50 --days 365      # ~3.5 M rows: a few minutes

Queries: one camera's year by day; one camera's hour-of-week profile over the year; city-wide daily
totals for a month (all cameras).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.storage.history import FlowFilter  # noqa: E402
from server.storage.store import Store  # noqa: E402

PG_URL = os.environ.get("CITYWATCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
START = 1735664400  # 2025-01-01T00:00:00+07:00


def timed(fn, n: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    fn()  # warm
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t) * 1000)
    xs.sort()
    return statistics.median(xs), xs[min(len(xs) - 1, int(0.95 * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=50)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--keep", action="store_true", help="keep the schema")
    args = ap.parse_args()
    schema = f"bench_hist_{uuid.uuid4().hex[:8]}"
    store = Store(PG_URL, schema=schema)
    try:
        t = time.perf_counter()
        n_buckets = args.days * 96
        with store.engine.begin() as c:
            c.execute(text("SET LOCAL synchronous_commit = off"))
            c.execute(text("ALTER TABLE flow_15m SET UNLOGGED"))
            c.execute(text("ALTER TABLE flow_15m DROP CONSTRAINT pk_flow_15m"))
            c.execute(text("DROP INDEX ix_flow_15m_bucket"))
            c.execute(
                text(
                    """
                INSERT INTO flow_15m (camera_id, bucket, line_id, direction, speed_sum, speed_n,
                                      n_car, n_truck, n_bus, n_motorcycle, n_bicycle, n_person)
                SELECT 'cam-' || cam, :start + b * 900, 'l1', d,
                       (h % 7) * 30.0, h % 7, h % 11, h % 3, h % 2, (h * 7) % 40, h % 2, 0
                FROM generate_series(0, :cams - 1) cam, generate_series(0, :nb - 1) b,
                     (VALUES ('in'), ('out')) AS dirs(d),
                     LATERAL (SELECT (cam * 31 + b * 17) % 97 AS h) x
                """
                ),
                {"start": START, "cams": args.cameras, "nb": n_buckets},
            )
            c.execute(
                text(
                    "ALTER TABLE flow_15m ADD CONSTRAINT pk_flow_15m "
                    "PRIMARY KEY (camera_id, bucket, line_id, direction)"
                )
            )
            c.execute(text("CREATE INDEX ix_flow_15m_bucket ON flow_15m (bucket)"))
            cols = "speed_sum, speed_n, n_car, n_truck, n_bus, n_motorcycle, n_bicycle, n_person"
            sums = ", ".join(f"sum({x})" for x in cols.split(", "))
            c.execute(
                text(
                    f"INSERT INTO flow_1h (camera_id, bucket, line_id, direction, {cols}) "
                    f"SELECT camera_id, bucket / 3600 * 3600, line_id, direction, {sums} "
                    "FROM flow_15m GROUP BY 1, 2, 3, 4"
                )
            )
            c.execute(
                text(
                    f"INSERT INTO flow_1d (camera_id, bucket, line_id, direction, {cols}) "
                    f"SELECT camera_id, (bucket + 25200) / 86400 * 86400 - 25200, line_id, direction, {sums} "
                    f"FROM flow_15m GROUP BY 1, 2, 3, 4"
                )
            )
            c.execute(
                text(
                    "INSERT INTO observed_1d (camera_id, bucket, observed_s) "
                    "SELECT DISTINCT camera_id, bucket, 86400 FROM flow_1d"
                )
            )
            c.execute(
                text(
                    "INSERT INTO observed_1h (camera_id, bucket, observed_s) "
                    "SELECT DISTINCT camera_id, bucket, 3600 FROM flow_1h"
                )
            )
        with store.engine.begin() as c:
            c.execute(text("ANALYZE"))
            rows = c.execute(text("SELECT count(*) FROM flow_15m")).scalar()
        print(
            f"generated {rows:,} flow_15m rows ({args.cameras} cameras x 2 directions x {args.days} days) "
            f"in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
        h = store.history
        year = (START, START + args.days * 86400)
        month = (START + 90 * 86400, START + 120 * 86400)
        off = 7 * 3600
        cam = FlowFilter(["cam-7"])
        qs = {
            "one camera, a year by day (1d rollup)": lambda: h.flow(*year, bucket_s=86400, offset_s=off, flt=cam),
            "one camera, hour-of-week over a year (1h rollup)": lambda: (
                h.flow(*year, offset_s=off, how=True, flt=cam, keys=("camera_id",)),
                h.observed(*year, offset_s=off, how=True, camera_ids=["cam-7"]),
            ),
            "city-wide daily totals for a month (1d rollup)": lambda: h.flow(
                *month, bucket_s=86400, offset_s=off, keys=()
            ),
            "one camera, a year by 15 min (15m rollup)": lambda: h.flow(*year, bucket_s=900, offset_s=off, flt=cam),
        }
        for name, fn in qs.items():
            p50, p95 = timed(fn, args.runs)
            print(f"{name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms ({args.runs} runs)", flush=True)
    finally:
        if not args.keep:
            with store.engine.begin() as c:
                c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        store.close()


if __name__ == "__main__":
    main()
