"""The full-outbox policy: what to drop and what to merge when a camera's outbox reaches its bound.

Applied only to the **never-published suffix** (events after the last one ever handed to the broker;
nothing there can be at the server, so it may be renumbered without gaps in the seq watermark):

1. camera_status heartbeats are dropped, except the newest one;
2. zone_occupancy reports are dropped, oldest first (they are periodic measurements);
3. line crossings are merged into per-interval totals (``edge.merged.CountTotal``) by line,
   direction and class: ``merge_interval_s``, then hourly, then daily if that is still too many.
   Counts are never dropped; movements and incidents are kept as they are.

If the outbox is still over its bound (only counts left), it grows, with an error in the log: a count
is worth more than a bound. :func:`shrink_suffix` is pure; the outbox runs it inside its transaction.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from citywatch.contract import CountTotal, LineCrossing
from edge.merged import AnyEvent, merge_group, stored_adapter

log = logging.getLogger(__name__)

#: Merge levels tried in turn after the configured interval when a full outbox is still too full.
COARSER_INTERVALS = (3600, 86400)


@dataclass
class Compaction:
    """What one compaction did (also kept as ``Outbox.compactions[camera]`` totals)."""

    before: int = 0
    after: int = 0
    status_dropped: int = 0
    zone_dropped: int = 0
    crossings_merged: int = 0
    totals: int = 0
    interval_s: int = 0


@dataclass
class _Item:
    """One kept event of the suffix: its stored JSON until it has to be parsed, or a new total."""

    kind: str
    payload: str | None
    event: AnyEvent | None = None

    def parsed(self) -> AnyEvent:
        if self.event is None:
            assert self.payload is not None
            self.event = stored_adapter.validate_json(self.payload)
        return self.event


def shrink_suffix(
    rows: list[tuple[str, str]], *, fixed: int, target: int, merge_interval_s: int, res: Compaction
) -> list[AnyEvent]:
    """The events to keep of the never-published suffix ``rows`` (``(kind, payload)`` in seq order), so that
    ``fixed`` (published or committed, untouchable) plus them is at most ``target`` where the policy allows.
    What was done is added to ``res``; the caller renumbers the result."""
    items = [_Item(kind, payload) for kind, payload in rows]
    # 1. heartbeats, except the newest
    status = [i for i, it in enumerate(items) if it.kind == "camera_status"]
    drop = set(status[:-1])
    res.status_dropped = len(drop)
    items = [it for i, it in enumerate(items) if i not in drop]
    # 2. zone reports, oldest first
    if fixed + len(items) > target:
        excess = fixed + len(items) - target
        zone = set([i for i, it in enumerate(items) if it.kind == "zone_occupancy"][:excess])
        res.zone_dropped = len(zone)
        items = [it for i, it in enumerate(items) if i not in zone]
    # 3. crossings into totals, coarser and coarser
    for interval in (merge_interval_s, *[c for c in COARSER_INTERVALS if c > merge_interval_s]):
        if fixed + len(items) <= target:
            break
        items = _merge(items, interval, res)
        res.interval_s = interval
    return [it.parsed() for it in items]


def _merge(items: list[_Item], interval: int, res: Compaction) -> list[_Item]:
    """Crossings and totals of one line, direction, class and ``interval`` into one total each."""
    groups: dict[tuple[int, str, str, str], list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        if it.kind in ("line_crossing", "count_total"):
            ev = it.parsed()
            assert isinstance(ev, LineCrossing | CountTotal)
            groups[(int(ev.ts.timestamp()) // interval, ev.line_id, ev.direction, ev.class_name)].append(i)
    first_of = {members[0]: key for key, members in groups.items()}
    merged_away = {i for members in groups.values() for i in members[1:]}
    out: list[_Item] = []
    for i, it in enumerate(items):
        if i in merged_away:
            continue
        if i not in first_of:
            out.append(it)
            continue
        evs: list[LineCrossing | CountTotal] = []
        for j in groups[first_of[i]]:
            ev = items[j].parsed()
            assert isinstance(ev, LineCrossing | CountTotal)
            evs.append(ev)
        if len(evs) == 1 and isinstance(evs[0], CountTotal) and evs[0].interval_s >= interval:
            out.append(it)
            continue
        total = merge_group(evs, interval, seq=1)
        res.crossings_merged += sum(1 for e in evs if e.kind == "line_crossing")
        res.totals += 1
        out.append(_Item(total.kind, None, total))
    return out


class CompactionLog:
    """Per camera: when the next compaction is due, and the totals of what compactions did."""

    def __init__(self) -> None:
        self.totals: dict[str, Compaction] = defaultdict(Compaction)
        self._grown_to: dict[str, int] = {}  # a bound that only counts fill lets the outbox grow a tenth

    def due(self, camera_id: str, depth: int, adding: int, max_events: int) -> bool:
        return depth + adding > max(max_events, self._grown_to.get(camera_id, 0))

    def record(self, camera_id: str, res: Compaction, limit: int) -> None:
        if limit and res.after >= limit:
            # only counts (and what was published) left: let it grow a tenth before trying again
            self._grown_to[camera_id] = res.after + max(1, limit // 10)
            log.error(
                "camera %s: outbox full (%d events, bound %d) even after merging crossings into %d s totals: "
                "keeping every count and growing",
                camera_id,
                res.after,
                limit,
                res.interval_s,
            )
        else:
            self._grown_to.pop(camera_id, None)
        total = self.totals[camera_id]
        total.before, total.after = res.before, res.after
        total.status_dropped += res.status_dropped
        total.zone_dropped += res.zone_dropped
        total.crossings_merged += res.crossings_merged
        total.totals += res.totals
        total.interval_s = res.interval_s
        log.warning(
            "camera %s: outbox full: %d -> %d events (%d heartbeats and %d zone reports dropped, %d crossings "
            "merged into %d totals of %d s)",
            camera_id,
            res.before,
            res.after,
            res.status_dropped,
            res.zone_dropped,
            res.crossings_merged,
            res.totals,
            res.interval_s,
        )
