"""Ingest under database faults: a message the database refuses is isolated as a dead letter and every
other camera goes on; transient failures are retried; one camera's bad values cannot stop another's
watermark; /health and /metrics tell when ingest is stalled or the database does not answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from server_testkit import close_client, crossing, make_config, publisher, status_event, wait_for
from sqlalchemy import create_engine, text

from citywatch.contract import AnyEvent, EventBatch, LineCrossing, utcnow
from server.ingest import Ingest
from server.ingest.messages import Events, Received
from server.ingest.parse import parsed
from server.runner import serve_in_thread
from server.storage.store import Store

SITE = "site-1"


def reject_rows(store: Store, table: str, condition: str, message: str) -> None:
    """A trigger that refuses every insert or update of ``table`` whose ``NEW`` row meets ``condition``:
    a permanent database error the contract cannot foresee."""
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION cw_reject() RETURNS trigger LANGUAGE plpgsql AS "
                    f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER cw_reject BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW "
                    f"WHEN ({condition}) EXECUTE FUNCTION cw_reject()"
                )
            )
        else:
            for op in ("INSERT", "UPDATE"):
                conn.execute(
                    text(
                        f"CREATE TRIGGER cw_reject_{op.lower()} BEFORE {op} ON {table} FOR EACH ROW "
                        f"WHEN {condition} BEGIN SELECT RAISE(ABORT, '{message}'); END"
                    )
                )


def message(ingest: Ingest, ev: AnyEvent | EventBatch, *, classify: bool = True, mid: int = 1) -> Received:
    """One received message as paho's thread hands it to the writer (classified by the real parser)."""
    if isinstance(ev, EventBatch):
        first = ev.events[0]
        topic = ingest.topics.event(first.site_id, first.camera_id, "batch")
    else:
        topic = ingest.topics.event(ev.site_id, ev.camera_id, ev.kind)
    m = Received(topic, ev.model_dump_json().encode(), mid, 1, utcnow(), 0)
    return parsed(ingest.topics, m) if classify else m


def unchecked(ingest: Ingest, ev: AnyEvent, **bad: Any) -> Received:
    """A message whose event carries ``bad`` values as if the contract had let them through (the
    database is the last line: this is what it must survive)."""
    raw = type(ev).model_construct(**(ev.model_dump() | bad))
    topic = ingest.topics.event(ev.site_id, ev.camera_id, ev.kind)
    return Received(topic, raw.model_dump_json().encode(), 9, 1, utcnow(), 0, result=Events([raw]))


def committed(store: Store) -> dict[str, int]:
    return {c["camera_id"]: c["committed_seq"] for c in store.list_cameras()}


def fast_ingest(store: Store, run_id: str = "f", **ingest_cfg: Any) -> Ingest:
    config = make_config(run_id=run_id, database_url=store.url)
    for k, v in {"retry_initial_s": 0.05, "retry_max_s": 0.2, **ingest_cfg}.items():
        setattr(config.server.ingest, k, v)
    return Ingest(config, store)


CAMERAS = ("cam-a", "cam-b", "cam-c")


def interleaved(n: int) -> list[LineCrossing]:
    return [crossing(seq, camera_id=cam) for seq in range(1, n + 1) for cam in CAMERAS]


def test_an_event_a_trigger_refuses_is_a_dead_letter_and_every_other_camera_goes_on(store: Store) -> None:
    reject_rows(store, "events", "NEW.camera_id = 'cam-b' AND NEW.seq = 3", "cam-b seq 3 refused")
    _refused_event_is_isolated(store, "cam-b seq 3 refused")


def test_an_event_a_check_constraint_refuses_is_a_dead_letter_on_postgresql(pg_database: Any) -> None:
    """SQLite cannot add a CHECK constraint to an existing table: the trigger case covers it there."""
    store = Store(pg_database.url, schema=pg_database.schema)
    try:
        with store.engine.begin() as conn:
            conn.execute(
                text("ALTER TABLE events ADD CONSTRAINT cw_no_b3 CHECK (NOT (camera_id = 'cam-b' AND seq = 3))")
            )
        _refused_event_is_isolated(store, "cw_no_b3")
    finally:
        store.close()


