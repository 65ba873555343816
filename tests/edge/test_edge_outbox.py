"""The outbox: durable seq, commit watermark, resend timing, crash safety."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

from citywatch.contract import LineCrossing, deterministic_event_id, utcnow
from edge.outbox import Outbox

CAM = "cam-1"


def crossing_maker(camera_id: str = CAM, n: int = 0):
    def make(seq: int) -> LineCrossing:
        return LineCrossing(
            event_id=deterministic_event_id(camera_id, "line_crossing", "clip", 0, n, seq, "l1", "in"),
            camera_id=camera_id,
            site_id="s",
            seq=seq,
            ts=utcnow(),
            config_version="v1",
            model_version="m",
            line_id="l1",
            direction="in",
            class_name="car",
            track_id=seq,
            frame_index=n,
        )

    return make


def fill(box: Outbox, n: int, camera_id: str = CAM) -> list[int]:
    return [box.append(camera_id, crossing_maker(camera_id, i)).seq for i in range(n)]


def test_seq_starts_at_one_and_continues_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path) as box:
        assert fill(box, 3) == [1, 2, 3]
        assert fill(box, 2, "cam-2") == [1, 2]
    with Outbox(path) as box:
        assert fill(box, 2) == [4, 5]
        assert box.last_seq(CAM) == 5 and box.last_seq("cam-2") == 2


def test_seq_keeps_increasing_after_everything_is_committed(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path) as box:
        fill(box, 4)
        assert box.commit_up_to(CAM, 4) == 4
        assert box.depth(CAM) == 0 and box.first_seq(CAM) is None
    with Outbox(path) as box:
        assert fill(box, 1) == [5]


def test_stored_payload_is_exactly_the_event_returned(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        event = box.append(CAM, crossing_maker())
        (row,) = box.pending(CAM)
        assert row.payload == event.model_dump_json()
        assert row.event() == event
        assert row.event_id == str(event.event_id) and row.kind == "line_crossing"


def test_commit_up_to_deletes_only_events_at_or_below_the_watermark(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        fill(box, 10)
        fill(box, 3, "other")
        assert box.commit_up_to(CAM, 6) == 6
        assert [r.seq for r in box.pending(CAM)] == [7, 8, 9, 10]
        assert box.first_seq(CAM) == 7 and box.depth(CAM) == 4
        assert box.depth("other") == 3  # another camera's events are untouched
        assert box.commit_up_to(CAM, 6) == 0  # a repeated (retained) commit is harmless
        assert box.committed_seq(CAM) == 6
        assert [r.seq for r in box.range(CAM, 8, 9)] == [8, 9]


def test_due_for_send_returns_unsent_then_resends_only_after_resend_after(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        fill(box, 5)
        assert [r.seq for r in box.due_for_send(CAM, 100.0, 10.0, limit=3)] == [1, 2, 3]
        box.mark_sent(CAM, [1, 2, 3], now=100.0)
        assert [r.seq for r in box.due_for_send(CAM, 105.0, 10.0, limit=10)] == [4, 5]
        box.mark_sent(CAM, [4, 5], now=105.0)
        assert box.due_for_send(CAM, 109.9, 10.0, limit=10) == []
        due = box.due_for_send(CAM, 110.0, 10.0, limit=10)
        assert [r.seq for r in due] == [1, 2, 3] and all(r.send_count == 1 for r in due)
        # the window: only the oldest uncommitted events are candidates
        assert [r.seq for r in box.due_for_send(CAM, 200.0, 10.0, limit=10, max_seq=2)] == [1, 2]
        box.mark_unsent(CAM)
        assert len(box.due_for_send(CAM, 105.0, 10.0, limit=10)) == 5


def test_concurrent_appends_get_unique_contiguous_seqs(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        threads = [threading.Thread(target=fill, args=(box, 25)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.seq for r in box.pending(CAM)] == list(range(1, 101))


def test_rebase_renumbers_kept_events_after_a_foreign_watermark(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        events = [box.append(CAM, crossing_maker(CAM, i)) for i in range(3)]
        assert box.rebase(CAM, 500) == 3
        rows = box.pending(CAM)
        assert [r.seq for r in rows] == [501, 502, 503]
        assert [r.event().seq for r in rows] == [501, 502, 503]
        assert [r.event_id for r in rows] == [str(e.event_id) for e in events]
        assert fill(box, 1) == [504]


CHILD = textwrap.dedent(
    """
    import sys
    from edge.outbox import Outbox
    sys.path.insert(0, sys.argv[2])
    from test_edge_outbox import crossing_maker
    box = Outbox(sys.argv[1])
    i = 0
    while True:
        e = box.append("cam-1", crossing_maker("cam-1", i))
        print(e.seq, flush=True)
        i += 1
    """
)


def test_outbox_survives_kill_9_with_integrity_and_seq_continuity(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        acked = 0
        for line in proc.stdout:  # type: ignore[union-attr]
            acked = int(line)
            if acked >= 300:
                break
        proc.send_signal(signal.SIGKILL)  # mid-loop: the child is appending as fast as it can
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert acked >= 300
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with Outbox(path) as box:
        last = box.last_seq(CAM)
        assert last >= acked  # everything the child saw committed is there
        assert [r.seq for r in box.pending(CAM, limit=100000)] == list(range(1, last + 1))
        assert len({r.event_id for r in box.pending(CAM, limit=100000)}) == last
        assert box.append(CAM, crossing_maker(CAM, 10**6)).seq == last + 1
        assert uuid.UUID(box.pending(CAM, 1)[0].event_id)
