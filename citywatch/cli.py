"""The ``citywatch`` command: one entry point for installers, operators and developers."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from citywatch import __version__
from citywatch.config import CameraConfig, CitywatchConfig, ConfigError, LineConfig, ModelConfig, load_config

app = typer.Typer(help="citywatch: smart-camera traffic monitoring.", no_args_is_help=True, add_completion=False)
config_app = typer.Typer(help="Configuration files.", no_args_is_help=True)
weights_app = typer.Typer(help="Model weights.", no_args_is_help=True)
samples_app = typer.Typer(help="Sample clips.", no_args_is_help=True)
forecast_app = typer.Typer(help="Flow forecasts.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(weights_app, name="weights")
app.add_typer(samples_app, name="samples")
broker_app = typer.Typer(
    help="Mosquitto credentials (dynamic-security file; restart Mosquitto afterwards).", no_args_is_help=True
)
app.add_typer(broker_app, name="broker")
app.add_typer(forecast_app, name="forecast")

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


def _offline_setup(
    config: Path | None, video: Path, line: list[str], camera_id: str, weights: Path | None, imgsz: int | None
) -> tuple[CitywatchConfig, ModelConfig, CameraConfig]:
    """Config, model (with the command line's weights/imgsz) and a one-off camera for a video file."""
    cfg = _load(config)
    lines = [_parse_line(s) for s in line]
    model = cfg.model.model_copy(update={k: v for k, v in {"weights": weights, "imgsz": imgsz}.items() if v})
    return cfg, model, CameraConfig(id=camera_id, source=str(video), lines=lines, realtime=False)


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
    from citywatch.paths import AssetNotFound
    from vision.detector import DetectorError
    from vision.offline import count_video
    from vision.video import VideoError

    cfg, model, camera = _offline_setup(config, video, line, "offline", weights, imgsz)
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


@app.command("eval")
def eval_(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    gt: Annotated[Path, typer.Option("--gt", help="Ground-truth tracks: tracks CSV or CVAT 1.1 XML.")],
    line: Annotated[list[str], typer.Option("--line", "-l", help="NAME:x1,y1,x2,y2 (repeatable).")],
    config: ConfigOpt = None,
    weights: Annotated[Path | None, typer.Option(help="Model file or OpenVINO folder.")] = None,
    imgsz: Annotated[int | None, typer.Option(help="Detector input size.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Score counts (true vs counted, WAPE, GEH) and tracks (IDF1, MOTA) against ground-truth tracks."""
    from citywatch.paths import AssetNotFound
    from vision.detector import DetectorError
    from vision.evaluation import evaluate_video
    from vision.ground_truth import GroundTruthError, load_ground_truth
    from vision.video import VideoError

    cfg, model, camera = _offline_setup(config, video, line, "eval", weights, imgsz)
    try:
        truth = load_ground_truth(gt)
        with _progress() as bar:
            task = bar.add_task(f"evaluating {video.name}", total=None)
            result = evaluate_video(
                video, truth, camera, model=model, tracker=cfg.tracker, counting=cfg.counting,
                progress=lambda done, total: bar.update(task, completed=done, total=total or None),
            )
    except (VideoError, AssetNotFound, DetectorError, GroundTruthError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        out.print_json(json.dumps(result.to_json()))
        return
    c = result.counts
    table = Table(title=f"{video.name}: {result.frames} frames, counts against {gt.name}")
    for col in ("line", "direction", "class", "true", "counted", "abs error"):
        table.add_column(col, justify="right" if col in ("true", "counted", "abs error") else "left")
    for r in c.rows:
        table.add_row(r.line, r.direction, r.class_name, str(r.true), str(r.counted), str(r.abs_error))
    for t in c.totals():
        table.add_row(t["line"], t["direction"], "[b]all[/b]", str(t["true"]), str(t["counted"]),
                      f"{t['abs_error']} (GEH {t['geh']:.2f})")
    out.print(table)
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    out.print(f"true {c.true_total}, counted {c.counted_total}: total error {pct(c.total_error)}, "
              f"WAPE by class {pct(c.wape)}, line/direction abs error {c.line_abs_error}")
    if result.tracking is not None:
        t = result.tracking
        out.print(f"tracking: IDF1 {pct(t.idf1)}, MOTA {pct(t.mota)}, ID switches {t.id_switches}, "
                  f"misses {t.misses}, false positives {t.false_positives} of {t.gt_boxes} ground-truth boxes")


@forecast_app.command("backtest")
def forecast_backtest(
    file: Annotated[Path, typer.Argument(help="CSV file: one hourly count series (other columns ignored).")],
    time_column: Annotated[str, typer.Option(help="Column of naive local times YYYY-MM-DD HH:MM:SS.")],
    value_column: Annotated[str, typer.Option(help="Column of counts per hour.")],
    timezone: Annotated[str, typer.Option(help="IANA time zone of the times, e.g. America/Chicago.")],
    start: Annotated[str, typer.Option(help="First origin: a local date (midnight).")],
    out_path: Annotated[Path, typer.Option("--out", help="Forecasts CSV to write.")],
    country: Annotated[str | None, typer.Option(help="Holiday country (default: the time zone's).")] = None,
    horizon: Annotated[int, typer.Option(help="Hours forecast from each origin.")] = 24,
    every: Annotated[int, typer.Option(help="Hours between origins (a multiple of 24).")] = 24,
) -> None:
    """Day-ahead forecasts from every origin with only the rows before it, scored against the data beside a
    seasonal-naive forecast (same hour one week earlier), with the server's model and settings."""
    import pandas as pd

    from server.forecasting.model.backtest import BacktestError, read_counts, run_backtest, write_forecasts
    from server.forecasting.model.holiday import HolidayCalendar

    try:
        origin = pd.Timestamp(start)
        series = read_counts(file, time_column, value_column)
        if clash := series.attrs.get("conflicting_times"):
            err.print(f"[yellow]warning:[/yellow] {len(clash)} times have rows with different {value_column} "
                      f"values (first {clash[0]}): their mean is used")
        calendar = HolidayCalendar(country.upper()) if country else HolidayCalendar.for_timezone(timezone)
        with _progress() as bar:
            task = bar.add_task(f"backtesting {file.name}", total=None)
            result = run_backtest(series, timezone=timezone, start=origin, horizon=horizon, every=every,
                                  calendar=calendar, progress=lambda k, n: bar.update(task, completed=k, total=n))
    except (BacktestError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    write_forecasts(result.forecasts, out_path)
    if result.forecasts.empty:
        why = next(iter(result.skipped.values()), "no origin in the data")
        err.print(f"[red]error:[/red] no forecast from any of the {result.origins} origins: {why}")
        raise typer.Exit(1)
    m, n = result.model, result.naive
    out.print(f"{result.origins} origins, {len(result.forecasts)} forecast rows -> {out_path}; "
              f"origin-hours forecast {100 * result.forecast_share:.1f} %")
    for origin_text, why in list(result.skipped.items())[:5]:
        out.print(f"  no forecast from {origin_text}: {why}")
    out.print(f"on {m.hours} hours with data and a seasonal-naive value:")
    out.print(f"  model          WAPE {100 * m.wape:.2f} %  MAE {m.mae:.1f}  80 % interval coverage "
              f"{100 * m.coverage:.1f} %")
    out.print(f"  seasonal naive WAPE {100 * n.wape:.2f} %  MAE {n.mae:.1f}")
    out.print(f"  WAPE ratio model / naive {result.ratio:.3f}")


@app.command("eval-stationary")
def eval_stationary(
    gt: Annotated[list[Path], typer.Argument(help="Ground-truth tracks (CSV or CVAT 1.1 XML) with stopped flags.")],
    video: Annotated[
        list[Path] | None, typer.Option("--video", help="The clip of each GT file, in order: score pipeline tracks.")
    ] = None,
    fps: Annotated[float, typer.Option(help="Frame rate of annotation-only scoring (no --video).")] = 25.0,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Precision and recall of the per-track stationary state against ground-truth ``stopped`` flags.

    Without --video the state runs over the annotated boxes (the rule alone); with --video over the
    detector's and tracker's tracks, matched to the annotations by IoU."""
    from vision.ground_truth import GroundTruthError, load_ground_truth
    from vision.incidents import StationaryScore, evaluate_stationary

    cfg = _load(config)
    if video and len(video) != len(gt):
        err.print("[red]error:[/red] give one --video per ground-truth file")
        raise typer.Exit(2)
    per: dict[str, StationaryScore] = {}
    try:
        for i, g in enumerate(gt):
            truth = load_ground_truth(g)
            if not video:
                per[g.name] = evaluate_stationary(truth, fps, cfg.counting)
                continue
            from vision.offline import count_video
            from vision.video import open_video

            clip = video[i]
            info, _ = open_video(clip)
            tracked: list = []
            count_video(clip, CameraConfig(id="eval", source=str(clip), realtime=False), model=cfg.model,
                        tracker=cfg.tracker, counting=cfg.counting,
                        on_result=lambda r, acc=tracked: acc.append((r.frame_index, r.detections)))
            per[g.name] = evaluate_stationary(truth, info.fps, cfg.counting, tracked)
    except (GroundTruthError, OSError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    total = StationaryScore()
    for sc in per.values():
        total = total.add(sc)
    if as_json:
        out.print_json(json.dumps({"clips": {k: v.to_json() for k, v in per.items()}, "pooled": total.to_json()}))
        return
    table = Table(title="stationary state vs ground-truth 'stopped' (per track)")
    for col in ("clip", "precision", "recall", "tp", "fp", "fn", "tn"):
        table.add_column(col)
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    for name, sc in [*per.items(), ("pooled", total)]:
        table.add_row(name, pct(sc.precision), pct(sc.recall), str(sc.tp), str(sc.fp), str(sc.fn), str(sc.tn))
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
    from vision.export import ExportError, export_model

    if format not in ("openvino", "onnx"):
        err.print(f"[red]error:[/red] --format must be openvino or onnx, not {format!r}")
        raise typer.Exit(2)
    try:
        path = export_model(resolve_weights(weights), imgsz=imgsz, fmt=format, batch=batch, force=force)  # type: ignore[arg-type]
    except (ExportError, AssetNotFound) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    out.print(str(path))


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
    if cfg.edge.log_format == "json":  # structured logs for journald / shippers (edge.log_format)
        from edge.logs import configure_logging

        configure_logging("json", logging.getLogger().level)
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


DynsecFileOpt = Annotated[
    Path, typer.Option("--file", help="Mosquitto's plugin_opt_config_file (created when missing).")
]
PrefixOpt = Annotated[str, typer.Option("--topic-prefix", help="mqtt.topic_prefix of the installation.")]
PasswordEnvOpt = Annotated[
    str, typer.Option("--password-env", help="Environment variable holding the password (never on the command line).")
]
ReplaceOpt = Annotated[bool, typer.Option("--replace", help="Overwrite an existing user (new password, new topics).")]
DYNSEC_FILE = Path("/var/lib/mosquitto/dynamic-security.json")


def _edit_dynsec(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    from citywatch import dynsec

    try:
        data = dynsec.load(path)
        change(data)
        dynsec.save(path, data)
    except (dynsec.DynsecError, OSError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@broker_app.command("add-device")
def broker_add_device(
    site: Annotated[str, typer.Option(help="The edge's site (topic level 2).")],
    device: Annotated[str, typer.Option(help="The edge's edge.device_id (part of each camera's client id).")],
    camera: Annotated[list[str], typer.Option("--camera", help="A camera id of this box (repeatable).")],
    password_env: PasswordEnvOpt,
    file: DynsecFileOpt = DYNSEC_FILE,
    topic_prefix: PrefixOpt = "citywatch",
    replace: ReplaceOpt = False,
) -> None:
    """One edge box: a credential per camera (user = camera id, client id fixed), one password for the box."""
    from citywatch import dynsec

    added: list[dict[str, Any]] = []
    _edit_dynsec(file, lambda data: added.extend(dynsec.add_device(
        data, prefix=topic_prefix, site=site, device_id=device, cameras=camera,
        password=os.environ.get(password_env), password_env=password_env, replace=replace,
    )))
    for c in added:
        out.print(f"user {c['username']}: client id {c['clientid']}, topics {topic_prefix}/{site}/{c['username']}/...")
    if len(added) > 1:
        out.print("edge config: mqtt.camera_id_as_username: true (each camera logs in as its id)")
    out.print(f"written to {file}; restart Mosquitto to load it (systemctl restart mosquitto)")


@broker_app.command("add-server")
def broker_add_server(
    password_env: PasswordEnvOpt,
    username: Annotated[str, typer.Option(help="The server's MQTT user name.")] = "citywatch-server",
    file: DynsecFileOpt = DYNSEC_FILE,
    topic_prefix: PrefixOpt = "citywatch",
    replace: ReplaceOpt = False,
) -> None:
    """The server's credential: reads every camera (also via $share), publishes control messages."""
    from citywatch import dynsec

    _edit_dynsec(file, lambda data: dynsec.add_server(
        data, prefix=topic_prefix, username=username, password=os.environ.get(password_env),
        password_env=password_env, replace=replace,
    ))
    out.print(f"user {username}: the server's credential; written to {file}; restart Mosquitto to load it")
import_app = typer.Typer(help="Load data from elsewhere into the server's database.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("counts")
def import_counts(
    file: Annotated[Path, typer.Argument(help="CSV with a header row (UTF-8).", exists=True, dir_okay=False)],
    camera: Annotated[str, typer.Option(help="Camera id the counts belong to.")],
    line: Annotated[str, typer.Option(help="Counting line id.")],
    direction: Annotated[str, typer.Option(help="in or out.")],
    time_column: Annotated[str, typer.Option(help="Column with each bucket's start time.")] = "time",
    value_column: Annotated[str, typer.Option(help="Column with the vehicles counted in the bucket.")] = "count",
    timezone: Annotated[
        str | None, typer.Option(help="Time zone of times without an offset (default: server.timezone).")
    ] = None,
    bucket: Annotated[str, typer.Option(help="Bucket of each row: 15min or hour.")] = "hour",
    class_name: Annotated[str, typer.Option("--class", help="Vehicle class the counts are stored as.")] = "car",
    site: Annotated[str | None, typer.Option(help="Site id of the camera (default: the config's site).")] = None,
    database_url: Annotated[str | None, typer.Option(help="Database (default: server.database_url).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Import counts a city already has (loop detectors, manual counts) as observed history of a camera line,
    so its forecasts start with history. All rows are checked first; any bad row stops the import with its
    line number and nothing is stored; buckets the camera already has are refused (never counted twice)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from citywatch.contract import CLASS_NAMES, is_id
    from server.forecasting.count_import import BUCKETS, CountImportError, read_counts_csv, span_text, store_counts

    cfg = _load(config)
    problems = [f"--{name} {value!r} is not a valid id" for name, value in
                (("camera", camera), ("line", line), ("site", site)) if value is not None
                and not is_id(value)]
    if direction not in ("in", "out"):
        problems.append(f"--direction {direction!r}: use in or out")
    if bucket not in BUCKETS:
        problems.append(f"--bucket {bucket!r}: use {' or '.join(BUCKETS)}")
    if class_name not in CLASS_NAMES:
        problems.append(f"--class {class_name!r}: one of {', '.join(CLASS_NAMES)}")
    try:
        tz = ZoneInfo(timezone or cfg.server.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"--timezone {timezone!r} is not a known time zone")
    if problems:
        for p in problems:
            err.print(p, style="red", markup=False, highlight=False)
        raise typer.Exit(2)
    if database_url:
        cfg = cfg.model_copy(update={"server": cfg.server.model_copy(update={"database_url": database_url})})
    from server.store import Store

    try:
        buckets = read_counts_csv(file, time_column=time_column, value_column=value_column, tz=tz,
                                  bucket_s=BUCKETS[bucket])
        store = Store.from_config(cfg)
        try:
            n = store_counts(store, buckets, camera_id=camera, line_id=line, direction=direction,
                             class_name=class_name, bucket_s=BUCKETS[bucket], site_id=site or cfg.site,
                             source=str(file))
        finally:
            store.close()
    except CountImportError as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    out.print(f"imported {n} {bucket} buckets into {camera} line {line} ({direction}, {class_name}): "
              f"{span_text(buckets, tz, BUCKETS[bucket])}, {sum(b.count for b in buckets)} vehicles")


def entrypoint() -> None:  # pragma: no cover
    os.environ.setdefault("YOLO_OFFLINE", "1")
    app(prog_name="citywatch")


if __name__ == "__main__":  # pragma: no cover
    entrypoint()
