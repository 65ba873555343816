"""Where weights and sample clips are found: never committed, named by config or environment."""

from __future__ import annotations

import os
from pathlib import Path

WEIGHTS_ENV = "CITYWATCH_WEIGHTS"
SAMPLES_ENV = "CITYWATCH_SAMPLES"
DEFAULT_WEIGHTS_NAME = "yolov8n.pt"

#: The repository (or installed package) root: ``weights/`` and ``sample_videos/`` live beside it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class AssetNotFound(FileNotFoundError):
    """A model or clip that is not on disk, with what to set to find it."""


def weights_dir() -> Path:
    return PROJECT_ROOT / "weights"


def samples_dir() -> Path:
    env = os.environ.get(SAMPLES_ENV)
    return Path(env).expanduser() if env else PROJECT_ROOT / "sample_videos"


def resolve_weights(configured: str | os.PathLike[str] | None = None) -> Path:
    """Configured path, else ``$CITYWATCH_WEIGHTS``, else ``weights/yolov8n.pt``."""
    if configured:
        p = Path(configured).expanduser()
        if not p.exists():
            raise AssetNotFound(f"model weights {p} (from the config's model.weights) do not exist")
        return p
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.exists():
            raise AssetNotFound(f"{WEIGHTS_ENV}={env} names a file that does not exist")
        return p
    p = weights_dir() / DEFAULT_WEIGHTS_NAME
    if p.exists():
        return p
    raise AssetNotFound(
        f"no model weights: set {WEIGHTS_ENV} to a .pt/.onnx file or an OpenVINO folder, "
        f"set model.weights in the config, or run `citywatch weights pull` (needs internet) to get {p}"
    )


def resolve_source(source: str) -> str:
    """Turn ``sample:<folder>/<clip>`` and ``file://`` into a path; leave stream URIs alone."""
    if source.startswith("sample:"):
        rel = source[len("sample:") :].lstrip("/")
        root = samples_dir()
        p = (root / rel).resolve()
        if root.resolve() not in p.parents:
            raise AssetNotFound(f"sample path {rel!r} leaves the samples folder")
        if not p.is_file():
            raise AssetNotFound(
                f"sample clip {rel} not found in {root}: set {SAMPLES_ENV} to a folder laid out like "
                f"shared/videos, or run `citywatch samples pull` (needs internet)"
            )
        return str(p)
    if source.startswith("file://"):
        return source[len("file://") :]
    return source
