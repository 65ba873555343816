"""The per-track stationary state (what the stopped-vehicle and queue rules stand on) against ground truth.

A ground-truth track counts as predicted stationary when ``StationaryState`` called it stationary in
some frame; its truth is the annotation's ``stopped`` flag. Parked tracks are counted apart (they are
``stopped`` too), and so are ground-truth tracks no pipeline track was ever matched to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass
from typing import Any

from scipy.optimize import linear_sum_assignment

from citywatch.config import CountingConfig
from evaluation.accuracy import iou_matrix
from evaluation.ground_truth import GroundTruth
from vision.detections import Anchor, Detections
from vision.zones import StationaryState


@dataclass
class StationaryScore:
    """Per track: predicted stationary (ever, while matched) against the ground truth's ``stopped`` flag."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    parked: int = 0
    unmatched: int = 0

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def add(self, other: StationaryScore) -> StationaryScore:
        return StationaryScore(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def to_json(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        return {"precision": r(self.precision), "recall": r(self.recall), "tp": self.tp, "fp": self.fp,
                "fn": self.fn, "tn": self.tn, "parked": self.parked, "unmatched_gt_tracks": self.unmatched}


def evaluate_stationary(
    gt: GroundTruth,
    fps: float,
    counting: CountingConfig | None = None,
    tracked: Iterable[tuple[int, Detections]] | None = None,
    *,
    anchor: Anchor = "bottom_center",
    iou_threshold: float = 0.5,
) -> StationaryScore:
    """Score ``StationaryState`` per ground-truth track against its ``stopped`` flag.

    ``tracked`` None: the state runs over the annotated boxes themselves (the rule alone). Otherwise
    the pipeline's tracks (frame, tracked detections) are matched to ground-truth boxes by IoU each
    frame, and a ground-truth track counts as predicted stationary when a track matched to it was
    stationary in a matched frame."""
    state = StationaryState(counting or CountingConfig(), fps, anchor)
    predicted: set[int] = set()
    matched_any: set[int] = set()
    if tracked is None:
        for f in range(0, gt.last_frame + 1):
            predicted |= state.update(gt.at(f), f)
        matched_any = set(gt.track_ids)
    else:
        for f, d in tracked:
            still = state.update(d, f)
            g = gt.at(f)
            t = d[d.tracker_id >= 0]
            iou = iou_matrix(g.xyxy, t.xyxy)
            if not iou.size:
                continue
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] < iou_threshold:
                    continue
                gid = int(g.tracker_id[r])
                matched_any.add(gid)
                if int(t.tracker_id[c]) in still:
                    predicted.add(gid)
    score = StationaryScore()
    for gid in sorted(gt.track_ids):
        flags = gt.flags.get(gid, {})
        if flags.get("parked"):
            score.parked += 1
        if gid not in matched_any:
            score.unmatched += 1
        truth, pred = bool(flags.get("stopped")), gid in predicted
        if truth and pred:
            score.tp += 1
        elif pred:
            score.fp += 1
        elif truth:
            score.fn += 1
        else:
            score.tn += 1
    return score
