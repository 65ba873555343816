"""``edge``: the edge box's sources, tamper checks, snapshots, outbox and logs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from citywatch.config.base import Ident, StrictModel


class EdgeSourcesConfig(StrictModel):
    """Live sources (RTSP, HTTP/MJPEG, USB): time-outs, reconnect back-off; file checkpoints."""

    open_timeout_s: float = Field(10.0, gt=0, le=300, description="Give up opening a stream after this.")
    stall_timeout_s: float = Field(5.0, gt=0, le=300, description="No frame for this long = stalled stream.")
    reconnect_min_s: float = Field(1.0, gt=0, le=600, description="First reconnect delay (doubles each failure).")
    reconnect_max_s: float = Field(30.0, gt=0, le=3600, description="Longest reconnect delay.")
    buffer_frames: int = Field(4, ge=1, le=100, description="Live frames buffered; older ones dropped when slow.")
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    checkpoint_every_s: float = Field(2.0, gt=0, le=3600, description="File position checkpoint interval.")
    resume: bool = Field(True, description="Resume a file at its checkpoint after a restart.")
    resume_warmup_frames: int = Field(
        50, ge=0, le=10000, description="Frames re-read before the checkpoint (tracker warm-up, no events)."
    )


class EdgeTamperConfig(StrictModel):
    """Camera tamper signs reported in camera_status.tamper."""

    enabled: bool = True
    check_every_s: float = Field(1.0, gt=0, le=60)
    hold_checks: int = Field(3, ge=1, le=100, description="Consecutive checks before a sign is raised or cleared.")
    dark_level: float = Field(20.0, ge=0, le=255, description="Mean brightness below this is too_dark.")
    covered_std: float = Field(6.0, ge=0, le=128, description="Brightness spread below this is covered.")
    focus_ratio: float = Field(0.25, gt=0, lt=1, description="Sharpness below this share of the reference.")
    moved_ratio: float = Field(0.5, gt=0, lt=1, description="Reference similarity below this is view_moved.")


class EdgeSnapshotsConfig(StrictModel):
    """Optional incident snapshots, kept on the edge only, with people and plates blurred."""

    enabled: bool = Field(False, description="No image is ever written unless this is true.")
    directory: Path = Path("data/snapshots")
    ttl_s: float = Field(7 * 24 * 3600, gt=0, description="Snapshots are deleted after this many seconds.")
    vehicle_lower_fraction: float = Field(
        0.4, ge=0, le=1, description="Lower share of each vehicle box blurred (plates; no plate detector)."
    )
    jpeg_quality: int = Field(80, ge=10, le=100)


class EdgeReferencePictureConfig(StrictModel):
    """One still picture of the view for the configuration editor, sent only on an admin's request."""

    enabled: bool = Field(False, description="No reference picture is ever taken or sent unless this is true.")
    samples: int = Field(25, ge=3, le=120, description="Frames sampled over the requested seconds for the median.")
    max_side: int = Field(1280, ge=160, le=4096, description="Longer side of the picture at most (pixels).")
    vehicle_lower_fraction: float = Field(
        0.4, ge=0, le=1, description="Lower share of each vehicle box still seen blurred (plates)."
    )


class EdgeConfig(StrictModel):
    device_id: Ident = "edge-01"
    outbox_path: Path = Path("data/outbox.sqlite")
    heartbeat_s: float = Field(10.0, gt=0, le=3600)
    resend_after_s: float = Field(20.0, gt=0, description="Re-publish events not committed after this.")
    max_inflight: int = Field(200, ge=1, le=10000)
    batch_size: int = Field(50, ge=1, le=1000)
    batch_publish: bool = Field(True, description="Publish several due events as one EventBatch message.")
    outbox_max_events: int = Field(
        100_000, ge=100, description="Per camera; when full: heartbeats dropped, crossings merged (never dropped)."
    )
    merge_interval_s: int = Field(900, ge=1, le=86400, description="Interval of merged crossing totals.")
    persist_config: bool = Field(True, description="Keep a pushed configuration across restarts.")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="Prometheus port (e.g. 9108); off if unset.")
    metrics_host: str = Field("127.0.0.1", description="Prometheus bind address (local only by default).")
    log_format: Literal["text", "json"] = "text"
    mqtt_reconnect_max_s: float = Field(30.0, ge=1, le=3600, description="Longest MQTT reconnect back-off.")
    sources: EdgeSourcesConfig = EdgeSourcesConfig()
    tamper: EdgeTamperConfig = EdgeTamperConfig()
    snapshots: EdgeSnapshotsConfig = EdgeSnapshotsConfig()
    reference_picture: EdgeReferencePictureConfig = EdgeReferencePictureConfig()
