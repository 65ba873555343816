"""Schemathesis against the OpenAPI spec: no request the spec allows may get a 5xx."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from server_testkit import crossing, make_config

schemathesis = pytest.importorskip("schemathesis")
#: More with CW_FUZZ_EXAMPLES=200 (found the dead-letters offset overflow at 150).
EXAMPLES = int(os.environ.get("CW_FUZZ_EXAMPLES", "25"))
from hypothesis import HealthCheck, given, settings  # noqa: E402

from server.app import create_app  # noqa: E402
from server.storage.store import Store  # noqa: E402


def test_no_documented_request_gets_a_server_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    url = f"sqlite:///{tmp_path}/db/cw.sqlite"
    store = Store(url)
    t0 = datetime.now(timezone.utc) - timedelta(hours=2)
    store.insert_events([crossing(i, ts=t0 + timedelta(minutes=i)) for i in range(1, 50)])
    app = create_app(make_config(run_id="fuzz", database_url=url), ingest=False, store=store, api_keys="")
    with TestClient(app):  # run the lifespan (store attached)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        failures: list[str] = []
        calls: list[int] = []
        for op in schema.get_all_operations():
            operation = op.ok()
            if operation.path.endswith("/live"):
                continue  # an endless stream

            def make_check(operation):  # type: ignore[no-untyped-def]
                @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
                @given(case=operation.as_strategy())
                def run(case):  # type: ignore[no-untyped-def]
                    response = case.call()
                    calls.append(response.status_code)
                    if response.status_code >= 500:
                        failures.append(
                            f"{operation.method.upper()} {operation.path} {case.query} -> {response.status_code}"
                        )

                return run

            check = make_check(operation)
            check()
        assert not failures, failures[:10]
        assert len(calls) > 200 and any(c == 200 for c in calls)
    store.close()
