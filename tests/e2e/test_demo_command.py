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
    env = {**os.environ, "CITYWATCH_WEIGHTS": str(weights_path), "CITYWATCH_SAMPLES": str(sample_clip.parents[1])}
    proc = subprocess.run(
        [sys.executable, "-m", "citywatch", "demo", "--duration", "25", "--port", "0", "--data-dir", str(tmp_path)],
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
