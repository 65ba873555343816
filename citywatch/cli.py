"""The ``citywatch`` command: one entry point for installers, operators and developers."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from citywatch import __version__
from citywatch.config import CitywatchConfig, ConfigError, LineConfig, load_config

app = typer.Typer(help="citywatch: smart-camera traffic monitoring.", no_args_is_help=True, add_completion=False)
config_app = typer.Typer(help="Configuration files.", no_args_is_help=True)
weights_app = typer.Typer(help="Model weights.", no_args_is_help=True)
samples_app = typer.Typer(help="Sample clips.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(weights_app, name="weights")
app.add_typer(samples_app, name="samples")

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration file.")]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("amqtt", "transitions", "uvicorn.access"):  # chatty at INFO: connections, state machines
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def _load(path: Path | None) -> CitywatchConfig:
    if path is None:
        return CitywatchConfig()
    try:
        return load_config(path)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _parse_line(spec: str) -> LineConfig:
    try:
        name, coords = spec.split(":", 1)
        x1, y1, x2, y2 = (float(v) for v in coords.split(","))
        return LineConfig(id=name, points=((x1, y1), (x2, y2)))
    except Exception as exc:
        raise typer.BadParameter(f"{spec!r}: expected NAME:x1,y1,x2,y2 ({exc})", param_hint="--line") from None


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(), console=err, transient=True,
    )


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        out.print(__version__)
        raise typer.Exit()
    _setup_logging(verbose)


@app.command()
def count(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    line: Annotated[list[str], typer.Option("--line", "-l", help="NAME:x1,y1,x2,y2 (repeatable).")],
    config: ConfigOpt = None,
    weights: Annotated[Path | None, typer.Option(help="Model file or OpenVINO folder.")] = None,
    imgsz: Annotated[int | None, typer.Option(help="Detector input size.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many frames.")] = None,
) -> None:
    """Count crossings per line, direction and class in a video file (offline, no network)."""
    from citywatch.config import CameraConfig
    from citywatch.paths import AssetNotFound
    from vision.detector import DetectorError
    from vision.offline import count_video
    from vision.video import VideoError

    cfg = _load(config)
    lines = [_parse_line(s) for s in line]
    model = cfg.model.model_copy(update={k: v for k, v in {"weights": weights, "imgsz": imgsz}.items() if v})
    camera = CameraConfig(id="offline", source=str(video), lines=lines, realtime=False)
    try:
        with _progress() as bar:
            task = bar.add_task(f"counting {video.name}", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total or None)

            result = count_video(
                video, camera, model=model, tracker=cfg.tracker, counting=cfg.counting,
                max_frames=max_frames, progress=tick,
            )
    except (VideoError, AssetNotFound, DetectorError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        out.print_json(json.dumps(result.to_json()))
        return
    table = Table(title=f"{video.name}: {result.frames} frames in {result.seconds:.1f} s ({result.fps:.1f} fps)")
    for col in ("line", "direction", "class", "count"):
        table.add_column(col)
    for lid, dirs in result.lines.items():
        for direction, by_class in dirs.items():
            for cls, n in sorted(by_class.items()):
                table.add_row(lid, direction, cls, str(n))
            if not by_class:
                table.add_row(lid, direction, "-", "0")
    out.print(table)


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


@app.command()
def schema() -> None:
    """Print the JSON Schema of every MQTT message, for non-Python consumers."""
    from citywatch.contract import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


def _pull(what: str, fetch) -> list[Path]:  # type: ignore[no-untyped-def]
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

    _pull("weights", pull_weights)


@samples_app.command("pull")
def samples_pull() -> None:
    """Download the sample clips listed in sample_videos/README.md (needs internet)."""
    from citywatch.assets import pull_samples

    _pull("sample", pull_samples)


@app.command()
def edge(config: Annotated[Path, typer.Argument(help="YAML configuration file.")]) -> None:
    """Run the edge worker for the cameras in the configuration until interrupted."""
    from citywatch.runtime import run_edge

    cfg = _load(config)
    if not cfg.cameras:
        err.print(f"[red]{config}: no cameras configured[/red]")
        raise typer.Exit(2)
    raise typer.Exit(run_edge(cfg))


@app.command()
def server(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default from config).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from config).")] = None,
) -> None:
    """Run the server: MQTT ingest, API and dashboard."""
    from citywatch.runtime import run_server

    cfg = _load(config)
    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if updates:
        cfg = cfg.model_copy(update={"server": cfg.server.model_copy(update=updates)})
    raise typer.Exit(run_server(cfg))


@app.command()
def demo(
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    config: ConfigOpt = None,
    port: Annotated[int, typer.Option(help="Dashboard port (0: a free one).")] = 8080,
    data_dir: Annotated[Path | None, typer.Option(help="Where the demo keeps its database and outbox.")] = None,
) -> None:
    """Everything on one machine: embedded broker, server on SQLite, an edge worker looping a sample clip."""
    from citywatch.demo import run_demo

    cfg = _load(config) if config else None
    raise typer.Exit(run_demo(cfg, duration=duration, port=port, data_dir=data_dir, console=out))


def entrypoint() -> None:  # pragma: no cover
    os.environ.setdefault("YOLO_OFFLINE", "1")
    app(prog_name="citywatch")


if __name__ == "__main__":  # pragma: no cover
    entrypoint()
