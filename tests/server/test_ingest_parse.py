"""The ingest's parse step, without a broker or a database: bytes and a topic in, a typed result out."""

from __future__ import annotations

import json

import pytest
from server_testkit import crossing, status_event

from citywatch.contract import SCHEMA_MAJOR, EventBatch, ReferencePicture, StatusPayload, Topics, utcnow
from server.ingest.messages import Events, Ignored, Invalid, Received, Reference, Rejected, Status
from server.ingest.parse import InvalidMessage, classify, parse_message, parsed, resolvable_seqs

TOPICS = Topics("cwparse")


def body(model: object) -> bytes:
    return model.model_dump_json().encode()  # type: ignore[attr-defined]


def test_one_event_on_its_own_cameras_topic_is_that_event() -> None:
    ev = crossing(3)
    result = parse_message(TOPICS, TOPICS.event("site-1", "cam-1", ev.kind), body(ev))
    assert isinstance(result, Events)
    assert [(e.event_id, e.seq) for e in result.events] == [(ev.event_id, 3)]


def test_a_batch_envelope_is_all_of_its_events_in_order() -> None:
    evs = [crossing(1), crossing(2), status_event(3), crossing(4)]
    result = parse_message(TOPICS, TOPICS.event("site-1", "cam-1", "batch"), body(EventBatch(events=evs)))
    assert isinstance(result, Events)
    assert [e.seq for e in result.events] == [1, 2, 3, 4]


def test_a_status_names_the_site_and_camera_of_its_topic() -> None:
    status = StatusPayload(camera_id="cam-1", state="offline", device_id="edge-1")
    assert parse_message(TOPICS, TOPICS.status("site-9", "cam-1"), body(status)) == Status("site-9", "cam-1", status)


def test_a_reference_picture_on_its_cameras_topic_is_a_reference_and_elsewhere_is_invalid() -> None:
    pic = ReferencePicture(camera_id="cam-1", site_id="site-1", request_id="r1", taken_at=utcnow(), width=2,
                           height=2, frames_used=3, jpeg_base64="/9j/AA==")  # fmt: skip
    assert parse_message(TOPICS, TOPICS.reference("site-1", "cam-1"), body(pic)) == Reference(pic)
    wrong = classify(TOPICS, TOPICS.reference("site-1", "cam-2"), body(pic))
    assert isinstance(wrong, Invalid) and "published on the topic of site-1/cam-2" in wrong.reason
    broken = classify(TOPICS, TOPICS.reference("site-1", "cam-1"), b'{"kind": "reference_picture"}')
    assert isinstance(broken, Invalid) and broken.reason.startswith("invalid reference picture")


def test_a_cleared_retained_status_is_ignored() -> None:
    assert parse_message(TOPICS, TOPICS.status("site-1", "cam-1"), b"") == Ignored()


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("elsewhere/site-1/cam-1/event/line_crossing", None, "topic not understood"),
        (TOPICS.control("site-1", "cam-1", "committed"), None, "does not consume 'control'"),
        (TOPICS.event("site-1", "cam-1", "line_crossing"), b"", "empty payload"),
        (TOPICS.event("site-1", "cam-1", "line_crossing"), b"{not json", "invalid JSON"),
        (TOPICS.event("site-1", "cam-1", "batch"), None, "a 'line_crossing' message was published on the 'batch'"),
        (TOPICS.event("site-1", "cam-2", "line_crossing"), None, "was published on the topic of site-1/cam-2"),
        (
            TOPICS.status("site-1", "cam-2"),
            body(StatusPayload(camera_id="cam-1", state="online", device_id="e")),
            "status of camera",
        ),
        (TOPICS.status("site-1", "cam-1"), b'{"state": "sideways"}', "invalid status message"),
    ],
)
def test_what_cannot_be_stored_is_refused_with_a_readable_reason(
    topic: str, payload: bytes | None, reason: str
) -> None:
    data = body(crossing(1)) if payload is None else payload
    with pytest.raises(InvalidMessage, match=reason):
        parse_message(TOPICS, topic, data)
    result = classify(TOPICS, topic, data)
    assert isinstance(result, Invalid) and reason in result.reason and not result.internal


def test_a_parser_failure_is_kept_as_an_internal_dead_letter_instead_of_raising() -> None:
    class Broken(Topics):
        def parse(self, topic: str) -> tuple[str, str, str, str]:
            raise RuntimeError("a bug in the parser")

    result = classify(Broken("cwparse"), TOPICS.event("site-1", "cam-1", "line_crossing"), body(crossing(1)))
    assert isinstance(result, Invalid) and result.internal
    assert result.reason.startswith("internal error while parsing") and "a bug in the parser" in result.reason


def test_a_received_message_counts_its_events_once_parsed_and_none_before() -> None:
    batch = EventBatch(events=[crossing(s) for s in (1, 2, 3)])
    m = Received(TOPICS.event("site-1", "cam-1", "batch"), body(batch), 7, 1, utcnow(), 0)
    assert m.n_events == 0 and m.result is None
    done = parsed(TOPICS, m)
    assert done.n_events == 3 and done.mid == 7 and done.payload is m.payload
    assert m._replace(result=Rejected("refused", list(batch.events))).n_events == 0  # not to be stored


def test_a_dead_letter_resolves_only_readable_seqs_of_the_topics_camera_in_this_major_version() -> None:
    mine = [crossing(s).model_dump(mode="json") for s in (5, 2)]
    other = crossing(9, camera_id="cam-2").model_dump(mode="json")
    newer = crossing(11).model_dump(mode="json") | {"schema_version": f"{SCHEMA_MAJOR + 1}.0"}
    bad_seq = crossing(1).model_dump(mode="json") | {"seq": "12"}
    payload = json.dumps({"kind": "batch", "events": [*mine, other, newer, bad_seq]}).encode()
    assert resolvable_seqs("cam-1", payload) == (2, 5)
    assert resolvable_seqs("cam-1", b"{not json") == ()
    assert resolvable_seqs("cam-1", json.dumps(newer).encode()) == ()
