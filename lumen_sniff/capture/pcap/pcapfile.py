"""Capture files (pcap and pcapng) as a stream of raw frames, damage reported.

Frames are read in place from a map of the file: a classic pcap record or a
pcapng Enhanced Packet Block costs one ``unpack_from``, and the frame is not
even copied (:meth:`CaptureFile.raw`). scapy's ``RawPcapNgReader`` parses
the rare pcapng blocks (sections, interfaces, simple and obsolete packet
blocks); a classic pcap's 24-byte header is read here, so replaying one does
not even import scapy. No scapy layer ever dissects a packet. What this module
guarantees:

* the file type is judged from the magic, with a clear error for anything else;
* frames come with their link type (per interface and section in pcapng) and
  a UNIX nanosecond timestamp, whatever the file's resolution;
* no packet size cap below 256 MiB (scapy's is 65535, less than a loopback frame);
* damage is never mistaken for the end of the file: every good frame before
  it is yielded, then :class:`ReplayError` says where and what.
"""

from __future__ import annotations

import io
import mmap
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, NamedTuple, TypeAlias

from lumen_sniff.errors import ReplayError

__all__ = ["Buffer", "CaptureFile", "Frame", "PcapLayout", "RawFrame"]

Buffer: TypeAlias = "bytes | mmap.mmap"
"""What :meth:`CaptureFile.raw` slices frames from."""
RawFrame: TypeAlias = "tuple[int, int, Buffer, int, int, int]"
"""``(linktype, ts_ns, buffer, start, end, wire_len)``: the frame is ``buffer[start:end]``."""

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": False,  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": False,  # big-endian, microseconds
    b"\x4d\x3c\xb2\xa1": True,  # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": True,  # big-endian, nanoseconds
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_PCAPNG_SECTION = 0x0A0D0D0A
_MAX_CAPLEN = 1 << 28
"""Larger records are corruption, not packets (libpcap caps snaplen at 256 KiB)."""


class Frame(NamedTuple):
    """One captured frame. A tuple, not a dataclass: one is made per packet."""

    linktype: int
    """LINKTYPE_* of the interface it was captured on."""
    ts_ns: int
    """Capture time, UNIX nanoseconds."""
    data: bytes
    """The frame as captured, link header first."""
    wire_len: int
    """Length on the wire (more than ``len(data)`` when the snap length cut it)."""


class PcapLayout(NamedTuple):
    """A classic pcap file mapped in memory: see :meth:`CaptureFile.pcap_layout`."""

    buffer: Buffer
    """The whole file."""
    size: int
    """Its length in bytes."""
    first_record: int
    """Offset of the first record header."""
    record: struct.Struct
    """Record header: seconds, fraction of a second, captured length, wire length."""
    ts_scale: int
    """Nanoseconds per unit of the fraction (1 or 1000)."""
    linktype: int
    """LINKTYPE_* of every frame."""
    max_caplen: int
    """Longer records are damage."""


