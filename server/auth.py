"""Minimal role-based access: API keys from the environment, a signed session cookie for browsers.

Keys come from ``CITYWATCH_API_KEYS="role:key,role:key"`` (never from the repository). Without it the
server runs in open "local" mode (every request is admin) for the laptop demo, and says so loudly.
Roles: ``operator`` and ``planner`` read cameras, counts and events; ``admin`` may do everything.
Browsers' EventSource cannot send headers, hence ``POST /api/v1/session`` sets an HttpOnly cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, cast

from fastapi import HTTPException, Request, status

log = logging.getLogger(__name__)

Role = Literal["operator", "planner", "admin"]
ROLES: tuple[Role, ...] = ("operator", "planner", "admin")
READ_ROLES: tuple[Role, ...] = ("operator", "planner", "admin")
ENV_API_KEYS = "CITYWATCH_API_KEYS"
ENV_SESSION_SECRET = "CITYWATCH_SESSION_SECRET"
SESSION_COOKIE = "citywatch_session"
SESSION_TTL_S = 12 * 3600


@dataclass(frozen=True)
class Principal:
    role: Role
    via: Literal["open", "header", "cookie"]


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
        keys.append((cast(Role, role), key))
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
    at run time). Neither configured means open local mode."""

    def __init__(self, keys: list[tuple[Role, str]] | None, session_secret: bytes | None = None) -> None:
        self.keys = keys
        self._secret = session_secret or secrets.token_bytes(32)
        self._key_source: Callable[[], dict[str, str]] | None = None
        self._managed: dict[str, str] = {}
        self._managed_at = -1e9

    def attach_key_source(self, source: Callable[[], dict[str, str]]) -> None:
        """``source()`` returns ``{sha256 hex: role}`` of the active managed keys (the store's key table)."""
        self._key_source = source
        self._managed_at = -1e9

    def invalidate(self) -> None:
        self._managed_at = -1e9

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
    def from_spec(cls, spec: str | None) -> Auth:
        secret_env = os.environ.get(ENV_SESSION_SECRET)
        secret = secret_env.encode() if secret_env else None
        if spec is None or not spec.strip():
            log.warning(
                "!!! %s is not set: the server runs in OPEN LOCAL MODE, every request is treated as admin. "
                "Set %s=role:key,... before exposing it to a network. !!!",
                ENV_API_KEYS,
                ENV_API_KEYS,
            )
            return cls(None, secret)
        return cls(parse_api_keys(spec), secret)

    @property
    def open(self) -> bool:
        return self.keys is None and not self.managed()

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
                found = cast(Role, managed_role)
        return found

    # Session tokens: role.expiry.key-fingerprint.signature. Removing the key revokes its sessions.
    def make_session(self, role: Role, key: str, ttl_s: int = SESSION_TTL_S) -> str:
        body = f"{role}.{int(time.time()) + ttl_s}.{_fingerprint(key)}"
        sig = hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()
        return f"{body}.{sig}"

    def check_session(self, token: str) -> Role | None:
        parts = token.split(".")
        if len(parts) != 4:
            return None
        role, expiry, fp, sig = parts
        body = f"{role}.{expiry}.{fp}"
        good = hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sig.encode(), good.encode()):
            return None
        if not expiry.isdigit() or int(expiry) < time.time():
            return None
        for r, k in self.keys or []:
            if r == role and hmac.compare_digest(_fingerprint(k), fp):
                return r
        for h, r in self.managed().items():  # _fingerprint(key) is the first 16 hex of its hash
            if r == role and hmac.compare_digest(h[:16], fp):
                return cast(Role, r)
        return None

    def authenticate(self, request: Request) -> Principal | None:
        if self.open:
            # Open local mode is for a laptop: it serves this machine only, whatever address is bound.
            if not _is_loopback(request):
                client = request.client.host if request.client else "?"
                log.warning("refused %s: open local mode (no API keys) serves loopback clients only", client)
                return None
            return Principal("admin", "open")
        header = request.headers.get("authorization", "")
        key = None
        if header[:7].lower() == "bearer ":
            key = header[7:].strip()
        key = key or request.headers.get("x-api-key")
        if key:
            role = self.role_for_key(key)
            return Principal(role, "header") if role else None
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            role = self.check_session(token)
            return Principal(role, "cookie") if role else None
        return None


def get_auth(request: Request) -> Auth:
    return cast(Auth, request.app.state.auth)


def require_role(*roles: Role) -> Callable[[Request], Principal]:
    """Dependency: 401 without valid credentials, 403 when the role is not allowed (admin always is)."""
    allowed = set(roles) | {"admin"}

    def dependency(request: Request) -> Principal:
        principal = get_auth(request).authenticate(request)
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
