"""MQTT ingest: at-least-once delivery from the broker, made exactly-once by event_id in the database.

Why this shape: paho's network thread only enqueues (it must never block or die). A writer thread
parses, commits batches of bounded size (messages and events) in one transaction and acknowledges the
MQTT messages only after the commit, so a crash before the commit makes the broker redeliver
(persistent session). Then it advances each camera's contiguous watermark and publishes it retained on
``.../control/committed`` for the edge.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from citywatch.config import CitywatchConfig
from citywatch.contract import (
    MAX_SEQ,
    SCHEMA_MAJOR,
    AnyEvent,
    CameraStatus,
    ControlCommitted,
    ControlConfig,
    ControlReplay,
    Topics,
    is_id,
    parse_status,
    read_message,
    utcnow,
)
from server import db_errors
from server.db_errors import FailureKind
from server.live import LiveHub, LiveItem
from server.mqtt_reader import IngestClient, Publish
from server.storage.cameras import CameraUpdateIn
from server.storage.dead_letters import DeadLetterIn
from server.storage.event_rows import ConcurrentInsert
from server.storage.store import Store

log = logging.getLogger(__name__)


F = TypeVar("F", bound=Callable[..., Any])


def _guard(fn: F) -> F:
    """Callbacks run on paho's thread: an exception is logged, never allowed to stop the loop."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:
            log.exception("MQTT callback %s failed", fn.__name__)
            return None

    return wrapper  # type: ignore[return-value]


#: Ingest health states, worst first (``Ingest.health``).
IngestState = Literal["stalled", "retrying", "disconnected", "degraded", "ok"]
INGEST_STATES: tuple[IngestState, ...] = ("stalled", "retrying", "disconnected", "degraded", "ok")


class InvalidMessage(Exception):
    """A message that goes to dead_letters; the text is the human-readable reason."""


