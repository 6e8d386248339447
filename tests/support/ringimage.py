"""A BPF ring buffer laid out as the kernel maps it, in anonymous memory.

For tests of the ring walker and for ``bench/hotpath.py``: the consumer page,
then the producer page with the data area after it, twice in a row (the kernel
maps the data pages twice so a record never wraps in the reader's view). The
image writes records as ``bpf_ringbuf_reserve``/``submit`` do: an 8-byte header
(length with the BUSY/DISCARD bits, page offset), the payload, padding to 8.
"""

from __future__ import annotations

import mmap
import struct

from lumen_sniff.capture.bpf.runtime.ringwalk import BUSY_BIT, DISCARD_BIT, MappedRing

__all__ = ["RingImage"]

_HEADER = struct.Struct("<II")
_POS = struct.Struct("<Q")


class RingImage:
    """A writable ring image; :meth:`ring` is the walker over it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.consumer_page = mmap.mmap(-1, mmap.PAGESIZE)
        self.data = mmap.mmap(-1, mmap.PAGESIZE + 2 * size)
        self.producer = 0

    def ring(self, name: str = "test_ring") -> MappedRing:
        return MappedRing(self.consumer_page, self.data, self.size, name)

    @property
    def consumer(self) -> int:
        return int(_POS.unpack_from(self.consumer_page, 0)[0])

    def set_positions(self, position: int) -> None:
        """Start both positions at ``position`` (an empty ring, e.g. near a wrap)."""
        _POS.pack_into(self.consumer_page, 0, position)
        self.producer = position
        _POS.pack_into(self.data, 0, position)

    def rewind(self) -> None:
        """Mark every record written unread again (benches read one image many times)."""
        _POS.pack_into(self.consumer_page, 0, 0)

    def _put(self, position: int, raw: bytes) -> None:
        # Each byte of the area lives twice: at its offset and one area further.
        off = position & (self.size - 1)
        first = min(len(raw), self.size - off)
        for at, part in ((off, raw[:first]), (0, raw[first:])):
            for copy in (mmap.PAGESIZE, mmap.PAGESIZE + self.size):
                self.data[copy + at : copy + at + len(part)] = part

    def write(self, payload: bytes, *, busy: bool = False, discard: bool = False) -> int:
        """Reserve and (unless ``busy``) commit a record; its position."""
        position = self.producer
        flags = (BUSY_BIT if busy else 0) | (DISCARD_BIT if discard else 0)
        raw = _HEADER.pack(len(payload) | flags, 0) + payload
        raw += b"\0" * (-len(raw) % 8)
        if len(raw) > self.size - (self.producer - self.consumer):
            raise ValueError("ring full")
        self._put(position, raw)
        self.producer += len(raw)
        _POS.pack_into(self.data, 0, self.producer)
        return position

    def commit(self, position: int, *, discard: bool = False) -> None:
        """Clear the BUSY bit of the record reserved at ``position``."""
        at = mmap.PAGESIZE + (position & (self.size - 1))
        length = _HEADER.unpack_from(self.data, at)[0] & ~BUSY_BIT
        self._put(position, _HEADER.pack(length | (DISCARD_BIT if discard else 0), 0))
