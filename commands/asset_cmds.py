"""Files an installation needs: check a configuration, print the message schema, pull weights or samples."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from citywatch.assets import AssetDownloader
from citywatch.assets import Progress as PullProgress
from citywatch.config import ConfigError, load_config
from commands.console import err, out

config_app = typer.Typer(help="Configuration files.", no_args_is_help=True)
weights_app = typer.Typer(help="Model weights.", no_args_is_help=True)
samples_app = typer.Typer(help="Sample clips.", no_args_is_help=True)


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="YAML configuration file.")]) -> None:
    """Validate a configuration file; errors name the bad key path."""
    try:
        cfg = load_config(file)
    except ConfigError as exc:
        err.print(f"[red]{file}: {len(exc.errors)} error(s)[/red]")
        for path, msg in exc.errors:
            err.print(f"  [bold]{path}[/bold]: {msg}")
        raise typer.Exit(2) from None
    lines = sum(len(c.lines) for c in cfg.cameras)
    out.print(f"{file}: OK ({len(cfg.cameras)} camera(s), {lines} line(s), site {cfg.site})")

def schema() -> None:
    """Print the JSON Schema of every MQTT message, for non-Python consumers."""
    from citywatch.contract import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")

def _pull(what: str, fetch: Callable[[PullProgress], Path | list[Path]]) -> list[Path]:
    """Run a download with a progress bar per file; offline, one clear line and exit 1."""
    from citywatch.assets import PullError

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total} bytes"),
        console=err, transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def progress(label: str, done: int, total: int | None) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total)
        bar.update(tasks[label], completed=done)

    try:
        with bar:
            got = fetch(progress)
    except PullError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    paths = got if isinstance(got, list) else [got]
    for p in paths:
        out.print(f"{what}: {p}")
    return paths


@weights_app.command("pull")
def weights_pull() -> None:
    """Download the official yolov8n.pt into weights/ (needs internet)."""
    from citywatch.assets import pull_weights

    _pull("weights", lambda progress: pull_weights(progress, downloader=_ultralytics_downloader()))


def _ultralytics_downloader() -> AssetDownloader | None:
    """Ultralytics' own release-asset download when it is installed (the plain HTTPS download otherwise)."""
    try:
        from ultralytics.utils import downloads
    except ImportError:
        return None
    os.environ.setdefault("YOLO_OFFLINE", "1")
    return lambda dest: Path(downloads.attempt_download_asset(str(dest)))


@weights_app.command("export")
def weights_export(
    imgsz: Annotated[int, typer.Option(help="Input size in pixels (multiple of 32), e.g. 320.")] = 320,
    format: Annotated[str, typer.Option("--format", help="openvino or onnx.")] = "openvino",  # noqa: A002
    batch: Annotated[int, typer.Option(help="Fixed batch size of the exported model.")] = 1,
    weights: Annotated[
        Path | None, typer.Option(help="Ultralytics .pt checkpoint; default: $CITYWATCH_WEIGHTS.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Export again even when cached.")] = False,
) -> None:
    """Export the .pt at another input size into the model cache ($CITYWATCH_CACHE, ~/.cache/citywatch); print its path.

    A camera then uses it with model.weights set to the printed path, or simply with the .pt, a native backend
    (openvino/onnxruntime) and model.imgsz (or processing.imgsz): the cached export is found, or built, by itself.
    """
    from citywatch.paths import AssetNotFound, resolve_weights
    from vision.export import ExportError, Format, export_model

    formats: dict[str, Format] = {"openvino": "openvino", "onnx": "onnx"}
    fmt = formats.get(format)
    if fmt is None:
        err.print(f"[red]error:[/red] --format must be openvino or onnx, not {format!r}")
        raise typer.Exit(2)
    try:
        path = export_model(resolve_weights(weights), imgsz=imgsz, fmt=fmt, batch=batch, force=force)
    except (ExportError, AssetNotFound) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    out.print(str(path))


@samples_app.command("pull")
def samples_pull() -> None:
    """Download the sample clips listed in sample_videos/README.md (needs internet)."""
    from citywatch.assets import pull_samples

    _pull("sample", pull_samples)

