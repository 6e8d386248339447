"""Message heads of HTTP/1.x: finding a whole head, and what it does to its side.

The HEAD state of :mod:`lumen_sniff.protocol.http1.parser` hands its bytes to
:meth:`HeadReader.read`. A whole head becomes a RequestHead or ResponseHead
(paired through :class:`~lumen_sniff.protocol.http1.pairing.Pairing`) and sets the
side's body framing; a first line that cannot start a message, or a head over the
cap, sends the side LOST.
"""

from __future__ import annotations

from lumen_sniff.model import ConnKey, HttpEvent, ProcessInfo, RequestHead, ResponseHead, Role
from lumen_sniff.protocol.decoding import make_decoder
from lumen_sniff.protocol.http1.messages import MessageEvents
from lumen_sniff.protocol.http1.pairing import Pairing
from lumen_sniff.protocol.http1.side import CHUNK_SIZE, LENGTH, UNTIL_CLOSE, Message, Side
from lumen_sniff.protocol.http1.syntax import (
    MAX_HEAD_BYTES,
    MAX_LINE_BYTES,
    START_LINE,
    find_head_end,
    parse_head,
)

__all__ = ["HeadReader"]


class HeadReader:
    """Reads the heads of both directions of one connection.

    Args:
        conn: The connection's key, copied into every event.
        events: Where message ends and losses are emitted.
        pairs: Exchange numbering shared with the parser.
        process: Owner of the connection, copied into request heads.
        peer: Remote address, copied into request heads.
    """

    def __init__(
        self,
        conn: ConnKey,
        events: MessageEvents,
        pairs: Pairing,
        *,
        process: ProcessInfo | None,
        peer: tuple[str, int] | None,
    ) -> None:
        self._conn = conn
        self._ev = events
        self._pairs = pairs
        self._process = process
        self._peer = peer
        self.upgraded = False
        """A 101 or a CONNECT 2xx was answered: nothing after it is HTTP."""
        self.has_synced = False
        """True once a message head was parsed on either side."""

    def read(
        self, side: Side, ts: int, data: bytes, pos: int, out: list[HttpEvent]
    ) -> tuple[bytes, int]:
        """HEAD state: find a whole head and act on it; return the bytes left to run."""
        buf = side.buf
        if not buf:
            n = len(data)
            while pos < n and data[pos] in b"\r\n":  # stray CRLFs between messages
                pos += 1
            if pos == n:
                return data, pos
            side.head_ts = ts
            end = find_head_end(data, pos)
            if end >= 0:
                if end - pos > MAX_HEAD_BYTES and START_LINE[side.role].match(data, pos):
                    return self._too_large(side, ts, data, pos, out)
                if not self._on_head(side, data[pos:end], out):
                    return data, pos  # resync scans from the bad line
                return data, end
            side.buf = buf = bytearray(data[pos:])
        else:
            buf += data[pos:] if pos else data
            end = find_head_end(buf, side.scan)
            if end >= 0:
                side.buf = None
                if end > MAX_HEAD_BYTES and START_LINE[side.role].match(buf):
                    return self._too_large(side, ts, bytes(buf), 0, out)
                block, rest = bytes(buf[:end]), bytes(buf[end:])
                if not self._on_head(side, block, out):
                    return block + rest, 0
                return rest, 0
        # Incomplete. Give up at once on a first line that cannot be a start line.
        nl = buf.find(b"\n")
        if (nl < 0 and len(buf) > MAX_LINE_BYTES) or (
            nl >= 0 and START_LINE[side.role].match(buf) is None
        ):
            side.buf = None
            self._ev.lose(side, ts, "resync" if side.fresh else "bad_head", out)
            return bytes(buf), 0
        if len(buf) > MAX_HEAD_BYTES:
            side.buf = None
            return self._too_large(side, ts, bytes(buf), 0, out)
        side.scan = max(0, len(buf) - 2)  # a terminator is at most 3 bytes
        return b"", 0

    def _too_large(
        self, side: Side, ts: int, data: bytes, pos: int, out: list[HttpEvent]
    ) -> tuple[bytes, int]:
        """Skip exactly the cap's worth of an oversized head, then resync at a later line.

        Cutting at a fixed point (not where the bytes happened to be split) keeps
        the outcome the same however the stream was chunked.
        """
        self._ev.lose(side, ts, "head_too_large", out, skipped=MAX_HEAD_BYTES, line_ok=False)
        return data, pos + MAX_HEAD_BYTES

    def _on_head(self, side: Side, block: bytes, out: list[HttpEvent]) -> bool:
        """Act on a whole head; False (and LOST) when its first line is no start line."""
        head = parse_head(side.role, block)
        if head is None:
            self._ev.lose(side, side.head_ts, "resync" if side.fresh else "bad_head", out)
            return False
        side.fresh = False
        self.has_synced = True
        if side.role is Role.REQUEST:
            stream = self._pairs.request(head.method)
            out.append(
                RequestHead(
                    conn=self._conn,
                    stream=stream,
                    ts_ns=side.head_ts,
                    method=head.method,
                    target=head.target,
                    authority=head.authority,
                    headers=head.headers,
                    http_version=head.version,
                    process=self._process,
                    peer=self._peer,
                )
            )
            if head.length is None and not head.chunked:
                head.length = 0  # a request without framing has no body
        else:
            status = head.status
            if 100 <= status < 200 and status != 101:
                return True  # interim (100 Continue, 103 Early Hints): not the answer
            stream, method = self._pairs.response()
            out.append(
                ResponseHead(
                    conn=self._conn,
                    stream=stream,
                    ts_ns=side.head_ts,
                    status=status,
                    headers=head.headers,
                    http_version=head.version,
                )
            )
            if status == 101 or (method == "CONNECT" and 200 <= status < 300):
                self.upgraded = True
                head.length, head.chunked, head.bad_framing = 0, False, False
            elif method == "HEAD" or status in (204, 304):
                head.length, head.chunked, head.bad_framing = 0, False, False
        side.msg = Message(stream, make_decoder(head.codings) if head.codings else None)
        if head.bad_framing:
            self._ev.lose(side, side.head_ts, "bad_framing", out)
        elif head.chunked:
            side.state = CHUNK_SIZE
        elif head.length is None:
            side.state = UNTIL_CLOSE
        elif head.length:
            side.state, side.remaining = LENGTH, head.length
        else:
            self._ev.end(side, side.head_ts, out)
        return True
