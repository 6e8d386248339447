"""Wake an asyncio task from capture threads without waking it per item.

The pump used to look at the capture queues every 10 ms whether or not anything
came: an idle daemon ran a hundred times a second. A :class:`BellQueue` rings its
:class:`Doorbell` on every put; the bell crosses threads (``call_soon_threadsafe``,
a write to the loop's self-pipe) only for the first put after the task last woke,
so a burst of thousands of Chunks costs one wake-up.

A BellQueue is on the daemon's per-record path (the ring-buffer reader puts every
Chunk, the pump takes every Chunk), so ``put_nowait`` takes the queue's mutex
once instead of going through ``put``'s blocking machinery, and :meth:`BellQueue.drain`
takes a whole batch under one acquisition; the ring reader hands over each
batch of records with one :meth:`BellQueue.put_many`.
"""

from __future__ import annotations

import asyncio
import queue
from collections import deque
from typing import TypeVar

__all__ = ["BellQueue", "Doorbell", "put_all"]

T = TypeVar("T")


class Doorbell:
    """A thread-safe, coalescing wake-up for one asyncio task."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()
        self._rung = False

    def ring(self) -> None:
        """Wake the waiter (from any thread); free when it is already due to wake."""
        if self._rung:
            return
        self._rung = True
        self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self) -> None:
        """Sleep until rung. Items put before the return are visible after it."""
        await self._event.wait()
        self._event.clear()
        # Cleared before the caller drains: a put racing with the drain rings again.
        self._rung = False


class BellQueue(queue.Queue[T]):
    """A ``queue.Queue`` that rings ``bell`` after each item it takes."""

    def __init__(self, maxsize: int, bell: Doorbell) -> None:
        super().__init__(maxsize)
        self._bell = bell

    queue: deque[T]

    def _put(self, item: T) -> None:
        super()._put(item)
        self._bell.ring()

    def put_nowait(self, item: T) -> None:
        """Append ``item`` or raise :class:`queue.Full`; same contract as ``Queue.put_nowait``."""
        with self.mutex:
            if 0 < self.maxsize <= len(self.queue):
                raise queue.Full
            self.queue.append(item)
            self.unfinished_tasks += 1
            self.not_empty.notify()
        self._bell.ring()

    def put_many(self, items: list[T]) -> int:
        """Append as many of ``items`` as fit, in order, under one lock and one ring.

        Returns:
            How many were taken: ``items[taken:]`` did not fit (the caller counts them).
        """
        with self.mutex:
            room = len(items) if self.maxsize <= 0 else self.maxsize - len(self.queue)
            taken = max(0, min(room, len(items)))
            if taken:
                self.queue.extend(items if taken == len(items) else items[:taken])
                self.unfinished_tasks += taken
                self.not_empty.notify(taken)
        if taken:
            self._bell.ring()
        return taken

    def drain(self, limit: int) -> list[T]:
        """Take up to ``limit`` items, oldest first, without blocking (maybe none)."""
        with self.mutex:
            items = self.queue
            n = min(limit, len(items))
            if n == 0:
                return []
            out = [items.popleft() for _ in range(n)]
            self.not_full.notify(n)
            return out


def put_all(q: queue.Queue[T], items: list[T]) -> int:
    """Append ``items`` in order until ``q`` is full; how many were taken.

    One lock and one ring for a :class:`BellQueue`, ``put_nowait`` each otherwise.
    """
    if isinstance(q, BellQueue):
        return q.put_many(items)
    for taken, item in enumerate(items):
        try:
            q.put_nowait(item)
        except queue.Full:
            return taken
    return len(items)
