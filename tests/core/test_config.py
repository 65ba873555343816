"""Configuration: one validated file, errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywatch.config import ConfigError, load_config, parse_config
from commands.cli import app

REPO = Path(__file__).resolve().parents[2]


def test_shipped_example_and_demo_configs_are_valid() -> None:
    example = load_config(REPO / "config.example.yaml")
    assert example.cameras[0].lines[0].id == "stop-line-north"
    demo = load_config(REPO / "citywatch/configs/demo.yaml")
    assert demo.mqtt.protocol == "3.1.1" and demo.cameras[0].loop


def test_the_demo_names_its_camera_and_directions_once_not_in_two_languages() -> None:
    # the dashboard shows names as they are in both languages: "Vietnamese / English" would be on every screen
    cam = load_config(REPO / "citywatch/configs/demo.yaml").cameras[0]
    shown = [cam.name or "", *(label for line in cam.lines for label in line.labels.values())]
    assert shown[0] and all(" / " not in text for text in shown), shown


def test_errors_name_the_key_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({
            "mqtt": {"port": 70000, "pasword_env": "X"},
            "cameras": [{"id": "c1", "source": "a", "lines": [{"id": "l1", "points": [[0, 0]]}]}],
        })
    paths = {p for p, _ in info.value.errors}
    assert {"mqtt.port", "mqtt.pasword_env"} <= paths
    assert any(p.startswith("cameras.0.lines.0.points") for p in paths)
    assert dict(info.value.errors)["mqtt.pasword_env"] == "unknown key (not allowed here)"


def test_duplicate_ids_and_bad_time_zone_are_refused() -> None:
    with pytest.raises(ConfigError, match="duplicate camera ids: c1"):
        parse_config({"cameras": [{"id": "c1", "source": "a"}, {"id": "c1", "source": "b"}]})
    with pytest.raises(ConfigError, match="duplicate lines ids: l"):
        parse_config({"cameras": [{"id": "c1", "source": "a", "lines": [
            {"id": "l", "points": [[0, 0], [9, 9]]}, {"id": "l", "points": [[0, 0], [9, 9]]}]}]})
    with pytest.raises(ConfigError, match="server.timezone"):
        parse_config({"server": {"timezone": "Mars/Olympus"}})


def test_ingest_health_thresholds_are_validated_and_name_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"server": {"ingest": {"stall_after_s": 0, "db_timeout_s": -1, "dead_letters_warn_per_min": -5}}})
    paths = {p for p, _ in info.value.errors}
    keys = ("stall_after_s", "db_timeout_s", "dead_letters_warn_per_min")
    assert {f"server.ingest.{k}" for k in keys} <= paths
    with pytest.raises(ConfigError, match="retry_max_s .* is below retry_initial_s"):
        parse_config({"server": {"ingest": {"retry_initial_s": 5, "retry_max_s": 1}}})


def test_credentials_come_from_the_environment_not_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_config({"mqtt": {"username_env": "CW_U", "password_env": "CW_P"}})
    monkeypatch.setenv("CW_U", "edge-7")
    monkeypatch.setenv("CW_P", "s3cret")
    assert cfg.mqtt.credentials() == ("edge-7", "s3cret")
    with pytest.raises(ConfigError):
        parse_config({"mqtt": {"password": "s3cret"}})


def test_config_version_changes_with_the_lines_only() -> None:
    base = {"id": "c1", "source": "a", "lines": [{"id": "l", "points": [[0, 0], [9, 9]]}]}
    v1 = parse_config({"cameras": [base]}).cameras[0].config_version()
    renamed = parse_config({"cameras": [{**base, "name": "new name"}]}).cameras[0].config_version()
    moved = parse_config({"cameras": [{**base, "lines": [{"id": "l", "points": [[0, 0], [9, 19]]}]}]})
    assert v1 == renamed != moved.cameras[0].config_version()


def test_config_check_command_exits_non_zero_and_prints_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: ok\nmqtt:\n  hots: broker\n")
    result = CliRunner().invoke(app, ["config", "check", str(bad)])
    assert result.exit_code == 2
    assert "mqtt.hots" in result.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("site: [unclosed\n")
    result = CliRunner().invoke(app, ["config", "check", str(broken)])
    assert result.exit_code == 2 and "line" in result.output
    good = CliRunner().invoke(app, ["config", "check", str(REPO / "config.example.yaml")])
    assert good.exit_code == 0, good.output


def test_example_config_documents_every_section_key_and_shows_the_defaults() -> None:
    """The commented reference stays true: every key of every section appears, with its default value."""
    import yaml
    from pydantic import BaseModel

    from citywatch.config import CitywatchConfig

    raw = yaml.safe_load((REPO / "config.example.yaml").read_text(encoding="utf-8"))
    defaults = CitywatchConfig().model_dump(mode="json")
    kept_different = {"site", "server.incidents", "cameras"}  # examples, not defaults

    def walk(model: type[BaseModel], example: dict, default: dict, prefix: str) -> None:
        for name, field in model.model_fields.items():
            path = prefix + name
            if path.startswith("incidents.") and path.count(".") > 1 and name not in example:
                continue  # the keys every rule shares are described once, in a comment
            assert name in example, f"config.example.yaml does not document {path}"
            sub = field.annotation if isinstance(field.annotation, type) else None
            if path in kept_different:
                continue
            if sub is not None and issubclass(sub, BaseModel) and isinstance(example[name], dict):
                walk(sub, example[name], default[name], path + ".")
            else:
                assert example[name] == default[name], f"{path}: example {example[name]!r}, default {default[name]!r}"

    walk(CitywatchConfig, raw, defaults, "")
