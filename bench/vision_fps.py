"""Frames per second of detect -> track -> count per detector backend on one real clip.

    python bench/vision_fps.py [--clip PATH] [--frames N] [--imgsz 640]

Weights are looked up beside $CITYWATCH_WEIGHTS (as laid out in ../shared/weights); ratios are to
the Ultralytics (.pt) backend measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path

from citywatch.config import CameraConfig, LineConfig, ModelConfig
from evaluation.offline import count_video

BACKENDS = {
    "ultralytics (.pt)": ("ultralytics", "yolov8n-coco-rebuilt.pt"),
    "onnxruntime (fp32 .onnx)": ("onnxruntime", "yolov8n-coco-rebuilt.onnx"),
    "openvino (int8 IR)": ("openvino", "yolov8n_int8_openvino_model"),
}


def main() -> int:
    weights = Path(os.environ.get("CITYWATCH_WEIGHTS", "../shared/weights/yolov8n-coco-rebuilt.pt")).parent
    samples = Path(os.environ.get("CITYWATCH_SAMPLES", "../shared/videos"))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clip", type=Path, default=samples / "two_way_road/suburban_two_way_road.mp4")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--imgsz", type=int, default=640)
    args = ap.parse_args()
    camera = CameraConfig(
        id="bench",
        source=str(args.clip),
        realtime=False,
        lines=[LineConfig(id="road", points=((225, 230), (640, 230)))],
    )
    rows = []
    for label, (backend, name) in BACKENDS.items():
        path = weights / name
        if not path.exists():
            print(f"skip {label}: {path} not found", file=sys.stderr)
            continue
        model = ModelConfig(weights=path, backend=backend, imgsz=args.imgsz)
        r = count_video(args.clip, camera, model=model, max_frames=args.frames)
        total = sum(n for d in r.lines.values() for by in d.values() for n in by.values())
        rows.append((label, r.frames, r.fps, total))
    base = rows[0][2] if rows else 1.0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"clip {args.clip.name}, {args.frames} frames, imgsz {args.imgsz}, {os.cpu_count()} cores")
    print(f"{'backend':28} {'frames':>6} {'fps':>7} {'x .pt':>6} {'counted':>7}")
    for label, frames, fps, total in rows:
        print(f"{label:28} {frames:6d} {fps:7.1f} {fps / base:6.2f} {total:7d}")
    print(f"peak RSS {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
