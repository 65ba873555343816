"""What the ingest knows about one received message: the message, and what became of it.

A received message is a tuple (made on paho's thread for every message, so it must be cheap) whose
``result`` the writer fills in: one of the parse results (:class:`Events`, :class:`Status`,
:class:`Reference`, :class:`Ignored`, :class:`Invalid`), or, when the database refuses it, one of the dead-letter
outcomes (:class:`Rejected`, then :class:`Escaped`, then :class:`Dropped`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from citywatch.contract import AnyEvent, ReferencePicture, StatusPayload


@dataclass(frozen=True)
class Events:
    """Events of the topic's camera, valid by the contract, to be stored."""

    events: list[AnyEvent]


@dataclass(frozen=True)
class Status:
    """A camera's online/offline status (retained; its will says offline)."""

    site_id: str
    camera_id: str
    status: StatusPayload


@dataclass(frozen=True)
class Reference:
    """A camera's reference picture: handed to the in-memory holder, never stored."""

    picture: ReferencePicture


@dataclass(frozen=True)
class Ignored:
    """Nothing to store: a cleared retained status."""


@dataclass(frozen=True)
class Invalid:
    """Kept as a dead letter with ``reason``. ``internal``: the parser failed (a bug of ours, which may
    be fixed: the seqs it carries are not given up)."""

    reason: str
    internal: bool = False


@dataclass(frozen=True)
class Rejected:
    """The database refused a parsed message for good: a dead letter naming its error. ``events``:
    what the message carried (its seqs are resolved as far as they name the topic's camera)."""

    reason: str
    events: list[AnyEvent]


@dataclass(frozen=True)
class Escaped:
    """The database refused even the dead letter: kept again with topic and reason escaped to ASCII."""

    reason: str


@dataclass(frozen=True)
class Dropped:
    """Not even the escaped dead letter was stored: logged, counted as an error, acknowledged."""

    reason: str


Parsed = Events | Status | Reference | Ignored | Invalid
DeadLetter = Invalid | Rejected | Escaped | Dropped
Outcome = Events | Status | Reference | Ignored | Invalid | Rejected | Escaped | Dropped
#: Dead letters that are stored (a dropped message is not).
STORED_DEAD = (Invalid, Rejected, Escaped)
DEAD = (Invalid, Rejected, Escaped, Dropped)


class Received(NamedTuple):
    """One message as received; ``result`` None until the writer parsed it."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime
    #: Connection it came on (a packet id of an earlier connection must not be acknowledged).
    generation: int
    result: Outcome | None = None

    @property
    def n_events(self) -> int:
        return len(self.result.events) if isinstance(self.result, Events) else 0
