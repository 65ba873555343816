"""Weights and clips: found through the environment, never downloaded silently, clear when missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywatch.paths import AssetNotFound, resolve_source, resolve_weights
from commands.cli import app

OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": ""}


def test_samples_pull_without_network_fails_and_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("CITYWATCH_SAMPLES", str(tmp_path / "clips"))
    result = CliRunner().invoke(app, ["samples", "pull"])
    assert result.exit_code == 1
    assert "CITYWATCH_SAMPLES" in result.output
    assert not list((tmp_path / "clips").rglob("*.mp4"))  # no half-written clip left behind


def test_sample_sources_resolve_through_citywatch_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "road").mkdir()
    (tmp_path / "road/clip.mp4").write_bytes(b"x")
    monkeypatch.setenv("CITYWATCH_SAMPLES", str(tmp_path))
    assert resolve_source("sample:road/clip.mp4") == str(tmp_path / "road/clip.mp4")
    with pytest.raises(AssetNotFound, match="CITYWATCH_SAMPLES"):
        resolve_source("sample:road/missing.mp4")
    with pytest.raises(AssetNotFound, match="leaves the samples folder"):
        resolve_source("sample:../../etc/passwd")
    assert resolve_source("rtsp://192.0.2.1/stream") == "rtsp://192.0.2.1/stream"


def test_weights_come_from_config_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    monkeypatch.setenv("CITYWATCH_WEIGHTS", str(model))
    assert resolve_weights() == model
    other = tmp_path / "other.pt"
    other.write_bytes(b"x")
    assert resolve_weights(other) == other
    monkeypatch.setenv("CITYWATCH_WEIGHTS", str(tmp_path / "gone.pt"))
    with pytest.raises(AssetNotFound, match="CITYWATCH_WEIGHTS=.*gone.pt"):
        resolve_weights()


def test_schema_command_prints_json_schema() -> None:
    import json

    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "LineCrossing" in json.dumps(schema["event_message"])
