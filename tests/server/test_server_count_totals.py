"""Crossings the edge merged into a ``count_total`` while its outbox was full count like the crossings."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from server_testkit import crossing

from citywatch.contract import CountTotal
from server.storage.store import Store

T0 = datetime(2025, 3, 1, 8, 0, 0, tzinfo=timezone.utc)


def total(seq: int, count: int, start: datetime, class_name: str = "motorcycle") -> CountTotal:
    return CountTotal(
        event_id=uuid.uuid4(), camera_id="cam-1", site_id="site-1", seq=seq, ts=start, config_version="t",
        model_version="t", line_id="l1", direction="in", class_name=class_name, count=count,
        interval_start=start, interval_end=start + timedelta(minutes=15), interval_s=900,
        first_frame_index=0, last_frame_index=99,
    )


def test_a_merged_total_adds_its_count_once_to_every_bucket_size_and_to_raw_ends(store: Store) -> None:
    merged = total(2, 42, T0)
    store.insert_events([crossing(1, ts=T0 - timedelta(minutes=1), class_name="motorcycle"), merged])
    store.insert_events([merged])  # a resend of the same total is a duplicate, not 42 more
    def count(lo: datetime, hi: datetime, bucket_s: int | None = None) -> int:
        return sum(r.count for r in store.history.counts(start=lo, end=hi, bucket_s=bucket_s, class_name="motorcycle"))

    for bucket in (None, 60, 900, 3600, 86400):
        assert count(T0 - timedelta(hours=1), T0 + timedelta(hours=1), bucket) == 43, bucket
    # Range ends inside a minute are read from raw events: the total must be counted there too.
    assert count(T0 - timedelta(seconds=30), T0 + timedelta(seconds=30)) == 42
    assert count(T0 + timedelta(seconds=1), T0 + timedelta(hours=1)) == 0  # all of it sits at interval_start
    assert store.count_events("cam-1") == 2
