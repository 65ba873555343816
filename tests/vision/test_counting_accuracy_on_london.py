"""Counting and tracking quality on the shared London clips, scored against their ground-truth tracks.

The bars are what the default configuration achieves on these clips with the reference weights
(``bench/counting_accuracy.py`` prints the full tables); they fail if counting regresses.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import CachedDetector, LondonClip
from typer.testing import CliRunner

from citywatch.config import CameraConfig, CountingConfig
from evaluation.accuracy import CountReport, TrackingReport, evaluate_tracks, true_counts
from evaluation.ground_truth import load_cvat_xml, load_tracks_csv
from vision.pipeline import VisionPipeline


def score(clip: LondonClip, counting: CountingConfig | None = None) -> tuple[CountReport, TrackingReport]:
    camera = CameraConfig(id="london", source=str(clip.video), lines=clip.lines)
    pipeline = VisionPipeline(camera, counting=counting, detector=CachedDetector([], "cached"), fps=clip.info.fps)
    counted = {ln.id: {"in": {}, "out": {}} for ln in clip.lines}
    tracked = []
    for i, dets in enumerate(clip.detections):
        r = pipeline.process_detections(dets, i)
        tracked.append((i, r.detections))
        for c in r.crossings:
            counted[c.line_id][c.direction][c.class_name] = counted[c.line_id][c.direction].get(c.class_name, 0) + 1
    report, tracking = evaluate_tracks(load_tracks_csv(clip.tracks_csv), clip.lines, counted, tracked)
    assert tracking is not None
    return report, tracking


def test_csv_and_cvat_ground_truth_give_the_same_true_crossings() -> None:
    from conftest import london_lines
    from support import require_asset, samples_dir

    root = samples_dir()
    folder = require_asset(root / "tfl_london_jamcam" if root else None, "London clips")
    for name, lines in london_lines().items():
        csv_gt, xml_gt = load_tracks_csv(folder / f"{name}.tracks.csv"), load_cvat_xml(folder / f"{name}.cvat.xml")
        assert csv_gt.track_ids == xml_gt.track_ids
        truth = true_counts(csv_gt, lines)
        assert truth == true_counts(xml_gt, lines)
        # Every line was drawn where annotated traffic crosses it.
        for line in lines:
            assert sum(sum(d.values()) for d in truth[line.id].values()) > 0, f"{name}: nobody crosses {line.id}"


@pytest.mark.slow
def test_pooled_count_error_on_london_clips_is_within_five_percent(london_clips: list[LondonClip]) -> None:
    reports = [score(c)[0] for c in london_clips]
    true_total = sum(r.true_total for r in reports)
    counted_total = sum(r.counted_total for r in reports)
    assert true_total >= 30  # enough crossings for the bar to mean something
    assert abs(counted_total - true_total) / true_total <= 0.05, (true_total, counted_total)
    # No cancelling across lines: the per line and direction errors stay small too.
    assert sum(r.line_abs_error for r in reports) / true_total <= 0.25
    for clip, r in zip(london_clips, reports, strict=True):
        assert r.line_abs_error <= max(4, 0.35 * r.true_total), (clip.name, r.totals())


@pytest.mark.slow
def test_tracks_on_london_clips_reach_idf1_and_mota_bars(london_clips: list[LondonClip]) -> None:
    tracks = [score(c)[1] for c in london_clips]
    gt_boxes = sum(t.gt_boxes for t in tracks)
    idf1 = 2 * sum(t.idtp for t in tracks) / sum(t.gt_boxes + t.tracked_boxes for t in tracks)
    mota = 1 - sum(t.misses + t.false_positives + t.id_switches for t in tracks) / gt_boxes
    assert idf1 >= 0.65, idf1
    assert mota >= 0.45, mota


@pytest.mark.slow
def test_relinking_lost_tracks_never_makes_london_counts_worse(london_clips: list[LondonClip]) -> None:
    with_relink = sum(score(c)[0].line_abs_error for c in london_clips)
    without = sum(score(c, CountingConfig(relink_window_frames=0))[0].line_abs_error for c in london_clips)
    assert with_relink <= without


@pytest.mark.slow
def test_eval_command_reports_counts_and_tracking_quality_as_json(
    london_clips: list[LondonClip], london_detector: CachedDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from commands.cli import app

    monkeypatch.setattr("vision.pipeline.load_detector", lambda config, frame_hw=None: london_detector)
    clip = london_clips[0]
    args = ["eval", str(clip.video), "--gt", str(clip.cvat_xml), "--json"]
    for ln in clip.lines:
        (x1, y1), (x2, y2) = ln.points
        args += ["--line", f"{ln.id}:{x1},{y1},{x2},{y2}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    counts, expected = data["counts"], score(clip)[0]
    assert counts["true_total"] == expected.true_total and counts["counted_total"] == expected.counted_total
    assert {(r["line"], r["direction"]) for r in counts["totals"]} == {
        (r["line"], r["direction"]) for r in expected.totals()
    }
    for row in counts["rows"]:
        assert row["abs_error"] == abs(row["counted"] - row["true"])
        assert row["geh"] == pytest.approx(
            np.sqrt(2 * (row["true"] - row["counted"]) ** 2 / max(row["true"] + row["counted"], 1)), abs=1e-3
        )
    assert 0 <= data["tracking"]["idf1"] <= 1 and data["tracking"]["mota"] <= 1
    assert data["frames"] == len(clip.detections)


def test_eval_command_names_a_bad_ground_truth_file(tmp_path, sample_clip) -> None:
    from commands.cli import app

    bad = tmp_path / "gt.csv"
    bad.write_text("frame,id\n1,2\n")
    result = CliRunner().invoke(app, ["eval", str(sample_clip), "--gt", str(bad), "--line", "a:0,1,10,1"])
    assert result.exit_code == 1
    assert "gt.csv" in result.output and "missing column" in result.output
