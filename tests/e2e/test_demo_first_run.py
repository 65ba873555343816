"""A new user's first `citywatch demo`: it raises an incident within the first minute, writes to a folder
of its own (never deleting ./data/demo of the directory it runs in), keeps third-party start-up logs
quiet, and its last lines before the progress bar are the dashboard URL and how to sign in."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from server.auth import OPEN_MODE_SENTENCE

pytestmark = pytest.mark.slow


def test_first_demo_run_shows_an_incident_and_leaves_the_users_data_alone(
    tmp_path: Path, sample_clip: Path, weights_path: Path
) -> None:
    mine = tmp_path / "data" / "demo" / "my-notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("not the demo's")
    env = {k: v for k, v in os.environ.items() if k != "CITYWATCH_API_KEYS"}
    env |= {"CITYWATCH_WEIGHTS": str(weights_path.resolve()),
            "CITYWATCH_SAMPLES": str(sample_clip.parents[1].resolve()),
            "XDG_DATA_HOME": str(tmp_path / "xdg")}
    proc = subprocess.run([sys.executable, "-m", "commands", "demo", "--duration", "45", "--port", "0"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert mine.read_text() == "not the demo's" and sorted(p.name for p in mine.parent.iterdir()) == ["my-notes.txt"]
    (run,) = (tmp_path / "xdg" / "citywatch" / "demo").iterdir()
    assert (run / "citywatch.sqlite").exists() and str(run) in out
    m = re.search(r"; (\d+) incident\(s\)", out)
    assert m and int(m.group(1)) >= 1, out[-2000:]  # the wrong-way cars pull out ~23 s into the clip
    for noisy in ("alembic", "uvicorn", "amqtt", "INFO"):
        assert noisy not in out, noisy
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    url = next(i for i, ln in enumerate(lines) if re.search(r"dashboard http://127\.0\.0\.1:\d+/", ln))
    assert OPEN_MODE_SENTENCE in lines[url + 1]
    assert lines[url + 2].startswith("Ctrl+C stops") and "dashboard stop" in lines[url + 2]
