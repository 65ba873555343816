"""The queue between paho's thread and the ingest writer, and the batches taken from it (no broker)."""

from __future__ import annotations

import functools
import threading
import time

from server_testkit import crossing

from citywatch.contract import EventBatch, Topics, utcnow
from server.ingest.batching import Batcher
from server.ingest.messages import Events, Invalid, Received
from server.ingest.parse import parsed

TOPICS = Topics("cwbatch")


def message(n_events: int, mid: int = 1) -> Received:
    """A received message carrying ``n_events`` events (0: an invalid one, which carries none)."""
    if n_events == 0:
        return Received(TOPICS.event("site-1", "cam-1", "line_crossing"), b"{not json", mid, 1, utcnow(), 0)
    evs = [crossing(s) for s in range(1, n_events + 1)]
    payload = (EventBatch(events=evs) if n_events > 1 else evs[0]).model_dump_json().encode()
    kind = "batch" if n_events > 1 else "line_crossing"
    return Received(TOPICS.event("site-1", "cam-1", kind), payload, mid, 1, utcnow(), 0)


def batcher(stopping: threading.Event | None = None, **tuning: float) -> Batcher:
    settings = {"batch_max": 4, "batch_max_events": 120, "linger_s": 0.0, "idle_gap_s": 0.01, **tuning}
    return Batcher(
        functools.partial(parsed, TOPICS),
        batch_max=int(settings["batch_max"]),
        batch_max_events=int(settings["batch_max_events"]),
        linger_s=settings["linger_s"],
        idle_gap_s=settings["idle_gap_s"],
        stopping=stopping or threading.Event(),
    )


def test_a_batch_is_bounded_by_messages_and_by_events_and_a_big_message_goes_alone() -> None:
    b = batcher()
    b.put([message(n) for n in (50, 50, 50, 300, 1, 1, 1, 1, 1, 0)])
    sizes = []
    while b.depth():
        batch = b.collect()
        assert batch
        sizes.append([m.n_events for m in batch])
    assert sizes == [[50, 50], [50], [300], [1, 1, 1, 1], [1, 0]]


def test_messages_are_parsed_when_taken_not_when_received() -> None:
    b = batcher()
    b.put([message(1), message(0)])
    batch = b.collect()
    assert batch is not None
    assert isinstance(batch[0].result, Events) and isinstance(batch[1].result, Invalid)
    assert "invalid JSON" in batch[1].result.reason


def test_collect_returns_nothing_when_idle_and_none_once_stopping_with_nothing_left() -> None:
    stopping = threading.Event()
    b = batcher(stopping)
    assert b.collect() == []
    b.put([message(1)])
    stopping.set()
    assert b.collect() is not None  # what was received is still taken while stopping
    assert b.collect() is None


def test_the_writer_lingers_for_more_messages_until_the_stream_pauses() -> None:
    b = batcher(linger_s=2.0, idle_gap_s=0.05)
    b.put([message(1)])

    def trickle() -> None:
        for mid in (2, 3):
            time.sleep(0.01)
            b.put([message(1, mid)])

    t = threading.Thread(target=trickle)
    t.start()
    t0 = time.monotonic()
    batch = b.collect()
    t.join()
    assert batch is not None and [m.mid for m in batch] == [1, 2, 3]
    assert time.monotonic() - t0 < 1.5  # the pause ended it, not the 2 s linger


def test_flush_waits_for_messages_taken_into_a_batch_while_it_was_committed() -> None:
    b = batcher()
    b.put([message(1, 1)])
    batch = b.collect()
    assert batch is not None
    b.put([message(1, 2)])
    more = b.take_more()
    assert [m.mid for m in more] == [2] and b.depth() == 0
    assert not b.flush(0.05)
    b.done(batch)  # done with the batch counts the messages taken into it
    assert b.flush(0.05)


def test_the_oldest_waiting_message_is_the_first_received() -> None:
    b = batcher(batch_max_events=10)
    assert b.oldest_received() is None
    first, second = message(8), message(8)
    b.put([first, second])
    batch = b.collect()  # takes the first, carries the second (it does not fit)
    assert batch is not None and len(batch) == 1 and b.depth() == 1
    assert b.oldest_received() == second.received_at
