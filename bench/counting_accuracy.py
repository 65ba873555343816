"""Counting accuracy of citywatch against Ultralytics' own ``solutions.ObjectCounter``, same weights, lines, clips.

    python bench/counting_accuracy.py [--weights PATH] [--json OUT.json]

For every clip with ground-truth tracks (the shared London clips, lines in bench/vision_london_lines.json)
the true crossings are derived from the annotated tracks, then both counters run on the video:

- citywatch: the default configuration (``VisionPipeline``, bottom-centre anchor, direction by side);
- ObjectCounter (ultralytics, default settings and default tracker, ``tracktrack.yaml`` in 8.4, same ``.pt``,
  vehicle classes only): it counts each track once per line, by the box centre, with a direction from
  the motion along the image axis, so its ``IN``/``OUT`` are not citywatch's ``in``/``out``. It is
  scored on per-line totals (both directions), against true crossings of the box centre (its own
  anchor) and also of the bottom centre (citywatch's).

One ObjectCounter per line, all sharing the first one's tracks per frame (the model runs once a frame).
Prints per-line tables side by side and pooled errors; the machine's other load makes timings noisy.

Recorded (moved here from vision/pipeline.py): the adaptive stride's reach includes half a box (a track at
the dead band's edge); without that half box, ``--max-stride`` lost 1 of the 41 London crossings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from citywatch.config import CameraConfig, LineConfig, ModelConfig, ProcessingConfig  # noqa: E402
from evaluation.accuracy import TrackingReport, evaluate_tracks, true_counts  # noqa: E402
from evaluation.ground_truth import load_ground_truth  # noqa: E402
from evaluation.offline import count_video  # noqa: E402
from vision.video import open_video  # noqa: E402

VEHICLE_COCO = [1, 2, 3, 5, 7]  # bicycle, car, motorcycle, bus, truck (the GT annotates vehicles only)


def load_lines(path: Path) -> dict[str, list[LineConfig]]:
    data = json.loads(path.read_text())
    return {
        clip: [LineConfig(id=k, points=(tuple(a), tuple(b))) for k, (a, b) in lines.items()]
        for clip, lines in data.items()
        if not clip.startswith("_")
    }


def run_citywatch(
    video: Path, lines: list[LineConfig], weights: Path, processing: ProcessingConfig | None = None
) -> tuple[dict, list, float]:
    camera = CameraConfig(id="bench", source=str(video), lines=lines, realtime=False, processing=processing)
    tracked: list = []
    r = count_video(
        video,
        camera,
        model=ModelConfig(weights=weights),
        on_result=lambda fr: tracked.append((fr.frame_index, fr.detections)),
    )
    return r.lines, tracked, r.seconds


def object_counters(lines: list[LineConfig], weights: Path) -> list:
    """One Ultralytics ObjectCounter per line; all but the first reuse the first one's tracks of each
    frame, so the model and tracker run once per frame, as citywatch's do."""
    from ultralytics import solutions

    counters = []
    for ln in lines:
        (x1, y1), (x2, y2) = ln.points
        counters.append(
            solutions.ObjectCounter(
                model=str(weights),
                region=[(x1, y1), (x2, y2)],
                classes=VEHICLE_COCO,
                show=False,
                verbose=False,
            )
        )
    first = counters[0]

    def shared_tracks(counter):  # noqa: ANN001, ANN202
        def extract(im0) -> None:  # noqa: ANN001
            for name in ("tracks", "track_data", "boxes", "clss", "track_ids", "confs"):
                setattr(counter, name, getattr(first, name))

        return extract

    for c in counters[1:]:
        c.extract_tracks = shared_tracks(c)
        c.profilers = first.profilers  # its timing reads the profiler the model call ran under
    return counters


def run_object_counter(video: Path, lines: list[LineConfig], weights: Path) -> tuple[dict[str, int], float]:
    """Per line: how many tracks ObjectCounter counted (IN + OUT)."""
    import logging

    import torch
    from ultralytics.utils import LOGGER

    LOGGER.setLevel(logging.ERROR)  # "No tracks found" on every empty frame
    torch.set_num_threads(2)
    counters = object_counters(lines, weights)
    _, frames = open_video(video)
    t0 = time.perf_counter()
    for frame in frames:
        for c in counters:
            c(frame)
    return {ln.id: c.in_count + c.out_count for ln, c in zip(lines, counters, strict=True)}, time.perf_counter() - t0


def line_totals(counts: dict) -> dict[str, int]:
    return {line: sum(sum(by.values()) for by in dirs.values()) for line, dirs in counts.items()}


