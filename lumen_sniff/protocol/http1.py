"""HTTP/1.x for a passive observer: both directions of one connection, bytes in, events out.

Strategy. Each direction is a :class:`Side` driven by a small state table:

    HEAD ──head──▶ LENGTH | CHUNK_SIZE | UNTIL_CLOSE | (no body) ──▶ HEAD
    CHUNK_SIZE ─n>0─▶ CHUNK_DATA ─▶ CHUNK_CRLF ─▶ CHUNK_SIZE
    CHUNK_SIZE ─0──▶ TRAILERS ─blank line─▶ HEAD
    any ──bad bytes / gap──▶ LOST ──next plausible start line──▶ HEAD
    HEAD ──after 101 / CONNECT 2xx──▶ UPGRADED (nothing is parsed again)

Body bytes are sliced out of the caller's bytes and emitted at once, decoded;
only a head, a chunk-size line, trailers or a resync line in progress are
buffered, each under a cap. Searches remember where they stopped, so data that
arrives a byte at a time costs no re-scan.

An observer cannot refuse bytes, so nothing here raises. When the framing is
lost (capture began mid-message, bytes were never copied, garbage) the side
goes LOST, skips to the next plausible request line (request side) or status
line (response side), see :func:`~lumen_sniff.protocol.http1head.find_start_line`,
and then reports one :class:`Desync` whose ``lost_bytes`` counts all it skipped
(at close, if no head came). Bytes after an upgrade are flagged once by a
Desync "upgrade" (lost 0) and totalled per side at close. A gap inside an identity Content-Length
body keeps the framing: it is counted and the message ends incomplete.

Pairing: requests take exchange numbers 1, 2, 3… in order; final responses are
matched to the oldest unanswered request (pipelining). A response whose request
was never seen takes a fresh number. When a request head falls into a gap, a
placeholder keeps the later pairs aligned.

Modules: the per-direction state and the chunk fast path are in
:mod:`~lumen_sniff.protocol.http1side`, message events and losing the place in
:mod:`~lumen_sniff.protocol.http1messages`, head parsing and the resync scan in
:mod:`~lumen_sniff.protocol.http1head`.
"""

from __future__ import annotations

from collections import deque

from lumen_sniff.model import (
    ConnClosed,
    ConnKey,
    HttpEvent,
    ProcessInfo,
    RequestHead,
    ResponseHead,
    Role,
)
from lumen_sniff.protocol.decoding import make_decoder
from lumen_sniff.protocol.http1head import (
    MAX_HEAD_BYTES,
    MAX_LINE_BYTES,
    START_LINE,
    find_head_end,
    parse_head,
)
from lumen_sniff.protocol.http1messages import MessageEvents
from lumen_sniff.protocol.http1side import (
    CHUNK_CRLF,
    CHUNK_DATA,
    CHUNK_SIZE,
    HEAD,
    LENGTH,
    LOST,
    MAX_CHUNK_LINE_BYTES,
    TRAILERS,
    UNTIL_CLOSE,
    UPGRADED,
    Message,
    Side,
    body_piece,
    chunk_size,
    take_line,
    whole_chunks,
)
from lumen_sniff.protocol.records import body_data

__all__ = ["MAX_HEAD_BYTES", "Http1Parser"]

_MAX_PENDING = 1024  # unanswered requests remembered per connection


