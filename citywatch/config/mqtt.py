"""``mqtt``: the broker, its credentials (read from the environment, never from the file) and TLS."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from citywatch.config.base import StrictModel


class TLSConfig(StrictModel):
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(False, description="Skip hostname verification (test benches only).")


class MQTTConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = Field(
        "5", description="MQTT version. The embedded amqtt broker speaks 3.1.1 only."
    )
    topic_prefix: str = Field("citywatch", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
    keepalive_s: int = Field(30, ge=5, le=3600)
    session_expiry_s: int = Field(7 * 24 * 3600, ge=60, description="MQTT v5 persistent session lifetime.")
    username_env: str | None = Field("CITYWATCH_MQTT_USERNAME", description="Environment variable with the user.")
    password_env: str | None = Field("CITYWATCH_MQTT_PASSWORD", description="Environment variable with the password.")
    camera_id_as_username: bool = Field(
        False,
        description="Edge only: each camera's link logs in as its camera id (the broker's per-camera credential "
        "from `citywatch broker add-device`; one password for the box from password_env); username_env is unused.",
    )
    tls: TLSConfig = TLSConfig()
    shared_group: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]+$", description="Server only: subscribe via $share/<group>/ to scale out."
    )

    def credentials(self, camera_id: str | None = None) -> tuple[str | None, str | None]:
        """(user, password) from the environment; with ``camera_id_as_username`` an edge camera's user is its id."""
        if self.camera_id_as_username and camera_id:
            user: str | None = camera_id
        else:
            user = os.environ.get(self.username_env) if self.username_env else None
        password = os.environ.get(self.password_env) if self.password_env else None
        return user or None, password or None