def _refused_event_is_isolated(store: Store, reason: str) -> None:
    ingest = fast_ingest(store)
    events = interleaved(6)
    envelope = EventBatch(events=[crossing(seq, camera_id="cam-a") for seq in (7, 8, 9)])  # stays whole
    batch = [message(ingest, ev) for ev in events] + [message(ingest, envelope)]
    t0 = time.monotonic()
    ingest._process(batch)
    assert time.monotonic() - t0 < 10
    dead, total = store.list_dead_letters()
    assert total == 1 and '"seq":3' in dead[0]["payload"] and '"camera_id":"cam-b"' in dead[0]["payload"]
    assert "the database refused the message" in dead[0]["reason"]
    assert reason in dead[0]["reason"]
    assert store.count_events() == len(events) - 1 + 3
    marks = committed(store)
    # the refused seq is resolved with its dead letter (resolved_seqs): cam-b's watermark moves past it
    assert marks["cam-a"] == 9 and marks["cam-c"] == 6 and marks["cam-b"] == 6
    c = ingest.counters
    assert c.db_rejected == 1 and c.dead_letters == 1 and c.splits >= 1 and c.retries == 0


def test_an_integer_beyond_bigint_past_validation_is_a_dead_letter_on_postgresql(pg_database: Any) -> None:
    store = Store(pg_database.url, schema=pg_database.schema)
    try:
        ingest = fast_ingest(store)
        good = [crossing(seq, camera_id=cam) for seq in (1, 2) for cam in ("cam-a", "cam-b")]
        poison = unchecked(ingest, crossing(3, camera_id="cam-a"), track_id=2**63)
        later = [crossing(3, camera_id="cam-b"), crossing(4, camera_id="cam-a")]
        ingest._process([message(ingest, ev) for ev in good] + [poison] + [message(ingest, ev) for ev in later])
        dead, total = store.list_dead_letters()
        assert total == 1 and str(2**63) in dead[0]["payload"] and "OverflowError" in dead[0]["reason"]
        assert store.count_events() == 6
        assert committed(store)["cam-b"] == 3
    finally:
        store.close()


def test_nul_in_text_is_dead_lettered_alone_on_postgresql_and_its_dead_letter_is_stored(store: Store) -> None:
    """PostgreSQL text cannot hold NUL: the database refuses the event (SQLSTATE 22021), the dead letter
    keeps the payload as sent; SQLite holds NUL and stores it. The other camera is stored either way."""
    ingest = fast_ingest(store)
    m = unchecked(ingest, crossing(1, camera_id="cam-n"), line_id="l1\x00x")
    ingest._process([m, message(ingest, crossing(1, camera_id="cam-a"))])
    dead, total = store.list_dead_letters()
    if store.dialect == "postgresql":
        assert total == 1 and "22021" in dead[0]["reason"] and "\\u0000" in dead[0]["payload"]
        assert store.count_events() == 1 and ingest.counters.db_rejected == 1
    else:
        assert total == 0 and store.count_events() == 2
    assert committed(store)["cam-a"] == 1


def test_an_unknown_error_tied_to_one_message_is_isolated_but_one_that_is_everywhere_is_retried(
    store: Store,
) -> None:
    """A bug in an insert hook (a Python exception no classification knows): blamed on a message only
    when the rest of the batch is stored without it."""
    def picky(_s: Any, events: list[AnyEvent]) -> None:
        if any(ev.camera_id == "cam-b" and ev.seq == 2 for ev in events):
            raise KeyError("no rollup for this event")

    store.events.add_hook(picky)
    ingest = fast_ingest(store)
    ingest._process([message(ingest, ev) for ev in interleaved(3)])
    dead, total = store.list_dead_letters()
    assert total == 1 and "KeyError" in dead[0]["reason"] and '"seq":2' in dead[0]["payload"]
    assert store.count_events() == 8 and ingest.counters.db_rejected == 1

    broken = threading.Event()
    broken.set()

    def down(_s: Any, _events: list[AnyEvent]) -> None:
        if broken.is_set():
            raise RuntimeError("the rollup service is gone")

    store.events.hooks.remove(picky)
    store.events.add_hook(down)
    batch = [message(ingest, crossing(seq, camera_id=cam)) for seq in (4, 5) for cam in CAMERAS]
    worker = threading.Thread(target=ingest._process, args=(batch,))
    worker.start()
    wait_for(lambda: ingest.counters.retries >= 3, timeout=10)
    assert ingest.health()[0] == "retrying" and ingest.counters.retrying >= 3
    broken.clear()
    worker.join(10)
    assert not worker.is_alive()
    assert store.count_events() == 14 and store.list_dead_letters()[1] == 1  # nothing blamed on the messages
    assert ingest.counters.retrying == 0 and ingest.health()[0] in ("ok", "disconnected")


