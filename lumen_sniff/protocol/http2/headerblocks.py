"""One direction's HTTP/2 header blocks: HEADERS/PUSH_PROMISE + CONTINUATION, assembled and decoded.

Strategy: a block opens with a HEADERS or PUSH_PROMISE frame and grows with
CONTINUATION frames of the same stream until END_HEADERS; only then can HPACK
decode it. A block is *kept* (its fragments buffered, at most
:data:`BLOCK_CAP_BYTES`) or *discarded* (too large, malformed, cut by a gap):
a discarded block only counts its bytes until END_HEADERS, then is reported
once with its reason. Any block that is not decoded leaves the HPACK table
unknown, so the decoder forgets it (see :mod:`lumen_sniff.protocol.http2.hpackstate`)
and the stream's head is reported lost, never guessed.
"""

from __future__ import annotations

from lumen_sniff.model import ConnKey, Desync, Role
from lumen_sniff.protocol.http2.frames import FLAG_END_HEADERS, FLAG_END_STREAM
from lumen_sniff.protocol.http2.hpackstate import HeaderDecoder
from lumen_sniff.protocol.http2.streams import StreamTable

__all__ = ["BLOCK_CAP_BYTES", "HeaderBlocks"]

BLOCK_CAP_BYTES = 256 * 1024
"""Largest header block (HEADERS + CONTINUATION fragments) kept for decoding."""


class HeaderBlocks:
    """The header block in progress on one direction, and that direction's HPACK decoder."""

    __slots__ = ("_buf", "_conn", "_end_stream", "_lost", "_push", "_reason", "_role",
                 "_streams", "_ts", "hpack", "sid")

    def __init__(self, conn: ConnKey, role: Role, streams: StreamTable) -> None:
        self._conn = conn
        self._role = role
        self._streams = streams
        self.hpack = HeaderDecoder()
        self.sid: int | None = None
        """Stream of the block in progress; None when there is none."""
        self._buf = bytearray()
        self._ts = 0
        self._end_stream = self._push = False
        self._reason = ""
        """Why the block in progress is discarded; "" while it is kept."""
        self._lost = 0

    @property
    def buffered_bytes(self) -> int:
        """Fragment bytes held for the block in progress."""
        return len(self._buf)

    @property
    def discarding(self) -> bool:
        """The block in progress is being skipped to its END_HEADERS."""
        return bool(self._reason)

    def fits(self, length: int) -> bool:
        """Whether a frame of ``length`` more bytes keeps the block within the cap."""
        return len(self._buf) + length <= BLOCK_CAP_BYTES

    def _open(self, sid: int, flags: int, frame_ts: int, push: bool) -> None:
        self.sid, self._ts, self._push = sid, frame_ts, push
        self._end_stream = not push and bool(flags & FLAG_END_STREAM)

    def fragment(self, sid: int, flags: int, frame_ts: int, data: bytes, ts: int, *,
                 push: bool) -> None:
        """Add one frame's fragment; decode and report the block at END_HEADERS.

        Args:
            sid: the frame's stream (for PUSH_PROMISE, the associated stream).
            flags: the frame's flags.
            frame_ts: capture time of the frame's first byte (the head's time).
            data: the fragment, padding and priority removed.
            ts: capture time of the frame's last byte.
            push: the frame is a PUSH_PROMISE (its request is the server's: decoded
                to keep the table right, never reported).
        """
        if self.sid is None:
            self._open(sid, flags, frame_ts, push)
        self._buf += data
        if not flags & FLAG_END_HEADERS:
            return
        # A CONTINUATION of another stream abandoned the block before: sid is the block's.
        block = bytes(self._buf)
        self.sid = None
        self._buf.clear()
        fields = self.hpack.decode(block)
        if fields is None:
            self._streams.emit(Desync(conn=self._conn, stream=sid, ts_ns=ts, reason="hpack",
                                      lost_bytes=len(block)))
            if not self._push:
                self._streams.lost_head(self._role, sid, self._end_stream, ts, "hpack")
        elif not self._push:
            self._streams.headers(self._role, sid, fields, self._end_stream, self._ts, ts)

    def discard(self, sid: int, flags: int, frame_ts: int, lost: int, ts: int, reason: str, *,
                push: bool) -> None:
        """Skip the block in progress (or the one this frame opens): ``lost`` more bytes."""
        if self.sid is None:
            self._open(sid, flags, frame_ts, push)
        if not self._reason:
            self._reason = reason
            self._lost = len(self._buf)
            self._buf.clear()
        self._lost += lost
        if flags & FLAG_END_HEADERS:
            self.abandon(ts)

    def stray(self, sid: int, lost: int, ts: int) -> None:
        """A CONTINUATION with no block open: its HEADERS was lost."""
        self.hpack.lose_state()
        self._streams.emit(Desync(conn=self._conn, stream=sid, ts_ns=ts, reason="hpack",
                                  lost_bytes=lost))

    def abandon(self, ts: int) -> None:
        """The block in progress will not be decoded: report it, forget the table."""
        sid = self.sid
        if sid is None:
            return
        reason = self._reason or "hpack"
        lost = self._lost if self._reason else len(self._buf)
        self.sid, self._reason, self._lost = None, "", 0
        self._buf.clear()
        self.hpack.lose_state()
        self._streams.emit(Desync(conn=self._conn, stream=sid, ts_ns=ts, reason=reason,
                                  lost_bytes=lost))
        if not self._push:
            self._streams.lost_head(self._role, sid, self._end_stream, ts, reason)
