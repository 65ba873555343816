"""Hostile ingest: over 10,000 malformed or hostile messages interleaved with good ones from several
cameras, through a real Mosquitto, into SQLite and PostgreSQL.

What must hold, whatever arrives: every good event is stored exactly once (with its own content, never a
look-alike's), every bad message is kept as a dead letter with a reason, every camera's committed watermark
reaches its last seq (also past seqs whose event was dead-lettered for its clock), and ingest never stalls.
The kinds of hostility: wrong JSON types, numbers beyond what the database holds, NUL in text, huge
strings, deep nesting, bytes that are not UTF-8, another camera's identity or event ids, a different
payload under a known id, clocks in 1970 and 2199, truncated and random bytes.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from server_testkit import close_client, crossing, make_config, publisher, status_event, wait_for
from sqlalchemy import select
from support import PrivateBroker

from citywatch.contract import CountTotal, EventBatch, Topics, ZoneOccupancy
from server.ingest import Ingest
from server.storage.models import EventRow
from server.storage.store import Store

SITE = "site-1"
CAMERAS = ("cam-a", "cam-b", "cam-c")
ATTACKER = "cam-x"  # a real camera credential that republishes the others' ids on its own topic
GOOD_PER_CAMERA = 400
N_BAD = 10_000
#: The shipped broker's zero-loss limits: a default Mosquitto drops QoS 1 messages beyond 1000 queued.
BROKER_LIMITS = "max_queued_messages 1000000\nmax_queued_bytes 0\nmax_inflight_messages 2000\nmax_packet_size 1048576\n"

Json = dict[str, Any]


def _json(ev: Any) -> Json:
    return json.loads(ev.model_dump_json())


def _count_total(seq: int, camera_id: str) -> CountTotal:
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    return CountTotal(
        event_id=uuid.uuid4(), camera_id=camera_id, site_id=SITE, seq=seq, ts=start, config_version="t",
        model_version="t", line_id="l1", direction="in", class_name="car", count=3, interval_start=start,
        interval_end=start + timedelta(seconds=60), interval_s=60, first_frame_index=0, last_frame_index=10,
    )


def _zone(seq: int, camera_id: str) -> ZoneOccupancy:
    return ZoneOccupancy(
        event_id=uuid.uuid4(), camera_id=camera_id, site_id=SITE, seq=seq, ts=datetime.now(timezone.utc),
        config_version="t", model_version="t", zone_id="z1", interval_s=60.0, frame_index=10,
        occupancy={"car": 1}, occupied_fraction=0.5, vehicles_entered=4,
    )


class Plan:
    """The messages to publish, in order, and what each must become."""

    def __init__(self, topics: Topics, rng: random.Random) -> None:
        self.topics = topics
        self.rng = rng
        self.items: list[tuple[str, bytes]] = []
        self.good: dict[tuple[str, str], Json] = {}  # (camera, event_id) -> the payload that must be stored
        self.last_seq: dict[str, int] = {}
        self.bad = Counter[str]()  # category -> messages that must each become a dead letter
        self.quiet_duplicates = 0

    def topic(self, camera: str, kind: str = "line_crossing") -> str:
        return self.topics.event(SITE, camera, kind)

    def add_good(self, camera: str, ev: Any) -> None:
        payload = _json(ev)
        self.good[(camera, payload["event_id"])] = payload
        self.items.append((self.topic(camera, payload["kind"]), json.dumps(payload).encode()))

    def add_bad(self, category: str, topic: str, payload: bytes) -> None:
        self.bad[category] += 1
        self.items.append((topic, payload))


def _mutations(rng: random.Random) -> list[tuple[str, Callable[[Json], Json | bytes]]]:
    """Ways to spoil a good line crossing (category, payload -> spoiled payload)."""

    def setf(key: str, *values: Any) -> Callable[[Json], Json]:
        return lambda p: {**p, key: rng.choice(values)}

    def deep(p: Json) -> bytes:
        n = rng.choice([100, 1000, 20000])
        return ('{"kind": "line_crossing", "camera_id": ' + "[" * n + "]" * n + "}").encode()

    def non_utf8(p: Json) -> bytes:
        raw = json.dumps({**p, "line_id": "LINEID"}).encode()
        return raw.replace(b"LINEID", rng.choice([b"\xff\xfe", b"l\xc3(", b"\xed\xa0\x80"]))

    def nan(p: Json) -> bytes:
        return json.dumps({**p, "speed_kmh": rng.choice([float("nan"), float("inf")])}).encode()

    def truncated(p: Json) -> bytes:
        raw = json.dumps(p).encode()
        return raw[: rng.randrange(1, len(raw))]

    return [
        ("wrong_type", setf("seq", True, "5", 5.5, None, [5])),
        ("wrong_type", setf("track_id", True, "1", 1.5, {})),
        ("wrong_type", setf("direction", 1, True, None)),
        ("wrong_type", setf("ts", 12345, True, "yesterday")),
        ("out_of_range", setf("seq", 2**63, 10**30, 0, -1)),
        ("out_of_range", setf("track_id", 2**63, 10**30, -5)),
        ("out_of_range", setf("frame_index", 2**64, 10**30)),
        ("out_of_range", setf("speed_kmh", 1e308, -1.0, 10**400)),
        ("nul", setf("line_id", "l\u00001", "\u0000")),
        ("nul", setf("config_version", "v\u0000", "\u0000\u0000")),
        ("nul", setf("model_version", "m\u0000x")),
        ("huge_string", lambda p: {**p, "model_version": "x" * rng.choice([129, 5000, 60_000])}),
        ("huge_string", lambda p: {**p, "line_id": "l" * rng.choice([65, 100_000])}),
        ("deep_nesting", deep),
        ("non_utf8", non_utf8),
        ("nan", nan),
        ("truncated", truncated),
        ("random_bytes", lambda p: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))),
        ("not_an_event", lambda p: json.dumps(rng.choice([[], 1, "s", None, {"kind": "nope"}])).encode()),
        ("wrong_major", setf("schema_version", "2.0", "0.9", "1")),
        ("extra_field", lambda p: {**p, "extra": 1}),
        ("other_camera_in_payload", lambda p: {**p, "camera_id": next(c for c in CAMERAS if c != p["camera_id"])}),
        ("other_site_in_payload", setf("site_id", "site-2")),
    ]


def _plan(topics: Topics, rng: random.Random) -> Plan:
    plan = Plan(topics, rng)
    mutations = _mutations(rng)

    # Per camera: its seq stream, a few seqs taken by events whose clock is wrong (dead letters that the
    # watermark must pass), the rest good events of every kind that carries numbers.
    streams: dict[str, list[tuple[str, Any]]] = {}
    for cam in CAMERAS:
        stream: list[tuple[str, Any]] = []
        for seq in range(1, GOOD_PER_CAMERA + 1):
            r = rng.random()
            if r < 0.03:
                ts = rng.choice([datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(2199, 1, 1, tzinfo=timezone.utc)])
                stream.append(("clock", crossing(seq, camera_id=cam, site_id=SITE, ts=ts)))
            elif r < 0.1:
                stream.append(("good", status_event(seq, camera_id=cam, site_id=SITE, outbox_first_seq=1)))
            elif r < 0.15:
                stream.append(("good", _count_total(seq, cam)))
            elif r < 0.2:
                stream.append(("good", _zone(seq, cam)))
            else:
                stream.append(("good", crossing(seq, camera_id=cam, site_id=SITE)))
        streams[cam] = stream
        plan.last_seq[cam] = GOOD_PER_CAMERA
    # The attacker camera publishes, on its own topic, events under the ids the others use: identity is
    # per camera, so these are the attacker's own (stored) and never make the others' look like duplicates.
    stolen = [ev.event_id for cam in CAMERAS for kind, ev in streams[cam] if kind == "good"]
    rng.shuffle(stolen)
    streams[ATTACKER] = [
        ("good", crossing(seq, camera_id=ATTACKER, site_id=SITE, event_id=stolen[seq - 1])) for seq in range(1, 101)
    ]
    plan.last_seq[ATTACKER] = 100

    bad_left = N_BAD
    published: list[tuple[str, Json]] = []  # (camera, payload) of good events already in the plan
    cursors = dict.fromkeys(streams, 0)
    while bad_left > 0 or any(cursors[c] < len(streams[c]) for c in streams):
        open_cams = [c for c in streams if cursors[c] < len(streams[c])]
        # about three bad messages per good one until the good ones run out
        if open_cams and (bad_left == 0 or rng.random() < 0.25):
            cam = rng.choice(open_cams)
            kind, ev = streams[cam][cursors[cam]]
            cursors[cam] += 1
            if kind == "clock":
                plan.add_bad("timestamp_out_of_range", plan.topic(cam), ev.model_dump_json().encode())
                bad_left -= 1
            else:
                plan.add_good(cam, ev)
                published.append((cam, _json(ev)))
            continue
        bad_left -= 1
        r = rng.random()
        if published and r < 0.04:
            cam, orig = rng.choice(published)
            changed = {**orig}
            if orig["kind"] == "line_crossing":
                changed["class_name"] = "bus" if orig["class_name"] != "bus" else "truck"
            else:
                changed["model_version"] = orig["model_version"] + "-other"
            plan.add_bad("conflicting_duplicate", plan.topic(cam, orig["kind"]), json.dumps(changed).encode())
            continue
        if published and r < 0.06:  # an exact redelivery: a quiet duplicate, not a dead letter
            cam, orig = rng.choice(published)
            plan.items.append((plan.topic(cam, orig["kind"]), json.dumps(orig).encode()))
            plan.quiet_duplicates += 1
            bad_left += 1
            continue
        cam = rng.choice(CAMERAS)
        base = _json(crossing(rng.randrange(1, GOOD_PER_CAMERA + 1), camera_id=cam, site_id=SITE))
        if r < 0.09:  # beyond-storage numbers in the other kinds
            seq = rng.randrange(1, GOOD_PER_CAMERA + 1)
            which = rng.randrange(3)
            if which == 0:
                p = {**_json(_count_total(seq, cam)), "count": rng.choice([2**63, 10**30])}
                kind = "count_total"
            elif which == 1:
                p = {**_json(_zone(seq, cam)), "vehicles_entered": rng.choice([2**63, 10**30])}
                kind = "zone_occupancy"
            else:
                p = {**_json(status_event(seq, camera_id=cam, site_id=SITE)), "outbox_first_seq": 2**63}
                kind = "camera_status"
            plan.add_bad("out_of_range", plan.topic(cam, kind), json.dumps(p).encode())
            continue
        if r < 0.1:  # a batch envelope with another camera's event inside
            other = rng.choice([c for c in CAMERAS if c != cam])
            inside = [crossing(1, camera_id=cam, site_id=SITE), crossing(2, camera_id=other, site_id=SITE)]
            env = EventBatch(events=inside)
            plan.add_bad("other_camera_in_batch", plan.topic(cam, "batch"), env.model_dump_json().encode())
            continue
        if r < 0.11:  # a kind published on another kind's topic
            plan.add_bad("wrong_topic_kind", plan.topic(cam, "camera_status"), json.dumps(base).encode())
            continue
        category, spoil = rng.choice(mutations)
        out = spoil(dict(base))
        payload = out if isinstance(out, bytes) else json.dumps(out).encode()
        plan.add_bad(category, plan.topic(cam, "line_crossing"), payload)
    return plan


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/db/citywatch.sqlite", None
    else:
        pg = request.getfixturevalue("pg_database")
        yield pg.url, pg.schema


def test_ten_thousand_hostile_messages_never_stall_ingest_or_cost_a_good_event(
    db: tuple[str, str | None], tmp_path: Path, run_id: str
) -> None:
    url, schema = db
    broker = PrivateBroker(tmp_path, BROKER_LIMITS)
    broker.start()
    cfg = make_config(run_id=run_id, database_url=url, port=broker.port)
    store = Store(url, schema=schema)
    ingest = Ingest(cfg, store)
    topics = Topics(cfg.mqtt.topic_prefix)
    plan = _plan(topics, random.Random(20261202))
    n_bad = sum(plan.bad.values())
    assert n_bad >= N_BAD
    pub = publisher("127.0.0.1", broker.port, f"cw-hostile-{run_id}")
    t0 = time.monotonic()
    try:
        ingest.start()
        assert ingest.subscribed.wait(10)
        infos = [pub.publish(t, p, qos=1) for t, p in plan.items]
        for info in infos:
            info.wait_for_publish(60)

        def settled() -> bool:
            marks = store.committed_seqs()
            return (
                ingest.counters.received >= len(plan.items)
                and all(marks.get(c, 0) >= last for c, last in plan.last_seq.items())
                and store.list_dead_letters(limit=1)[1] >= n_bad
            )

        wait_for(settled, 180, 0.5)
        assert ingest.flush(30)
        elapsed = time.monotonic() - t0

        with store.db.session() as s:
            rows = s.execute(select(EventRow.camera_id, EventRow.event_id, EventRow.payload)).all()
        stored = Counter((cam, eid) for cam, eid, _ in rows)
        assert all(n == 1 for n in stored.values()), "an event was stored twice"
        assert set(stored) == set(plan.good), (
            f"{len(set(plan.good) - set(stored))} good events missing, {len(set(stored) - set(plan.good))} not good"
        )
        for cam, eid, payload in rows:  # each stored event is the good one, never a look-alike
            got, want = json.loads(payload), plan.good[(cam, eid)]
            assert {k: got.get(k) for k in want if k != "ts"} == {k: v for k, v in want.items() if k != "ts"}

        letters, total = store.list_dead_letters(limit=n_bad + 100)
        assert total == n_bad, (total, n_bad)
        assert all(d["reason"] for d in letters), "a dead letter without a reason"
        reasons = Counter(d["reason"].split(":", 1)[0].split(" ", 1)[0] for d in letters)
        assert sum(1 for d in letters if "timestamp_out_of_range" in d["reason"]) == plan.bad["timestamp_out_of_range"]
        assert sum(1 for d in letters if "conflicting_duplicate" in d["reason"]) == plan.bad["conflicting_duplicate"]

        marks = store.committed_seqs()
        assert {c: marks.get(c) for c in plan.last_seq} == plan.last_seq
        assert ingest._writer is not None and ingest._writer.is_alive()
        print(
            f"\nhostile ingest on {store.dialect}: {len(plan.items)} messages in {elapsed:.1f} s; "
            f"{len(plan.good)} good stored once each, {plan.quiet_duplicates} exact redeliveries ignored, "
            f"{n_bad} bad -> {total} dead letters; by category {dict(sorted(plan.bad.items()))}; "
            f"reasons {dict(reasons.most_common(8))}; watermarks {marks}"
        )
    finally:
        ingest.stop()
        close_client(pub)
        store.close()
        broker.stop()

