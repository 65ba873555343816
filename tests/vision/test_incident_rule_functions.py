"""Each incident rule on its own, over hand-built scenes: what it reports this frame (candidates), without
the lifecycle's timing. The engine's end-to-end behaviour is in test_incident_rules.py."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from citywatch.config import CameraConfig, CongestionRule, CrashCandidateRule, IncidentsConfig, StoppedVehicleRule
from citywatch.contract import CLASS_NAMES
from vision.detections import Detections
from vision.incidents import Observation, Scene
from vision.incidents.people import people_on_carriageway, person_roles, riders
from vision.incidents.rules import CrashCandidates, StoppedVehicles, congestion, wrong_way
from vision.incidents.scene import Key, Layout, TrackMemory

FPS = 10.0
LANE = {"id": "sb-1", "polygon": [[400, 0], [500, 0], [500, 600], [400, 600]], "direction": [[450, 0], [450, 600]]}
ROAD = {"id": "road", "kind": "carriageway", "polygon": [[0, 400], [1000, 400], [1000, 600], [0, 600]]}

Row = tuple[int, str, float, float, float]  # track id, class, anchor x, anchor y (bottom centre), box size


def layout(**extra: object) -> Layout:
    data: dict[str, object] = {"id": "cam", "source": "x", "lanes": [LANE]}
    data.update(extra)
    return Layout.of(CameraConfig.model_validate(data))


def scene(rows: list[Row], frame: int = 0, still: set[int] | None = None, where: Layout | None = None,
          speeds: dict[int, float] | None = None) -> Scene:
    boxes = [[x - s / 2, y - s, x + s / 2, y] for _, _, x, y, s in rows]
    dets = Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4), np.ones(len(rows)),
        np.asarray([CLASS_NAMES.index(n) for _, n, *_ in rows]), np.asarray([t for t, *_ in rows]),
    )
    return Scene.of(dets, frame, FPS, where or layout(), still or set(), speeds or {})


def memory(scenes: list[Scene]) -> TrackMemory:
    tracks = TrackMemory(FPS, stationary_window=20, hist_len=64)
    for s in scenes:
        tracks.observe(s)
    return tracks


def none_open(key: Key) -> Observation | None:
    return None


def test_scene_places_each_track_in_its_lane_carriageway_or_nowhere() -> None:
    rows: list[Row] = [(1, "car", 450, 300, 40), (2, "car", 100, 500, 40), (3, "car", 100, 100, 40)]
    s = scene(rows, where=layout(zones=[ROAD]))
    assert [s.area_of(i) for i in range(3)] == [("sb-1", None), (None, "road"), (None, None)]
    assert s.layout.units["sb-1"].tolist() == [0.0, 1.0]


def test_congestion_needs_enough_vehicles_standing_or_slow_in_one_lane() -> None:
    rule = CongestionRule()
    cars = [(k, "car", 450.0, 560.0 - 60 * k, 40.0) for k in range(1, 9)]
    four = scene(cars[:4], still={1, 2, 3, 4})
    [c] = congestion(four, rule)
    assert c.key == ("congestion", "sb-1") and c.open_after_s == rule.open_after_s
    assert c.observation.track_ids == (1, 2, 3, 4) and c.observation.severity == rule.severity
    assert congestion(scene(cars[:3], still={1, 2, 3}), rule) == []  # too few
    assert congestion(scene(cars[:4], still={1}), rule) == []  # most of them moving
    assert congestion(scene(cars, still=set(range(1, 9))), rule)[0].observation.severity == "high"  # twice as many
    fast = {k: 40.0 for k in range(1, 5)}
    assert congestion(scene(cars[:4], still={1, 2, 3, 4}, speeds=fast), rule) == []  # calibrated: speeds decide


def test_a_person_over_a_bicycle_box_is_its_rider_and_a_lone_person_a_pedestrian() -> None:
    rows = [(1, "bicycle", 100.0, 500.0, 50.0), (2, "person", 100.0, 490.0, 40.0), (3, "person", 700.0, 500.0, 40.0)]
    s = scene(rows, where=layout(lanes=[], zones=[ROAD]))
    assert riders(s.names, s.xyxy) == {1: 0}
    roles = person_roles(s, memory([s]))
    assert roles == ["cyclist", "rider", "pedestrian"]  # not yet known to ride it: the bicycle stands for it
    [c] = people_on_carriageway(s, IncidentsConfig().pedestrian, roles, "pedestrian")
    assert c.key == ("pedestrian_on_carriageway", "road") and c.observation.track_ids == (3,)
    assert c.observation.zone_id == "road" and c.observation.lane_id is None
    [b] = people_on_carriageway(s, IncidentsConfig().cyclist, roles, "cyclist")
    assert b.observation.track_ids == (1,)


def test_a_person_seen_over_a_motorcycle_is_a_motorcyclist_and_never_on_foot() -> None:
    where = layout(lanes=[], zones=[ROAD])
    frames = [scene([(1, "motorcycle", 100.0 + f, 500.0, 50.0), (2, "person", 100.0 + f, 490.0, 40.0)], f, where=where)
              for f in range(3)]
    tracks = memory(frames)
    for s in frames:
        roles = person_roles(s, tracks)
    assert roles == [None, "motorcyclist"]
    alone = scene([(2, "person", 110.0, 490.0, 40.0)], 3, where=where)  # the motorcycle box is missed
    tracks.observe(alone)
    assert person_roles(alone, tracks) == ["motorcyclist"]


def test_wrong_way_reports_a_track_moving_against_its_lane_for_long_enough() -> None:
    rule = IncidentsConfig().wrong_way  # 1.5 s
    against = [scene([(1, "car", 450.0, 580.0 - 6 * f, 40.0)], f) for f in range(20)]
    tracks = memory(against)
    [c] = wrong_way(against[-1], rule, tracks, none_open)
    assert c.key == ("wrong_way", 1) and c.observation.lane_id == "sb-1" and c.observation.started_frame == 4
    assert wrong_way(against[10], rule, memory(against[:11]), none_open) == []  # not seen for 1.5 s yet
    along = [scene([(1, "car", 450.0, 100.0 + 6 * f, 40.0)], f) for f in range(20)]
    assert wrong_way(along[-1], rule, memory(along), none_open) == []


def test_wrong_way_message_says_pixels_on_an_uncalibrated_camera() -> None:
    against = [scene([(1, "car", 450.0, 580.0 - 6 * f, 40.0)], f) for f in range(20)]
    [c] = wrong_way(against[-1], IncidentsConfig().wrong_way, memory(against), none_open)
    assert c.observation.message == "car moving against lane sb-1 (90 px in 1.5 s)"


#: 10 px = 1 m on the ground, everywhere in the frame.
TEN_PX_A_METRE = {"image_points": [[0, 0], [1000, 0], [1000, 1000], [0, 1000]],
                  "ground_points": [[0, 0], [100, 0], [100, 100], [0, 100]]}


def dashboard_pattern(incident_type: str) -> re.Pattern[str]:
    """The regular expression server/static/js/messages.js reads an incident type's message back with."""
    js = (Path(__file__).parents[2] / "server/static/js/messages.js").read_text()
    found = re.search(rf'incident_type === "{incident_type}"\s*&& \(r = /(.+?)/\.exec\(m\)\)', js)
    assert found, f"messages.js no longer reads {incident_type} messages back"
    return re.compile(found.group(1).replace("\\/", "/"))


