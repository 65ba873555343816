"""``citywatch count``'s path: frames decoded ahead on a thread, and a lines-only pipeline."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import CachedDetector, LondonClip

from citywatch.config import CameraConfig, ZoneConfig
from evaluation.offline import count_video
from vision.video import VideoError, open_video


def _decoders() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("decode-")]


def test_frames_decoded_ahead_are_the_same_frames_in_the_same_order(sample_clip: Path) -> None:
    info, plain = open_video(sample_clip)
    _, ahead = open_video(sample_clip, prefetch=4)
    n = 0
    for a, b in zip(plain, ahead, strict=True):
        assert np.array_equal(a, b)
        n += 1
    assert n >= 100 and abs(n - info.frame_count) <= 2


def test_leaving_early_stops_the_decoding_thread(sample_clip: Path) -> None:
    _, ahead = open_video(sample_clip, prefetch=2)
    first = [f for _, f in zip(range(3), ahead, strict=False)]
    assert len(first) == 3 and _decoders()
    ahead.close()  # type: ignore[attr-defined]
    assert not _decoders()


def test_a_truncated_clip_gives_what_decodes_or_an_error_naming_it(tmp_path: Path, sample_clip: Path) -> None:
    data = sample_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # a truncated file: the decoder ends early or errs
    try:
        _, ahead = open_video(cut, prefetch=4)
        frames = sum(1 for _ in ahead)
    except VideoError as exc:
        assert "cut.mp4" in str(exc)
    else:
        assert frames >= 1  # what could be decoded was handed over
    assert not _decoders()


def test_lines_only_counts_what_the_full_pipeline_counts_and_computes_nothing_else(
    london_clips: list[LondonClip], london_detector: CachedDetector
) -> None:
    clip = london_clips[0]
    zone = ZoneConfig(id="all", polygon=((0, 0), (352, 0), (352, 288), (0, 288)))
    camera = CameraConfig(id="c", source=str(clip.video), lines=clip.lines, zones=[zone], realtime=False,
                          report_interval_s=1)
    results: dict[bool, list] = {True: [], False: []}
    counts = {}
    for only in (False, True):
        r = count_video(clip.video, camera, detector=london_detector, lines_only=only,  # type: ignore[arg-type]
                        on_result=results[only].append)
        counts[only] = r.lines
    assert counts[True] == counts[False] and sum(n for d in counts[True].values() for c in d.values()
                                                  for n in c.values()) > 10
    assert any(fr.zone_reports for fr in results[False])
    assert not any(fr.zone_reports or fr.incidents or fr.movements for fr in results[True])


@pytest.mark.parametrize("prefetch", [0, 3])
def test_a_missing_clip_is_an_error_naming_it(tmp_path: Path, prefetch: int) -> None:
    with pytest.raises(VideoError, match="nope.mp4"):
        open_video(tmp_path / "nope.mp4", prefetch=prefetch)