def test_one_cameras_bad_update_does_not_stop_another_cameras_watermark(store: Store) -> None:
    reject_rows(store, "cameras", "NEW.camera_id = 'cam-bad' AND NEW.committed_seq > 1", "cam-bad row refused")
    ingest = fast_ingest(store)
    for seqs in ((1, 2), (3, 4)):
        ingest._process([message(ingest, crossing(s, camera_id=cam)) for s in seqs for cam in ("cam-ok", "cam-bad")])
    marks = committed(store)
    assert marks["cam-ok"] == 4 and marks.get("cam-bad", 0) <= 1
    assert ingest.counters.camera_errors >= 2 and ingest.counters.committed["cam-ok"] == 4


def test_a_status_with_outbox_first_seq_beyond_bigint_blocks_only_its_own_camera(pg_database: Any) -> None:
    """PostgreSQL: a camera whose update the database refuses (once the walk at 2^63 - 1 overflowed; the
    walk is overflow-safe now, so a trigger refuses it) never stops the other camera."""
    store = Store(pg_database.url, schema=pg_database.schema)
    try:
        reject_rows(store, "cameras", "NEW.camera_id = 'cam-bad' AND NEW.committed_seq > 0", "cam-bad refused")
        ingest = fast_ingest(store)
        top = unchecked(ingest, status_event(1, camera_id="cam-bad"), seq=2**63 - 1, outbox_first_seq=2**63)
        ingest._process([message(ingest, crossing(1, camera_id="cam-ok")), top])
        for seq in (2, 3):
            later = unchecked(ingest, status_event(1, camera_id="cam-bad"), seq=2**63 - 1)
            ingest._process([message(ingest, crossing(seq, camera_id="cam-ok")), later])
        assert committed(store)["cam-ok"] == 3
        assert ingest.counters.camera_errors >= 1
    finally:
        store.close()


@contextmanager
def broker_ingest(
    config: Any, store: Store, *, wait_subscribed: bool = True
) -> Iterator[Ingest]:
    ingest = Ingest(config, store)
    ingest.start()
    try:
        if wait_subscribed:
            assert ingest.subscribed.wait(10), "ingest did not subscribe"
        yield ingest
    finally:
        ingest.stop()


def test_a_poison_message_through_the_broker_is_acknowledged_and_the_others_stored_within_10_s(
    store: Store, mqtt_broker: tuple[str, int], run_id: str
) -> None:
    host, port = mqtt_broker
    reject_rows(store, "events", "NEW.camera_id = 'cam-p'", "cam-p refused")
    config = make_config(run_id=run_id, database_url=store.url, host=host, port=port)
    pub = publisher(host, port, f"cw-pub-{run_id}")
    t = config.mqtt.topic_prefix
    try:
        with broker_ingest(config, store) as ingest:
            poison = crossing(1, camera_id="cam-p")
            pub.publish(f"{t}/{SITE}/cam-p/event/line_crossing", poison.model_dump_json(), qos=1).wait_for_publish(5)
            good = [crossing(seq, camera_id=cam) for seq in range(1, 11) for cam in ("cam-a", "cam-b")]
            t0 = time.monotonic()
            for ev in good:
                pub.publish(f"{t}/{SITE}/{ev.camera_id}/event/line_crossing", ev.model_dump_json(), qos=1)
            wait_for(lambda: store.count_events() == len(good), timeout=10)
            assert time.monotonic() - t0 < 10
            wait_for(lambda: committed(store).get("cam-a") == 10 and committed(store).get("cam-b") == 10)
            assert ingest.flush(5) and ingest.wait_published(5)
            assert store.list_dead_letters()[1] == 1 and ingest.counters.db_rejected == 1
        # acknowledged: the persistent session of the same client id holds nothing to redeliver
        with broker_ingest(config, store) as again:
            assert again.wait_idle(quiet_s=1.0, timeout=10)
            assert again.counters.received == 0 and store.list_dead_letters()[1] == 1
    finally:
        for cam in ("cam-a", "cam-b"):
            pub.publish(f"{t}/{SITE}/{cam}/control/committed", b"", qos=1, retain=True).wait_for_publish(5)
        close_client(pub)


