"""MQTT ingest: at-least-once delivery from the broker, made exactly-once by event_id in the database.

Why this shape: paho's network thread only enqueues (it must never block or die). A writer thread
parses, commits batches of bounded size (messages and events) in one transaction and acknowledges the
MQTT messages only after the commit, so a crash before the commit makes the broker redeliver
(persistent session). Then it advances each camera's contiguous watermark and publishes it retained on
``.../control/committed`` for the edge.

:class:`Ingest` wires the parts and owns the writer thread: the connection
(:mod:`~server.ingest.transport`), the queue and batches (:mod:`~server.ingest.batching`), the parse step
(:mod:`~server.ingest.parse`), the commit (:mod:`~server.ingest.writing`), camera rows and watermarks
(:mod:`~server.ingest.cameras`), gap repair (:mod:`~server.ingest.gaps`) and control messages
(:mod:`~server.ingest.control`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from datetime import datetime

from citywatch.config import CitywatchConfig
from citywatch.contract import Topics, utcnow
from server.ingest.batching import Batcher
from server.ingest.cameras import CameraSync, CameraUpdate, summarize
from server.ingest.control import ControlPublisher
from server.ingest.gaps import GapTracker
from server.ingest.health import (
    DeadLetterRate,
    HealthInputs,
    IngestCounters,
    IngestState,
    IngestStats,
    assess,
)
from server.ingest.messages import Events, Ignored, Received, Reference, Status
from server.ingest.mqtt_reader import Publish
from server.ingest.parse import parse_message, parsed
from server.ingest.transport import IngestTransport
from server.ingest.writing import BatchWriter
from server.live import LiveHub, LiveItem
from server.reference_pictures import ReferencePictures
from server.storage.store import Store

log = logging.getLogger(__name__)


def _topic_text(topic: bytes) -> str:
    try:
        return topic.decode("utf-8")
    except UnicodeDecodeError:  # kept, so that the dead letter shows what was sent
        return topic.decode("utf-8", errors="replace")


class Ingest:
    """Subscribe to every camera's events and status, store them, confirm them to the edge."""

    def __init__(
        self,
        config: CitywatchConfig,
        store: Store,
        hub: LiveHub | None = None,
        *,
        batch_max: int | None = None,
        linger_s: float | None = None,
        idle_gap_s: float = 0.02,
        references: ReferencePictures | None = None,
    ) -> None:
        self.config = config
        #: Where reference pictures go (None: they are dropped).
        self.references = references
        #: Last config_version each camera's status reported (the pushes it confirms are marked once).
        self._running_versions: dict[str, str] = {}
        self.store = store
        self.hub = hub
        self.topics = Topics(config.mqtt.topic_prefix)
        if store is not None:  # for the dead letters the store writes itself
            store.topic_prefix = self.topics.prefix
        tuning = config.server.ingest
        self.stall_after_s = tuning.stall_after_s
        self.dead_letters_warn_per_min = tuning.dead_letters_warn_per_min
        self.counters = IngestCounters()
        self._stopping = threading.Event()
        self._dead_rate = DeadLetterRate()
        self.transport = IngestTransport(config, self.topics, self._on_publishes, self._stopping)
        self.batcher = Batcher(
            functools.partial(parsed, self.topics),
            batch_max=batch_max or tuning.batch_max,
            batch_max_events=tuning.batch_max_events,
            linger_s=tuning.linger_s if linger_s is None else linger_s,
            idle_gap_s=idle_gap_s,
            stopping=self._stopping,
        )
        self.batch_writer = BatchWriter(
            store,
            self.topics,
            self.counters,
            retry_initial_s=tuning.retry_initial_s,
            retry_max_s=tuning.retry_max_s,
            take_more=self.batcher.take_more,
            stopping=self._stopping,
        )
        #: What the API may publish (``server.deps.ControlDep``).
        self.control = ControlPublisher(self.transport, self.topics, store, self.counters)
        self.gaps = GapTracker(
            store,
            self.control,
            self.counters,
            grace_s=tuning.gap_grace_s,
            replay_interval_s=tuning.replay_interval_s,
        )
        self.cameras = CameraSync(store, self.counters, self.gaps, self.control)
        self._writer: threading.Thread | None = None
        #: Receive time of the oldest message of the batch the writer holds (None between batches).
        self._inflight_since: datetime | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.transport.connected

    @property
    def subscribed(self) -> threading.Event:
        """Set once the broker granted the subscriptions of the current connection."""
        return self.transport.subscribed

    def start(self) -> None:
        """Connect in the background (the broker may come later) and start the writer thread."""
        if self.transport.client is not None:
            raise RuntimeError("ingest already started")
        try:
            self.counters.committed.update(self.store.committed_seqs())
        except Exception:
            log.exception("could not read committed watermarks")
        self._stopping.clear()
        self._writer = threading.Thread(target=self._run_writer, name="citywatch-ingest-writer", daemon=True)
        self._writer.start()
        self.transport.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking messages, commit and acknowledge what is queued, then disconnect."""
        self._stopping.set()  # new messages stay unacknowledged: the broker redelivers them later
        if self._writer is not None:
            self._writer.join(timeout)
            if self._writer.is_alive():
                log.warning("ingest writer did not finish within %.1f s", timeout)
        if self.transport.connected:
            self.control.wait_published(2.0)
        self.transport.stop()
        self._writer = None

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every message received so far is processed (committed, acked, published)."""
        return self.batcher.flush(timeout)

    def wait_published(self, timeout: float = 5.0) -> bool:
        """Wait until the broker acknowledged the latest committed publish (it is retained then)."""
        return self.control.wait_published(timeout)

    def wait_idle(self, quiet_s: float = 0.3, timeout: float = 10.0) -> bool:
        """Wait until nothing new arrived for ``quiet_s`` and everything received is processed."""
        return self.batcher.wait_idle(quiet_s, timeout)

    # --- health -----------------------------------------------------------------------------------

    def queue_depth(self) -> int:
        """Messages received and not yet taken into a batch."""
        return self.batcher.depth()

    def oldest_unacked_s(self) -> float:
        """Age of the oldest message received and not yet committed and acknowledged (0: none)."""
        oldest = self._inflight_since
        waiting = self.batcher.oldest_received()
        if waiting is not None and (oldest is None or waiting < oldest):
            oldest = waiting
        return 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())

    def dead_letters_per_min(self) -> int:
        """Dead letters stored in the last 60 s."""
        return self._dead_rate.per_min()

    def health(self) -> tuple[IngestState, list[str]]:
        """``(state, problems)``, worst first (:func:`server.ingest.health.assess`)."""
        since = self.batch_writer.retry_since
        inputs = HealthInputs(
            oldest_unacked_s=self.oldest_unacked_s(),
            retrying_for_s=None if since is None else time.monotonic() - since,
            retries_in_a_row=self.counters.retrying,
            connected=self.connected,
            dead_letters_per_min=self.dead_letters_per_min(),
        )
        return assess(
            inputs, stall_after_s=self.stall_after_s, dead_letters_warn_per_min=self.dead_letters_warn_per_min
        )

    def stats(self) -> IngestStats:
        state, problems = self.health()
        return {
            **self.counters.snapshot(),
            "state": state,
            "problems": problems,
            "connected": self.connected,
            "queue_depth": self.queue_depth(),
            "oldest_unacked_s": round(self.oldest_unacked_s(), 3),
            "dead_letters_per_min": self.dead_letters_per_min(),
        }

    # --- paho's thread ----------------------------------------------------------------------------

    def _on_publishes(self, publishes: list[Publish]) -> None:
        """All PUBLISH packets of one socket read: one lock round for all of them."""
        if self._stopping.is_set():
            return
        received_at = utcnow()
        generation = self.transport.generation  # changed only on this same thread
        msgs = [
            Received(_topic_text(t), payload, mid, qos, received_at, generation) for t, payload, mid, qos in publishes
        ]
        self.batcher.put(msgs)
        self.counters.received += len(msgs)

    # --- the writer's thread ----------------------------------------------------------------------

    def parse(self, topic: str, payload: bytes) -> Events | Status | Reference | Ignored:
        """What one message means; raises :class:`~server.ingest.parse.InvalidMessage` with the reason."""
        return parse_message(self.topics, topic, payload)

    def _run_writer(self) -> None:
        while True:
            batch = self.batcher.collect()
            if batch is None:
                return
            if not batch:
                self.gaps.check()
                continue
            self._inflight_since = batch[0].received_at  # the oldest: carried and pending messages are FIFO
            try:
                self._process(batch)
            except Exception:
                log.exception("ingest batch of %d messages failed", len(batch))
            finally:
                self._inflight_since = None
                self.batcher.done(batch)

    def _confirm_versions(self, updates: dict[str, CameraUpdate]) -> None:
        """Mark pushed configurations as confirmed once a camera's status reports running them."""
        waiting = self.control.unconfirmed
        for camera_id, u in updates.items():
            if u.status is None:
                continue
            version = u.status.config_version
            if camera_id not in waiting and self._running_versions.get(camera_id) == version:
                continue
            try:
                confirmed = self.store.config_history.confirm(camera_id, version, u.seen_at or utcnow())
            except Exception:
                log.exception("camera %s: could not confirm configuration %s", camera_id, version)
                continue
            self._running_versions[camera_id] = version
            if confirmed:
                waiting.discard(camera_id)
                log.info("camera %s: its edge runs pushed configuration %s", camera_id, version)

    def _hold_references(self, msgs: list[Received]) -> None:
        for m in msgs:
            if not isinstance(m.result, Reference):
                continue
            pic = m.result.picture
            if self.references is not None and self.references.put(pic):
                log.info("camera %s: reference picture %s received (held in memory)", pic.camera_id, pic.request_id)
            else:
                log.warning("camera %s: reference picture %s nobody asked for: dropped", pic.camera_id, pic.request_id)

    def _process(self, batch: list[Received]) -> None:
        """Commit, acknowledge, update cameras and watermarks, ask for gaps, tell live viewers."""
        t0 = time.perf_counter()
        committed = self.batch_writer.commit(batch)
        if committed is None:
            return  # nothing committed (stopping while the database is down): leave unacknowledged
        msgs = committed.messages
        self.transport.ack(msgs)
        self._inflight_since = None  # acknowledged: what follows (camera updates) is not a stall
        summary = summarize(self.topics, msgs, committed.duplicates)

        c = self.counters
        now = utcnow()
        c.events_received += len(summary.events)
        c.commit_lag_s = max((now - m.received_at).total_seconds() for m in msgs)
        if summary.events:
            c.event_lag_s = max((now - ev.ts).total_seconds() for ev in summary.events)
        c.stored += len(committed.inserted)
        c.duplicates += len(committed.duplicates)
        n_dead = summary.dead_letters + committed.store_dead  # the store's own: out of range, conflicting
        if n_dead:
            c.dead_letters += n_dead
            self._dead_rate.add(n_dead)
        c.batches += 1

        self.cameras.apply(summary.updates)
        self.gaps.check()
        self._confirm_versions(summary.updates)
        self._hold_references(msgs)

        if self.hub is not None and self.hub.subscriber_count:  # nobody watching: build nothing
            # each event first stored by this batch once, even if the batch repeated it
            pending = set(committed.inserted)
            items = []
            for ev in summary.events:
                eid = str(ev.event_id)
                if eid in pending:
                    pending.discard(eid)
                    items.append(LiveItem(ev.kind, ev.model_dump(mode="json")))
            items.extend(LiveItem("camera_state", dataclasses.asdict(s)) for s in summary.state_changes)
            self.hub.publish_many(items)
        c.last_batch_ms = (time.perf_counter() - t0) * 1000.0
