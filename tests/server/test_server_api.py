"""HTTP API without MQTT: parameter validation, counts, cameras, access control, metrics, dashboard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from server_testkit import crossing, make_config, status_event

from server.app import create_app
from server.store import Store

KEYS = "admin:admin-key-123,operator:operator-key-1,planner:planner-key-1"


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    s = Store(sqlite_url)
    yield s
    s.close()


def _client(store: Store, api_keys: str | None = "", **kw) -> TestClient:  # type: ignore[no-untyped-def]
    config = make_config(run_id="api", database_url=store.url)
    return TestClient(create_app(config, ingest=False, store=store, api_keys=api_keys, **kw))


@pytest.fixture
def client(sqlite_store: Store) -> Iterator[TestClient]:
    with _client(sqlite_store) as c:  # open mode
        yield c


def test_counts_reject_naive_datetimes_with_a_message(client: TestClient) -> None:
    r = client.get("/api/v1/counts", params={"from": "2025-01-01T00:00:00", "to": "2025-01-02T00:00:00Z"})
    assert r.status_code == 422
    assert "time zone" in r.text and "from" in r.text


def test_counts_reject_from_after_to(client: TestClient) -> None:
    r = client.get("/api/v1/counts", params={"from": "2025-01-02T00:00:00Z", "to": "2025-01-01T00:00:00Z"})
    assert r.status_code == 422
    assert "before" in r.text


def test_counts_reject_unknown_bucket_and_too_long_ranges(client: TestClient) -> None:
    r = client.get("/api/v1/counts", params={"bucket": "5m"})
    assert r.status_code == 422 and "bucket" in r.text
    r = client.get("/api/v1/counts", params={"from": "2020-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"})
    assert r.status_code == 422 and "400 days" in r.text
    r = client.get("/api/v1/counts", params={"direction": "sideways"})
    assert r.status_code == 422


def test_counts_are_bucketed_in_the_server_time_zone(client: TestClient, sqlite_store: Store) -> None:
    t0 = datetime(2025, 3, 1, 10, 0, 30, tzinfo=timezone.utc)
    sqlite_store.insert_events(
        [crossing(1, ts=t0), crossing(2, ts=t0 + timedelta(seconds=20)), crossing(3, ts=t0 + timedelta(minutes=5))]
    )
    params = {"from": "2025-03-01T17:00:00+07:00", "to": "2025-03-01T18:00:00+07:00", "bucket": "1m"}
    body = client.get("/api/v1/counts", params=params).json()
    assert body["total"] == 3 and body["bucket"] == "1m"
    assert [(r["bucket_start"], r["count"]) for r in body["rows"]] == [
        ("2025-03-01T17:00:00+07:00", 2),
        ("2025-03-01T17:05:00+07:00", 1),
    ]
    body = client.get("/api/v1/counts", params={**params, "bucket": "total", "line_id": "l1"}).json()
    assert body["rows"] == [
        {
            "bucket_start": None,
            "camera_id": "cam-1",
            "line_id": "l1",
            "direction": "in",
            "class_name": "car",
            "count": 3,
        }
    ]


def test_configured_cameras_are_listed_before_they_report(client: TestClient, sqlite_store: Store) -> None:
    cams = client.get("/api/v1/cameras").json()["cameras"]
    assert [(c["id"], c["state"], c["committed_seq"]) for c in cams] == [("cam-1", "unknown", 0)]
    assert cams[0]["location"] == {"lat": 10.77, "lon": 106.7} and cams[0]["site"] == "site-1"

    sqlite_store.insert_events([crossing(1), crossing(1, camera_id="cam-9")])
    sqlite_store.upsert_camera_status(
        "cam-1", "site-1", seen_at=datetime.now(timezone.utc), state="online", status=status_event(2)
    )
    sqlite_store.advance_watermark("cam-1")
    cams = {c["id"]: c for c in client.get("/api/v1/cameras").json()["cameras"]}
    assert cams["cam-1"]["state"] == "online" and cams["cam-1"]["committed_seq"] == 1
    assert cams["cam-1"]["status"]["fps_processed"] == 12.5 and cams["cam-1"]["status"]["outbox_depth"] == 3
    assert cams["cam-1"]["config_version"] is None or isinstance(cams["cam-1"]["config_version"], str)
    assert cams["cam-1"]["last_seen"] is not None


def test_recent_events_newest_first(client: TestClient, sqlite_store: Store) -> None:
    t0 = datetime.now(timezone.utc)
    sqlite_store.insert_events([crossing(1, ts=t0), crossing(2, ts=t0 + timedelta(seconds=1)), status_event(3)])
    evs = client.get("/api/v1/events", params={"kind": "line_crossing", "limit": 5}).json()["events"]
    assert [e["seq"] for e in evs] == [2, 1]
    assert client.get("/api/v1/events", params={"limit": 0}).status_code == 422


def test_requests_without_a_key_get_401(sqlite_store: Store) -> None:
    with _client(sqlite_store, api_keys=KEYS) as c:
        r = c.get("/api/v1/cameras")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/api/v1/cameras", headers={"X-API-Key": "wrong-key-123"}).status_code == 401
        assert c.get("/api/v1/events/live").status_code == 401  # the stream too
        assert c.get("/api/v1/health").status_code == 200  # health needs no key


def test_each_role_reaches_only_what_it_may(sqlite_store: Store) -> None:
    with _client(sqlite_store, api_keys=KEYS) as c:
        for key in ("operator-key-1", "planner-key-1", "admin-key-123"):
            assert c.get("/api/v1/counts", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        r = c.get("/api/v1/dead-letters", headers={"X-API-Key": "operator-key-1"})
        assert r.status_code == 403 and "admin" in r.text
        assert c.get("/api/v1/dead-letters", headers={"X-API-Key": "planner-key-1"}).status_code == 403
        assert c.get("/api/v1/dead-letters", headers={"X-API-Key": "admin-key-123"}).status_code == 200


def test_session_cookie_lets_a_browser_in(sqlite_store: Store) -> None:
    with _client(sqlite_store, api_keys=KEYS) as c:
        assert c.post("/api/v1/session", json={"key": "nope-nope-nope"}).status_code == 401
        r = c.post("/api/v1/session", json={"key": "operator-key-1"})
        assert r.status_code == 200 and r.json()["role"] == "operator"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert c.get("/api/v1/cameras").status_code == 200
        assert c.get("/api/v1/session").json()["via"] == "cookie"
        assert c.get("/api/v1/dead-letters").status_code == 403
        c.delete("/api/v1/session")
        c.cookies.clear()
        assert c.get("/api/v1/cameras").status_code == 401


def test_open_mode_treats_every_request_as_admin(client: TestClient) -> None:
    assert client.get("/api/v1/dead-letters").status_code == 200
    assert client.get("/api/v1/session").json() == {"role": "admin", "mode": "open", "via": "open"}
    assert client.get("/api/v1/health").json()["auth"] == "open"


def test_bad_api_key_spec_is_refused_at_startup(sqlite_store: Store) -> None:
    with pytest.raises(ValueError, match="role:key"):
        create_app(make_config(run_id="x", database_url=sqlite_store.url), api_keys="root:abcdefghij")


def test_health_reports_database_and_no_mqtt(client: TestClient) -> None:
    body = client.get("/api/v1/health").json()
    assert body["status"] == "ok" and body["db"]["ok"] is True and body["mqtt"]["enabled"] is False


def test_metrics_are_prometheus_text_per_app(client: TestClient, sqlite_store: Store) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200 and "text/plain" in r.headers["content-type"]
    assert "citywatch_ingest_received_total 0.0" in r.text
    with _client(sqlite_store) as other:  # a second app in the same process: no registry clash
        assert other.get("/metrics").status_code == 200


def test_dashboard_is_served_without_external_resources(client: TestClient) -> None:
    r = client.get("/")
    # Vietnamese in the page itself, English in the language module the page imports
    assert r.status_code == 200 and "Lượt qua vạch" in r.text
    assert "Line crossings" in client.get("/static/js/i18n.js").text
    app_js = client.get("/static/app.js").text
    modules = ["/static/" + m.removeprefix("./") for m in re.findall(r'^import .*"(\./js/[\w-]+\.js)";$', app_js, re.M)]
    assert "/static/js/i18n.js" in modules
    for path in ("/static/app.js", "/static/style.css", "/static/views.css", *modules):
        assert client.get(path).status_code == 200, path
    combined = r.text + app_js + client.get("/static/style.css").text + "".join(client.get(m).text for m in modules)
    assert "http://" not in combined.replace("http://www.w3.org/2000/svg", "") and "https://" not in combined
    assert "default-src 'self'" in r.headers["content-security-policy"]


def test_open_local_mode_serves_only_this_machine(sqlite_store: Store) -> None:
    """Without API keys every loopback request is admin; a request from the network gets nothing."""
    config = make_config(run_id="api", database_url=sqlite_store.url)
    app = create_app(config, ingest=False, store=sqlite_store, api_keys="")
    with TestClient(app, client=("127.0.0.1", 40000)) as local:
        assert local.get("/api/v1/cameras").status_code == 200
    with TestClient(app, client=("192.0.2.7", 40000)) as remote:
        assert remote.get("/api/v1/cameras").status_code == 401
        assert remote.get("/api/v1/health").status_code == 200  # health needs no role