def test_a_lost_connection_is_retried_with_backoff_and_nothing_is_dead_lettered(
    pg_database: Any, mqtt_broker: tuple[str, int], run_id: str
) -> None:
    """PostgreSQL: the ingest's connection is terminated while it waits on a locked table."""
    host, port = mqtt_broker
    store = Store(pg_database.url, schema=pg_database.schema)
    config = make_config(run_id=run_id, database_url=store.url, host=host, port=port)
    config.server.ingest.retry_initial_s = 0.1
    pub = publisher(host, port, f"cw-pub-{run_id}")
    locker = create_engine(pg_database.url, connect_args={"options": f"-csearch_path={pg_database.schema}"})
    t = config.mqtt.topic_prefix
    try:
        with broker_ingest(config, store) as ingest, locker.connect() as conn:
            conn.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
            ev = crossing(1, camera_id="cam-a")
            pub.publish(f"{t}/{SITE}/cam-a/event/line_crossing", ev.model_dump_json(), qos=1)

            def terminate_copy() -> int:
                conn.execute(text("SELECT pg_stat_clear_snapshot()"))  # else one snapshot per transaction
                return conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE pid <> pg_backend_pid() AND datname = current_database() AND query LIKE 'COPY events%'"
                    )
                ).scalar_one()

            wait_for(terminate_copy, timeout=10)
            wait_for(lambda: ingest.counters.retries >= 1, timeout=10)
            conn.rollback()  # the lock goes
            wait_for(lambda: store.count_events() == 1, timeout=15)
            assert store.list_dead_letters()[1] == 0 and ingest.counters.db_rejected == 0
            wait_for(lambda: ingest.counters.retrying == 0)
    finally:
        pub.publish(f"{t}/{SITE}/cam-a/control/committed", b"", qos=1, retain=True).wait_for_publish(5)
        close_client(pub)
        locker.dispose()
        store.close()


def test_metrics_answer_200_on_loopback_without_a_key_while_ingest_runs(
    mqtt_broker: tuple[str, int], sqlite_url: str, run_id: str
) -> None:
    host, port = mqtt_broker
    config = make_config(run_id=run_id, database_url=sqlite_url, host=host, port=port)
    handle = serve_in_thread(config, api_keys="operator:operator-key-1", host="127.0.0.1")
    pub = publisher(host, port, f"cw-pub-{run_id}")
    try:
        ingest = handle.app.state.ingest
        assert ingest.subscribed.wait(10)
        ev = crossing(1)
        pub.publish(ingest.topics.event(SITE, "cam-1", ev.kind), ev.model_dump_json(), qos=1)
        wait_for(lambda: ingest.counters.stored == 1)
        r = httpx.get(handle.url + "/metrics", timeout=10)
        assert r.status_code == 200, r.text
        for line in (
            "citywatch_ingest_queue_depth 0.0",
            "citywatch_ingest_stored_total 1.0",
            'citywatch_ingest_state{state="ok"} 1.0',
            'citywatch_ingest_state{state="stalled"} 0.0',
            "citywatch_ingest_retries_total 0.0",
            "citywatch_ingest_oldest_unacked_seconds 0.0",
            "citywatch_ingest_dead_letters_last_minute 0.0",
            "citywatch_db_up 1.0",
        ):
            assert line in r.text, line
    finally:
        handle.stop()
        pub.publish(ingest.topics.control(SITE, "cam-1", "committed"), b"", qos=1, retain=True).wait_for_publish(5)
        close_client(pub)


