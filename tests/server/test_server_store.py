"""Store behaviour on SQLite and PostgreSQL: de-duplication, the contiguous watermark, SQL counts."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from server_testkit import crossing, status_event
from sqlalchemy import create_engine, inspect, text

from server.storage.cameras import CameraUpdateIn
from server.storage.dead_letters import MAX_DEAD_LETTER_BYTES
from server.storage.store import Store

T0 = datetime(2025, 3, 1, 0, 0, 0, tzinfo=timezone.utc)


def test_duplicates_within_one_batch_are_stored_once(store: Store) -> None:
    a, b = crossing(1), crossing(2)
    inserted, dups = store.insert_events([a, b, a, a])
    assert sorted(inserted) == sorted([str(a.event_id), str(b.event_id)])
    assert dups == [str(a.event_id)] * 2
    assert store.count_events() == 2


def test_duplicates_of_stored_rows_are_not_stored_again(store: Store) -> None:
    a, b = crossing(1), crossing(2)
    store.insert_events([a])
    inserted, dups = store.insert_events([a, b, b])
    assert inserted == [str(b.event_id)]
    assert sorted(dups) == sorted([str(a.event_id), str(b.event_id)])
    assert store.count_events() == 2


def test_watermark_stays_below_a_gap_and_advances_when_it_is_filled(store: Store) -> None:
    store.insert_events([crossing(1), crossing(2), crossing(4), crossing(5)])
    assert store.advance_watermark("cam-1") == 2
    store.insert_events([crossing(3)])
    assert store.advance_watermark("cam-1") == 5
    assert store.list_cameras()[0]["committed_seq"] == 5


def test_watermark_never_starts_before_seq_one(store: Store) -> None:
    store.insert_events([crossing(2), crossing(3)])
    assert store.advance_watermark("cam-1") == 0


def test_watermark_jumps_to_outbox_first_seq_and_warns_about_skipped_events(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store.insert_events([crossing(1), crossing(2), crossing(8), crossing(9)])
    assert store.advance_watermark("cam-1") == 2
    with caplog.at_level(logging.WARNING, logger="server.storage.watermarks"):
        # the edge keeps only seq >= 7: 3..6 are gone for good, 7 is still to come
        assert store.advance_watermark("cam-1", floor=6) == 6
    assert "4 event(s)" in caplog.text
    store.insert_events([crossing(7)])
    assert store.advance_watermark("cam-1") == 9
    # an older status (smaller floor) never moves the watermark back
    assert store.advance_watermark("cam-1", floor=3) == 9


def test_watermark_walks_long_contiguous_runs(store: Store) -> None:
    store.insert_events([crossing(i) for i in range(1, 2503)])
    assert store.advance_watermark("cam-1") == 2502


def test_one_query_walk_of_many_cameras_matches_walking_each_alone(store: Store) -> None:
    """apply_cameras walks every camera of a batch with one query: gaps inside and beyond the 1000-seq
    window, runs longer than the window, floors and duplicates of a seq give what one walk each gives."""
    layouts = {
        "cam-a": list(range(1, 40)) + list(range(41, 60)),  # a gap inside the window
        "cam-b": list(range(1, 11)) + list(range(2500, 2510)),  # the seq above the gap is past the window
        "cam-c": list(range(1, 2600)),  # longer than the window
        "cam-d": list(range(5, 9)),  # nothing from seq 1
        "cam-e": list(range(1, 6)) + list(range(20, 30)),  # a floor of 19 lifts it over the gap
        "cam-f": [1, 1, 2, 3, 3, 7],  # the same seq twice (an edge that renumbered)
    }
    floors = {"cam-e": 19}
    twin = Store(store.url, schema=store.schema, migrate=False)  # same rows under other camera ids
    for cam, seqs in layouts.items():
        for ref in (cam, f"{cam}-ref"):
            store.insert_events([crossing(q, camera_id=ref) for q in seqs])
    marks = store.apply_cameras(
        [CameraUpdateIn(camera_id=c, site_id="site-1", has_events=True, floor=floors.get(c)) for c in layouts]
    )
    for cam in layouts:
        ref = f"{cam}-ref"
        committed = twin.advance_watermark(ref, floor=floors.get(cam))
        assert marks[cam] == (committed, twin.first_seq_above(ref, committed)), cam
    assert marks["cam-b"] == (10, 2500) and marks["cam-c"] == (2599, None) and marks["cam-f"] == (3, 7)
    assert {c["camera_id"]: c["committed_seq"] for c in store.list_cameras()}["cam-c"] == 2599
    twin.close()


def test_event_times_are_stored_as_sqlalchemy_writes_them_so_sql_comparisons_hold(store: Store) -> None:
    """The raw batch insert writes times in the ORM's own form (on SQLite: text with microseconds even
    when they are zero), so a query bound through SQLAlchemy finds an event exactly at its bound."""
    from sqlalchemy import func, select

    from server.storage.models import EventRow

    store.insert_events([crossing(1, ts=T0)])
    with store.db.session() as s:
        assert s.scalar(select(func.count()).select_from(EventRow).where(EventRow.ts >= T0)) == 1
        assert s.scalar(select(EventRow.ts)) == T0


def test_counts_by_bucket_are_aggregated_in_sql(store: Store) -> None:
    evs = [
        crossing(1, ts=T0 + timedelta(seconds=5)),
        crossing(2, ts=T0 + timedelta(seconds=50)),
        crossing(3, ts=T0 + timedelta(minutes=1, seconds=1), direction="out"),
        crossing(4, ts=T0 + timedelta(minutes=20), class_name="bus"),
        crossing(5, ts=T0 + timedelta(hours=2)),
        crossing(6, ts=T0 + timedelta(hours=30), camera_id="cam-2"),
        status_event(7),  # not a crossing: never counted
    ]
    store.insert_events(evs)
    end = T0 + timedelta(days=3)

    per_minute = store.history.counts(start=T0, end=end, bucket_s=60)
    assert [(r.bucket_start, r.direction, r.class_name, r.count) for r in per_minute[:3]] == [
        (T0, "in", "car", 2),
        (T0 + timedelta(minutes=1), "out", "car", 1),
        (T0 + timedelta(minutes=20), "in", "bus", 1),
    ]
    hourly = store.history.counts(start=T0, end=end, bucket_s=3600)
    assert {(r.bucket_start, r.camera_id): 0 for r in hourly}.keys() >= {
        (T0, "cam-1"),
        (T0 + timedelta(hours=2), "cam-1"),
    }
    assert sum(r.count for r in hourly if r.bucket_start == T0) == 4

    # day buckets at local midnight (UTC+7): 00:00Z..16:59Z is 1 March local, 30 h later is 2 March
    daily = store.history.counts(start=T0, end=end, bucket_s=86400, tz_offset_s=7 * 3600)
    starts = {r.bucket_start for r in daily}
    assert starts == {T0 - timedelta(hours=7), T0 + timedelta(hours=17)}

    total = store.history.counts(start=T0, end=end)
    assert sum(r.count for r in total) == 6
    assert all(r.bucket_start is None for r in total)
    only = store.history.counts(start=T0, end=end, camera_id="cam-1", direction="in", class_name="car")
    assert [r.count for r in only] == [3]
    # the range is [start, end)
    inside = store.history.counts(start=T0 + timedelta(seconds=5), end=T0 + timedelta(seconds=50))
    assert sum(r.count for r in inside) == 1


def test_dead_letters_keep_binary_payloads_and_cap_their_size(store: Store) -> None:
    store.dead_letters.add_dead_letter("t/x", b"\xff\xfe\x00binary", "bad JSON")
    store.dead_letters.add_dead_letter("t/y", "é" * (MAX_DEAD_LETTER_BYTES // 2 + 10), "too big")
    items, total = store.list_dead_letters(limit=10)
    assert total == 2
    big, binary = items  # newest first
    assert binary["payload_b64"] and "\x00" not in binary["payload"] and binary["reason"] == "bad JSON"
    assert big["truncated"] and big["size_bytes"] == MAX_DEAD_LETTER_BYTES + 20
    assert "truncated" in big["reason"] and big["payload_b64"] is None
    assert len(big["payload"].encode()) <= MAX_DEAD_LETTER_BYTES


def test_camera_status_keeps_the_newest_heartbeat(store: Store) -> None:
    now = datetime.now(timezone.utc)
    store.cameras.upsert_camera_status("cam-1", "site-1", seen_at=now, state="online", status=status_event(5))
    store.cameras.upsert_camera_status("cam-1", "site-1", seen_at=now, status=status_event(3))
    cam = store.list_cameras()[0]
    assert cam["last_status"]["seq"] == 5 and cam["state"] == "online" and cam["last_seen"] == now


def test_sqlite_database_gets_its_folder_and_wal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Store(f"sqlite:///{tmp_path}/a/b/c.sqlite")
    try:
        with s.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        Store(s.url).close()  # migrating again is a no-op
    finally:
        s.close()


def test_postgresql_schema_holds_tables_and_alembic_version(pg_database) -> None:  # type: ignore[no-untyped-def]
    s = Store(pg_database.url, schema=pg_database.schema)
    Store(pg_database.url, schema=pg_database.schema).close()  # idempotent
    s.close()
    engine = create_engine(pg_database.url)
    try:
        names = set(inspect(engine).get_table_names(schema=pg_database.schema))
        assert {"events", "cameras", "dead_letters", "alembic_version", "flow_15m", "observed_1d", "api_keys"} <= names
        with engine.connect() as conn:
            v = conn.execute(text(f'SELECT version_num FROM "{pg_database.schema}".alembic_version')).scalar()
        from alembic.script import ScriptDirectory

        from server.storage.database import alembic_config

        assert v == ScriptDirectory.from_config(alembic_config()).get_current_head()
    finally:
        engine.dispose()


def test_event_ids_are_uuid_strings(store: Store) -> None:
    eid = uuid.uuid4()
    inserted, _ = store.insert_events([crossing(1, event_id=eid)])
    assert inserted == [str(eid)]


def _race(stores: list[Store]) -> tuple[list[list[str]], list[int]]:
    """Two stores (as two ingest processes) write overlapping random batches at once; a writer that
    loses the race between its look-up and its insert (SQLite) retries the batch (ConcurrentInsert)."""
    import random
    import threading

    from server.storage.event_rows import ConcurrentInsert

    events = [crossing(i, ts=T0 + timedelta(seconds=i)) for i in range(1, 1201)]
    inserted: list[list[str]] = [[], []]
    retries = [0, 0]
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        rng = random.Random(k)
        try:
            for _ in range(60):
                batch = rng.sample(events, 80)
                while True:
                    try:
                        got, _dups = stores[k].store_batch(batch, [])
                        break
                    except ConcurrentInsert:
                        retries[k] += 1
                inserted[k].extend(got)
        except BaseException as exc:  # a deadlock or any other error fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    a, b = set(inserted[0]), set(inserted[1])
    assert not a & b, "an event reported inserted by both writers"
    assert len(inserted[0]) + len(inserted[1]) == len(a | b) == stores[0].count_events()
    counted = sum(r.count for r in stores[0].history.counts(start=T0, end=T0 + timedelta(hours=1)))
    assert counted == len(a | b)
    return inserted, retries


def test_two_writers_on_one_sqlite_file_store_and_count_each_event_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/db/shared.sqlite"
    stores = [Store(url), Store(url, migrate=False)]
    try:
        _race(stores)
    finally:
        for st in stores:
            st.close()


def test_two_writers_on_postgresql_store_and_count_each_event_once_without_deadlock(pg_database) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL copies a batch straight into events and falls back to the staged insert when an id is
    stored already (or being stored by the other writer): both paths run here, and neither deadlocks."""
    stores = [Store(pg_database.url, schema=pg_database.schema), Store(pg_database.url, schema=pg_database.schema)]
    try:
        inserted, _ = _race(stores)
        assert all(inserted), "each writer stored some events first"
    finally:
        for st in stores:
            st.close()
