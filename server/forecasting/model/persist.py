"""A fitted model as bytes and back, so that a server restart predicts with the models it had instead of
refitting every series (fitting is the expensive part; loading a model is cheap).

The bytes are zlib-compressed JSON: the cut-off, frequency, calendar, settings, the fallback interval and
the three LightGBM boosters as model strings without their training statistics (split gains, counts and
weights of every node: prediction never reads them, and they are over half of the text). Predictions of a
loaded model are identical to the original's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import zlib
from typing import TYPE_CHECKING, TypedDict

import pandas as pd

from server.forecasting.model.forecaster import FittedModel, ModelSettings
from server.forecasting.model.holiday import HolidayCalendar

if TYPE_CHECKING:
    from lightgbm import Booster

FORMAT = 1
#: Per-node lines of a LightGBM model string that prediction never reads; ``tree_sizes`` (byte offsets of
#: the trees) no longer holds once they are gone, and LightGBM parses the trees in sequence without it.
_TRAINING_ONLY = ("tree_sizes=", "split_gain=", "leaf_weight=", "leaf_count=", "internal_value=",
                  "internal_weight=", "internal_count=")


class _Calendar(TypedDict):
    country: str
    subdiv: str | None
    extra: list[str]


class _Payload(TypedDict):
    format: int
    cutoff: str
    freq: str
    calendar: _Calendar | None
    settings: dict[str, float | int | str]
    fallback_q: list[float]
    boosters: list[str] | None


def compact_model_string(text: str) -> str:
    """A LightGBM model string without what only training uses (same predictions, less than half the size)."""
    trees, sep, tail = text.partition("end of trees")
    kept = "\n".join(line for line in trees.split("\n") if not line.startswith(_TRAINING_ONLY))
    return kept + sep + tail


def calendar_key(calendar: HolidayCalendar | None) -> str:
    """A short text naming the calendar (a stored model fitted with another calendar is not reused)."""
    if calendar is None:
        return "-"
    extra = ",".join(sorted(d.isoformat() for d in calendar.extra))
    return f"{calendar.country}/{calendar.subdiv or ''}/{extra}"


def settings_key(settings: ModelSettings) -> str:
    """A text naming the model settings (a stored model fitted with other settings is not reused)."""
    return json.dumps(dataclasses.asdict(settings), sort_keys=True)


def dump_model(model: FittedModel) -> bytes:
    boosters = None
    if model.point is not None and model.lower is not None and model.upper is not None:
        boosters = [compact_model_string(b.model_to_string()) for b in (model.point, model.lower, model.upper)]
    cal = model.calendar
    payload: _Payload = {
        "format": FORMAT,
        "cutoff": model.cutoff.isoformat(),
        "freq": model.freq,
        "calendar": None if cal is None else {
            "country": cal.country, "subdiv": cal.subdiv, "extra": sorted(d.isoformat() for d in cal.extra)},
        "settings": dataclasses.asdict(model.settings),
        "fallback_q": list(model.fallback_q),
        "boosters": boosters,
    }
    return zlib.compress(json.dumps(payload).encode(), 6)


def load_model(data: bytes) -> FittedModel:
    """The model ``dump_model`` wrote; ``ValueError`` for bytes of another format (refit instead)."""
    try:
        payload: _Payload = json.loads(zlib.decompress(data))
    except (zlib.error, ValueError) as exc:
        raise ValueError(f"not a stored forecast model: {exc}") from None
    if payload.get("format") != FORMAT:
        raise ValueError(f"stored forecast model has format {payload.get('format')!r}, this server reads {FORMAT}")
    cal = payload["calendar"]
    calendar = None if cal is None else HolidayCalendar(
        country=cal["country"], subdiv=cal["subdiv"], extra=frozenset(dt.date.fromisoformat(d) for d in cal["extra"]))
    point = lower = upper = None
    if payload["boosters"] is not None:
        point, lower, upper = (_booster(text) for text in payload["boosters"])
    lo, hi = payload["fallback_q"]
    return FittedModel(
        cutoff=pd.Timestamp(payload["cutoff"]), freq=payload["freq"], calendar=calendar,
        settings=ModelSettings(**payload["settings"]),  # type: ignore[arg-type]  # asdict of the same dataclass
        point=point, lower=lower, upper=upper, fallback_q=(float(lo), float(hi)),
    )


def _booster(text: str) -> Booster:
    import lightgbm

    return lightgbm.Booster(model_str=text)
