"""``server``: the server's database, retention, ingest, notifications, log-in and forecasts."""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

from citywatch.config.base import Ident, StrictModel, class_list
from citywatch.contract import ClassName


class PCUWeights(StrictModel):
    """Passenger-car-unit factors per class (server: flows in PCU).

    Defaults follow the Vietnamese conversion table "hệ số quy đổi từ xe các loại ra xe con" of
    TCVN 4054:2005 (flat terrain): bicycle 0.2, motorcycle 0.3, car 1.0, 2-axle truck / bus < 25 seats
    2.0, truck with 3+ axles / large bus 2.5. A camera cannot count axles, so truck and bus take 2.5.
    Pedestrians are not vehicles (0). Override per city (e.g. with the table of TCVN 13592:2022).
    """

    car: float = Field(1.0, ge=0, le=20)
    truck: float = Field(2.5, ge=0, le=20)
    bus: float = Field(2.5, ge=0, le=20)
    motorcycle: float = Field(0.3, ge=0, le=20)
    bicycle: float = Field(0.2, ge=0, le=20)
    person: float = Field(0.0, ge=0, le=20)


class RetentionConfig(StrictModel):
    """Days each table keeps (None: forever). Rollups make raw events unnecessary for history."""

    events_days: float | None = Field(90, gt=0, description="Raw events (also the de-duplication horizon).")
    dead_letters_days: float | None = Field(90, gt=0)
    rollup_1m_days: float | None = Field(14, gt=0)
    rollup_15m_days: float | None = Field(400, gt=0)
    rollup_1h_days: float | None = Field(5 * 366, gt=0)
    rollup_1d_days: float | None = Field(None, gt=0)
    incidents_days: float | None = Field(
        365, gt=0, le=36600,
        description="Closed or resolved incidents and their audit trail (operator names: personal data), "
        "counted from their last change; open, unresolved incidents are always kept.",
    )  # fmt: skip
    interval_s: float = Field(3600, ge=10, description="How often the server prunes.")


class IngestConfig(StrictModel):
    """Server ingest tuning: batching, gap repair (replay requests), observation time."""

    batch_max: int = Field(2000, ge=1, le=100000, description="Messages per transaction at most.")
    batch_max_events: int = Field(
        5000, ge=1, le=1000000,
        description="Events per transaction at most (a message is never split): under a backlog of "
        "envelopes this bounds a transaction's commit delay, memory and row locks.",
    )  # fmt: skip
    linger_s: float = Field(0.1, ge=0, le=10, description="Wait this long to fill a batch.")
    gap_grace_s: float = Field(2.0, ge=0, le=3600, description="A seq gap this old is asked to be replayed.")
    replay_interval_s: float = Field(
        10.0, ge=0.1, le=86400, description="At most one replay request per camera per this."
    )
    heartbeat_s: float | None = Field(
        None, gt=0, le=3600, description="Edge heartbeat period for observed time (default: edge.heartbeat_s)."
    )
    max_future_s: float | None = Field(
        86400.0, gt=0, le=366 * 86400,
        description="An event whose time is further ahead of the server clock than this is a dead letter "
        "(timestamp_out_of_range): it cannot be real and would never be pruned. A day tolerates an edge that "
        "labels local time as UTC (at most 14 h off); None: no limit.",
    )  # fmt: skip
    retry_initial_s: float = Field(
        0.5, gt=0, le=60, description="First wait before retrying a batch after a transient database error."
    )
    retry_max_s: float = Field(10.0, gt=0, le=600, description="Longest wait between retries (doubling up to it).")
    stall_after_s: float = Field(
        30.0, gt=0, le=3600,
        description="Health: ingest is 'stalled' when a received message stays unacknowledged this long.",
    )  # fmt: skip
    dead_letters_warn_per_min: float = Field(
        60.0, ge=0, le=1e9, description="Health: 'degraded' above this many dead letters in the last minute."
    )
    db_timeout_s: float = Field(
        2.0, gt=0, le=60,
        description="Health: the database ping (a read of events) must answer within this, else 'degraded'.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _retry_bounds(self) -> IngestConfig:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError(
                f"server.ingest.retry_max_s ({self.retry_max_s}) is below retry_initial_s ({self.retry_initial_s})"
            )
        return self


class WebhookConfig(StrictModel):
    """An incident webhook: JSON POST signed with HMAC-SHA256 of ``<timestamp>.<body>``."""

    url: str = Field(pattern=r"^https?://")
    secret_env: str | None = Field(None, description="Environment variable holding the HMAC secret.")
    timeout_s: float = Field(5.0, gt=0, le=120)


