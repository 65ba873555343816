"""Incident rules on synthetic tracks: each fires where it must, and stays quiet where it must not
(a queue at a red light, a parked car in a parking zone, riders, vehicles going the right way)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from citywatch.config import CameraConfig, CountingConfig, IncidentsConfig, effective_incidents, parse_config
from citywatch.contract import CLASS_NAMES
from vision.detections import Detections
from vision.incidents import IncidentEngine
from vision.results import IncidentResult
from vision.zones import StationaryState

FPS = 10.0
# One lane, traffic moving down the image (y grows) towards a stop line at y = 560.
LANE = {"id": "sb-1", "polygon": [[400, 0], [500, 0], [500, 600], [400, 600]], "direction": [[450, 0], [450, 600]]}

Position = tuple[float, float] | None  # anchor (bottom centre) or absent
Object = tuple[int, str, Callable[[int], Position], float]  # track id, class, path, box size


def camera(**extra: object) -> CameraConfig:
    data: dict[str, object] = {"id": "cam-t", "source": "x", "lanes": [LANE]}
    data.update(extra)
    return CameraConfig.model_validate(data)


def run(cam: CameraConfig, objects: list[Object], frames: int, config: IncidentsConfig | None = None,
        speeds: Callable[[int], dict[int, float]] | None = None) -> list[IncidentResult]:
    counting = CountingConfig()
    engine = IncidentEngine(cam, config or effective_incidents(None, cam), fps=FPS, counting=counting)
    still = StationaryState(counting, FPS)
    out: list[IncidentResult] = []
    for f in range(frames):
        boxes, cls, ids = [], [], []
        for tid, name, path, size in objects:
            p = path(f)
            if p is None:
                continue
            x, y = p
            h = size * (1.8 if name == "person" else 1.0)
            w = size * (0.5 if name == "person" else 1.0)
            boxes.append([x - w / 2, y - h, x + w / 2, y])
            cls.append(CLASS_NAMES.index(name))
            ids.append(tid)
        xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
        dets = Detections(xyxy, np.ones(len(ids)), np.asarray(cls), np.asarray(ids))
        out += engine.update(dets, f, still.update(dets, f), speeds(f) if speeds else {})
    assert engine.tracked < 200  # bounded state
    return out


def still_at(x: float, y: float, start: int = 0, end: int = 10**9) -> Callable[[int], Position]:
    return lambda f: (x, y) if start <= f < end else None


def moving(
    x: float, y0: float, vy: float, start: int, vx: float = 0.0, until: int = 10**9
) -> Callable[[int], Position]:
    def path(f: int) -> Position:
        if f < start or f >= until:
            return None
        y, xx = y0 + vy * (f - start), x + vx * (f - start)
        return (xx, y) if -50 <= y <= 650 and 0 <= xx <= 1000 else None
    return path


def arriving(x: float, stop_y: float, start: int, leave: int, v0: float = 8.0, decel_frames: int = 40,
             ) -> Callable[[int], Position]:
    """Decelerates smoothly to a stop at ``stop_y`` (a queue forming), waits, then drives on at ``leave``."""
    y0 = stop_y - v0 * decel_frames / 2

    def path(f: int) -> Position:
        if f < start:
            return None
        t = f - start
        if t < decel_frames:
            return x, y0 + v0 * t - v0 * t * t / (2 * decel_frames)
        if f < leave:
            return x, stop_y
        y = stop_y + 0.1 * (f - leave) ** 2
        return (x, y) if y <= 650 else None
    return path


def kinds(results: list[IncidentResult]) -> list[tuple[str, str]]:
    return [(r.incident_type, r.state) for r in results]


def test_stopped_vehicle_opens_while_traffic_passes_and_closes_when_it_drives_off() -> None:
    objects: list[Object] = [(1, "car", still_at(450, 300, 0, 400), 40.0)]
    objects += [(10 + k, "car", moving(450, 0, 10, 50 * k), 40.0) for k in range(8)]  # one every 5 s
    res = [r for r in run(camera(), objects, 500) if r.incident_type == "stopped_vehicle"]
    assert [r.state for r in res] == ["open", "closed"]
    opened, closed = res
    assert opened.incident_id == closed.incident_id and opened.track_ids == (1,) and opened.lane_id == "sb-1"
    assert opened.started_frame == 0 and 200 <= opened.frame_index <= 240  # 20 s stationary with traffic passing
    assert opened.severity == "high" and closed.ended_frame == 399 and closed.update_no >= 1


def test_a_queue_at_a_red_light_raises_nothing() -> None:
    # Four cars decelerate into a queue at the stop line, wait a 60 s red phase, then go on green.
    objects: list[Object] = [
        (k + 1, "car", arriving(450, 560 - 50 * k, start=30 * k, leave=700 + 10 * k), 40.0) for k in range(4)
    ]
    assert run(camera(), objects, 900) == []


def test_a_car_parked_in_a_parking_zone_raises_nothing_but_the_same_car_in_the_lane_does() -> None:
    parking = {"id": "bay", "kind": "parking", "polygon": [[420, 250], [500, 250], [500, 350], [420, 350]]}
    parked: list[Object] = [(1, "car", still_at(460, 300), 40.0)]
    assert run(camera(zones=[parking]), parked, 1500) == []
    res = run(camera(), parked, 1500)  # alone in a live lane: after alone_after_s (90 s)
    assert kinds(res) == [("stopped_vehicle", "open"), ("stopped_vehicle", "update")]  # an update every 30 s
    assert [r.frame_index for r in res] == [900, 1200] and "alone" in (res[0].message or "")


def test_a_vehicle_queued_behind_a_stopped_one_is_not_a_second_incident() -> None:
    objects: list[Object] = [(1, "car", still_at(450, 300), 40.0), (2, "car", still_at(450, 250), 40.0)]
    objects += [(10 + k, "car", moving(450, 0, 10, 40 * k), 40.0) for k in range(6)]  # traffic passes both
    res = run(camera(), objects, 300)
    assert {(r.incident_type, r.track_ids) for r in res} == {("stopped_vehicle", (1,))}


def test_wrong_way_opens_for_sustained_motion_against_the_lane_only() -> None:
    against: list[Object] = [(1, "car", moving(450, 580, -6, 0), 40.0)]
    res = run(camera(), against, 80)
    assert kinds(res)[0] == ("wrong_way", "open") and res[0].lane_id == "sb-1" and res[0].track_ids == (1,)
    assert res[0].frame_index <= 20
    along: list[Object] = [(1, "car", moving(450, 0, 6, 0), 40.0)]
    jitter: list[Object] = [(1, "car", lambda f: (450 + (f % 3), 300 - 3 * (f % 2)), 40.0)]
    across: list[Object] = [(1, "car", moving(400, 300, -0.5, 0, vx=6), 40.0)]
    pedestrian: list[Object] = [(1, "person", moving(450, 580, -6, 0), 20.0)]
    lane_only = IncidentsConfig(pedestrian={"enabled": False})
    for objs in (along, jitter, across, pedestrian):
        assert [r for r in run(camera(), objs, 100, lane_only) if r.incident_type == "wrong_way"] == []


def test_congestion_opens_after_its_time_updates_and_closes_when_the_lane_clears() -> None:
    objects: list[Object] = [(k + 1, "car", still_at(450, 560 - 60 * k, 0, 2000), 40.0) for k in range(5)]
    res = [r for r in run(camera(), objects, 2400) if r.incident_type == "congestion"]
    states = [r.state for r in res]
    assert states[0] == "open" and states[-1] == "closed" and set(states[1:-1]) == {"update"}
    assert 1200 <= res[0].frame_index <= 1230  # 120 s of a full, standing lane
    assert len({r.incident_id for r in res}) == 1 and [r.update_no for r in res] == list(range(len(res)))
    assert res[-1].ended_frame == 1999
    # calibrated: speeds decide, not standing still
    slow = run(camera(), objects, 1300, speeds=lambda f: {k + 1: 5.0 for k in range(5)})
    fast = run(camera(), objects, 1300, speeds=lambda f: {k + 1: 40.0 for k in range(5)})
    assert ("congestion", "open") in kinds(slow) and "congestion" not in {r.incident_type for r in fast}


def test_pedestrian_on_the_carriageway_but_not_a_rider_nor_on_the_pavement() -> None:
    cw = {"id": "road", "kind": "carriageway", "polygon": [[0, 400], [1000, 400], [1000, 600], [0, 600]]}
    no_lanes = camera(lanes=[], zones=[cw])
    walker: list[Object] = [(1, "person", moving(100, 500, 0, 0, vx=2, until=100), 30.0)]
    res = run(no_lanes, walker, 200)
    assert kinds(res) == [("pedestrian_on_carriageway", "open"), ("pedestrian_on_carriageway", "closed")]
    assert res[0].zone_id == "road" and res[0].frame_index == 30
    rider: list[Object] = [
        (1, "motorcycle", moving(100, 500, 0, 0, vx=8), 50.0), (2, "person", moving(100, 480, 0, 0, vx=8), 30.0),
    ]
    assert run(no_lanes, rider, 100) == []
    pavement: list[Object] = [(1, "person", moving(100, 300, 0, 0, vx=2), 30.0)]
    assert run(no_lanes, pavement, 100) == []
    cyclist: list[Object] = [(1, "bicycle", moving(100, 500, 0, 0, vx=3), 40.0)]
    assert kinds(run(no_lanes, cyclist, 60))[0] == ("cyclist_on_carriageway", "open")
    # cyclists in lanes are normal traffic unless configured otherwise
    in_lane: list[Object] = [(1, "bicycle", moving(450, 100, 3, 0), 40.0)]
    assert run(camera(), in_lane, 60) == []


def test_a_flickering_detection_opens_one_incident_and_cooldown_prevents_a_flood() -> None:
    cw = {"id": "road", "kind": "carriageway", "polygon": [[0, 400], [1000, 400], [1000, 600], [0, 600]]}
    cam = camera(lanes=[], zones=[cw])
    # seen 2 frames in 3 for 20 s, gone 7 s, back for 10 s (within the 30 s cool-down), gone, back after it
    def path(f: int) -> Position:
        on = (0 <= f < 200 and f % 3 != 2) or (270 <= f < 370) or (700 <= f < 800)
        return (300.0, 500.0) if on else None
    res = run(cam, [(1, "person", path, 30.0)], 900)
    assert kinds(res) == [("pedestrian_on_carriageway", s) for s in ("open", "closed", "open", "closed")]
    assert res[0].incident_id == res[1].incident_id != res[2].incident_id


def test_crash_candidate_for_two_sudden_stops_close_together_with_lower_confidence() -> None:
    def crash(x0: float, vx: float) -> Callable[[int], Position]:
        return lambda f: (x0 + vx * min(f, 30), 300.0)

    cw = {"id": "road", "kind": "carriageway", "polygon": [[0, 0], [1000, 0], [1000, 600], [0, 600]]}
    cam = camera(lanes=[], zones=[cw])
    cfg = IncidentsConfig(stopped_vehicle={"enabled": False})
    res = run(cam, [(1, "car", crash(200, 8), 40.0), (2, "car", crash(700, -8), 40.0)], 120, cfg)
    assert kinds(res) == [("crash_candidate", "open")]
    assert res[0].track_ids == (1, 2) and res[0].confidence == 0.4 and res[0].severity == "high"
    # the same two cars stopping far apart, or one of them alone, is no crash
    far = run(cam, [(1, "car", crash(0, 8), 40.0), (2, "car", crash(900, -8), 40.0)], 120, cfg)
    alone = run(cam, [(1, "car", crash(200, 8), 40.0)], 120, cfg)
    assert far == [] and alone == []


def test_camera_incident_keys_override_the_top_level_section() -> None:
    cfg = parse_config({
        "incidents": {"congestion": {"min_vehicles": 3}, "wrong_way": {"enabled": False}},
        "cameras": [{"id": "c", "source": "x", "incidents": {"congestion": {"open_after_s": 10}}}],
    })
    eff = effective_incidents(cfg.incidents, cfg.cameras[0])
    assert (eff.congestion.min_vehicles, eff.congestion.open_after_s, eff.wrong_way.enabled) == (3, 10, False)
    assert eff.congestion.close_after_s == 30  # untouched keys keep their defaults


def _every(n: int, path: Callable[[int], Position]) -> Callable[[int], Position]:
    """The same path, boxed by the detector on every ``n``-th frame only (a small or occluded object)."""
    return lambda f: path(f) if f % n == 0 else None


def test_a_person_riding_a_bicycle_is_a_cyclist_also_where_the_bicycle_is_not_boxed() -> None:
    cw = {"id": "road", "kind": "carriageway", "polygon": [[0, 400], [1000, 400], [1000, 600], [0, 600]]}
    cam = camera(lanes=[], zones=[cw])
    # 15 px a frame at 10 fps: about 2.8 of the rider's box heights a second, cycling speed
    rider = (2, "person", moving(100, 480, 0, 0, vx=15), 30.0)
    cyclist: list[Object] = [(1, "bicycle", _every(3, moving(100, 500, 0, 0, vx=15)), 50.0), rider]
    res = run(cam, cyclist, 60)
    assert kinds(res)[0] == ("cyclist_on_carriageway", "open")
    assert "pedestrian_on_carriageway" not in {r.incident_type for r in res}
    assert res[0].track_ids and 2 in res[0].track_ids
    # the same person at the same speed never seen on a bicycle is on foot
    assert kinds(run(cam, [rider], 60))[0] == ("pedestrian_on_carriageway", "open")


def test_a_motorcycle_rider_is_neither_pedestrian_nor_cyclist_when_the_motorcycle_box_comes_and_goes() -> None:
    cw = {"id": "road", "kind": "carriageway", "polygon": [[0, 400], [1000, 400], [1000, 600], [0, 600]]}
    cam = camera(lanes=[], zones=[cw])
    rider: list[Object] = [
        (1, "motorcycle", _every(3, moving(100, 500, 0, 0, vx=15)), 50.0),
        (2, "person", moving(100, 480, 0, 0, vx=15), 30.0),
    ]
    assert run(cam, rider, 60) == []


def test_a_slow_person_once_seen_over_a_bicycle_box_is_a_pedestrian_while_no_bicycle_is_under_them() -> None:
    cw = {"id": "road", "kind": "carriageway", "polygon": [[0, 400], [1000, 400], [1000, 600], [0, 600]]}
    cam = camera(lanes=[], zones=[cw])
    # overlapping a parked bicycle for the first frames, then walking on at 2 px a frame (under 1 box a second)
    bike: list[Object] = [
        (1, "bicycle", still_at(100, 500, end=5), 50.0), (2, "person", moving(100, 480, 0, 0, vx=2), 30.0),
    ]
    res = run(cam, bike, 80)
    assert ("pedestrian_on_carriageway", "open") in kinds(res)
