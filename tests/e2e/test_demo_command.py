"""The README's promise: `citywatch demo --duration S` counts a real clip end to end and stops by itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_slice_and_reports_nothing_lost(
    tmp_path: Path, sample_clip: Path, weights_path: Path
) -> None:
    env = {
        **os.environ,
        "CITYWATCH_WEIGHTS": str(weights_path.resolve()),
        "CITYWATCH_SAMPLES": str(sample_clip.parents[1].resolve()),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "commands", "demo", "--duration", "25", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"dashboard http://127\.0\.0\.1:\d+/", out)
    m = re.search(
        r"(\d+) events created, (\d+) publishes, (\d+) stored, (\d+) lost, (\d+) crossings counted at the edge, "
        r"(\d+) in the server's counts", out,
    )
    assert m, out[-3000:]
    created, _published, stored, lost, edge_crossings, server_crossings = map(int, m.groups())
    assert lost == 0 and stored == created
    assert edge_crossings == server_crossings >= 1  # the clip has a car crossing in its first seconds
    assert (tmp_path / "citywatch.sqlite").exists()


def test_demo_without_its_sample_clip_says_which_file_is_missing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from io import StringIO

    from rich.console import Console

    from commands.demo import run_demo

    monkeypatch.setenv("CITYWATCH_SAMPLES", str(tmp_path / "empty"))
    out = StringIO()
    assert run_demo(duration=1, port=0, data_dir=tmp_path / "data", console=Console(file=out, width=200)) == 1
    text = out.getvalue()
    assert "error:" in text and "suburban_two_way_road.mp4 not found" in text and "CITYWATCH_SAMPLES" in text
