"""Offline commands on a video file (no network): count crossings, score counts, tracks and the stationary state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from citywatch.config import CameraConfig, CitywatchConfig, LineConfig, ModelConfig
from commands.console import ConfigOpt, err, load_or_exit, out, progress_bar


def _parse_line(spec: str) -> LineConfig:
    try:
        name, coords = spec.split(":", 1)
        x1, y1, x2, y2 = (float(v) for v in coords.split(","))
        return LineConfig(id=name, points=((x1, y1), (x2, y2)))
    except Exception as exc:
        raise typer.BadParameter(f"{spec!r}: expected NAME:x1,y1,x2,y2 ({exc})", param_hint="--line") from None


def _offline_setup(
    config: Path | None, video: Path, line: list[str], camera_id: str, weights: Path | None, imgsz: int | None
) -> tuple[CitywatchConfig, ModelConfig, CameraConfig]:
    """Config, model (with the command line's weights/imgsz) and a one-off camera for a video file."""
    cfg = load_or_exit(config)
    lines = [_parse_line(s) for s in line]
    model = cfg.model.model_copy(update={k: v for k, v in {"weights": weights, "imgsz": imgsz}.items() if v})
    return cfg, model, CameraConfig(id=camera_id, source=str(video), lines=lines, realtime=False)


def count(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    line: Annotated[list[str], typer.Option("--line", "-l", help="NAME:x1,y1,x2,y2 (repeatable).")],
    config: ConfigOpt = None,
    weights: Annotated[Path | None, typer.Option(help="Model file or OpenVINO folder.")] = None,
    imgsz: Annotated[int | None, typer.Option(help="Detector input size.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many frames.")] = None,
) -> None:
    """Count crossings per line, direction and class in a video file (offline, no network)."""
    from citywatch.paths import AssetNotFound
    from evaluation.offline import count_video
    from vision.detector import DetectorError
    from vision.video import VideoError

    cfg, model, camera = _offline_setup(config, video, line, "offline", weights, imgsz)
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"counting {video.name}", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total or None)

            result = count_video(
                video, camera, model=model, tracker=cfg.tracker, counting=cfg.counting,
                max_frames=max_frames, progress=tick, lines_only=True,
            )
    except (VideoError, AssetNotFound, DetectorError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        out.print_json(json.dumps(result.to_json()))
        return
    table = Table(title=f"{video.name}: {result.frames} frames in {result.seconds:.1f} s ({result.fps:.1f} fps)")
    for col in ("line", "direction", "class", "count"):
        table.add_column(col)
    for lid, dirs in result.lines.items():
        for direction, by_class in dirs.items():
            for cls, n in sorted(by_class.items()):
                table.add_row(lid, direction, cls, str(n))
            if not by_class:
                table.add_row(lid, direction, "-", "0")
    out.print(table)

def eval_(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    gt: Annotated[Path, typer.Option("--gt", help="Ground-truth tracks: tracks CSV or CVAT 1.1 XML.")],
    line: Annotated[list[str], typer.Option("--line", "-l", help="NAME:x1,y1,x2,y2 (repeatable).")],
    config: ConfigOpt = None,
    weights: Annotated[Path | None, typer.Option(help="Model file or OpenVINO folder.")] = None,
    imgsz: Annotated[int | None, typer.Option(help="Detector input size.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Score counts (true vs counted, WAPE, GEH) and tracks (IDF1, MOTA) against ground-truth tracks."""
    from citywatch.paths import AssetNotFound
    from evaluation.accuracy import evaluate_video
    from evaluation.ground_truth import GroundTruthError, load_ground_truth
    from vision.detector import DetectorError
    from vision.video import VideoError

    cfg, model, camera = _offline_setup(config, video, line, "eval", weights, imgsz)
    try:
        truth = load_ground_truth(gt)
        with progress_bar() as bar:
            task = bar.add_task(f"evaluating {video.name}", total=None)
            result = evaluate_video(
                video, truth, camera, model=model, tracker=cfg.tracker, counting=cfg.counting,
                progress=lambda done, total: bar.update(task, completed=done, total=total or None),
            )
    except (VideoError, AssetNotFound, DetectorError, GroundTruthError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        out.print_json(json.dumps(result.to_json()))
        return
    c = result.counts
    table = Table(title=f"{video.name}: {result.frames} frames, counts against {gt.name}")
    for col in ("line", "direction", "class", "true", "counted", "abs error"):
        table.add_column(col, justify="right" if col in ("true", "counted", "abs error") else "left")
    for r in c.rows:
        table.add_row(r.line, r.direction, r.class_name, str(r.true), str(r.counted), str(r.abs_error))
    for t in c.totals():
        table.add_row(t["line"], t["direction"], "[b]all[/b]", str(t["true"]), str(t["counted"]),
                      f"{t['abs_error']} (GEH {t['geh']:.2f})")
    out.print(table)
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    out.print(f"true {c.true_total}, counted {c.counted_total}: total error {pct(c.total_error)}, "
              f"WAPE by class {pct(c.wape)}, line/direction abs error {c.line_abs_error}")
    if result.tracking is not None:
        tr = result.tracking
        out.print(f"tracking: IDF1 {pct(tr.idf1)}, MOTA {pct(tr.mota)}, ID switches {tr.id_switches}, "
                  f"misses {tr.misses}, false positives {tr.false_positives} of {tr.gt_boxes} ground-truth boxes")

def eval_stationary(
    gt: Annotated[list[Path], typer.Argument(help="Ground-truth tracks (CSV or CVAT 1.1 XML) with stopped flags.")],
    video: Annotated[
        list[Path] | None, typer.Option("--video", help="The clip of each GT file, in order: score pipeline tracks.")
    ] = None,
    fps: Annotated[float, typer.Option(help="Frame rate of annotation-only scoring (no --video).")] = 25.0,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Precision and recall of the per-track stationary state against ground-truth ``stopped`` flags.

    Without --video the state runs over the annotated boxes (the rule alone); with --video over the
    detector's and tracker's tracks, matched to the annotations by IoU."""
    from evaluation.ground_truth import GroundTruthError, load_ground_truth
    from evaluation.stationary import StationaryScore, evaluate_stationary

    cfg = load_or_exit(config)
    if video and len(video) != len(gt):
        err.print("[red]error:[/red] give one --video per ground-truth file")
        raise typer.Exit(2)
    per: dict[str, StationaryScore] = {}
    try:
        for i, g in enumerate(gt):
            truth = load_ground_truth(g)
            if not video:
                per[g.name] = evaluate_stationary(truth, fps, cfg.counting)
                continue
            from evaluation.offline import count_video
            from vision.detections import Detections
            from vision.pipeline import FrameResult
            from vision.video import open_video

            clip = video[i]
            info, _ = open_video(clip)
            tracked: list[tuple[int, Detections]] = []

            def keep(r: FrameResult, acc: list[tuple[int, Detections]] = tracked) -> None:
                acc.append((r.frame_index, r.detections))

            count_video(clip, CameraConfig(id="eval", source=str(clip), realtime=False), model=cfg.model,
                        tracker=cfg.tracker, counting=cfg.counting, on_result=keep)
            per[g.name] = evaluate_stationary(truth, info.fps, cfg.counting, tracked)
    except (GroundTruthError, OSError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    total = StationaryScore()
    for sc in per.values():
        total = total.add(sc)
    if as_json:
        out.print_json(json.dumps({"clips": {k: v.to_json() for k, v in per.items()}, "pooled": total.to_json()}))
        return
    table = Table(title="stationary state vs ground-truth 'stopped' (per track)")
    for col in ("clip", "precision", "recall", "tp", "fp", "fn", "tn"):
        table.add_column(col)
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    for name, sc in [*per.items(), ("pooled", total)]:
        table.add_row(name, pct(sc.precision), pct(sc.recall), str(sc.tp), str(sc.fp), str(sc.fn), str(sc.tn))
    out.print(table)
