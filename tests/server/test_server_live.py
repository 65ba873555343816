"""Live events: the hub never blocks ingest, and SSE delivers newly ingested events end to end."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
from server_testkit import close_client, crossing, make_config, publisher

from server.live import LiveHub
from server.runner import serve_in_thread


def test_slow_subscriber_loses_oldest_items_and_is_told() -> None:
    async def scenario() -> list[tuple[str, object]]:
        hub = LiveHub(maxsize=3)
        hub.attach_loop(asyncio.get_running_loop())
        sub = hub.subscribe()
        t = threading.Thread(target=lambda: [hub.publish("line_crossing", {"n": i}) for i in range(5)])
        t.start()
        t.join()
        await asyncio.sleep(0.05)
        got = []
        while (item := await sub.get(timeout=0.05)) is not None:
            got.append((item.kind, item.data))
        hub.close()
        await asyncio.sleep(0.01)
        assert sub.closed and await sub.get(timeout=0.05) is None
        return got

    assert asyncio.run(scenario()) == [
        ("dropped", {"dropped": 2}),
        ("line_crossing", {"n": 2}),
        ("line_crossing", {"n": 3}),
        ("line_crossing", {"n": 4}),
    ]


def test_publish_without_a_loop_is_a_no_op() -> None:
    LiveHub().publish("line_crossing", {})  # ingest may run before any client: must not raise


def _read_sse_until(lines, predicate, limit: int = 50) -> list[str]:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    for line in lines:
        seen.append(line)
        if predicate(line) or len(seen) >= limit:
            return seen
    return seen


def test_sse_delivers_a_newly_ingested_event(mqtt_broker: tuple[str, int], sqlite_url: str, run_id: str) -> None:
    host, port = mqtt_broker
    config = make_config(run_id=run_id, database_url=sqlite_url, host=host, port=port)
    handle = serve_in_thread(config, api_keys="")
    pub = publisher(host, port, f"cw-pub-{run_id}")
    ingest = handle.app.state.ingest
    try:
        assert ingest.subscribed.wait(10)
        ev = crossing(1)
        with (
            httpx.Client(base_url=handle.url, timeout=10) as http,
            http.stream("GET", "/api/v1/events/live") as r,
        ):
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            _read_sse_until(lines, lambda s: s == ": connected")
            pub.publish(ingest.topics.event("site-1", "cam-1", ev.kind), ev.model_dump_json(), qos=1)
            seen = _read_sse_until(lines, lambda s: s.startswith("data: "))
        assert seen[-2:] == ["event: line_crossing", seen[-1]]
        data = json.loads(seen[-1][len("data: ") :])
        assert data["event_id"] == str(ev.event_id) and data["seq"] == 1
        health = httpx.get(handle.url + "/api/v1/health").json()
        assert health["mqtt"]["connected"] is True and health["ingest"]["stored"] == 1
    finally:
        pub.publish(ingest.topics.control("site-1", "cam-1", "committed"), b"", qos=1, retain=True)
        close_client(pub)
        handle.stop()


def test_server_stops_promptly_with_a_live_client_connected(sqlite_url: str) -> None:
    handle = serve_in_thread(make_config(run_id="stop", database_url=sqlite_url), ingest=False, api_keys="")
    opened = threading.Event()

    def client() -> None:
        try:
            with httpx.stream("GET", handle.url + "/api/v1/events/live", timeout=20) as r:
                for line in r.iter_lines():
                    if line == ": connected":
                        opened.set()
        except httpx.HTTPError:
            pass

    t = threading.Thread(target=client, daemon=True)
    t.start()
    assert opened.wait(10)
    started = time.monotonic()
    handle.stop()
    assert time.monotonic() - started < 5
    t.join(5)
    assert not t.is_alive() and not handle.thread.is_alive()
