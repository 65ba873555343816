"""What every command shares: the two consoles, the --config option, loading a configuration, a progress bar."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from citywatch.config import CitywatchConfig, ConfigError, load_config

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration file.")]


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("amqtt", "transitions", "uvicorn.access"):  # chatty at INFO: connections, state machines
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def load_or_exit(path: Path | None) -> CitywatchConfig:
    if path is None:
        return CitywatchConfig()
    try:
        return load_config(path)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(), console=err, transient=True,
    )

