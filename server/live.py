"""Live hub: the ingest thread publishes stored events; SSE clients read them from asyncio queues.

Why: ingest must never wait for a browser. Each subscriber has a bounded queue; when it is full the
oldest item is dropped and the client is told how many it missed (``dropped`` notice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveItem:
    """One thing to push: ``kind`` becomes the SSE ``event:`` name, ``data`` its JSON body."""

    kind: str
    data: Any


_CLOSED = LiveItem("__closed__", None)


@dataclass(eq=False)
class Subscription:
    """One client's view of the hub; read with ``await sub.get(timeout)``."""

    maxsize: int
    _items: deque[LiveItem] = field(default_factory=deque)
    _event: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    closed: bool = False

    def _put(self, item: LiveItem) -> None:
        if item is _CLOSED:
            self.closed = True
        else:
            while len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
        self._event.set()

    async def get(self, timeout: float | None = None) -> LiveItem | None:
        """Next item; a ``dropped`` notice first if items were lost; None on timeout or when closed."""
        if not self._items and not self.closed and not self.dropped:
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except asyncio.TimeoutError:
                return None
        if self.dropped:
            n, self.dropped = self.dropped, 0
            return LiveItem("dropped", {"dropped": n})
        if self._items:
            return self._items.popleft()
        return None


class LiveHub:
    """Thread-safe fan-out from any thread to subscribers living on one asyncio loop."""

    def __init__(self, maxsize: int = 1000) -> None:
        self.maxsize = maxsize
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self.published = 0
        self.closed = False

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called from the app lifespan: subscribers live on this loop."""
        self._loop = loop
        self.closed = False

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subs)

    def subscribe(self) -> Subscription:
        """Call from the event loop (an async endpoint)."""
        sub = Subscription(self.maxsize)
        if self.closed:
            sub._put(_CLOSED)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def publish(self, kind: str, data: Any) -> None:
        """Safe from any thread; never blocks (drops everything when no loop is attached)."""
        self._schedule(LiveItem(kind, data))

    def publish_many(self, items: list[LiveItem]) -> None:
        if items:
            self._schedule(*items)

    def close(self) -> None:
        """End every stream (so a server can shut down while SSE clients are connected)."""
        self.closed = True
        self._schedule(_CLOSED)

    def _schedule(self, *items: LiveItem) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(self._fanout, items)

    def _fanout(self, items: tuple[LiveItem, ...]) -> None:
        with self._lock:
            subs = list(self._subs)
        for item in items:
            if item is not _CLOSED:
                self.published += 1
            for sub in subs:
                sub._put(item)