def main() -> int:
    weights_env = os.environ.get("CITYWATCH_WEIGHTS", str(REPO.parent / "shared/weights/yolov8n-coco-rebuilt.pt"))
    samples = Path(os.environ.get("CITYWATCH_SAMPLES", REPO.parent / "shared/videos"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=Path(weights_env))
    ap.add_argument("--lines", type=Path, default=REPO / "bench/vision_london_lines.json")
    ap.add_argument("--clips", type=Path, default=samples / "tfl_london_jamcam")
    ap.add_argument("--skip-baseline", action="store_true", help="Only citywatch.")
    ap.add_argument("--json", type=Path, help="Also write every number here.")
    ap.add_argument("--roi", default="auto", choices=["auto", "full"], help="citywatch's processing.roi.")
    ap.add_argument("--max-stride", type=int, default=None, help="citywatch's processing.max_stride (1: off).")
    args = ap.parse_args()
    processing = ProcessingConfig(
        roi=args.roi, **({} if args.max_stride is None else {"max_stride": args.max_stride})
    )

    pooled = {"true": 0, "cw": 0, "cw_abs": 0, "cw_line_abs": 0, "true_c": 0, "oc": 0, "oc_abs": 0, "oc_abs_bc": 0}
    tracking: list[TrackingReport] = []
    dump: dict = {"clips": {}}
    for clip, lines in load_lines(args.lines).items():
        video = args.clips / f"{clip}.mp4"
        gt = load_ground_truth(args.clips / f"{clip}.tracks.csv")
        counted, tracked, cw_s = run_citywatch(video, lines, args.weights, processing)
        report, tr = evaluate_tracks(gt, lines, counted, tracked)
        assert tr is not None
        tracking.append(tr)
        truth_bc = line_totals(true_counts(gt, lines, "bottom_center"))
        truth_c = line_totals(true_counts(gt, lines, "center"))
        oc, oc_s = ({}, 0.0) if args.skip_baseline else run_object_counter(video, lines, args.weights)
        cw_line = line_totals(counted)
        baseline_s = "" if args.skip_baseline else f", ObjectCounter {oc_s:.0f} s"
        print(f"\n{clip}  (citywatch {cw_s:.0f} s{baseline_s})")
        print(f"  {'line':12} {'dir':4} {'true':>5} {'citywatch':>9} {'err':>4}")
        for t in report.totals():
            print(f"  {t['line']:12} {t['direction']:4} {t['true']:5d} {t['counted']:9d} {t['abs_error']:4d}")
        print(f"  per line, both directions: {'true(bc)':>8} {'citywatch':>9} | {'true(ctr)':>9} {'ObjCounter':>10}")
        for ln in lines:
            o = oc.get(ln.id)
            print(
                f"  {ln.id:25} {truth_bc[ln.id]:8d} {cw_line[ln.id]:9d} | {truth_c[ln.id]:9d} "
                f"{'-' if o is None else o:>10}"
            )
        print(
            f"  citywatch: true {report.true_total} counted {report.counted_total} "
            f"line/dir abs err {report.line_abs_error}, WAPE(class) {report.wape:.3f}; "
            f"IDF1 {tr.idf1:.3f} MOTA {tr.mota:.3f} IDsw {tr.id_switches}"
        )
        oc_abs = sum(abs(oc.get(k, 0) - truth_c[k]) for k in truth_c) if oc else None
        oc_abs_bc = sum(abs(oc.get(k, 0) - truth_bc[k]) for k in truth_bc) if oc else None
        cw_line_abs = sum(abs(cw_line[k] - truth_bc[k]) for k in truth_bc)
        if oc:
            print(
                f"  per-line abs error: citywatch {cw_line_abs} | ObjectCounter {oc_abs} (vs centre truth), "
                f"{oc_abs_bc} (vs bottom-centre truth)"
            )
        pooled["true"] += report.true_total
        pooled["cw"] += report.counted_total
        pooled["cw_abs"] += report.line_abs_error
        pooled["cw_line_abs"] += cw_line_abs
        pooled["true_c"] += sum(truth_c.values())
        pooled["oc"] += sum(oc.values())
        pooled["oc_abs"] += oc_abs or 0
        pooled["oc_abs_bc"] += oc_abs_bc or 0
        dump["clips"][clip] = {
            "citywatch": report.to_json(),
            "tracking": tr.to_json(),
            "object_counter": oc,
            "true_per_line_bottom_center": truth_bc,
            "true_per_line_center": truth_c,
        }
    p = pooled
    idf1 = 2 * sum(t.idtp for t in tracking) / max(1, sum(t.gt_boxes + t.tracked_boxes for t in tracking))
    errors = sum(t.misses + t.false_positives + t.id_switches for t in tracking)
    mota = 1 - errors / max(1, sum(t.gt_boxes for t in tracking))
    print("\nPOOLED over all clips and lines")
    print(
        f"  citywatch:     true {p['true']}, counted {p['cw']}, total error "
        f"{abs(p['cw'] - p['true']) / p['true']:.1%}, sum of line/direction abs errors {p['cw_abs']}, "
        f"of per-line abs errors {p['cw_line_abs']}; "
        f"IDF1 {idf1:.3f}, MOTA {mota:.3f}"
    )
    if not args.skip_baseline:
        print(
            f"  ObjectCounter: true (centre) {p['true_c']}, counted {p['oc']}, total error "
            f"{abs(p['oc'] - p['true_c']) / p['true_c']:.1%}, sum of per-line abs errors {p['oc_abs']} "
            f"({p['oc_abs_bc']} against bottom-centre truth)"
        )
    dump["pooled"] = {**p, "idf1": idf1, "mota": mota}
    if args.json:
        args.json.write_text(json.dumps(dump, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
