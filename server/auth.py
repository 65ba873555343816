"""Minimal role-based access: API keys from the environment, a signed session cookie for browsers.

Keys come from ``CITYWATCH_API_KEYS="role:key,role:key"`` (never from the repository). Without it the
server runs in open "local" mode (every request is admin) for the laptop demo, and says so loudly.
Roles: ``operator`` and ``planner`` read cameras, counts and events; ``admin`` may do everything.
Browsers' EventSource cannot send headers, hence ``POST /api/v1/session`` sets an HttpOnly cookie; its
token names a session id that log-out revokes (in the database, so every server honours it). A
cookie-authenticated request that changes something must come from the server's own origin (or one in
``server.auth.allowed_origins``). Failed keys are throttled per client address (``server.auth.login_throttle``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal, cast
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status

from citywatch.config import ServerAuthConfig
from server.throttle import Throttle

log = logging.getLogger(__name__)

Role = Literal["operator", "planner", "admin"]
ROLES: tuple[Role, ...] = ("operator", "planner", "admin")
READ_ROLES: tuple[Role, ...] = ("operator", "planner", "admin")
ENV_API_KEYS = "CITYWATCH_API_KEYS"
ENV_SESSION_SECRET = "CITYWATCH_SESSION_SECRET"
SESSION_COOKIE = "citywatch_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")

#: The one description of open local mode: logged at startup, and word for word in README.md and
#: server/README.md (a test keeps the three the same).
OPEN_MODE_SENTENCE = (
    "Open local mode (no API key configured) treats every request from a loopback address as admin, "
    "including one a reverse proxy on the same host relays without a forwarding header, so the server "
    "refuses to start in it when server.auth.trusted_proxies is set or server.host is not a loopback "
    "address, and refuses every request that carries X-Forwarded-For, Forwarded or X-Real-IP."
)


class OpenModeRefused(RuntimeError):
    """Open local mode was asked for where it would not be local."""


def is_loopback_host(host: str) -> bool:
    """``host`` (a bind address or name) can only be reached from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def open_mode_problem(settings: ServerAuthConfig, bind_host: str, proxies: list[str]) -> str | None:
    """Why open local mode must not run here (None: it may), naming what to set."""
    if proxies:
        what = "server.auth.trusted_proxies" if settings.trusted_proxies else "FORWARDED_ALLOW_IPS"
        return (
            f"open local mode refused: {what} is set (a reverse proxy relays requests), and every request "
            f"through a proxy on this host would be admin. Set {ENV_API_KEYS}=role:key,... (or add a key with "
            "python -m server.keys add) or remove the proxy setting."
        )
    if not is_loopback_host(bind_host):
        return (
            f"open local mode refused: server.host is {bind_host!r}, not a loopback address. Set "
            f"{ENV_API_KEYS}=role:key,... (or add a key with python -m server.keys add) or bind 127.0.0.1."
        )
    return None


@dataclass(frozen=True)
class Principal:
    role: Role
    via: Literal["open", "header", "cookie"]
    #: Which key: the first 16 hex of its SHA-256 (a managed key's hash starts with it); None in open mode.
    key_id: str | None = field(default=None, compare=False)


def parse_api_keys(spec: str) -> list[tuple[Role, str]]:
    """``"admin:k1,operator:k2"`` -> ``[("admin", "k1"), ("operator", "k2")]``; ValueError names the entry."""
    keys: list[tuple[Role, str]] = []
    for i, entry in enumerate(spec.split(",")):
        entry = entry.strip()
        if not entry:
            continue
        role, sep, key = entry.partition(":")
        role, key = role.strip(), key.strip()
        if not sep or role not in ROLES:
            raise ValueError(f"{ENV_API_KEYS} entry {i + 1} must be role:key with role one of {', '.join(ROLES)}")
        if len(key) < 8:
            raise ValueError(f"{ENV_API_KEYS} entry {i + 1}: the key must be at least 8 characters")
        keys.append((role, key))  # narrowed to a Role by the check above
    return keys


