"""Reading a configuration: YAML file, mapping or one pushed camera, with errors that name the key path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from citywatch.config.cameras import CameraConfig
from citywatch.config.root import CitywatchConfig


class ConfigError(Exception):
    """A configuration file that cannot be used; ``errors`` lists ``(key path, message)``."""

    def __init__(self, source: str, errors: list[tuple[str, str]]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  {path}: {msg}" for path, msg in errors)
        super().__init__(f"invalid configuration {source}:\n{lines}")


def _errors(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not allowed here)"
        out.append((path, msg))
    return out


def parse_config(data: Any, source: str = "<config>") -> CitywatchConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [("<root>", "the file must hold a mapping of keys")])
    try:
        return CitywatchConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _errors(exc)) from None


def load_config(path: str | os.PathLike[str]) -> CitywatchConfig:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(str(p), [("<file>", "no such file")])
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        raise ConfigError(str(p), [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    return parse_config(data, str(p))


def validate_camera(data: Any) -> CameraConfig:
    """Validate one camera block (a pushed remote configuration)."""
    try:
        return CameraConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("<camera>", _errors(exc)) from None
