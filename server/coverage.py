"""Why a bucket holds no data: the pure rules every chart and export reads through the API.

A bucket with nothing in it can mean four different things, and a planner must see which:

- ``future``: it has not happened yet (starts at or after now);
- ``before_install``: no camera of the query existed yet (before its first status or event);
- ``gap``: a camera existed but observed nothing (down, covered, disconnected);
- ``observed`` / ``partial``: it observed all / part of the time it could have.

``coverage`` is observed seconds over *observable* seconds: the part of the bucket inside the range,
before now and after each camera's install, summed over the cameras installed by then. So the
bucket holding now, or the hour a camera was installed in, is not reported as half down.

Long ranges at fine buckets are coarsened (never an empty answer): :func:`fit_bucket` picks the finest
bucket at or above the one asked for that keeps the answer within ``max_buckets`` and says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

BucketState = Literal["observed", "partial", "gap", "before_install", "future"]
BUCKETS: tuple[tuple[str, int], ...] = (("1m", 60), ("15m", 900), ("1h", 3600), ("1d", 86400))
BUCKET_S = dict(BUCKETS)
#: The most buckets one ``/coverage`` answer holds (a chart cannot show more as separate bars anyway).
MAX_COVERAGE_BUCKETS = 5000
#: Observed share from which a bucket counts as fully observed (heartbeat rounding).
FULL = 0.999


@dataclass(frozen=True)
class Fit:
    """The bucket actually used for a range, and why it differs from the one asked for."""

    bucket: str
    requested: str
    buckets: int
    max_buckets: int

    @property
    def coarsened(self) -> bool:
        return self.bucket != self.requested

    @property
    def message(self) -> str | None:
        if not self.coarsened:
            return None
        return (
            f"{self.requested} buckets would exceed {self.max_buckets} for this range: "
            f"shown per {self.bucket} instead ({self.buckets} buckets)"
        )


def bucket_count(lo: int, hi: int, bucket_s: int, offset_s: int) -> int:
    """Buckets of ``bucket_s`` (aligned to local time by ``offset_s``) that ``[lo, hi)`` touches."""
    first = (lo + offset_s) // bucket_s * bucket_s - offset_s
    return max(0, math.ceil((hi - first) / bucket_s))


def fit_bucket(requested: str, lo: int, hi: int, offset_s: int, max_buckets: int = MAX_COVERAGE_BUCKETS) -> Fit:
    """The finest bucket, at or above ``requested``, giving at most ``max_buckets`` for ``[lo, hi)``."""
    names = [n for n, _ in BUCKETS]
    n = 0
    for name in names[names.index(requested) :]:
        n = bucket_count(lo, hi, BUCKET_S[name], offset_s)
        if n <= max_buckets:
            return Fit(name, requested, n, max_buckets)
    return Fit(names[-1], requested, n, max_buckets)  # 400 days of days always fit; kept for safety


@dataclass(frozen=True)
class BucketCoverage:
    start: int
    observed_s: float
    observable_s: float
    coverage: float | None
    state: BucketState


def observable_seconds(a: int, b: int, now: float, installs: Sequence[int]) -> float:
    """Seconds of ``[a, b)`` the cameras installed at ``installs`` could have observed by ``now``."""
    end = min(float(b), now)
    return sum(max(0.0, end - max(float(a), float(t))) for t in installs)


def state_of(observed_s: float, observable_s: float, a: int, now: float, any_installed: bool) -> BucketState:
    if a >= now:
        return "future"
    if not any_installed or observable_s <= 0:
        return "before_install"
    share = observed_s / observable_s
    if share >= FULL:
        return "observed"
    return "partial" if observed_s > 0 else "gap"


def bucket_coverage(
    lo: int,
    hi: int,
    bucket_s: int,
    offset_s: int,
    now: float,
    installs: Mapping[str, int | None],
    observed: Mapping[int, float],
) -> list[BucketCoverage]:
    """One row per bucket of ``[lo, hi)``: observed seconds (summed over cameras, ``observed`` keyed by
    bucket start) against what the cameras in ``installs`` (camera -> first data, epoch s; None: never
    heard from) could have observed."""
    known = [t for t in installs.values() if t is not None]
    out = []
    b = (lo + offset_s) // bucket_s * bucket_s - offset_s
    while b < hi:
        a, z = max(b, lo), min(b + bucket_s, hi)
        installed = [t for t in known if t < min(z, now)]
        possible = observable_seconds(a, z, now, installed)
        seen = observed.get(b, 0.0)
        state = state_of(seen, possible, a, now, bool(installed))
        judged = possible > 0 and state not in ("future", "before_install")
        cov = round(min(1.0, seen / possible), 4) if judged else None
        out.append(BucketCoverage(b, round(seen, 1), round(possible, 1), cov, state))
        b += bucket_s
    return out


def period_coverage(
    lo: int, hi: int, now: float, installs: Mapping[str, int | None], observed_s: float
) -> float | None:
    """Observed share of a whole period (None when nothing could have been observed in it)."""
    possible = observable_seconds(lo, hi, now, [t for t in installs.values() if t is not None])
    return round(min(1.0, observed_s / possible), 4) if possible > 0 else None
