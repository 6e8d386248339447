"""Passive HTTP/2: both directions of one connection in, HttpEvents out.

Strategy
--------
Each direction is a byte-level state machine (a ``FrameSide``) fed chunks of any
size; the table ``Http2Parser._handlers`` maps each state to its handler:

=========  ==========================================  ==========================
state      consumes                                    then
=========  ==========================================  ==========================
PREFACE    the 24-byte client preface (request side)   HEAD; mismatch: SYNC
HEAD       a 9-byte frame header                       DATA_PAD, DATA, BODY, SKIP
DATA_PAD   the pad-length byte of a padded DATA        DATA
DATA       payload, streamed out as BodyData           SKIP (padding) or HEAD
BODY       a whole frame we read (HEADERS, SETTINGS…)  HEAD, after handling it
SKIP       bytes we ignore (padding, PING, unknown…)   HEAD
SYNC       a loss: scan for a confirmed frame header   HEAD (replaying the rest)
=========  ==========================================  ==========================

DATA is the hot path: it is never buffered, only sliced from a memoryview, and
the BodyData of one message within one call are merged. Only one frame's body
(at most 256 KiB of header block, 64 KiB of other frames) is ever buffered.

A sniffer is not an endpoint: nothing is refused for breaking flow control,
SETTINGS acknowledgement or stream-state rules. What cannot be known is
reported: a gap or a mid-connection start sends the side to SYNC (its open
messages end ``complete=False, reason="desync"``, its HPACK table is
forgotten); a header block that fails to decode gives ``Desync(reason="hpack")``
and its stream's DATA is counted and dropped, never guessed. Streams are
tracked until both messages end (at most ``MAX_STREAMS``; the oldest is evicted).
"""

from __future__ import annotations

from collections.abc import Callable

from lumen_sniff.model import (
    ConnClosed,
    ConnKey,
    Desync,
    HttpEvent,
    ProcessInfo,
    Role,
)
from lumen_sniff.protocol.http2.control import read_frame
from lumen_sniff.protocol.http2.frames import (
    CONTINUATION,
    DATA,
    FLAG_END_STREAM,
    FLAG_PADDED,
    FRAME_HEADER,
    GOAWAY,
    HEADERS,
    PREFACE,
    PUSH_PROMISE,
    RESYNC_MAX_FRAME,
    RST_STREAM,
    SETTINGS,
    find_boundary,
)
from lumen_sniff.protocol.http2.headerblocks import BLOCK_CAP_BYTES, HeaderBlocks
from lumen_sniff.protocol.http2.side import FrameSide
from lumen_sniff.protocol.http2.streams import StreamTable

__all__ = ["BLOCK_CAP_BYTES", "Http2Parser"]

_OTHER_CAP_BYTES = 64 * 1024
"""Largest SETTINGS / RST_STREAM / GOAWAY body read; larger ones are skipped."""

_PREFACE, _HEAD, _DATA_PAD, _DATA, _BODY, _SKIP, _SYNC = range(7)
_READ_TYPES = (HEADERS, PUSH_PROMISE, CONTINUATION, SETTINGS, RST_STREAM, GOAWAY)


