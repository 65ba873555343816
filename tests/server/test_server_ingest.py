"""Ingest against the real Mosquitto: exactly-once storage, dead letters, the committed watermark."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from server_testkit import close_client, crossing, make_config, publisher, status_event, wait_for

from citywatch.contract import EventBatch, StatusPayload, Topics, parse_control
from server.ingest import Ingest, InvalidMessage
from server.ingest.messages import Events, Ignored, Received, Status
from server.storage.store import Store

SITE, CAM = "site-1", "cam-1"


class CommittedWatcher:
    """Subscribes to one camera's committed topic and keeps what arrives (retained or live)."""

    def __init__(self, host: str, port: int, client_id: str, topic: str) -> None:
        self.messages: list[tuple[int, bool]] = []  # (seq, retained)
        self._lock = threading.Lock()
        self.client = publisher(host, port, client_id)
        self.client.on_message = self._on_message
        self.client.subscribe(topic, qos=1)

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.payload:
            with self._lock:
                self.messages.append((parse_control(msg.payload).seq, bool(msg.retain)))  # type: ignore[union-attr]

    def last(self) -> int | None:
        with self._lock:
            return self.messages[-1][0] if self.messages else None

    def close(self) -> None:
        close_client(self.client)


@pytest.fixture
def ingest_env(
    mqtt_broker: tuple[str, int], sqlite_url: str, run_id: str
) -> Iterator[tuple[Ingest, Store, mqtt.Client]]:
    host, port = mqtt_broker
    config = make_config(run_id=run_id, database_url=sqlite_url, host=host, port=port)
    store = Store(sqlite_url)
    ingest = Ingest(config, store)
    ingest.start()
    pub = publisher(host, port, f"cw-pub-{run_id}")
    assert ingest.subscribed.wait(10), "ingest did not subscribe"
    yield ingest, store, pub
    ingest.stop()
    topics = ingest.topics
    for topic in (topics.control(SITE, CAM, "committed"), topics.status(SITE, CAM)):
        pub.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # leave no retained junk behind
    close_client(pub)
    store.close()


def test_ingest_stores_each_event_once_and_dead_letters_the_rest(
    ingest_env: tuple[Ingest, Store, mqtt.Client], mqtt_broker: tuple[str, int], run_id: str
) -> None:
    ingest, store, pub = ingest_env
    t = Topics(ingest.config.mqtt.topic_prefix)
    singles = [crossing(i) for i in range(1, 6)]
    batch = EventBatch(events=[crossing(6), status_event(7)])
    for ev in singles:
        pub.publish(t.event(SITE, CAM, ev.kind), ev.model_dump_json(), qos=1)
    pub.publish(t.event(SITE, CAM, "batch"), batch.model_dump_json(), qos=1)
    # duplicates: a resend of one event and of the whole batch
    pub.publish(t.event(SITE, CAM, "line_crossing"), singles[1].model_dump_json(), qos=1)
    pub.publish(t.event(SITE, CAM, "batch"), batch.model_dump_json(), qos=1)
    # invalid messages
    wrong_major = crossing(8).model_dump(mode="json") | {"schema_version": "2.0"}
    pub.publish(t.event(SITE, CAM, "line_crossing"), b"{not json", qos=1)
    pub.publish(t.event(SITE, CAM, "line_crossing"), json.dumps(wrong_major), qos=1)
    pub.publish(t.event(SITE, "cam-2", "line_crossing"), crossing(9).model_dump_json(), qos=1)
    pub.publish(t.event(SITE, CAM, "batch"), crossing(10).model_dump_json(), qos=1)
    pub.publish(t.status(SITE, CAM), b'{"state": "sleeping"}', qos=1)
    pub.publish(
        t.status(SITE, CAM),
        StatusPayload(state="online", camera_id=CAM, device_id="edge-x").model_dump_json(),
        qos=1,
        retain=True,
    )

    wait_for(lambda: ingest.counters.received >= 14 and ingest.flush(5), timeout=15)
    assert store.count_events() == 7
    assert ingest.counters.stored == 7 and ingest.counters.duplicates == 3
    items, total = store.list_dead_letters()
    assert total == 5 == ingest.counters.dead_letters
    reasons = " | ".join(d["reason"] for d in items)
    assert "invalid JSON" in reasons
    assert "schema major version 2 is not supported" in reasons
    assert "published on the topic of site-1/cam-2" in reasons
    assert "'line_crossing' message was published on the 'batch' topic" in reasons
    assert "invalid status message" in reasons

    cam = {c["camera_id"]: c for c in store.list_cameras()}[CAM]
    assert cam["committed_seq"] == 7 and cam["state"] == "online" and cam["last_status"]["seq"] == 7

    assert ingest.wait_published(5)
    host, port = mqtt_broker
    watcher = CommittedWatcher(host, port, f"cw-watch-{run_id}", t.control(SITE, CAM, "committed"))
    try:
        wait_for(lambda: watcher.last() == 7, timeout=5)
        assert watcher.messages[0][1] is True, watcher.messages  # it was retained
    finally:
        watcher.close()