class EmailConfig(StrictModel):
    """Incident e-mail through an SMTP relay; credentials from the environment only."""

    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    from_addr: str = "citywatch@localhost"
    to: list[str] = Field(default_factory=list, description="Recipients of new incidents.")
    escalate_to: list[str] = Field(default_factory=list, description="Added recipients of escalations.")
    starttls: bool = False
    ssl: bool = False
    username_env: str | None = None
    password_env: str | None = None
    timeout_s: float = Field(10.0, gt=0, le=120)


#: A web origin: scheme://host[:port], no path (what browsers send in the Origin header).
ORIGIN_PATTERN = r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(:\d{1,5})?"


class LoginThrottleConfig(StrictModel):
    """Failed authentications (log-ins and wrong API keys), counted in memory per server process."""

    max_failures: int = Field(5, ge=1, le=1000, description="Failures per client address before it must wait.")
    total_max_failures: int = Field(
        100, ge=1, le=100000,
        description="Failures from all addresses together before every log-in must wait (the API has no user "
        "names: a key is the account, so this is the per-account budget).",
    )  # fmt: skip
    window_s: float = Field(600, gt=0, le=86400, description="A failure counts for this long after the last one.")
    lockout_s: float = Field(1, gt=0, le=86400, description="The first wait; it doubles with every further failure.")
    max_lockout_s: float = Field(900, gt=0, le=86400, description="The longest wait.")