class CaptureFile:
    """An open pcap or pcapng file. Iterate it for :class:`Frame` records."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open ``path`` and read its file header.

        Raises:
            ReplayError: unreadable, empty, not a capture file, or a bad header.
        """
        self.path = Path(path)
        self.frames_read = 0
        """Frames yielded so far (by :meth:`raw`: once it stops)."""
        self._map: Buffer | None = None
        try:
            self._file: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed in close()
            info = os.fstat(self._file.fileno())
            self._size = info.st_size
            if not stat.S_ISREG(info.st_mode):
                # A pipe (``tcpdump -w - | lumen-sniff replay /dev/stdin``)
                # has no size and cannot be mapped or sought: take it whole.
                data = self._file.read()
                self._file.close()
                self._file = io.BytesIO(data)
                self._size = len(data)
        except OSError as exc:
            raise ReplayError(f"{self.path}: cannot read: {exc.strerror or exc}") from exc
        magic = self._file.read(4)
        self._reader: Any = None
        if magic in _PCAP_MAGICS:
            # 20 fixed bytes after the magic: read here, which spares
            # importing scapy for the commonest files.
            self.format = "pcap"
            self._nano = _PCAP_MAGICS[magic]
            self._endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
            head = self._file.read(20)
            if len(head) < 20:
                self._file.close()
                raise ReplayError(f"{self.path}: bad pcap header: cut short")
            self._linktype = struct.unpack(self._endian + "HHIIII", head)[5]
        elif magic == _PCAPNG_MAGIC:
            self.format = "pcapng"
            reader_cls = _scapy_reader("RawPcapNgReader")
            try:
                # The constructor expects the magic already read from ``fdesc``.
                self._reader = reader_cls.__new__(reader_cls)
                reader_cls.__init__(self._reader, str(self.path), self._file, magic)
            except Exception as exc:  # scapy raises Scapy_Exception, EOFError, struct.error
                self._file.close()
                raise ReplayError(f"{self.path}: bad pcapng header: {exc}") from exc
        else:
            self._file.close()
            what = "empty file" if not magic else f"file starts with {magic.hex()}"
            if magic[:2] == b"\x1f\x8b":
                what = "gzip-compressed (gunzip it first)"
            raise ReplayError(f"{self.path}: not a pcap or pcapng capture ({what})")

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        if isinstance(self._map, mmap.mmap):
            self._map.close()
        self._map = None
        self._file.close()

    def __iter__(self) -> Iterator[Frame]:
        """Yield every frame; raise ReplayError at the first damaged record."""
        for linktype, ts_ns, buffer, start, end, wire_len in self.raw():
            yield Frame(linktype, ts_ns, buffer[start:end], wire_len)

    def raw(self) -> Iterator[RawFrame]:
        """Yield ``(linktype, ts_ns, buffer, start, end, wire_len)`` per frame, in place.

        The frame is ``buffer[start:end]``. The buffer is usually the whole
        file, mapped in memory, the same object for every frame (for pcapng
        blocks other than Enhanced Packet Blocks, the frame's own bytes).
        Damage raises ReplayError as for iteration.
        """
        if self.format == "pcap":
            return self._raw_pcap()
        return self._raw_pcapng()

    def pcap_layout(self) -> PcapLayout:
        """Where a classic pcap's records are, for readers that frame them in place.

        The file is mapped in memory (until :meth:`close`). A reader walks
        records from ``first_record``; each is a ``record`` header (seconds,
        fraction, captured length, wire length) then the frame; a record that
        does not fit is damage, reported with :meth:`record_error`.

        Raises:
            ReplayError: the file is pcapng.
        """
        if self.format != "pcap":
            raise ReplayError(f"{self.path}: not a classic pcap file")
        return PcapLayout(
            buffer=self._mapped(),
            size=self._size,
            first_record=24,
            record=struct.Struct(self._endian + "IIII"),
            ts_scale=1 if self._nano else 1000,
            linktype=self._linktype,
            max_caplen=_MAX_CAPLEN,
        )

    def record_error(self, offset: int, caplen: int | None, frames: int) -> ReplayError:
        """The error for a pcap record at ``offset`` that does not fit.

        Args:
            offset: where the record starts (the end of the last good one).
            caplen: its captured length, or None when its header is cut.
            frames: good frames before it (``frames_read`` is set to it).
        """
        self.frames_read = frames
        if caplen is None:
            problem = "cut inside a record header"
        elif caplen > _MAX_CAPLEN:
            problem = f"record of {caplen} bytes is too large"
        else:
            problem = f"record of {caplen} bytes cut short"
        return self._damage(offset, problem)

    def _mapped(self) -> Buffer:
        buffer = self._map
        if buffer is None:
            try:
                buffer = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # not mappable: read it whole
                self._file.seek(0)
                buffer = self._file.read()
            self._map = buffer
        return buffer

    def _raw_pcapng(self) -> Iterator[RawFrame]:
        # Enhanced Packet Blocks, nearly every block of a file, are read in
        # place from a map of the file. scapy reads every other block (section
        # headers, interfaces, simple and obsolete packet blocks) and any EPB
        # that is not clean, from the same offset, so it keeps the interface
        # table and byte order, and damage is judged as in iteration.
        offset = self._file.tell()  # after the first section header
        buf = self._mapped()
        size = self._size
        reader = self._reader
        count = 0
        last_ts = 0
        endian = ""
        interfaces: list[tuple[int, int, int]] = []  # linktype, ns per tick or 0, ticks/s
        try:
            while offset < size:
                if endian != reader.endian or len(interfaces) != len(reader.interfaces):
                    endian = reader.endian
                    head = struct.Struct(endian + "II")
                    epb = struct.Struct(endian + "5I")
                    trailer = struct.Struct(endian + "I")
                    interfaces = [_interface(i) for i in reader.interfaces]
                block_type = 0
                if offset + 8 <= size:
                    block_type, length = head.unpack_from(buf, offset)
                    end_block = offset + length
                    if (
                        block_type == 6
                        and length >= 32
                        and not length % 4
                        and end_block <= size
                        and trailer.unpack_from(buf, end_block - 4)[0] == length
                    ):
                        iface, high, low, caplen, wirelen = epb.unpack_from(buf, offset + 8)
                        if iface >= len(interfaces):
                            self.frames_read = count
                            raise self._damage(offset, f"packet on undeclared interface {iface}")
                        linktype, ns_per_tick, per_second = interfaces[iface]
                        ticks = high << 32 | low
                        last_ts = (
                            ticks * ns_per_tick
                            if ns_per_tick
                            else ticks * 1_000_000_000 // per_second
                        )
                        start = offset + 28
                        offset = end_block
                        count += 1
                        end = min(start + caplen, end_block - 4)
                        yield linktype, last_ts, buf, start, end, wirelen
                        continue
                self._file.seek(offset)
                try:
                    found = reader._read_block(_MAX_CAPLEN)
                except EOFError:  # the end, or damage: the walk below tells
                    break
                except Exception as exc:  # scapy raises Scapy_Exception, struct.error
                    self.frames_read = count
                    problem = self._check_pcapng_tail(offset) or str(exc)
                    raise self._damage(offset, problem) from exc
                if block_type == _PCAPNG_SECTION:
                    reader.interfaces = []  # interface numbers start again (scapy keeps them)
                offset = self._file.tell()
                if found is not None:
                    data, meta = found
                    if meta.tshigh is not None:
                        last_ts = _ticks_to_ns(meta.tshigh << 32 | meta.tslow, meta.tsresol)
                    count += 1
                    yield meta.linktype, last_ts, data, 0, len(data), meta.wirelen
            self.frames_read = count
            problem = self._check_pcapng_tail(offset)
            if problem:
                raise self._damage(offset, problem)
        finally:
            self.frames_read = count

    def _raw_pcap(self) -> Iterator[RawFrame]:
        # Read in place from a map of the file rather than through scapy,
        # which copies and builds a tuple per record.
        view, size, offset, record, scale, linktype, max_caplen = self.pcap_layout()
        unpack = record.unpack_from
        count = 0
        try:
            while offset + 16 <= size:
                sec, frac, caplen, wirelen = unpack(view, offset)
                start = offset + 16
                end = start + caplen
                if end > size or caplen > max_caplen:
                    raise self.record_error(offset, caplen, count)
                count += 1
                yield linktype, sec * 1_000_000_000 + frac * scale, view, start, end, wirelen
                offset = end
            if offset != size:
                raise self.record_error(offset, None, count)
        finally:
            self.frames_read = count

    def _check_pcapng_tail(self, start: int) -> str:
        """Walk whole blocks from ``start`` to the end; describe the first bad one."""
        endian = self._reader.endian
        self._file.seek(start)
        position = start
        while position < self._size:
            head = self._file.read(8)
            if len(head) < 8:
                return "cut inside a block header"
            block_type, length = struct.unpack(endian + "II", head)
            if block_type == _PCAPNG_SECTION:
                endian = "<" if self._file.read(4) == b"\x4d\x3c\x2b\x1a" else ">"
                length = struct.unpack(endian + "I", head[4:])[0]
            if length < 12 or length % 4 or position + length > self._size:
                return f"bad block length {length}"
            self._file.seek(position + length - 4)
            if struct.unpack(endian + "I", self._file.read(4))[0] != length:
                return "block trailer does not match its length"
            position += length
        return ""

    def _damage(self, offset: int, what: str) -> ReplayError:
        return ReplayError(
            f"{self.path}: damaged {self.format} after {self.frames_read} packets "
            f"(byte {offset} of {self._size}): {what}"
        )


def _ticks_to_ns(ticks: int, per_second: int) -> int:
    if 1_000_000_000 % per_second == 0:
        return ticks * (1_000_000_000 // per_second)
    return ticks * 1_000_000_000 // per_second


def _interface(description: tuple[int, int, dict[str, Any]]) -> tuple[int, int, int]:
    """(linktype, nanoseconds per tick or 0 when not whole, ticks per second) of an IDB."""
    linktype, _snaplen, options = description
    per_second = options["tsresol"]
    whole = 1_000_000_000 % per_second == 0
    return linktype, 1_000_000_000 // per_second if whole else 0, per_second


def _scapy_reader(name: str) -> Any:
    from scapy import utils

    return getattr(utils, name)