def _is_loopback(request: Request) -> bool:
    """The client connected over loopback (or through the in-process test transport, never a network)."""
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        # Starlette's TestClient: uvicorn puts the socket's address in scope["server"], never this name.
        return host == "testclient" and (request.scope.get("server") or ("",))[0] == "testserver"


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def hash_key(key: str) -> str:
    """What the key table stores: SHA-256 hex (keys are 256-bit random tokens, so no salt is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(role: Role) -> str:
    return f"cw_{role}_{secrets.token_urlsafe(32)}"


#: How long managed keys read from the database are cached (a revoked key stops working within this).
KEY_CACHE_S = 2.0


class Auth:
    """Who may call what: keys from the environment plus managed keys (hashed, in the database, rotated
    at run time). Neither configured means open local mode (unless ``open_allowed`` is off: then no one)."""

    def __init__(
        self,
        keys: list[tuple[Role, str]] | None,
        session_secret: bytes | None = None,
        settings: ServerAuthConfig | None = None,
    ) -> None:
        self.keys = keys
        self.settings = settings or ServerAuthConfig()
        self.throttle = Throttle(self.settings.login_throttle)
        self.open_allowed = True
        self._secret = session_secret or secrets.token_bytes(32)
        self._key_source: Callable[[], dict[str, str]] | None = None
        self._managed: dict[str, str] = {}
        self._managed_at = -1e9
        self._is_revoked: Callable[[str], bool] | None = None
        self._revoke_sink: Callable[[str, datetime], None] | None = None
        self._revoked: set[str] = set()  # ended here (also when the database could not record it)

    def attach_key_source(self, source: Callable[[], dict[str, str]]) -> None:
        """``source()`` returns ``{sha256 hex: role}`` of the active managed keys (the store's key table)."""
        self._key_source = source
        self._managed_at = -1e9

    def attach_session_store(self, is_revoked: Callable[[str], bool], revoke: Callable[[str, datetime], None]) -> None:
        """``is_revoked(id)`` and ``revoke(id, expires_at)``: the store's table, read on every cookie
        request, so that a log-out on one server ends the session on every server at once."""
        self._is_revoked, self._revoke_sink = is_revoked, revoke

    def invalidate(self) -> None:
        self._managed_at = -1e9

    def session_revoked(self, session_id: str) -> bool:
        if session_id in self._revoked:
            return True
        if self._is_revoked is None:
            return False
        try:
            return self._is_revoked(session_id)
        except Exception:  # noqa: BLE001 - fail closed: a session that cannot be checked is not accepted
            log.exception("checking a session against the revocations failed")
            return True

    def managed(self) -> dict[str, str]:
        if self._key_source is None:
            return {}
        now = time.monotonic()
        if now - self._managed_at > KEY_CACHE_S:
            try:
                self._managed = self._key_source()
            except Exception:  # noqa: BLE001 - keep the last known keys while the database is down
                log.exception("reading managed API keys failed")
            self._managed_at = now
        return self._managed

    @classmethod
    def from_spec(cls, spec: str | None, settings: ServerAuthConfig | None = None) -> Auth:
        secret_env = os.environ.get(ENV_SESSION_SECRET)
        secret = secret_env.encode() if secret_env else None
        if spec is None or not spec.strip():
            return cls(None, secret, settings)
        return cls(parse_api_keys(spec), secret, settings)

    @property
    def open(self) -> bool:
        return self.open_allowed and self.keys is None and not self.managed()

    @property
    def locked(self) -> bool:
        """No key at all and open mode not allowed here: every request but /health is refused."""
        return not self.open_allowed and self.keys is None and not self.managed()

    def announce_open_mode(self) -> None:
        log.warning("!!! %s is not set and no managed key exists. %s !!!", ENV_API_KEYS, OPEN_MODE_SENTENCE)

    def role_for_key(self, key: str) -> Role | None:
        """Constant-time comparison against every key (no early exit that would leak which matched);
        managed keys are looked up by their hash."""
        found: Role | None = None
        given = key.encode()
        for role, k in self.keys or []:
            if hmac.compare_digest(given, k.encode()) and found is None:
                found = role
        if found is None:
            managed_role = self.managed().get(hash_key(key))
            if managed_role in ROLES:
                found = managed_role
        return found

    def env_key_label(self, key: str) -> str | None:
        """Which entry of ``CITYWATCH_API_KEYS`` ``key`` is (those keys have no name): what the audit trail
        records for a machine client that names nobody. None for any other key."""
        given, found = key.encode(), None
        for i, (_, k) in enumerate(self.keys or []):
            if hmac.compare_digest(given, k.encode()) and found is None:
                found = f"API key {i + 1} of {ENV_API_KEYS}"
        return found

    # Session tokens: role.expiry.key-fingerprint.session-id.signature. Removing the key revokes its
    # sessions; log-out revokes the session id; the expiry is checked on every request.
    @property
    def session_ttl_s(self) -> int:
        return int(self.settings.session_ttl_s)

    def make_session(self, role: Role, key: str, ttl_s: int | None = None) -> str:
        expiry = int(time.time()) + (self.session_ttl_s if ttl_s is None else ttl_s)
        body = f"{role}.{expiry}.{_fingerprint(key)}.{secrets.token_hex(16)}"
        sig = hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()
        return f"{body}.{sig}"

    def _verified(self, token: str) -> tuple[str, str, str, str] | None:
        """``(role, expiry, fingerprint, session id)`` of a token signed here and not expired."""
        parts = token.split(".")
        if len(parts) != 5:
            return None
        role, expiry, fp, sid, sig = parts
        good = hmac.new(self._secret, f"{role}.{expiry}.{fp}.{sid}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sig.encode(), good.encode()):
            return None
        if not expiry.isdigit() or int(expiry) <= time.time():
            return None
        return role, expiry, fp, sid

    def end_session(self, token: str) -> bool:
        """Revoke the session ``token`` names (log-out) until it would have expired anyway."""
        found = self._verified(token)
        if found is None:
            return False
        _, expiry, _, sid = found
        self._revoked.add(sid)
        if self._revoke_sink is not None:
            self._revoke_sink(sid, datetime.fromtimestamp(int(expiry), tz=timezone.utc))
        return True

    def check_session(self, token: str) -> Role | None:
        found = self._verified(token)
        if found is None:
            return None
        role, _, fp, sid = found
        if self.session_revoked(sid):
            return None
        for r, k in self.keys or []:
            if r == role and hmac.compare_digest(_fingerprint(k), fp):
                return r
        for h, managed_role in self.managed().items():  # _fingerprint(key) is the first 16 hex of its hash
            if managed_role == role and managed_role in ROLES and hmac.compare_digest(h[:16], fp):
                return managed_role
        return None

    def check_key(self, request: Request, key: str) -> Role | None:
        """``key``'s role, throttled: a client address (or everyone) past its failures gets a 429."""
        address = client_address(request)
        wait = self.throttle.retry_after(address)
        if wait > 0:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=f"too many failed log-ins or API keys: try again in {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        role = self.role_for_key(key)
        if role is None:
            self.throttle.failure(address)
            log.warning("wrong API key from %s", address)
        else:
            self.throttle.success(address)
        return role

    def authenticate(self, request: Request) -> Principal | None:
        if self.open:
            # Open local mode is for a laptop: it serves this machine only, whatever address is bound.
            if not _is_loopback(request):
                client = request.client.host if request.client else "?"
                log.warning("refused %s: open local mode (no API keys) serves loopback clients only", client)
                return None
            relayed = next((h for h in FORWARDING_HEADERS if h in request.headers), None)
            if relayed is not None:
                # A proxy that says so relays someone else; one that adds nothing (nginx's default) cannot
                # be told from a local client: hence the startup refusal and OPEN_MODE_SENTENCE.
                log.warning("refused a request relayed by a proxy (%s): open local mode serves this host only", relayed)
                return None
            return Principal("admin", "open")
        key = presented_key(request)
        if key:
            role = self.check_key(request, key)
            return Principal(role, "header", _fingerprint(key)) if role else None
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            role = self.check_session(token)
            verified = self._verified(token) if role else None
            return Principal(role, "cookie", verified[2] if verified else None) if role else None
        return None


def presented_key(request: Request) -> str | None:
    """The API key a request carries (``Authorization: Bearer`` or ``X-API-Key``); None without one."""
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header[:7].lower() == "bearer " else None
    return key or request.headers.get("x-api-key") or None


def client_address(request: Request) -> str:
    """The client's address (behind a trusted proxy, uvicorn has put X-Forwarded-For's here)."""
    return request.client.host if request.client else "?"


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def check_same_origin(request: Request, allowed: list[str]) -> None:
    """403 unless a cookie-authenticated request that changes something comes from this server's own
    origin or an allowed one: Origin, or Referer when a browser sends no Origin. Neither: refused."""
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    source = origin if origin is not None else _origin_of(request.headers.get("referer", ""))
    host = request.headers.get("host", "").lower()
    same = bool(host) and urlsplit(source).netloc.lower() == host
    if source and source != "null" and (same or source.lower() in allowed):
        return
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        detail=f"cross-site request refused: a {request.method} with a session cookie must come from this "
        f"server's own page (Origin {source or 'missing'!r}, expected {host!r} or server.auth.allowed_origins); "
        "scripts and tools send the API key in the Authorization header instead",
    )


def get_auth(request: Request) -> Auth:
    return cast(Auth, request.app.state.auth)


def require_role(*roles: Role) -> Callable[[Request], Principal]:
    """Dependency: 401 without valid credentials, 403 when the role is not allowed (admin always is)."""
    allowed = set(roles) | {"admin"}

    def dependency(request: Request) -> Principal:
        auth = get_auth(request)
        principal = auth.authenticate(request)
        if principal is not None and principal.via == "cookie":
            check_same_origin(request, auth.settings.allowed_origins)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="missing or invalid API key (Authorization: Bearer <key>, X-API-Key, or a session)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if principal.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"role {principal.role!r} may not do this (needs {' or '.join(sorted(allowed))})",
            )
        return principal

    return dependency
