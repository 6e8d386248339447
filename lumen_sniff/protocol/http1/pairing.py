"""Which request a response answers: HTTP/1.1 pairs them in order (pipelining).

Requests take exchange numbers 1, 2, 3… in order; a final response is matched to
the oldest unanswered request. A response whose request was never seen takes a
fresh number. When a request head falls into a gap, a placeholder keeps the
later pairs aligned.
"""

from __future__ import annotations

from collections import deque

__all__ = ["Pairing"]

_MAX_PENDING = 1024
"""Unanswered requests remembered per connection; past it the oldest is given up on."""


class Pairing:
    """Exchange numbers of one connection, and the requests still waiting for answers."""

    __slots__ = ("_next", "_pending")

    def __init__(self) -> None:
        self._pending: deque[tuple[int, str]] = deque()  # (stream, method) not yet answered
        self._next = 1

    def request(self, method: str) -> int:
        """A request head: its exchange number (queued for its answer)."""
        stream = self._new()
        if len(self._pending) >= _MAX_PENDING:
            self._pending.popleft()
        self._pending.append((stream, method))
        return stream

    def placeholder(self) -> None:
        """A request head was lost: keep a seat for its response."""
        self.request("")

    def response(self) -> tuple[int, str]:
        """A final response head: (exchange number, method of its request or "")."""
        return self._pending.popleft() if self._pending else (self._new(), "")

    def _new(self) -> int:
        stream = self._next
        self._next += 1
        return stream