def test_health_turns_degraded_while_the_events_table_is_locked_and_ok_again_after(
    pg_database: Any, mqtt_broker: tuple[str, int], run_id: str
) -> None:
    """A locked table: the ping times out and the message that arrives stays unacknowledged (stalled)."""
    host, port = mqtt_broker
    store = Store(pg_database.url, schema=pg_database.schema)
    config = make_config(run_id=run_id, database_url=store.url, host=host, port=port)
    config.server.ingest.stall_after_s = 3
    config.server.ingest.db_timeout_s = 1
    handle = serve_in_thread(config, store=store, api_keys="")
    pub = publisher(host, port, f"cw-pub-{run_id}")
    locker = create_engine(pg_database.url, connect_args={"options": f"-csearch_path={pg_database.schema}"})
    ingest = handle.app.state.ingest
    t = config.mqtt.topic_prefix

    def health() -> dict[str, Any]:
        return httpx.get(handle.url + "/api/v1/health", timeout=10).json()

    try:
        assert ingest.subscribed.wait(10)
        assert health()["status"] == "ok"
        with locker.connect() as conn:
            conn.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
            t0 = time.monotonic()
            body = wait_for(lambda: (b := health())["status"] == "degraded" and b, timeout=30)
            assert body["db"]["state"] == "slow" and "did not answer within 1 s" in body["db"]["detail"]
            ev = crossing(1)
            pub.publish(f"{t}/{SITE}/cam-1/event/line_crossing", ev.model_dump_json(), qos=1)
            body = wait_for(lambda: (b := health())["ingest"]["state"] == "stalled" and b, timeout=30)
            assert time.monotonic() - t0 < 30
            assert body["status"] == "degraded" and body["ingest"]["oldest_unacked_s"] > 3
            assert any("unacknowledged" in p for p in body["problems"])
            metrics = httpx.get(handle.url + "/metrics", timeout=10).text
            assert 'citywatch_ingest_state{state="stalled"} 1.0' in metrics and "citywatch_db_up 0.0" in metrics
            conn.rollback()
        wait_for(lambda: store.count_events() == 1, timeout=10)
        body = wait_for(lambda: (b := health())["status"] == "ok" and b, timeout=10)
        assert body["ingest"]["state"] == "ok" and body["problems"] == []
    finally:
        handle.stop()
        pub.publish(f"{t}/{SITE}/cam-1/control/committed", b"", qos=1, retain=True).wait_for_publish(5)
        close_client(pub)
        locker.dispose()
        store.close()


def test_health_reports_a_high_dead_letter_rate(store: Store) -> None:
    ingest = fast_ingest(store, dead_letters_warn_per_min=2)
    bad = message(ingest, crossing(1))._replace(payload=b"{not json")
    ingest._process([parsed(ingest.topics, bad._replace(result=None)) for _ in range(3)])
    ingest.transport.connected = True  # the broker side is not under test here
    state, problems = ingest.health()
    assert state == "degraded" and "3 dead letters in the last minute" in problems[0]
    assert ingest.stats()["dead_letters_per_min"] == 3


def test_a_database_that_accepts_but_never_answers_reads_as_slow_within_the_timeout() -> None:
    """A hung server (TCP accepted, no reply): the probe answers ``slow`` itself and stacks no second ping."""
    import socket

    from server.api.health import DbProbe

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    host, port = silent.getsockname()
    store = Store(f"postgresql+psycopg://postgres@{host}:{port}/test", migrate=False)
    try:
        probe = DbProbe(store, timeout_s=0.5)
        t0 = time.monotonic()
        state, detail = probe.check()
        assert state == "slow" and "did not answer within 0.5 s" in (detail or "")
        assert time.monotonic() - t0 < 3
        first = probe._ping
        assert probe.check()[0] == "slow" and probe._ping is first  # the hung ping is waited for, not repeated
    finally:
        silent.close()
        store.engine.dispose()


def test_an_unknown_error_of_a_message_alone_in_its_batch_is_blamed_once_later_messages_are_stored(
    store: Store,
) -> None:
    """Light traffic: the bad message is the whole batch. Messages that arrive while it is retried are
    stored beside it, which ties the error to it; then it is dead-lettered and acknowledged."""
    def picky(_s: Any, events: list[AnyEvent]) -> None:
        if any(ev.camera_id == "cam-p" for ev in events):
            raise KeyError("no rollup for this event")

    store.events.add_hook(picky)
    ingest = fast_ingest(store, retry_initial_s=0.2)
    writer = threading.Thread(target=ingest._run_writer)
    writer.start()
    try:

        def arrive(ev: AnyEvent, mid: int) -> None:
            m = message(ingest, ev, classify=False, mid=mid)
            ingest._on_publishes([(m.topic.encode(), m.payload, mid, 1)])

        arrive(crossing(1, camera_id="cam-p"), 1)
        wait_for(lambda: ingest.counters.retries >= 1, timeout=10)
        for i, ev in enumerate(interleaved(3)):
            arrive(ev, 10 + i)
        assert ingest.flush(10)
        assert store.count_events() == 9 and store.list_dead_letters()[1] == 1
        assert ingest.counters.db_rejected == 1 and ingest.oldest_unacked_s() == 0.0
        assert committed(store)["cam-a"] == 3 and ingest.health()[0] in ("ok", "disconnected")
    finally:
        ingest.stop()
        writer.join(10)
