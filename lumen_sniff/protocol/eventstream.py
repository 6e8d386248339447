"""Incremental framer of AWS ``application/vnd.amazon.eventstream`` (Bedrock streams).

Strategy
--------
Every message is self-delimiting, big-endian::

    total_length u32 | headers_length u32 | prelude_crc u32 (CRC-32 of the 8 bytes before)
    headers (headers_length bytes) | payload | message_crc u32 (CRC-32 of all bytes before)

A header is ``name_len u8, name, type u8, value`` where the value's size
depends on the type (0/1 true/false: none; 2 byte: 1; 3 short: 2; 4 int: 4;
5 long: 8; 6 bytes and 7 string: u16 length + data; 8 timestamp: 8; 9 uuid:
16). The framer keeps the unfinished message in a buffer and hands out each
complete one as an :class:`EventMessage` (string headers only; other header
values are skipped, none of them matter for usage).

It never raises. A message whose prelude CRC does not match means the framer
lost its place: the whole buffered stream is dropped and counted
(``desync_count`` / ``dropped_bytes``) and nothing more is framed, since
there is no way to find the next message boundary in binary data. A message
whose own CRC fails, whose lengths are impossible, or which exceeds
``max_message_bytes`` is dropped and counted (``bad_count`` /
``oversize_count``) and framing goes on after it, because the prelude still
says where it ends.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "EventMessage", "EventStreamParser"]

DEFAULT_MAX_MESSAGE_BYTES = 16 << 20
"""Default cap on one message: 16 MiB (AWS's own limit)."""

_PRELUDE = 12
_CRC = 4
_MIN_MESSAGE = _PRELUDE + _CRC
_U32 = struct.Struct(">I")
_PRELUDE_STRUCT = struct.Struct(">III")
_FIXED_SIZES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
_TYPE_STRING = 7
_TYPE_BYTES = 6


@dataclass(frozen=True, kw_only=True, slots=True)
class EventMessage:
    """One framed message: its string headers and its payload bytes."""

    headers: dict[str, str]
    """String-valued headers (``:message-type``, ``:event-type``, ``:exception-type``…)."""
    payload: bytes
    """The payload (JSON for Bedrock)."""


class EventStreamParser:
    """Split an eventstream byte stream into messages; never raises."""

    __slots__ = (
        "_buf",
        "_max",
        "_skip",
        "bad_count",
        "desync_count",
        "dropped_bytes",
        "oversize_count",
    )

    def __init__(self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        """Create a framer.

        Args:
            max_message_bytes: Cap on one message; longer ones are skipped, counted.
        """
        self._max = max_message_bytes
        self._buf = bytearray()
        self._skip = 0
        self.bad_count = 0
        """Messages dropped for a failed message CRC or impossible lengths."""
        self.oversize_count = 0
        """Messages dropped for exceeding the cap."""
        self.desync_count = 0
        """Times the prelude CRC failed and the rest of the stream was dropped."""
        self.dropped_bytes = 0
        """Bytes dropped for any of the reasons above."""

    def feed(self, data: bytes) -> list[EventMessage]:
        """Consume the next bytes.

        Args:
            data: Any piece of the stream.

        Returns:
            The messages completed by these bytes, in order.
        """
        out: list[EventMessage] = []
        if self.desync_count:
            self.dropped_bytes += len(data)
            return out
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
        if not data:
            return out
        buf = self._buf
        buf += data
        start = 0
        while len(buf) - start >= _PRELUDE:
            total, headers_len, prelude_crc = _PRELUDE_STRUCT.unpack_from(buf, start)
            if zlib.crc32(memoryview(buf)[start : start + 8]) != prelude_crc:
                self.desync_count += 1
                self.dropped_bytes += len(buf) - start
                start = len(buf)
                break
            if total < _MIN_MESSAGE or headers_len > total - _MIN_MESSAGE or total > self._max:
                if total > self._max:
                    self.oversize_count += 1
                else:
                    self.bad_count += 1
                total = max(total, _PRELUDE)
                have = len(buf) - start
                self.dropped_bytes += total
                if have >= total:
                    start += total
                    continue
                self._skip = total - have
                start = len(buf)
                break
            if len(buf) - start < total:
                break
            message = _message(bytes(buf[start : start + total]), headers_len)
            start += total
            if message is None:
                self.bad_count += 1
                self.dropped_bytes += total
            else:
                out.append(message)
        del buf[:start]
        return out

    def close(self) -> int:
        """End of stream: drop an unfinished message.

        Returns:
            The number of bytes dropped.
        """
        left = len(self._buf)
        if left:
            self.dropped_bytes += left
            self._buf.clear()
        return left


def _message(raw: bytes, headers_len: int) -> EventMessage | None:
    """Decode one whole message, or None when its CRC or headers are bad."""
    (crc,) = _U32.unpack_from(raw, len(raw) - _CRC)
    if zlib.crc32(memoryview(raw)[: len(raw) - _CRC]) != crc:
        return None
    headers = _headers(raw, _PRELUDE, _PRELUDE + headers_len)
    if headers is None:
        return None
    return EventMessage(headers=headers, payload=raw[_PRELUDE + headers_len : len(raw) - _CRC])


def _headers(raw: bytes, i: int, end: int) -> dict[str, str] | None:
    out: dict[str, str] = {}
    while i < end:
        name_len = raw[i]
        i += 1
        name = raw[i : i + name_len].decode("utf-8", "replace")
        i += name_len
        if i >= end:
            return None
        kind = raw[i]
        i += 1
        if kind in (_TYPE_STRING, _TYPE_BYTES):
            if i + 2 > end:
                return None
            size = (raw[i] << 8) | raw[i + 1]
            i += 2
            if i + size > end:
                return None
            if kind == _TYPE_STRING:
                out[name] = raw[i : i + size].decode("utf-8", "replace")
            i += size
        else:
            size = _FIXED_SIZES.get(kind, -1)
            if size < 0 or i + size > end:
                return None
            i += size
    return out
