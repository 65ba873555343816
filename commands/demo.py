"""``citywatch demo``: the whole product on one laptop with the embedded defaults.

An in-process MQTT broker (amqtt, MQTT 3.1.1) on a free port, the server on SQLite, and one edge
worker looping the sample clip with its shipped line, lane and zone (a wrong-way incident within the
first minute). Ends on Ctrl+C or after ``--duration`` (the dashboard stops too), then stops counting,
lets the outbox drain, and prints one line: events published, stored and counted.

Where it writes: ``--data-dir`` if given (kept as it is), else a new folder per run under
``$XDG_DATA_HOME/citywatch/demo`` (``~/.local/share/citywatch/demo``); it never deletes anything. Third-party
start-up logs (migrations, broker, web server, FFmpeg) are quieted unless ``--verbose``, so the
dashboard URL and how to sign in are the last lines before the progress bar.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from citywatch.broker import EmbeddedBroker
from citywatch.config import CitywatchConfig, ConfigError, load_config
from citywatch.paths import AssetNotFound, resolve_source

if TYPE_CHECKING:
    from edge.worker import EdgeWorker

log = logging.getLogger(__name__)

#: Loggers that are chatty at INFO while the demo starts (migrations, the embedded broker, the web server).
NOISY_LOGGERS = ("alembic", "amqtt", "transitions", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx")


def default_data_dir(now: datetime | None = None) -> Path:
    """A new folder for this run: ``$XDG_DATA_HOME/citywatch/demo/<local time>`` (never the working directory)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "citywatch" / "demo"
    return base / (now or datetime.now()).strftime("%Y%m%d-%H%M%S")


def quiet_logs() -> dict[str, int]:
    """Warnings and errors only (third-party start-up chatter, FFmpeg, and our own INFO lines: the demo
    prints its own), unless debug logging is on. Returns the levels to restore."""
    root = logging.getLogger()
    if root.getEffectiveLevel() <= logging.DEBUG:
        return {}
    names = ("", *NOISY_LOGGERS)
    before = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own stderr lines (RTSP retries) off
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    return before


def restore_logs(levels: dict[str, int]) -> None:
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def sign_in_hint() -> str:
    """How to reach the dashboard: with the keys in CITYWATCH_API_KEYS, or in open local mode."""
    from server.auth import ENV_API_KEYS, OPEN_MODE_SENTENCE

    if os.environ.get(ENV_API_KEYS, "").strip():
        return (f"Sign in with one of the keys in {ENV_API_KEYS} (roles: operator acknowledges incidents, "
                "planner reads history and exports, admin manages keys and cameras).")
    return f"No sign-in needed on this machine. {OPEN_MODE_SENTENCE}"


def demo_config() -> CitywatchConfig:
    with resources.as_file(resources.files("citywatch") / "configs" / "demo.yaml") as path:
        return load_config(path)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _prepare(cfg: CitywatchConfig, data_dir: Path, broker_port: int) -> CitywatchConfig:
    mqtt = cfg.mqtt.model_copy(update={"host": "127.0.0.1", "port": broker_port, "protocol": "3.1.1"})
    server = cfg.server.model_copy(update={"database_url": f"sqlite:///{(data_dir / 'citywatch.sqlite').resolve()}"})
    edge = cfg.edge.model_copy(update={"outbox_path": data_dir / "outbox.sqlite"})
    return cfg.model_copy(update={"mqtt": mqtt, "server": server, "edge": edge})


def run_demo(
    config: CitywatchConfig | None = None,
    *,
    duration: float | None = None,
    port: int = 8080,
    data_dir: Path | None = None,
    console: Console | None = None,
) -> int:
    console = console or Console()
    levels = quiet_logs()
    try:
        return _run_demo(config, duration=duration, port=port, data_dir=data_dir, console=console)
    finally:
        restore_logs(levels)


