"""int8 or not: NNCF quantisation calibrated on each camera's own frames, against fp32, on the London lines.

    PYTHONPATH=$PWD:/path/to/nncf-site python bench/int8_calibration.py [--frames 120] [--json OUT.json]

NNCF is not a citywatch dependency (``pip install nncf``; it needs no torch). For every shared London clip
(352x288, the lines of bench/vision_london_lines.json) this takes the default configuration's own cached
fp32 OpenVINO export at the clip's input size (``imgsz: auto``), quantises it with ``nncf.quantize``
(preset MIXED, the detection head's Multiply/Subtract/Sigmoid kept in float as Ultralytics' own int8 export
does) on ``--frames`` frames of that camera, spread over the clip (calibration reads no labels), then counts
the clip with fp32 and with int8 (``backend: openvino``, everything else default) and scores both against
the ground truth as bench/counting_accuracy.py does. Prints per clip and pooled: true, counted, the sum of
line/direction absolute errors, and the detector's mean milliseconds per detected frame.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from counting_accuracy import load_lines  # noqa: E402
from edge_throughput import CLIPS, WEIGHTS  # noqa: E402


def calibration_frames(video: Path, n: int) -> list:
    import cv2

    cap = cv2.VideoCapture(str(video))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    step = max(1, total // n)
    frames, i = [], 0
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        if i % step == 0:
            frames.append(frame)
        i += 1
    cap.release()
    return frames


def quantise(fp32_dir: Path, frames: list, hw: tuple[int, int], out_dir: Path) -> Path:
    import cv2
    import nncf
    import openvino as ov

    from vision.detector import letterbox

    xml = next(iter(sorted(fp32_dir.glob("*.xml"))))
    model = ov.Core().read_model(str(xml))

    def transform(frame):  # noqa: ANN001, ANN202 - the detector's own input: letterboxed, RGB, 0..1, NCHW
        img, _, _ = letterbox(frame, hw)
        return cv2.dnn.blobFromImage(img, 1.0 / 255.0, swapRB=True)

    quantised = nncf.quantize(
        model,
        nncf.Dataset(frames, transform),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(frames),
        ignored_scope=nncf.IgnoredScope(types=["Multiply", "Subtract", "Sigmoid"]),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantised, str(out_dir / xml.name))
    return out_dir


def count(video: Path, lines: list, weights: Path) -> tuple[dict, float, int]:
    from citywatch.config import CameraConfig, ModelConfig
    from evaluation.offline import count_video

    ms: list[float] = []
    camera = CameraConfig(id="bench", source=str(video), lines=lines, realtime=False)
    r = count_video(video, camera, model=ModelConfig(weights=weights, backend="openvino"),
                    on_result=lambda fr: ms.append(fr.inference_ms) if fr.detected and fr.processed else None)
    return r.lines, sum(ms) / max(1, len(ms)), len(ms)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=120, help="calibration frames per camera")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import cv2

    from citywatch.config import CameraConfig, ModelConfig
    from evaluation.accuracy import evaluate_tracks
    from evaluation.ground_truth import load_ground_truth
    from vision.detector import input_size
    from vision.export import export_model
    from vision.pipeline import detector_input_hw

    tmp = Path(tempfile.mkdtemp(prefix="cw-int8-"))
    pooled = {m: {"true": 0, "counted": 0, "line_abs": 0} for m in ("fp32", "int8")}
    out: dict = {"clips": {}}
    for clip, lines in load_lines(REPO / "bench/vision_london_lines.json").items():
        video = CLIPS / f"{clip}.mp4"
        cap = cv2.VideoCapture(str(video))
        frame_hw = (int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
        cap.release()
        camera = CameraConfig(id="bench", source=str(video), lines=lines, realtime=False)
        hw = input_size(ModelConfig(weights=WEIGHTS), detector_input_hw(camera, frame_hw))  # the default's input
        fp32 = export_model(WEIGHTS, imgsz=hw, fmt="openvino")
        int8 = quantise(fp32, calibration_frames(video, args.frames), hw, tmp / clip)
        gt = load_ground_truth(CLIPS / f"{clip}.tracks.csv")
        row = {}
        for name, weights in (("fp32", fp32), ("int8", int8)):
            counted, ms, n = count(video, lines, weights)
            report, _ = evaluate_tracks(gt, lines, counted, None)
            row[name] = {"true": report.true_total, "counted": report.counted_total,
                         "line_abs": report.line_abs_error, "detector_ms": ms, "detected_frames": n}
            for k in ("true", "counted", "line_abs"):
                pooled[name][k] += row[name][k]
        out["clips"][clip] = row
        print(f"{clip} input {hw}: " + "; ".join(
            f"{m} true {r['true']} counted {r['counted']} line/dir abs err {r['line_abs']} "
            f"detector {r['detector_ms']:.1f} ms" for m, r in row.items()), flush=True)
    out["pooled"] = pooled
    for m, p in pooled.items():
        print(f"POOLED {m}: true {p['true']}, counted {p['counted']}, total error "
              f"{abs(p['counted'] - p['true']) / p['true']:.1%}, sum of line/direction abs errors {p['line_abs']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
