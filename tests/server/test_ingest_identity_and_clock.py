"""Issue 13, data side: identity scoped by camera, conflicting duplicates, clock faults, resolved seqs.

Each test runs on SQLite and PostgreSQL (the ``store`` fixture). Ingest-level tests drive the writer's
own classify/process path without a broker: what they prove is what the database ends up holding.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

from server_testkit import crossing, make_config, status_event

from citywatch.contract import MAX_SEQ, utcnow
from server.ingest import Ingest
from server.ingest.messages import Received
from server.ingest.parse import parsed
from server.storage.cameras import CameraUpdateIn
from server.storage.dead_letters import DeadLetterIn
from server.storage.retention import apply_retention
from server.storage.store import Store

SITE, CAM_A, CAM_B = "site-1", "cam-a", "cam-b"


def _reasons(store: Store) -> list[str]:
    items, _total = store.list_dead_letters()
    return [d["reason"] for d in items]


def _walk(store: Store, camera_id: str) -> tuple[int, int | None]:
    """The watermark as ingest walks it after a batch (the one-query walk of ``apply_cameras``)."""
    return store.apply_cameras([CameraUpdateIn(camera_id=camera_id, site_id=SITE, has_events=True)])[camera_id]


# --- identity scoped by camera ---------------------------------------------------------------------


def test_a_camera_that_publishes_the_id_another_camera_uses_next_does_not_drop_that_cameras_event(
    store: Store,
) -> None:
    stolen = uuid.uuid4()  # ids are uuid5 under a public namespace: B's next id can be computed
    store.insert_events([crossing(1, camera_id=CAM_A, event_id=stolen)])
    inserted, dups = store.insert_events(
        [crossing(1, camera_id=CAM_B, event_id=stolen), crossing(2, camera_id=CAM_B)]
    )
    assert str(stolen) in inserted and dups == []
    assert store.count_events(CAM_B) == 2 and store.count_events(CAM_A) == 1
    assert _walk(store, CAM_B) == (2, None)
    assert _reasons(store) == []


def test_an_identical_redelivery_is_a_quiet_duplicate(store: Store) -> None:
    a = crossing(1, camera_id=CAM_A)
    store.insert_events([a])
    inserted, dups = store.store_batch([a, a], [])  # redelivered, and twice in one batch
    assert inserted == [] and dups == [str(a.event_id)] * 2
    assert _reasons(store) == [] and store.count_events() == 1


def test_a_redelivery_renumbered_by_the_edge_is_a_duplicate_whose_new_seq_counts_as_filled(store: Store) -> None:
    a = crossing(1, camera_id=CAM_A)
    store.insert_events([a, crossing(2, camera_id=CAM_A)])
    # the edge's outbox renumbered it (rebase/merge keep the id) and a re-run gives it a new edge time
    again = a.model_copy(update={"seq": 3, "ts": a.ts + timedelta(seconds=5)})
    inserted, dups = store.store_batch([again, crossing(4, camera_id=CAM_A)], [])
    assert dups == [str(a.event_id)] and len(inserted) == 1 and _reasons(store) == []
    assert _walk(store, CAM_A) == (4, None)


def test_a_different_payload_under_a_stored_id_is_a_conflicting_duplicate_dead_letter(store: Store) -> None:
    a = crossing(1, camera_id=CAM_A, class_name="car")
    store.insert_events([a])
    other = crossing(2, camera_id=CAM_A, event_id=a.event_id, class_name="truck", direction="out")
    stored = store.store_batch([other, crossing(3, camera_id=CAM_A)], [])
    inserted, dups = stored
    assert dups == [] and len(inserted) == 1 and stored.dead_letters == 1
    (reason,) = _reasons(store)
    assert reason.startswith("conflicting_duplicate") and "class_name, direction" in reason, reason
    items, _ = store.list_dead_letters()
    assert items[0]["topic"] == f"citywatch/{SITE}/{CAM_A}/event/line_crossing"
    assert json.loads(items[0]["payload"])["class_name"] == "truck"
    # the stored event is untouched, and the conflicting copy's seq no longer holds the watermark
    assert [e["class_name"] for e in store.event_log.recent_events(camera_id=CAM_A) if e["seq"] == 1] == ["car"]
    assert _walk(store, CAM_A) == (3, None)


def test_a_conflicting_copy_within_one_batch_is_a_dead_letter_too(store: Store) -> None:
    a = crossing(1, camera_id=CAM_A, line_id="l1")
    b = crossing(2, camera_id=CAM_A, event_id=a.event_id, line_id="l2")
    inserted, dups = store.store_batch([a, b], [])
    assert inserted == [str(a.event_id)] and dups == []
    (reason,) = _reasons(store)
    assert reason.startswith("conflicting_duplicate") and "line_id" in reason


def test_another_model_version_under_a_stored_id_is_a_conflicting_duplicate(store: Store) -> None:
    a = crossing(1, camera_id=CAM_A)
    store.insert_events([a, crossing(2, camera_id=CAM_A)])
    store.store_batch([a.model_copy(update={"model_version": "yolo-next"})], [])
    (reason,) = _reasons(store)
    assert reason.startswith("conflicting_duplicate") and "(model_version)" in reason


# --- clock faults ------------------------------------------------------------------------------------


def test_an_event_from_a_1970_clock_is_a_dead_letter_and_the_watermark_moves_past_it(store: Store) -> None:
    store.events_retention_days = 90
    epoch = datetime(1970, 1, 1, 0, 0, 5, tzinfo=timezone.utc)  # a dead RTC after a power cut
    stored = store.store_batch([crossing(2, camera_id=CAM_A, ts=epoch)], [])
    assert stored == ([], []) and stored.dead_letters == 1
    (reason,) = _reasons(store)
    assert reason.startswith("timestamp_out_of_range") and "1970-01-01" in reason and "90 days" in reason
    assert _walk(store, CAM_A) == (0, 2)  # seq 1 is still to come: a gap, the replay asks for it
    store.store_batch([crossing(1, camera_id=CAM_A), crossing(3, camera_id=CAM_A)], [])
    assert _walk(store, CAM_A) == (3, None)
    assert store.advance_watermark(CAM_A) == 3  # the walk of a single camera agrees
    assert store.count_events(CAM_A) == 2


def test_an_event_far_in_the_future_is_a_dead_letter(store: Store) -> None:
    store.store_batch(
        [
            crossing(1, camera_id=CAM_A),
            crossing(2, camera_id=CAM_A, ts=datetime(2199, 1, 1, tzinfo=timezone.utc)),
            crossing(3, camera_id=CAM_A, ts=utcnow() + timedelta(hours=7)),  # local time labelled UTC: kept
        ],
        [],
    )
    (reason,) = _reasons(store)
    assert reason.startswith("timestamp_out_of_range") and "2199" in reason and "ahead" in reason
    assert store.count_events(CAM_A) == 2
    assert _walk(store, CAM_A) == (3, None)
    store.max_future_s = 60.0  # server.ingest.max_future_s
    store.store_batch([crossing(4, camera_id=CAM_A, ts=utcnow() + timedelta(minutes=5))], [])
    assert len(_reasons(store)) == 2 and _walk(store, CAM_A) == (4, None)


def test_the_max_future_setting_comes_from_the_config(store: Store) -> None:
    config = make_config(run_id="f", database_url="sqlite://", server={"ingest": {"max_future_s": 120}})
    s = Store.from_config(config, migrate=False)
    try:
        assert s.max_future_s == 120 and s.topic_prefix == "cwtest-f"
    finally:
        s.close()


# --- seqs -------------------------------------------------------------------------------------------


def test_a_seq_that_jumps_ahead_is_stored_and_its_gap_is_reported(store: Store) -> None:
    store.insert_events([crossing(1, camera_id=CAM_A), crossing(1_000_000, camera_id=CAM_A)])
    assert store.count_events(CAM_A) == 2
    assert _walk(store, CAM_A) == (1, 1_000_000)  # ingest asks the edge to replay 2..999999
    assert store.first_seq_above(CAM_A, 1) == 1_000_000


def test_a_watermark_at_the_top_of_the_63_bit_counter_walks_without_overflow(store: Store) -> None:
    store.insert_events([crossing(MAX_SEQ, camera_id=CAM_A)])
    marks = store.apply_cameras(
        [CameraUpdateIn(camera_id=CAM_A, site_id=SITE, has_events=True, floor=MAX_SEQ - 2)]
    )
    assert marks[CAM_A] == (MAX_SEQ - 2, MAX_SEQ)
    assert _walk(store, CAM_A) == (MAX_SEQ - 2, MAX_SEQ)  # the one-query walk: n + window > 2^63 - 1


def test_dead_letter_events_resolves_the_seqs_of_a_poison_message(store: Store) -> None:
    poison = crossing(2, camera_id=CAM_A)
    store.insert_events([crossing(1, camera_id=CAM_A), crossing(3, camera_id=CAM_A)])
    assert _walk(store, CAM_A) == (1, 3)
    topic = f"citywatch/{SITE}/{CAM_A}/event/line_crossing"
    letter = DeadLetterIn.of_events(topic, poison.model_dump_json(), "database refused it", [poison])
    store.dead_letters.dead_letter_events([letter])
    assert _reasons(store) == ["database refused it"]
    assert _walk(store, CAM_A) == (3, None)
    # and retention forgets resolved seqs once the watermark passed them
    from citywatch.config import RetentionConfig

    assert apply_retention(store.db, RetentionConfig())["resolved_seqs"] == 1


# --- ingest: a schema-invalid message resolves its own camera's seq, never another's ------------------


def _ingest(store: Store) -> Ingest:
    return Ingest(make_config(run_id="ic", database_url="sqlite://"), store)


def _run(ingest: Ingest, messages: list[tuple[str, bytes]]) -> None:
    now = utcnow()
    ingest._process([parsed(ingest.topics, Received(t, p, i, 1, now, 0)) for i, (t, p) in enumerate(messages)])


def test_a_schema_invalid_event_is_a_dead_letter_naming_the_field_and_its_seq_is_resolved(store: Store) -> None:
    ingest = _ingest(store)
    t = ingest.topics
    bad_a = crossing(2, camera_id=CAM_A).model_dump(mode="json") | {"track_id": 2**63}
    bool_seq = crossing(3, camera_id=CAM_A).model_dump(mode="json") | {"seq": True}
    nul = crossing(4, camera_id=CAM_A).model_dump(mode="json") | {"config_version": "v\u00001"}
    claims_b = crossing(2, camera_id=CAM_B).model_dump(mode="json") | {"track_id": -1}  # B's seq, on A's topic
    topic_a, topic_b = t.event(SITE, CAM_A, "line_crossing"), t.event(SITE, CAM_B, "line_crossing")
    _run(
        ingest,
        [
            (topic_a, crossing(1, camera_id=CAM_A).model_dump_json().encode()),
            (topic_a, json.dumps(bad_a).encode()),
            (topic_a, json.dumps(bool_seq).encode()),
            (topic_a, json.dumps(nul).encode()),
            (topic_a, json.dumps(claims_b).encode()),
            (topic_a, crossing(5, camera_id=CAM_A).model_dump_json().encode()),
            (topic_b, crossing(1, camera_id=CAM_B).model_dump_json().encode()),
            (topic_b, crossing(3, camera_id=CAM_B).model_dump_json().encode()),
        ],
    )
    reasons = " | ".join(_reasons(store))
    assert "track_id" in reasons and ".seq: Input should be a valid integer" in reasons and "config_version" in reasons
    assert ingest.counters.dead_letters == 4 and store.count_events() == 4
    # A: 2 and 4 resolved by their dead letters; 3's seq could not be read (true is no seq): a gap
    assert store.committed_seqs()[CAM_A] == 2 and store.first_seq_above(CAM_A, 2) == 4
    # B: A's message naming B's seq 2 resolved nothing of B's
    assert store.committed_seqs()[CAM_B] == 1


def test_the_store_dead_letters_of_a_batch_count_in_the_ingest_counters(store: Store) -> None:
    store.events_retention_days = 90
    ingest = _ingest(store)
    old = crossing(1, camera_id=CAM_A, ts=datetime(1970, 1, 1, tzinfo=timezone.utc))
    heartbeat = status_event(2, camera_id=CAM_A)
    _run(
        ingest,
        [
            (ingest.topics.event(SITE, CAM_A, "line_crossing"), old.model_dump_json().encode()),
            (ingest.topics.event(SITE, CAM_A, "camera_status"), heartbeat.model_dump_json().encode()),
        ],
    )
    assert ingest.counters.dead_letters == 1 and ingest.counters.stored == 1
    assert store.committed_seqs()[CAM_A] == 2
    items, _ = store.list_dead_letters()
    assert items[0]["topic"] == ingest.topics.event(SITE, CAM_A, "line_crossing")


def test_migration_0006_keeps_stored_events_and_scopes_their_identity(store: Store) -> None:
    from alembic import command
    from sqlalchemy import text

    from server.storage.database import alembic_config
    from server.storage.event_rows import EVENT_COLUMNS as _EVENT_COLUMNS
    from server.storage.event_rows import event_values as _event_values
    from server.storage.models import EventRow

    def migrate(step: object, revision: str) -> None:
        cfg = alembic_config()
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            cfg.attributes["schema"] = store.schema
            step(cfg, revision)  # type: ignore[operator]

    migrate(command.downgrade, "0005_revoked_sessions")
    a = crossing(1, camera_id=CAM_A)
    with store.engine.begin() as conn:  # a row of the 0005 schema, keyed by event_id alone
        conn.execute(
            EventRow.__table__.insert(),
            dict(zip(_EVENT_COLUMNS, _event_values(str(a.event_id), a, utcnow()), strict=True)),
        )
    migrate(command.upgrade, "head")
    assert store.count_events(CAM_A) == 1
    inserted, _ = store.insert_events([crossing(1, camera_id=CAM_B, event_id=a.event_id)])
    assert inserted == [str(a.event_id)] and store.count_events() == 2
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM resolved_seqs")).scalar() == 0


def test_a_camera_cannot_close_or_edit_another_cameras_incident(store: Store) -> None:
    from citywatch.contract import Incident
    incidents = store.incidents
    iid = uuid.uuid4()

    def incident(seq: int, camera_id: str, state: str, severity: str = "medium") -> Incident:
        now = utcnow()
        return Incident(
            event_id=uuid.uuid4(), camera_id=camera_id, site_id=SITE, seq=seq, ts=now, config_version="t",
            model_version="t", incident_id=iid, incident_type="stopped_vehicle", state=state,  # type: ignore[arg-type]
            severity=severity, track_ids=[seq], started_at=now,  # type: ignore[arg-type]
            ended_at=now if state == "closed" else None,
        )  # fmt: skip

    store.insert_events([incident(1, CAM_B, "open")])
    store.insert_events([incident(1, CAM_A, "closed", "high")])  # A names B's incident id
    row = incidents.get(str(iid))
    assert row is not None and row["camera_id"] == CAM_B and row["state"] == "open" and row["severity"] == "medium"


def test_dead_letter_ids_are_64_bit(store: Store) -> None:
    """A device flooding malformed messages must not run the id out (2^31 on a PostgreSQL serial)."""
    from sqlalchemy import text

    if store.dialect == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(text("SELECT setval('dead_letters_id_seq', 3000000000)"))
    first = store.dead_letters.add_dead_letter("t", b"x", "r")
    assert store.dead_letters.add_dead_letter("t", b"y", "r") == first + 1
    if store.dialect == "postgresql":
        assert first > 2**31


def test_through_ingest_camera_a_pre_publishing_camera_bs_next_id_leaves_b_whole(store: Store) -> None:
    ingest = _ingest(store)
    t = ingest.topics
    b_events = [crossing(seq, camera_id=CAM_B) for seq in (1, 2, 3)]
    squat = crossing(7, camera_id=CAM_A, event_id=b_events[1].event_id)  # on A's own topic: A's to send
    _run(ingest, [(t.event(SITE, CAM_A, "line_crossing"), squat.model_dump_json().encode())])
    _run(ingest, [(t.event(SITE, CAM_B, "line_crossing"), ev.model_dump_json().encode()) for ev in b_events])
    assert store.count_events(CAM_B) == 3 and ingest.counters.duplicates == 0
    assert store.committed_seqs()[CAM_B] == 3 == ingest.counters.committed[CAM_B]


def test_a_dead_letter_on_a_topic_no_camera_row_can_hold_resolves_nothing_and_stalls_nothing(store: Store) -> None:
    ingest = _ingest(store)
    long_cam = "c" * 100  # a camera id of the topic that no 64-character column holds
    bad = crossing(1, camera_id=CAM_A).model_dump(mode="json") | {"camera_id": long_cam}
    good = crossing(1, camera_id=CAM_A).model_dump_json().encode()
    _run(
        ingest,
        [
            (ingest.topics.event(SITE, long_cam, "line_crossing"), json.dumps(bad).encode()),
            (ingest.topics.event(SITE, CAM_A, "line_crossing"), good),
        ],
    )
    assert ingest.counters.dead_letters == 1 and store.count_events(CAM_A) == 1
    assert store.committed_seqs() == {CAM_A: 1}


def test_a_1970_clock_is_a_dead_letter_even_where_raw_events_are_kept_forever(store: Store) -> None:
    assert store.events_retention_days is None  # server.retention.events_days: null
    store.store_batch([crossing(1, camera_id=CAM_A, ts=datetime(1970, 1, 1, 0, 0, 5, tzinfo=timezone.utc))], [])
    (reason,) = _reasons(store)
    assert reason.startswith("timestamp_out_of_range") and "clock reset" in reason
    assert store.count_events() == 0 and _walk(store, CAM_A) == (1, None)
