"""Event making from a frame result (edge/frame_events.py): pure, no MQTT, no outbox."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from citywatch.contract import Incident, LineCrossing, Movement, ZoneOccupancy
from edge.frame_events import Envelope, EventMaker, Origin, result_count
from vision.counting import Crossing
from vision.detections import Detections
from vision.pipeline import FrameResult
from vision.results import IncidentResult, MovementResult, ZoneReport

ENV = Envelope("cam-1", "site-1", "cfg-1", "model-1")
FILE = Origin("clip.mp4:1234", 0)


def frame(index: int = 10, **parts: list) -> FrameResult:
    return FrameResult(index, Detections.empty(), **parts)


def test_a_crossing_becomes_a_line_crossing_with_the_envelope_and_the_seq_given() -> None:
    c = Crossing("l1", "in", "car", track_id=7, frame_index=10, speed_kmh=42.0)
    (p,) = EventMaker("cam-1").pending(frame(crossings=[c]), FILE, ENV)
    ev = p.make(5)
    assert isinstance(ev, LineCrossing) and p.kind == "line_crossing" and p.item is c
    assert (ev.seq, ev.camera_id, ev.site_id, ev.config_version, ev.model_version) == (
        5, "cam-1", "site-1", "cfg-1", "model-1",
    )  # fmt: skip
    assert (ev.line_id, ev.direction, ev.class_name, ev.track_id, ev.frame_index, ev.speed_kmh) == (
        "l1", "in", "car", 7, 10, 42.0,
    )  # fmt: skip


def test_the_event_id_depends_on_the_source_position_not_on_the_seq() -> None:
    c = Crossing("l1", "in", "car", 7, 10)
    maker = EventMaker("cam-1")
    first = maker.pending(frame(crossings=[c]), FILE, ENV)[0]
    again = maker.pending(frame(crossings=[c]), FILE, ENV)[0]
    next_pass = maker.pending(frame(crossings=[c]), Origin("clip.mp4:1234", 1), ENV)[0]
    live = maker.pending(frame(crossings=[c]), Origin("rtsp://cam", "s1700000000000"), ENV)[0]
    assert first.make(1).event_id == first.make(9).event_id == again.make(2).event_id
    assert len({first.make(1).event_id, next_pass.make(1).event_id, live.make(1).event_id}) == 3


def test_an_implausible_speed_is_sent_as_unknown_rather_than_losing_the_event() -> None:
    c = Crossing("l1", "out", "truck", 3, 10, speed_kmh=999.0)
    m = MovementResult(3, "truck", "north", "east", 1, 10, 0.4, speed_kmh=-5.0)
    z = ZoneReport("z1", 10, 1.0, mean_speed_kmh=1000.0)
    pending = EventMaker("cam-1").pending(frame(crossings=[c], movements=[m], zone_reports=[z]), FILE, ENV)
    assert [p.make(1).speed_kmh if p.kind != "zone_occupancy" else p.make(1).mean_speed_kmh for p in pending] == [
        None, None, None,
    ]  # fmt: skip


def test_movements_and_zone_reports_carry_visions_fields_unchanged() -> None:
    m = MovementResult(4, "bus", "north", "east", 2, 12, 0.5, speed_kmh=20.0)
    z = ZoneReport("z1", 10, 2.0, lane=True, occupancy={"car": 2}, occupied_fraction=0.5, vehicles_entered=3)
    mv, zo = (p.make(3) for p in EventMaker("cam-1").pending(frame(movements=[m], zone_reports=[z]), FILE, ENV))
    assert isinstance(mv, Movement) and isinstance(zo, ZoneOccupancy)
    assert (mv.track_id, mv.entry_zone, mv.exit_zone, mv.entry_frame, mv.exit_frame, mv.speed_kmh) == (
        4, "north", "east", 2, 12, 20.0,
    )  # fmt: skip
    assert (zo.zone_id, zo.lane, zo.interval_s, zo.occupancy, zo.vehicles_entered) == ("z1", True, 2.0, {"car": 2}, 3)


def test_results_come_out_as_crossings_movements_zones_then_incidents() -> None:
    result = frame(
        incidents=[IncidentResult("i1", "stopped_vehicle", "open", 10, 5, 0.2)],
        zone_reports=[ZoneReport("z1", 10, 1.0)],
        movements=[MovementResult(1, "car", "a", "b", 1, 10, 0.4)],
        crossings=[Crossing("l1", "in", "car", 1, 10)],
    )
    pending = EventMaker("cam-1").pending(result, FILE, ENV)
    assert [p.kind for p in pending] == ["line_crossing", "movement", "zone_occupancy", "incident"]
    assert result_count(result) == 4 and result_count(frame()) == 0


def test_an_invalid_result_fails_only_its_own_event() -> None:
    bad = MovementResult(99, "spaceship", "north", "east", 0, 1, 0.1)
    good = Crossing("l1", "in", "car", 1, 10)
    ok, broken = EventMaker("cam-1").pending(frame(crossings=[good], movements=[bad]), FILE, ENV)
    assert ok.make(1).kind == "line_crossing"
    with pytest.raises(ValidationError):
        broken.make(1)


def test_every_step_of_an_incident_keeps_its_start_and_snapshot_and_only_open_takes_one() -> None:
    taken: list[uuid.UUID] = []

    def snapshot(iid: uuid.UUID) -> str:
        taken.append(iid)
        return f"snap-{len(taken)}"

    maker = EventMaker("cam-1")
    steps = [
        IncidentResult("i1", "stopped_vehicle", "open", 50, 25, 1.0, track_ids=(7,)),
        IncidentResult("i1", "stopped_vehicle", "update", 75, 25, 1.0, update_no=1, track_ids=(7,)),
        IncidentResult("i1", "stopped_vehicle", "closed", 100, 25, 1.0, update_no=2, ended_frame=100),
    ]
    events = []
    for step in steps:
        (p,) = maker.pending(frame(step.frame_index, incidents=[step]), FILE, ENV, fps=25.0, snapshot=snapshot)
        events.append(p.make(1))
        assert maker.open_incidents == (0 if step.state == "closed" else 1)
    opened, updated, closed = events
    assert all(isinstance(e, Incident) for e in events)
    assert len(taken) == 1 and taken[0] == opened.incident_id == updated.incident_id == closed.incident_id
    assert opened.snapshot_id == updated.snapshot_id == closed.snapshot_id == "snap-1"
    assert opened.started_at == updated.started_at == closed.started_at
    assert closed.ended_at is not None and (closed.ended_at - closed.started_at).total_seconds() == pytest.approx(3.0)
    assert len({e.event_id for e in events}) == 3  # state and update number make each step's id


def test_an_incident_without_a_snapshot_taker_has_no_evidence() -> None:
    r = IncidentResult("i1", "wrong_way", "open", 10, 10, 0.4, message="")
    (p,) = EventMaker("cam-1").pending(frame(incidents=[r]), FILE, ENV)
    ev = p.make(1)
    assert isinstance(ev, Incident) and ev.snapshot_id is None and ev.message is None and ev.ended_at is None
