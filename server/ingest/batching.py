"""Received messages queued by paho's thread and taken by the writer in batches of bounded size.

Why this shape: paho's thread only appends (one lock round per socket read) and never parses; the
writer parses while it takes messages, so a batch is sized by messages and by events (a message is
never split). Arrivals wake the writer only when it waits for a first message or a full batch, never
once per message.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime

from server.ingest.messages import Received


class Batcher:
    """The queue between paho's thread and the writer, and the batches the writer takes from it."""

    def __init__(
        self,
        parse: Callable[[Received], Received],
        *,
        batch_max: int,
        batch_max_events: int,
        linger_s: float,
        idle_gap_s: float,
        stopping: threading.Event,
    ) -> None:
        self._parse = parse
        self.batch_max = batch_max
        self.batch_max_events = batch_max_events
        self.linger_s = linger_s
        self.idle_gap_s = idle_gap_s
        self._stopping = stopping
        #: Received, not yet taken by the writer; guarded by ``_lock``.
        self._pending: deque[Received] = deque()
        self._lock = threading.Lock()
        #: Notified when a batch is done (``flush``).
        self._cond = threading.Condition(self._lock)
        #: Notified on arrival only while the writer waits for a first message or a full batch.
        self._arrived = threading.Condition(self._lock)
        self._writer_waits_for = 0
        #: Parsed by the writer but left for the next batch (it did not fit); the writer's own.
        self._carry: deque[Received] = deque()
        self._enqueued = 0
        self._done = 0
        #: Messages taken into the current batch beyond the collected ones (:meth:`take_more`).
        self._taken_extra = 0

    # --- paho's thread -----------------------------------------------------------------------------

    def put(self, msgs: list[Received]) -> None:
        with self._lock:
            self._pending.extend(msgs)
            self._enqueued += len(msgs)
            if self._writer_waits_for and len(self._pending) >= self._writer_waits_for:
                self._arrived.notify()

    # --- the writer's thread -----------------------------------------------------------------------

    def collect(self) -> list[Received] | None:
        """Up to ``batch_max`` messages, lingering up to ``linger_s`` unless the stream pauses for
        ``idle_gap_s``; ``[]`` when nothing arrived for a while, None when stopping with nothing left."""
        if not self._carry:
            with self._lock:
                if not self._pending:
                    self._writer_waits_for = 1
                    self._arrived.wait(0.2)
                    self._writer_waits_for = 0
                    if not self._pending:
                        return None if self._stopping.is_set() else []
        batch: list[Received] = []
        events = self._take(batch, 0)
        deadline = time.monotonic() + self.linger_s
        while not self._full(batch, events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with self._lock:
                if not self._pending:
                    self._writer_waits_for = self.batch_max - len(batch)
                    self._arrived.wait(min(remaining, self.idle_gap_s))
                    self._writer_waits_for = 0
                    if not self._pending:
                        break  # the stream paused: commit what we have
            events = self._take(batch, events)
        return batch

    def take_more(self) -> list[Received]:
        """Messages received meanwhile, taken into the batch being committed (acknowledged with it)."""
        more: list[Received] = []
        self._take(more, 0)
        self._taken_extra += len(more)
        return more

    def done(self, batch: list[Received]) -> None:
        """``batch`` (and what :meth:`take_more` added to it) is processed."""
        with self._cond:
            self._done += len(batch) + self._taken_extra
            self._taken_extra = 0
            self._cond.notify_all()

    def _take(self, batch: list[Received], events: int) -> int:
        """Parse pending messages into ``batch`` while it has room; returns the batch's event count.

        Room: fewer than ``batch_max`` messages, and ``batch_max_events`` not passed by the next message
        (a bigger message still goes alone). A parsed message that does not fit waits in ``_carry``.
        Parsing happens here, outside the lock, so paho's thread only receives and enqueues.
        """
        carry = self._carry
        while not self._full(batch, events):
            if carry:
                m = carry.popleft()
            else:
                with self._lock:
                    if not self._pending:
                        break
                    m = self._pending.popleft()
                m = self._parse(m)
            n = m.n_events
            if batch and events + n > self.batch_max_events:
                carry.appendleft(m)
                break
            batch.append(m)
            events += n
        return events

    def _full(self, batch: list[Received], events: int) -> bool:
        return len(batch) >= self.batch_max or events >= self.batch_max_events or (bool(batch) and bool(self._carry))

    # --- any thread --------------------------------------------------------------------------------

    def depth(self) -> int:
        """Messages received and not yet taken into a batch."""
        return len(self._pending) + len(self._carry)

    def oldest_received(self) -> datetime | None:
        """Receive time of the oldest message waiting (None: none)."""
        oldest = None
        for queue in (self._carry, self._pending):
            try:
                m = queue[0]
            except IndexError:  # emptied meanwhile by the writer
                continue
            if oldest is None or m.received_at < oldest:
                oldest = m.received_at
        return oldest

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every message received so far is processed."""
        with self._cond:
            target = self._enqueued
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def wait_idle(self, quiet_s: float = 0.3, timeout: float = 10.0) -> bool:
        """Wait until nothing new arrived for ``quiet_s`` and everything received is processed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                before = self._enqueued
            time.sleep(quiet_s)
            with self._cond:
                if self._enqueued == before and self._done >= before:
                    return True
        return False
