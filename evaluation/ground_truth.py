"""Ground-truth tracks for the accuracy harness: a flat tracks CSV or a CVAT 1.1 XML dump.

Both become ``GroundTruth``: per frame, a ``Detections`` whose ``tracker_id`` is the annotated track
id, so the true crossings come out of the very same ``LineCounter`` that counts the pipeline's tracks
(same anchor, same direction convention, same bounded segment).

CSV: ``frame,track_id,x,y,w,h,type[,stopped,parked,occluded]`` (x, y top-left; one row per frame a
track is visible). CVAT 1.1: ``<track id=… label=…><box frame=… outside=… xtl=… ytl=… xbr=… ybr=…>``
with an optional ``type`` attribute; boxes between keyframes are interpolated as CVAT does, and a box
with ``outside="1"`` ends the visible stretch.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from citywatch.contract import CLASS_NAMES
from vision.detections import Detections

#: Annotation type -> citywatch class. ``van`` is a light goods vehicle (a truck in COCO terms);
#: ``undefined``/``vehicle``/unknown labels count as ``car``, the class most such boxes are.
TYPE_TO_CLASS: dict[str, str] = {
    "car": "car", "taxi": "car", "suv": "car", "van": "truck", "truck": "truck", "lorry": "truck",
    "bus": "bus", "coach": "bus", "motorbike": "motorcycle", "motorcycle": "motorcycle", "scooter": "motorcycle",
    "bicycle": "bicycle", "bike": "bicycle", "cyclist": "bicycle", "person": "person", "pedestrian": "person",
}


#: One annotated box: frame, track id, x1, y1, x2, y2, label.
Row = tuple[int, int, float, float, float, float, str]


class GroundTruthError(ValueError):
    """A ground-truth file that cannot be read; the message names the file and what is wrong."""


def class_of(label: str) -> str:
    return TYPE_TO_CLASS.get(label.strip().lower(), "car")


@dataclass
class GroundTruth:
    """Annotated boxes by frame; ``has_ids`` is False for per-frame boxes without track identities."""

    frames: dict[int, Detections]
    has_ids: bool = True
    source: str = ""
    flags: dict[int, dict[str, bool]] = field(default_factory=dict)  # track id -> {stopped, parked}

    @property
    def last_frame(self) -> int:
        return max(self.frames) if self.frames else -1

    @property
    def track_ids(self) -> set[int]:
        return {int(t) for d in self.frames.values() for t in d.tracker_id}

    def at(self, frame_index: int) -> Detections:
        return self.frames.get(frame_index, Detections.empty())


def _build(rows: list[Row], source: str) -> GroundTruth:
    by_frame: dict[int, list[tuple[int, float, float, float, float, str]]] = defaultdict(list)
    for frame, tid, x1, y1, x2, y2, label in rows:
        by_frame[frame].append((tid, x1, y1, x2, y2, label))
    frames = {}
    for f, items in sorted(by_frame.items()):
        frames[f] = Detections(
            np.array([[x1, y1, x2, y2] for _, x1, y1, x2, y2, _ in items], np.float32),
            np.ones(len(items), np.float32),
            np.array([CLASS_NAMES.index(class_of(lbl)) for *_, lbl in items], np.int64),
            np.array([tid for tid, *_ in items], np.int64),
        )
    return GroundTruth(frames, True, source)


def load_tracks_csv(path: str | Path) -> GroundTruth:
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"frame", "track_id", "x", "y", "w", "h"} - set(reader.fieldnames or [])
            if missing:
                raise GroundTruthError(f"{p}: missing column(s) {', '.join(sorted(missing))}")
            rows = []
            flags: dict[int, dict[str, bool]] = defaultdict(lambda: {"stopped": False, "parked": False})
            for n, r in enumerate(reader, start=2):
                try:
                    x, y, w, h = (float(r[k]) for k in "xywh")
                    tid = int(r["track_id"])
                    rows.append((int(r["frame"]), tid, x, y, x + w, y + h, r.get("type") or "car"))
                except (TypeError, ValueError) as exc:
                    raise GroundTruthError(f"{p}:{n}: bad row ({exc})") from None
                for flag in ("stopped", "parked"):
                    if str(r.get(flag, "0")).strip().lower() in ("1", "true"):
                        flags[tid][flag] = True
    except OSError as exc:
        raise GroundTruthError(f"{p}: cannot read ({exc.strerror})") from None
    gt = _build(_majority_type(rows), str(p))
    gt.flags = dict(flags)
    return gt


def _majority_type(rows: list[Row]) -> list[Row]:
    """One class per track (its most frequent label), as a vote over the track's life would give."""
    votes: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _, tid, *_, label in rows:
        votes[tid][class_of(label)] += 1
    winner = {tid: max(v.items(), key=lambda kv: kv[1])[0] for tid, v in votes.items()}
    return [(f, tid, x1, y1, x2, y2, winner[tid]) for f, tid, x1, y1, x2, y2, _ in rows]


def load_cvat_xml(path: str | Path) -> GroundTruth:
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except (OSError, ET.ParseError) as exc:
        raise GroundTruthError(f"{p}: not a readable CVAT XML file ({exc})") from None
    rows: list[Row] = []
    flags: dict[int, dict[str, bool]] = {}
    tracks = root.findall("track")
    if not tracks and root.find("image") is not None:
        raise GroundTruthError(f"{p}: CVAT image annotations have no track ids; export the task as video tracks")
    for track in tracks:
        tid = int(track.get("id", "0"))
        label = track.get("label", "vehicle")
        keys = []
        fl = {"stopped": False, "parked": False}
        for box in track.findall("box"):
            attrs = {a.get("name"): (a.text or "") for a in box.findall("attribute")}
            for flag in fl:
                fl[flag] |= attrs.get(flag, "false").strip().lower() == "true"
            keys.append((
                int(_attr(box, "frame", p)), box.get("outside") == "1",
                np.array([float(_attr(box, k, p)) for k in ("xtl", "ytl", "xbr", "ybr")]),
                attrs.get("type") or label,
            ))
        flags[tid] = fl
        keys.sort(key=lambda k: k[0])
        for (f0, out0, b0, t0), nxt in zip(keys, [*keys[1:], None], strict=True):
            if out0:
                continue
            rows.append((f0, tid, *b0.tolist(), t0))
            if nxt is None or nxt[1]:
                continue
            f1, _, b1, _ = nxt
            for f in range(f0 + 1, f1):  # CVAT interpolates linearly between keyframes
                a = (f - f0) / (f1 - f0)
                rows.append((f, tid, *(b0 + a * (b1 - b0)).tolist(), t0))
    gt = _build(_majority_type(rows), str(p))
    gt.flags = flags
    return gt


def _attr(el: ET.Element, name: str, path: Path) -> str:
    value = el.get(name)
    if value is None:
        raise GroundTruthError(f"{path}: a <{el.tag}> has no {name!r} attribute")
    return value


def load_ground_truth(path: str | Path) -> GroundTruth:
    """By extension: ``.xml`` is CVAT 1.1, anything else the tracks CSV."""
    p = Path(path)
    if not p.is_file():
        raise GroundTruthError(f"ground truth {p} does not exist")
    return load_cvat_xml(p) if p.suffix.lower() == ".xml" else load_tracks_csv(p)
