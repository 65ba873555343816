"""The event contract: what edge and server agree on."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from citywatch.contract import (
    MAX_REFERENCE_JPEG_BYTES,
    SCHEMA_VERSION,
    CameraStatus,
    ControlCommitted,
    ControlReferencePicture,
    EventBatch,
    LineCrossing,
    ReferencePicture,
    Topics,
    deterministic_event_id,
    json_schema,
    parse_control,
    parse_message,
    parse_reference,
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


# --- 1.3: bounded, finite, NUL-free, strictly typed ------------------------------------------------


def _payload(**kw) -> str:
    return json.dumps({**json.loads(crossing().model_dump_json()), **kw})


def _refused(payload: str, field: str) -> None:
    """The message is refused and the error names the field."""
    with pytest.raises(ValidationError) as err:
        parse_message(payload)
    assert field in {str(p) for e in err.value.errors() for p in e["loc"]}, err.value


def test_schema_version_is_1_4_and_older_events_with_sane_values_are_still_read() -> None:
    assert SCHEMA_VERSION == "1.4"
    assert parse_message(_payload(schema_version="1.2"))[0].schema_version == "1.2"
    assert parse_message(_payload(schema_version="1.3"))[0].schema_version == "1.3"


def test_a_reference_picture_request_and_its_picture_travel_on_their_own_topics() -> None:
    t = Topics("citywatch")
    ask = parse_control(ControlReferencePicture(camera_id="cam-1", request_id="r1", seconds=5).model_dump_json())
    assert isinstance(ask, ControlReferencePicture) and ask.seconds == 5
    with pytest.raises(ValidationError):  # a minute of frames at most
        parse_control(ControlReferencePicture(camera_id="cam-1", request_id="r1").model_dump_json()
                      .replace('"seconds":10.0', '"seconds":3600.0'))
    assert t.reference("s1", "cam-1") == "citywatch/s1/cam-1/reference"
    assert t.parse(t.reference("s1", "cam-1")) == ("s1", "cam-1", "reference", None)
    pic = ReferencePicture(camera_id="cam-1", site_id="s1", request_id="r1", taken_at=datetime.now(timezone.utc),
                           width=4, height=3, frames_used=10, jpeg_base64=base64.b64encode(b"\xff\xd8jpeg").decode())
    assert parse_reference(pic.model_dump_json()) == pic
    too_big = pic.model_dump() | {"jpeg_base64": "A" * (MAX_REFERENCE_JPEG_BYTES * 2)}
    with pytest.raises(ValidationError):  # the broker's packet limit is far above what is accepted
        parse_reference(json.dumps(too_big, default=str))


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", 2**63), ("seq", 10**30), ("track_id", 2**53), ("track_id", 2**63), ("frame_index", 2**53)],
)
def test_integers_beyond_storage_or_plausibility_are_refused_naming_the_field(field: str, value: int) -> None:
    _refused(_payload(**{field: value}), field)


def test_the_largest_seq_a_signed_64_bit_column_holds_is_accepted() -> None:
    assert parse_message(_payload(seq=2**63 - 1))[0].seq == 2**63 - 1


@pytest.mark.parametrize("field", ["seq", "track_id", "frame_index"])
@pytest.mark.parametrize("value", [True, "1", 1.0])
def test_integers_are_strict_on_the_wire_bool_string_or_float_is_refused(field: str, value: object) -> None:
    _refused(_payload(**{field: value}), field)


def test_a_bool_must_be_a_json_bool() -> None:
    zone = {
        "event_id": str(uuid.uuid4()), "camera_id": "cam-1", "site_id": "site-1", "seq": 1,
        "ts": "2026-01-01T00:00:00Z", "config_version": "c", "model_version": "m", "kind": "zone_occupancy",
        "zone_id": "z1", "interval_s": 10, "frame_index": 1, "occupied_fraction": 0.5,
    }  # fmt: skip
    assert parse_message(json.dumps(zone))[0].lane is False
    _refused(json.dumps({**zone, "lane": 1}), "lane")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_floats_that_python_json_accepts_are_refused(literal: str) -> None:
    payload = _payload(speed_kmh=1.0).replace('"speed_kmh": 1.0', f'"speed_kmh": {literal}')
    assert literal in payload
    _refused(payload, "speed_kmh")


@pytest.mark.parametrize("field", ["config_version", "model_version"])
def test_nul_in_text_is_refused(field: str) -> None:
    _refused(_payload(**{field: "v1\u0000x"}), field)


def test_nul_in_ids_is_refused() -> None:
    _refused(_payload(line_id="l\u00001"), "line_id")
    _refused(_payload(camera_id="cam-1\u0000"), "camera_id")


def test_text_and_lists_are_length_bounded() -> None:
    _refused(_payload(config_version="v" * 65), "config_version")
    _refused(_payload(schema_version="1." + "0" * 5000), "schema_version")
    with pytest.raises(ValidationError):
        EventBatch.model_validate({"events": [json.loads(_payload())] * 1001})


def test_times_outside_the_representable_range_are_refused_not_overflowed() -> None:
    _refused(_payload(ts="0001-01-01T00:00:00+14:00"), "ts")
    _refused(_payload(ts="9999-12-31T23:59:59-14:00"), "ts")
    # a dead RTC's 1970 is representable: the server judges plausibility (dead letter, not a crash)
    assert parse_message(_payload(ts="1970-01-01T00:00:05Z"))[0].ts.year == 1970


def _status(**kw) -> str:
    base = {
        "event_id": str(uuid.uuid4()), "camera_id": "cam-1", "site_id": "site-1", "seq": 2,
        "ts": "2026-01-01T00:00:00Z", "config_version": "c", "model_version": "m", "kind": "camera_status",
        "source_state": "ok", "fps_in": 25, "fps_processed": 24.5, "inference_ms": 20, "outbox_depth": 3,
        "outbox_first_seq": 1, "uptime_s": 5,
    }  # fmt: skip
    return json.dumps({**base, **kw})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("outbox_first_seq", 2**63), ("outbox_depth", 2**63), ("frames_total", 2**53), ("fps_in", 1e6),
        ("uptime_s", 1e300), ("inference_ms", 1e12), ("message", "x\u0000"), ("message", "x" * 501),
    ],
)  # fmt: skip
def test_camera_status_values_are_bounded(field: str, value: object) -> None:
    assert parse_message(_status())
    _refused(_status(**{field: value}), field)


def _total(**kw) -> str:
    base = {
        "event_id": str(uuid.uuid4()), "camera_id": "cam-1", "site_id": "site-1", "seq": 3,
        "ts": "2026-01-01T00:00:00Z", "config_version": "c", "model_version": "m", "kind": "count_total",
        "line_id": "l1", "direction": "in", "class_name": "car", "count": 6000,
        "interval_start": "2026-01-01T00:00:00Z", "interval_end": "2026-01-01T00:01:00Z", "interval_s": 60,
        "first_frame_index": 0, "last_frame_index": 1500,
    }  # fmt: skip
    return json.dumps({**base, **kw})


def test_counts_are_bounded_per_second_of_their_interval() -> None:
    assert parse_message(_total())[0].count == 6000  # 100/s over 60 s: the most that is plausible
    with pytest.raises(ValidationError, match="crossings/s"):
        parse_message(_total(count=6001))
    _refused(_total(count=2**63), "count")
    _refused(_total(count=10**30), "count")


def test_zone_counts_are_bounded() -> None:
    zone = {
        "event_id": str(uuid.uuid4()), "camera_id": "cam-1", "site_id": "site-1", "seq": 1,
        "ts": "2026-01-01T00:00:00Z", "config_version": "c", "model_version": "m", "kind": "zone_occupancy",
        "zone_id": "z1", "interval_s": 10, "frame_index": 1, "occupied_fraction": 0.5,
    }  # fmt: skip
    assert parse_message(json.dumps({**zone, "vehicles_entered": 1000}))
    with pytest.raises(ValidationError, match="vehicles_entered"):
        parse_message(json.dumps({**zone, "vehicles_entered": 1001}))
    _refused(json.dumps({**zone, "vehicles_entered": 2**63}), "vehicles_entered")
    _refused(json.dumps({**zone, "occupancy": {"car": 2**63}}), "car")
    _refused(json.dumps({**zone, "queue_vehicles": 10**30}), "queue_vehicles")


def test_control_and_status_messages_are_strict_and_bounded() -> None:
    from citywatch.contract import parse_status

    ok = ControlCommitted(camera_id="cam-1", seq=5).model_dump_json()
    assert parse_control(ok).seq == 5
    with pytest.raises(ValidationError):
        parse_control(ok.replace('"seq":5', '"seq":true'))
    with pytest.raises(ValidationError):
        parse_control(ok.replace('"seq":5', f'"seq":{2**63}'))
    status = {"state": "online", "camera_id": "cam-1", "device_id": "box-1"}
    assert parse_status(json.dumps(status)).state == "online"
    with pytest.raises(ValidationError, match="device_id"):
        parse_status(json.dumps({**status, "device_id": "box\u00001"}))
