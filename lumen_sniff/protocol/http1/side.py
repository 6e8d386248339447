"""One direction of an HTTP/1.x connection: its parse state, and body framing.

:mod:`lumen_sniff.protocol.http1.parser` runs the state table (see its docstring);
what is here needs nothing but one direction's :class:`Side`: the states, the
message being read, chunk-size lines, and the fast path that takes whole
chunks without going round the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lumen_sniff.model import Role
from lumen_sniff.protocol.decoding import ContentDecoder

__all__ = [
    "CHUNK_CRLF",
    "CHUNK_DATA",
    "CHUNK_SIZE",
    "HEAD",
    "LENGTH",
    "LOST",
    "MAX_CHUNK_LINE_BYTES",
    "TRAILERS",
    "UNTIL_CLOSE",
    "UPGRADED",
    "Message",
    "Side",
    "body_piece",
    "chunk_size",
    "skip",
    "take_line",
    "whole_chunks",
]

MAX_CHUNK_LINE_BYTES = 4096
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_CHUNK_LINE = re.compile(rb"\s*([0-9a-fA-F]{1,15})\s*(?:;.*)?", re.DOTALL)

HEAD, LENGTH, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF = range(5)
TRAILERS, UNTIL_CLOSE, LOST, UPGRADED = range(5, 9)


@dataclass(slots=True)
class Message:
    """The message a side is inside of."""

    stream: int
    decoder: ContentDecoder | None
    damage: str = ""  # why it can no longer end complete


@dataclass(slots=True)
class Side:
    """Parse state of one direction."""

    role: Role
    state: int = HEAD
    buf: bytearray | None = None
    scan: int = 0  # where the next search in ``buf`` starts
    remaining: int = 0  # body or chunk bytes still due
    msg: Message | None = None
    head_ts: int = 0
    fresh: bool = True  # no head yet: a bad start means capture began mid-stream
    line_ok: bool = True  # LOST: ``buf[0]`` begins a line
    lost_reason: str = ""
    lost_bytes: int = 0
    seen_cr: bool = False
    trailer_bytes: int = 0


def body_piece(side: Side, piece: memoryview, parts: list[bytes | memoryview]) -> None:
    """Add a piece of ``side``'s body (decoded, if it has a coding) to ``parts``."""
    msg = side.msg
    if msg is None or not piece:
        return
    if msg.decoder is None:
        parts.append(piece)
    else:
        decoded = msg.decoder.decode(bytes(piece))
        if decoded:
            parts.append(decoded)


def skip(side: Side, count: int) -> None:
    """Drop ``count`` bytes from the front of a LOST buffer, counting them."""
    buf = side.buf
    if count > 0 and buf is not None:
        side.line_ok = buf[count - 1] == 10
        del buf[:count]
        side.lost_bytes += count


def take_line(side: Side, data: bytes, pos: int) -> tuple[bytes | None, int]:
    """The next LF-terminated line (LF dropped), or None with the rest buffered."""
    nl = data.find(b"\n", pos)
    if nl < 0:
        if side.buf is None:
            side.buf = bytearray()
        side.buf += data[pos:]
        return None, len(data)
    line = data[pos:nl]
    if side.buf:
        line = bytes(side.buf) + line
    side.buf = None
    return line, nl + 1


def whole_chunks(side: Side, data: bytes, pos: int, parts: list[bytes | memoryview]) -> int:
    """Fast path of CHUNK_SIZE with nothing buffered: take whole chunks of ``data[pos:]``.

    A stream flushed event by event arrives as ``size CRLF data CRLF`` per read,
    and a bulk read holds many such chunks: they are taken here, a few ``find``
    calls each, without going round the state loop. Whatever is not plain
    (extensions, spaces, a bare LF, the last chunk, a chunk cut short) is left
    to the loop, from the returned position, in the state reached.
    """
    msg = side.msg
    decoder = msg.decoder if msg is not None else None
    find, n = data.find, len(data)
    while pos < n:
        nl = find(b"\n", pos, pos + 17)  # up to 15 hex digits and a CR
        if nl < 0:
            break
        line = data[pos:nl]
        size = _PLAIN_SIZES.get(line)
        if size is None:
            size = _plain_size(line)
        if not size:
            break
        start = nl + 1
        stop = start + size
        if data[stop : stop + 2] != b"\r\n":  # cut short, or an unusual ending
            side.state, side.remaining = CHUNK_DATA, size
            return start
        if msg is not None:
            if decoder is None:
                parts.append(data[start:stop])
            else:
                decoded = decoder.decode(data[start:stop])
                if decoded:
                    parts.append(decoded)
        pos = stop + 2
    return pos


def _plain_size(line: bytes) -> int:
    """The size on a plain chunk-size line (hex digits, maybe a CR); 0 for any other.

    Plain lines are remembered: a stream's chunk sizes repeat, and a dict
    lookup is cheaper than checking and converting the digits again.
    """
    digits = line[:-1] if line[-1:] == b"\r" else line
    if not 0 < len(digits) <= 15 or digits.translate(None, _HEX_DIGITS):
        return 0
    size = int(digits, 16)
    if len(_PLAIN_SIZES) < 4096:
        _PLAIN_SIZES[line] = size
    return size


_PLAIN_SIZES: dict[bytes, int] = {}
"""Plain chunk-size lines seen (LF excluded) → size; bounded."""


def chunk_size(line: bytes) -> int | None:
    """The size on a chunk-size line (extensions allowed), or None when it is not one."""
    m = _CHUNK_LINE.fullmatch(line)
    return int(m.group(1), 16) if m else None