def test_watermark_waits_for_a_gap_and_jumps_with_outbox_first_seq(
    ingest_env: tuple[Ingest, Store, mqtt.Client], mqtt_broker: tuple[str, int], run_id: str
) -> None:
    ingest, store, pub = ingest_env
    t = ingest.topics
    host, port = mqtt_broker
    watcher = CommittedWatcher(host, port, f"cw-watch-{run_id}", t.control(SITE, CAM, "committed"))
    try:

        def send(*events: object) -> None:
            for ev in events:
                pub.publish(t.event(SITE, CAM, ev.kind), ev.model_dump_json(), qos=1)  # type: ignore[attr-defined]

        send(crossing(1), crossing(2), crossing(4))
        wait_for(lambda: watcher.last() == 2)
        send(crossing(3))
        wait_for(lambda: watcher.last() == 4)
        send(status_event(12, outbox_first_seq=10))  # 5..9 are gone for good; 10, 11 still on the edge
        wait_for(lambda: watcher.last() == 9)
        send(crossing(10), crossing(11))
        wait_for(lambda: watcher.last() == 12)
        assert ingest.counters.committed[CAM] == 12
    finally:
        watcher.close()


def test_ingest_speaks_mqtt_311_too(mqtt_broker: tuple[str, int], sqlite_url: str, run_id: str) -> None:
    host, port = mqtt_broker
    config = make_config(run_id=run_id, database_url=sqlite_url, host=host, port=port, protocol="3.1.1")
    store = Store(sqlite_url)
    ingest = Ingest(config, store)
    ingest.start()
    pub = publisher(host, port, f"cw-pub-{run_id}")
    try:
        assert ingest.subscribed.wait(10)
        ev = crossing(1)
        pub.publish(ingest.topics.event(SITE, CAM, ev.kind), ev.model_dump_json(), qos=1)
        wait_for(lambda: store.count_events() == 1)
    finally:
        ingest.stop()
        # MQTT 3.1.1 sessions never expire: end this one so runs leave nothing on the broker
        cleaner = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=config.server.client_id, protocol=mqtt.MQTTv311, clean_session=True
        )
        cleaner.connect(host, port, 30)
        cleaner.disconnect()
        pub.publish(ingest.topics.control(SITE, CAM, "committed"), b"", qos=1, retain=True).wait_for_publish(5)
        close_client(pub)
        store.close()


