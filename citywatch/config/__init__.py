"""One YAML file configures an edge box, a server or the demo; pydantic validates all of it.

Secrets never live in the file: MQTT credentials are read from the environment variables the file
names. Errors name the key path (``cameras.0.lines.1.points``) so an installer can find the typo.
One module per section of the file; every name is re-exported here, so ``from citywatch.config import X``
is the way to import any of them.
"""

from citywatch.config.base import Ident, Point, StrictModel
from citywatch.config.cameras import (
    Box,
    CalibrationConfig,
    CameraConfig,
    LaneConfig,
    LineConfig,
    Location,
    MotionGateConfig,
    ProcessingConfig,
    ZoneConfig,
    effective_incidents,
)
from citywatch.config.edge import (
    EdgeConfig,
    EdgeReferencePictureConfig,
    EdgeSnapshotsConfig,
    EdgeSourcesConfig,
    EdgeTamperConfig,
)
from citywatch.config.incidents import (
    CongestionRule,
    CrashCandidateRule,
    IncidentsConfig,
    PeopleOnCarriagewayRule,
    StoppedVehicleRule,
    WrongWayRule,
)
from citywatch.config.loading import ConfigError, load_config, parse_config, validate_camera
from citywatch.config.model import CountingConfig, ModelConfig, TrackerConfig
from citywatch.config.mqtt import MQTTConfig, TLSConfig
from citywatch.config.root import CitywatchConfig
from citywatch.config.server import (
    ORIGIN_PATTERN,
    EmailConfig,
    ForecastsConfig,
    HolidaysConfig,
    IngestConfig,
    LoginThrottleConfig,
    PCUWeights,
    PrivacyConfig,
    RetentionConfig,
    ServerAuthConfig,
    ServerConfig,
    ServerIncidentsConfig,
    WebhookConfig,
)

__all__ = [
    "ORIGIN_PATTERN",
    "Box",
    "CalibrationConfig",
    "CameraConfig",
    "CitywatchConfig",
    "ConfigError",
    "CongestionRule",
    "CountingConfig",
    "CrashCandidateRule",
    "EdgeConfig",
    "EdgeReferencePictureConfig",
    "EdgeSnapshotsConfig",
    "EdgeSourcesConfig",
    "EdgeTamperConfig",
    "EmailConfig",
    "ForecastsConfig",
    "HolidaysConfig",
    "Ident",
    "IncidentsConfig",
    "IngestConfig",
    "LaneConfig",
    "LineConfig",
    "Location",
    "LoginThrottleConfig",
    "MQTTConfig",
    "ModelConfig",
    "MotionGateConfig",
    "PCUWeights",
    "PeopleOnCarriagewayRule",
    "PrivacyConfig",
    "Point",
    "ProcessingConfig",
    "RetentionConfig",
    "ServerAuthConfig",
    "ServerConfig",
    "ServerIncidentsConfig",
    "StoppedVehicleRule",
    "StrictModel",
    "TLSConfig",
    "TrackerConfig",
    "WebhookConfig",
    "WrongWayRule",
    "ZoneConfig",
    "effective_incidents",
    "load_config",
    "parse_config",
    "validate_camera",
]
