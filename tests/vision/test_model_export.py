"""Smaller models for a lean edge box are exported once from the checkpoint, cached outside the repo."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import require

from citywatch.config import ModelConfig
from evaluation.accuracy import iou_matrix
from vision.detector import load_detector
from vision.export import ExportError, export_model
from vision.video import open_video

pytestmark = pytest.mark.slow


def test_a_320px_onnx_export_is_cached_and_finds_what_the_checkpoint_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights_path: Path, sample_clip: Path
) -> None:
    require(weights_path.suffix == ".pt", "CITYWATCH_WEIGHTS is not an Ultralytics checkpoint")
    monkeypatch.setenv("CITYWATCH_CACHE", str(tmp_path / "cache"))
    first = export_model(weights_path, imgsz=320, fmt="onnx")
    assert first.is_file() and str(first).startswith(str(tmp_path / "cache"))
    stamp = first.stat().st_mtime_ns
    assert export_model(weights_path, imgsz=320, fmt="onnx") == first and first.stat().st_mtime_ns == stamp

    _, frames = open_video(sample_clip)
    frame = next(f for i, f in enumerate(frames) if i == 100)
    native = load_detector(ModelConfig(weights=weights_path, backend="onnxruntime", imgsz=320)).detect(frame)
    reference = load_detector(ModelConfig(weights=weights_path, backend="ultralytics", imgsz=320)).detect(frame)
    confident = reference.xyxy[reference.confidence > 0.5]
    assert len(confident) >= 2
    assert len(native) > 0
    best = iou_matrix(confident, native.xyxy).max(axis=1)
    assert (best > 0.7).all(), (confident, native.xyxy)  # every confident reference box is found again


def test_an_export_leaves_stdout_to_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], weights_path: Path
) -> None:
    """``citywatch count --json`` prints one JSON document on stdout, and its first run exports."""
    require(weights_path.suffix == ".pt", "CITYWATCH_WEIGHTS is not an Ultralytics checkpoint")
    monkeypatch.setenv("CITYWATCH_CACHE", str(tmp_path / "cache"))
    capfd.readouterr()
    export_model(weights_path, imgsz=(96, 128), fmt="onnx")
    out, err = capfd.readouterr()
    assert out == ""
    assert "ONNX" in err  # the export's log went to stderr, not nowhere


def test_export_refuses_what_it_cannot_export(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(ExportError, match="not one"):
        export_model(onnx, imgsz=320)
    pt = tmp_path / "m.pt"
    pt.write_bytes(b"x")
    with pytest.raises(ExportError, match="multiple of 32"):
        export_model(pt, imgsz=300)



def test_a_cached_export_is_used_only_when_its_stamp_holds_the_checkpoints_full_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from vision.export import cached_path

    monkeypatch.setenv("CITYWATCH_CACHE", str(tmp_path / "cache"))
    pt = tmp_path / "m.pt"
    pt.write_bytes(b"not really a checkpoint")
    full = hashlib.sha256(pt.read_bytes()).hexdigest()
    target = cached_path(pt, (256, 320), "openvino")
    assert target.name.endswith("-256x320-b1-openvino") and full[:12] in target.name
    target.mkdir(parents=True)
    (target / ".complete").write_text(f"{full} {pt} 256x320 openvino batch 1\n")
    assert export_model(pt, imgsz=(256, 320)) == target  # found: nothing exported
    (target / ".complete").write_text(f"{'0' * 64} {pt} 256x320 openvino batch 1\n")  # made from another file
    with pytest.raises(ExportError, match="failed"):  # so it is exported again (and this fake .pt cannot be)
        export_model(pt, imgsz=(256, 320))
