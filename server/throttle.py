"""Failed-authentication throttling: after ``max_failures`` failures a client address must wait, and the
wait doubles with every further failure (up to ``max_lockout_s``); a budget for all addresses together
stops a guesser who spreads over many addresses. In memory, per server process: several processes each
count their own (and a restart forgets), so the real bound is ``processes x`` these numbers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from citywatch.config import LoginThrottleConfig

#: Bound on the addresses remembered: past it, the ones idle longest are forgotten first.
MAX_TRACKED = 50_000
TOTAL = "*"


@dataclass
class _Bucket:
    failures: int = 0
    last: float = 0.0
    until: float = 0.0


class Throttle:
    def __init__(self, config: LoginThrottleConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float:
        """Seconds ``address`` must still wait (0: it may try now)."""
        now = self.clock()
        with self._lock:
            waits = [b.until - now for k in (address, TOTAL) if (b := self._buckets.get(k)) is not None]
        return max([0.0, *waits])

    def failure(self, address: str) -> None:
        now = self.clock()
        c = self.config
        with self._lock:
            for key, free in ((address, c.max_failures), (TOTAL, c.total_max_failures)):
                b = self._buckets.pop(key, None) or _Bucket()
                if now - b.last > c.window_s:
                    b.failures = 0
                b.failures += 1
                b.last = now
                if b.failures >= free:
                    b.until = now + min(c.max_lockout_s, c.lockout_s * 2 ** min(b.failures - free, 30))
                self._buckets[key] = b  # re-inserted: the dict stays ordered by last failure
            while len(self._buckets) > MAX_TRACKED:
                oldest = next(k for k in self._buckets if k != TOTAL)
                del self._buckets[oldest]

    def success(self, address: str) -> None:
        """A correct key from ``address`` clears its count (not the total's)."""
        with self._lock:
            self._buckets.pop(address, None)
