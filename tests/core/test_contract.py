"""The event contract: what edge and server agree on."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from citywatch.contract import (
    SCHEMA_VERSION,
    CameraStatus,
    ControlCommitted,
    EventBatch,
    LineCrossing,
    Topics,
    deterministic_event_id,
    json_schema,
    parse_control,
    parse_message,
)


def crossing(**kw) -> LineCrossing:
    base = dict(
        event_id=uuid.uuid4(), camera_id="cam-1", site_id="site-1", seq=1,
        ts=datetime(2026, 1, 1, 7, tzinfo=timezone(timedelta(hours=7))), config_version="c1",
        model_version="m1", line_id="l1", direction="in", class_name="car", track_id=4, frame_index=10,
    )
    base.update(kw)
    return LineCrossing(**base)


def test_event_round_trips_through_json_and_times_become_utc() -> None:
    ev = crossing()
    (back,) = parse_message(ev.model_dump_json())
    assert back == ev
    assert back.ts.utcoffset() == timedelta(0) and back.ts.hour == 0
    assert back.schema_version == SCHEMA_VERSION


def test_naive_times_and_unknown_fields_are_rejected() -> None:
    payload = json.loads(crossing().model_dump_json())
    with pytest.raises(ValidationError, match="timezone"):
        parse_message(json.dumps({**payload, "ts": "2026-01-01T00:00:00"}))
    with pytest.raises(ValidationError, match="Extra inputs"):
        parse_message(json.dumps({**payload, "colour": "red"}))


def test_another_major_schema_version_is_refused_with_a_reason_but_a_newer_minor_is_read() -> None:
    payload = json.loads(crossing().model_dump_json())
    with pytest.raises(ValidationError, match="major version 2"):
        parse_message(json.dumps({**payload, "schema_version": "2.0"}))
    assert parse_message(json.dumps({**payload, "schema_version": "1.7"}))[0].schema_version == "1.7"


def test_out_of_range_values_are_rejected() -> None:
    for bad in ({"seq": 0}, {"speed_kmh": 1536.0}, {"class_name": "tank"}, {"camera_id": "a/b"}):
        with pytest.raises(ValidationError):
            crossing(**bad)


def test_a_batch_carries_many_events_of_mixed_kinds() -> None:
    status = CameraStatus(
        event_id=uuid.uuid4(), camera_id="cam-1", site_id="site-1", seq=2, ts=datetime.now(timezone.utc),
        config_version="c1", model_version="m1", source_state="ok", fps_in=25, fps_processed=24.5,
        inference_ms=20, outbox_depth=3, outbox_first_seq=1, uptime_s=5,
    )
    batch = EventBatch(events=[crossing(), status])
    events = parse_message(batch.model_dump_json())
    assert [e.kind for e in events] == ["line_crossing", "camera_status"]


def test_event_ids_are_deterministic_from_source_position() -> None:
    a = deterministic_event_id("cam-1", "line_crossing", "clip.mp4", 0, 120, 7, "l1", "in")
    assert a == deterministic_event_id("cam-1", "line_crossing", "clip.mp4", 0, 120, 7, "l1", "in")
    assert a != deterministic_event_id("cam-1", "line_crossing", "clip.mp4", 1, 120, 7, "l1", "in")
    assert a != deterministic_event_id("cam-2", "line_crossing", "clip.mp4", 0, 120, 7, "l1", "in")


def test_topics_are_built_and_parsed_under_the_prefix() -> None:
    t = Topics("city/hn")
    assert t.event("s1", "cam-1", "line_crossing") == "city/hn/s1/cam-1/event/line_crossing"
    assert t.parse("city/hn/s1/cam-1/event/line_crossing") == ("s1", "cam-1", "event", "line_crossing")
    assert t.parse(t.status("s1", "cam-1")) == ("s1", "cam-1", "status", None)
    assert t.parse(t.control("s1", "cam-1", "committed")) == ("s1", "cam-1", "control", "committed")
    for bad in ("other/s1/cam-1/status", "city/hn/s1/cam-1/event", "city/hn/s1/cam-1/x/y"):
        with pytest.raises(ValueError):
            t.parse(bad)
    with pytest.raises(ValueError):
        Topics("a/#")


def test_control_messages_parse_by_kind() -> None:
    msg = parse_control(ControlCommitted(camera_id="cam-1", seq=41).model_dump_json())
    assert isinstance(msg, ControlCommitted) and msg.seq == 41
    with pytest.raises(ValidationError):
        parse_control('{"kind": "reboot", "camera_id": "cam-1"}')


def test_json_schema_describes_every_message() -> None:
    schema = json_schema()
    text = json.dumps(schema)
    for name in ("LineCrossing", "CameraStatus", "EventBatch", "ControlReplay", "ControlConfig"):
        assert name in text
    assert schema["schema_version"] == SCHEMA_VERSION


def test_kinds_added_in_1_1_round_trip_and_a_1_0_reader_payload_still_parses() -> None:
    from citywatch.contract import Incident, Movement, ZoneOccupancy

    env = dict(camera_id="cam-1", site_id="site-1", ts=datetime.now(timezone.utc), config_version="c",
               model_version="m")
    events = [
        ZoneOccupancy(event_id=uuid.uuid4(), seq=1, zone_id="lane-1", lane=True, interval_s=60, frame_index=1500,
                      occupancy={"car": 3}, occupied_fraction=0.4, queue_vehicles=2, **env),
        Movement(event_id=uuid.uuid4(), seq=2, track_id=3, class_name="bus", entry_zone="north", exit_zone="east",
                 entry_frame=10, exit_frame=90, duration_s=3.2, **env),
        Incident(event_id=uuid.uuid4(), seq=3, incident_id=uuid.uuid4(), incident_type="wrong_way", state="open",
                 track_ids=[3], started_at=datetime.now(timezone.utc), **env),
    ]
    assert parse_message(EventBatch(events=events).model_dump_json()) == events
    old = json.loads(crossing().model_dump_json())
    old["schema_version"] = "1.0"
    assert parse_message(json.dumps(old))[0].schema_version == "1.0"
    with pytest.raises(ValidationError):
        ZoneOccupancy(event_id=uuid.uuid4(), seq=1, zone_id="z", interval_s=60, frame_index=0,
                      occupied_fraction=1.5, **env)


def test_count_total_carries_merged_crossings_of_one_interval() -> None:
    from citywatch.contract import CountTotal

    start = datetime(2026, 5, 1, 8, 0, tzinfo=timezone.utc)
    env = dict(camera_id="cam-1", site_id="site-1", ts=start, config_version="c", model_version="m")
    total = CountTotal(event_id=uuid.uuid4(), seq=9, line_id="l1", direction="out", class_name="motorcycle",
                       count=42, interval_start=start, interval_end=start + timedelta(minutes=1), interval_s=60,
                       first_frame_index=100, last_frame_index=1400, **env)
    assert parse_message(total.model_dump_json()) == [total]
    with pytest.raises(ValidationError, match="interval_end"):
        CountTotal(event_id=uuid.uuid4(), seq=9, line_id="l1", direction="out", class_name="car", count=1,
                   interval_start=start, interval_end=start, interval_s=60, first_frame_index=0,
                   last_frame_index=0, **env)
