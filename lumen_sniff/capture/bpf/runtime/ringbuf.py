"""One thread reads every BPF ring buffer, blocking until there is something to read.

Strategy:
 - Each ring buffer map is mapped into the process and walked in Python
   (:mod:`.ringwalk`): one call per wake-up hands every record that is there to
   the ring's handler in batches (the data mapping and the records' spans), with
   no libbpf and no per-record callback from C.
 - The reader thread waits in ``epoll_wait`` on the maps' own descriptors (a ring
   buffer map is pollable: readable while records are unread) and on an eventfd
   that :meth:`RingReader.stop` writes; nothing else wakes it while the machine
   is idle (no timer).
 - After a wake-up it reads what is there, waits ``gather_s`` for the rest of a
   burst (the BPF side wakes per batch, not per record) and reads again.
 - *Ticks* are callables run after every wake-up; each returns the seconds
   until it must run again, or None. The wait's timeout is the nearest of
   those, so the socket report's pending judgements get their deadline and
   an idle daemon sleeps indefinitely.
 - While records flow, the wait is also bounded by ``active_s``: a record whose
   wake-up was skipped (the kernel wakes only a reader that has caught up) is
   read within that time. Records found that way are counted (``late_reads``);
   the first wait that finds nothing returns the reader to sleeping unbounded.
 - The fill level of each ring buffer is its producer minus consumer position.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import threading
import time
from collections.abc import Callable

from lumen_sniff.capture.bpf.runtime.maps import RINGBUF, Table
from lumen_sniff.capture.bpf.runtime.ringwalk import MappedRing, SpanHandler, supported

__all__ = ["RingReader", "SpanHandler", "Tick"]

log = logging.getLogger("lumen_sniff.capture.bpf.ringbuf")

_PR_SET_NAME = 15

Tick = Callable[[], "float | None"]
"""Run after every wake-up; returns seconds until it must run again, or None."""


def _name_thread(name: str) -> None:
    # Python 3.11 does not name OS threads; top, py-spy and bench/daemon.py's
    # per-thread CPU then tell the reader from the event loop. Cosmetic: never fails.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


class RingReader:
    """Every ring buffer of the daemon, read by one blocking thread."""

    def __init__(
        self, *, gather_s: float = 0.0, active_s: float = 1.0, name: str = "lumen-bpf-ring"
    ) -> None:
        self._gather_s = gather_s
        self._active_s = active_s
        self.late_reads = 0
        """Timed-out waits that still found records (their wake-up never came)."""
        self._name = name
        self._rings: list[tuple[MappedRing, SpanHandler]] = []
        self._map_fds: list[int] = []  # pollable: readable while records are unread
        self._ticks: list[Tick] = []
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, table: Table, handler: SpanHandler) -> None:
        """Read ``table`` (a ring buffer map) into ``handler``; before :meth:`start`."""
        if table.spec.type != RINGBUF:
            raise ValueError(f"{table.spec.name} is not a ring buffer")
        if self._thread is not None:
            raise RuntimeError("ring buffers are added before the reader starts")
        if not supported():
            raise OSError(f"the ring buffer reader needs x86-64 memory ordering: {table.spec.name}")
        ring = MappedRing.of_fd(table.fd, table.spec.max_entries, table.spec.name)
        self._rings.append((ring, handler))
        self._map_fds.append(table.fd)

    def add_tick(self, tick: Tick) -> None:
        """Run ``tick`` after every wake-up and when its returned delay is over."""
        self._ticks.append(tick)

    def start(self) -> None:
        """Start the reader thread."""
        if not self._rings:
            raise RuntimeError("no ring buffer to read")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def fill(self) -> dict[str, dict[str, int]]:
        """Bytes written and not yet read, and the size, of each ring buffer by map name."""
        return {ring.name: ring.fill() for ring, _ in self._rings}

    def _run_ticks(self) -> float:
        timeout = -1.0
        for tick in self._ticks:
            try:
                delay = tick()
            except Exception:  # the reader must keep reading
                log.exception("ring reader tick failed")
                delay = 1.0
            if delay is not None:
                timeout = max(0.0, delay) if timeout < 0 else min(timeout, max(0.0, delay))
        return timeout

    def _consume(self) -> int:
        got = 0
        for ring, handler in self._rings:
            try:
                got += ring.consume(handler)
            except Exception:  # the reader must keep reading
                log.exception("ring buffer %s: record handling failed", ring.name)
                got += 1
        return got

    def _run(self) -> None:
        _name_thread(self._name)
        poller = select.epoll()
        for fd in self._map_fds:
            poller.register(fd, select.EPOLLIN)
        poller.register(self._wake, select.EPOLLIN)
        try:
            active = False
            timeout = self._run_ticks()
            while not self._stop.is_set():
                wait = timeout
                if active:
                    wait = self._active_s if timeout < 0 else min(timeout, self._active_s)
                events = poller.poll(wait)
                woken = any(fd != self._wake for fd, _ in events)
                got = self._consume()
                if got > 0 and self._gather_s:
                    time.sleep(self._gather_s)
                    self._consume()
                if got > 0 and not woken:
                    self.late_reads += 1
                active = got > 0
                timeout = self._run_ticks()
            self._consume()
        finally:
            poller.close()

    def stop(self) -> None:
        """Stop the thread (after a last read) and free the ring buffers."""
        if self._wake < 0:
            return
        self._stop.set()
        os.eventfd_write(self._wake, 1)
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                # Still inside a handler: unmapping under it would crash; the
                # process is about to exit and the kernel frees it all then.
                log.warning("ring reader did not stop within 5 s; left running")
                return
            self._thread = None
        for ring, _ in self._rings:
            ring.close()
        self._rings.clear()
        self._map_fds.clear()
        os.close(self._wake)
        self._wake = -1
