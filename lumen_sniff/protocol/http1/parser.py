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
line (response side), see :func:`~lumen_sniff.protocol.http1.syntax.find_start_line`,
and then reports one :class:`Desync` whose ``lost_bytes`` counts all it skipped
(at close, if no head came). Bytes after an upgrade are flagged once by a
Desync "upgrade" (lost 0) and totalled per side at close. A gap inside an identity Content-Length
body keeps the framing: it is counted and the message ends incomplete.

The state table is :attr:`Http1Parser._handlers`: one handler per state,
indexed by the state number, each taking the bytes at ``pos`` and returning the
bytes left to run and where to go on (a head or resync may hand back bytes it
buffered). ``tests/unit/test_http1.py`` drives every (state, input) pair.

Modules: the per-direction state and the chunk fast path are in
:mod:`~lumen_sniff.protocol.http1.side`, message events and losing the place in
:mod:`~lumen_sniff.protocol.http1.messages`, head parsing and the resync scan in
:mod:`~lumen_sniff.protocol.http1.syntax`, request/response pairing in
:mod:`~lumen_sniff.protocol.http1.pairing`.
"""

from __future__ import annotations

from collections.abc import Callable

from lumen_sniff.model import (
    ConnClosed,
    ConnKey,
    HttpEvent,
    ProcessInfo,
    Role,
)
from lumen_sniff.protocol.bodyevents import body_data
from lumen_sniff.protocol.http1.heads import HeadReader
from lumen_sniff.protocol.http1.messages import MessageEvents
from lumen_sniff.protocol.http1.pairing import Pairing
from lumen_sniff.protocol.http1.side import (
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
    Side,
    body_piece,
    chunk_size,
    take_line,
    whole_chunks,
)
from lumen_sniff.protocol.http1.syntax import (
    MAX_HEAD_BYTES,
)

__all__ = ["MAX_HEAD_BYTES", "Http1Parser"]

_Parts = list[bytes | memoryview]
_Handler = Callable[[Side, int, bytes, int, _Parts, list[HttpEvent]], tuple[bytes, int]]
"""(side, ts, data, pos, body parts, out) -> (bytes left to run, position in them)."""


class Http1Parser:
    """One HTTP/1.x connection, both directions (see the module docstring).

    Implements :class:`lumen_sniff.protocol.connparser.ConnectionParser`. A 101 response
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
        self._conn = conn
        self._sides = (Side(Role.REQUEST), Side(Role.RESPONSE))
        self._ev = MessageEvents(conn)
        self._pairs = Pairing()
        self._heads = HeadReader(conn, self._ev, self._pairs, process=process, peer=peer)
        self._closed = False
        handlers: dict[int, _Handler] = {
            HEAD: self._on_head_state,
            LENGTH: self._on_counted,
            CHUNK_SIZE: self._on_chunk_size,
            CHUNK_DATA: self._on_counted,
            CHUNK_CRLF: self._on_chunk_crlf,
            TRAILERS: self._on_trailers,
            UNTIL_CLOSE: self._on_until_close,
            LOST: self._on_lost,
            UPGRADED: self._on_upgraded,
        }
        self._handlers = tuple(handlers[state] for state in sorted(handlers))
        """The state table: the handler of each state, indexed by state number."""

    @property
    def has_synced(self) -> bool:
        """True once a message head was parsed on either side."""
        return self._heads.has_synced

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
                    self._ev.flush(side, ts_ns, parts, out)
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
            out.append(self._ev.desync(msg.stream, ts_ns, "gap", hole))
            msg.damage = msg.damage or "gap"
            side.remaining -= hole
            if side.remaining == 0:
                self._ev.end(side, ts_ns, out)
            if lost_bytes > hole:
                self._ev.lose(side, ts_ns, "gap", out, skipped=lost_bytes - hole)
        elif state == UNTIL_CLOSE and msg is not None and msg.decoder is None:
            out.append(self._ev.desync(msg.stream, ts_ns, "gap", lost_bytes))
            msg.damage = msg.damage or "gap"
        elif state == UPGRADED or (state == HEAD and self._heads.upgraded):
            side.state = UPGRADED
            self._ev.after_upgrade(side, ts_ns, lost_bytes, out)
        else:
            if state == HEAD and side.role is Role.REQUEST:
                # A request head fell (at least partly) into the hole: keep a seat
                # for its response so later pairs stay aligned.
                self._pairs.placeholder()
            self._ev.lose(side, ts_ns, "gap", out, skipped=lost_bytes)
        return out

    def close(self, ts_ns: int) -> list[HttpEvent]:
        """The connection ended: end open messages, report leftovers, emit ConnClosed."""
        out: list[HttpEvent] = []
        if self._closed:
            return out
        self._closed = True
        for side in self._sides:
            if side.msg is not None:
                self._ev.end(side, ts_ns, out, "" if side.state == UNTIL_CLOSE else "closed")
            if side.state == LOST:
                side.lost_bytes += len(side.buf or b"")
                out.append(self._ev.desync(None, ts_ns, side.lost_reason, side.lost_bytes))
            elif side.state == UPGRADED and side.lost_bytes:
                out.append(self._ev.desync(None, ts_ns, "upgrade", side.lost_bytes))
            elif side.buf:
                out.append(self._ev.desync(None, ts_ns, "closed", len(side.buf)))
            side.buf = None
        out.append(ConnClosed(conn=self._conn, ts_ns=ts_ns))
        return out

    # ------------------------------------------------------------------ the loop

    def _consume(
        self, side: Side, ts: int, data: bytes, pos: int, parts: _Parts, out: list[HttpEvent]
    ) -> None:
        """Run ``side``'s state table over ``data[pos:]``; body slices become BodyData."""
        handlers = self._handlers
        while pos < len(data):
            data, pos = handlers[side.state](side, ts, data, pos, parts, out)
        self._ev.flush(side, ts, parts, out)

    # ------------------------------------------------------- the state handlers

    def _on_counted(
        self, side: Side, ts: int, data: bytes, pos: int, parts: _Parts, out: list[HttpEvent]
    ) -> tuple[bytes, int]:
        """LENGTH, CHUNK_DATA: take the body bytes still due."""
        take = min(side.remaining, len(data) - pos)
        body_piece(side, memoryview(data)[pos : pos + take], parts)
        side.remaining -= take
        if side.remaining == 0:
            if side.state == CHUNK_DATA:
                side.state, side.seen_cr = CHUNK_CRLF, False
            else:
                self._ev.flush(side, ts, parts, out)
                self._ev.end(side, ts, out)
        return data, pos + take

    def _on_until_close(
        self, side: Side, ts: int, data: bytes, pos: int, parts: _Parts, out: list[HttpEvent]
    ) -> tuple[bytes, int]:
        """UNTIL_CLOSE: every byte is body."""
        body_piece(side, memoryview(data)[pos:], parts)
        return data, len(data)

    def _on_chunk_crlf(
        self, side: Side, ts: int, data: bytes, pos: int, parts: _Parts, out: list[HttpEvent]
    ) -> tuple[bytes, int]:
        """CHUNK_CRLF: the line end after a chunk's data (a lone LF is accepted)."""
        if not side.seen_cr and data.startswith(b"\r\n", pos):
            side.state = CHUNK_SIZE
            return data, pos + 2
        b = data[pos]
        if b == 10:
            side.state = CHUNK_SIZE
            return data, pos + 1
        if b == 13 and not side.seen_cr:
            side.seen_cr = True
            return data, pos + 1
        self._ev.flush(side, ts, parts, out)
        self._ev.lose(side, ts, "bad_chunk", out)
        return data, pos

    def _on_chunk_size(
        self, side: Side, ts: int, data: bytes, pos: int, parts: _Parts, out: list[HttpEvent]
    ) -> tuple[bytes, int]:
        """CHUNK_SIZE: whole chunks at once when nothing is buffered, else one size line."""
        if not side.buf:
            taken = whole_chunks(side, data, pos, parts)
            if taken != pos or side.state != CHUNK_SIZE:
                return data, taken
        line, pos = take_line(side, data, pos)
        if line is None:
            if len(side.buf or b"") > MAX_CHUNK_LINE_BYTES:
                self._ev.flush(side, ts, parts, out)
                self._ev.lose(side, ts, "bad_chunk", out, line_ok=False)
            return data, pos
        size = chunk_size(line)
        if size is None:
            self._ev.flush(side, ts, parts, out)
            self._ev.lose(side, ts, "bad_chunk", out, skipped=len(line) + 1)
        elif size:
            side.state, side.remaining = CHUNK_DATA, size
        else:
            side.state, side.trailer_bytes = TRAILERS, 0
        return data, pos

    def _on_trailers(
        self, side: Side, ts: int, data: bytes, pos: int, parts: _Parts, out: list[HttpEvent]
    ) -> tuple[bytes, int]:
        """TRAILERS: trailer lines up to the blank line that ends the message."""
        line, pos = take_line(side, data, pos)
        if line is None:
            if side.trailer_bytes + len(side.buf or b"") > MAX_HEAD_BYTES:
                self._ev.flush(side, ts, parts, out)
                skipped = side.trailer_bytes
                self._ev.lose(side, ts, "head_too_large", out, skipped=skipped, line_ok=False)
            return data, pos
        side.trailer_bytes += len(line) + 1
        if line.strip(b"\r") == b"":
            self._ev.flush(side, ts, parts, out)
            self._ev.end(side, ts, out)
        elif side.trailer_bytes > MAX_HEAD_BYTES:
            self._ev.flush(side, ts, parts, out)
            self._ev.lose(side, ts, "head_too_large", out, skipped=side.trailer_bytes)
        return data, pos

    def _on_head_state(
        self, side: Side, ts: int, data: bytes, pos: int, parts: _Parts, out: list[HttpEvent]
    ) -> tuple[bytes, int]:
        """HEAD: the next message head (after an upgrade, nothing is HTTP any more)."""
        self._ev.flush(side, ts, parts, out)
        if self._heads.upgraded:
            side.state = UPGRADED
            return data, pos
        return self._heads.read(side, ts, data, pos, out)

    def _on_lost(
        self, side: Side, ts: int, data: bytes, pos: int, parts: _Parts, out: list[HttpEvent]
    ) -> tuple[bytes, int]:
        """LOST: skip to the next plausible start line."""
        return self._ev.resync(side, ts, data, pos, out)

    def _on_upgraded(
        self, side: Side, ts: int, data: bytes, pos: int, parts: _Parts, out: list[HttpEvent]
    ) -> tuple[bytes, int]:
        """UPGRADED: count the bytes, parse nothing."""
        self._ev.after_upgrade(side, ts, len(data) - pos, out)
        return data, len(data)
