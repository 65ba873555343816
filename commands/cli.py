"""The ``citywatch`` command: one entry point for installers, operators and developers.

This module wires the command groups (one module each) into one Typer app and holds the commands that
run the product: edge, server and demo."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from citywatch import __version__
from commands.asset_cmds import config_app, samples_app, schema, weights_app
from commands.broker_cmds import broker_app
from commands.console import ConfigOpt, err, load_or_exit, out, setup_logging
from commands.forecast_cmds import forecast_app, import_app
from commands.offline_cmds import count, eval_, eval_stationary

app = typer.Typer(help="citywatch: smart-camera traffic monitoring.", no_args_is_help=True, add_completion=False)
app.command()(count)
app.command("eval")(eval_)
app.command("eval-stationary")(eval_stationary)
app.command()(schema)
app.add_typer(config_app, name="config")
app.add_typer(weights_app, name="weights")
app.add_typer(samples_app, name="samples")
app.add_typer(broker_app, name="broker")
app.add_typer(forecast_app, name="forecast")
app.add_typer(import_app, name="import")


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        out.print(__version__)
        raise typer.Exit()
    setup_logging(verbose)


@app.command()
def edge(config: Annotated[Path, typer.Argument(help="YAML configuration file.")]) -> None:
    """Run the edge worker for the cameras in the configuration until interrupted."""
    from commands.runtime import run_edge

    cfg = load_or_exit(config)
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
    from commands.runtime import run_server

    cfg = load_or_exit(config)
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
    from commands.demo import run_demo

    cfg = load_or_exit(config) if config else None
    raise typer.Exit(run_demo(cfg, duration=duration, port=port, data_dir=data_dir, console=out))


def entrypoint() -> None:  # pragma: no cover
    os.environ.setdefault("YOLO_OFFLINE", "1")
    app(prog_name="citywatch")


if __name__ == "__main__":  # pragma: no cover
    entrypoint()
