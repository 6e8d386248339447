"""When to destroy a blocked process's LLM connections: now, or once its calls end.

A block refuses new connects at once (the guard), but destroying a connection
that carries a call still streaming would cut that call: its tokens are spent
upstream and the client gets half an answer. So a process with LLM exchanges
in flight keeps its connections until those exchanges end (their event
arrives, or the pipeline closes them), and only then are they destroyed. Its
cost shows as overshoot. A process with none in flight loses its idle
keep-alive connections at once.

The signal is per process, not per socket: the pipeline knows the open
exchanges of each connection, but a connection's key is (tgid, SSL*), and
nothing maps an SSL* to a socket without per-syscall tracepoints (see
:mod:`.endpoints`). So a process with one call in flight keeps all its LLM
connections until the count drops to zero; a busy process could start another
call on a pooled keep-alive connection meanwhile. The ceiling bounds both:
after ``grace_s`` seconds the connections are destroyed anyway, so a hung or
endless stream cannot dodge a block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set

__all__ = ["DEFAULT_GRACE_S", "Deferral"]

DEFAULT_GRACE_S = 120.0
"""Longest a blocked process's connections stay open for calls in flight."""


class Deferral:
    """Blocked processes whose connections wait for their calls in flight (pure)."""

    def __init__(self, grace_s: float = DEFAULT_GRACE_S) -> None:
        self._grace_s = grace_s
        self._deadline: dict[int, float] = {}

    @property
    def waiting(self) -> dict[int, float]:
        """pid → monotonic time at which its connections are destroyed regardless."""
        return dict(self._deadline)

    def due(self, pids: Iterable[int], busy: Mapping[int, int], now: float) -> set[int]:
        """Of ``pids`` (blocked), those whose connections to destroy now.

        A pid with exchanges in flight (``busy[pid] > 0``) waits, from the first
        time it is asked about, until it is idle or ``grace_s`` has passed.
        """
        out = set()
        for pid in pids:
            deadline = self._deadline.setdefault(pid, now + self._grace_s)
            if busy.get(pid, 0) > 0 and now < deadline:
                continue
            del self._deadline[pid]
            out.add(pid)
        return out

    def poll(self, blocked: Set[int], busy: Mapping[int, int], now: float) -> set[int]:
        """Waiting pids now due (idle, or past the ceiling); unblocked ones are dropped."""
        for pid in [p for p in self._deadline if p not in blocked]:
            del self._deadline[pid]
        return self.due(list(self._deadline), busy, now) if self._deadline else set()
