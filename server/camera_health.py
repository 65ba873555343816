"""One health rule for every camera, so the map, the table and the panel can never disagree.

A camera is only ``ok`` when someone has heard from it recently and what it says is fine: the status
has an age, and once that age passes the limit the camera is ``stale`` whatever it said last. The
levels, worst first: ``down`` (the edge said goodbye), ``stale`` (online, but not heard from),
``unknown`` (never reported), ``degraded`` (source not ok, tamper signs, processing far below the
frames offered, a full outbox), ``alert`` (sensing fine, but incidents are open on it), ``ok``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from citywatch.config import CitywatchConfig

Level = Literal["ok", "alert", "degraded", "unknown", "stale", "down"]

#: Processing below this share of the frames the source offers means the camera is falling behind.
MIN_FPS_RATIO = 0.25
#: Events waiting on the edge box above this: the box cannot deliver (broker or server unreachable).
MAX_OUTBOX = 500


@dataclass(frozen=True)
class Health:
    """A camera's health level, why (stable reason codes the page translates) and the status's age."""

    level: Level
    reasons: list[str] = field(default_factory=list)
    age_s: float | None = None


def stale_after_s(config: CitywatchConfig) -> float:
    """How long a status stays believable: three heartbeats, at least a minute."""
    return max(60.0, 3 * config.edge.heartbeat_s)


def _number(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) else None


def assess(
    state: str | None,
    last_seen: datetime | None,
    status: dict[str, Any] | None,
    now: datetime,
    *,
    stale_after: float,
    open_incidents: int = 0,
) -> Health:
    """The rule itself: ``state`` is the edge's online/offline, ``status`` its last heartbeat."""
    age = (now - last_seen).total_seconds() if last_seen else None
    if state == "offline":
        return Health("down", ["offline"], age)
    if state != "online" or age is None:
        return Health("unknown", ["never_reported"], age)
    if age > stale_after:
        return Health("stale", ["status_too_old"], age)
    st = status or {}
    reasons: list[str] = []
    if st.get("source_state") not in (None, "ok"):
        reasons.append(f"source_{st.get('source_state')}")
    for sign in st.get("tamper") or []:
        reasons.append(f"tamper_{sign}")
    fps_in, fps_done = _number(st.get("fps_in")), _number(st.get("fps_processed"))
    if fps_in is not None and fps_done is not None and fps_in > 0 and fps_done < MIN_FPS_RATIO * fps_in:
        reasons.append("fps_low")
    outbox = _number(st.get("outbox_depth"))
    if outbox is not None and outbox > MAX_OUTBOX:
        reasons.append("outbox_full")
    if reasons:
        return Health("degraded", reasons, age)
    if open_incidents > 0:
        return Health("alert", ["open_incidents"], age)
    return Health("ok", [], age)


class CameraRows(Protocol):
    def list_cameras(self) -> list[dict[str, Any]]: ...


def sensing_health(store: CameraRows, config: CitywatchConfig, now: datetime) -> dict[str, Level]:
    """Each known camera's level by the rule, leaving open incidents out: whether its data can be
    trusted (the flow-anomaly watch must not stop judging a camera because of its own alerts)."""
    limit = stale_after_s(config)
    return {
        r["camera_id"]: assess(r["state"], r["last_seen"], r["last_status"], now, stale_after=limit).level
        for r in store.list_cameras()
    }
