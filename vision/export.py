"""Exported models at another input size or batch: built once with Ultralytics, cached outside the repository.

The shared OpenVINO IR and ONNX files have a fixed 640 px input (their graphs bake in the anchor
count, so OpenVINO cannot reshape them). A smaller input (e.g. 320 px, a quarter of the work) needs
a model exported at that size from the ``.pt``: ``export_model(pt, imgsz=320, fmt="openvino")`` (or
``citywatch weights export --imgsz 320 --format openvino``) returns the cached export, building it
the first time. The cache is ``$CITYWATCH_CACHE/models`` (default ``~/.cache/citywatch/models``);
each entry is named by the source file's content hash, format, size and batch, so a changed ``.pt``
gets a new export and nothing exported is ever committed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

CACHE_ENV = "CITYWATCH_CACHE"

Format = Literal["openvino", "onnx"]

#: An input size: a square side, or (height, width) for a frame-shaped input (fewer pixels than a square).
Size = int | tuple[int, int]


class ExportError(RuntimeError):
    """The model cannot be exported; the message says why."""


def cache_dir() -> Path:
    """``$CITYWATCH_CACHE/models``, else ``$XDG_CACHE_HOME/citywatch/models``, else ``~/.cache/citywatch/models``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser() / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "citywatch" / "models"


def _digest(path: Path, full: bool = False) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest() if full else h.hexdigest()[:12]


def size_hw(imgsz: Size) -> tuple[int, int]:
    """``imgsz`` as (height, width)."""
    return (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))


def size_tag(imgsz: Size) -> str:
    """``640`` for a square input, ``256x320`` (height x width) for a frame-shaped one."""
    h, w = size_hw(imgsz)
    return str(h) if h == w else f"{h}x{w}"


def cached_path(pt: Path, imgsz: Size, fmt: Format, batch: int = 1, digest: str | None = None) -> Path:
    """Where the export of ``pt`` at ``imgsz`` (and ``batch``) lives in the cache (it may not exist yet).

    The name carries the checkpoint's content hash, so a changed ``.pt`` never re-uses an old export."""
    tag = size_tag(imgsz)
    stem = f"{pt.stem}@{digest or _digest(pt)}-{tag}-b{batch}"
    folder = cache_dir() / f"{stem}-{fmt}"
    return folder if fmt == "openvino" else folder / f"{pt.stem}-{tag}-b{batch}.onnx"


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Ultralytics logs an export on stdout; stdout belongs to the command (``citywatch count --json``
    prints one JSON document there, and a first run exports)."""
    from ultralytics.utils import LOGGER

    handlers = [h for h in LOGGER.handlers if isinstance(h, logging.StreamHandler)]
    streams = [h.setStream(sys.stderr) for h in handlers]
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for h, stream in zip(handlers, streams, strict=True):
            if stream is not None:
                h.setStream(stream)


def export_model(pt: str | os.PathLike[str], *, imgsz: Size, fmt: Format = "openvino", batch: int = 1,
                 force: bool = False) -> Path:
    """The cached ``fmt`` export of the Ultralytics checkpoint ``pt`` with a fixed ``batch``x3xHxW input
    (``imgsz``: a side, or (height, width)); exported (offline, with Ultralytics) when missing or when the
    cached entry was not made from this very file (its ``.complete`` stamp holds the full content hash).
    Returns the OpenVINO folder or the ``.onnx`` file."""
    src = Path(pt).expanduser()
    if not src.is_file() or src.suffix != ".pt":
        raise ExportError(f"export needs an Ultralytics .pt checkpoint; {src} is not one")
    h, w = size_hw(imgsz)
    for side in (h, w):
        if side % 32 or not 64 <= side <= 2048:
            raise ExportError(f"imgsz must be a multiple of 32 between 64 and 2048, not {side}")
    if fmt not in ("openvino", "onnx"):
        raise ExportError(f"unknown export format {fmt!r} (openvino or onnx)")
    full = _digest(src, full=True)
    target = cached_path(src, imgsz, fmt, batch, digest=full[:12])
    done = target / ".complete" if fmt == "openvino" else target.with_suffix(".complete")
    if done.exists() and not force and done.read_text().split()[:1] == [full]:
        return target
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no hub checks, no run-time pip installs
    try:
        from ultralytics import YOLO
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ExportError("exporting needs the 'yolo' extra: pip install 'citywatch[yolo]'") from exc
    folder = target if fmt == "openvino" else target.parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Ultralytics writes beside the checkpoint: export a private copy in a scratch folder, then move.
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".export-") as tmp:
        work = Path(tmp) / src.name
        shutil.copy2(src, work)
        try:
            with _stdout_to_stderr():
                out = Path(YOLO(str(work), task="detect").export(
                    format=fmt, imgsz=[h, w] if h != w else h, batch=batch, dynamic=False, half=False, simplify=True,
                    verbose=False,
                ))
        except Exception as exc:
            raise ExportError(f"exporting {src} to {fmt} at {imgsz} px failed: {exc}") from exc
        if folder.exists():
            shutil.rmtree(folder)
        if fmt == "openvino":
            shutil.move(str(out), str(folder))
        else:
            folder.mkdir(parents=True)
            shutil.move(str(out), str(target))
    done.write_text(f"{full} {src} {size_tag(imgsz)} {fmt} batch {batch}\n")
    return target
