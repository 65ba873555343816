"""File sources: clear errors, looping passes, real-time pacing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import pytest
from edge_testkit import make_clip

from edge.sources import (
    FileSource,
    LiveOptions,
    LiveSource,
    SourceError,
    VideoSource,
    backlog_s,
    open_source,
    redact,
)
from vision.pipeline import SHED_AFTER_S


def test_missing_file_error_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError, match="nope.mp4"):
        VideoSource(str(missing))


def test_undecodable_file_error_names_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.avi"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="garbage.avi"):
        VideoSource(str(bad))


def test_live_uris_open_live_sources_and_files_file_sources(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.avi", frames=3)
    assert isinstance(open_source(str(clip)), FileSource)
    assert isinstance(open_source(f"file://{clip}"), FileSource)
    for uri in ("usb:0", "0", "rtsp://h/x", "http://h/mjpg", "https://h/x"):
        assert isinstance(open_source(uri), LiveSource), uri
    with pytest.raises(SourceError, match="usb:N"):
        LiveSource("usb:abc")


def test_stream_credentials_never_reach_the_source_key() -> None:
    assert redact("rtsp://admin:s3cret@10.0.0.5:554/live") == "rtsp://10.0.0.5:554/live"
    assert LiveSource("rtsp://admin:s3cret@10.0.0.5/x").source_key == "rtsp://10.0.0.5/x"


def test_missing_usb_camera_reports_reconnecting_with_backoff_and_never_raises() -> None:
    src = LiveSource("usb:57", LiveOptions(reconnect_min_s=0.1, reconnect_max_s=0.4))
    states: list[tuple[str, str | None]] = []
    src.on_state = lambda st, msg: states.append((st, msg))
    stop = threading.Event()
    t = threading.Thread(target=lambda: list(src.frames(stop)), daemon=True)
    t0 = time.monotonic()
    t.start()
    try:
        assert _wait(lambda: len(states) >= 4, 10), states
    finally:
        stop.set()
        t.join(5)
    assert not t.is_alive()
    assert all(st == "reconnecting" and "/dev/video57" in msg for st, msg in states)
    assert "retrying in 0.1 s" in states[0][1] and "retrying in 0.4 s" in states[3][1]  # 0.1, 0.2, 0.4, 0.4
    assert time.monotonic() - t0 >= 0.1 + 0.2 + 0.4


def _wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_file_resumes_exactly_at_a_checkpointed_frame(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.avi", frames=12)
    whole = {f.index: f.image[0, 0, 0] for f in FileSource(str(clip), realtime=False).frames()}
    src = FileSource(str(clip), realtime=False, start_pass=0, start_index=7)
    got = [(f.index, f.pass_no, f.image[0, 0, 0]) for f in src.frames()]
    assert [(i, p) for i, p, _ in got] == [(i, 0) for i in range(7, 12)]
    assert all(px == whole[i] for i, _, px in got)  # the right pixels, not just the right numbers


def test_file_reports_fps_and_count_and_reads_every_frame(tmp_path: Path) -> None:
    src = VideoSource(f"file://{make_clip(tmp_path / 'c.avi', frames=12, fps=20)}", realtime=False)
    assert src.fps == pytest.approx(20.0) and src.frame_count == 12
    assert src.source_key == f"c.avi:{(tmp_path / 'c.avi').stat().st_size}"
    assert [(f.index, f.pass_no) for f in src.frames()] == [(i, 0) for i in range(12)]


def test_looping_file_increments_pass_no_and_stops_on_stop_event(tmp_path: Path) -> None:
    src = VideoSource(str(make_clip(tmp_path / "c.avi", frames=5)), realtime=False, loop=True)
    stop = threading.Event()
    seen = []
    for f in src.frames(stop):
        seen.append((f.pass_no, f.index))
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


def test_backlog_is_the_waiting_frames_in_stream_seconds_and_a_dropping_buffer_is_behind() -> None:
    assert backlog_s(0, 0, 25.0) == 0.0
    assert backlog_s(4, 0, 25.0) == pytest.approx(0.16)
    assert backlog_s(3, 1, 25.0) > SHED_AFTER_S  # a dropping buffer reads as behind, however short
    assert backlog_s(4, 0, 0.0) == 0.0


def test_a_live_buffer_full_but_one_is_behind_before_it_drops_anything() -> None:
    # 4 frames at 25 fps are 0.16 s: by age alone a full buffer never reached the shedding threshold, so a
    # slow live camera lost frames before it shed a single detection
    assert backlog_s(3, 0, 25.0, capacity=4) > SHED_AFTER_S
    assert backlog_s(2, 0, 25.0, capacity=4) == pytest.approx(0.08)
    assert backlog_s(1, 0, 25.0, capacity=2) == pytest.approx(0.04)  # a 2-frame buffer: only when full
    assert backlog_s(2, 0, 25.0, capacity=2) > SHED_AFTER_S
    assert backlog_s(0, 0, 25.0, capacity=1) == 0.0  # nothing waiting is never behind


class _FileAsStream(LiveSource):
    """A live source whose "camera" is a local clip read as fast as it decodes: a stream that outruns
    its consumer, through the real grabber thread and buffer."""

    def __init__(self, clip: Path) -> None:
        super().__init__("rtsp://camera.invalid/x", LiveOptions(buffer_frames=4))
        self.clip = clip

    def open_capture(self) -> cv2.VideoCapture:
        return cv2.VideoCapture(str(self.clip))


def test_a_slow_consumer_of_a_live_stream_reads_as_behind_so_the_pipeline_sheds(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "fast.avi", frames=600)
    src = _FileAsStream(clip)
    stop = threading.Event()
    lags: list[float] = []
    frames = src.frames(stop)
    try:
        for _frame in frames:
            time.sleep(0.05)  # slower than the stream: the buffer fills and drops
            lags.append(src.lag_s)
            if len(lags) >= 8:
                break
    finally:
        stop.set()
        frames.close()
        src.close()
    assert src.frames_dropped > 0
    assert max(lags) > SHED_AFTER_S, lags
