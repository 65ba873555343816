"""The accuracy harness: counts and tracks of the pipeline against ground-truth tracks.

True crossings are derived from the annotated tracks by the same ``LineCounter`` (same anchor, same
direction convention, same bounded segment) with a 1 px dead band and no minimum travel: annotated
boxes do not flicker. The pipeline's counts are compared per line, direction and class:

- absolute error ``|counted - true|`` per cell;
- WAPE = sum of absolute errors / sum of true counts (per class cell, so a car counted as a truck is
  two errors);
- total error = |sum counted - sum true| / sum true, per line-direction and pooled;
- GEH = sqrt(2 (M - C)^2 / (M + C)) on the counts of the evaluated interval (the traffic-engineering
  acceptance is GEH < 5 on hourly flows; on a clip of seconds it is a small number by construction);

and tracking quality where the ground truth has track ids, over vehicle classes (the shared ground
truth annotates vehicles only), boxes matched at IoU >= 0.5:

- MOTA = 1 - (misses + false positives + identity switches) / ground-truth boxes (CLEAR MOT);
- IDF1 = 2 IDTP / (ground-truth boxes + tracked boxes) with the one-to-one track assignment that
  maximises IDTP (Ristani et al. 2016).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from citywatch.config import CameraConfig, CountingConfig, LineConfig, ModelConfig, TrackerConfig
from citywatch.contract import CLASS_NAMES, MOTOR_VEHICLE_CLASSES
from evaluation.ground_truth import GroundTruth
from vision.counting import LineCounter
from vision.detections import Anchor, Detections
from vision.detector import Detector

GT_COUNTING = CountingConfig(hysteresis_px=1.0, hysteresis_box_fraction=0.0, min_travel_px=0.0, relink_window_frames=0)

Counts = dict[str, dict[str, dict[str, int]]]  # line -> direction -> class -> n


def true_counts(gt: GroundTruth, lines: list[LineConfig], anchor: Anchor = "bottom_center") -> Counts:
    """Crossings of the annotated tracks, by line, direction and class."""
    counters = [LineCounter(ln, GT_COUNTING, anchor=anchor) for ln in lines]
    for f in range(0, gt.last_frame + 1):
        dets = gt.at(f)
        for c in counters:
            c.update(dets, f)
    return {c.line.id: {d: dict(c.counts[d]) for d in ("in", "out")} for c in counters}


def geh(measured: float, counted: float) -> float:
    s = measured + counted
    return 0.0 if s == 0 else math.sqrt(2.0 * (measured - counted) ** 2 / s)


@dataclass
class CountRow:
    line: str
    direction: str
    class_name: str
    true: int
    counted: int

    @property
    def abs_error(self) -> int:
        return abs(self.counted - self.true)


@dataclass
class CountReport:
    rows: list[CountRow]

    @classmethod
    def compare(cls, truth: Counts, counted: Counts) -> CountReport:
        rows = []
        for line in truth:
            for d in ("in", "out"):
                t, c = truth[line].get(d, {}), counted.get(line, {}).get(d, {})
                for name in sorted(set(t) | set(c), key=CLASS_NAMES.index):
                    rows.append(CountRow(line, d, name, t.get(name, 0), c.get(name, 0)))
        return cls(rows)

    def totals(self) -> list[dict[str, Any]]:
        """Per line and direction, all classes together."""
        acc: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for r in self.rows:
            acc[(r.line, r.direction)][0] += r.true
            acc[(r.line, r.direction)][1] += r.counted
        return [
            {"line": ln, "direction": d, "true": t, "counted": c, "abs_error": abs(c - t), "geh": round(geh(t, c), 3)}
            for (ln, d), (t, c) in acc.items()
        ]

    @property
    def true_total(self) -> int:
        return sum(r.true for r in self.rows)

    @property
    def counted_total(self) -> int:
        return sum(r.counted for r in self.rows)

    @property
    def wape(self) -> float | None:
        """Class-aware: sum |counted - true| over line x direction x class cells / sum true."""
        t = self.true_total
        return sum(r.abs_error for r in self.rows) / t if t else None

    @property
    def total_error(self) -> float | None:
        """|counted - true| of the grand total, relative to the true total (errors may cancel)."""
        t = self.true_total
        return abs(self.counted_total - t) / t if t else None

    @property
    def line_abs_error(self) -> int:
        """Sum over lines and directions of |counted - true|, classes pooled (no cancelling across lines)."""
        return sum(r["abs_error"] for r in self.totals())

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": [
                {"line": r.line, "direction": r.direction, "class": r.class_name, "true": r.true,
                 "counted": r.counted, "abs_error": r.abs_error, "geh": round(geh(r.true, r.counted), 3)}
                for r in self.rows
            ],
            "totals": self.totals(),
            "true_total": self.true_total,
            "counted_total": self.counted_total,
            "line_abs_error": self.line_abs_error,
            "wape": _round(self.wape),
            "total_error": _round(self.total_error),
        }


def _round(v: float | None, n: int = 4) -> float | None:
    return None if v is None else round(v, n)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9))


@dataclass
class TrackingReport:
    gt_boxes: int = 0
    tracked_boxes: int = 0
    matches: int = 0
    misses: int = 0
    false_positives: int = 0
    id_switches: int = 0
    idtp: int = 0
    gt_tracks: int = 0
    tracks: int = 0

    @property
    def mota(self) -> float | None:
        if not self.gt_boxes:
            return None
        return 1.0 - (self.misses + self.false_positives + self.id_switches) / self.gt_boxes

    @property
    def idf1(self) -> float | None:
        denom = self.gt_boxes + self.tracked_boxes
        return 2.0 * self.idtp / denom if denom else None

    def to_json(self) -> dict[str, Any]:
        return {
            "mota": _round(self.mota), "idf1": _round(self.idf1), "gt_boxes": self.gt_boxes,
            "tracked_boxes": self.tracked_boxes, "misses": self.misses, "false_positives": self.false_positives,
            "id_switches": self.id_switches, "gt_tracks": self.gt_tracks, "tracks": self.tracks,
        }


def _vehicles(d: Detections) -> Detections:
    keep = np.isin(d.class_id, [CLASS_NAMES.index(c) for c in MOTOR_VEHICLE_CLASSES])
    return d[keep]


def tracking_metrics(
    gt: GroundTruth, tracked: Iterable[tuple[int, Detections]], iou_threshold: float = 0.5
) -> TrackingReport:
    """CLEAR MOT (MOTA) and identity (IDF1) scores of confirmed vehicle tracks against the ground truth."""
    rep = TrackingReport()
    pair_frames: dict[tuple[int, int], int] = defaultdict(int)  # (gt id, track id) -> frames matched at IoU
    gt_len: dict[int, int] = defaultdict(int)
    tr_len: dict[int, int] = defaultdict(int)
    last_match: dict[int, int] = {}  # gt id -> track id it was last matched to
    by_frame = dict(tracked)
    for f in range(0, max(gt.last_frame, max(by_frame, default=-1)) + 1):
        g = gt.at(f)
        t = by_frame.get(f, Detections.empty())
        t = _vehicles(t[t.tracker_id >= 0])
        rep.gt_boxes += len(g)
        rep.tracked_boxes += len(t)
        for gid in g.tracker_id:
            gt_len[int(gid)] += 1
        for tid in t.tracker_id:
            tr_len[int(tid)] += 1
        iou = iou_matrix(g.xyxy, t.xyxy)
        if iou.size:
            ok = iou >= iou_threshold
            for gi, ti in zip(*np.nonzero(ok), strict=True):
                pair_frames[(int(g.tracker_id[gi]), int(t.tracker_id[ti]))] += 1
            # CLEAR MOT: keep last frame's correspondences where still valid, then Hungarian on the rest.
            cost = np.where(ok, 1.0 - iou, 1e6)
            for gi, gid in enumerate(g.tracker_id):
                prev = last_match.get(int(gid))
                if prev is None:
                    continue
                hits = np.nonzero(t.tracker_id == prev)[0]
                if len(hits) and ok[gi, hits[0]]:
                    cost[gi, hits[0]] = -1.0  # strongly prefer continuing the same correspondence
            rows, cols = linear_sum_assignment(cost)
            matched = [(r, c) for r, c in zip(rows, cols, strict=True) if ok[r, c]]
        else:
            matched = []
        rep.matches += len(matched)
        rep.misses += len(g) - len(matched)
        rep.false_positives += len(t) - len(matched)
        for r, c in matched:
            gid, tid = int(g.tracker_id[r]), int(t.tracker_id[c])
            if gid in last_match and last_match[gid] != tid:
                rep.id_switches += 1
            last_match[gid] = tid
    rep.gt_tracks, rep.tracks = len(gt_len), len(tr_len)
    if pair_frames:
        gids, tids = sorted(gt_len), sorted(tr_len)
        gi = {g: i for i, g in enumerate(gids)}
        ti = {t: i for i, t in enumerate(tids)}
        m = np.zeros((len(gids), len(tids)))
        for (gid, tid), n in pair_frames.items():
            m[gi[gid], ti[tid]] = n
        r, c = linear_sum_assignment(-m)
        rep.idtp = int(m[r, c].sum())
    return rep


@dataclass
class EvalResult:
    video: str
    counts: CountReport
    tracking: TrackingReport | None
    frames: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "video": self.video, "frames": self.frames, "seconds": round(self.seconds, 3),
            "counts": self.counts.to_json(),
            "tracking": self.tracking.to_json() if self.tracking else None,
        }


def evaluate_tracks(
    gt: GroundTruth,
    lines: list[LineConfig],
    counted: Counts,
    tracked: list[tuple[int, Detections]] | None,
    *,
    anchor: Anchor = "bottom_center",
) -> tuple[CountReport, TrackingReport | None]:
    """Compare counts (and, where GT has ids, tracks) of one clip with its ground truth."""
    report = CountReport.compare(true_counts(gt, lines, anchor), counted)
    tracking = tracking_metrics(gt, tracked) if tracked is not None and gt.has_ids else None
    return report, tracking


def evaluate_video(
    video: str | Path,
    gt: GroundTruth,
    camera: CameraConfig,
    *,
    model: ModelConfig | None = None,
    tracker: TrackerConfig | None = None,
    counting: CountingConfig | None = None,
    detector: Detector | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Run the pipeline over the clip and score its counts and tracks against the ground truth."""
    from evaluation.offline import count_video

    tracked: list[tuple[int, Detections]] = []
    result = count_video(
        video, camera, model=model, tracker=tracker, counting=counting, detector=detector,
        progress=progress, on_result=lambda r: tracked.append((r.frame_index, r.detections)),
    )
    counts, tracking = evaluate_tracks(gt, camera.lines, result.lines, tracked, anchor=camera.anchor)
    return EvalResult(str(video), counts, tracking, result.frames, result.seconds)