class Http2Parser:
    """One HTTP/2 connection seen from outside: implements ``ConnectionParser``."""

    def __init__(self, conn: ConnKey, process: ProcessInfo | None = None,
                 peer: tuple[str, int] | None = None, *, mid_stream: bool = False) -> None:
        """Start parsing a connection.

        Args:
            conn: the connection's key, copied into every event.
            process: the owning process, copied into RequestHeads.
            peer: the remote address, copied into RequestHeads.
            mid_stream: capture began after the connection did: both sides
                start by looking for a frame boundary, HPACK history unknown.
        """
        self._conn = conn
        self._mid_stream = mid_stream
        self._streams = StreamTable(conn, process, peer)
        self._closed = False
        streams = self._streams
        self._sides = (
            FrameSide(Role.REQUEST, _PREFACE, HeaderBlocks(conn, Role.REQUEST, streams)),
            FrameSide(Role.RESPONSE, _SYNC if mid_stream else _HEAD,
                  HeaderBlocks(conn, Role.RESPONSE, streams)))
        if mid_stream:
            for side in self._sides:
                side.blocks.hpack.allow_any_table_size()
        self._handlers: tuple[Callable[[FrameSide, memoryview, int, int], int], ...] = (
            self._on_preface, self._on_head, self._on_data_pad, self._on_data, self._on_body,
            self._on_skip, self._on_sync,
        )

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for partial frames, header blocks and resynchronisation."""
        return sum(len(s.buf) + s.blocks.buffered_bytes for s in self._sides)

    @property
    def tracked_streams(self) -> int:
        """Streams whose messages have not all ended."""
        return len(self._streams)

    # ------------------------------------------------------------------ contract

    def data(self, role: Role, ts_ns: int, data: bytes) -> list[HttpEvent]:
        """Consume the next bytes sent by ``role``'s side; return the events they complete."""
        if self._closed or not data:
            return []
        self._run(self._sides[role], memoryview(data), ts_ns)
        return self._streams.take()

    def _run(self, side: FrameSide, view: memoryview, ts: int) -> None:
        handlers = self._handlers
        while True:
            pos, end = 0, len(view)
            while pos < end:
                pos = handlers[side.state](side, view, pos, ts)
            if side.replay is None:
                return
            view, side.replay = memoryview(side.replay), None

    def gap(self, role: Role, ts_ns: int, lost_bytes: int) -> list[HttpEvent]:
        """``lost_bytes`` of ``role``'s side were never captured."""
        if self._closed or lost_bytes <= 0:
            return []
        side = self._sides[role]
        state = side.state
        in_data = state in (_DATA_PAD, _DATA)
        frame_left = side.remaining
        if state == _DATA:
            frame_left += side.pad
        elif state == _BODY:
            frame_left -= len(side.buf)
        framed = state in (_DATA_PAD, _DATA, _BODY, _SKIP) and lost_bytes <= frame_left
        stream = (side.sid or None) if framed and (in_data or state == _BODY) else None
        self._streams.emit(Desync(conn=self._conn, stream=stream, ts_ns=ts_ns, reason="gap",
                                  lost_bytes=lost_bytes))
        if not framed:
            self._enter_sync(side, ts_ns)
            return self._streams.take()
        # The loss ends inside the current frame: framing survives, its content does not.
        if in_data:
            self._streams.cut(side.target, ts_ns, "desync")
            side.counting = True
            if state == _DATA and lost_bytes <= side.remaining:
                # The rest of the payload still arrives: counted as dropped.
                side.remaining -= lost_bytes
                if not side.remaining:
                    self._end_data(side, ts_ns)
                return self._streams.take()
            if side.end_stream:
                self._streams.end_stream(side.role, side.sid, ts_ns)
        elif state == _BODY:
            side.buf.clear()
            if side.ftype in (HEADERS, PUSH_PROMISE, CONTINUATION):
                self._discard(side, side.remaining, ts_ns, "hpack")
            elif side.ftype == SETTINGS:
                self._sides[1 - role].blocks.hpack.allow_any_table_size()
        self._skip(side, frame_left - lost_bytes)
        return self._streams.take()

    def close(self, ts_ns: int) -> list[HttpEvent]:
        """The connection ended: end open messages as incomplete, emit ConnClosed."""
        if self._closed:
            return []
        self._closed = True
        for side in self._sides:
            if side.state == _SYNC and side.buf:
                # A last frame that ends exactly where the capture ends is taken.
                self._sync(side, ts_ns, at_end=True)
                if side.replay is not None:
                    self._run(side, memoryview(b""), ts_ns)
            if side.state in (_DATA_PAD, _DATA):
                self._streams.settle(side.target, ts_ns)
            lost = len(side.buf) + side.skipped
            if lost:
                reason = "resync" if side.state == _SYNC else "truncated"
                self._streams.emit(Desync(conn=self._conn, stream=None, ts_ns=ts_ns,
                                          reason=reason, lost_bytes=lost))
            side.blocks.abandon(ts_ns)
        self._streams.close_all(ts_ns)
        self._streams.emit(ConnClosed(conn=self._conn, ts_ns=ts_ns))
        return self._streams.take()

    # -------------------------------------------------------------- state handlers

    def _on_preface(self, side: FrameSide, view: memoryview, pos: int, ts: int) -> int:
        want = PREFACE[side.preface_pos:]
        take = min(len(want), len(view) - pos)
        if view[pos:pos + take] == want[:take]:
            side.preface_pos += take
            if side.preface_pos == len(PREFACE):
                side.state = _HEAD
            return pos + take
        if not self._mid_stream:
            self._streams.emit(Desync(conn=self._conn, stream=None, ts_ns=ts, reason="preface"))
        side.skipped += side.preface_pos
        self._enter_sync(side, ts)
        return pos

    def _on_head(self, side: FrameSide, view: memoryview, pos: int, ts: int) -> int:
        buf = side.buf
        if not buf:
            side.frame_ts = ts
            if len(view) - pos >= 9:
                hi, lo, ftype, flags, sid = FRAME_HEADER.unpack_from(view, pos)
                self._begin(side, (hi << 8) | lo, ftype, flags, sid & 0x7FFF_FFFF, ts)
                return pos + 9
        take = min(9 - len(buf), len(view) - pos)
        buf += view[pos:pos + take]
        if len(buf) == 9:
            hi, lo, ftype, flags, sid = FRAME_HEADER.unpack_from(buf)
            buf.clear()
            self._begin(side, (hi << 8) | lo, ftype, flags, sid & 0x7FFF_FFFF, ts)
        return pos + take

    def _on_data_pad(self, side: FrameSide, view: memoryview, pos: int, ts: int) -> int:
        pad = view[pos]
        payload = side.remaining - 1 - pad
        if payload < 0:
            self._streams.emit(Desync(conn=self._conn, stream=side.sid, ts_ns=ts,
                                      reason="frame", lost_bytes=side.remaining))
            self._streams.cut(side.target, ts, "desync")
            self._skip(side, side.remaining - 1)
            return pos + 1
        side.pad, side.remaining, side.state = pad, payload, _DATA
        if not payload:
            self._end_data(side, ts)
        return pos + 1

    def _on_data(self, side: FrameSide, view: memoryview, pos: int, ts: int) -> int:
        take = min(side.remaining, len(view) - pos)
        target = side.target
        if side.counting:
            if target is not None:
                target.dropped_bytes += take
        elif target is not None and target.open:
            self._streams.body(target, view[pos:pos + take], ts)
        side.remaining -= take
        if not side.remaining:
            self._end_data(side, ts)
        return pos + take

    def _on_body(self, side: FrameSide, view: memoryview, pos: int, ts: int) -> int:
        avail = len(view) - pos
        if not side.buf and avail >= side.remaining:
            end = pos + side.remaining
            body = view[pos:end]
        else:
            end = pos + min(side.remaining - len(side.buf), avail)
            side.buf += view[pos:end]
            if len(side.buf) < side.remaining:
                return end
            body = memoryview(bytes(side.buf))
            side.buf.clear()
        side.state = _HEAD
        self._read_frame(side, body, ts)
        return end

    def _on_skip(self, side: FrameSide, view: memoryview, pos: int, ts: int) -> int:
        take = min(side.remaining, len(view) - pos)
        side.remaining -= take
        if not side.remaining:
            side.state = _HEAD
        return pos + take

    def _on_sync(self, side: FrameSide, view: memoryview, pos: int, ts: int) -> int:
        side.buf += view[pos:]
        self._sync(side, ts, at_end=False)
        return len(view)

    def _sync(self, side: FrameSide, ts: int, *, at_end: bool) -> None:
        buf = side.buf
        found_at, found = find_boundary(buf, 0, side.role,
                                        min(side.max_frame_bytes, RESYNC_MAX_FRAME), at_end=at_end)
        if found:
            side.replay = bytes(buf[found_at:])
            buf.clear()
            side.state = _HEAD
            lost, side.skipped = side.skipped + found_at, 0
            if lost:
                self._streams.emit(Desync(conn=self._conn, stream=None, ts_ns=ts,
                                          reason="resync", lost_bytes=lost))
        elif found_at:
            del buf[:found_at]
            side.skipped += found_at

    # ------------------------------------------------------------------- frames

    def _begin(
        self, side: FrameSide, length: int, ftype: int, flags: int, sid: int, ts: int
    ) -> None:
        side.ftype, side.flags, side.sid = ftype, flags, sid
        blocks = side.blocks
        if blocks.sid is not None and (ftype != CONTINUATION or sid != blocks.sid):
            blocks.abandon(ts)
        if ftype == DATA:
            side.target = self._streams.data_target(side.role, sid, ts)
            side.counting = not side.target.open
            side.end_stream = bool(flags & FLAG_END_STREAM)
            side.pad, side.remaining = 0, length
            if flags & FLAG_PADDED and length:
                side.state = _DATA_PAD
            elif flags & FLAG_PADDED:
                self._streams.cut(side.target, ts, "desync")
                self._streams.emit(Desync(conn=self._conn, stream=sid, ts_ns=ts, reason="frame"))
                side.state = _HEAD
            else:
                side.state = _DATA
                if not length:
                    self._end_data(side, ts)
        elif ftype in (HEADERS, PUSH_PROMISE, CONTINUATION):
            if ftype == CONTINUATION and blocks.sid is None:
                self._skip(side, length)
                blocks.stray(sid, length, ts)
            elif blocks.discarding:
                self._skip(side, length)
                self._discard(side, length, ts, "")
            elif not blocks.fits(length):
                self._skip(side, length)
                self._discard(side, length, ts, "too_large")
            else:
                self._read(side, length, ts)
        elif ftype in _READ_TYPES and length <= _OTHER_CAP_BYTES:
            self._read(side, length, ts)
        else:
            self._skip(side, length)

    def _read(self, side: FrameSide, length: int, ts: int) -> None:
        if length:
            side.state, side.remaining = _BODY, length
        else:
            side.state = _HEAD
            self._read_frame(side, memoryview(b""), ts)

    def _skip(self, side: FrameSide, length: int) -> None:
        side.state, side.remaining = (_SKIP, length) if length > 0 else (_HEAD, 0)

    def _end_data(self, side: FrameSide, ts: int) -> None:
        self._skip(side, side.pad)
        self._streams.settle(side.target, ts)
        if side.end_stream:
            self._streams.end_stream(side.role, side.sid, ts)

    def _read_frame(self, side: FrameSide, body: memoryview, ts: int) -> None:
        if read_frame(side, self._sides[1 - side.role], self._streams, body, ts):
            return
        # A malformed frame: an endpoint would kill the connection; we report
        # it, and a lost header fragment makes the table unknown.
        if side.ftype in (HEADERS, PUSH_PROMISE):
            self._discard(side, len(body), ts, "frame")
        else:
            self._streams.emit(Desync(conn=self._conn, stream=side.sid or None, ts_ns=ts,
                                      reason="frame", lost_bytes=len(body)))

    def _discard(self, side: FrameSide, lost: int, ts: int, reason: str) -> None:
        side.blocks.discard(side.sid, side.flags, side.frame_ts, lost, ts, reason,
                            push=side.ftype == PUSH_PROMISE)

    # --------------------------------------------------------------------- loss

    def _enter_sync(self, side: FrameSide, ts: int) -> None:
        """Lose this side's place: what was in flight is gone, the table unknown."""
        side.skipped += len(side.buf)
        side.buf.clear()
        side.blocks.abandon(ts)
        side.blocks.hpack.lose_state()
        # SETTINGS from this side may have been lost too.
        self._sides[1 - side.role].blocks.hpack.allow_any_table_size()
        self._streams.cut_role(side.role, ts, "desync")
        side.target, side.state, side.remaining, side.pad = None, _SYNC, 0, 0
