"""Persisted edge state (edge/pushed_config.py): a pushed configuration survives a restart, unless the file changed."""

from __future__ import annotations

from pathlib import Path

from citywatch.config import CameraConfig, validate_camera
from edge.outbox import Outbox
from edge.pushed_config import PushedConfigs


def camera(version: str | None = None, line: str = "l1", source: str = "clip.mp4") -> CameraConfig:
    lines = [{"id": line, "points": [[0, 16], [32, 16]]}]
    return validate_camera({"id": "cam-1", "source": source, "version": version, "lines": lines})


def test_a_saved_configuration_is_run_again_after_a_restart_with_the_files_source(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    file_camera = camera()
    with Outbox(path) as outbox:
        PushedConfigs(outbox, enabled=True).save(camera("v7", line="l9", source="pushed.mp4"), file_camera)
    with Outbox(path) as outbox:
        restored = PushedConfigs(outbox, enabled=True).restore(file_camera)
    assert restored is not None and restored.config_version() == "v7"
    assert [ln.id for ln in restored.lines] == ["l9"] and restored.source == "clip.mp4"


def test_the_file_wins_when_it_changed_since_the_push_and_the_pushed_one_is_forgotten(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as outbox:
        pushed = PushedConfigs(outbox, enabled=True)
        pushed.save(camera("v7", line="l9"), camera())
        assert pushed.restore(camera("file-2")) is None
        assert outbox.applied_config("cam-1") is None


def test_nothing_is_kept_or_restored_when_persisting_is_off(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as outbox:
        PushedConfigs(outbox, enabled=False).save(camera("v7"), camera())
        assert outbox.applied_config("cam-1") is None
        PushedConfigs(outbox, enabled=True).save(camera("v7"), camera())
        assert PushedConfigs(outbox, enabled=False).restore(camera()) is None


def test_a_persisted_configuration_that_no_longer_validates_is_ignored(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as outbox:
        outbox.save_config("cam-1", "v7", camera().config_version(), {"id": "cam-1", "lines": "not a list"})
        assert PushedConfigs(outbox, enabled=True).restore(camera()) is None