def describe_validation_error(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "<message>"
        parts.append(f"{loc}: {err.get('msg')}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)




def resolvable_seqs(camera_id: str, payload: bytes) -> tuple[int, ...]:
    """Seqs of ``camera_id`` (the topic's camera) that a dead-lettered event payload carries, as far as
    they can be read: the watermark may move past them, as a replay would bring the same bytes again.

    Only events that name the topic's camera (a camera resolves none of another's seqs) and speak this
    server's major schema version (a newer edge's events wait for the server's upgrade instead)."""
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return ()
    items = doc.get("events") if isinstance(doc, dict) and doc.get("kind") == "batch" else [doc]
    if not isinstance(items, list) or not _major_ok(doc):
        return ()
    seqs = set()
    for item in items[:1000]:
        if isinstance(item, dict) and item.get("camera_id") == camera_id and _major_ok(item):
            seq = item.get("seq")
            if type(seq) is int and 1 <= seq <= MAX_SEQ:
                seqs.add(seq)
    return tuple(sorted(seqs))


def _major_ok(doc: Any) -> bool:
    version = doc.get("schema_version", f"{SCHEMA_MAJOR}.0") if isinstance(doc, dict) else None
    return isinstance(version, str) and version.split(".", 1)[0] == str(SCHEMA_MAJOR)


class _Msg(NamedTuple):
    """One received message (a tuple: made on paho's thread for every message, so it must be cheap).

    The writer classifies it: ``what``/``value`` as :meth:`Ingest.parse` returns them, or ``"dead"``
    with the reason; ``"raw"`` until then."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime
    generation: int
    what: str = "raw"
    value: Any = None
    n_events: int = 0


#: ``_Msg.what`` of messages kept as dead letters: invalid (``dead``), refused by the database
#: (``rejected``: value ``(reason, events)``), refused even as a dead letter (``dead_safe``: kept
#: escaped to ASCII) and, when even that failed, ``dropped`` (logged, counted as an error, acknowledged).
_DEAD = frozenset({"dead", "rejected", "dead_safe", "dropped"})


def _dead_reason(m: _Msg) -> str:
    return str(m.value[0] if m.what == "rejected" else m.value)


def _dead_letter_of(m: _Msg) -> DeadLetterIn:
    if m.what == "dead_safe":  # the plain copy was refused: topic and reason in ASCII, payload as bytes
        ascii_ = functools.partial(str.encode, encoding="ascii", errors="backslashreplace")
        return DeadLetterIn(ascii_(m.topic).decode(), bytes(m.payload), ascii_(_dead_reason(m)).decode())
    return DeadLetterIn(m.topic, m.payload, _dead_reason(m))


_PUBACK = struct.Struct("!BBH")


def _topic_text(topic: bytes) -> str:
    try:
        return topic.decode("utf-8")
    except UnicodeDecodeError:  # kept, so that the dead letter shows what was sent
        return topic.decode("utf-8", errors="replace")


@dataclass
class IngestCounters:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    batches: int = 0
    db_errors: int = 0
    events_received: int = 0
    gaps_detected: int = 0
    replay_requests: int = 0
    #: Transient database failures retried (each wait counts once); ``retrying``: how many in a row now.
    retries: int = 0
    retrying: int = 0
    #: Messages the database refused for good (kept as dead letters with its error), batch splits it took.
    db_rejected: int = 0
    splits: int = 0
    #: Cameras whose status/watermark update failed (other cameras of the batch still moved on).
    camera_errors: int = 0
    last_batch_ms: float = 0.0
    #: Event time to commit (edge clock vs server clock: includes clock drift), newest batch, max.
    event_lag_s: float = 0.0
    #: MQTT receive to commit, newest batch, max.
    commit_lag_s: float = 0.0
    committed: dict[str, int] = field(default_factory=dict)
    #: Open gaps per camera: number of seqs missing between the watermark and the next stored seq.
    missing: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "dead_letters": self.dead_letters,
            "batches": self.batches,
            "db_errors": self.db_errors,
            "events_received": self.events_received,
            "gaps_detected": self.gaps_detected,
            "replay_requests": self.replay_requests,
            "retries": self.retries,
            "retrying": self.retrying,
            "db_rejected": self.db_rejected,
            "splits": self.splits,
            "camera_errors": self.camera_errors,
            "last_batch_ms": round(self.last_batch_ms, 3),
            "event_lag_s": round(self.event_lag_s, 3),
            "commit_lag_s": round(self.commit_lag_s, 3),
            "missing": dict(self.missing),
        }


@dataclass
class _CameraUpdate:
    site_id: str
    seen_at: datetime | None = None
    state: Literal["online", "offline"] | None = None
    status: CameraStatus | None = None
    latest: AnyEvent | None = None
    floor: int | None = None
    has_events: bool = False
    had_duplicates: bool = False


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
    ) -> None:
        self.config = config
        self.store = store
        self.hub = hub
        self.topics = Topics(config.mqtt.topic_prefix)
        if store is not None:  # for the dead letters the store writes itself
            store.topic_prefix = self.topics.prefix
        tuning = config.server.ingest
        self.batch_max = batch_max or tuning.batch_max
        self.batch_max_events = tuning.batch_max_events
        self.linger_s = tuning.linger_s if linger_s is None else linger_s
        self.gap_grace_s = tuning.gap_grace_s
        self.replay_interval_s = tuning.replay_interval_s
        self.retry_initial_s = tuning.retry_initial_s
        self.retry_max_s = tuning.retry_max_s
        self.stall_after_s = tuning.stall_after_s
        self.dead_letters_warn_per_min = tuning.dead_letters_warn_per_min
        #: camera -> (site, from_seq, to_seq, monotonic time first seen)
        self._gaps: dict[str, tuple[str, int, int, float]] = {}
        self._last_replay: dict[str, float] = {}
        self.idle_gap_s = idle_gap_s
        self.counters = IngestCounters()
        self.connected = False
        #: Set once the broker granted the subscriptions of the current connection.
        self.subscribed = threading.Event()
        #: Received, not yet taken by the writer; guarded by ``_lock`` like the counters below.
        self._pending: deque[_Msg] = deque()
        self._lock = threading.Lock()
        #: Notified when a batch is done (``flush``).
        self._cond = threading.Condition(self._lock)
        #: Notified on arrival only while the writer waits for a first message or a full batch.
        self._arrived = threading.Condition(self._lock)
        self._writer_waits_for = 0
        #: Parsed by the writer but left for the next batch (it did not fit); the writer's own.
        self._carry: deque[_Msg] = deque()
        self._enqueued = 0
        self._done = 0
        #: Messages ``_commit`` took into the current batch beyond the collected ones (``_take_more``).
        self._taken_extra = 0
        self._generation = 0
        self._stopping = False
        self._published: dict[str, int] = {}
        self._client: mqtt.Client | None = None
        self._writer: threading.Thread | None = None
        self._last_publish: mqtt.MQTTMessageInfo | None = None
        #: Receive time of the oldest message of the batch the writer holds (None between batches).
        self._inflight_since: datetime | None = None
        #: Monotonic time of the first transient failure of the current retry run (None: not retrying).
        self._retry_since: float | None = None
        #: (monotonic time, n) of dead letters stored in the last minute: the rate health reports.
        self._dead_times: deque[tuple[float, int]] = deque()

    # --- lifecycle --------------------------------------------------------------------------------

    @property
    def v5(self) -> bool:
        return self.config.mqtt.protocol == "5"

    def _build_client(self) -> IngestClient:
        m = self.config.mqtt
        kwargs: dict[str, Any] = {
            "callback_api_version": CallbackAPIVersion.VERSION2,
            "client_id": self.config.server.client_id,
            "protocol": mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
            "manual_ack": True,
        }
        if not self.v5:
            kwargs["clean_session"] = False
        client = IngestClient(**kwargs, on_publishes=_guard(self._on_publishes))
        user, password = m.credentials()
        if user:
            client.username_pw_set(user, password)
        if m.tls.enabled:
            client.tls_set(
                ca_certs=str(m.tls.ca_file) if m.tls.ca_file else None,
                certfile=str(m.tls.cert_file) if m.tls.cert_file else None,
                keyfile=str(m.tls.key_file) if m.tls.key_file else None,
            )
            if m.tls.insecure:
                client.tls_insecure_set(True)
        client.reconnect_delay_set(1, 30)
        client.on_connect = _guard(self._on_connect)
        client.on_disconnect = _guard(self._on_disconnect)
        client.on_message = _guard(self._on_message)
        client.on_subscribe = _guard(self._on_subscribe)
        return client

    def start(self) -> None:
        """Connect in the background (the broker may come later) and start the writer thread."""
        if self._client is not None:
            raise RuntimeError("ingest already started")
        try:
            self.counters.committed.update(self.store.committed_seqs())
        except Exception:
            log.exception("could not read committed watermarks")
        m = self.config.mqtt
        self._stopping = False
        self._writer = threading.Thread(target=self._run_writer, name="citywatch-ingest-writer", daemon=True)
        self._writer.start()
        client = self._client = self._build_client()
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = m.session_expiry_s
            client.connect_async(m.host, m.port, m.keepalive_s, clean_start=False, properties=props)
        else:
            client.connect_async(m.host, m.port, m.keepalive_s)
        client.loop_start()
        log.info(
            "ingest connecting to mqtt://%s:%d (MQTT %s) as %s, prefix %s",
            m.host,
            m.port,
            m.protocol,
            self.config.server.client_id,
            self.topics.prefix,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking messages, commit and acknowledge what is queued, then disconnect."""
        self._stopping = True  # new messages stay unacknowledged: the broker redelivers them later
        if self._writer is not None:
            self._writer.join(timeout)
            if self._writer.is_alive():
                log.warning("ingest writer did not finish within %.1f s", timeout)
        client = self._client
        if client is not None:
            if self.connected:
                self.wait_published(2.0)
            client.disconnect()
            client.loop_stop()
        self._client = None
        self._writer = None
        self.connected = False

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every message received so far is processed (committed, acked, published)."""
        with self._cond:
            target = self._enqueued
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def wait_published(self, timeout: float = 5.0) -> bool:
        """Wait until the broker acknowledged the latest committed publish (it is retained then)."""
        info = self._last_publish
        if info is None:
            return True
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(timeout)
        return info.is_published()

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

    def queue_depth(self) -> int:
        """Messages received and not yet taken into a batch."""
        return len(self._pending) + len(self._carry)

    def oldest_unacked_s(self) -> float:
        """Age of the oldest message received and not yet committed and acknowledged (0: none)."""
        oldest = self._inflight_since
        for queue in (self._carry, self._pending):
            try:
                m = queue[0]
            except IndexError:  # emptied meanwhile by the writer
                continue
            if oldest is None or m.received_at < oldest:
                oldest = m.received_at
        return 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())

    def dead_letters_per_min(self) -> int:
        """Dead letters stored in the last 60 s."""
        cutoff = time.monotonic() - 60.0
        with self._lock:
            while self._dead_times and self._dead_times[0][0] < cutoff:
                self._dead_times.popleft()
            return sum(n for _t, n in self._dead_times)

    def health(self) -> tuple[IngestState, list[str]]:
        """``(state, problems)``: the worst of ``stalled`` (a message unacknowledged longer than
        ``stall_after_s``), ``retrying`` (transient database errors now), ``disconnected`` (from the
        broker), ``degraded`` (dead letters above ``dead_letters_warn_per_min``), else ``ok``."""
        problems: list[str] = []
        states: list[IngestState] = []
        age = self.oldest_unacked_s()
        if age > self.stall_after_s:
            states.append("stalled")
            problems.append(
                f"the oldest unacknowledged message is {age:.0f} s old "
                f"(server.ingest.stall_after_s {self.stall_after_s:g})"
            )
        since = self._retry_since
        if since is not None:
            states.append("retrying")
            problems.append(
                f"database errors: batch retried {self.counters.retrying} times in {time.monotonic() - since:.0f} s"
            )
        if not self.connected:
            states.append("disconnected")
            problems.append("not connected to the MQTT broker")
        rate = self.dead_letters_per_min()
        if rate > self.dead_letters_warn_per_min:
            states.append("degraded")
            problems.append(
                f"{rate} dead letters in the last minute (server.ingest.dead_letters_warn_per_min "
                f"{self.dead_letters_warn_per_min:g})"
            )
        return (states[0] if states else "ok"), problems

    def stats(self) -> dict[str, Any]:
        snap = self.counters.snapshot()
        state, problems = self.health()
        snap["state"] = state
        snap["problems"] = problems
        snap["connected"] = self.connected
        snap["queue_depth"] = self.queue_depth()
        snap["oldest_unacked_s"] = round(self.oldest_unacked_s(), 3)
        snap["dead_letters_per_min"] = self.dead_letters_per_min()
        return snap

    # --- paho callbacks (network thread) ----------------------------------------------------------

    def _subscriptions(self) -> list[str]:
        filters = [self.topics.all_events(), self.topics.all_status()]
        group = self.config.mqtt.shared_group
        if group:
            if self.v5:
                filters = [f"$share/{group}/{f}" for f in filters]
            else:
                log.warning("mqtt.shared_group is ignored with MQTT 3.1.1 (shared subscriptions need v5)")
        return filters

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason_code: Any, _props: Any) -> None:
        if reason_code.is_failure:
            log.error("MQTT connection refused: %s", reason_code)
            return
        with self._cond:
            self._generation += 1
        sock = client.socket()
        if isinstance(sock, socket.socket):
            # paho leaves Nagle on: a committed publish queued behind PUBACKs would wait ~40 ms.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connected = True
        subs = self._subscriptions()
        client.subscribe([(t, 1) for t in subs])
        log.info("MQTT connected (session present: %s); subscribed to %s", flags.session_present, subs)

    def _on_subscribe(self, _client: Any, _userdata: Any, mid: int, reason_codes: Any, _props: Any) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        for rc in failed:
            log.error("MQTT subscription refused: %s", rc)
        if not failed:
            self.subscribed.set()

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        self.connected = False
        self.subscribed.clear()
        if not self._stopping:
            log.warning("MQTT disconnected (%s); reconnecting", reason_code)

    def _on_message(self, _client: Any, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """paho's own delivery: only where :class:`IngestClient` cannot take the fast path."""
        self._on_publishes([(msg._topic, msg.payload, msg.mid, msg.qos)])

    def _on_publishes(self, publishes: list[Publish]) -> None:
        """All PUBLISH packets of one socket read: one lock round for all of them."""
        if self._stopping:
            return
        received_at = utcnow()
        generation = self._generation  # changed only by _on_connect, on this same thread
        msgs = [_Msg(_topic_text(t), payload, mid, qos, received_at, generation) for t, payload, mid, qos in publishes]
        with self._lock:
            self._pending.extend(msgs)
            self._enqueued += len(msgs)
            if self._writer_waits_for and len(self._pending) >= self._writer_waits_for:
                self._arrived.notify()
        self.counters.received += len(msgs)

    # --- writer thread ----------------------------------------------------------------------------

    def _classify(self, m: _Msg) -> _Msg:
        try:
            what, value = self.parse(m.topic, m.payload)
        except InvalidMessage as exc:
            what, value = "dead", str(exc)
        except Exception as exc:  # a bug, not the publisher's fault: keep the message anyway
            log.exception("could not classify message on %s", m.topic)
            what, value = "dead", f"internal error while parsing: {exc!r}"
        return m._replace(what=what, value=value, n_events=len(value) if what == "events" else 0)

    def _take(self, batch: list[_Msg], events: int) -> int:
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
                m = self._classify(m)
            if batch and events + m.n_events > self.batch_max_events:
                carry.appendleft(m)
                break
            batch.append(m)
            events += m.n_events
        return events

    def _full(self, batch: list[_Msg], events: int) -> bool:
        return (
            len(batch) >= self.batch_max or events >= self.batch_max_events or (bool(batch) and bool(self._carry))
        )

    def _collect(self) -> list[_Msg] | None:
        """Up to ``batch_max`` messages, lingering up to ``linger_s`` unless the stream pauses for
        ``idle_gap_s``. Arrivals wake the writer only when it waits for a first message or a full batch,
        never once per message."""
        if not self._carry:
            with self._lock:
                if not self._pending:
                    self._writer_waits_for = 1
                    self._arrived.wait(0.2)
                    self._writer_waits_for = 0
                    if not self._pending:
                        return None if self._stopping else []
        batch: list[_Msg] = []
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

    def _run_writer(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            if not batch:
                self._check_gaps()
                continue
            self._inflight_since = batch[0].received_at  # the oldest: carried and pending messages are FIFO
            try:
                self._process(batch)
            except Exception:
                log.exception("ingest batch of %d messages failed", len(batch))
            finally:
                self._inflight_since = None
                with self._cond:
                    self._done += len(batch) + self._taken_extra
                    self._taken_extra = 0
                    self._cond.notify_all()

    def parse(self, topic: str, payload: bytes) -> tuple[str, Any]:
        """Classify one message: ``("events", [...])``, ``("status", (site, camera, StatusPayload))``,
        ``("ignore", None)``; raises InvalidMessage with the reason otherwise."""
        try:
            site, camera, channel, kind = self.topics.parse(topic)
        except ValueError as exc:
            raise InvalidMessage(f"topic not understood: {exc}") from None
        if channel == "status":
            if not payload:
                return "ignore", None  # a cleared retained status
            try:
                status = parse_status(payload)
            except ValidationError as exc:
                raise InvalidMessage(f"invalid status message: {describe_validation_error(exc)}") from None
            if status.camera_id != camera:
                raise InvalidMessage(
                    f"status of camera {status.camera_id!r} published on the topic of camera {camera!r}"
                )
            return "status", (site, camera, status)
        if channel != "event":
            raise InvalidMessage(f"the server does not consume {channel!r} topics")
        if not payload:
            raise InvalidMessage("empty payload")
        try:
            top_kind, events = read_message(payload)
        except ValidationError as exc:
            first = exc.errors()[0] if exc.error_count() else {}
            if first.get("type") == "json_invalid":
                raise InvalidMessage(f"invalid JSON: {first.get('ctx', {}).get('error') or first.get('msg')}") from None
            raise InvalidMessage(f"schema error: {describe_validation_error(exc)}") from None
        except ValueError as exc:
            raise InvalidMessage(f"invalid message: {exc}") from None
        if top_kind != kind:
            raise InvalidMessage(f"a {top_kind!r} message was published on the {kind!r} topic {topic!r}")
        for ev in events:
            if ev.site_id != site or ev.camera_id != camera:
                raise InvalidMessage(
                    f"event {ev.event_id} of {ev.site_id}/{ev.camera_id} was published on the topic of {site}/{camera}"
                )
        return "events", events

    def _resolving_dead_letter(self, m: _Msg) -> tuple[DeadLetterIn, str | None]:
        """``_dead_letter_of(m)`` with the seqs of the topic's camera it resolves, and the topic's site:
        for a message ``parse`` refused, those its payload still reads as (:func:`resolvable_seqs`); for
        parsed events the database refused for good (``rejected``), theirs. None of another camera's."""
        letter = _dead_letter_of(m)
        if m.what not in ("dead", "rejected") or (m.what == "dead" and str(m.value).startswith("internal error")):
            return letter, None  # a bug of ours may be fixed: its seqs wait
        try:
            site, camera, channel, _kind = self.topics.parse(m.topic)
        except ValueError:
            return letter, None
        if channel != "event" or not (is_id(site) and is_id(camera)):  # no camera row holds it
            return letter, None
        if m.what == "rejected":
            seqs = tuple(sorted({ev.seq for ev in m.value[1] if ev.camera_id == camera}))
        else:
            seqs = resolvable_seqs(camera, m.payload)
        if not seqs:
            return letter, None
        return dataclasses.replace(letter, camera_id=camera, seqs=seqs), site

    def _process(self, batch: list[_Msg]) -> None:
        t0 = time.perf_counter()
        committed = self._commit(batch)
        if committed is None:
            return  # nothing committed (stopping while the database is down): leave unacknowledged
        msgs, inserted, duplicates, store_dead = committed
        self._ack(msgs)
        self._inflight_since = None  # acknowledged: what follows (camera updates) is not a stall

        events: list[AnyEvent] = []
        updates: dict[str, _CameraUpdate] = {}
        state_changes: list[dict[str, Any]] = []
        n_dead = 0
        for m in msgs:
            what, value = m.what, m.value
            if what in _DEAD:
                n_dead += what != "dropped"
                if what == "dead":
                    log.warning("dead letter on %s: %s", m.topic, value)
                if what in ("dead", "rejected"):
                    letter, site = self._resolving_dead_letter(m)
                    if letter.camera_id and site:  # walk its watermark: the letter resolved some of its seqs
                        updates.setdefault(letter.camera_id, _CameraUpdate(site_id=site)).has_events = True
                continue
            if what == "events":
                events.extend(value)
                for ev in value:
                    u = updates.get(ev.camera_id)
                    if u is None:
                        u = updates[ev.camera_id] = _CameraUpdate(site_id=ev.site_id)
                    u.has_events = True
                    u.state = "online"
                    if u.seen_at is None or m.received_at > u.seen_at:
                        u.seen_at = m.received_at
                    if u.latest is None or ev.seq >= u.latest.seq:
                        u.latest = ev
                    if isinstance(ev, CameraStatus):
                        if u.status is None or ev.seq >= u.status.seq:
                            u.status = ev
                        if ev.outbox_first_seq is not None:
                            # the outbox cannot start above the heartbeat's own seq: never lift past it
                            f = min(ev.outbox_first_seq - 1, ev.seq)
                            u.floor = f if u.floor is None else max(u.floor, f)
            elif what == "status":
                site, camera, status = value
                u = updates.setdefault(camera, _CameraUpdate(site_id=site))
                u.state = status.state
                state_changes.append({"camera_id": camera, "site_id": site, "state": status.state})

        c = self.counters
        now = utcnow()
        c.events_received += len(events)
        c.commit_lag_s = max((now - m.received_at).total_seconds() for m in msgs)
        if events:
            c.event_lag_s = max((now - ev.ts).total_seconds() for ev in events)
        c.stored += len(inserted)
        c.duplicates += len(duplicates)
        n_dead += store_dead  # the store's own: timestamp out of range, conflicting duplicate
        if n_dead:
            c.dead_letters += n_dead
            now_m = time.monotonic()
            with self._lock:  # trimmed here too: nobody may be reading the rate
                while self._dead_times and self._dead_times[0][0] < now_m - 60.0:
                    self._dead_times.popleft()
                self._dead_times.append((now_m, n_dead))
        c.batches += 1

        if duplicates:
            dup_set = set(duplicates)
            for ev in events:
                if ev.camera_id in updates and str(ev.event_id) in dup_set:
                    updates[ev.camera_id].had_duplicates = True
        self._apply_cameras(updates)
        self._check_gaps()

        if self.hub is not None and self.hub.subscriber_count:  # nobody watching: build nothing
            # each event first stored by this batch once, even if the batch repeated it
            pending = set(inserted)
            items = []
            for ev in events:
                eid = str(ev.event_id)
                if eid in pending:
                    pending.discard(eid)
                    items.append(LiveItem(ev.kind, ev.model_dump(mode="json")))
            items.extend(LiveItem("camera_state", s) for s in state_changes)
            self.hub.publish_many(items)
        c.last_batch_ms = (time.perf_counter() - t0) * 1000.0

    def _commit(self, batch: list[_Msg]) -> tuple[list[_Msg], list[str], list[str], int] | None:
        """Store the batch; returns ``(messages committed, inserted ids, duplicate ids, events the store
        dead-lettered itself)``, None if none was.

        A transient failure (:mod:`server.db_errors`) retries the same part after a backoff of
        ``retry_initial_s`` doubling to ``retry_max_s``. A permanent one splits the part in halves,
        by message, until the message the database refuses is alone; it is then kept as a dead letter
        naming the error, and the rest is stored. An unknown failure splits too, but blames a single
        message only once another part of the batch was stored after that message first failed (the
        database works, this message does not); until then it is retried like a transient one.
        """
        parts: deque[list[_Msg]] = deque([batch])
        done: list[_Msg] = []
        inserted: list[str] = []
        duplicates: list[str] = []
        stored_parts = store_dead = 0
        suspects: dict[int, int] = {}  # id(message) -> stored_parts when it first failed alone
        delay = self.retry_initial_s
        failures = races = 0
        while parts:
            part = parts[0]
            events = [ev for m in part if m.what == "events" for ev in m.value]
            dead = [self._resolving_dead_letter(m)[0] for m in part if m.what in _DEAD and m.what != "dropped"]
            try:
                stored = self.store.store_batch(events, dead, received_at=utcnow())
                ins, dup = stored
            except ConcurrentInsert as exc:
                races += 1
                if races <= 3:  # rolled back; the retry's look-up finds the other writer's rows
                    log.info("another writer stored part of a batch (%s); retrying it", exc)
                    continue
                kind: FailureKind = "transient"  # again and again: back off like any other transient error
                err: Exception = exc
            except Exception as exc:
                kind, err = db_errors.classify(exc), exc
            else:
                parts.popleft()
                done.extend(part)
                inserted.extend(ins)
                duplicates.extend(dup)
                store_dead += getattr(stored, "dead_letters", 0)
                stored_parts += 1
                if failures:
                    log.info("a batch was stored after %d failed attempts", failures)
                failures = races = 0
                delay = self.retry_initial_s
                self.counters.retrying = 0
                self._retry_since = None
                continue
            if kind == "unknown":
                if len(part) > 1:
                    kind = "permanent"  # split, to see whether one message is the cause
                else:
                    first_failed = suspects.setdefault(id(part[0]), stored_parts)
                    if stored_parts > first_failed:
                        kind = "permanent"  # others were stored since: it is this message
                    elif len(parts) > 1 and not all(len(p) == 1 and id(p[0]) in suspects for p in parts):
                        parts.rotate(-1)  # try the others first: their fate tells whether it is this one
                        continue
                    elif more := self._take_more():
                        parts.append(more)  # nothing else to compare with: messages that arrived since
                        parts.rotate(-1)
                        continue
                    else:
                        kind = "transient"
            if kind == "permanent":
                self._isolate(parts, err)
                continue
            failures += 1
            c = self.counters
            c.db_errors += 1
            c.retries += 1
            c.retrying += 1
            if self._retry_since is None:
                self._retry_since = time.monotonic()
            if self._stopping and failures >= 3:
                log.warning("stopping: %d messages left unacknowledged for redelivery", sum(map(len, parts)))
                break
            log.warning(
                "storing a batch of %d messages failed (attempt %d, %s); retrying in %.1f s",
                sum(map(len, parts)),
                failures,
                db_errors.describe(err),
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, self.retry_max_s)
        if not done:
            return None
        return done, inserted, duplicates, store_dead

    def _take_more(self) -> list[_Msg]:
        """Messages received meanwhile, taken into the batch being committed (acknowledged with it)."""
        more: list[_Msg] = []
        self._take(more, 0)
        self._taken_extra += len(more)
        return more

    def _isolate(self, parts: deque[list[_Msg]], err: Exception) -> None:
        """``parts[0]`` failed for good: split it in halves, or mark its one message a dead letter."""
        part = parts.popleft()
        if len(part) > 1:
            half = len(part) // 2
            parts.extendleft((part[half:], part[:half]))
            self.counters.splits += 1
            return
        m = part[0]
        reason = f"the database refused the message: {db_errors.describe(err)}"
        if m.what not in _DEAD:
            log.error("dead letter on %s: %s", m.topic, reason)
            self.counters.db_rejected += 1
            parts.appendleft([m._replace(what="rejected", value=(reason, m.value if m.what == "events" else []))])
        elif m.what != "dead_safe":  # even the dead letter was refused: keep it in plain ASCII
            log.error("storing a dead letter of %s failed (%s); storing it escaped", m.topic, reason)
            parts.appendleft([m._replace(what="dead_safe", value=f"{_dead_reason(m)}; {reason}")])
        else:
            log.error("dropping a message on %r: not even its escaped dead letter was stored (%s)", m.topic, reason)
            parts.appendleft([m._replace(what="dropped")])

    def _ack(self, batch: list[_Msg]) -> None:
        client = self._client
        if client is None:
            return
        with self._lock:
            generation = self._generation
        # A mid from an earlier connection may now name another message: the broker redelivers the
        # old one anyway, and it de-duplicates by event_id.
        current = [m for m in batch if m.qos > 0 and m.generation == generation]
        queue_packet = getattr(client, "_packet_queue", None)
        if queue_packet is None or any(m.qos != 1 for m in current):
            for m in current:
                client.ack(m.mid, m.qos)
        elif current:
            # All of the batch's PUBACKs as one write. ``client.ack`` queues each one separately: a
            # wake-up of paho's thread and a send() per message, a cost the broker's side does not need.
            # A successful PUBACK without properties is 4 bytes in MQTT 3.1.1 and 5, as paho writes it.
            queue_packet(mqtt.PUBACK, b"".join(_PUBACK.pack(mqtt.PUBACK, 2, m.mid) for m in current), 0, 0)

    def _apply_cameras(self, updates: dict[str, _CameraUpdate]) -> None:
        """Status and watermark of every camera of the batch, then publish. One camera's failure (a
        value its row cannot hold) leaves the others' updates in place (``Store.apply_cameras``)."""
        items = [
            CameraUpdateIn(
                camera_id=camera_id,
                site_id=u.site_id,
                seen_at=u.seen_at,
                state=u.state,
                status=u.status,
                config_version=u.latest.config_version if u.latest else None,
                model_version=u.latest.model_version if u.latest else None,
                floor=u.floor,
                has_events=u.has_events,
            )
            for camera_id, u in updates.items()
        ]

        def failed(camera_id: str, exc: Exception) -> None:
            self.counters.camera_errors += 1
            log.error("updating camera %s failed: %s", camera_id, db_errors.describe(exc))

        try:
            marks = self.store.apply_cameras(items, on_error=failed)
        except Exception:
            log.exception("updating cameras %s failed", sorted(updates))
            return
        for camera_id, (committed, above) in marks.items():
            u = updates[camera_id]
            self.counters.committed[camera_id] = committed
            self._note_gap(u.site_id, camera_id, committed, above)
            if committed != self._published.get(camera_id) or u.had_duplicates:
                self.publish_committed(u.site_id, camera_id, committed)

    def publish_committed(self, site_id: str, camera_id: str, seq: int) -> None:
        """Tell the edge everything up to ``seq`` is stored (retained, QoS 1: it survives restarts)."""
        client = self._client
        if client is None:
            return
        msg = ControlCommitted(camera_id=camera_id, seq=seq)
        self._last_publish = client.publish(
            self.topics.control(site_id, camera_id, "committed"), msg.model_dump_json(), qos=1, retain=True
        )
        self._published[camera_id] = seq

    # --- gap repair -------------------------------------------------------------------------------

    def _note_gap(self, site_id: str, camera_id: str, committed: int, above: int | None | bool = False) -> None:
        """A stored seq above the watermark means ``committed + 1 .. next - 1`` never arrived.

        ``above``: that next stored seq when the caller already knows it (``False``: look it up)."""
        if above is False:
            above = self.store.first_seq_above(camera_id, committed)
        if above is None:
            self._gaps.pop(camera_id, None)
            self.counters.missing.pop(camera_id, None)
            return
        lo, hi = committed + 1, above - 1
        old = self._gaps.get(camera_id)
        if old is None or old[1] != lo:
            self.counters.gaps_detected += 1
            log.info("camera %s: seq %d..%d missing; will ask the edge to replay them", camera_id, lo, hi)
            self._gaps[camera_id] = (site_id, lo, hi, time.monotonic())
        else:
            self._gaps[camera_id] = (site_id, lo, hi, old[3])
        self.counters.missing[camera_id] = hi - lo + 1

    def _check_gaps(self) -> None:
        """Ask edges to replay gaps older than ``gap_grace_s`` (in-flight events get that long to arrive),
        at most once per ``replay_interval_s`` per camera."""
        if not self._gaps or self._client is None or not self.connected:
            return
        now = time.monotonic()
        for camera_id, (site_id, _lo, _hi, since) in list(self._gaps.items()):
            if now - since < self.gap_grace_s:
                continue
            last = self._last_replay.get(camera_id)
            if last is not None and now - last < self.replay_interval_s:
                continue
            try:  # another ingest process (shared subscription) may have filled it meanwhile
                committed = self.store.advance_watermark(camera_id, site_id=site_id)
                self.counters.committed[camera_id] = committed
                self._note_gap(site_id, camera_id, committed)
            except Exception:
                log.exception("re-checking the gap of camera %s failed", camera_id)
                continue
            gap = self._gaps.get(camera_id)
            if gap is not None:
                self.request_replay(site_id, camera_id, gap[1], gap[2])

    def request_replay(self, site_id: str, camera_id: str, from_seq: int, to_seq: int | None) -> None:
        client = self._client
        if client is None:
            return
        msg = ControlReplay(camera_id=camera_id, from_seq=from_seq, to_seq=to_seq)
        client.publish(self.topics.control(site_id, camera_id, "replay"), msg.model_dump_json(), qos=1)
        self._last_replay[camera_id] = time.monotonic()
        self.counters.replay_requests += 1
        log.info("camera %s: asked the edge to replay seq %d..%s", camera_id, from_seq, to_seq)
        try:
            self.store.note_replay_request(camera_id, utcnow())
        except Exception:
            log.exception("recording the replay request of camera %s failed", camera_id)

    def push_config(self, site_id: str, camera_id: str, camera: dict[str, Any], version: str) -> bool:
        """Send a new camera configuration to its edge (QoS 1); False when not connected."""
        client = self._client
        if client is None or not self.connected:
            return False
        msg = ControlConfig(camera_id=camera_id, config_version=version, camera=camera)
        info = client.publish(self.topics.control(site_id, camera_id, "config"), msg.model_dump_json(), qos=1)
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(5.0)
        return info.is_published()
