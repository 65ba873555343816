"""Rollups: maintained in the ingest transaction, equal to raw counts for any range, never counting a
duplicate, and with observed seconds that tell "no vehicles" from "camera down"."""

from __future__ import annotations

import math
import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from server_testkit import crossing, status_event

from citywatch.config import RetentionConfig
from citywatch.contract import CameraStatus, Movement, ZoneOccupancy
from server.storage.history import FlowFilter
from server.storage.retention import apply_retention
from server.storage.store import Store

T0 = datetime(2025, 3, 1, 0, 0, 0, tzinfo=timezone.utc)


def heartbeat(
    seq: int, ts: datetime, *, state: str = "ok", uptime: float = 1e6, camera_id: str = "cam-1"
) -> CameraStatus:
    return status_event(seq, camera_id=camera_id).model_copy(
        update={"ts": ts, "source_state": state, "uptime_s": uptime}
    )


def test_rollup_totals_equal_raw_counts_for_any_range(store: Store) -> None:
    rng = random.Random(7)
    evs = []
    for i in range(1, 401):
        ts = T0 + timedelta(seconds=rng.randrange(0, 3 * 86400))
        evs.append(
            crossing(i, ts=ts, direction=rng.choice(["in", "out"]), class_name=rng.choice(["car", "motorcycle", "bus"]))
        )
    store.insert_events(evs)
    for _ in range(25):
        a = rng.randrange(-3600, 3 * 86400)
        b = a + rng.randrange(1, 2 * 86400)
        lo, hi = T0 + timedelta(seconds=a), T0 + timedelta(seconds=b)
        want = sum(1 for e in evs if lo <= e.ts < hi)
        got = sum(r.count for r in store.history.counts(start=lo, end=hi))
        assert got == want, (lo, hi)
        hourly = store.history.counts(start=lo, end=hi, bucket_s=3600)
        assert sum(r.count for r in hourly) == want


def test_a_duplicate_never_adds_to_the_rollups(store: Store) -> None:
    e = crossing(1, ts=T0 + timedelta(seconds=10))
    store.insert_events([e, e])
    store.insert_events([e])
    lo, hi = int(T0.timestamp()), int(T0.timestamp()) + 86400
    for b in (60, 900, 3600, 86400):
        cells = store.history.flow(lo - 86400, hi + 86400, bucket_s=b, offset_s=7 * 3600 if b == 86400 else 0)
        assert sum(c.total for c in cells.values()) == 1, b


def test_observed_seconds_tell_no_vehicles_from_camera_down(store: Store) -> None:
    # observing from 00:00 to 00:10 (heartbeats every 10 s), then down (no heartbeats) until 00:20,
    # then up again with the source reconnecting (not observing) for one heartbeat
    hb = [heartbeat(i + 1, T0 + timedelta(seconds=10 * i)) for i in range(61)]
    hb.append(heartbeat(62, T0 + timedelta(minutes=20), state="reconnecting"))
    hb.append(heartbeat(63, T0 + timedelta(minutes=20, seconds=10)))
    store.insert_events(hb)
    lo = int(T0.timestamp())
    obs = store.history.observed(lo, lo + 3600, bucket_s=60)
    per_min = [round(obs.get((lo + 60 * m, "cam-1"), 0.0)) for m in range(22)]
    # first minute: the first heartbeat at 00:00 stands for the 10 s before it (previous minute)
    assert per_min[:10] == [60] * 10
    assert per_min[10:20] == [0] * 10  # camera down: no observation, so zero vehicles mean nothing
    assert per_min[20] == 10  # 00:20:00 reconnecting credits nothing; 00:20:10 credits 10 s
    total = store.history.observed(lo - 60, lo + 3600)
    assert round(total[(None, "cam-1")]) == 10 + 600 + 10
    # replayed (older) heartbeats never push a bucket past its length
    store.insert_events([heartbeat(64, T0 + timedelta(seconds=5))])
    assert store.history.observed(lo, lo + 60, bucket_s=60)[(lo, "cam-1")] == 60