def test_wrong_way_message_says_metres_and_kmh_on_a_calibrated_camera() -> None:
    where = layout(calibration=TEN_PX_A_METRE)
    rule = IncidentsConfig().wrong_way
    frames = [scene([(1, "car", 450.0, 580.0 - 6 * f, 40.0)], f, where=where) for f in range(20)]
    [c] = wrong_way(frames[-1], rule, memory(frames), none_open)
    assert c.observation.message == "car moving against lane sb-1 (9.0 m in 1.5 s)"  # no estimate: no speed
    timed = [scene([(1, "car", 450.0, 580.0 - 6 * f, 40.0)], f, where=where, speeds={1: 21.6}) for f in range(20)]
    [c] = wrong_way(timed[-1], rule, memory(timed), none_open)
    assert c.observation.message == "car moving against lane sb-1 (9.0 m in 1.5 s, 22 km/h)"
    read = dashboard_pattern("wrong_way").match(c.observation.message)
    assert read and read.groups() == ("car", "sb-1", "9.0", "m", "1.5", "22")


def test_wrong_way_message_falls_back_to_pixels_beyond_the_calibrated_horizon() -> None:
    # a 10 m square seen in perspective: its sides meet at image row 350, the horizon; the track starts above it
    horizon = {"image_points": [[0, 600], [1000, 600], [600, 400], [400, 400]],
               "ground_points": [[0, 0], [10, 0], [10, 10], [0, 10]]}
    frames = [scene([(1, "car", 450.0, 280.0 + 6 * f, 40.0)], f, where=layout(
        calibration=horizon, lanes=[{**LANE, "direction": [[450, 600], [450, 0]]}])) for f in range(20)]
    [c] = wrong_way(frames[-1], IncidentsConfig().wrong_way, memory(frames), none_open)
    assert c.observation.message == "car moving against lane sb-1 (90 px in 1.5 s)"
    read = dashboard_pattern("wrong_way").match(c.observation.message or "")
    assert read and read.group(4) == "px"


