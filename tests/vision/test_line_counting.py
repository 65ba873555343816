"""Line counting on plain box sequences: no video, no model."""

from __future__ import annotations

import numpy as np
import pytest

from citywatch.config import CountingConfig, LineConfig
from citywatch.contract import CLASS_NAMES
from vision.counting import LineCounter
from vision.detections import Detections

CAR = CLASS_NAMES.index("car")
BUS = CLASS_NAMES.index("bus")


def box_at(x: float, y: float, w: float = 20, h: float = 10) -> list[float]:
    """A box whose bottom centre (the default anchor) is at (x, y)."""
    return [x - w / 2, y - h, x + w / 2, y]


def frame(*tracks: tuple[int, float, float], cls: int = CAR) -> Detections:
    if not tracks:
        return Detections.empty()
    return Detections(
        np.array([box_at(x, y) for _, x, y in tracks]),
        np.full(len(tracks), 0.9),
        np.full(len(tracks), cls),
        np.array([t for t, _, _ in tracks]),
    )


def run(counter: LineCounter, frames: list[Detections]) -> list:
    out = []
    for i, d in enumerate(frames):
        out.extend(counter.update(d, i))
    return out


@pytest.fixture
def horizontal() -> LineCounter:
    # A=(0,100) -> B=(200,100): (B-A)x(P-A) = 200*(Py-100) > 0 below the line (y down).
    return LineCounter(LineConfig(id="l", points=((0, 100), (200, 100))))


def test_moving_down_across_a_left_to_right_line_is_in(horizontal: LineCounter) -> None:
    crossings = run(horizontal, [frame((1, 100, y)) for y in range(80, 121, 5)])
    assert [(c.direction, c.class_name, c.track_id) for c in crossings] == [("in", "car", 1)]
    assert horizontal.counts == {"in": {"car": 1}, "out": {}}


def test_moving_up_is_out_and_reversing_the_line_swaps_directions() -> None:
    up = [frame((1, 100, y)) for y in range(120, 79, -5)]
    assert [c.direction for c in run(LineCounter(LineConfig(id="l", points=((0, 100), (200, 100)))), up)] == ["out"]
    reversed_line = LineCounter(LineConfig(id="l", points=((200, 100), (0, 100))))
    assert [c.direction for c in run(reversed_line, up)] == ["in"]


def test_box_flickering_on_the_line_counts_once(horizontal: LineCounter) -> None:
    ys = [90, 99, 101, 99.5, 100.5, 98, 110, 99, 111, 101, 120, 99, 121]
    crossings = run(horizontal, [frame((1, 100, y)) for y in ys])
    assert [c.direction for c in crossings].count("in") == 1
    # It also went back up once (110 -> 99 is inside the dead band, so no), never counting twice per direction.
    assert len(crossings) <= 2


def test_a_track_counts_at_most_once_per_direction(horizontal: LineCounter) -> None:
    ys = [80, 120, 80, 120, 80, 120]
    crossings = run(horizontal, [frame((1, 100, y)) for y in ys])
    assert sorted(c.direction for c in crossings) == ["in", "out"]


def test_crossing_beside_the_drawn_segment_is_not_counted(horizontal: LineCounter) -> None:
    # x = 300 is on the infinite line's extension, not on the 0..200 segment.
    assert run(horizontal, [frame((1, 300, y)) for y in range(80, 121, 5)]) == []


def test_unconfirmed_tracks_are_ignored(horizontal: LineCounter) -> None:
    assert run(horizontal, [frame((-1, 100, y)) for y in range(80, 121, 5)]) == []


def test_side_by_side_vehicles_crossing_together_are_both_counted(horizontal: LineCounter) -> None:
    frames = [frame((1, 50, y), (2, 75, y), (3, 150, y)) for y in range(80, 121, 5)]
    assert sorted(c.track_id for c in run(horizontal, frames)) == [1, 2, 3]


def test_jitter_smaller_than_min_travel_does_not_count() -> None:
    counter = LineCounter(
        LineConfig(id="l", points=((0, 100), (200, 100))), CountingConfig(hysteresis_px=1, min_travel_px=10)
    )
    assert run(counter, [frame((1, 100, y)) for y in (97, 103, 97, 103)]) == []
    assert len(run(counter, [frame((2, 100, y)) for y in (90, 110)])) == 1


def test_counted_class_is_the_class_the_detections_carry(horizontal: LineCounter) -> None:
    crossings = run(horizontal, [frame((7, 100, y), cls=BUS) for y in range(80, 121, 5)])
    assert crossings[0].class_name == "bus"


def test_track_state_is_pruned_so_memory_stays_flat() -> None:
    counter = LineCounter(LineConfig(id="l", points=((0, 100), (200, 100))), CountingConfig(track_ttl_frames=10))
    f = 0
    for tid in range(5000):  # 5,000 vehicles, each seen for 4 frames, over a long run
        for y in (80, 95, 105, 120):
            counter.update(frame((tid, 100, y)), f)
            f += 1
    assert counter.tracked <= 4  # only the tracks seen in the last ttl frames
    assert counter.counts["in"]["car"] == 5000


def test_diagonal_line_follows_the_cross_product_convention() -> None:
    # A=(0,0) -> B=(100,100); P=(100,0) gives (B-A)x(P-A) = 100*0 - 100*100 < 0: start there.
    counter = LineCounter(LineConfig(id="d", points=((0, 0), (100, 100))))
    path = [frame((1, x, 100 - x)) for x in range(80, 19, -10)]  # from (80,20) to (20,80)
    assert [c.direction for c in run(counter, path)] == ["in"]


def test_an_oncoming_vehicle_where_a_lost_one_was_is_not_counted_in_the_lost_ones_direction(
    horizontal: LineCounter,
) -> None:
    # car 1 drives down towards the line and is lost at y = 94; two frames later oncoming car 2 (driving up)
    # is first seen just past the line, where car 1 would be: it must not inherit car 1's side
    down = [frame((1, 100, y)) for y in range(70, 95, 4)]
    up = [frame((2, 104, y)) for y in range(104, 60, -4)]
    crossings = run(horizontal, [*down, frame(), frame(), *up])
    assert [(c.direction, c.track_id) for c in crossings] == [("out", 2)]


def test_a_vehicle_lost_before_the_line_and_found_after_it_under_a_new_id_is_still_counted(
    horizontal: LineCounter,
) -> None:
    down = [frame((1, 100, y)) for y in range(70, 95, 4)]
    on = [frame((2, 100, y)) for y in range(106, 140, 4)]
    crossings = run(horizontal, [*down, frame(), frame(), *on])
    assert [(c.direction, c.track_id) for c in crossings] == [("in", 2)]