class ServerAuthConfig(StrictModel):
    """Browser sessions, cross-origin checks, log-in throttling and the proxy in front of the server."""

    session_ttl_s: float = Field(12 * 3600, ge=60, le=30 * 86400, description="A browser session ends after this.")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) besides the server's own that may send cookie-authenticated "
        "POST/PUT/PATCH/DELETE requests, e.g. the public name behind a reverse proxy.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For/-Proto are believed (uvicorn's "
        "forwarded_allow_ips). Set: open local mode is refused at startup.",
    )
    login_throttle: LoginThrottleConfig = LoginThrottleConfig()
    api_docs: bool = Field(
        True, description="Serve /docs (Swagger UI from this server's own files; /openapi.json is always served)."
    )

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if not re.fullmatch(ORIGIN_PATTERN, o)]
        if bad:
            raise ValueError(f"allowed_origins must be scheme://host[:port] without a path: {', '.join(bad)}")
        return [o.lower() for o in v]

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: list[str]) -> list[str]:
        import ipaddress

        for p in v:
            try:
                ipaddress.ip_network(p, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {p!r} is not an IP address or network") from None
        return v


class ServerIncidentsConfig(StrictModel):
    """Server side of incidents: notifications and escalation when nobody acknowledges."""

    webhooks: list[WebhookConfig] = Field(default_factory=list)
    email: EmailConfig | None = None
    min_severity: Literal["low", "medium", "high"] = Field("low", description="Notify incidents at least this severe.")
    types: list[str] | None = Field(None, description="Notify only these incident types (default: all).")
    escalate_after_s: float | None = Field(
        300.0, gt=0, description="Escalate an open incident nobody acknowledged after this (None: never)."
    )
    max_escalations: int = Field(
        2, ge=0, le=20, description="Escalate at most this many times (every escalate_after_s)."
    )
    check_interval_s: float = Field(2.0, gt=0, le=3600, description="How often escalations and retries are checked.")
    retries: int = Field(3, ge=0, le=20, description="Attempts per notification and channel beyond the first.")


class HolidaysConfig(StrictModel):
    """Public holidays of a site (python ``holidays`` package): forecasts treat them apart from weekdays."""

    country: str = Field("VN", pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 (VN includes Tết).")
    subdivision: str | None = Field(None, max_length=10, description="Province/state code, where it has its own.")
    extra_dates: list[date] = Field(
        default_factory=list, description="Local days treated as holidays too (festivals, bridge days)."
    )

    @model_validator(mode="after")
    def _known_country(self) -> HolidaysConfig:
        import holidays

        if self.country not in holidays.list_supported_countries():
            raise ValueError(f"country {self.country!r} is not known to the holidays package")
        subs = holidays.list_supported_countries()[self.country]
        if self.subdivision is not None and self.subdivision not in subs:
            raise ValueError(f"subdivision {self.subdivision!r} is not one of {self.country}'s ({', '.join(subs)})")
        return self


class ForecastsConfig(StrictModel):
    """Server forecasts per counting line and direction, refreshed on a schedule, and flow anomalies."""

    enabled: bool = Field(True, description="Refresh forecasts and watch for flow anomalies.")
    refresh_interval_s: float = Field(900.0, ge=60, le=86400, description="How often forecasts are refreshed.")
    horizon_15min_h: int = Field(6, ge=1, le=48, description="15-minute forecasts this many hours ahead.")
    horizon_hourly_h: int = Field(48, ge=1, le=168, description="Hourly forecasts this many hours ahead.")
    history_days: int = Field(
        400, ge=28, le=1830,
        description="Hourly rollup history given to the model (days): over a year, so the model sees last "
        "year's same week and holidays.",
    )
    history_days_15min: int = Field(
        84, ge=28, le=400, description="15-minute rollup history given to the model (days)."
    )
    min_history_days: int = Field(
        14, ge=1, le=365, description="Fewer observed days than this: no forecast (says so, never invents one)."
    )
    min_coverage: float = Field(
        0.5, gt=0, le=1, description="A bucket the camera observed less than this share of is missing data."
    )
    classes: list[ClassName] = Field(
        default_factory=lambda: class_list("car", "truck", "bus", "motorcycle", "bicycle"),
        description="Classes summed into the forecast flow.",
    )
    lanes: bool = Field(True, description="Forecast lanes' vehicles entered as well as lines.")
    fit_budget_s: float = Field(
        12.0, ge=0, le=3600,
        description="Seconds one refresh may spend refitting models (the rest predict from their newest model).",
    )
    keep_days: float = Field(90, gt=0, description="Past forecasts kept (forecast vs actual) this many days.")
    holidays: HolidaysConfig = HolidaysConfig()
    sites: dict[Ident, HolidaysConfig] = Field(
        default_factory=dict, description="Holidays per site id where they differ from the default."
    )
    anomaly_window_min: int = Field(
        60, ge=15, le=360, description="Flow anomalies: observed flow over this recent window is compared."
    )
    anomaly_close_after_min: int = Field(
        30, ge=15, le=360, description="A flow anomaly closes when the flow was typical for this long."
    )
    anomaly_severity: Literal["low", "medium", "high"] = "medium"

    @model_validator(mode="after")
    def _consistent(self) -> ForecastsConfig:
        if self.min_history_days > min(self.history_days, self.history_days_15min):
            raise ValueError("min_history_days must not exceed history_days or history_days_15min")
        if self.anomaly_window_min % 15 or self.anomaly_close_after_min % 15:
            raise ValueError("anomaly_window_min and anomaly_close_after_min must be whole quarter hours")
        return self


class PrivacyConfig(StrictModel):
    """What the server may show of a camera's view: the reference picture (the one image that leaves an
    edge, only on an admin's request; the edge must allow it too, ``edge.reference_picture.enabled``)."""

    reference_pictures: bool | list[Ident] = Field(
        False,
        description="Admins may request reference pictures: true for every site, or a list of the sites "
        "that allow it; false (default): none.",
    )
    operators_see_reference_picture: bool = Field(
        False, description="Operators and planners may see a picture an admin requested (else admins only)."
    )
    reference_picture_ttl_s: float = Field(
        900, ge=30, le=4 * 3600, description="The server keeps a picture in memory this long, never on disk."
    )

    def allows_reference(self, site: str) -> bool:
        rp = self.reference_pictures
        return rp if isinstance(rp, bool) else site in rp


class ServerConfig(StrictModel):
    database_url: str = "sqlite:///data/citywatch.sqlite"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    timezone: str = "Asia/Ho_Chi_Minh"
    client_id: str = Field("citywatch-server", pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    pcu: PCUWeights = PCUWeights()
    retention: RetentionConfig = RetentionConfig()
    ingest: IngestConfig = IngestConfig()
    auth: ServerAuthConfig = ServerAuthConfig()
    incidents: ServerIncidentsConfig = ServerIncidentsConfig()
    forecasts: ForecastsConfig = ForecastsConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    map_tiles_url: str | None = Field(
        None,
        max_length=500,
        pattern=r"^(https?://[^\s'\"]+|/[^\s'\"]*)\{z\}[^\s'\"]*$",
        description="Dashboard map tiles, e.g. https://tiles.example.vn/{z}/{x}/{y}.png (a local tile server; "
        "{s} becomes a). Unset: a plain schematic of the camera positions (works with no internet).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v
