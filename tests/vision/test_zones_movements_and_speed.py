"""Zones, lanes, turning movements and speeds on synthetic tracks with a known ground plane."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from citywatch.config import (
    CalibrationConfig,
    CameraConfig,
    CountingConfig,
    LaneConfig,
    LineConfig,
    TrackerConfig,
    ZoneConfig,
)
from citywatch.contract import CLASS_NAMES
from vision.detections import Detections
from vision.geometry import CalibrationError, GroundPlane, points_in_polygon
from vision.pipeline import VisionPipeline
from vision.speed import SpeedEstimator
from vision.zones import MovementTracker, StationaryState, ZoneMonitor, od_matrix

CAR, BUS = CLASS_NAMES.index("car"), CLASS_NAMES.index("bus")
FPS = 25.0

# A camera looking down a road: ground (metres, y away from the camera) -> image through this homography.
G2I = np.array([[40.0, 0.0, 320.0], [0.0, -8.0, 460.0], [0.0, 0.06, 1.0]])
GROUND_MARKS = [(-3.5, 5.0), (3.5, 5.0), (3.5, 40.0), (-3.5, 40.0), (0.0, 20.0)]


def to_image(ground: np.ndarray) -> np.ndarray:
    q = np.c_[np.asarray(ground, float), np.ones(len(ground))] @ G2I.T
    return q[:, :2] / q[:, 2:3]


def calibration(**kw) -> CalibrationConfig:
    img = to_image(np.asarray(GROUND_MARKS))
    return CalibrationConfig(image_points=[tuple(p) for p in img], ground_points=GROUND_MARKS, **kw)


def boxes_at(points: np.ndarray, ids: list[int], cls: int = CAR, size: float = 30.0) -> Detections:
    pts = np.asarray(points, float).reshape(-1, 2)
    xyxy = np.c_[pts[:, 0] - size / 2, pts[:, 1] - size, pts[:, 0] + size / 2, pts[:, 1]]
    return Detections(xyxy, np.full(len(pts), 0.9), np.full(len(pts), cls), np.asarray(ids))


@settings(max_examples=60, deadline=None)
@given(x=st.floats(-3, 3), y=st.floats(6, 39))
def test_ground_plane_maps_image_points_back_to_metres(x, y) -> None:
    plane = GroundPlane(calibration())
    assert plane.reprojection_m < 1e-6
    np.testing.assert_allclose(plane.to_ground(to_image(np.array([[x, y]])))[0], [x, y], atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(kmh=st.floats(5, 150), lateral=st.floats(-3, 3), start=st.floats(6, 12))
def test_speed_of_a_synthetic_track_is_recovered_in_kmh(kmh, lateral, start) -> None:
    est = SpeedEstimator(calibration(), FPS)
    got = {}
    for f in range(50):
        ground = np.array([[lateral, start + kmh / 3.6 * f / FPS]])
        got = est.update(boxes_at(to_image(ground), [7]), f)
    assert got[7] == pytest.approx(kmh, rel=1e-3)


def test_implausible_speeds_are_withheld_not_reported() -> None:
    est = SpeedEstimator(calibration(max_speed_kmh=200), FPS)
    speeds = []
    for f in range(40):
        y = 8 + 0.5 * f if f < 30 else 8 + 0.5 * f + 30  # the box jumps to a vehicle 30 m further on
        speeds.append(est.update(boxes_at(to_image(np.array([[0.0, y]])), [3]), f).get(3))
    assert speeds[0] is None  # not enough track yet
    assert speeds[29] == pytest.approx(45.0, rel=1e-3)  # 0.5 m per frame at 25 fps
    assert all(s is None or s <= 200 for s in speeds)
    assert speeds[30] is None


def test_bad_calibrations_are_refused_with_a_reason() -> None:
    with pytest.raises(ValidationError, match="pair up"):
        CalibrationConfig(image_points=[(0, 0), (1, 0), (1, 1), (0, 1), (2, 2)],
                          ground_points=[(0, 0), (1, 0), (1, 1), (0, 1)])
    with pytest.raises(ValidationError, match="at least 4"):
        CalibrationConfig(image_points=[(0, 0), (1, 0), (1, 1)], ground_points=[(0, 0), (1, 0), (1, 1)])
    with pytest.raises(CalibrationError, match="degenerate|distinct"):
        GroundPlane(CalibrationConfig(image_points=[(0, 0), (1, 1), (2, 2), (3, 3)],
                                      ground_points=[(0, 0), (1, 1), (2, 2), (3, 3)]))
    swapped = calibration().model_copy(update={"ground_points": [GROUND_MARKS[i] for i in (1, 0, 2, 3, 4)]})
    with pytest.raises(CalibrationError, match="disagree"):
        GroundPlane(swapped)


def test_points_in_polygon_include_the_border() -> None:
    square = [(0, 0), (10, 0), (10, 10), (0, 10)]
    assert points_in_polygon(np.array([[5, 5], [10, 5], [11, 5], [-0.1, 3]]), square).tolist() == [
        True, True, False, False]


def test_zone_reports_occupancy_dwell_entries_and_occupied_fraction() -> None:
    zone = ZoneConfig(id="box", polygon=[(0, 0), (100, 0), (100, 100), (0, 100)])
    mon = ZoneMonitor(zone, FPS)
    for f in range(100):
        pts, ids = [], []
        if 10 <= f < 60:  # car 1 inside for 50 frames = 2 s
            pts.append((50, 50))
            ids.append(1)
        if 40 <= f < 100:  # a bus drives through from outside, inside while x <= 100
            pts.append((150 - 2 * (f - 40), 60))
            ids.append(2)
        dets = Detections.merge(
            [boxes_at(np.array([p]), [i], BUS if i == 2 else CAR) for p, i in zip(pts, ids, strict=True)]
        )
        mon.update(dets, f)
        if f == 50:
            assert mon.dwell_s(1, f) == pytest.approx(41 / FPS)
    rep = mon.report(99)
    assert rep.zone_id == "box" and not rep.lane
    assert rep.vehicles_entered == 2
    assert rep.occupancy == {"bus": 1}  # the car left; the bus is inside at the end
    assert rep.mean_dwell_s == pytest.approx(50 / FPS)  # only the completed dwell
    # Inside from frame 10 to 99 (the car's last frames run into the bus's first, plus the grace frames).
    assert rep.occupied_fraction == pytest.approx(90 / 100)
    assert rep.interval_s == pytest.approx(100 / FPS)
    assert mon.report(120).vehicles_entered == 0  # a new interval starts empty


def test_lane_queue_counts_stationary_vehicles_and_measures_its_length() -> None:
    cal = calibration()
    plane = GroundPlane(cal)
    lane_poly = [tuple(p) for p in to_image(np.array([[-1.75, 5], [1.75, 5], [1.75, 40], [-1.75, 40]]))]
    stop_line, upstream = to_image(np.array([[0, 5], [0, 40]]))
    lane = LaneConfig(id="l1", polygon=lane_poly, direction=(tuple(upstream), tuple(stop_line)))
    mon = ZoneMonitor(lane, FPS, plane=plane)
    still = StationaryState(CountingConfig(stationary_s=1.0), FPS)
    queued = to_image(np.array([[0, 7], [0, 13], [0, 19]]))  # three cars waiting at the stop line
    for f in range(60):
        moving = to_image(np.array([[0, 38 - 0.4 * f]]))  # one still rolling in
        dets = boxes_at(np.vstack([queued, moving]), [1, 2, 3, 4], size=12)
        stationary = still.update(dets, f)
        mon.update(dets, f, stationary=stationary)
    assert still.stationary == {1, 2, 3}
    rep = mon.report(59)
    assert rep.lane and rep.queue_vehicles == 3
    assert rep.queue_length_m == pytest.approx(14.0, abs=0.01)  # from the stop line to the last queued car


def test_turning_movements_and_the_od_matrix_by_class_and_time_bin() -> None:
    camera = CameraConfig(id="c", source="x", zones=[
        ZoneConfig(id="north", kind="gateway", polygon=[(0, 0), (100, 0), (100, 20), (0, 20)]),
        ZoneConfig(id="south", kind="exit", polygon=[(0, 180), (100, 180), (100, 200), (0, 200)]),
        ZoneConfig(id="east", kind="gateway", polygon=[(180, 0), (200, 0), (200, 200), (180, 200)]),
    ])
    mt = MovementTracker(camera, FPS)
    moves = []
    for f in range(100):
        a = (50, 10 + 1.9 * f)  # north -> south
        b = (50 + 1.4 * f, 10)  # north -> east
        c = (190, 100 + f)  # appears in east and stays: no movement
        moves += mt.update(boxes_at(np.array([a, b, c]), [1, 2, 3]), f)
    assert sorted((m.track_id, m.entry_zone, m.exit_zone) for m in moves) == [(1, "north", "south"),
                                                                              (2, "north", "east")]
    m1 = next(m for m in moves if m.track_id == 1)
    assert m1.entry_frame == 0 and m1.duration_s == pytest.approx(m1.exit_frame / FPS)
    matrix = od_matrix(moves, FPS, bin_s=3.0)
    assert sum(n for b in matrix.values() for c in b.values() for e in c.values() for n in e.values()) == 2
    assert matrix[float(np.floor(m1.exit_frame / FPS / 3.0) * 3.0)]["car"]["north"]["south"] == 1
    with pytest.raises(ValueError):
        od_matrix(moves, FPS, bin_s=0)


def test_pipeline_reports_zones_each_interval_and_fills_speeds_and_movements() -> None:
    cal = calibration()
    road = [tuple(p) for p in to_image(np.array([[-3.5, 5], [3.5, 5], [3.5, 40], [-3.5, 40]]))]
    near = [tuple(p) for p in to_image(np.array([[-3.5, 5], [3.5, 5], [3.5, 10], [-3.5, 10]]))]
    far = [tuple(p) for p in to_image(np.array([[-3.5, 30], [3.5, 30], [3.5, 40], [-3.5, 40]]))]
    line_pts = to_image(np.array([[-3.5, 20], [3.5, 20]]))
    camera = CameraConfig(
        id="c", source="x", calibration=cal, report_interval_s=2.0,
        lines=[LineConfig(id="mid", points=(tuple(line_pts[0]), tuple(line_pts[1])))],
        lanes=[LaneConfig(id="lane", polygon=road)],
        zones=[ZoneConfig(id="near", kind="entry", polygon=near), ZoneConfig(id="far", kind="exit", polygon=far)],
    )
    pipe = VisionPipeline(camera, tracker=TrackerConfig(minimum_consecutive_frames=1), detector=object(), fps=FPS)
    results = []
    for f in range(125):  # 5 s; a car going away from the camera at 36 km/h (10 m/s)
        y = 6 + 10 * f / FPS
        dets = boxes_at(to_image(np.array([[0.0, y]])), [0], size=20) if y < 39 else Detections.empty()
        dets.tracker_id[:] = -1
        results.append(pipe.process_detections(dets, f))
    crossings = [c for r in results for c in r.crossings]
    assert len(crossings) == 1 and crossings[0].speed_kmh == pytest.approx(36.0, rel=0.05)
    assert pipe.counters[0].mean_speed_kmh[crossings[0].direction] == pytest.approx(36.0, rel=0.05)
    movements = [m for r in results for m in r.movements]
    assert [(m.entry_zone, m.exit_zone) for m in movements] == [("near", "far")]
    assert movements[0].speed_kmh == pytest.approx(36.0, rel=0.05)
    reports = [(r.frame_index, z) for r in results for z in r.zone_reports]
    assert sorted({f for f, _ in reports}) == [49, 99]  # every 2 s of source time at 25 fps
    lane_first = next(z for f, z in reports if z.zone_id == "lane" and f == 49)
    assert lane_first.lane and lane_first.vehicles_entered == 1 and lane_first.mean_speed_kmh == pytest.approx(
        36.0, rel=0.05)


def test_all_per_track_state_stays_bounded_on_a_camera_that_runs_for_days() -> None:
    cal = calibration()
    camera = CameraConfig(
        id="c", source="x", calibration=cal,
        lines=[LineConfig(id="l", points=((0, 300), (640, 300)))],
        lanes=[LaneConfig(id="lane", polygon=[(0, 0), (640, 0), (640, 480), (0, 480)])],
        zones=[ZoneConfig(id="a", kind="entry", polygon=[(0, 0), (640, 0), (640, 200), (0, 200)]),
               ZoneConfig(id="b", kind="exit", polygon=[(0, 400), (640, 400), (640, 480), (0, 480)])],
    )
    pipe = VisionPipeline(camera, tracker=TrackerConfig(minimum_consecutive_frames=1), detector=object(), fps=FPS)
    f = 0
    for vehicle in range(300):  # 300 vehicles one after another, each 30 frames from top to bottom
        x = 100 + (vehicle * 53) % 400
        for step in range(30):
            dets = boxes_at(np.array([[x, 150 + 10 * step]]), [0], size=40)
            dets.tracker_id[:] = -1
            pipe.process_detections(dets, f)
            f += 1
        for _ in range(40):  # a gap longer than the tracker's buffer: the next vehicle is a new track
            pipe.process_detections(Detections.empty(), f)
            f += 1
    assert sum(pipe.counters[0].counts["in"].values()) == 300
    assert pipe.counters[0].tracked <= 2
    assert pipe.speed is not None and pipe.speed.tracked <= 2
    assert pipe.stationary.tracked <= 2 and pipe.movements.tracked <= 2
    assert all(z.tracked <= 2 for z in pipe.zones)
    assert len(pipe.tracker._votes) <= 5
