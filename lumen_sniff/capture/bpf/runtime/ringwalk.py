"""A BPF ring buffer mapped into the daemon and walked in Python, without libbpf.

libbpf's ``ring_buffer__consume`` called a ctypes callback per record: the
crossing from C into Python (argument conversion, GIL state, a ctypes frame)
cost more than decoding the record. Here one call walks every record that is
there and hands their spans to the handler in one batch.

The kernel's protocol (``Documentation/bpf/ringbuf.rst``):
 - page 0 of the map holds the consumer position; it is the only page a reader
   may map writable. Page 1 holds the producer position, and the data area
   follows it, mapped twice in a row, so a record that wraps at the end of the
   area is still contiguous in the mapping.
 - positions only grow; a record at position ``pos`` lives at ``pos & mask`` of
   the data area. It starts with an 8-byte header: a u32 length with
   ``BUSY`` (reserved, not yet committed) and ``DISCARD`` (committed, to skip)
   bits on top, and a u32 page offset for the kernel. Records are 8-byte aligned.
 - the reader stops at the first busy record (the records after it may be
   committed, but the consumer position cannot pass it), and publishes how far
   it read by storing the consumer position, which frees that space.

Memory ordering, x86-64 only (the daemon only hooks x86-64 binaries): x86 does
not reorder a load with later loads, so reading the producer position, then a
header, then its payload has acquire semantics; nor a store with earlier loads,
so storing the consumer position after the payloads were copied out has release
semantics. The C compiler cannot move these accesses either: each is a separate
call into CPython. Every position and header is read and written through a
``memoryview`` cast to ``Q``/``I``, whose item access is one aligned load or
store (``memcpy`` of 8 or 4 bytes), so the kernel never sees a torn consumer
position; ``struct.pack_into`` would write it byte by byte.
"""

from __future__ import annotations

import mmap
import platform
from collections.abc import Callable

__all__ = ["BUSY_BIT", "DISCARD_BIT", "HEADER_BYTES", "MappedRing", "SpanHandler", "Spans"]

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HEADER_BYTES = 8
BATCH_RECORDS = 1024
"""Records handed over per batch: the consumer position is published after each,
so a long backlog frees ring space as it is read, not only at the end."""

Spans = list[tuple[int, int]]
"""``(offset, length)`` of each record's payload in the ring's data mapping."""
SpanHandler = Callable[[mmap.mmap, Spans], None]
"""Called on the reader thread with the data mapping and a batch of record spans.
It must copy what it keeps (slicing an ``mmap`` gives ``bytes``) before returning:
the space is given back to the kernel right after."""


def supported() -> bool:
    """True on machines whose memory ordering this walker relies on (x86-64)."""
    return platform.machine() in ("x86_64", "AMD64")


class MappedRing:
    """One ring buffer: its consumer page (read-write) and producer page + data (read-only)."""

    def __init__(self, consumer: mmap.mmap, data: mmap.mmap, size: int, name: str) -> None:
        """Walk a ring laid out as the kernel maps it.

        Args:
            consumer: At least 8 bytes; the consumer position at offset 0.
            data: The producer position at offset 0; the data area at
                ``mmap.PAGESIZE``, ``2 * size`` bytes (the area twice).
            size: The data area's size, a power of two.
            name: The map's name (fill levels, logs).
        """
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring size {size} is not a power of two")
        if len(data) < mmap.PAGESIZE + 2 * size:
            raise ValueError("the data mapping is shorter than two data areas")
        self.name = name
        self.size = size
        self.buf = data
        self._maps = (consumer, data)
        self._cons = memoryview(consumer).cast("B")[:8].cast("Q")
        self._prod = memoryview(data).cast("B")[:8].cast("Q")
        self._words = memoryview(data).cast("I")
        self._mask = size - 1

    @classmethod
    def of_fd(cls, fd: int, size: int, name: str) -> MappedRing:
        """Map the ring buffer map ``fd`` (``size`` bytes of data) as the kernel allows."""
        page = mmap.PAGESIZE
        consumer = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            data = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except OSError:
            consumer.close()
            raise
        return cls(consumer, data, size, name)

    def fill(self) -> dict[str, int]:
        """Bytes written and not yet read, and the size."""
        return {"bytes": max(0, self._prod[0] - self._cons[0]), "size": self.size}

    def walk(self, limit: int = BATCH_RECORDS) -> tuple[Spans, int, int]:
        """Up to ``limit`` committed records from the consumer position on.

        Returns:
            The payload spans (discarded records left out), the position after
            the last record walked (store it with :meth:`commit` once the spans
            are handled), and how many records were walked, discarded included.
        """
        cons = self._cons[0]
        prod = self._prod[0]
        words, mask, base = self._words, self._mask, mmap.PAGESIZE
        spans: Spans = []
        walked = 0
        while cons < prod and walked < limit:
            at = base + (cons & mask)
            head = words[at >> 2]
            if head & BUSY_BIT:
                break  # reserved, not committed yet: nothing after it may be read
            length = head & ~DISCARD_BIT
            if not head & DISCARD_BIT:
                spans.append((at + HEADER_BYTES, length))
            cons += (length + HEADER_BYTES + 7) & ~7
            walked += 1
        return spans, cons, walked

    def commit(self, position: int) -> None:
        """Give the space before ``position`` back to the kernel (one aligned 8-byte store)."""
        self._cons[0] = position

    def consume(self, handler: SpanHandler) -> int:
        """Hand every committed record to ``handler`` in batches; the number of records walked."""
        total = 0
        while True:
            spans, position, walked = self.walk()
            if not walked:
                return total
            try:
                if spans:
                    handler(self.buf, spans)
            finally:
                # Even if the handler failed: a record that breaks it would break it again.
                self.commit(position)
            total += walked

    def close(self) -> None:
        """Unmap (the views first: an mmap with exported buffers cannot close)."""
        for view in (self._cons, self._prod, self._words):
            view.release()
        for m in self._maps:
            m.close()
