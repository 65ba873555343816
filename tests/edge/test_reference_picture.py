"""The reference picture (edge/reference_picture.py): movers vanish from the median, a person who stands
still is found on the median and obscured, and the JPEG fits the message-size budget."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from citywatch.config import ModelConfig
from citywatch.contract import CLASS_NAMES, MAX_REFERENCE_JPEG_BYTES
from edge.reference_picture import FrameSampler, build_reference, encode_jpeg, temporal_median
from vision.detections import Detections

LONDON_PEOPLE = "tfl_london_jamcam/2019-06-28_13-02-51.477310_00001.07355.mp4"
#: A pedestrian the detector finds in that clip's first frame (x1, y1, x2, y2), padded by 4 pixels.
PERSON_BOX = (38 - 4, 188 - 4, 57 + 4, 240 + 4)
#: Where the test makes them stand still, on the road, for the whole sampled time.
STAND_AT = (200, 100)


def _frames(clip: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(clip))
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def _persons(dets: Detections) -> list[tuple[float, list[int]]]:
    return [
        (float(s), [int(v) for v in b])
        for b, c, s in zip(dets.xyxy, dets.class_id, dets.confidence, strict=True)
        if CLASS_NAMES[int(c)] == "person"
    ]


def _overlaps(box: list[int], region: tuple[int, int, int, int]) -> bool:
    x1, y1, x2, y2 = region
    return box[0] < x2 and box[2] > x1 and box[1] < y2 and box[3] > y1


def _sharpness(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def test_a_moving_object_vanishes_from_the_median_and_the_background_stays() -> None:
    rng = np.random.default_rng(3)
    background = rng.integers(0, 200, (120, 200, 3), dtype=np.uint8)
    frames = []
    for i in range(15):  # a white car driving across: each pixel sees it in 2 of 15 frames at most
        f = background.copy()
        f[40:70, i * 13 : i * 13 + 25] = 255
        frames.append(f)
    median = temporal_median(frames, rows_per_chunk=16)
    assert np.array_equal(median, background)


def test_a_person_standing_still_in_the_picture_is_obscured(samples: Path, weights_path: Path) -> None:
    from vision.detector import load_detector

    frames = _frames(samples / LONDON_PEOPLE, 60)
    assert len(frames) == 60
    x1, y1, x2, y2 = PERSON_BOX
    person = frames[0][y1:y2, x1:x2].copy()
    px, py = STAND_AT
    region = (px, py, px + person.shape[1], py + person.shape[0])
    sampled = []
    for f in frames[::3]:  # 20 samples over 2.4 s of traffic, the person pasted at the same place
        f = f.copy()
        f[py : region[3], px : region[2]] = person
        sampled.append(f)
    detector = load_detector(ModelConfig(weights=weights_path), frames[0].shape[:2])
    median = temporal_median(sampled)
    assert any(_overlaps(b, region) for _, b in _persons(detector.detect(median))), "the median keeps the person"

    ref = build_reference(sampled, detector.detect)
    out = cv2.imdecode(np.frombuffer(ref.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert (ref.width, ref.height, ref.frames_used) == (frames[0].shape[1], frames[0].shape[0], 20)
    assert ref.blurred_regions >= 1
    was, now = median[py : region[3], px : region[2]], out[py : region[3], px : region[2]]
    print(f"person region sharpness: median {_sharpness(was):.0f}, sent {_sharpness(now):.0f}")
    assert _sharpness(now) < _sharpness(was) / 4  # detail gone
    assert not any(_overlaps(b, region) for _, b in _persons(detector.detect(out))), "still a person there"
    far = (slice(0, 40), slice(300, 352))  # a corner away from everyone: the same picture, only JPEG'd
    assert np.abs(out[far].astype(int) - median[far].astype(int)).mean() < 6


def test_no_detector_finding_means_the_median_is_sent_unblurred_only_where_nothing_was_found() -> None:
    frames = [np.full((60, 80, 3), 90, np.uint8) for _ in range(5)]
    ref = build_reference(frames, lambda _img: Detections.empty())
    assert ref.blurred_regions == 0 and ref.frames_used == 5


def test_a_large_picture_is_made_smaller_until_it_fits_the_message_budget() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)  # incompressible
    jpeg, w, h = encode_jpeg(noise)
    assert len(jpeg) <= MAX_REFERENCE_JPEG_BYTES
    assert w < 1920 and h < 1080 and abs(w / h - 16 / 9) < 0.02


def test_the_sampler_spreads_its_frames_over_the_seconds_and_scales_them() -> None:
    s = FrameSampler("r1", seconds=2.0, samples=4, max_side=100, started=0.0)
    frame = np.zeros((300, 400, 3), np.uint8)
    for t in np.arange(0.0, 2.5, 0.05):  # 20 fps
        s.offer(frame, now=float(t))
    assert s.ready(now=2.5)
    taken = s.take()
    assert len(taken) == 4 and taken[0].shape == (75, 100, 3)
    assert s.frame_size == (400, 300)  # the frame's own pixels, which lines and zones are drawn in
    slow = FrameSampler("r2", seconds=2.0, samples=10, max_side=100, started=0.0)
    slow.offer(frame, now=0.0)
    assert not slow.ready(now=10.0)  # one frame is not a median
    assert slow.expired(now=100.0)


@pytest.fixture
def samples() -> Path:
    from support import require_asset, samples_dir

    root = samples_dir()
    return require_asset(root, "sample clips")
