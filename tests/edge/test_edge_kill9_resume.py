"""kill -9 of the edge process in the middle of a clip, then a restart, against the real server.

The fake pipeline gives re-read frames *new* track ids (as a real tracker does after a restart), so
the server's de-duplication by event id cannot hide a double count: only the file checkpoint, stored
atomically with each frame's events, keeps the total exact.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from edge_testkit import make_clip, make_config
from support import wait_for

from citywatch.config import ServerConfig

pytestmark = pytest.mark.services

RUNNER = Path(__file__).with_name("edge_runner.py")
FRAMES, FPS, EVERY = 160, 20, 4  # 8 s of clip in real time, a crossing on every 4th frame
EXPECTED = FRAMES // EVERY


def _db(path: Path, sql: str) -> list[tuple]:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(sql).fetchall()
    except sqlite3.Error:
        return []


def _total(url: str, camera: str) -> int:
    with urllib.request.urlopen(f"{url}/api/v1/counts?bucket=total&camera_id={camera}", timeout=10) as r:
        return sum(row["count"] for row in json.load(r)["rows"])


def test_kill9_mid_clip_then_restart_resumes_without_losing_or_double_counting(
    tmp_path: Path, private_broker, capsys
) -> None:
    from server.runner import serve_in_thread

    clip = make_clip(tmp_path / "clip.avi", FRAMES, fps=FPS)
    cam = {"id": "cam-k", "source": str(clip), "realtime": True, "lines": [{"id": "l1", "points": [[0, 16], [32, 16]]}]}
    config = make_config(
        tmp_path, [cam], port=private_broker.port, heartbeat_s=1.0, sources={"checkpoint_every_s": 0.5}
    )
    config = config.model_copy(
        update={
            "server": ServerConfig(database_url=f"sqlite:///{tmp_path / 'server.sqlite'}", client_id="srv-kill9")
        }
    )
    cfg_path = tmp_path / "edge.yaml"
    cfg_path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    outbox = Path(config.edge.outbox_path)
    log1, log2 = tmp_path / "run1.log", tmp_path / "run2.log"
    position = lambda: (_db(outbox, "SELECT frame_index, ended FROM positions") or [(-1, 0)])[0]  # noqa: E731

    h = serve_in_thread(config, port=0)
    procs: list[subprocess.Popen] = []
    try:
        with open(log1, "wb") as log:
            procs.append(subprocess.Popen([sys.executable, str(RUNNER), str(cfg_path), str(EVERY)], stderr=log))
        assert wait_for(lambda: position()[0] >= FRAMES // 2, 60), log1.read_text()[-3000:]
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        killed_at_frame = position()[0]
        stored_before = _total(h.url, "cam-k")
        kept = _db(outbox, "SELECT COUNT(*) FROM events WHERE kind='line_crossing'")[0][0]
        t_restart = time.monotonic()
        with open(log2, "wb") as log:
            procs.append(subprocess.Popen([sys.executable, str(RUNNER), str(cfg_path), str(EVERY)], stderr=log))
        assert wait_for(lambda: position()[1] == 1, 60), log2.read_text()[-3000:]
        assert wait_for(lambda: _total(h.url, "cam-k") >= EXPECTED, 30), _total(h.url, "cam-k")
        assert wait_for(lambda: _db(outbox, "SELECT COUNT(*) FROM events")[0][0] == 0, 30)
        recovered_s = time.monotonic() - t_restart
        procs[1].send_signal(signal.SIGTERM)
        assert procs[1].wait(20) == 0
        time.sleep(0.5)  # a late duplicate would show up now
        total = _total(h.url, "cam-k")
        counters = h.app.state.ingest.counters
        duplicates, stored = counters.duplicates, counters.stored
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        h.stop()
    run2 = log2.read_text()
    assert "resuming clip.avi" in run2, run2[-2000:]
    assert total == EXPECTED, (total, EXPECTED)
    with capsys.disabled():
        print(
            f"\n[kill9-resume] expected={EXPECTED} counted_at_server={total} killed_after_frame={killed_at_frame} "
            f"stored_before_restart={stored_before} kept_in_outbox_at_kill={kept} server_events_stored={stored} "
            f"server_duplicates={duplicates} restart_to_drained={recovered_s:.2f}s"
        )
