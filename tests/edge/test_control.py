"""Control handling (edge/control.py): committed, replay and config messages against a real outbox."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from citywatch.config import CameraConfig, EdgeConfig, EdgeSnapshotsConfig, validate_camera
from citywatch.contract import ControlCommitted, ControlConfig, ControlReplay
from edge.camera_state import CameraState
from edge.control import ControlHandler
from edge.heartbeat import Heartbeat
from edge.outbox import Outbox
from edge.pushed_config import PushedConfigs
from edge.sender import Sender
from edge.snapshots import SnapshotStore
from edge.tamper import TamperDetector


def camera(**over: object) -> CameraConfig:
    data = {"id": "cam-1", "source": "clip.mp4", "lines": [{"id": "l1", "points": [[0, 16], [32, 16]]}], **over}
    return validate_camera(data)


class RecordingLink:
    """The sender's uplink seam, recording what it is handed (the broker itself is tested elsewhere)."""

    connected = True

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    def event_topic(self, kind: str) -> str:
        return f"t/{kind}"

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> bool:
        self.published.append((topic, payload if isinstance(payload, str) else payload.decode()))
        return True


class Edge:
    def __init__(self, outbox: Outbox, *, persist: bool = True) -> None:
        self.outbox = outbox
        self.state = CameraState(camera(), "site-1", lambda: "model-1")
        self.link = RecordingLink()
        self.sender = Sender("cam-1", outbox=outbox, link=self.link, edge=EdgeConfig(), counters=self.state.counters)
        self.pushed = PushedConfigs(outbox, enabled=persist)
        self.handler = ControlHandler(
            self.state, outbox=outbox, sender=self.sender, pushed=self.pushed, tamper=TamperDetector()
        )
        self.heartbeat = Heartbeat(
            self.state,
            outbox=outbox,
            snapshots=SnapshotStore(EdgeSnapshotsConfig()),
            started_at=0.0,
            emit=lambda event: None,
        )

    def append(self, n: int) -> None:
        for _ in range(n):
            self.heartbeat.append()


@pytest.fixture
def edge() -> Iterator[Edge]:
    with Outbox(":memory:") as outbox:
        yield Edge(outbox)


def test_a_committed_watermark_deletes_what_the_server_stored_and_keeps_the_rest(edge: Edge) -> None:
    edge.append(5)
    edge.handler.handle(ControlCommitted(camera_id="cam-1", seq=3))
    assert [r.seq for r in edge.outbox.pending("cam-1")] == [4, 5]
    assert edge.outbox.committed_seq("cam-1") == 3 and edge.state.counters.committed_seq == 3


def test_a_watermark_beyond_every_seq_this_outbox_assigned_renumbers_the_kept_events_instead(edge: Edge) -> None:
    edge.append(2)
    ids = [r.event_id for r in edge.outbox.pending("cam-1")]
    edge.handler.handle(ControlCommitted(camera_id="cam-1", seq=100))
    kept = edge.outbox.pending("cam-1")
    assert [r.seq for r in kept] == [101, 102] and [r.event_id for r in kept] == ids
    assert edge.outbox.last_seq("cam-1") == 102


def test_a_replay_publishes_the_kept_range_again_and_is_not_counted_as_a_resend(edge: Edge) -> None:
    edge.append(5)
    edge.sender.send_pass()  # everything published once
    edge.link.published.clear()
    edge.handler.handle(ControlCommitted(camera_id="cam-1", seq=2))
    edge.handler.handle(ControlReplay(camera_id="cam-1", from_seq=3, to_seq=4))
    edge.sender.send_pass()
    ((topic, payload),) = edge.link.published
    assert topic == "t/batch" and [e["seq"] for e in json.loads(payload)["events"]] == [3, 4]
    n = edge.state.counters
    assert (n.replayed, n.resends) == (2, 0) and edge.sender.replays == []


def test_a_pushed_configuration_runs_at_once_keeps_the_source_and_is_persisted(edge: Edge) -> None:
    edge.state.heartbeat_now.clear()
    lines = [{"id": "l9", "points": [[0, 8], [32, 8]]}]
    pushed = {"id": "cam-1", "source": "elsewhere.mp4", "loop": True, "lines": lines}
    assert edge.handler.apply_config(ControlConfig(camera_id="cam-1", config_version="v7", camera=pushed))
    running = edge.state.camera
    assert [ln.id for ln in running.lines] == ["l9"] and running.config_version() == "v7"
    assert (running.source, running.loop) == ("clip.mp4", False)  # a source change needs a restart
    assert edge.state.file_camera.lines[0].id == "l1"
    assert edge.state.counters.config_applied == 1 and edge.state.heartbeat_now.is_set()
    saved = edge.outbox.applied_config("cam-1")
    assert saved is not None and saved[0] == "v7" and saved[1] == camera().config_version()


@pytest.mark.parametrize(
    "pushed",
    [
        {"id": "cam-2", "source": "clip.mp4"},  # another camera's
        {"id": "cam-1", "source": "clip.mp4", "lines": [{"id": "l1", "points": [[0, 0]]}]},  # a one-point line
    ],
)
def test_a_pushed_configuration_for_another_camera_or_invalid_is_rejected_and_changes_nothing(
    edge: Edge, pushed: dict
) -> None:
    before = edge.state.camera
    assert not edge.handler.apply_config(ControlConfig(camera_id="cam-1", config_version="v8", camera=pushed))
    assert edge.state.camera is before and edge.state.counters.config_rejected == 1
    assert edge.outbox.applied_config("cam-1") is None