class Http1Parser(MessageEvents):
    """One HTTP/1.x connection, both directions (see the module docstring).

    Implements :class:`lumen_sniff.protocol.base.ConnectionParser`. A 101 response
    is reported as a ResponseHead plus a complete MessageEnd: it is the final
    answer of its exchange, after which the connection stops being HTTP.

    Args:
        conn: The connection's key, copied into every event.
        process: Owner of the connection, copied into request heads.
        peer: Remote address, copied into request heads.
    """

    def __init__(
        self,
        conn: ConnKey,
        process: ProcessInfo | None = None,
        peer: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(conn)
        self._process = process
        self._peer = peer
        self._pending: deque[tuple[int, str]] = deque()  # (stream, method) not yet answered
        self._next_stream = 1
        self._upgraded = False
        self._closed = False
        self.has_synced = False
        """True once a message head was parsed on either side."""

    @property
    def unsynced_bytes(self) -> int:
        """Bytes skipped so far by sides that have not yet found a first head."""
        return sum(s.lost_bytes + len(s.buf or b"") for s in self._sides if s.fresh)

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for a head, chunk line or resync in progress (bounded by the caps)."""
        return sum(len(s.buf or b"") for s in self._sides)

    # ------------------------------------------------------------ ConnectionParser

    def data(self, role: Role, ts_ns: int, data: bytes) -> list[HttpEvent]:
        """Consume the next bytes sent by ``role``'s side."""
        out: list[HttpEvent] = []
        if data and not self._closed:
            side = self._sides[role]
            parts: list[bytes | memoryview] = []  # body of side.msg seen in this call
            pos = 0
            if side.state == CHUNK_SIZE and not side.buf:
                pos = whole_chunks(side, data, 0, parts)
            if pos < len(data):
                self._consume(side, ts_ns, data, pos, parts, out)
            else:
                msg = side.msg
                if parts and msg is not None and msg.decoder is None:  # _flush, inlined
                    out.append(body_data(self._conn, msg.stream, side.role, ts_ns, b"".join(parts)))
                else:
                    self._flush(side, ts_ns, parts, out)
        return out

    def gap(self, role: Role, ts_ns: int, lost_bytes: int) -> list[HttpEvent]:
        """``lost_bytes`` of ``role``'s side were never captured."""
        out: list[HttpEvent] = []
        if lost_bytes <= 0 or self._closed:
            return out
        side = self._sides[role]
        state, msg = side.state, side.msg
        if state == LENGTH and msg is not None and msg.decoder is None:
            # Identity body of known length: the framing survives the hole.
            hole = min(lost_bytes, side.remaining)
            out.append(self._desync(msg.stream, ts_ns, "gap", hole))
            msg.damage = msg.damage or "gap"
            side.remaining -= hole
            if side.remaining == 0:
                self._end(side, ts_ns, out)
            if lost_bytes > hole:
                self._lose(side, ts_ns, "gap", out, skipped=lost_bytes - hole)
        elif state == UNTIL_CLOSE and msg is not None and msg.decoder is None:
            out.append(self._desync(msg.stream, ts_ns, "gap", lost_bytes))
            msg.damage = msg.damage or "gap"
        elif state == UPGRADED or (state == HEAD and self._upgraded):
            side.state = UPGRADED
            self._after_upgrade(side, ts_ns, lost_bytes, out)
        else:
            if state == HEAD and side.role is Role.REQUEST:
                # A request head fell (at least partly) into the hole: keep a seat
                # for its response so later pairs stay aligned.
                self._expect(self._new_stream(), "")
            self._lose(side, ts_ns, "gap", out, skipped=lost_bytes)
        return out

    def close(self, ts_ns: int) -> list[HttpEvent]:
        """The connection ended: end open messages, report leftovers, emit ConnClosed."""
        out: list[HttpEvent] = []
        if self._closed:
            return out
        self._closed = True
        for side in self._sides:
            if side.msg is not None:
                self._end(side, ts_ns, out, "" if side.state == UNTIL_CLOSE else "closed")
            if side.state == LOST:
                side.lost_bytes += len(side.buf or b"")
                out.append(self._desync(None, ts_ns, side.lost_reason, side.lost_bytes))
            elif side.state == UPGRADED and side.lost_bytes:
                out.append(self._desync(None, ts_ns, "upgrade", side.lost_bytes))
            elif side.buf:
                out.append(self._desync(None, ts_ns, "closed", len(side.buf)))
            side.buf = None
        out.append(ConnClosed(conn=self._conn, ts_ns=ts_ns))
        return out

    # ------------------------------------------------------------------ the loop

    def _consume(
        self,
        side: Side,
        ts: int,
        data: bytes,
        pos: int,
        parts: list[bytes | memoryview],
        out: list[HttpEvent],
    ) -> None:
        """Run ``side``'s state table over ``data[pos:]``; body slices become BodyData."""
        n = len(data)
        view = memoryview(data)
        while pos < n:
            st = side.state
            if st in (LENGTH, CHUNK_DATA):
                take = min(side.remaining, n - pos)
                body_piece(side, view[pos : pos + take], parts)
                pos += take
                side.remaining -= take
                if side.remaining == 0:
                    if st == CHUNK_DATA:
                        side.state, side.seen_cr = CHUNK_CRLF, False
                    else:
                        self._flush(side, ts, parts, out)
                        self._end(side, ts, out)
            elif st == UNTIL_CLOSE:
                body_piece(side, view[pos:], parts)
                pos = n
            elif st == CHUNK_CRLF:
                if not side.seen_cr and data.startswith(b"\r\n", pos):
                    side.state = CHUNK_SIZE
                    pos += 2
                    continue
                b = data[pos]
                if b == 10:
                    side.state = CHUNK_SIZE
                    pos += 1
                elif b == 13 and not side.seen_cr:
                    side.seen_cr = True
                    pos += 1
                else:
                    self._flush(side, ts, parts, out)
                    self._lose(side, ts, "bad_chunk", out)
            elif st in (CHUNK_SIZE, TRAILERS):
                if st == CHUNK_SIZE and not side.buf:
                    taken = whole_chunks(side, data, pos, parts)
                    if taken != pos or side.state != CHUNK_SIZE:
                        pos = taken
                        continue
                line, pos = take_line(side, data, pos)
                if line is None:
                    held = len(side.buf or b"")
                    if st == CHUNK_SIZE and held > MAX_CHUNK_LINE_BYTES:
                        self._flush(side, ts, parts, out)
                        self._lose(side, ts, "bad_chunk", out, line_ok=False)
                    elif st == TRAILERS and side.trailer_bytes + held > MAX_HEAD_BYTES:
                        self._flush(side, ts, parts, out)
                        self._lose(
                            side,
                            ts,
                            "head_too_large",
                            out,
                            skipped=side.trailer_bytes,
                            line_ok=False,
                        )
                elif st == CHUNK_SIZE:
                    size = chunk_size(line)
                    if size is None:
                        self._flush(side, ts, parts, out)
                        self._lose(side, ts, "bad_chunk", out, skipped=len(line) + 1)
                    elif size:
                        side.state, side.remaining = CHUNK_DATA, size
                    else:
                        side.state, side.trailer_bytes = TRAILERS, 0
                else:
                    side.trailer_bytes += len(line) + 1
                    if line.strip(b"\r") == b"":
                        self._flush(side, ts, parts, out)
                        self._end(side, ts, out)
                    elif side.trailer_bytes > MAX_HEAD_BYTES:
                        self._flush(side, ts, parts, out)
                        self._lose(side, ts, "head_too_large", out, skipped=side.trailer_bytes)
            elif st == HEAD:
                self._flush(side, ts, parts, out)
                if self._upgraded:
                    side.state = UPGRADED
                    continue
                data, pos = self._head(side, ts, data, pos, out)
                n, view = len(data), memoryview(data)
            elif st == LOST:
                data, pos = self._resync(side, ts, data, pos, out)
                n, view = len(data), memoryview(data)
            else:  # UPGRADED
                self._after_upgrade(side, ts, n - pos, out)
                pos = n
        self._flush(side, ts, parts, out)

    # --------------------------------------------------------------------- heads

    def _head(
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
            self._lose(side, ts, "resync" if side.fresh else "bad_head", out)
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
        self._lose(side, ts, "head_too_large", out, skipped=MAX_HEAD_BYTES, line_ok=False)
        return data, pos + MAX_HEAD_BYTES

    def _on_head(self, side: Side, block: bytes, out: list[HttpEvent]) -> bool:
        """Act on a whole head; False (and LOST) when its first line is no start line."""
        head = parse_head(side.role, block)
        if head is None:
            self._lose(side, side.head_ts, "resync" if side.fresh else "bad_head", out)
            return False
        side.fresh = False
        self.has_synced = True
        if side.role is Role.REQUEST:
            stream = self._new_stream()
            self._expect(stream, head.method)
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
            stream, method = self._pending.popleft() if self._pending else (self._new_stream(), "")
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
                self._upgraded = True
                head.length, head.chunked, head.bad_framing = 0, False, False
            elif method == "HEAD" or status in (204, 304):
                head.length, head.chunked, head.bad_framing = 0, False, False
        side.msg = Message(stream, make_decoder(head.codings) if head.codings else None)
        if head.bad_framing:
            self._lose(side, side.head_ts, "bad_framing", out)
        elif head.chunked:
            side.state = CHUNK_SIZE
        elif head.length is None:
            side.state = UNTIL_CLOSE
        elif head.length:
            side.state, side.remaining = LENGTH, head.length
        else:
            self._end(side, side.head_ts, out)
        return True

    def _expect(self, stream: int, method: str) -> None:
        """Queue a request for its answer; past the cap the oldest is given up on."""
        if len(self._pending) >= _MAX_PENDING:
            self._pending.popleft()
        self._pending.append((stream, method))

    def _new_stream(self) -> int:
        stream = self._next_stream
        self._next_stream += 1
        return stream
