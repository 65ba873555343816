"""`citywatch broker add-device / add-server`: the dynamic-security file Mosquitto 2.0 reads (hash format,
deny-by-default, one user per camera bound to its client id), refusals that name what was wrong, and the
systemd example that agrees with it. The broker itself runs in tests/server/test_server_mqtt_acl.py."""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from support import REPO, broker_cli, require

from citywatch import dynsec

PW = "a-long-enough-password-1"


def _users(path: Path) -> dict[str, dict]:
    return {c["username"]: c for c in json.loads(path.read_text())["clients"]}


def test_the_password_hash_is_the_one_mosquitto_ctrl_writes(tmp_path: Path) -> None:
    """Checked against a file made by Mosquitto's own tool: PBKDF2-HMAC-SHA512, 12-byte salt, base64."""
    ctrl = shutil.which("mosquitto_ctrl") or "/usr/bin/mosquitto_ctrl"
    require(Path(ctrl).exists(), "mosquitto_ctrl is not installed")
    subprocess.run([ctrl, "dynsec", "init", str(tmp_path / "ref.json"), "admin", PW], check=True, capture_output=True)
    ref = _users(tmp_path / "ref.json")["admin"]
    assert dynsec.check_password(ref, PW) and not dynsec.check_password(ref, PW + "x")
    ours = dynsec.hash_password(PW, salt=base64.b64decode(ref["salt"]), iterations=ref["iterations"])
    assert (ours["password"], ours["salt"]) == (ref["password"], ref["salt"])


def test_add_device_makes_one_bound_credential_per_camera_pinned_to_its_site(tmp_path: Path) -> None:
    f = tmp_path / "ds.json"
    broker_cli("add-device", "--file", str(f), "--site", "s1", "--device", "box", "--camera", "c1",
               "--camera", "c2", password=PW)
    data = json.loads(f.read_text())
    assert oct(f.stat().st_mode & 0o777) == "0o600"
    assert data["defaultACLAccess"] == {"publishClientSend": False, "publishClientReceive": False,
                                        "subscribe": False, "unsubscribe": True}
    users = _users(f)
    assert {u: c["clientid"] for u, c in users.items()} == {"c1": "citywatch-box-c1", "c2": "citywatch-box-c2"}
    assert all(dynsec.check_password(c, PW) for c in users.values())
    assert PW not in f.read_text()
    roles = {r["rolename"]: r for r in data["roles"]}
    acls = {(a["acltype"], a["topic"]) for a in roles[users["c1"]["roles"][0]["rolename"]]["acls"]}
    assert acls == {("publishClientSend", "citywatch/s1/c1/event/+"), ("publishClientSend", "citywatch/s1/c1/status"),
                    ("publishClientSend", "citywatch/s1/c1/reference"),
                    ("subscribePattern", "citywatch/s1/c1/control/+"),
                    ("publishClientReceive", "citywatch/s1/c1/control/+")}


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (["--camera", "c1"], None, "CW_TEST_BROKER_PW is unset or empty"),
        (["--camera", "c1"], "short", "use at least 16"),
        (["--camera", "c 1"], PW, "camera id 'c 1' is not a valid id"),
        (["--camera", "citywatch-server"], PW, "the server's user name"),
        (["--camera", "c1", "--camera", "c1"], PW, "named twice"),
    ],
)
def test_add_device_refuses_what_it_cannot_take_and_names_it(
    tmp_path: Path, args: list[str], password: str | None, message: str
) -> None:
    f = tmp_path / "ds.json"
    with pytest.raises(RuntimeError, match=re.escape(message)):
        broker_cli("add-device", "--file", str(f), "--site", "s1", "--device", "box", *args, password=password)
    assert not f.exists()


def test_an_existing_user_is_replaced_only_when_asked(tmp_path: Path) -> None:
    f = tmp_path / "ds.json"
    base = ["add-device", "--file", str(f), "--site", "s1", "--device", "box", "--camera", "c1"]
    broker_cli(*base, password=PW)
    with pytest.raises(RuntimeError, match="user 'c1' exists already"):
        broker_cli(*base, password=PW + "-new")
    assert dynsec.check_password(_users(f)["c1"], PW)
    broker_cli(*base, "--replace", password=PW + "-new")
    assert dynsec.check_password(_users(f)["c1"], PW + "-new")
    assert len(_users(f)) == 1
    broker_cli(*[a if a != "s1" else "s2" for a in base], "--replace", password=PW)  # the camera moved site
    roles = json.loads(f.read_text())["roles"]
    assert [r["rolename"] for r in roles] == ["citywatch-camera/s2/c1"]  # s1's topics are gone with its role


def test_add_server_lets_the_server_read_every_camera_also_through_share(tmp_path: Path) -> None:
    f = tmp_path / "ds.json"
    broker_cli("add-server", "--file", str(f), password=PW)
    server = _users(f)["citywatch-server"]
    assert "clientid" not in server  # every ingest process has its own server.client_id
    role = {r["rolename"]: r for r in json.loads(f.read_text())["roles"]}[server["roles"][0]["rolename"]]
    subs = {a["topic"] for a in role["acls"] if a["acltype"] == "subscribePattern"}
    assert "$share/+/citywatch/+/+/event/+" in subs and "citywatch/+/+/event/+" in subs


def test_the_systemd_example_logs_in_with_a_credential_its_add_device_line_makes(tmp_path: Path) -> None:
    """deploy/systemd's user name is a camera id of the add-device command shown beside it."""
    text = (REPO / "deploy/systemd/citywatch-edge.service").read_text()
    cmd = re.search(r"citywatch broker (add-device .*)", text)
    user = re.search(r"CITYWATCH_MQTT_USERNAME=(\S+)", text)
    assert cmd and user, "the example must show the add-device command and the user it makes"
    args = shlex.split(cmd.group(1))
    args = args[: args.index("--password-env")]
    f = tmp_path / "ds.json"
    broker_cli(*args, "--file", str(f), password=PW)
    device = args[args.index("--device") + 1]
    assert _users(f)[user.group(1)]["clientid"] == dynsec.edge_client_id(device, user.group(1))


def test_cameras_whose_site_and_id_join_to_the_same_text_keep_their_own_topics(tmp_path: Path) -> None:
    """site "a-b" camera "c" and site "a" camera "b-c": each role names only its own camera's topics."""
    f = tmp_path / "ds.json"
    broker_cli("add-device", "--file", str(f), "--site", "a-b", "--device", "d1", "--camera", "c", password=PW)
    broker_cli("add-device", "--file", str(f), "--site", "a", "--device", "d2", "--camera", "b-c", password=PW)
    roles = {r["rolename"]: {a["topic"] for a in r["acls"]} for r in json.loads(f.read_text())["roles"]}
    users = _users(f)
    assert roles[users["c"]["roles"][0]["rolename"]] >= {"citywatch/a-b/c/event/+"}
    assert roles[users["b-c"]["roles"][0]["rolename"]] >= {"citywatch/a/b-c/event/+"}
    assert not any("citywatch/a/b-c" in t for t in roles[users["c"]["roles"][0]["rolename"]])
