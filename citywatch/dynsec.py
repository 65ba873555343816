"""The broker's credentials: Mosquitto's dynamic-security file, edited offline (``citywatch broker``).

Why the dynamic-security plugin and not ``password_file`` + ``acl_file``: Mosquitto 2.0's ACL file
cannot refuse a ``$share/<group>/...`` subscription (a device joining the server's shared group steals
a share of every camera's events) and cannot bind a client id to a user (a device connecting as
``citywatch-server`` drops the server and, with clean start, wipes its queued session). The plugin
checks every SUBSCRIBE against the user's roles and refuses a login whose client id is not the one
fixed for that user.

What this module writes (``mqtt.topic_prefix`` = P):

- a device credential per camera: user name = camera id, client id fixed to the edge's
  ``citywatch-<edge.device_id>-<camera>``; it may publish ``P/<site>/<camera>/event/+`` and
  ``P/<site>/<camera>/status`` (retained, last will) and ``P/<site>/<camera>/reference`` (the reference
  picture, only its own), subscribe to and receive ``P/<site>/<camera>/control/+``, and nothing else
  (no ``$share``, no other site or camera);
- the server credential: reads every camera's events, status and reference pictures (also through
  ``$share/<group>/``) and publishes control messages; no fixed client id (each ingest process has its own
  ``server.client_id``); devices cannot take those ids since each device is bound to its own;
- no MQTT administrator: the file is the administration (root on the broker host), and Mosquitto
  reads it when it starts, so restart the broker after a change.

Passwords are hashed as Mosquitto 2.0 does (PBKDF2-HMAC-SHA512, 12-byte salt, base64); they are
read from an environment variable, never from the command line (visible in ``ps``) or the repository.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

from citywatch.contract import is_id

SERVER_ROLE = "citywatch-server"
DEFAULT_SERVER_USER = "citywatch-server"
PBKDF2_ITERATIONS = 101  # Mosquitto 2.0's own default (mosquitto_ctrl, mosquitto_passwd)
SALT_BYTES = 12
MIN_PASSWORD_LENGTH = 16
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class DynsecError(ValueError):
    """A request the broker file cannot take (bad name, weak password, clash with an existing entry)."""


def edge_client_id(device_id: str, camera_id: str) -> str:
    """The MQTT client id of one camera's link on an edge (``edge.mqtt_link.MqttLink``)."""
    return f"citywatch-{device_id}-{camera_id}"


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> dict[str, Any]:
    """The ``password``/``salt``/``iterations`` fields of a dynamic-security client."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": iterations,
    }


def check_password(client: dict[str, Any], password: str) -> bool:
    salt = base64.b64decode(client["salt"])
    want = hash_password(password, salt=salt, iterations=int(client["iterations"]))["password"]
    return secrets.compare_digest(want, client["password"])


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "allow": True}


def empty_config() -> dict[str, Any]:
    """Deny by default: nothing is published, received or subscribed unless a role allows it."""
    return {
        "clients": [],
        "groups": [],
        "roles": [],
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
    }


def server_role(prefix: str) -> dict[str, Any]:
    events, status, control = f"{prefix}/+/+/event/+", f"{prefix}/+/+/status", f"{prefix}/+/+/control/+"
    reference = f"{prefix}/+/+/reference"
    return {
        "rolename": SERVER_ROLE,
        "textname": "citywatch ingest: reads every camera, publishes control messages",
        "acls": [
            _acl("subscribePattern", events),
            _acl("subscribePattern", status),
            _acl("subscribePattern", reference),
            _acl("subscribePattern", f"$share/+/{events}"),
            _acl("subscribePattern", f"$share/+/{status}"),
            _acl("subscribePattern", f"$share/+/{reference}"),
            _acl("publishClientReceive", events),
            _acl("publishClientReceive", status),
            _acl("publishClientReceive", reference),
            _acl("publishClientSend", control),
        ],
    }


def camera_role_name(site: str, camera: str) -> str:
    return f"citywatch-camera/{site}/{camera}"  # "/" is in no id: no two cameras share a role name


def camera_role(prefix: str, site: str, camera: str) -> dict[str, Any]:
    base = f"{prefix}/{site}/{camera}"
    return {
        "rolename": camera_role_name(site, camera),
        "textname": f"citywatch camera {camera} at site {site}",
        "acls": [
            _acl("publishClientSend", f"{base}/event/+"),
            _acl("publishClientSend", f"{base}/status"),
            _acl("publishClientSend", f"{base}/reference"),
            _acl("subscribePattern", f"{base}/control/+"),
            _acl("publishClientReceive", f"{base}/control/+"),
        ],
    }


def _check_ident(value: str, what: str) -> None:
    if not is_id(value):
        raise DynsecError(f"{what} {value!r} is not a valid id (letters, digits, '_', '.', '-'; at most 64)")


def _check_password(password: str | None, env: str) -> str:
    if not password:
        raise DynsecError(f"environment variable {env} is unset or empty: it must hold the password")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DynsecError(
            f"the password in {env} has {len(password)} characters; use at least {MIN_PASSWORD_LENGTH} "
            "(e.g. `openssl rand -base64 24`)"
        )
    return password


def load(path: Path) -> dict[str, Any]:
    """The file, or a fresh deny-by-default configuration when it does not exist yet."""
    if not path.exists():
        return empty_config()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DynsecError(f"cannot read the dynamic-security file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise DynsecError(f"{path} is not a Mosquitto dynamic-security file (no JSON object)")
    for key in ("clients", "groups", "roles"):
        data.setdefault(key, [])
    data.setdefault("defaultACLAccess", empty_config()["defaultACLAccess"])
    return data


def save(path: Path, data: dict[str, Any]) -> None:
    """Write atomically, mode 0600, owned like the file it replaces (or its folder: mosquitto's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ref = path if path.exists() else path.parent
    st = ref.stat()
    fd, tmp = tempfile.mkstemp(prefix=".dynsec-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _put_role(data: dict[str, Any], role: dict[str, Any]) -> None:
    data["roles"] = [r for r in data["roles"] if r.get("rolename") != role["rolename"]] + [role]


def _put_client(data: dict[str, Any], client: dict[str, Any], *, replace: bool) -> None:
    user = client["username"]
    old = [c for c in data["clients"] if c.get("username") == user]
    if old and not replace:
        raise DynsecError(f"user {user!r} exists already in the broker file; pass --replace to set it anew")
    cid = client.get("clientid")
    if cid:
        for c in data["clients"]:
            if c.get("clientid") == cid and c.get("username") != user:
                raise DynsecError(f"client id {cid!r} is bound to user {c['username']!r} already")
    data["clients"] = [c for c in data["clients"] if c.get("username") != user] + [client]
    used = {r.get("rolename") for holder in data["clients"] + data["groups"] for r in holder.get("roles", [])}
    data["roles"] = [  # a replaced camera's old site role must not linger
        r for r in data["roles"] if not r.get("rolename", "").startswith("citywatch-camera/") or r["rolename"] in used
    ]


def add_device(
    data: dict[str, Any],
    *,
    prefix: str,
    site: str,
    device_id: str,
    cameras: list[str],
    password: str | None,
    password_env: str,
    replace: bool = False,
) -> list[dict[str, Any]]:
    """One credential per camera of an edge box (user = camera id, client id fixed), one password."""
    if not _PREFIX.match(prefix):
        raise DynsecError(f"invalid topic prefix {prefix!r}")
    _check_ident(site, "site")
    _check_ident(device_id, "device id")
    if not cameras:
        raise DynsecError("name at least one --camera")
    if len(set(cameras)) != len(cameras):
        raise DynsecError(f"a camera is named twice: {cameras}")
    secret = _check_password(password, password_env)
    added = []
    for camera in cameras:
        _check_ident(camera, "camera id")
        if camera == DEFAULT_SERVER_USER:
            raise DynsecError(f"{camera!r} is the server's user name; choose another camera id")
        role = camera_role(prefix, site, camera)
        _put_role(data, role)
        client = {
            "username": camera,
            "textname": f"citywatch edge {device_id}, camera {camera}, site {site}",
            "clientid": edge_client_id(device_id, camera),
            **hash_password(secret),
            "roles": [{"rolename": role["rolename"]}],
        }
        _put_client(data, client, replace=replace)
        added.append(client)
    return added


def add_server(
    data: dict[str, Any],
    *,
    prefix: str,
    username: str = DEFAULT_SERVER_USER,
    password: str | None,
    password_env: str,
    replace: bool = False,
) -> dict[str, Any]:
    """The credential every ingest process of this installation logs in with."""
    if not _PREFIX.match(prefix):
        raise DynsecError(f"invalid topic prefix {prefix!r}")
    _check_ident(username, "user name")
    secret = _check_password(password, password_env)
    _put_role(data, server_role(prefix))
    client = {
        "username": username,
        "textname": "citywatch server (ingest)",
        **hash_password(secret),
        "roles": [{"rolename": SERVER_ROLE}],
    }
    _put_client(data, client, replace=replace)
    return client
