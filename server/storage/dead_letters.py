"""Dead letters: messages the server could not use, kept (capped) with the reason, and the seqs they
resolve so that a camera's watermark moves past a message that can never be stored."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citywatch.contract import MAX_SEQ, AnyEvent, is_id, utcnow
from server.storage.database import Database
from server.storage.models import DeadLetterRow, ResolvedSeqRow, table_of

#: Dead-letter payloads are capped so a hostile or broken publisher cannot fill the disk.
MAX_DEAD_LETTER_BYTES = 256 * 1024


@dataclass(frozen=True)
class DeadLetterIn:
    """A message ingest could not use, to be stored in the same transaction as the valid events.

    ``camera_id`` and ``seqs``: that camera's seqs the message carried, when it can never be stored
    (a permanent reason, and the payload's camera is the topic's): they are written to
    ``resolved_seqs`` with the dead letter, so the watermark moves past them."""

    topic: str
    payload: bytes | str
    reason: str
    camera_id: str | None = None
    seqs: tuple[int, ...] = ()

    @classmethod
    def of_events(cls, topic: str, payload: bytes | str, reason: str, events: Sequence[AnyEvent]) -> DeadLetterIn:
        """A message whose parsed ``events`` (one camera's, as ``Ingest.parse`` checks) can never be stored."""
        cams = {ev.camera_id for ev in events}
        if len(cams) != 1:
            return cls(topic, payload, reason)
        return cls(topic, payload, reason, cams.pop(), tuple(sorted({ev.seq for ev in events})))


def _resolves(d: DeadLetterIn) -> bool:
    """Whether ``d`` resolves seqs: a camera id as the contract allows it (it comes from a topic)."""
    return bool(d.seqs and d.camera_id and is_id(d.camera_id))


def dead_letter_row(topic: str, payload: bytes | str, reason: str, received_at: datetime) -> dict[str, Any]:
    """Keep as much as is safe: text for reading, base64 when the bytes are not clean UTF-8, capped."""
    raw = payload.encode("utf-8", errors="surrogateescape") if isinstance(payload, str) else bytes(payload)
    size = len(raw)
    truncated = size > MAX_DEAD_LETTER_BYTES
    kept = raw[:MAX_DEAD_LETTER_BYTES]
    b64: str | None = None
    try:
        raw.decode("utf-8")
        body = kept.decode("utf-8", errors="ignore")  # only a character cut by the cap is lost
    except UnicodeDecodeError:
        body = kept.decode("utf-8", errors="replace")
        b64 = base64.b64encode(kept).decode("ascii")
    if "\x00" in body:  # PostgreSQL text cannot hold NUL
        body = body.replace("\x00", "\ufffd")
        b64 = b64 or base64.b64encode(kept).decode("ascii")
    if truncated:
        reason = f"{reason} [payload truncated to {MAX_DEAD_LETTER_BYTES} of {size} bytes]"
    # the reason may quote what was sent (or the database's error about it): never NUL or a lone surrogate
    reason = reason.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return {
        "received_at": received_at,
        "topic": topic.replace("\x00", "\ufffd").encode("utf-8", "backslashreplace").decode("utf-8"),
        "payload": body,
        "payload_b64": b64,
        "size_bytes": size,
        "truncated": truncated,
        "reason": reason,
    }


class DeadLetters:
    """The ``dead_letters`` and ``resolved_seqs`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_dead_letter(
        self, topic: str, payload: bytes | str, reason: str, received_at: datetime | None = None
    ) -> int:
        row = dead_letter_row(topic, payload, reason, received_at or utcnow())
        with self.db.session.begin() as s:
            dl = DeadLetterRow(**row)
            s.add(dl)
            s.flush()
            return dl.id

    def dead_letter_events(self, letters: Sequence[DeadLetterIn], received_at: datetime | None = None) -> None:
        """Dead letters and the seqs they resolve (``DeadLetterIn.camera_id``/``seqs``), in one transaction.

        For a message found to be permanently unstorable after parsing (a batch bisected down to it):
        build the letter with :meth:`DeadLetterIn.of_events`; the camera's watermark then moves past its
        seqs at its next walk (``Cameras.apply`` or ``Watermarks.advance``)."""
        with self.db.session.begin() as s:
            self.write(s, letters, received_at or utcnow())

    def write(self, s: Session, letters: Sequence[DeadLetterIn], received_at: datetime) -> None:
        """``letters`` inside the caller's transaction ``s``."""
        if not letters:
            return
        table = table_of(DeadLetterRow)
        plain = [d for d in letters if not _resolves(d)]
        if plain:
            s.execute(table.insert(), [dead_letter_row(d.topic, d.payload, d.reason, received_at) for d in plain])
        resolved: list[dict[str, Any]] = []
        for d in letters:
            if _resolves(d):  # rare (a poison message): one insert each, for its id
                row = dead_letter_row(d.topic, d.payload, d.reason, received_at)
                dl_id = s.execute(table.insert().returning(table.c.id), row).scalar_one()
                resolved.extend(
                    {"camera_id": d.camera_id, "seq": q, "dead_letter_id": dl_id, "resolved_at": received_at}
                    for q in d.seqs
                    if 1 <= q <= MAX_SEQ
                )
        self.resolve_seqs(s, resolved)

    def resolve_seqs(self, s: Session, rows: list[dict[str, Any]]) -> None:
        """Mark seqs as filled without an event (``resolved_seqs`` rows) inside ``s``."""
        if rows:
            s.execute(
                self.db.insert(table_of(ResolvedSeqRow)).on_conflict_do_nothing(index_elements=["camera_id", "seq"]),
                rows,
            )

    def list_dead_letters(self, limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Newest first, with the total count."""
        with self.db.session() as s:
            total = int(s.scalar(select(func.count()).select_from(DeadLetterRow)) or 0)
            rows = s.scalars(select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit).offset(offset)).all()
        items = [
            {
                "id": r.id,
                "received_at": r.received_at,
                "topic": r.topic,
                "reason": r.reason,
                "payload": r.payload,
                "payload_b64": r.payload_b64,
                "size_bytes": r.size_bytes,
                "truncated": r.truncated,
            }
            for r in rows
        ]
        return items, total
