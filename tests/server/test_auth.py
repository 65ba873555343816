"""server.auth on its own: keys, managed keys, signed sessions, open local mode, throttling, same-origin
checks and role checks, each on a real Starlette request (the end-to-end paths are in
test_server_auth_hardening.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pytest
from fastapi import HTTPException
from starlette.applications import Starlette
from starlette.requests import Request

from citywatch.config import ServerAuthConfig
from server.auth import (
    SESSION_COOKIE,
    Auth,
    Principal,
    check_same_origin,
    hash_key,
    is_loopback_host,
    new_key,
    open_mode_problem,
    parse_api_keys,
    require_role,
)

ADMIN, OPERATOR = "admin-key-123", "operator-key-123"


def request(
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
    client: str = "192.0.2.7",
    auth: Auth | None = None,
) -> Request:
    app = Starlette()
    app.state.auth = auth
    return Request({
        "type": "http", "method": method, "path": "/api/v1/x", "query_string": b"", "scheme": "http",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": (client, 40000), "server": ("citywatch.example", 80), "app": app,
    })


def keyed(**settings: object) -> Auth:
    return Auth(parse_api_keys(f"admin:{ADMIN},operator:{OPERATOR}"), b"s" * 32, ServerAuthConfig(**settings))


def test_api_keys_parse_by_role_and_a_bad_entry_is_named_by_its_number() -> None:
    assert parse_api_keys(" admin:k-123456 , ,planner:p-123456") == [("admin", "k-123456"), ("planner", "p-123456")]
    with pytest.raises(ValueError, match="entry 2 must be role:key"):
        parse_api_keys("admin:k-123456,guest:g-123456")
    with pytest.raises(ValueError, match="entry 1: the key must be at least 8 characters"):
        parse_api_keys("admin:short")


def test_a_key_gives_its_role_and_a_wrong_key_none() -> None:
    auth = keyed()
    assert auth.role_for_key(ADMIN) == "admin" and auth.role_for_key(OPERATOR) == "operator"
    assert auth.role_for_key("admin-key-124") is None and auth.role_for_key("") is None


def test_managed_keys_are_found_by_hash_and_the_last_known_survive_a_database_error() -> None:
    key = new_key("planner")
    assert key.startswith("cw_planner_")
    table = {hash_key(key): "planner"}
    calls = []

    def source() -> dict[str, str]:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("database down")
        return dict(table)

    auth = Auth(None, b"s" * 32)
    auth.attach_key_source(source)
    assert not auth.open and auth.role_for_key(key) == "planner"
    auth.invalidate()  # read again: the source fails, the keys read before still count
    assert auth.role_for_key(key) == "planner" and len(calls) == 2


def test_a_session_names_its_role_until_it_expires_is_tampered_with_or_its_key_is_gone() -> None:
    auth = keyed()
    token = auth.make_session("operator", OPERATOR)
    assert auth.check_session(token) == "operator"
    body, sig = token.rsplit(".", 1)
    assert auth.check_session(body.replace("operator", "admin", 1) + "." + sig) is None  # signature covers role
    assert auth.check_session(auth.make_session("operator", OPERATOR, ttl_s=-1)) is None
    other_secret = Auth(parse_api_keys(f"operator:{OPERATOR}"), b"t" * 32)
    assert other_secret.check_session(token) is None
    key_removed = Auth(parse_api_keys(f"admin:{ADMIN}"), b"s" * 32)
    assert key_removed.check_session(token) is None


def test_log_out_revokes_the_session_and_tells_the_store_until_when() -> None:
    auth = keyed()
    revoked: dict[str, datetime] = {}
    auth.attach_session_store(lambda sid: sid in revoked, lambda sid, until: revoked.__setitem__(sid, until))
    token = auth.make_session("admin", ADMIN, ttl_s=600)
    assert auth.end_session(token) and auth.check_session(token) is None
    ((sid, until),) = revoked.items()
    assert sid == token.split(".")[3] and until.tzinfo is not None
    assert not auth.end_session("not.a.signed.session.token")


def test_a_session_that_cannot_be_checked_against_revocations_is_refused() -> None:
    auth = keyed()

    def broken(_sid: str) -> bool:
        raise RuntimeError("database down")

    auth.attach_session_store(broken, lambda sid, until: None)
    assert auth.check_session(auth.make_session("admin", ADMIN)) is None


def test_keys_come_from_the_bearer_header_x_api_key_or_the_session_cookie() -> None:
    auth = keyed()
    assert auth.authenticate(request(headers=[("Authorization", f"Bearer {ADMIN}")])) == Principal("admin", "header")
    assert auth.authenticate(request(headers=[("X-API-Key", OPERATOR)])) == Principal("operator", "header")
    cookie = f"{SESSION_COOKIE}={auth.make_session('operator', OPERATOR)}"
    assert auth.authenticate(request(headers=[("Cookie", cookie)])) == Principal("operator", "cookie")
    assert auth.authenticate(request()) is None
    assert auth.authenticate(request(headers=[("X-API-Key", "wrong-key-123")])) is None


def test_open_mode_serves_loopback_clients_only_and_never_a_relayed_request() -> None:
    auth = Auth(None)
    assert auth.open and not auth.locked
    assert auth.authenticate(request(client="127.0.0.1")) == Principal("admin", "open")
    assert auth.authenticate(request(client="::1")) == Principal("admin", "open")
    assert auth.authenticate(request(client="192.0.2.7")) is None
    assert auth.authenticate(request(client="127.0.0.1", headers=[("X-Forwarded-For", "203.0.113.9")])) is None
    auth.open_allowed = False
    assert not auth.open and auth.locked


def test_open_mode_is_refused_behind_a_proxy_or_on_a_network_address() -> None:
    assert open_mode_problem(ServerAuthConfig(), "127.0.0.1", []) is None
    assert "trusted_proxies" in (open_mode_problem(ServerAuthConfig(trusted_proxies=["10.0.0.1"]), "::1", ["10.0.0.1"])
                                 or "")
    assert "FORWARDED_ALLOW_IPS" in (open_mode_problem(ServerAuthConfig(), "127.0.0.1", ["10.0.0.1"]) or "")
    assert "not a loopback address" in (open_mode_problem(ServerAuthConfig(), "0.0.0.0", []) or "")
    assert is_loopback_host("localhost") and is_loopback_host("[::1]") and not is_loopback_host("example.org")


def test_wrong_keys_from_one_address_make_it_wait_with_retry_after_even_for_the_right_key() -> None:
    auth = keyed(login_throttle={"max_failures": 3, "lockout_s": 60, "max_lockout_s": 60})
    for _ in range(3):
        assert auth.check_key(request(), "wrong-key-123") is None
    with pytest.raises(HTTPException) as refused:
        auth.check_key(request(), ADMIN)
    assert refused.value.status_code == 429 and refused.value.headers == {"Retry-After": "60"}
    assert auth.check_key(request(client="192.0.2.8"), ADMIN) == "admin"  # another address is not held up


@pytest.mark.parametrize(
    ("headers", "allowed", "ok"),
    [
        ([("Origin", "http://citywatch.example")], [], True),
        ([("Referer", "http://citywatch.example/operator")], [], True),  # no Origin: the Referer's origin
        ([("Origin", "https://ops.city.example")], ["https://ops.city.example"], True),
        ([("Origin", "https://evil.example")], [], False),
        ([("Origin", "null")], [], False),
        ([], [], False),
    ],
)
def test_a_change_with_a_session_cookie_must_come_from_this_server_or_an_allowed_origin(
    headers: list[tuple[str, str]], allowed: list[str], ok: bool
) -> None:
    req = request("POST", [("Host", "citywatch.example"), *headers])
    if ok:
        check_same_origin(req, allowed)
    else:
        with pytest.raises(HTTPException) as refused:
            check_same_origin(req, allowed)
        assert refused.value.status_code == 403 and "cross-site request refused" in str(refused.value.detail)
    check_same_origin(request("GET", [("Origin", "https://evil.example")]), [])  # reading changes nothing


def test_a_role_check_is_401_without_credentials_403_for_another_role_and_admin_may_always() -> None:
    auth = keyed()
    planner_only = require_role("planner")
    with pytest.raises(HTTPException) as missing:
        planner_only(request(auth=auth))
    assert missing.value.status_code == 401 and missing.value.headers == {"WWW-Authenticate": "Bearer"}
    with pytest.raises(HTTPException) as forbidden:
        planner_only(request(headers=[("X-API-Key", OPERATOR)], auth=auth))
    assert forbidden.value.status_code == 403 and "needs admin or planner" in str(forbidden.value.detail)
    assert planner_only(request(headers=[("X-API-Key", ADMIN)], auth=auth)) == Principal("admin", "header")


def test_a_cookie_authenticated_change_from_elsewhere_is_refused_by_the_role_check_too() -> None:
    auth = keyed()
    cookie = ("Cookie", f"{SESSION_COOKIE}={auth.make_session('admin', ADMIN)}")
    with pytest.raises(HTTPException) as refused:
        require_role("admin")(request("DELETE", [cookie, ("Host", "citywatch.example"),
                                                 ("Origin", "https://evil.example")], auth=auth))
    assert refused.value.status_code == 403
    assert require_role("admin")(request("GET", [cookie], auth=auth)) == Principal("admin", "cookie")
