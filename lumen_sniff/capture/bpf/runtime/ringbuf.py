"""One thread reads every BPF ring buffer, blocking until there is something to read.

Strategy:
 - libbpf's ``ring_buffer`` holds all the daemon's ring buffers (capture records
   and socket records) behind one epoll descriptor, which is itself pollable.
   The reader thread waits in ``epoll_wait`` on that descriptor and on an
   eventfd that :meth:`RingReader.stop` writes; nothing else wakes it while
   the machine is idle (no timer).
 - After a wake-up it consumes what is there, waits ``gather_s`` for the rest
   of a burst (the BPF side wakes per batch, not per record) and consumes again.
 - *Ticks* are callables run after every wake-up; each returns the seconds
   until it must run again, or None. The wait's timeout is the nearest of
   those, so the socket report's pending judgements get their deadline and
   an idle daemon sleeps indefinitely.
 - While records flow, the wait is also bounded by ``active_s``: a record whose
   wake-up was skipped (the kernel wakes only a reader that has caught up) is
   read within that time. Records found that way are counted (``late_reads``);
   the first wait that finds nothing returns the reader to sleeping unbounded.
 - The fill level of each ring buffer is read from its producer and consumer
   positions, in the two metadata pages mapped read-only from the map's fd.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from lumen_sniff.capture.bpf.runtime.libbpf import RING_SAMPLE_FN, libbpf
from lumen_sniff.capture.bpf.runtime.maps import RINGBUF, Table

__all__ = ["RecordHandler", "RingReader", "Tick"]

log = logging.getLogger("lumen_sniff.capture.bpf.ringbuf")

RecordHandler = Callable[[Any, Any, int], int]
"""``(ctx, data pointer, size) -> 0``, called on the reader thread for each record."""
Tick = Callable[[], "float | None"]
"""Run after every wake-up; returns seconds until it must run again, or None."""

_U64 = struct.Struct("=Q")


class _Ring:
    def __init__(self, table: Table) -> None:
        self.name = table.spec.name
        self.size = table.spec.max_entries
        page = mmap.PAGESIZE
        # Consumer position (page 0) and producer position (page 1), read-only.
        self._meta = mmap.mmap(table.fd, 2 * page, mmap.MAP_SHARED, mmap.PROT_READ)
        self._page = page

    def fill(self) -> dict[str, int]:
        consumer = _U64.unpack_from(self._meta, 0)[0]
        producer = _U64.unpack_from(self._meta, self._page)[0]
        return {"bytes": max(0, producer - consumer), "size": self.size}

    def close(self) -> None:
        self._meta.close()


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
        self._rb: int | None = None
        self._keep: list[Any] = []  # ctypes callbacks must outlive the ring_buffer
        self._rings: list[_Ring] = []
        self._ticks: list[Tick] = []
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, table: Table, handler: RecordHandler) -> None:
        """Read ``table`` (a ring buffer map) into ``handler``; before :meth:`start`."""
        if table.spec.type != RINGBUF:
            raise ValueError(f"{table.spec.name} is not a ring buffer")
        if self._thread is not None:
            raise RuntimeError("ring buffers are added before the reader starts")
        callback = RING_SAMPLE_FN(handler)
        self._keep.append(callback)
        lib = libbpf()
        if self._rb is None:
            rb = lib.ring_buffer__new(table.fd, callback, None, None)
            if not rb:
                raise OSError(ctypes.get_errno(), f"ring_buffer__new({table.spec.name})")
            self._rb = int(rb)
        else:
            ret = lib.ring_buffer__add(self._rb, table.fd, callback, None)
            if ret < 0:
                raise OSError(-ret, f"ring_buffer__add({table.spec.name})")
        self._rings.append(_Ring(table))

    def add_tick(self, tick: Tick) -> None:
        """Run ``tick`` after every wake-up and when its returned delay is over."""
        self._ticks.append(tick)

    def start(self) -> None:
        """Start the reader thread."""
        if self._rb is None:
            raise RuntimeError("no ring buffer to read")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def fill(self) -> dict[str, dict[str, int]]:
        """Bytes written and not yet read, and the size, of each ring buffer by map name."""
        return {ring.name: ring.fill() for ring in self._rings}

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

    def _run(self) -> None:
        assert self._rb is not None
        lib, rb = libbpf(), self._rb
        poller = select.epoll()
        ring_fd = lib.ring_buffer__epoll_fd(rb)
        poller.register(ring_fd, select.EPOLLIN)
        poller.register(self._wake, select.EPOLLIN)
        try:
            active = False
            timeout = self._run_ticks()
            while not self._stop.is_set():
                wait = timeout
                if active:
                    wait = self._active_s if timeout < 0 else min(timeout, self._active_s)
                events = poller.poll(wait)
                woken = any(fd == ring_fd for fd, _ in events)
                got = lib.ring_buffer__consume(rb)
                if got > 0 and self._gather_s:
                    time.sleep(self._gather_s)
                    lib.ring_buffer__consume(rb)
                if got > 0 and not woken:
                    self.late_reads += 1
                active = got > 0
                timeout = self._run_ticks()
            lib.ring_buffer__consume(rb)
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
                # Still inside a callback: freeing under it would crash; the
                # process is about to exit and the kernel frees it all then.
                log.warning("ring reader did not stop within 5 s; left running")
                return
            self._thread = None
        if self._rb is not None:
            libbpf().ring_buffer__free(self._rb)
            self._rb = None
        for ring in self._rings:
            ring.close()
        self._rings.clear()
        self._keep.clear()
        os.close(self._wake)
        self._wake = -1
