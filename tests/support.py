"""Test support: where the real weights and clips are, and which services are here.

Weights and clips are never in the repository: tests find them through CITYWATCH_WEIGHTS and
CITYWATCH_SAMPLES (``.ci/run`` points both at ../shared), falling back to ../shared beside the checkout.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CITYWATCH_SHARED", REPO.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() == "true"


def _default_env() -> None:
    if "CITYWATCH_WEIGHTS" not in os.environ and (SHARED / "weights/yolov8n-coco-rebuilt.pt").exists():
        os.environ["CITYWATCH_WEIGHTS"] = str(SHARED / "weights/yolov8n-coco-rebuilt.pt")
    if "CITYWATCH_SAMPLES" not in os.environ and (SHARED / "videos").is_dir():
        os.environ["CITYWATCH_SAMPLES"] = str(SHARED / "videos")
    os.environ.setdefault("YOLO_OFFLINE", "1")


_default_env()


def weights_dir() -> Path | None:
    w = os.environ.get("CITYWATCH_WEIGHTS")
    return Path(w).parent if w else None


def samples_dir() -> Path | None:
    s = os.environ.get("CITYWATCH_SAMPLES")
    return Path(s) if s else None


def require(condition: object, reason: str) -> None:
    """Skip on a laptop without it; with CI=true a missing service, binary or asset fails, never skips."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: these tests must run, not skip)")
    pytest.skip(reason)


def require_asset(path: Path | None, what: str) -> Path:
    """The file, or a skip naming the variable to set (a failure in CI, where they must be there)."""
    require(path is not None and path.exists(),
            f"{what} not found ({path}); set CITYWATCH_WEIGHTS / CITYWATCH_SAMPLES to ../shared")
    assert path is not None
    return path


def service_up(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip on a laptop without the service; in CI a missing service is a failure, never a skip."""
    require(service_up(host, port), f"{name} is not reachable on {host}:{port}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll until ``pred()`` is truthy; returns its last value (falsy on time-out)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def wait_ingest_subscribed(*logs: Path, timeout: float = 60) -> None:
    """Until every ``python -m server`` whose log is given has subscribed: a message published before has no
    subscriber and is dropped (a fixed 4 s sleep was too short: a server took 10 s to start under load)."""
    if not wait_for(lambda: all(log.exists() and "subscribed to [" in log.read_text() for log in logs), timeout):
        tails = {str(log): log.read_text()[-1000:] if log.exists() else "(no log)" for log in logs}
        raise RuntimeError(f"an ingest process did not subscribe within {timeout} s: {tails}")


MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class PrivateBroker:
    """A Mosquitto of our own on a free port, which the test may kill -9 and restart."""

    def __init__(self, tmp_path: Path, extra_conf: str = "") -> None:
        require(Path(MOSQUITTO).exists(), "the mosquitto binary is not installed (apt-get install mosquitto)")
        self.port = free_port()
        self.conf = tmp_path / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra_conf}")
        self.log = tmp_path / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        if not wait_for(lambda: service_up("127.0.0.1", self.port), 10):
            raise RuntimeError(f"mosquitto did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


SHIPPED_MOSQUITTO_CONF = REPO / "deploy/mosquitto/mosquitto.conf"
TLS_KEYS = ("certfile", "keyfile", "cafile", "capath", "tls_version", "require_certificate", "ciphers")


def make_certs(d: Path) -> Path:
    """A throw-away CA and a server certificate for 127.0.0.1, valid for a day; returns the CA file."""
    require(shutil.which("openssl"), "openssl is not installed")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-subj", "/CN=citywatch-test-ca", "-days", "1")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "1", "-extfile", "san.ext")
    return d / "ca.crt"


def broker_cli(*args: str, password: str | None = None) -> str:
    """Run ``citywatch broker ...`` (the documented command) with the password in $CW_TEST_BROKER_PW."""
    from typer.testing import CliRunner

    from commands.cli import app

    env = {"CW_TEST_BROKER_PW": password} if password is not None else {}
    result = CliRunner().invoke(app, ["broker", *args, "--password-env", "CW_TEST_BROKER_PW"], env=env)
    if result.exit_code != 0:
        raise RuntimeError(f"citywatch broker {' '.join(args)} failed ({result.exit_code}): {result.output}")
    return result.output


def _dynsec_plugin(shipped: Path) -> Path:
    """The shipped plugin path, or the same library under this machine's multiarch folder (arm64)."""
    found = [shipped] if shipped.exists() else sorted(Path("/usr/lib").glob(f"*/{shipped.name}"))
    require(found, f"Mosquitto's dynamic-security plugin is not installed ({shipped}; apt-get install mosquitto)")
    return found[0]


class ShippedBroker(PrivateBroker):
    """Mosquitto run from deploy/mosquitto/mosquitto.conf as shipped, with only ports and paths changed.

    ``dynsec``: the dynamic-security file (made with ``citywatch broker``) and ``certs``: a folder from
    :func:`make_certs` -- both or neither. Neither: the test needs the shipped delivery settings only, so
    authentication and the TLS listener are left out and anonymous clients may connect on loopback.
    """

    def __init__(self, tmp_path: Path, *, dynsec: Path | None = None, certs: Path | None = None) -> None:
        super().__init__(tmp_path)
        if (dynsec is None) != (certs is None):
            raise ValueError("give both dynsec and certs (the shipped secure setup) or neither")
        self.tls_port = free_port()
        (tmp_path / "mosq").mkdir(exist_ok=True)
        secure = dynsec is not None and certs is not None
        out = []
        for line in SHIPPED_MOSQUITTO_CONF.read_text().splitlines():
            words = line.split()
            key = words[0] if words and not line.startswith("#") else ""
            if key == "listener" and words[1] == "1883":
                line = " ".join(["listener", str(self.port), *words[2:]])  # the bind address stays as shipped
            elif key == "listener" and words[1] == "8883":
                line = " ".join(["listener", str(self.tls_port), *words[2:]]) if secure else ""
            elif key in TLS_KEYS and not secure:
                line = ""
            elif key in ("certfile", "keyfile", "cafile") and certs is not None:
                line = f"{key} {certs / Path(words[1]).name}"
            elif key in ("plugin", "plugin_opt_config_file") and not secure:
                line = ""
            elif key == "plugin":
                line = f"plugin {_dynsec_plugin(Path(words[1]))}"
            elif key == "plugin_opt_config_file":
                line = f"plugin_opt_config_file {dynsec}"
            elif key == "allow_anonymous" and not secure:
                line = "allow_anonymous true"
            elif key == "persistence_location":
                line = f"persistence_location {tmp_path / 'mosq'}/"
            elif key and any(p in line for p in ("/etc/", "/var/")):
                raise ValueError(f"the shipped mosquitto.conf has a path this helper does not relocate: {line!r}")
            out.append(line)
        out.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")  # as root, mosquitto would drop to "mosquitto"
        self.conf.write_text("\n".join(out) + "\n")

    def start(self) -> None:
        super().start()
        if "Error" in self.log.read_text():  # e.g. an unreadable dynamic-security file: it runs, refusing all
            raise RuntimeError(f"mosquitto started with an error: {self.log.read_text()[-2000:]}")
