"""Storing one batch: events and dead letters in one transaction, retried while the database is away,
bisected when it refuses a message for good, so that one bad message never holds up the others."""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from citywatch.contract import AnyEvent, Topics, is_id, utcnow
from server import db_errors
from server.db_errors import FailureKind
from server.ingest.health import IngestCounters
from server.ingest.messages import (
    DEAD,
    STORED_DEAD,
    DeadLetter,
    Dropped,
    Escaped,
    Events,
    Invalid,
    Received,
    Rejected,
)
from server.ingest.parse import resolvable_seqs
from server.storage.dead_letters import DeadLetterIn
from server.storage.event_rows import ConcurrentInsert
from server.storage.store import Store

log = logging.getLogger(__name__)

_ascii = functools.partial(str.encode, encoding="ascii", errors="backslashreplace")


#: What a dead letter keeps of a refused reference picture: an image is never stored.
WITHHELD_PICTURE = b"(a reference picture: images are never stored, the payload was dropped)"


def _is_reference_topic(topic: str) -> bool:
    parts = topic.rsplit("/", 2)
    return len(parts) == 3 and parts[2] == "reference" and parts[1] != "event"


def dead_letter_of(m: Received, result: DeadLetter) -> DeadLetterIn:
    payload = WITHHELD_PICTURE if _is_reference_topic(m.topic) else m.payload
    if isinstance(result, Escaped):  # the plain copy was refused: topic and reason in ASCII, payload as bytes
        return DeadLetterIn(_ascii(m.topic).decode(), bytes(payload), _ascii(result.reason).decode())
    return DeadLetterIn(m.topic, payload, result.reason)


def resolving_dead_letter(topics: Topics, m: Received, result: DeadLetter) -> tuple[DeadLetterIn, str | None]:
    """The dead letter of ``m`` (``result``: what became of it) with the seqs of the topic's camera it resolves, and
    the topic's site: for a message the parser refused, those its payload still reads as
    (:func:`resolvable_seqs`); for parsed events the database refused for good (:class:`Rejected`),
    theirs. None of another camera's."""
    letter = dead_letter_of(m, result)
    if not isinstance(result, (Invalid, Rejected)) or (isinstance(result, Invalid) and result.internal):
        return letter, None  # a bug of ours may be fixed: its seqs wait
    try:
        site, camera, channel, _kind = topics.parse(m.topic)
    except ValueError:
        return letter, None
    if channel != "event" or not (is_id(site) and is_id(camera)):  # no camera row holds it
        return letter, None
    if isinstance(result, Rejected):
        seqs = tuple(sorted({ev.seq for ev in result.events if ev.camera_id == camera}))
    else:
        seqs = resolvable_seqs(camera, m.payload)
    if not seqs:
        return letter, None
    return dataclasses.replace(letter, camera_id=camera, seqs=seqs), site


@dataclass
class Committed:
    """What a batch commit stored: the messages (to acknowledge), inserted and duplicate event ids, and
    how many events the store dead-lettered itself (timestamp out of range, conflicting duplicate)."""

    messages: list[Received]
    inserted: list[str]
    duplicates: list[str]
    store_dead: int


class BatchWriter:
    """Commits batches, with retries, bisection and dead letters (:meth:`commit`)."""

    def __init__(
        self,
        store: Store,
        topics: Topics,
        counters: IngestCounters,
        *,
        retry_initial_s: float,
        retry_max_s: float,
        take_more: Callable[[], list[Received]],
        stopping: threading.Event,
    ) -> None:
        self._store = store
        self._topics = topics
        self._counters = counters
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._take_more = take_more
        self._stopping = stopping
        #: Monotonic time of the first transient failure of the current retry run (None: not retrying).
        self.retry_since: float | None = None

    def commit(self, batch: list[Received]) -> Committed | None:
        """Store the batch; None if nothing was (stopping while the database is down).

        A transient failure (:mod:`server.db_errors`) retries the same part after a backoff of
        ``retry_initial_s`` doubling to ``retry_max_s``. A permanent one splits the part in halves,
        by message, until the message the database refuses is alone; it is then kept as a dead letter
        naming the error, and the rest is stored. An unknown failure splits too, but blames a single
        message only once another part of the batch was stored after that message first failed (the
        database works, this message does not); until then it is retried like a transient one.
        """
        parts: deque[list[Received]] = deque([batch])
        done: list[Received] = []
        inserted: list[str] = []
        duplicates: list[str] = []
        stored_parts = store_dead = 0
        suspects: dict[int, int] = {}  # id(message) -> stored_parts when it first failed alone
        delay = self.retry_initial_s
        failures = races = 0
        while parts:
            part = parts[0]
            events: list[AnyEvent] = [ev for m in part if isinstance(m.result, Events) for ev in m.result.events]
            dead = [
                resolving_dead_letter(self._topics, m, m.result)[0] for m in part if isinstance(m.result, STORED_DEAD)
            ]
            try:
                stored = self._store.store_batch(events, dead, received_at=utcnow())
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
                self._counters.retrying = 0
                self.retry_since = None
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
            c = self._counters
            c.db_errors += 1
            c.retries += 1
            c.retrying += 1
            if self.retry_since is None:
                self.retry_since = time.monotonic()
            if self._stopping.is_set() and failures >= 3:
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
        return Committed(done, inserted, duplicates, store_dead)

    def _isolate(self, parts: deque[list[Received]], err: Exception) -> None:
        """``parts[0]`` failed for good: split it in halves, or mark its one message a dead letter."""
        part = parts.popleft()
        if len(part) > 1:
            half = len(part) // 2
            parts.extendleft((part[half:], part[:half]))
            self._counters.splits += 1
            return
        m = part[0]
        result = m.result
        reason = f"the database refused the message: {db_errors.describe(err)}"
        if not isinstance(result, DEAD):
            log.error("dead letter on %s: %s", m.topic, reason)
            self._counters.db_rejected += 1
            events = result.events if isinstance(result, Events) else []
            parts.appendleft([m._replace(result=Rejected(reason, events))])
        elif not isinstance(result, Escaped):  # even the dead letter was refused: keep it in ASCII
            log.error("storing a dead letter of %s failed (%s); storing it escaped", m.topic, reason)
            parts.appendleft([m._replace(result=Escaped(f"{result.reason}; {reason}"))])
        else:
            log.error("dropping a message on %r: not even its escaped dead letter was stored (%s)", m.topic, reason)
            parts.appendleft([m._replace(result=Dropped(result.reason))])