def test_unparseable_topics_and_payloads_get_readable_reasons(sqlite_url: str) -> None:
    ingest = Ingest(make_config(run_id="p", database_url=sqlite_url), store=None)  # type: ignore[arg-type]
    prefix = ingest.topics.prefix
    cases = {
        "other/site-1/cam-1/event/line_crossing": "is not under prefix",
        f"{prefix}/site-1/cam-1/event": "does not match",
        f"{prefix}/site-1/cam-1/control/committed": "does not consume 'control'",
    }
    for topic, reason in cases.items():
        with pytest.raises(InvalidMessage, match=reason):
            ingest.parse(topic, crossing(1).model_dump_json().encode())
    with pytest.raises(InvalidMessage, match="empty payload"):
        ingest.parse(f"{prefix}/site-1/cam-1/event/line_crossing", b"")
    with pytest.raises(InvalidMessage, match="schema error: .*seq"):
        bad = crossing(1).model_dump(mode="json") | {"seq": 0}
        ingest.parse(f"{prefix}/site-1/cam-1/event/line_crossing", json.dumps(bad).encode())
    assert ingest.parse(f"{prefix}/site-1/cam-1/status", b"") == Ignored()


def test_a_transaction_is_sized_by_messages_and_by_events_never_splitting_a_message(sqlite_url: str) -> None:
    from citywatch.contract import utcnow
    config = make_config(run_id="b", database_url=sqlite_url)
    config.server.ingest.batch_max, config.server.ingest.batch_max_events = 4, 120
    ingest = Ingest(config, store=None, linger_s=0)  # type: ignore[arg-type]
    topics, seq = ingest.topics, iter(range(1, 10_000))

    def msg(n_events: int) -> Received:
        if n_events == 0:  # a status message: no events
            body = StatusPayload(camera_id="cam-1", state="online", device_id="edge-1")
            topic = topics.status("site-1", "cam-1")
        elif n_events == 1:
            topic, body = topics.event("site-1", "cam-1", "line_crossing"), crossing(next(seq))
        else:
            evs = [crossing(next(seq)) for _ in range(n_events)]
            topic, body = topics.event("site-1", "cam-1", "batch"), EventBatch(events=evs)
        return Received(topic, body.model_dump_json().encode(), 1, 1, utcnow(), 0)

    for n in (50, 50, 50, 300, 1, 1, 1, 1, 1, 0):
        ingest.batcher.put([msg(n)])
    sizes = []
    while ingest.batcher.depth():
        batch = ingest.batcher.collect()
        assert batch and all(isinstance(m.result, (Events, Status)) for m in batch)
        sizes.append([m.n_events for m in batch])
    # 50+50 leaves no room for 50 more; 300 goes alone; then 4 messages at most
    assert sizes == [[50, 50], [50], [300], [1, 1, 1, 1], [1, 0]]


class _BrokenStore(Store):
    """A real store whose batch commits fail, as when the database is down."""

    def store_batch(self, *args: object, **kwargs: object) -> tuple[list[str], list[str]]:
        raise RuntimeError("database is down")


def test_messages_not_committed_are_redelivered_to_the_next_session(
    mqtt_broker: tuple[str, int], sqlite_url: str, run_id: str
) -> None:
    host, port = mqtt_broker
    config = make_config(run_id=run_id, database_url=sqlite_url, host=host, port=port)
    pub = publisher(host, port, f"cw-pub-{run_id}")
    broken = _BrokenStore(sqlite_url)
    first = Ingest(config, broken)
    first.start()
    store = Store(sqlite_url)
    second = Ingest(config, store)  # same client id: resumes the persistent session
    try:
        assert first.subscribed.wait(10)
        events = [crossing(i) for i in (1, 2, 3)]
        for ev in events:
            pub.publish(first.topics.event(SITE, CAM, ev.kind), ev.model_dump_json(), qos=1).wait_for_publish(5)
        wait_for(lambda: first.counters.db_errors >= 1)
        first.stop()  # gives up without acknowledging anything
        assert store.count_events() == 0
        second.start()
        wait_for(lambda: store.count_events() == 3, timeout=15)
        assert second.flush(5) and {c["camera_id"]: c for c in store.list_cameras()}[CAM]["committed_seq"] == 3
    finally:
        second.stop()
        pub.publish(first.topics.control(SITE, CAM, "committed"), b"", qos=1, retain=True).wait_for_publish(5)
        close_client(pub)
        store.close()
        broken.close()
