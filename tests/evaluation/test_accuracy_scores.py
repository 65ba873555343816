"""The scores the accuracy harness reports, on hand-made tracks where the right answer is known:
true crossings, count errors and GEH, MOTA and IDF1, and the stationary state's precision and recall."""

from __future__ import annotations

import math

import numpy as np
import pytest

from citywatch.config import LineConfig
from citywatch.contract import CLASS_NAMES
from evaluation.accuracy import CountReport, geh, iou_matrix, tracking_metrics, true_counts
from evaluation.ground_truth import GroundTruth
from evaluation.stationary import StationaryScore, evaluate_stationary
from vision.detections import Detections

CAR = CLASS_NAMES.index("car")


def boxes(rows: list[tuple[int, float, float]], cls: int = CAR) -> Detections:
    """(track id, x, y) -> 20x20 boxes with their bottom centre at (x, y)."""
    xyxy = np.asarray([[x - 10, y - 20, x + 10, y] for _, x, y in rows], np.float32).reshape(-1, 4)
    return Detections(xyxy, np.ones(len(rows)), np.full(len(rows), cls), np.asarray([t for t, *_ in rows]))


Path = dict[int, tuple[int, float, float]]  # frame -> (track id, x, y)


def down(track: int, x: float, frames: range, y0: float = 0.0, step: float = 10.0) -> Path:
    return {f: (track, x, y0 + step * (f - frames.start)) for f in frames}


def ground_truth(*tracks: Path, flags: dict[int, dict[str, bool]] | None = None) -> GroundTruth:
    frames = sorted({f for t in tracks for f in t})
    return GroundTruth({f: boxes([t[f] for t in tracks if f in t]) for f in frames}, flags=flags or {})


def test_true_counts_are_the_annotated_tracks_crossing_each_line_by_direction_and_class() -> None:
    line = LineConfig(id="l", points=((0, 100), (200, 100)))
    gt = ground_truth(down(1, 50, range(0, 20)), down(2, 150, range(0, 20), y0=190, step=-10))
    counts = true_counts(gt, [line])
    assert sum(counts["l"]["in"].values()) == 1 and sum(counts["l"]["out"].values()) == 1
    assert set(counts["l"]["in"]) | set(counts["l"]["out"]) == {"car"}


def test_count_report_errors_and_geh() -> None:
    truth = {"l": {"in": {"car": 10, "truck": 2}, "out": {"car": 4}}}
    counted = {"l": {"in": {"car": 9, "bus": 1}, "out": {"car": 4}}}
    report = CountReport.compare(truth, counted)
    assert report.true_total == 16 and report.counted_total == 14
    assert report.wape == pytest.approx((1 + 2 + 1) / 16)  # a car missed, two trucks missed, a bus too many
    assert report.total_error == pytest.approx(2 / 16)
    assert report.line_abs_error == 2  # in: 12 true, 10 counted; out: exact
    assert geh(100, 100) == 0 and geh(0, 0) == 0 and geh(100, 80) == pytest.approx(math.sqrt(2 * 400 / 180))


def test_iou_of_identical_disjoint_and_half_overlapping_boxes() -> None:
    a = np.asarray([[0, 0, 10, 10]], float)
    b = np.asarray([[0, 0, 10, 10], [20, 20, 30, 30], [5, 0, 15, 10]], float)
    assert iou_matrix(a, b).tolist()[0] == pytest.approx([1.0, 0.0, 1 / 3])
    assert iou_matrix(a, np.zeros((0, 4))).shape == (1, 0)


def test_perfect_tracks_score_one_and_an_identity_switch_costs_mota_and_idf1() -> None:
    gt = ground_truth(down(1, 50, range(0, 10)))
    same = [(f, boxes([(5, 50, 10.0 * f)])) for f in range(10)]
    perfect = tracking_metrics(gt, same)
    assert (perfect.mota, perfect.idf1, perfect.id_switches) == (1.0, 1.0, 0)
    switched = [(f, boxes([(5 if f < 5 else 6, 50, 10.0 * f)])) for f in range(10)]
    rep = tracking_metrics(gt, switched)
    assert rep.id_switches == 1 and rep.mota == pytest.approx(0.9) and rep.idf1 == pytest.approx(0.5)
    missed = tracking_metrics(gt, [(f, d) for f, d in same if f % 2 == 0])
    assert missed.misses == 5 and missed.mota == pytest.approx(0.5)


def test_stationary_score_against_stopped_flags() -> None:
    standing = {f: (1, 50.0, 100.0) for f in range(40)}
    moving = down(2, 150, range(0, 40), step=5)
    gt = ground_truth(standing, moving, flags={1: {"stopped": True, "parked": True}, 2: {"stopped": True}})
    score = evaluate_stationary(gt, fps=10.0)
    assert (score.tp, score.fn, score.fp, score.parked, score.unmatched) == (1, 1, 0, 1, 0)
    assert score.precision == 1.0 and score.recall == 0.5
    total = score.add(StationaryScore(tn=3))
    assert total.to_json()["tn"] == 3 and total.to_json()["recall"] == 0.5
