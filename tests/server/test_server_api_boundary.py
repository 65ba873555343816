"""Every path and query parameter is checked at the boundary: a bad id or an absurd date is a 422 naming
the parameter on both databases, and anything unforeseen is a JSON 500 with a request id, no internals."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from server_testkit import make_config

from server.app import create_app
from server.storage.store import Store

NUL_CASES = [
    ("/api/v1/counts", {"camera_id": "cam\x001"}, "camera_id"),
    ("/api/v1/counts", {"line_id": "l\x001"}, "line_id"),
    ("/api/v1/incidents/inc%001", {}, "incident_id"),
]
EXTREME_DATES = [
    ("from", "0001-01-01T00:00:00Z", "to", "0001-01-02T00:00:00+01:00"),
    ("from", "9999-12-30T00:00:00Z", "to", "9999-12-31T23:00:00-12:00"),
]
DATE_ENDPOINTS = [
    ("/api/v1/counts", "from", "to"),
    ("/api/v1/coverage", "from", "to"),
    ("/api/v1/export/flow.csv", "from", "to"),
    ("/api/v1/incidents", "since", "until"),
    ("/api/v1/export/incidents", "since", "until"),
]


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    """Open mode on SQLite and on the real PostgreSQL (the ``store`` fixture is parametrised)."""
    app = create_app(make_config(run_id="api", database_url=store.url), ingest=False, store=store, api_keys="")
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _names(r: object, param: str) -> bool:
    return param in r.text  # type: ignore[attr-defined]


@pytest.mark.parametrize(("path", "params", "param"), NUL_CASES)
def test_nul_in_an_id_is_a_422_naming_the_parameter(client: TestClient, path: str, params: dict, param: str) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 422, (path, r.status_code, r.text[:300])
    assert _names(r, param)


@pytest.mark.parametrize("case", EXTREME_DATES, ids=["year1", "year9999"])
@pytest.mark.parametrize(("path", "lo", "hi"), DATE_ENDPOINTS)
def test_dates_near_year_1_or_9999_are_a_422_naming_the_parameter(
    client: TestClient, path: str, lo: str, hi: str, case: tuple[str, str, str, str]
) -> None:
    r = client.get(path, params={lo: case[1], hi: case[3]})
    assert r.status_code == 422, (path, r.status_code, r.text[:300])
    assert _names(r, lo) or _names(r, hi)
    assert "1970" in r.text and "2100" in r.text


@pytest.mark.parametrize("path", ["/api/v1/counts", "/api/v1/coverage", "/api/v1/flow"])
def test_a_lone_end_near_year_1_is_a_422_not_an_overflow(client: TestClient, path: str) -> None:
    """The default start (end - 24 h) must not be computed from an unchecked end."""
    r = client.get(path, params={"to": "0001-01-01T12:00:00Z"})
    assert r.status_code == 422 and "to" in r.text


def test_other_id_parameters_follow_the_contract_pattern(client: TestClient) -> None:
    for path, params in (
        ("/api/v1/events", {"camera_id": "a b"}),
        ("/api/v1/incidents", {"camera_id": "x\x00"}),
        ("/api/v1/flow", {"line_id": "-x"}),
        ("/api/v1/cameras/bad%00id", {}),
        ("/api/v1/incidents/not-a-uuid", {}),
    ):
        assert client.get(path, params=params).status_code == 422, path
    assert client.get("/api/v1/incidents/1b4e28ba-2fa1-11d2-883f-0016d3cc427e").status_code == 404


def test_an_unforeseen_error_is_a_json_500_with_a_request_id_and_no_internals(
    client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(store.event_log, "recent_events", broken)
    with caplog.at_level(logging.ERROR, logger="server.app"):
        r = client.get("/api/v1/events")
    assert r.status_code == 500 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["request_id"] and r.headers["x-request-id"] == body["request_id"]
    assert "hunter2" not in r.text and "RuntimeError" not in r.text
    assert any(body["request_id"] in rec.getMessage() for rec in caplog.records)
    assert "hunter2" in caplog.text  # the log keeps what the client must not see