def test_an_open_wrong_way_incident_stays_while_its_track_is_seen() -> None:
    s = scene([(1, "car", 450.0, 300.0, 40.0)])
    kept = Observation("wrong_way", (1,), "sb-1")
    [c] = wrong_way(s, IncidentsConfig().wrong_way, memory([s]), lambda key: kept if key == ("wrong_way", 1) else None)
    assert c.observation is kept and c.open_after_s == 0.0


def test_a_stopped_vehicle_alone_in_its_lane_is_reported_after_the_alone_time_only() -> None:
    rule = StoppedVehicleRule(alone_after_s=5.0)
    # stationary from frame 19 on (a 2 s window): standing still since frame 0
    frames = [scene([(1, "car", 450.0, 300.0, 40.0)], f, still={1} if f >= 19 else set()) for f in range(51)]
    tracks, stopped = memory(frames[:50]), StoppedVehicles()
    assert stopped(frames[49], rule, tracks, none_open) == []  # 4.9 s
    tracks.observe(frames[50])
    [c] = stopped(frames[50], rule, tracks, none_open)  # 5 s
    assert c.key == ("stopped_vehicle", 1) and c.observation.started_frame == 0 and c.open_after_s == 0.0
    assert "alone" in (c.observation.message or "")


def test_a_vehicle_queued_behind_a_stationary_one_is_not_a_stopped_vehicle() -> None:
    rule = StoppedVehicleRule(alone_after_s=1.0, open_after_s=1.0)
    rows = [(1, "car", 450.0, 300.0, 40.0), (2, "car", 450.0, 250.0, 40.0)]  # 2 is behind 1 (the lane runs down)
    frames = [scene(rows, f, still={1, 2} if f >= 19 else set()) for f in range(60)]
    out = StoppedVehicles()(frames[-1], rule, memory(frames), none_open)
    assert [c.key for c in out] == []  # not alone either: 1 has 2 behind it, 2 queues behind 1
    passing = StoppedVehicles()
    tracks = memory([])
    for f in range(60):  # 1 stands; 3 drives past it down the lane
        rows = [(1, "car", 450.0, 300.0, 40.0), (3, "car", 450.0, 10.0 * f, 40.0)]
        s = scene(rows, f, still={1} if f >= 19 else set())
        tracks.observe(s)
        out = passing(s, rule, tracks, none_open)
    assert [(c.key, c.open_after_s) for c in out] == [(("stopped_vehicle", 1), 3.0)]


def test_crash_candidate_pairs_sudden_stops_close_together_and_not_those_in_a_live_incident() -> None:
    rule = CrashCandidateRule()
    where = layout(lanes=[], zones=[ROAD])
    crashes, tracks = CrashCandidates(), memory([])
    for f in range(60):
        still = {1, 2} if f >= 50 else set()
        s = scene([(1, "car", 200.0 + 8 * min(f, 31), 500.0, 40.0), (2, "car", 700.0 - 8 * min(f, 31), 500.0, 40.0)],
                  f, still=still, where=where)
        crashes.observe(s, rule, tracks, tracks.observe(s))
    assert sorted(crashes.sudden) == [1, 2]
    [c] = crashes(s, rule, [])
    assert c.key == ("crash_candidate", 1) and c.observation.track_ids == (1, 2)
    assert c.observation.confidence == rule.confidence and c.observation.started_frame == 50
    live = [(c.key, c.observation, False)]
    assert crashes(s, rule, live) == []  # pending already: no second one
    assert crashes(s, rule, [(c.key, c.observation, True)])[0].observation is c.observation  # open: it stays
    crashes.forget([1], 60, ttl=150)
    assert sorted(crashes.sudden) == [2] and crashes(s, rule, []) == []