def _run_demo(
    config: CitywatchConfig | None, *, duration: float | None, port: int, data_dir: Path | None, console: Console
) -> int:
    cfg = config or demo_config()
    if not cfg.cameras:
        console.print("[red]the demo configuration has no camera[/red]")
        return 2
    # Check the assets first, so a missing clip or model is one clear line, not a traceback.
    from edge.worker import EdgeWorker
    from vision.detector import DetectorError

    worker = EdgeWorker(cfg)
    try:
        for cam in cfg.cameras:
            resolve_source(cam.source)
        worker.prepare()  # each camera's model exported (first run) and loaded before any clock starts
    except (AssetNotFound, ConfigError, DetectorError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1

    if data_dir is None:  # a new folder per run: nothing of an earlier run (or of the user's) is deleted
        data_dir = default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)

    from server.runner import serve_in_thread

    host = "127.0.0.1"
    if port and not _port_free(host, port):
        console.print(f"port {port} is busy; using a free port instead")
        port = 0

    stop = threading.Event()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, lambda *_: stop.set())

    broker = EmbeddedBroker(host).start()
    cfg = _prepare(cfg, data_dir, broker.port)
    server = serve_in_thread(cfg, host=host, port=port)
    worker.config = cfg  # the same cameras and model; the broker, database and outbox of this run
    started = time.monotonic()
    try:
        worker.start()
        console.print(f"citywatch demo: database and outbox in {data_dir.resolve()} (kept; delete it when done)")
        console.print(f"MQTT broker 127.0.0.1:{broker.port}")
        console.print(f"citywatch demo: dashboard [bold]{server.url}/[/bold]")
        console.print(sign_in_hint())
        console.print("Ctrl+C stops" + (f"; the demo and its dashboard stop by themselves after {duration:.0f} s"
                                        if duration else ""))
        _watch(worker, stop, duration, console)
        worker.stop_sources(15)
        drained = worker.wait_drained(30)
        # Stop the edge first (its last heartbeat is made while stopping), let the server take in what it was
        # sent, then read both sides: nothing changes on either between the two readings.
        worker.stop(10)
        server.app.state.ingest.wait_idle(timeout=10)
        stats = worker.stats()
        store = server.app.state.store
        stored = store.count_events()
        now = datetime.now(timezone.utc)
        rows = store.history.counts(start=now - timedelta(days=1), end=now + timedelta(minutes=1))
        counted_server = sum(r.count for r in rows)
        _, incidents = store.incidents.list(limit=1)
    finally:
        worker.stop(5)
        server.stop()
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    appended = sum(s["events_appended"] for s in stats.values())
    published = sum(s["events_published"] for s in stats.values())
    crossings = sum(sum(s["crossings"].values()) for s in stats.values())
    frames = sum(s["frames_handled"] for s in stats.values())
    # not stored yet but kept on the edge for its next run (the outbox also keeps stored events whose commit
    # did not come back before the edge disconnected: those are not pending)
    pending = min(sum(s["outbox_depth"] or 0 for s in stats.values()), max(0, appended - stored))
    lost = max(0, appended - stored - pending)
    for cid, st in stats.items():
        console.print(
            f"camera {cid}: {st['frames']} frames offered, {st['frames_detected']} detected, "
            f"{st['frames_skipped']} skipped by design"
        )
    console.print(
        f"demo summary: {time.monotonic() - started:.0f} s, {frames} frames, {appended} events created, "
        f"{published} publishes, {stored} stored, {lost} lost, {crossings} crossings counted at the edge, "
        f"{counted_server} in the server's counts"
        + (f", {pending} kept in the outbox" if pending else "")
        + ("" if drained else " (outbox not fully drained)")
        + f"; {incidents} incident(s)"
    )
    console.print(f"data kept in {data_dir.resolve()}")
    return 0 if lost == 0 and counted_server == crossings else 1


def _watch(worker: EdgeWorker, stop: threading.Event, duration: float | None, console: Console) -> None:
    columns = [TextColumn("{task.description}"), TimeElapsedColumn()]
    if duration:
        columns.insert(1, BarColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("starting", total=duration or None)
        t0 = time.monotonic()
        while not stop.is_set():
            elapsed = time.monotonic() - t0
            if duration and elapsed >= duration:
                break
            stats = worker.stats()
            frames = sum(s["frames"] for s in stats.values())
            crossings = sum(sum(s["crossings"].values()) for s in stats.values())
            committed = sum(s["committed_seq"] or 0 for s in stats.values())
            states = ",".join(sorted({s["source_state"] for s in stats.values()}))
            bar.update(task, completed=min(elapsed, duration or elapsed),
                       description=f"{frames} frames · {crossings} crossings · committed seq {committed} · {states}")
            stop.wait(1.0)
