"""Edge throughput on a 2-core box, in one run: decode only, the ObjectCounter baseline, citywatch per configuration,
four cameras end to end, four file cameras in real time, and four 720p/1080p/sub-stream H.264 RTSP cameras.

    python bench/edge_throughput.py [--configs NAME,...] [--e2e NAME,...] [--rt NAME,...] [--rtsp KIND,...]
                                    [--streams 4] [--duration 60] [--warmup 5] [--json OUT.json]

Every row runs in its own subprocess (so its peak RSS and CPU time are its own), one after another. The
first rows run the shared London clips as they are (352x288, 25 fps, ground-truth tracks; lines from
bench/vision_london_lines.json), every frame read from the file as fast as it goes:

- ``decode``: OpenCV ``VideoCapture.read`` of every frame, nothing else (the physical limit);
- ``baseline``: Ultralytics ``solutions.ObjectCounter`` (the ``.pt``, every frame, default tracker,
  ``torch.set_num_threads(2)``; one counter per line sharing the model call, as bench/counting_accuracy.py);
- ``cw:<config>``: citywatch's ``VisionPipeline`` (detect -> track -> count, zones/incidents on) per
  configuration (see CONFIGS: backend, input size, ``processing.detect_every``, motion gating);
- ``e2e:<config>``: the real ``EdgeWorker`` with ``--streams`` cameras (the London clips, the first again
  as the fourth), ``realtime: false``, publishing to a private Mosquitto; bench/mqtt_committer.py, a
  subscriber in a process of its own, timestamps each event's first delivery and commits like the server
  (so the edge's in-flight window never fills); frames are timestamped when the source yields them.

Then the real-time rows (bench/edge_live.py), each measured over ``--duration`` seconds after ``--warmup``:

- ``rt:<config>``: ``--streams`` file cameras paced at 25 fps and looped (``realtime: true, loop: true``),
  as ``citywatch demo`` runs them: frames handled per camera against 25 x wall seconds (bar: 0.95);
- ``rtsp:<kind>``: ``--streams`` H.264 RTSP cameras made from the clips (bench/rtsp_serve.py, the system
  Python's GStreamer: upscaled, encoded once into ``~/.cache/citywatch/bench-streams``, served looped at
  25 fps of wall clock): ``720p``, ``1080p``, ``1080p-roi`` (a configured ``roi``: the lines plus 10 % of
  the frame) and ``360p-sub`` (a camera's sub-stream), with ``--rtsp-config`` (default: the defaults):
  frames decoded and handled per second per stream, CPU per stream, frames dropped for being behind.

Columns: frames/s (all frames of all clips over the wall time from the first read to the last
processed; real-time rows: frames handled, all cameras), CPU % (process CPU time over wall time;
200 % = both cores), peak RSS, p50/p95 frame->event latency (the frame's read to its crossing coming out
of the pipeline, or to MQTT delivery for e2e/rt/rtsp), the counting error (pooled |counted - true| / true
over every London line, true crossings from the GT tracks, harness of evaluation/accuracy.py; the
baseline against its own centre anchor as in bench/counting_accuracy.py), and frames/s as ratios to the
baseline and to decode-only. Exported models come from the cache (``citywatch weights export``), built
on first use, before any timing.

Recorded on the 2-core box (moved here from the vision docstrings):
- OpenVINO ``streams`` > 1 (one infer request per camera thread, side by side): 25 % less CPU per frame
  than two threads taking turns on one request;
- motion gating (``vision/motion.py``): well under 1 ms a frame for the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

WEIGHTS = Path(os.environ.get("CITYWATCH_WEIGHTS", REPO.parent / "shared/weights/yolov8n-coco-rebuilt.pt"))
SAMPLES = Path(os.environ.get("CITYWATCH_SAMPLES", REPO.parent / "shared/videos"))
CLIPS = SAMPLES / "tfl_london_jamcam"
#: clips made for the benches (RTSP streams, scaled clips): built once, outside the repository
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "citywatch/bench-streams"
INT8_IR = WEIGHTS.parent / "yolov8n_int8_openvino_model"

#: name -> (model overrides, camera.processing); ``weights: "pt"`` is the checkpoint (exported when needed).
CONFIGS: dict[str, tuple[dict, dict | None]] = {
    # what a new user gets: no speed keys (backend auto, imgsz auto, ROI, adaptive stride, shedding)
    "default": ({"weights": "pt"}, None),
    "pt-640": ({"weights": "pt", "backend": "ultralytics", "imgsz": 640}, None),
    "ov-int8-640": ({"weights": "int8", "backend": "openvino", "imgsz": 640}, None),
    "ov-320": ({"weights": "pt", "backend": "openvino", "imgsz": 320}, None),
    "ov-320-every2": ({"weights": "pt", "backend": "openvino", "imgsz": 320}, {"detect_every": 2}),
    "ov-320-every3": ({"weights": "pt", "backend": "openvino", "imgsz": 320}, {"detect_every": 3}),
    "ov-320-motion": ({"weights": "pt", "backend": "openvino", "imgsz": 320}, {"motion": {"enabled": True}}),
    "ov-320-every2-motion": (
        {"weights": "pt", "backend": "openvino", "imgsz": 320},
        {"detect_every": 2, "motion": {"enabled": True}},
    ),
    "ort-320": ({"weights": "pt", "backend": "onnxruntime", "imgsz": 320}, None),
}
DEFAULT_CONFIGS = "pt-640,ov-320,ov-320-every2,default"
DEFAULT_E2E = "default"


def model_config(name: str):  # noqa: ANN201
    from citywatch.config import ModelConfig

    over, _ = CONFIGS[name]
    over = dict(over)
    over["weights"] = WEIGHTS if over["weights"] == "pt" else INT8_IR
    return ModelConfig(**over) if name == "default" else ModelConfig(**over, threads=2)


def processing(name: str):  # noqa: ANN201
    from citywatch.config import ProcessingConfig

    _, proc = CONFIGS[name]
    return None if proc is None else ProcessingConfig(**proc)


def london() -> list[tuple[str, Path, list]]:
    from counting_accuracy import load_lines

    lines = load_lines(REPO / "bench/vision_london_lines.json")
    return [(clip, CLIPS / f"{clip}.mp4", ln) for clip, ln in lines.items()]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


class Meter:
    """Wall time, CPU time and peak RSS of this process from ``start``."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()

    def start(self) -> None:
        self.t0 = time.perf_counter()
        c = self.proc.cpu_times()
        self.c0 = c.user + c.system

    def stop(self, frames: int) -> dict:
        import resource

        wall = time.perf_counter() - self.t0
        c = self.proc.cpu_times()
        return {
            "frames": frames,
            "seconds": wall,
            "fps": frames / wall,
            "cpu_pct": 100.0 * (c.user + c.system - self.c0) / wall,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


# --- children ---------------------------------------------------------------------------------


def child_decode() -> dict:
    import cv2

    meter = Meter()
    n = 0
    meter.start()
    for _, video, _ in london():
        cap = cv2.VideoCapture(str(video))
        while True:
            ok, _frame = cap.read()
            if not ok:
                break
            n += 1
        cap.release()
    return meter.stop(n)


def child_baseline() -> dict:
    import logging

    import torch
    from counting_accuracy import line_totals, object_counters
    from ultralytics.utils import LOGGER

    from citywatch.contract import CLASS_NAMES  # noqa: F401 - same import cost as citywatch rows
    from evaluation.accuracy import true_counts
    from evaluation.ground_truth import load_ground_truth

    LOGGER.setLevel(logging.ERROR)
    torch.set_num_threads(2)
    import cv2

    meter = Meter()
    n, lat, true_c, counted = 0, [], 0, 0
    setups = []
    for clip, video, lines in london():
        counters = object_counters(lines, WEIGHTS)
        setups.append((clip, video, lines, counters))
    # warm the model up outside the timing (as citywatch's rows load theirs before timing)
    meter.start()
    for clip, video, lines, counters in setups:
        gt = load_ground_truth(CLIPS / f"{clip}.tracks.csv")
        cap = cv2.VideoCapture(str(video))
        while True:
            t_read = time.perf_counter()
            ok, frame = cap.read()
            if not ok:
                break
            n += 1
            before = sum(c.in_count + c.out_count for c in counters)
            for c in counters:
                c(frame)
            after = sum(c.in_count + c.out_count for c in counters)
            if after > before:
                lat.extend([(time.perf_counter() - t_read) * 1000.0] * (after - before))
        cap.release()
        true_c += sum(line_totals(true_counts(gt, lines, "center")).values())
        counted += sum(c.in_count + c.out_count for c in counters)
    out = meter.stop(n)
    out.update(p50_ms=pct(lat, 0.5), p95_ms=pct(lat, 0.95), true=true_c, counted=counted,
               error=abs(counted - true_c) / true_c, note="vs centre-anchor truth, per-line totals")
    return out


def score(clips_counted: dict[str, dict]) -> tuple[int, int, int]:
    """Pooled (true, counted, sum of line/direction abs errors) over the London clips in ``clips_counted``,
    bottom-centre truth."""
    from evaluation.accuracy import evaluate_tracks
    from evaluation.ground_truth import load_ground_truth

    true = counted = line_abs = 0
    for clip, _, lines in london():
        if clip not in clips_counted:
            continue
        report, _ = evaluate_tracks(load_ground_truth(CLIPS / f"{clip}.tracks.csv"), lines,
                                    clips_counted[clip], None)
        true, counted = true + report.true_total, counted + report.counted_total
        line_abs += report.line_abs_error
    return true, counted, line_abs


def child_citywatch(name: str) -> dict:
    import cv2
    import numpy as np

    from citywatch.config import CameraConfig
    from vision.detector import load_detector
    from vision.pipeline import VisionPipeline

    model = model_config(name)
    shared = None if name == "default" else load_detector(model)  # default: sized per clip (imgsz/roi auto)
    pipelines = []
    for clip, video, lines in london():  # models exported, loaded and warmed up outside the timing
        camera = CameraConfig(id="bench", source=str(video), lines=lines, realtime=False, processing=processing(name))
        cap = cv2.VideoCapture(str(video))
        hw = (int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
        pipeline = VisionPipeline(camera, model=model, detector=shared, fps=cap.get(cv2.CAP_PROP_FPS) or 25.0,
                                  frame_hw=hw)
        pipeline.detector.detect(np.zeros((*hw, 3), np.uint8))
        pipelines.append((clip, cap, lines, pipeline))
    detector = pipelines[0][3].detector
    meter = Meter()
    n, lat, detected = 0, [], 0
    counted: dict[str, dict] = {}
    meter.start()
    for clip, cap, lines, pipeline in pipelines:
        per = counted[clip] = {ln.id: {"in": {}, "out": {}} for ln in lines}
        index = 0
        while True:
            t_read = time.perf_counter()
            ok, frame = cap.read()  # every frame read, as the edge's file source does
            if not ok:
                break
            n += 1
            r = pipeline.process(frame, index)
            detected += int(r.detected and r.processed)
            for c in r.crossings:
                d = per[c.line_id][c.direction]
                d[c.class_name] = d.get(c.class_name, 0) + 1
            if r.crossings:
                lat.extend([(time.perf_counter() - t_read) * 1000.0] * len(r.crossings))
            index += 1
        cap.release()
    out = meter.stop(n)
    true, cnt, line_abs = score(counted)
    out.update(p50_ms=pct(lat, 0.5), p95_ms=pct(lat, 0.95), true=true, counted=cnt, error=abs(cnt - true) / true,
               line_abs=line_abs, detector_runs=detected, model=detector.version)
    return out


# --- parent -----------------------------------------------------------------------------------


def run_child(args: list[str], timeout: float = 1800) -> dict:
    cmd = [sys.executable, __file__, "--child", *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return {"failed": f"timed out after {timeout:.0f} s: {str(exc.stderr)[-500:]}"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"failed": (p.stderr or p.stdout)[-800:]}
    return json.loads(lines[-1])


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def run_rows(args: argparse.Namespace) -> list[tuple[str, dict]]:
    if "ov-320" in args.configs + args.e2e or "ort-320" in args.configs + args.e2e:
        from vision.export import export_model

        for fmt_ in ("openvino", "onnx"):  # build the cached exports before anything is timed
            export_model(WEIGHTS, imgsz=320, fmt=fmt_)
    live = [str(args.duration), str(args.warmup)]
    live_timeout = args.duration + args.warmup + 900  # + exports and stream encoding on a first run
    rows: list[tuple[str, dict]] = []
    if not args.skip_decode:
        rows.append(("decode only (OpenCV)", run_child(["decode"])))
    if not args.skip_baseline:
        rows.append(("baseline ObjectCounter .pt", run_child(["baseline"])))
    for name in [c for c in args.configs.split(",") if c]:
        rows.append((f"citywatch {name}", run_child(["cw", name])))
    for name in [c for c in args.e2e.split(",") if c]:
        rows.append((f"e2e {args.streams}x {name} ->MQTT", run_child(["e2e", name, str(args.streams)])))
    for name in [c for c in args.rt.split(",") if c]:
        rows.append((f"rt {args.streams}x file 25fps {name}",
                     run_child(["rt", name, str(args.streams), *live], live_timeout)))
    for kind in [c for c in args.rtsp.split(",") if c]:
        rows.append((f"rtsp {args.streams}x {kind} {args.rtsp_config}",
                     run_child(["rtsp", kind, args.rtsp_config, str(args.streams), *live], live_timeout)))
    return rows


def print_rows(args: argparse.Namespace, rows: list[tuple[str, dict]]) -> None:
    import platform

    got = dict(rows)
    decode = got.get("decode only (OpenCV)", {}).get("fps")
    base = got.get("baseline ObjectCounter .pt", {}).get("fps")
    clip_frames = got.get("decode only (OpenCV)", {}).get("frames")
    print(f"\n{os.cpu_count()} cores, {platform.processor() or platform.machine()}; London clips 352x288 25 fps "
          f"(3 clips, {clip_frames} frames; e2e/rt/rtsp: {args.streams} cameras; rt/rtsp: {args.duration:.0f} s "
          f"measured after a {args.warmup:.0f} s warm-up)")
    head = (f"{'row':36} {'frames/s':>8} {'x base':>6} {'/decode':>7} {'CPU %':>6} {'RSS MiB':>7} "
            f"{'p50 ms':>7} {'p95 ms':>7} {'true':>5} {'cnt':>5} {'error':>6}")
    print(head)
    print("-" * len(head))
    for label, r in rows:
        if "failed" in r:
            print(f"{label:36} FAILED: {r['failed'][-300:]}")
            continue
        print(
            f"{label:36} {r['fps']:8.1f} {fmt(r['fps'] / base if base else None, '6.2f')} "
            f"{fmt(r['fps'] / decode if decode else None, '7.3f')} {r['cpu_pct']:6.0f} {r['peak_rss_mib']:7.0f} "
            f"{fmt(r.get('p50_ms'), '7.1f')} {fmt(r.get('p95_ms'), '7.1f')} {fmt(r.get('true'), '5d')} "
            f"{fmt(r.get('counted'), '5d')} {fmt(r.get('error'), '6.1%')}"
        )
    live = [(label, r) for label, r in rows if "fps_per_stream" in r]
    if live:
        head = (f"\n{'real-time rows, per stream':36} {'decoded/s':>9} {'handled/s':>9} {'CPU %':>6} "
                f"{'min handled/25fps':>17} {'p50 ms':>7} {'wait p50':>8} {'camera-side CPU %':>17}")
        print(head)
        print("-" * len(head))
        for label, r in live:
            print(f"{label:36} {r['decoded_per_stream']:9.1f} {r['fps_per_stream']:9.1f} "
                  f"{r['cpu_pct_per_stream']:6.0f} {r['min_handled_vs_clock']:17.3f} {fmt(r.get('p50_ms'), '7.1f')} "
                  f"{fmt(r.get('wait_p50_ms'), '8.1f')} {fmt(r.get('server_cpu_pct'), '17.0f')}")
    for label, r in rows:
        for cid, c in (r.get("cameras") or {}).items():
            extra = (f", {c['decoded']} decoded, {c['dropped']} dropped for being behind, "
                     f"handled/(25 x s) {c['handled_vs_clock']:.3f}, {c['state']}") if "decoded" in c else ""
            print(f"  {label} {cid}: {c['offered']} frames offered, {c['detected']} detected, "
                  f"{c['skipped']} skipped by design{extra}")
    print("error: pooled |counted - true| / true over all London lines (baseline: per-line totals vs centre-anchor "
          "truth; citywatch: bottom-centre truth). e2e error: cameras 1-3 (camera 4 repeats clip 1). rt/rtsp rows "
          "loop their clips: no error; frames/s there is frames handled, all cameras; p50/p95: frame -> MQTT "
          "delivery; the bar is min handled/25fps >= 0.95 and p50 < 200 ms.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"citywatch rows, of: {', '.join(CONFIGS)}")
    ap.add_argument("--e2e", default=DEFAULT_E2E, help="end-to-end rows (EdgeWorker, N file cameras, MQTT)")
    ap.add_argument("--rt", default="default", help="real-time rows: N file cameras at 25 fps, looped (configs)")
    ap.add_argument("--rtsp", default="720p,1080p,1080p-roi,360p-sub",
                    help="RTSP rows, of: 720p, 1080p, 1080p-roi, 360p-sub ('' for none)")
    ap.add_argument("--rtsp-config", default="default", help="the configuration the RTSP rows run")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds each real-time row is measured")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds each real-time row runs before measuring")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--skip-decode", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, rest = args.child[0], args.child[1:]
        if kind == "decode":
            out = child_decode()
        elif kind == "baseline":
            out = child_baseline()
        elif kind == "cw":
            out = child_citywatch(rest[0])
        else:
            import edge_live

            if kind == "e2e":
                out = edge_live.child_e2e(rest[0], int(rest[1]))
            elif kind == "rt":
                out = edge_live.child_realtime(rest[0], int(rest[1]), float(rest[2]), float(rest[3]))
            else:
                out = edge_live.child_rtsp(rest[0], rest[1], int(rest[2]), float(rest[3]), float(rest[4]))
        print(json.dumps(out))
        return 0
    rows = run_rows(args)
    print_rows(args, rows)
    if args.json:
        args.json.write_text(json.dumps(dict(rows), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
