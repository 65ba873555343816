"""``citywatch broker``: Mosquitto credentials in its dynamic-security file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from commands.console import err, out

broker_app = typer.Typer(
    help="Mosquitto credentials (dynamic-security file; restart Mosquitto afterwards).", no_args_is_help=True
)

DynsecFileOpt = Annotated[
    Path, typer.Option("--file", help="Mosquitto's plugin_opt_config_file (created when missing).")
]
PrefixOpt = Annotated[str, typer.Option("--topic-prefix", help="mqtt.topic_prefix of the installation.")]
PasswordEnvOpt = Annotated[
    str, typer.Option("--password-env", help="Environment variable holding the password (never on the command line).")
]
ReplaceOpt = Annotated[bool, typer.Option("--replace", help="Overwrite an existing user (new password, new topics).")]
DYNSEC_FILE = Path("/var/lib/mosquitto/dynamic-security.json")


def _edit_dynsec(path: Path, change: Callable[[dict[str, Any]], object]) -> None:
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
