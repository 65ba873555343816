"""Ingest against a private Mosquitto running the shipped configuration (deploy/mosquitto): gap repair
by replay requests, fuzzed payloads all accounted for, two ingest processes sharing the load over
MQTT v5 shared subscriptions on PostgreSQL, and kill -9 mid-ingest losing nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from server_testkit import REPO, close_client, crossing, make_config, publisher, shipped_broker, wait_for
from support import wait_ingest_subscribed

from citywatch.contract import EventBatch, Topics, parse_control
from server.ingest import Ingest
from server.storage.store import Store

SITE = "site-1"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    b = shipped_broker(tmp_path)
    b.start()
    yield b
    b.stop()


def _publish_all(client: mqtt.Client, items: list[tuple[str, bytes]]) -> None:
    infos = [client.publish(t, p, qos=1) for t, p in items]
    for i in infos:
        i.wait_for_publish(30)


def test_a_gap_in_seq_is_repaired_by_asking_the_edge_to_replay(broker: Any, sqlite_url: str, run_id: str) -> None:
    cfg = make_config(run_id=run_id, database_url=sqlite_url, port=broker.port)
    cfg = cfg.model_copy(
        update={
            "server": cfg.server.model_copy(
                update={"ingest": cfg.server.ingest.model_copy(update={"gap_grace_s": 0.3, "replay_interval_s": 1.0})}
            )
        }
    )
    store = Store(sqlite_url)
    ingest = Ingest(cfg, store)
    ingest.start()
    topics = Topics(cfg.mqtt.topic_prefix)
    events = {i: crossing(i) for i in range(1, 11)}
    requests: list[tuple[int, int | None]] = []
    edge = publisher("127.0.0.1", broker.port, f"cw-edge-{run_id}")

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:  # the edge answers a replay request
        ctl = parse_control(msg.payload)
        if ctl.kind == "replay":
            requests.append((ctl.from_seq, ctl.to_seq))
            for s in range(ctl.from_seq, (ctl.to_seq or 10) + 1):
                edge.publish(topics.event(SITE, "cam-1", "line_crossing"), events[s].model_dump_json(), qos=1)

    edge.on_message = on_message
    edge.subscribe(topics.control(SITE, "cam-1", "replay"), qos=1)
    try:
        assert ingest.subscribed.wait(10)
        lost = {4, 5, 6}  # the broker never got these
        _publish_all(
            edge,
            [
                (topics.event(SITE, "cam-1", "line_crossing"), events[i].model_dump_json().encode())
                for i in events
                if i not in lost
            ],
        )
        assert wait_for(lambda: store.count_events("cam-1") == 10, 15)
        assert requests[0] == (4, 6)
        assert wait_for(lambda: ingest.counters.committed.get("cam-1") == 10, 5)
        assert ingest.counters.gaps_detected >= 1 and ingest.counters.replay_requests >= 1
        assert store.cameras.camera_states()["cam-1"]["replay_requests"] >= 1
    finally:
        ingest.stop()
        close_client(edge)
        store.close()


def _fuzz_payloads(n: int, topics: Topics, rng: random.Random) -> tuple[list[tuple[str, bytes]], int]:
    out: list[tuple[str, bytes]] = []
    valid = 0
    for i in range(n):
        seq = i + 1
        good = json.loads(crossing(seq).model_dump_json())
        topic = topics.event(SITE, "cam-1", "line_crossing")
        r = rng.random()
        if r < 0.3:
            valid += 1
            payload = json.dumps(good).encode()
        elif r < 0.45:
            k = rng.choice(list(good))
            good[k] = rng.choice([None, -1, "x" * 300, [], {}, 1e309 if False else 3.5, "2025-13-45"])
            payload = json.dumps(good).encode()
        elif r < 0.6:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        elif r < 0.7:
            raw = json.dumps(good)
            cut = rng.randrange(len(raw))
            payload = (raw[:cut] + rng.choice(["", "}", "\x00", "\\u", "é"]) + raw[cut + 1 :]).encode(
                "utf-8", "surrogatepass"
            )
        elif r < 0.8:
            payload = json.dumps(
                rng.choice([[], 1, "s", None, {"kind": "batch", "events": []}, {"kind": "nope"}])
            ).encode()
        elif r < 0.9:
            topic = rng.choice(
                [
                    topics.event(SITE, "cam-2", "line_crossing"),
                    topics.event(SITE, "cam-1", "batch"),
                    f"{topics.prefix}/{SITE}/cam-1/event/x/y",
                    f"{topics.prefix}/{SITE}/cam-1/status",
                ]
            )
            payload = json.dumps(good).encode()
        else:
            payload = json.dumps({**good, "extra": i}).encode()
        out.append((topic, payload))
    return out, valid


def test_thousands_of_fuzzed_payloads_are_each_stored_or_dead_lettered(
    broker: Any, sqlite_url: str, run_id: str
) -> None:
    cfg = make_config(run_id=run_id, database_url=sqlite_url, port=broker.port)
    store = Store(sqlite_url)
    ingest = Ingest(cfg, store)
    ingest.start()
    topics = Topics(cfg.mqtt.topic_prefix)
    items, valid = _fuzz_payloads(3000, topics, random.Random(5))
    # the subscription covers .../event/+ and .../status: messages on other topics never reach the server
    delivered = [it for it in items if it[0].count("/") == topics.prefix.count("/") + 4 or it[0].endswith("/status")]
    pub = publisher("127.0.0.1", broker.port, f"cw-fuzz-{run_id}")
    try:
        assert ingest.subscribed.wait(10)
        _publish_all(pub, items)
        assert wait_for(lambda: ingest.counters.received >= len(delivered), 30)
        assert ingest.flush(30)
        c = ingest.counters
        assert c.received == len(delivered)
        stored = store.count_events()
        _, dead = store.list_dead_letters(limit=1)
        # every message is accounted for: its event stored, or kept as a dead letter with a reason
        assert stored + dead == len(delivered), (stored, dead, len(delivered))
        assert stored >= valid
        assert ingest._writer is not None and ingest._writer.is_alive()
    finally:
        ingest.stop()
        close_client(pub)
        store.close()


def _server_config(tmp_path: Path, run_id: str, port: int, pg_url: str, client: str, group: str | None) -> Path:
    data = {
        "site": SITE,
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "protocol": "5",
            "topic_prefix": f"cwtest-{run_id}",
            "session_expiry_s": 600,
            "username_env": None,
            "password_env": None,
            "shared_group": group,
        },
        "server": {"database_url": pg_url, "client_id": f"cw-{client}-{run_id}", "host": "127.0.0.1", "port": 0},
    }
    p = tmp_path / f"{client}.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _start_server(cfg: Path, schema: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "CITYWATCH_DATABASE_SCHEMA": schema, "PYTHONPATH": str(REPO)}
    env.pop("CITYWATCH_API_KEYS", None)
    with open(log, "ab") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "server", "-c", str(cfg), "--port", "0"], cwd=REPO, env=env, stdout=f, stderr=f
        )


def _batches(camera: str, n: int, per: int, start_seq: int = 1) -> list[bytes]:
    out = []
    for a in range(start_seq, start_seq + n, per):
        evs = [crossing(s, camera_id=camera) for s in range(a, min(a + per, start_seq + n))]
        out.append(EventBatch(events=evs).model_dump_json().encode())
    return out


def test_two_ingest_processes_share_the_load_without_loss_or_duplicates(
    broker: Any, pg_database: Any, run_id: str, tmp_path: Path
) -> None:
    store = Store(pg_database.url, schema=pg_database.schema)  # migrate before both servers start
    procs = [
        _start_server(
            _server_config(tmp_path, run_id, broker.port, pg_database.url, name, "ingest"),
            pg_database.schema,
            tmp_path / f"{name}.log",
        )
        for name in ("a", "b")
    ]
    topics = Topics(f"cwtest-{run_id}")
    pub = publisher("127.0.0.1", broker.port, f"cw-pub-{run_id}")
    try:
        wait_ingest_subscribed(tmp_path / "a.log", tmp_path / "b.log")
        items = []
        for cam in (f"cam-{i}" for i in range(8)):
            items += [(topics.event(SITE, cam, "batch"), p) for p in _batches(cam, 500, 20)]
        items += [
            (
                topics.event(SITE, "cam-single", "line_crossing"),
                crossing(s, camera_id="cam-single").model_dump_json().encode(),
            )
            for s in range(1, 501)
        ]
        random.Random(1).shuffle(items)  # per-camera order is not needed: the watermark waits for gaps
        _publish_all(pub, items)
        assert wait_for(lambda: store.count_events() == 4500, 60), store.count_events()
        time.sleep(1.0)
        assert store.count_events() == 4500  # no duplicates stored
        assert wait_for(
            lambda: all(v == 500 for v in store.committed_seqs().values()) and len(store.committed_seqs()) == 9, 30
        )
        lo = datetime.now(timezone.utc) - timedelta(hours=1)
        rows = store.history.counts(start=lo, end=lo + timedelta(hours=2))
        assert sum(r.count for r in rows) == 4500  # rollups: once each
        logs = [(tmp_path / f"{n}.log").read_text() for n in ("a", "b")]
        assert all("subscribed to ['$share/ingest/" in log for log in logs), logs
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        close_client(pub)
        store.close()


def test_kill_9_mid_ingest_loses_nothing(broker: Any, pg_database: Any, run_id: str, tmp_path: Path) -> None:
    store = Store(pg_database.url, schema=pg_database.schema)
    cfg = _server_config(tmp_path, run_id, broker.port, pg_database.url, "k", None)
    proc = _start_server(cfg, pg_database.schema, tmp_path / "k.log")
    topics = Topics(f"cwtest-{run_id}")
    pub = publisher("127.0.0.1", broker.port, f"cw-pub-{run_id}")
    total = 6000
    try:
        wait_ingest_subscribed(tmp_path / "k.log")
        items = [(topics.event(SITE, "cam-1", "batch"), p) for p in _batches("cam-1", total, 2)]
        t = threading.Thread(target=_publish_all, args=(pub, items))
        t.start()
        assert wait_for(lambda: store.count_events() >= 300, 30)
        proc.send_signal(signal.SIGKILL)  # mid-ingest: some batches received but not committed
        proc.wait(10)
        t.join(60)
        before = store.count_events()
        assert before < total, "the kill came too late to test anything"
        proc = _start_server(cfg, pg_database.schema, tmp_path / "k.log")  # same client id: the session holds the rest
        assert wait_for(lambda: store.count_events() == total, 60), (before, store.count_events())
        assert wait_for(lambda: store.committed_seqs().get("cam-1") == total, 15)
        lo = datetime.now(timezone.utc) - timedelta(hours=1)
        rows = store.history.counts(start=lo, end=lo + timedelta(hours=2))
        assert sum(r.count for r in rows) == total  # rollups: once each
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        close_client(pub)
        store.close()
