"""``pedestrian_on_carriageway`` / ``cyclist_on_carriageway``: people by what they do, not by their box.

A person track that has been over a bicycle box (``CYCLIST_MIN_FRAMES``) and is over one now or moves
at cycling speed (``CYCLING_BOXES_S``) is a cyclist, also in the frames where the bicycle is too small
or occluded to be boxed; one over a motorcycle box (more often than over a bicycle) is a motorcyclist,
neither pedestrian nor cyclist; any other person is a pedestrian. A bicycle box without a cyclist over
it is a cyclist too. Inside a carriageway zone (or a lane, with ``in_lanes``); one incident per area,
listing every track seen.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from citywatch.config import PeopleOnCarriagewayRule
from vision.incidents.scene import Candidate, Observation, Scene, TrackMemory

#: A person track seen over a bicycle box in at least this many frames may be a cyclist...
CYCLIST_MIN_FRAMES = 2
#: ...and is one, when no bicycle is boxed under it, while it moves at least this many of its box sizes per
#: second (a walker: under 1, a person on a bicycle: 3 or more).
CYCLING_BOXES_S = 1.5
#: What a person may ride (and be boxed over).
TWO_WHEELERS = ("motorcycle", "bicycle")
#: Share of a person's box over a two-wheeler's for the person to be riding it.
RIDING_OVERLAP = 0.3

Role = Literal["pedestrian", "cyclist", "motorcyclist", "rider"]
Who = Literal["pedestrian", "cyclist"]


def riders(names: list[str], xyxy: np.ndarray) -> dict[int, int]:
    """Person row -> row of the two-wheeler box it is mostly over (its rider), this frame."""
    people = [i for i, n in enumerate(names) if n == "person"]
    wheels = [i for i, n in enumerate(names) if n in TWO_WHEELERS]
    out: dict[int, int] = {}
    for p in people:
        px1, py1, px2, py2 = xyxy[p]
        area = max((px2 - px1) * (py2 - py1), 1e-6)
        for w in wheels:
            wx1, wy1, wx2, wy2 = xyxy[w]
            inter = max(0.0, min(px2, wx2) - max(px1, wx1)) * max(0.0, min(py2, wy2) - max(py1, wy1))
            if inter / area >= RIDING_OVERLAP:
                out[p] = w
                break
    return out


def person_roles(scene: Scene, tracks: TrackMemory) -> list[Role | None]:
    """Per row: ``pedestrian``, ``cyclist``, ``motorcyclist``, ``rider`` (on something not yet known) or None
    (a vehicle; a ridden bicycle's box, whose rider stands for it). Remembers per person track what it was
    seen riding."""
    names = scene.names
    under = riders(names, scene.xyxy)
    roles: list[Role | None] = [None] * len(names)
    ridden: set[int] = set()
    for i, name in enumerate(names):
        if name != "person":
            continue
        t = tracks[scene.track_ids[i]]
        w = under.get(i)
        if w is not None:
            t.over[names[w]] = t.over.get(names[w], 0) + 1
        bike, moto = t.over.get("bicycle", 0), t.over.get("motorcycle", 0)
        recent = [v for fr, v in t.speeds if fr >= t.last_seen - scene.frames(1.0)]
        cycling = bool(recent) and float(np.median(recent)) >= CYCLING_BOXES_S
        if moto and moto >= bike:
            roles[i] = "motorcyclist"
        elif bike >= CYCLIST_MIN_FRAMES and (cycling or (w is not None and names[w] == "bicycle")):
            roles[i] = "cyclist"
        elif w is not None:
            roles[i] = "rider"  # on something this frame, not yet known what: not a pedestrian
        else:
            roles[i] = "pedestrian"
        if w is not None:
            ridden.add(w)
    rider_of = {w: p for p, w in under.items()}
    for i, name in enumerate(names):
        if name == "bicycle":  # alone, or under a person not yet known to be its cyclist: a cyclist
            roles[i] = "cyclist" if i not in ridden or roles[rider_of[i]] == "rider" else None
    return roles


def people_on_carriageway(
    scene: Scene, rule: PeopleOnCarriagewayRule, roles: list[Role | None], who: Who
) -> list[Candidate]:
    """One candidate per carriageway zone (and lane, with ``in_lanes``) holding a ``who``."""
    kind: Literal["pedestrian_on_carriageway", "cyclist_on_carriageway"] = (
        "pedestrian_on_carriageway" if who == "pedestrian" else "cyclist_on_carriageway"
    )
    layout, tids = scene.layout, scene.track_ids
    areas: list[tuple[str, bool, np.ndarray]] = [(z.id, False, scene.in_carriageway[z.id]) for z in layout.carriageway]
    if rule.in_lanes:
        areas += [(lane.id, True, scene.in_lane[lane.id]) for lane in layout.lanes]
    out: list[Candidate] = []
    for area_id, is_lane, mask in areas:
        idx = [i for i in range(len(tids)) if mask[i] and roles[i] == who]
        if not idx:
            continue
        out.append(Candidate((kind, area_id), Observation(
            kind, tuple(tids[i] for i in idx), area_id if is_lane else None, None if is_lane else area_id,
            rule.severity, message=f"{len(idx)} {who}(s) on the carriageway ({area_id})",
        ), rule.open_after_s))
    return out