def test_zone_and_movement_rollups_give_occupancy_and_od(store: Store) -> None:
    def zone(seq: int, ts: datetime, frac: float, entered: int) -> ZoneOccupancy:
        return ZoneOccupancy(
            event_id=uuid.uuid4(),
            camera_id="cam-1",
            site_id="site-1",
            seq=seq,
            ts=ts,
            config_version="t",
            model_version="t",
            zone_id="lane-1",
            lane=True,
            interval_s=60,
            frame_index=0,
            occupancy={"car": 2, "motorcycle": 4},
            occupied_fraction=frac,
            vehicles_entered=entered,
            mean_speed_kmh=30.0,
            queue_length_m=12.0,
            queue_vehicles=3,
        )

    def move(seq: int, a: str, b: str, cls: str) -> Movement:
        return Movement(
            event_id=uuid.uuid4(),
            camera_id="cam-1",
            site_id="site-1",
            seq=seq,
            ts=T0 + timedelta(minutes=5),
            config_version="t",
            model_version="t",
            track_id=seq,
            class_name=cls,
            entry_zone=a,
            exit_zone=b,
            entry_frame=0,
            exit_frame=10,
            duration_s=4.0,
            speed_kmh=20.0,
        )

    store.insert_events([zone(1, T0 + timedelta(minutes=1), 0.5, 10), zone(2, T0 + timedelta(minutes=2), 0.25, 6)])
    store.insert_events(
        [move(3, "north", "east", "car"), move(4, "north", "east", "motorcycle"), move(5, "south", "east", "car")]
    )
    lo = int(T0.timestamp())
    (row,) = store.history.zones(lo, lo + 3600, bucket_s=None, offset_s=0)
    assert row["lane"] and row["vehicles_entered"] == 16 and row["occupancy"] == 0.375
    assert row["mean_occupancy"] == {"car": 2.0, "motorcycle": 4.0} and row["mean_speed_kmh"] == 30.0
    od = {(r["entry_zone"], r["exit_zone"]): r["count"] for r in store.history.od(lo, lo + 3600)}
    assert od == {("north", "east"): 2, ("south", "east"): 1}


def test_retention_prunes_each_table_and_expired_events_are_not_counted_again(store: Store) -> None:
    now = datetime.now(timezone.utc)
    old, recent = now - timedelta(days=30), now - timedelta(hours=1)
    store.insert_events([crossing(1, ts=old), crossing(2, ts=recent)])
    deleted = apply_retention(store.db, RetentionConfig(events_days=10, rollup_1m_days=7, rollup_15m_days=400))
    assert deleted["events"] == 1 and deleted["flow_1m"] == 1 and deleted["flow_15m"] == 0
    assert store.count_events() == 1
    # the pruned event comes again (a late replay): not stored, not counted twice, but kept as a dead letter
    store.events_retention_days = 10
    again = crossing(1, ts=old)
    ins, dup = store.insert_events([again])
    assert ins == [] and dup == []
    assert store.list_dead_letters()[0][0]["reason"].startswith("timestamp_out_of_range")
    total = sum(r.count for r in store.history.counts(start=old - timedelta(days=1), end=now))
    assert total == 2


def test_one_camera_year_reads_the_day_rollup_only(store: Store) -> None:
    evs = [crossing(i, ts=T0 + timedelta(days=i, hours=3)) for i in range(1, 50)]
    store.insert_events(evs)
    lo = store.clock.floor(T0.timestamp(), 86400)
    segs = store.history.segments(lo, lo + 365 * 86400, 86400, store.clock.offset(lo))
    assert [s.res for s in segs] == ["1d"]
    cells = store.history.flow(
        lo, lo + 365 * 86400, bucket_s=86400, offset_s=store.clock.offset(lo), flt=FlowFilter(["cam-1"])
    )
    assert sum(c.total for c in cells.values()) == 49
    assert math.isclose(len(cells), 49)


def test_batch_deltas_summed_per_minute_equal_adding_each_event_to_each_bucket() -> None:
    """event_deltas sums a batch per minute (per second where the zone's offset is not whole minutes)
    before rolling up: every row of every resolution equals adding each event on its own, across a
    daylight-saving change and in a zone offset by half an hour."""
    from server.storage import rollups as ru

    rng = random.Random(11)
    start = datetime(2025, 3, 29, 20, 0, tzinfo=timezone.utc)  # Paris and St John's change in this week
    for zone in ("Asia/Ho_Chi_Minh", "Europe/Paris", "America/St_Johns", "Asia/Kolkata"):
        clock = ru.Clock(zone)
        evs = [
            crossing(
                i,
                camera_id=rng.choice(["cam-1", "cam-2"]),
                ts=start + timedelta(seconds=rng.uniform(0, 9 * 86400)),
                direction=rng.choice(["in", "out"]),
                class_name=rng.choice(["car", "motorcycle", "truck"]),
            ).model_copy(update={"speed_kmh": rng.choice([None, 20.0, 41.5])})
            for i in range(1, 3001)
        ]
        want: dict[tuple[str, tuple[object, ...]], dict[str, float]] = {}
        for ev in evs:
            t = ev.ts.timestamp()
            for res, s in ru.RES_ORDER:
                row = want.setdefault((f"flow_{res}", (ev.camera_id, clock.floor(t, s), ev.line_id, ev.direction)), {})
                row[f"n_{ev.class_name}"] = row.get(f"n_{ev.class_name}", 0) + 1
                if ev.speed_kmh is not None:
                    row["speed_sum"] = row.get("speed_sum", 0.0) + ev.speed_kmh
                    row["speed_n"] = row.get("speed_n", 0) + 1
        got = ru.event_deltas(clock, evs)
        flat = {(name, key): vals for name, rows in got.tables.items() for key, vals in rows.items()}
        assert flat.keys() == want.keys(), zone
        for k, vals in want.items():
            assert flat[k] == pytest.approx(vals), (zone, k)
        assert clock.minute_aligned == (zone in ("Asia/Ho_Chi_Minh", "Asia/Kolkata"))
