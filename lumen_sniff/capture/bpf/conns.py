"""The connections the eBPF capture has seen and not yet seen closed, per process.

A process that exits without SSL_free (``os._exit``, a crash, a kill) never says
its connections ended; the loader asks this index which ones were open when the
exit record came and closes them itself, at the right offset, so the pipeline
frees their state. Bounded: past ``max_conns`` the oldest entries go.
Thread-safe: the poll thread records, the daemon's loop calls ``close`` (ignore).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["OpenConns"]


class OpenConns:
    """(pid, SSL*) → end offset of each direction, indexed by pid."""

    def __init__(self, *, max_conns: int = 65536) -> None:
        self._max = max_conns
        self._lock = threading.Lock()
        self._by_pid: dict[int, dict[int, list[int]]] = {}
        self._order: OrderedDict[tuple[int, int], None] = OrderedDict()

    def advance(self, pid: int, ssl: int, direction: int, end_offset: int) -> None:
        """Bytes of ``direction`` up to ``end_offset`` were seen on (pid, ssl)."""
        # Known connection (nearly every record): no lock. A close racing with it
        # leaves the write on a list no one holds any more, which is what close means.
        conns = self._by_pid.get(pid)
        offsets = conns.get(ssl) if conns is not None else None
        if offsets is not None:
            offsets[direction] = end_offset
            return
        with self._lock:
            conns = self._by_pid.setdefault(pid, {})
            offsets = conns.get(ssl)
            if offsets is None:
                offsets = conns[ssl] = [0, 0]
                self._order[(pid, ssl)] = None
                if len(self._order) > self._max:
                    old_pid, old_ssl = self._order.popitem(last=False)[0]
                    self._drop(old_pid, old_ssl)
            offsets[direction] = end_offset

    def close(self, pid: int, ssl: int) -> None:
        """(pid, ssl) ended or is ignored: forget it."""
        with self._lock:
            self._order.pop((pid, ssl), None)
            self._drop(pid, ssl)

    def pop_pid(self, pid: int) -> list[tuple[int, int]]:
        """Forget every connection of ``pid``; return (ssl, egress end offset) of each."""
        with self._lock:
            conns = self._by_pid.pop(pid, {})
            for ssl in conns:
                self._order.pop((pid, ssl), None)
            return [(ssl, offsets[0]) for ssl, offsets in conns.items()]

    def _drop(self, pid: int, ssl: int) -> None:
        conns = self._by_pid.get(pid)
        if conns is not None:
            conns.pop(ssl, None)
            if not conns:
                del self._by_pid[pid]

    def __len__(self) -> int:
        with self._lock:
            return len(self._order)
