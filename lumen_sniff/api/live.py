"""The live feed behind ``GET /api/live``: committed events fanned out to SSE clients.

Strategy: the feed is a commit listener of the store's writer, so a client
only ever sees events that are durably stored. Each subscriber has its own
bounded backlog of batches; a client too slow to keep up loses the oldest
batches, and those events are counted (``dropped``), never blocking the writer
or the other clients. When the writer closes (daemon shutdown), every stream
ends, so the HTTP server can stop without waiting on open connections.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Sequence

from lumen_sniff.model import UsageEvent
from lumen_sniff.serialize import event_to_dict

__all__ = ["LiveFeed", "Subscription"]

_KEEPALIVE_S = 15.0


class Subscription:
    """One client's view of the feed."""

    def __init__(self, feed: LiveFeed, backlog_batches: int) -> None:
        self._feed = feed
        self._batches: deque[Sequence[UsageEvent]] = deque()
        self._limit = backlog_batches
        self._wake = asyncio.Event()

    def push(self, batch: Sequence[UsageEvent]) -> None:
        """Queue a committed batch; drop (and count) the oldest when over the backlog."""
        if len(self._batches) >= self._limit:
            self._feed.dropped += len(self._batches.popleft())
        self._batches.append(batch)
        self._wake.set()

    def wake(self) -> None:
        """Wake the reader (the feed closed)."""
        self._wake.set()

    async def sse(self, keepalive_s: float = _KEEPALIVE_S) -> AsyncIterator[bytes]:
        """Yield the SSE stream: a ``subscribed`` comment, then one ``usage`` event each.

        Ends when the feed closes. A comment is sent every ``keepalive_s`` of
        silence so proxies keep the connection and dead clients are noticed.
        """
        try:
            yield b": subscribed\n\n"
            while True:
                while self._batches:
                    for event in self._batches.popleft():
                        data = json.dumps(event_to_dict(event), separators=(",", ":"))
                        yield f"event: usage\ndata: {data}\n\n".encode()
                if self._feed.is_closed:
                    return
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), keepalive_s)
                except TimeoutError:
                    yield b": keepalive\n\n"
        finally:
            self._feed.unsubscribe(self)


class LiveFeed:
    """Fans committed events out to subscribers. A store :class:`CommitListener`."""

    def __init__(self, *, max_subscribers: int = 64, backlog_batches: int = 256) -> None:
        """Create the feed.

        Args:
            max_subscribers: Clients served at once; more are refused.
            backlog_batches: Committed batches a client may lag behind.
        """
        self._subs: set[Subscription] = set()
        self._max = max_subscribers
        self._backlog = backlog_batches
        self.is_closed = False
        """True once the writer closed; streams end."""
        self.dropped = 0
        """Events not delivered to slow clients (still stored)."""

    @property
    def subscribers(self) -> int:
        """Clients connected now."""
        return len(self._subs)

    def subscribe(self) -> Subscription | None:
        """Start a subscription, or None when the feed is full or closed."""
        if self.is_closed or len(self._subs) >= self._max:
            return None
        sub = Subscription(self, self._backlog)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscription (its stream ended)."""
        self._subs.discard(sub)

    def committed(self, events: Sequence[UsageEvent]) -> None:
        """Deliver a committed batch to every subscriber."""
        for sub in self._subs:
            sub.push(events)

    def closed(self) -> None:
        """The writer closed: end every stream once its backlog is sent."""
        self.is_closed = True
        for sub in self._subs:
            sub.wake()

    def stats(self) -> dict[str, int]:
        """Counters for /api/status."""
        return {"live_subscribers": len(self._subs), "live_dropped": self.dropped}
