"""File sources: clear errors, looping passes, real-time pacing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from edge_testkit import make_clip

from edge.sources import SourceError, SourceNotSupported, VideoSource


def test_missing_file_error_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError, match="nope.mp4"):
        VideoSource(str(missing))


def test_undecodable_file_error_names_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.avi"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="garbage.avi"):
        VideoSource(str(bad))


def test_usb_source_is_not_supported_yet() -> None:
    with pytest.raises(SourceNotSupported, match="issue 4"):
        VideoSource("usb:0")


def test_file_reports_fps_and_count_and_reads_every_frame(tmp_path: Path) -> None:
    src = VideoSource(f"file://{make_clip(tmp_path / 'c.avi', frames=12, fps=20)}", realtime=False)
    assert src.fps == pytest.approx(20.0) and src.frame_count == 12
    assert src.source_key == f"c.avi:{(tmp_path / 'c.avi').stat().st_size}"
    assert [(i, p) for i, p, _ in src.frames()] == [(i, 0) for i in range(12)]


def test_looping_file_increments_pass_no_and_stops_on_stop_event(tmp_path: Path) -> None:
    src = VideoSource(str(make_clip(tmp_path / "c.avi", frames=5)), realtime=False, loop=True)
    stop = threading.Event()
    seen = []
    for index, pass_no, _frame in src.frames(stop):
        seen.append((pass_no, index))
        if len(seen) == 12:
            stop.set()
    assert seen == [(p, i) for p in range(3) for i in range(5)][:12]


def test_realtime_source_is_paced_to_its_fps(tmp_path: Path) -> None:
    src = VideoSource(str(make_clip(tmp_path / "c.avi", frames=10, fps=20)), realtime=True)
    t0 = time.monotonic()
    assert len(list(src.frames())) == 10
    elapsed = time.monotonic() - t0
    assert 0.4 <= elapsed < 1.5  # frame 9 is due at 9/20 s


def test_fast_source_is_not_paced(tmp_path: Path) -> None:
    src = VideoSource(str(make_clip(tmp_path / "c.avi", frames=10, fps=2)), realtime=False)
    t0 = time.monotonic()
    assert len(list(src.frames())) == 10
    assert time.monotonic() - t0 < 1.0
