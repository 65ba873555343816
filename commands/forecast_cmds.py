"""Forecast and data commands: backtest the forecast model on a CSV, import counts a city already has."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from commands.console import ConfigOpt, err, load_or_exit, out, progress_bar

forecast_app = typer.Typer(help="Flow forecasts.", no_args_is_help=True)
import_app = typer.Typer(help="Load data from elsewhere into the server's database.", no_args_is_help=True)


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
        with progress_bar() as bar:
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

    cfg = load_or_exit(config)
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
    from server.storage.store import Store

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
