"""Edge throughput on a 2-core box: decode only, the Ultralytics ObjectCounter baseline, citywatch per configuration.

    python bench/edge_throughput.py [--configs NAME,...] [--e2e NAME,...] [--streams 4] [--json OUT.json]

Every row runs in its own subprocess (so its peak RSS and CPU time are its own) over the shared London
clips as they are (352x288, 25 fps, ground-truth tracks; lines from bench/vision_london_lines.json),
one after another, every frame read from the file as fast as it goes:

- ``decode``: OpenCV ``VideoCapture.read`` of every frame, nothing else (the physical limit);
- ``baseline``: Ultralytics ``solutions.ObjectCounter`` (the ``.pt``, every frame, default tracker,
  ``torch.set_num_threads(2)``; one counter per line sharing the model call, as bench/counting_accuracy.py);
- ``cw:<config>``: citywatch's ``VisionPipeline`` (detect -> track -> count, zones/incidents on) per
  configuration (see CONFIGS: backend, input size, ``processing.detect_every``, motion gating);
- ``e2e:<config>``: the real ``EdgeWorker`` with ``--streams`` cameras (the London clips, the first again
  as the fourth), ``realtime: false``, publishing to a private Mosquitto; a subscriber in this process
  timestamps each event when the broker delivers it; frames are timestamped when the source yields them.

Columns: frames/s (all frames of all clips over the wall time from the first read to the last
processed), CPU % (process CPU time over wall time; 200 % = both cores), peak RSS, p50/p95 frame->event
latency (the frame's read to its crossing coming out of the pipeline, or to MQTT delivery for e2e),
the counting error (pooled |counted - true| / true over every London line, true crossings from the GT
tracks, harness of evaluation/accuracy.py; the baseline against its own centre anchor as in
bench/counting_accuracy.py), and frames/s as ratios to the baseline and to decode-only.
Exported models (320 px) come from the cache (``citywatch weights export``), built on first use.

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
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

WEIGHTS = Path(os.environ.get("CITYWATCH_WEIGHTS", REPO.parent / "shared/weights/yolov8n-coco-rebuilt.pt"))
SAMPLES = Path(os.environ.get("CITYWATCH_SAMPLES", REPO.parent / "shared/videos"))
CLIPS = SAMPLES / "tfl_london_jamcam"
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
    """Pooled (true, counted, sum of line/direction abs errors) over the London clips, bottom-centre truth."""
    from evaluation.accuracy import evaluate_tracks
    from evaluation.ground_truth import load_ground_truth

    true = counted = line_abs = 0
    for clip, _, lines in london():
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


def child_e2e(name: str, streams: int) -> dict:
    """The real EdgeWorker, ``streams`` cameras, realtime off, to a private Mosquitto; latency to the subscriber."""
    import shutil
    import socket

    import paho.mqtt.client as mqtt

    from citywatch.config import CitywatchConfig
    from edge import worker as worker_mod
    from edge.worker import EdgeWorker

    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    tmp = Path(tempfile.mkdtemp(prefix="cw-e2e-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp / "m.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen([mosquitto, "-c", str(tmp / "m.conf")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        clips = london()
        cams = []
        for i in range(streams):
            clip, video, lines = clips[i % len(clips)]
            proc = processing(name)
            cams.append({"id": f"cam-{i + 1}", "source": str(video), "realtime": False, "loop": False,
                         "lines": [ln.model_dump(mode="json") for ln in lines],
                         **({"processing": proc.model_dump(mode="json")} if proc else {})})
        model = model_config(name)
        cfg = CitywatchConfig.model_validate({
            "site": "bench",
            "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": "bench"},
            "model": model.model_dump(mode="json"),
            "edge": {"outbox_path": str(tmp / "outbox.sqlite"), "heartbeat_s": 5, "tamper": {"enabled": True}},
            "cameras": cams,
        })
        read_at: dict[tuple[str, int], float] = {}
        first_read = [None]
        last_done = [0.0]

        orig_open = worker_mod._Camera._open_source

        def timed_open(self):  # noqa: ANN001, ANN202 - timestamps each frame as its source yields it
            source = orig_open(self)
            frames, cam_id = source.frames, self.id

            def stamped(stop=None):  # noqa: ANN001, ANN202
                for f in frames(stop):
                    now = time.monotonic()
                    if first_read[0] is None:
                        first_read[0] = now
                    read_at[(cam_id, f.index)] = now
                    yield f
                    last_done[0] = time.monotonic()

            source.frames = stamped
            return source

        worker_mod._Camera._open_source = timed_open
        received: list[tuple[str, int, float]] = []
        got_all = threading.Event()

        def on_message(client, userdata, msg) -> None:  # noqa: ANN001
            now = time.monotonic()
            data = json.loads(msg.payload)
            for ev in data.get("events", [data]):
                if ev.get("kind") == "line_crossing":
                    received.append((ev["camera_id"], ev["frame_index"], now, ev))

        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub", protocol=mqtt.MQTTv5)
        sub.on_message = on_message
        sub.connect("127.0.0.1", port)
        sub.subscribe("bench/#", qos=1)
        sub.loop_start()
        from vision.detector import load_detector

        if name == "default":  # one model per input size the cameras' regions need, built before timing
            worker = EdgeWorker(cfg)
            worker.prepare()
        else:
            import numpy as np

            detector = load_detector(model)
            detector.detect(np.zeros((288, 352, 3), np.uint8))
            worker = EdgeWorker(cfg, detector=detector)
        meter = Meter()
        meter.start()
        worker.start()
        worker.wait_sources_done(600)
        frames = sum(c.n.frames for c in worker.cameras.values())
        appended = sum(sum(c.n.crossings.values()) for c in worker.cameras.values())
        deadline = time.monotonic() + 10
        while len(received) < appended and time.monotonic() < deadline:
            time.sleep(0.05)
        got_all.set()
        out = meter.stop(frames)
        out["cameras"] = {
            cid: {"offered": s["frames"], "detected": s["frames_detected"], "skipped": s["frames_skipped"]}
            for cid, s in worker.stats().items()
        }
        wall = last_done[0] - (first_read[0] or last_done[0])
        out["fps"] = frames / wall if wall > 0 else 0.0
        out["seconds"] = wall
        worker.stop(10)
        sub.loop_stop()
        lat = [(t - read_at[(cam, idx)]) * 1000.0 for cam, idx, t, _ in received if (cam, idx) in read_at]
        counted: dict[str, dict] = {}
        seen = set()
        for cam, _idx, _t, ev in received:
            if ev["event_id"] in seen:
                continue
            seen.add(ev["event_id"])
            i = int(cam.split("-")[1]) - 1
            if i >= len(clips):  # the repeated clip is scored once (its own run): count cameras 1..3
                continue
            clip, _, lines = clips[i]
            per = counted.setdefault(clip, {ln.id: {"in": {}, "out": {}} for ln in lines})
            d = per[ev["line_id"]][ev["direction"]]
            d[ev["class_name"]] = d.get(ev["class_name"], 0) + 1
        for clip, _, lines in clips:
            counted.setdefault(clip, {ln.id: {"in": {}, "out": {}} for ln in lines})
        true, cnt, line_abs = score(counted)
        out.update(p50_ms=pct(lat, 0.5), p95_ms=pct(lat, 0.95), true=true, counted=cnt,
                   error=abs(cnt - true) / true, line_abs=line_abs, events=len(received), appended=appended,
                   streams=streams)
        return out
    finally:
        broker.terminate()
        broker.wait(5)


# --- parent -----------------------------------------------------------------------------------


def run_child(args: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"failed": (p.stderr or p.stdout)[-800:]}
    return json.loads(lines[-1])


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"citywatch rows, of: {', '.join(CONFIGS)}")
    ap.add_argument("--e2e", default=DEFAULT_E2E, help="end-to-end rows (EdgeWorker, N cameras, MQTT)")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind = args.child[0]
        if kind == "decode":
            out = child_decode()
        elif kind == "baseline":
            out = child_baseline()
        elif kind == "cw":
            out = child_citywatch(args.child[1])
        else:
            out = child_e2e(args.child[1], int(args.child[2]))
        print(json.dumps(out))
        return 0

    if "ov-320" in args.configs + args.e2e or "ort-320" in args.configs + args.e2e:
        from vision.export import export_model

        for fmt_ in ("openvino", "onnx"):  # build the cached exports before anything is timed
            export_model(WEIGHTS, imgsz=320, fmt=fmt_)
    rows: list[tuple[str, dict]] = [("decode only (OpenCV)", run_child(["decode"]))]
    if not args.skip_baseline:
        rows.append(("baseline ObjectCounter .pt", run_child(["baseline"])))
    for name in [c for c in args.configs.split(",") if c]:
        rows.append((f"citywatch {name}", run_child(["cw", name])))
    for name in [c for c in args.e2e.split(",") if c]:
        rows.append((f"e2e {args.streams}x {name} ->MQTT", run_child(["e2e", name, str(args.streams)])))
    decode = rows[0][1].get("fps")
    base = dict(rows).get("baseline ObjectCounter .pt", {}).get("fps")
    import platform

    print(f"\n{os.cpu_count()} cores, {platform.processor() or platform.machine()}; London clips 352x288 25 fps "
          f"(3 clips, {rows[0][1].get('frames')} frames; e2e: {args.streams} cameras)")
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
    for label, r in rows:
        for cid, c in (r.get("cameras") or {}).items():
            print(f"  {label} {cid}: {c['offered']} frames offered, {c['detected']} detected, "
                  f"{c['skipped']} skipped by design")
    print("error: pooled |counted - true| / true over all London lines (baseline: per-line totals vs centre-anchor "
          "truth; citywatch: bottom-centre truth). e2e error: cameras 1-3 (camera 4 repeats clip 1).")
    if args.json:
        args.json.write_text(json.dumps(dict(rows), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
