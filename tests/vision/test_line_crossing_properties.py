"""Property tests of line crossing on synthetic trajectories: jitter, ID switches, side by side, off the segment."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.config import CountingConfig, LineConfig
from citywatch.contract import CLASS_NAMES
from vision.counting import LineCounter
from vision.detections import Detections

CAR = CLASS_NAMES.index("car")
LINE = LineConfig(id="l", points=((0, 100), (200, 100)))  # `in` = moving down the image
BOX_W, BOX_H = 20.0, 12.0


def frame(tracks: list[tuple[int, float, float]]) -> Detections:
    if not tracks:
        return Detections.empty()
    return Detections(
        np.array([[x - BOX_W / 2, y - BOX_H, x + BOX_W / 2, y] for _, x, y in tracks]),
        np.full(len(tracks), 0.9), np.full(len(tracks), CAR), np.array([t for t, _, _ in tracks]),
    )


def run(counter: LineCounter, frames: list[list[tuple[int, float, float]]]) -> list[str]:
    return [c.direction for i, f in enumerate(frames) for c in counter.update(frame(f), i)]


def path(y0: float, y1: float, steps: int) -> np.ndarray:
    return np.linspace(y0, y1, steps)


noise = st.lists(st.floats(-1.0, 1.0), min_size=60, max_size=60)


@settings(max_examples=150, deadline=None)
@given(x=st.floats(5, 195), steps=st.integers(4, 60), jitter=noise, amplitude=st.floats(0, 2.0))
def test_a_crossing_with_jitter_within_the_dead_band_counts_exactly_once(x, steps, jitter, amplitude) -> None:
    ys = path(70, 130, steps) + amplitude * np.asarray(jitter[:steps])
    counter = LineCounter(LINE, CountingConfig(hysteresis_px=2.0))
    assert run(counter, [[(1, x, float(y))] for y in ys]) == ["in"]


@settings(max_examples=150, deadline=None)
@given(x=st.floats(5, 195), dwell=st.integers(1, 80), jitter=noise, amplitude=st.floats(0, 30))
def test_however_a_box_flickers_on_the_line_it_counts_at_most_once_per_direction(x, dwell, jitter, amplitude) -> None:
    # Drive up to the line, sit on it with arbitrary jitter (stop-and-go), then drive on.
    ys = [*path(60, 100, 10), *(100 + amplitude * np.resize(np.asarray(jitter), dwell)), *path(100, 140, 10)]
    dirs = run(LineCounter(LINE), [[(1, x, float(y))] for y in ys])
    assert dirs.count("in") <= 1 and dirs.count("out") <= 1
    if amplitude <= 2.0:  # within the dead band: exactly the one real crossing
        assert dirs == ["in"]


@settings(max_examples=150, deadline=None)
@given(
    x=st.floats(20, 180),
    switch_at=st.floats(90, 115),  # where the id changes: just before, on, or just after the line
    gap=st.integers(0, 25),  # frames with no box between the old id and the new one
    jump=st.floats(-6, 6),  # the new box's anchor lands a little off (re-detected box)
    back=st.floats(0, 8),  # ...possibly back across the line
)
def test_an_id_switch_near_the_line_counts_the_vehicle_once(x, switch_at, gap, jump, back) -> None:
    ys = path(60, 140, 41)
    frames: list[list[tuple[int, float, float]]] = []
    switched = False
    for y in ys:
        if not switched and y >= switch_at:
            frames.extend([[]] * gap)
            switched = True
            frames.append([(2, x + jump, float(y - back))])
            continue
        frames.append([((2 if switched else 1), x + (jump if switched else 0), float(y))])
    counter = LineCounter(LINE, CountingConfig(relink_window_frames=30, relink_distance=0.75))
    assert run(counter, frames) == ["in"]


@settings(max_examples=100, deadline=None)
@given(xs=st.lists(st.floats(2, 198), min_size=1, max_size=12), speed=st.floats(2, 15), lag=st.integers(0, 3))
def test_vehicles_crossing_side_by_side_are_each_counted(xs, speed, lag) -> None:
    n = len(xs)
    ys = np.arange(60, 145, speed)
    frames = [[(i + 1, x, float(y - lag * (i % 2))) for i, x in enumerate(xs)] for y in ys]
    counter = LineCounter(LINE)
    assert run(counter, frames) == ["in"] * n
    assert counter.counts["in"]["car"] == n


@settings(max_examples=150, deadline=None)
@given(
    x=st.one_of(st.floats(-300, -1), st.floats(201, 500)),
    y0=st.floats(0, 95), y1=st.floats(105, 300), steps=st.integers(2, 40),
)
def test_paths_beside_the_drawn_segment_are_never_counted(x, y0, y1, steps) -> None:
    ys = path(y0, y1, steps)
    assert run(LineCounter(LINE), [[(1, x, float(y))] for y in ys]) == []
    # The same path moved onto the segment does count: the line is bounded, not blind.
    assert run(LineCounter(LINE), [[(1, 100.0, float(y))] for y in ys]) == ["in"]


@settings(max_examples=60, deadline=None)
@given(vehicles=st.integers(50, 400), ttl=st.integers(5, 60))
def test_per_track_state_stays_bounded_however_many_vehicles_pass(vehicles, ttl) -> None:
    counter = LineCounter(LINE, CountingConfig(track_ttl_frames=ttl, relink_window_frames=min(ttl, 30)))
    f = 0
    for tid in range(vehicles):
        for y in (80, 95, 105, 120):
            counter.update(frame([(tid, 20 + (tid * 37) % 160, y)]), f)
            f += 1
    assert counter.tracked <= ttl + 1
    assert counter.counts["in"]["car"] == vehicles
