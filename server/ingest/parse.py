"""The pure parse step: a topic and payload become a typed result, or the reason they are invalid.

No broker, database or clock: what a message means depends on its bytes and the topic prefix only.
"""

from __future__ import annotations

import json
import logging

from pydantic import ValidationError

from citywatch.contract import MAX_SEQ, SCHEMA_MAJOR, Topics, parse_reference, parse_status, read_message
from server.ingest.messages import Events, Ignored, Invalid, Parsed, Received, Reference, Status

log = logging.getLogger(__name__)


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


def parse_message(topics: Topics, topic: str, payload: bytes) -> Events | Status | Reference | Ignored:
    """What one message means; raises :class:`InvalidMessage` with the reason otherwise."""
    try:
        site, camera, channel, kind = topics.parse(topic)
    except ValueError as exc:
        raise InvalidMessage(f"topic not understood: {exc}") from None
    if channel == "status":
        if not payload:
            return Ignored()  # a cleared retained status
        try:
            status = parse_status(payload)
        except ValidationError as exc:
            raise InvalidMessage(f"invalid status message: {describe_validation_error(exc)}") from None
        if status.camera_id != camera:
            raise InvalidMessage(f"status of camera {status.camera_id!r} published on the topic of camera {camera!r}")
        return Status(site, camera, status)
    if channel == "reference":
        try:
            picture = parse_reference(payload)
        except ValidationError as exc:
            raise InvalidMessage(f"invalid reference picture: {describe_validation_error(exc)}") from None
        if (picture.site_id, picture.camera_id) != (site, camera):
            raise InvalidMessage(
                f"reference picture of {picture.site_id}/{picture.camera_id} published on the topic of {site}/{camera}"
            )
        return Reference(picture)
    if channel != "event":
        raise InvalidMessage(f"the server does not consume {channel!r} topics")
    if not payload:
        raise InvalidMessage("empty payload")
    try:
        top_kind, events = read_message(payload)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            first = errors[0]
            raise InvalidMessage(f"invalid JSON: {first.get('ctx', {}).get('error') or first['msg']}") from None
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
    return Events(events)


def classify(topics: Topics, topic: str, payload: bytes) -> Parsed:
    """:func:`parse_message` that never raises: an invalid message is :class:`Invalid`, and so is one
    the parser failed on (kept anyway: a bug of ours is not the publisher's fault)."""
    try:
        return parse_message(topics, topic, payload)
    except InvalidMessage as exc:
        return Invalid(str(exc))
    except Exception as exc:
        log.exception("could not classify message on %s", topic)
        return Invalid(f"internal error while parsing: {exc!r}", internal=True)


def parsed(topics: Topics, m: Received) -> Received:
    """``m`` with its parse result."""
    return m._replace(result=classify(topics, m.topic, m.payload))


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


def _major_ok(doc: object) -> bool:
    version = doc.get("schema_version", f"{SCHEMA_MAJOR}.0") if isinstance(doc, dict) else None
    return isinstance(version, str) and version.split(".", 1)[0] == str(SCHEMA_MAJOR)
