"""HTTP/2 frame headers: constants, and finding a frame boundary after a loss.

The 9-byte frame header (RFC 9113 §4.1) is unpacked here with one
``struct.unpack_from`` because DATA frames are the hot path; frame *bodies* of
the control frames are parsed by hyperframe in :mod:`lumen_sniff.protocol.http2.parser`.

Resynchronisation strategy: after a gap (or when capture began mid-connection)
the next byte is at an unknown place. :func:`find_boundary` scans for a header
that a real peer could have sent: a known type, only that type's defined flags,
the reserved bit clear, a length within the peer's maximum and the type's fixed
size, a stream id of the right kind (zero or not; client-initiated streams are
odd) and not absurdly large, and *another* plausible header right where the
first frame ends. Text such as SSE or JSON starts with a byte that makes the
length field enormous, so it is skipped at C speed with ``bytes.find``.
"""

from __future__ import annotations

import struct

from lumen_sniff.model import Role

__all__ = [
    "CONTINUATION",
    "DATA",
    "DEFAULT_MAX_FRAME",
    "FLAG_ACK",
    "FLAG_END_HEADERS",
    "FLAG_END_STREAM",
    "FLAG_PADDED",
    "FRAME_HEADER",
    "GOAWAY",
    "HEADERS",
    "LARGEST_FRAME",
    "PING",
    "PREFACE",
    "PRIORITY",
    "PUSH_PROMISE",
    "RESYNC_MAX_FRAME",
    "RST_STREAM",
    "SETTINGS",
    "WINDOW_UPDATE",
    "find_boundary",
    "plausible_length",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The client connection preface (RFC 9113 §3.4)."""

FRAME_HEADER = struct.Struct(">HBBBL")
"""Length (24 bits, split 16 + 8), type, flags, R bit + stream id."""

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9

FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8

DEFAULT_MAX_FRAME = 16_384
"""SETTINGS_MAX_FRAME_SIZE until a peer announces more."""
LARGEST_FRAME = (1 << 24) - 1
"""The largest length a frame header can carry."""

RESYNC_MAX_FRAME = 1 << 20
"""Longest frame accepted while resynchronising, whatever the peer announced.

A candidate frame is buffered until the header after it confirms it, so this
bounds the memory of a connection that lost its place.
"""

_RESYNC_MAX_STREAM = 1 << 24
"""Stream ids above this are judged implausible while resynchronising.

A connection opening 8 million streams is far beyond what an API client does;
random bytes pass this test with probability 1/128.
"""

# Per known type (index = type): defined flag bits; stream id rule
# (0: must be 0, 1: must not be 0, 2: either; +odd: must be client-initiated);
# exact body length (-1: any).
_FLAGS = (0x09, 0x2D, 0x00, 0x00, 0x01, 0x0C, 0x01, 0x00, 0x00, 0x04)
_MUST_BE_ZERO, _NONZERO, _EITHER, _ODD = 0, 1, 2, 3
_STREAM_RULE = (_ODD, _ODD, _NONZERO, _NONZERO, _MUST_BE_ZERO, _ODD, _MUST_BE_ZERO,
                _MUST_BE_ZERO, _EITHER, _ODD)
_EXACT_LENGTH = (-1, -1, 5, 4, -1, -1, 8, -1, 4, -1)


def plausible_length(buf: bytes | bytearray | memoryview, pos: int, role: Role,
                     max_frame_bytes: int) -> int:
    """Judge the 9 bytes at ``buf[pos:]`` as a frame header ``role``'s side could send.

    Args:
        buf: bytes holding at least ``pos + 9`` bytes.
        pos: where the candidate header starts.
        role: the side that sent the bytes (only a server sends PUSH_PROMISE).
        max_frame_bytes: the largest frame length the receiver accepts.

    Returns:
        The frame's body length, or -1 when the header is implausible.
    """
    hi, lo, ftype, flags, sid = FRAME_HEADER.unpack_from(buf, pos)
    length: int = (hi << 8) | lo
    if length > max_frame_bytes or ftype > CONTINUATION or sid & 0x8000_0000:
        return -1
    if flags & ~_FLAGS[ftype] or sid > _RESYNC_MAX_STREAM:
        return -1
    exact = _EXACT_LENGTH[ftype]
    if exact >= 0 and length != exact:
        return -1
    rule = _STREAM_RULE[ftype]
    if rule == _MUST_BE_ZERO:
        if sid:
            return -1
    elif rule == _ODD:
        if not sid & 1:
            return -1
    elif rule == _NONZERO and not sid:
        return -1
    if ftype == SETTINGS and (length % 6 or (flags & FLAG_ACK and length)):
        return -1
    if ftype == GOAWAY and length < 8:
        return -1
    if ftype == PUSH_PROMISE and role is Role.REQUEST:
        return -1
    return length


def find_boundary(buf: bytearray, start: int, role: Role, max_frame_bytes: int, *,
                  at_end: bool = False) -> tuple[int, bool]:
    """Scan ``buf`` from ``start`` for a frame header confirmed by the next one.

    Args:
        buf: the bytes captured since the loss.
        start: the first position not yet ruled out.
        role: the side that sent the bytes.
        max_frame_bytes: the largest frame length the receiver accepts.
        at_end: no more bytes will come (the connection closed): a frame that
            ends exactly where the bytes end is confirmed by that.

    Returns:
        ``(pos, True)`` when a confirmed header starts at ``pos``; otherwise
        ``(pos, False)``: every position before ``pos`` is ruled out, and the
        scan must resume at ``pos`` once more bytes arrive.
    """
    end = len(buf)
    # A length below 64 KiB has a zero first byte: jump between zeros in C.
    zero_first = max_frame_bytes < 0x1_0000
    pos = start
    while True:
        if zero_first:
            pos = buf.find(b"\x00", pos)
            if pos < 0:
                return end, False
        if pos + 9 > end:
            return pos, False
        length = plausible_length(buf, pos, role, max_frame_bytes)
        if length >= 0:
            following = pos + 9 + length
            if following + 9 > end:
                return pos, at_end and following == end
            if plausible_length(buf, following, role, max_frame_bytes) >= 0:
                return pos, True
        pos += 1
