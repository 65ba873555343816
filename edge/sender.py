"""Sending one camera's outbox: due events in seq order, replays the server asked for, batches.

Events are published at QoS 1, at most ``edge.max_inflight`` uncommitted events ahead of the oldest
kept one. An event is deleted only when the server's committed watermark covers it (see
:mod:`edge.control`); events not committed ``resend_after_s`` after their last publication are
published again: same bytes, same event_id, same seq. Several due events go out as one
``EventBatch`` on the ``batch`` topic when ``edge.batch_publish`` is on, each keeping its seq and id.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from citywatch.config import EdgeConfig
from citywatch.contract import SCHEMA_VERSION
from edge.counters import CameraCounters
from edge.outbox import Outbox, StoredEvent

#: Kinds published one per message, never inside a batch (none since the contract has count_total).
UNBATCHABLE: frozenset[str] = frozenset()


class EventLink(Protocol):
    """The uplink as the sender uses it (``edge.mqtt_link.MqttLink``)."""

    @property
    def connected(self) -> bool: ...

    def event_topic(self, kind: str) -> str: ...

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> bool: ...


def batch_payload(rows: list[StoredEvent]) -> str:
    """One ``EventBatch`` of the stored JSON of each event, byte for byte: ids, seqs and times unchanged."""
    return f'{{"schema_version":"{SCHEMA_VERSION}","kind":"batch","events":[' + ",".join(r.payload for r in rows) + "]}"


class Sender:
    """Publishes one camera's outbox over ``link``; call :meth:`send_pass` from the sender thread."""

    def __init__(
        self, camera_id: str, *, outbox: Outbox, link: EventLink, edge: EdgeConfig, counters: CameraCounters
    ) -> None:
        self.camera_id = camera_id
        self.outbox = outbox
        self.link = link
        self.edge = edge
        self.n = counters
        #: replay ranges asked by the server, ``(from_seq, to_seq or None)``, oldest first
        self.replays: list[tuple[int, int | None]] = []
        #: set by the link on (re)connecting: what was in flight may be lost, so everything is due again
        self.reconnected = threading.Event()

    def queue_replay(self, from_seq: int, to_seq: int | None) -> None:
        self.replays.append((from_seq, to_seq))

    def send_pass(self) -> None:
        """Publish replays, then due events in the window; mark what the link accepted."""
        cfg, outbox, cid = self.edge, self.outbox, self.camera_id
        if not self.link.connected:
            return
        if self.reconnected.is_set():
            self.reconnected.clear()
            outbox.mark_unsent(cid)  # the broker may have lost what was in flight
        if not self._replay():
            return
        first = outbox.first_seq(cid)
        if first is None:
            return
        now = time.monotonic()
        rows = outbox.due_for_send(cid, now, cfg.resend_after_s, cfg.batch_size, max_seq=first + cfg.max_inflight - 1)
        sent = self.publish(rows)
        outbox.mark_sent(cid, sent, now)
        self.n.events_published += len(sent)

    def _replay(self) -> bool:
        """Publish the queued replay ranges, a batch at a time; False when the link dropped meanwhile."""
        batch = self.edge.batch_size
        while self.replays:
            lo, hi = self.replays[0]
            rows = self.outbox.range(self.camera_id, lo, hi, limit=batch)
            resends = self.n.resends
            sent = self.publish(rows)
            self.n.resends = resends  # a replay is not a resend
            self.outbox.mark_sent(self.camera_id, sent, time.monotonic())
            self.n.events_published += len(sent)
            self.n.replayed += len(sent)
            if len(sent) < len(rows):
                return False  # disconnected meanwhile: the rest of the range stays queued
            if len(rows) < batch or (hi is not None and rows[-1].seq >= hi):
                self.replays.pop(0)
            else:
                self.replays[0] = (rows[-1].seq + 1, hi)
        return True

    def publish(self, rows: list[StoredEvent]) -> list[int]:
        """Publish rows in order, several per ``EventBatch`` when enabled; returns the seqs accepted."""
        link, cfg = self.link, self.edge
        sent: list[int] = []
        i = 0
        while i < len(rows):
            group = [rows[i]]
            if cfg.batch_publish and rows[i].kind not in UNBATCHABLE:
                while (
                    i + len(group) < len(rows)
                    and len(group) < cfg.batch_size
                    and rows[i + len(group)].kind not in UNBATCHABLE
                ):
                    group.append(rows[i + len(group)])
            if len(group) == 1:
                ok = link.publish(link.event_topic(group[0].kind), group[0].payload)
            else:
                ok = link.publish(link.event_topic("batch"), batch_payload(group))
                if ok:
                    self.n.batches += 1
            if not ok:
                break
            sent.extend(g.seq for g in group)
            self.n.resends += sum(1 for g in group if g.send_count)
            i += len(group)
        return sent
