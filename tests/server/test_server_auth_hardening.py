"""Sessions, log-in throttling, cross-origin checks, open local mode and incident retention: what an
attacker with a browser, a copied cookie or a password list must not get, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_testkit import make_config

from citywatch.contract import Incident
from server.app import create_app
from server.auth import OPEN_MODE_SENTENCE, SESSION_COOKIE, OpenModeRefused
from server.storage.retention import Retention
from server.storage.store import Store

REPO = Path(__file__).resolve().parents[2]
KEYS = "admin:admin-key-123,operator:operator-key-1"
ADMIN = {"X-API-Key": "admin-key-123"}
SAME = {"Origin": "http://testserver"}
EVIL = {"Origin": "https://evil.example"}
INCIDENT = "1b4e28ba-2fa1-11d2-883f-0016d3cc427e"


def _app(store: Store, api_keys: str = KEYS, **server: Any) -> Any:
    config = make_config(run_id="auth", database_url=store.url, server={"database_url": store.url, **server})
    return create_app(config, ingest=False, store=store, api_keys=api_keys)


def _login(c: TestClient, key: str = "admin-key-123") -> str:
    r = c.post("/api/v1/session", json={"key": key})
    assert r.status_code == 200, r.text
    return c.cookies[SESSION_COOKIE]


# Every route family: reads, admin reads, and changes (POST /keys is the one that mints credentials).
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/cameras", None),
    ("GET", "/api/v1/cameras/cam-1", None),
    ("GET", "/api/v1/counts", None),
    ("GET", "/api/v1/flow", None),
    ("GET", "/api/v1/coverage", None),
    ("GET", "/api/v1/events", None),
    ("GET", "/api/v1/incidents", None),
    ("GET", "/api/v1/export/incidents", None),
    ("GET", "/api/v1/export/flow.csv", None),
    ("GET", "/api/v1/ui-config", None),
    ("GET", "/api/v1/session", None),
    ("GET", "/api/v1/dead-letters", None),
    ("GET", "/api/v1/keys", None),
    ("POST", "/api/v1/keys", {"role": "admin", "name": "stolen"}),
    ("DELETE", "/api/v1/keys/1", None),
    ("POST", f"/api/v1/incidents/{INCIDENT}/ack", {}),
    ("PUT", "/api/v1/cameras/cam-1/config", {"id": "cam-1", "source": "file:///dev/null"}),
]


def test_logout_revokes_the_session_on_every_route_and_every_server(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYWATCH_SESSION_SECRET", "shared-secret-of-two-servers")
    with TestClient(_app(store)) as browser, TestClient(_app(store)) as other_server:
        token = _login(browser)
        r = browser.post("/api/v1/keys", json={"role": "operator", "name": "before"}, headers=SAME)
        assert r.status_code == 201, r.text  # the session works, on the route that mints keys too
        other_server.cookies.set(SESSION_COOKIE, token)
        assert other_server.get("/api/v1/session").status_code == 200

        assert browser.delete("/api/v1/session", headers=SAME).status_code == 204
        for c in (browser, other_server):  # the copied cookie, here and on a second server (same database)
            c.cookies.set(SESSION_COOKIE, token)
            for method, path, body in ROUTES:
                r = c.request(method, path, json=body, headers=SAME)
                assert r.status_code == 401, (method, path, r.status_code, r.text[:200])
        assert browser.get("/api/v1/keys", headers=ADMIN).status_code == 200  # keys themselves still work
        assert token not in browser.get("/api/v1/session", headers=ADMIN).text


def test_an_expired_session_is_refused(store: Store) -> None:
    with TestClient(_app(store, auth={"session_ttl_s": 60})) as c:
        r = c.post("/api/v1/session", json={"key": "operator-key-1"})
        assert "max-age=60" in r.headers["set-cookie"].lower()
        expired = c.app.state.auth.make_session("operator", "operator-key-1", ttl_s=-1)  # type: ignore[attr-defined]
        c.cookies.set(SESSION_COOKIE, expired)
        assert c.get("/api/v1/cameras").status_code == 401
        c.cookies.set(SESSION_COOKIE, r.cookies[SESSION_COOKIE])
        assert c.get("/api/v1/cameras").status_code == 200


def test_retention_forgets_revocations_only_once_the_session_has_expired(store: Store) -> None:
    now = datetime.now(timezone.utc)
    store.sessions.revoke_session("a" * 32, now - timedelta(seconds=1))
    store.sessions.revoke_session("b" * 32, now + timedelta(hours=1))
    assert store.sessions.prune_revoked_sessions() == 1
    assert not store.sessions.is_session_revoked("a" * 32) and store.sessions.is_session_revoked("b" * 32)


THROTTLE = {"max_failures": 5, "total_max_failures": 1000, "window_s": 600, "lockout_s": 0.5, "max_lockout_s": 1}


def test_log_in_is_throttled_per_address_with_retry_after_and_works_after_the_lockout(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    app = _app(store, auth={"login_throttle": THROTTLE})
    try:
        with (
            TestClient(app, client=("198.51.100.7", 1234)) as attacker,
            TestClient(app, client=("198.51.100.8", 1234)) as colleague,
        ):
            t0 = time.monotonic()
            codes = Counter()
            for i in range(300):
                r = attacker.post("/api/v1/session", json={"key": f"guess-{i:05d}"})
                codes[r.status_code] += 1
                if r.status_code == 429:
                    assert int(r.headers["retry-after"]) >= 1 and "try again" in r.text
            took = time.monotonic() - t0
            # Within 1 s of lockouts (0.5 s, then 1 s) only a handful of guesses are even checked.
            assert codes[401] <= 5 + int(took) + 2 and codes[429] >= 300 - codes[401], (codes, took)
            # A wrong key in the header counts the same; the right one waits out the lockout too.
            assert attacker.get("/api/v1/cameras", headers={"X-API-Key": "guess-x"}).status_code == 429
            assert attacker.post("/api/v1/session", json={"key": "admin-key-123"}).status_code == 429
            assert colleague.post("/api/v1/session", json={"key": "admin-key-123"}).status_code == 200
            time.sleep(1.1)
            assert attacker.post("/api/v1/session", json={"key": "admin-key-123"}).status_code == 200
    finally:
        store.close()


def test_failures_from_all_addresses_together_are_throttled_too(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    app = _app(store, auth={"login_throttle": {**THROTTLE, "total_max_failures": 10}})
    try:
        for i in range(10):  # ten addresses, one guess each: no address reaches its own limit
            with TestClient(app, client=(f"203.0.113.{i}", 1)) as c:
                assert c.post("/api/v1/session", json={"key": f"guess-{i:05d}"}).status_code == 401
        with TestClient(app, client=("203.0.113.99", 1)) as c:
            r = c.post("/api/v1/session", json={"key": "admin-key-123"})
            assert r.status_code == 429 and "retry-after" in r.headers
    finally:
        store.close()


@pytest.mark.parametrize(
    "headers",
    [EVIL, {}, {"Referer": "https://evil.example/page"}, {"Origin": "null"}, {"Origin": "http://testserver.evil"}],
    ids=["other-origin", "no-origin", "other-referer", "null-origin", "suffix-host"],
)
def test_a_cookie_authenticated_change_from_another_origin_is_refused(sqlite_url: str, headers: dict) -> None:
    store = Store(sqlite_url)
    try:
        with TestClient(_app(store)) as c:
            _login(c)
            r = c.post("/api/v1/keys", json={"role": "admin", "name": "csrf"}, headers=headers)
            assert r.status_code == 403 and "cross-site request refused" in r.text, r.text
            assert c.request("DELETE", "/api/v1/keys/1", headers=headers).status_code == 403
            assert c.get("/api/v1/keys", headers=headers).status_code == 200  # reads are not changes
            assert c.delete("/api/v1/session", headers=headers).status_code == 403  # nor a forced log-out
            assert not [k for k in store.keys.list_api_keys() if k["name"] == "csrf"]
    finally:
        store.close()


def test_same_origin_allowed_origins_and_api_key_requests_are_accepted(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    try:
        with TestClient(_app(store, auth={"allowed_origins": ["https://citywatch.example.vn"]})) as c:
            _login(c)
            for headers in (SAME, {"Referer": "http://testserver/"}, {"Origin": "https://citywatch.example.vn"}):
                r = c.post("/api/v1/keys", json={"role": "planner", "name": "ok"}, headers=headers)
                assert r.status_code == 201, (headers, r.text)
            c.cookies.clear()
            r = c.post("/api/v1/keys", json={"role": "planner", "name": "tool"}, headers={**EVIL, **ADMIN})
            assert r.status_code == 201  # a key in a header is not something a browser adds by itself
    finally:
        store.close()


def test_allowed_origins_must_be_bare_origins() -> None:
    with pytest.raises(ValueError, match="allowed_origins"):
        make_config(run_id="x", database_url="sqlite://", server={"auth": {"allowed_origins": ["https://a.vn/x"]}})


@pytest.mark.parametrize(
    ("server", "names"),
    [
        ({"host": "0.0.0.0"}, "server.host"),
        ({"auth": {"trusted_proxies": ["127.0.0.1"]}}, "server.auth.trusted_proxies"),
    ],
)
def test_open_mode_refuses_to_start_behind_a_proxy_or_on_a_network_address(
    sqlite_url: str, server: dict, names: str
) -> None:
    store = Store(sqlite_url)
    try:
        with pytest.raises(OpenModeRefused, match=re.escape(names)) as exc, TestClient(_app(store, "", **server)):
            pass
        assert "CITYWATCH_API_KEYS" in str(exc.value)
        with TestClient(_app(store, KEYS, **server)) as c:  # with keys the same settings are fine
            assert c.get("/api/v1/cameras", headers=ADMIN).status_code == 200
    finally:
        store.close()


def test_open_mode_refuses_a_request_a_proxy_says_it_relayed(client_open: TestClient) -> None:
    assert client_open.get("/api/v1/cameras").status_code == 200
    for h in ({"X-Forwarded-For": "192.0.2.1"}, {"Forwarded": "for=192.0.2.1"}, {"X-Real-IP": "192.0.2.1"}):
        assert client_open.get("/api/v1/cameras", headers=h).status_code == 401


def test_open_mode_is_described_by_one_sentence_in_the_log_and_both_readmes(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(sqlite_url)
    try:
        with caplog.at_level(logging.WARNING, logger="server.auth"), TestClient(_app(store, "")):
            pass
    finally:
        store.close()
    assert OPEN_MODE_SENTENCE in caplog.text
    for readme in (REPO / "README.md", REPO / "server/README.md"):
        text = " ".join(readme.read_text(encoding="utf-8").split())
        assert OPEN_MODE_SENTENCE in text, readme


@pytest.fixture
def client_open(sqlite_url: str) -> Iterator[TestClient]:
    store = Store(sqlite_url)
    with TestClient(_app(store, "")) as c:
        yield c
    store.close()


def test_api_docs_are_served_from_this_server_and_refer_to_no_external_host(client_open: TestClient) -> None:
    r = client_open.get("/docs")
    assert r.status_code == 200 and "swagger-ui" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp and "http" not in csp
    assert "<script>" not in r.text  # no inline script: the CSP would block it
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    for a in assets:
        got = client_open.get(a)
        assert got.status_code == 200 and len(got.content) > 100, a
    init = client_open.get("/static/docs/init.js").text
    assert "/openapi.json" in init and "http" not in init
    assert client_open.get("/redoc").status_code == 404  # ReDoc has no local copy
    assert "cdn." not in client_open.get("/openapi.json").text


def test_api_docs_can_be_switched_off(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    try:
        with TestClient(_app(store, "", auth={"api_docs": False})) as c:
            assert c.get("/docs").status_code == 404 and c.get("/docs/assets/swagger-ui.css").status_code == 404
            assert c.get("/openapi.json").status_code == 200
    finally:
        store.close()


def _incident(seq: int, state: str) -> Incident:
    iid = uuid.uuid4()
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    return Incident(
        event_id=uuid.uuid4(),
        camera_id="cam-1",
        site_id="site-1",
        seq=seq,
        ts=start,
        config_version="t",
        model_version="t",
        incident_id=iid,
        incident_type="stopped_vehicle",
        state=state,  # type: ignore[arg-type]
        severity="high",
        confidence=0.9,
        track_ids=[7],
        started_at=start,
        ended_at=start + timedelta(seconds=40) if state == "closed" else None,
    )


def test_incident_retention_prunes_only_finished_incidents_with_their_audit_trail(store: Store) -> None:
    db = store.incidents
    states = ["closed", "open", "open", "closed"]
    closed, resolved, still_open, recent = (_incident(i + 1, s) for i, s in enumerate(states))
    store.insert_events([closed, resolved, still_open, recent])
    for inc in (closed, resolved, still_open):
        db.acknowledge(str(inc.incident_id), "Nguyễn Văn A", "operator", "seen")
    db.resolve(str(resolved.incident_id), "Trần Thị B", "operator", "towed")
    old = datetime.now(timezone.utc) - timedelta(days=40)
    with store.engine.begin() as conn:
        from server.storage.incidents import IncidentRow

        ids = [str(i.incident_id) for i in (closed, resolved, still_open)]
        conn.execute(IncidentRow.__table__.update().where(IncidentRow.incident_id.in_(ids)).values(updated_at=old))
    config = make_config(run_id="ret", database_url=store.url, server={"retention": {"incidents_days": 30}})
    deleted = Retention(store, config.server.retention).run_once()
    assert deleted["incidents"] == 2 and deleted["incident_actions"] == 3, deleted
    left = {it["incident_id"] for it in db.list(limit=10)[0]}
    assert left == {str(still_open.incident_id), str(recent.incident_id)}
    assert [a["actor"] for a in db.get(str(still_open.incident_id))["actions"]] == ["Nguyễn Văn A"]  # type: ignore[index]
    assert db.get(str(closed.incident_id)) is None


def test_incident_retention_is_validated() -> None:
    with pytest.raises(ValueError, match="incidents_days"):
        make_config(run_id="x", database_url="sqlite://", server={"retention": {"incidents_days": 0}})


def test_forwarded_allow_ips_in_the_environment_also_refuses_open_mode(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")
    store = Store(sqlite_url)
    try:
        with pytest.raises(OpenModeRefused, match="FORWARDED_ALLOW_IPS"), TestClient(_app(store, "")):
            pass
    finally:
        store.close()


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted-proxy", "no-proxy-configured"])
def test_x_forwarded_for_names_the_throttled_client_only_from_a_trusted_proxy(sqlite_url: str, trusted: bool) -> None:
    """Behind a configured proxy each client has its own budget; otherwise the header is ignored (a client
    could pick a fresh address per guess) and everyone behind the proxy shares the proxy's."""
    import httpx

    from server.runner import serve_in_thread

    auth = {"login_throttle": {**THROTTLE, "max_failures": 2, "lockout_s": 30, "max_lockout_s": 30}}
    if trusted:
        auth["trusted_proxies"] = ["127.0.0.1"]
    config = make_config(run_id="xff", database_url=sqlite_url, server={"database_url": sqlite_url, "auth": auth})
    with serve_in_thread(config, ingest=False, api_keys=KEYS) as server:

        def login(client: str, key: str) -> int:
            r = httpx.post(f"{server.url}/api/v1/session", json={"key": key}, headers={"X-Forwarded-For": client})
            return r.status_code

        assert [login("192.0.2.1", f"guess-{i:04d}") for i in range(3)] == [401, 401, 429]
        assert login("192.0.2.2", "admin-key-123") == (200 if trusted else 429)
