"""``citywatch count`` against Ultralytics' ``ObjectCounter``, each a whole process timed from outside.

    python bench/count_speed.py [--clip PATH] [--line NAME:x1,y1,x2,y2] [--pairs 3] [--json OUT.json]

The issue-15 measure: the same weights (``$CITYWATCH_WEIGHTS``, the README's ``.pt``), the same clip and
line, every frame read; each run is a fresh process (``citywatch count`` with the defaults only, no speed
keys; the baseline a child of this script running ``solutions.ObjectCounter`` on every frame,
``torch.set_num_threads`` left as Ultralytics sets it), timed from its start to its exit, so start-up,
imports and model loading are in both. Runs are interleaved (citywatch, baseline, citywatch, ...) so a
change in the machine's other load hits both; the ratio is of the medians. CPU is the child's user +
system time.

Clips (default: both):

- ``highway``: the shared 320x240 15 fps motorway clip (``highway_misc``, 500 frames) with one line across
  the carriageway at y = 150;
- ``london25``: a 320x240 25 fps clip of 1,500 frames made from the first shared London clip (352x288,
  242 frames) scaled down and looped, written once with OpenCV into ``~/.cache/citywatch/bench-streams``
  (never the repository), with that clip's first line scaled to it: the issue's clip is 320x240, 25 fps,
  1,500 frames and none such is shared. Its counts are no accuracy figure (each loop jumps back).

A first ``citywatch count`` exports the OpenVINO model into the cache; one untimed warm-up run of each
side happens before the pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

from edge_throughput import CACHE, REPO, SAMPLES, WEIGHTS  # noqa: E402 - the benches' one set of paths

#: bicycle, car, motorcycle, bus, truck: bench/counting_accuracy.py's VEHICLE_COCO, not imported from there
#: because the baseline child would then load citywatch and scipy inside its own timed start-up
VEHICLES = [1, 2, 3, 5, 7]


def london25(frames: int = 1500) -> tuple[Path, str]:
    """The first London clip looped to ``frames`` frames at 320x240 and 25 fps, with its first line scaled."""
    import cv2

    clip = sorted((SAMPLES / "tfl_london_jamcam").glob("*.mp4"))[0]
    lines = json.loads((REPO / "bench/vision_london_lines.json").read_text())[clip.stem]
    name, ((x1, y1), (x2, y2)) = next(iter(lines.items()))
    sx, sy = 320 / 352, 240 / 288
    line = f"{name}:{x1 * sx:.0f},{y1 * sy:.0f},{x2 * sx:.0f},{y2 * sy:.0f}"
    out = CACHE / f"{clip.stem}_320x240_25fps_{frames}.avi"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_suffix(".part.avi")
        writer = cv2.VideoWriter(str(part), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (320, 240))
        written = 0
        while written < frames:
            cap = cv2.VideoCapture(str(clip))
            while written < frames:
                ok, frame = cap.read()
                if not ok:
                    break
                writer.write(cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA))
                written += 1
            cap.release()
        writer.release()
        part.rename(out)
    return out, line


def frame_count(clip: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(clip))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and stdout of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def citywatch_cmd(clip: Path, line: str) -> list[str]:
    exe = Path(sys.executable).with_name("citywatch")
    return [str(exe), "count", str(clip), "--line", line, "--weights", str(WEIGHTS), "--json"]


def baseline_cmd(clip: Path, line: str) -> list[str]:
    return [sys.executable, __file__, "--object-counter", str(clip), "--line", line]


def citywatch_total(stdout: str) -> int:
    data = json.loads(stdout)
    lines = data.get("lines", data)
    return sum(n for dirs in lines.values() for by in dirs.values() for n in by.values())


def object_counter(clip: Path, line: str) -> None:
    """The baseline child: every frame through one ObjectCounter; prints its IN + OUT."""
    import logging

    import cv2
    from ultralytics import solutions
    from ultralytics.utils import LOGGER

    LOGGER.setLevel(logging.ERROR)
    _, coords = line.split(":", 1)
    x1, y1, x2, y2 = (float(v) for v in coords.split(","))
    counter = solutions.ObjectCounter(
        model=str(WEIGHTS), region=[(x1, y1), (x2, y2)], classes=VEHICLES, show=False, verbose=False
    )
    cap = cv2.VideoCapture(str(clip))
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        counter(frame)
        frames += 1
    print(json.dumps({"frames": frames, "counted": counter.in_count + counter.out_count}))


def measure(label: str, clip: Path, line: str, pairs: int) -> dict:
    frames = frame_count(clip)
    cw_cmd, oc_cmd = citywatch_cmd(clip, line), baseline_cmd(clip, line)
    timed(cw_cmd)  # warm-up: the first run exports the model into the cache
    timed(oc_cmd)
    cw, oc = [], []
    for i in range(pairs):
        cw.append(timed(cw_cmd))
        oc.append(timed(oc_cmd))
        print(f"  {label} pair {i + 1}: citywatch {cw[-1][0]:.1f} s, ObjectCounter {oc[-1][0]:.1f} s", file=sys.stderr)
    cw_wall, oc_wall = statistics.median(w for w, _, _ in cw), statistics.median(w for w, _, _ in oc)
    cw_cpu, oc_cpu = statistics.median(c for _, c, _ in cw), statistics.median(c for _, c, _ in oc)
    return {
        "clip": str(clip), "line": line, "frames": frames, "pairs": pairs,
        "citywatch_s": cw_wall, "object_counter_s": oc_wall,
        "citywatch_fps": frames / cw_wall, "object_counter_fps": frames / oc_wall,
        "ratio_wall": oc_wall / cw_wall, "ratio_cpu": oc_cpu / cw_cpu,
        "citywatch_cpu_s": cw_cpu, "object_counter_cpu_s": oc_cpu,
        "citywatch_counted": citywatch_total(cw[-1][2]), "object_counter_counted": json.loads(oc[-1][2])["counted"],
        "citywatch_runs_s": [round(w, 2) for w, _, _ in cw], "object_counter_runs_s": [round(w, 2) for w, _, _ in oc],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", default="highway,london25", help="of: highway, london25")
    ap.add_argument("--clip", type=Path, help="another clip (with --line) instead of --clips")
    ap.add_argument("--line", help="NAME:x1,y1,x2,y2 for --clip")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--object-counter", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.object_counter:
        object_counter(args.object_counter, args.line)
        return 0
    runs: dict[str, tuple[Path, str]] = {}
    if args.clip:
        if not args.line:
            ap.error("--clip needs --line")
        runs[args.clip.stem] = (args.clip, args.line)
    else:
        for name in filter(None, args.clips.split(",")):
            if name == "highway":
                runs[name] = (SAMPLES / "highway_misc/us_freeway_rear_video1.avi", "road:20,150,230,150")
            elif name == "london25":
                runs[name] = london25()
            else:
                ap.error(f"unknown clip {name!r}")
    results = {name: measure(name, clip, line, args.pairs) for name, (clip, line) in runs.items()}
    print(f"{os.cpu_count()} cores; whole processes timed from outside, medians of {args.pairs} interleaved pairs")
    print(f"{'clip':10} {'frames':>6} {'citywatch s':>11} {'fps':>6} {'OC s':>6} {'OC fps':>6} "
          f"{'x wall':>6} {'x CPU':>6} {'counted cw/OC':>13}")
    for name, r in results.items():
        print(f"{name:10} {r['frames']:6d} {r['citywatch_s']:11.1f} {r['citywatch_fps']:6.1f} "
              f"{r['object_counter_s']:6.1f} {r['object_counter_fps']:6.1f} {r['ratio_wall']:6.1f} "
              f"{r['ratio_cpu']:6.1f} {r['citywatch_counted']:>6}/{r['object_counter_counted']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
