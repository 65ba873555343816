"""The whole file: the site, every section and the cameras."""

from __future__ import annotations

from pydantic import Field, model_validator

from citywatch.config.base import Ident, StrictModel
from citywatch.config.cameras import CameraConfig
from citywatch.config.edge import EdgeConfig
from citywatch.config.incidents import IncidentsConfig
from citywatch.config.model import CountingConfig, ModelConfig, TrackerConfig
from citywatch.config.mqtt import MQTTConfig
from citywatch.config.server import ServerConfig


class CitywatchConfig(StrictModel):
    site: Ident = "site-1"
    mqtt: MQTTConfig = MQTTConfig()
    model: ModelConfig = ModelConfig()
    tracker: TrackerConfig = TrackerConfig()
    counting: CountingConfig = CountingConfig()
    edge: EdgeConfig = EdgeConfig()
    server: ServerConfig = ServerConfig()
    incidents: IncidentsConfig = IncidentsConfig()
    cameras: list[CameraConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_cameras(self) -> CitywatchConfig:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate camera ids: {', '.join(dupes)}")
        return self

    def camera_site(self, camera: CameraConfig) -> str:
        return camera.site or self.site
