"""The incident lifecycle on its own, fed candidates directly: when an incident opens, updates, closes and
may open again, and what ids and times it reports (whatever rule raised it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from citywatch.contract import IncidentType, Severity
from vision.incidents import INCIDENT_NAMESPACE, Candidate, IncidentLifecycle, Observation
from vision.incidents.lifecycle import LifecycleTimes
from vision.results import IncidentResult

FPS = 10.0


@dataclass(frozen=True)
class Times:
    update_every_s: float = 3.0
    close_after_s: float = 1.0
    cooldown_s: float = 5.0


def lifecycle(times: Times | None = None, camera: str = "cam-1") -> IncidentLifecycle:
    chosen = times or Times()

    def by_type(incident_type: IncidentType) -> LifecycleTimes:
        return chosen

    return IncidentLifecycle(camera, FPS, by_type)


def seen(area: str = "road", severity: Severity = "medium", tracks: tuple[int, ...] = (1,),
         open_after_s: float = 1.0, started: int | None = None) -> Candidate:
    obs = Observation("pedestrian_on_carriageway", tracks, None, area, severity, started_frame=started)
    return Candidate(("pedestrian_on_carriageway", area), obs, open_after_s)


def run(life: IncidentLifecycle, frames: range, candidate: Candidate | None) -> list[IncidentResult]:
    out: list[IncidentResult] = []
    for f in frames:
        out += life.step(f, [candidate] if candidate else [])
    return out


def test_a_candidate_opens_once_it_held_for_its_time_and_closes_after_the_close_time() -> None:
    life = lifecycle()
    assert run(life, range(0, 10), seen()) == []  # 9 frames held: not yet 1 s
    opened = life.step(10, [seen()])
    assert [(r.state, r.frame_index, r.started_frame, r.started_s) for r in opened] == [("open", 10, 0, 0.0)]
    assert life.open_incidents == [(opened[0].incident_id, "pedestrian_on_carriageway")]
    assert run(life, range(11, 21), None) == []  # absent 1 s: not closed yet
    closed = life.step(21, [])
    assert [(r.state, r.ended_frame, r.ended_s, r.update_no) for r in closed] == [("closed", 10, 1.0, 1)]
    assert closed[0].incident_id == opened[0].incident_id and life.open_incidents == []


def test_an_open_incident_updates_at_its_interval_and_at_once_when_its_severity_rises() -> None:
    life = lifecycle(Times(update_every_s=2.0))
    out = run(life, range(0, 51), seen())
    assert [(r.state, r.frame_index, r.update_no) for r in out] == [
        ("open", 10, 0), ("update", 30, 1), ("update", 50, 2),
    ]
    rise = life.step(51, [seen(severity="high")])
    assert [(r.state, r.severity, r.update_no) for r in rise] == [("update", "high", 3)]
    assert life.step(52, [seen(severity="low")]) == []  # a fall waits for the interval


def test_the_same_key_cannot_open_again_during_its_cooldown_and_gets_a_new_id_after_it() -> None:
    life = lifecycle(Times(close_after_s=0.5, cooldown_s=5.0))
    first = run(life, range(0, 20), seen()) + run(life, range(20, 30), None)
    assert [(r.state, r.frame_index) for r in first] == [("open", 10), ("closed", 25)]
    assert run(life, range(30, 75), seen()) == []  # back within the cool-down (5 s: until frame 75)
    again = run(life, range(75, 90), seen())
    assert [(r.state, r.frame_index) for r in again] == [("open", 85)]
    assert again[0].incident_id != first[0].incident_id


def test_a_candidate_with_no_open_time_opens_at_once_and_dates_from_its_own_start() -> None:
    out = lifecycle().step(40, [seen(open_after_s=0.0, started=12)])
    assert [(r.state, r.started_frame, r.started_s) for r in out] == [("open", 12, 1.2)]


def test_incident_ids_are_derived_from_camera_key_and_start_so_a_replay_gives_the_same_ones() -> None:
    a = run(lifecycle(), range(0, 11), seen())
    b = run(lifecycle(), range(0, 11), seen())
    other = run(lifecycle(camera="cam-2"), range(0, 11), seen())
    expected = uuid.uuid5(INCIDENT_NAMESPACE, "cam-1|pedestrian_on_carriageway|('road',)|0")
    assert a[0].incident_id == b[0].incident_id == str(expected) != other[0].incident_id


def test_track_ids_accumulate_over_the_incident_up_to_a_bound() -> None:
    life = lifecycle()
    out: list[IncidentResult] = []
    for f in range(0, 200):
        out += life.step(f, [seen(tracks=(f, f + 1000))])
    assert out[0].track_ids[:4] == (0, 1000, 1, 1001) and len(out[-1].track_ids) == 100


def test_close_all_closes_open_incidents_and_forgets_pending_ones() -> None:
    life = lifecycle()
    run(life, range(0, 11), seen("a"))
    life.step(11, [seen("a"), seen("b")])  # b is pending
    closed = life.close_all(12)
    assert [(r.state, r.zone_id) for r in closed] == [("closed", "a")]
    assert len(life) == 0 and life.open_incidents == []


def test_a_later_candidate_for_the_same_key_replaces_the_earlier_one() -> None:
    out = lifecycle().step(0, [seen(severity="low", open_after_s=0.0), seen(severity="high", open_after_s=0.0)])
    assert [r.severity for r in out] == ["high"]
