"""The events of HTTP/1.x messages, and what losing the place in a stream does to them.

:class:`MessageEvents` is what :class:`~lumen_sniff.protocol.http1.parser.Http1Parser`
emits through: a call's body as one BodyData, a message's end (complete unless it
was damaged or cut), decode errors, and the LOST state with its resync scan
(see the strategy in :mod:`lumen_sniff.protocol.http1.parser`). It holds no
parse state of its own beyond the connection key: each call is given the
:class:`~lumen_sniff.protocol.http1.side.Side` it acts on.
"""

from __future__ import annotations

from lumen_sniff.model import ConnKey, Desync, HttpEvent, MessageEnd
from lumen_sniff.protocol.bodyevents import body_data
from lumen_sniff.protocol.http1.side import HEAD, LOST, Message, Side, skip
from lumen_sniff.protocol.http1.syntax import find_start_line

__all__ = ["MessageEvents"]


class MessageEvents:
    """Message events of one connection, both directions.

    Args:
        conn: The connection's key, copied into every event.
    """

    def __init__(self, conn: ConnKey) -> None:
        self._conn = conn
        self._upgrade_reported = False

    def flush(
        self, side: Side, ts: int, parts: list[bytes | memoryview], out: list[HttpEvent]
    ) -> None:
        """Emit the body gathered in this call as one BodyData (plus a decode Desync)."""
        msg = side.msg
        if msg is None:
            parts.clear()
            return
        if parts:
            body = b"".join(parts)
            parts.clear()
            out.append(body_data(self._conn, msg.stream, side.role, ts, body))
        if msg.decoder is not None:
            self.check_decoder(msg, ts, out)

    def check_decoder(self, msg: Message, ts: int, out: list[HttpEvent]) -> None:
        if msg.decoder is not None and msg.decoder.error is not None and not msg.damage:
            msg.damage = "decode_error"
            out.append(self.desync(msg.stream, ts, "decode_error", 0))

    def end(self, side: Side, ts: int, out: list[HttpEvent], reason: str = "") -> None:
        """End ``side``'s open message: complete unless damaged or given a ``reason``."""
        msg = side.msg
        side.state = HEAD
        if msg is None:
            return
        side.msg = None
        if msg.decoder is not None:
            tail = msg.decoder.flush()
            if tail:
                out.append(body_data(self._conn, msg.stream, side.role, ts, tail))
            if not reason:
                self.check_decoder(msg, ts, out)
        why = reason or msg.damage
        out.append(
            MessageEnd(
                conn=self._conn,
                stream=msg.stream,
                role=side.role,
                ts_ns=ts,
                complete=not why,
                reason=why,
            )
        )

    def after_upgrade(self, side: Side, ts: int, count: int, out: list[HttpEvent]) -> None:
        """Bytes after an upgrade: flag the first (lost 0), total them up for close()."""
        if not self._upgrade_reported:
            self._upgrade_reported = True
            out.append(self.desync(None, ts, "upgrade", 0))
        side.lost_bytes += count

    def desync(self, stream: int | None, ts: int, reason: str, lost: int) -> Desync:
        return Desync(conn=self._conn, stream=stream, ts_ns=ts, reason=reason, lost_bytes=lost)

    # ---------------------------------------------------------- losing the place

    def lose(
        self,
        side: Side,
        ts: int,
        reason: str,
        out: list[HttpEvent],
        *,
        skipped: int = 0,
        line_ok: bool = True,
    ) -> None:
        """Enter (or stay in) LOST: end the open message, count what is skipped.

        Bytes still in ``side.buf`` are dropped and counted; callers that want them
        scanned again take them out first.
        """
        if side.msg is not None:
            self.end(side, ts, out, "gap" if reason == "gap" else "desync")
        if side.state != LOST:
            side.state, side.lost_reason = LOST, reason
        side.lost_bytes += skipped + len(side.buf or b"")
        side.buf = None
        side.scan, side.line_ok = 0, line_ok

    def resync(
        self, side: Side, ts: int, data: bytes, pos: int, out: list[HttpEvent]
    ) -> tuple[bytes, int]:
        """LOST state: skip to the next plausible start line; return the bytes left to run."""
        buf = side.buf
        if buf is None:
            side.buf = buf = bytearray()
        buf += data[pos:] if pos else data
        found, cut, scan = find_start_line(buf, side.scan, side.role, side.line_ok)
        skip(side, cut)
        side.scan = scan
        if not found:
            return b"", 0
        side.buf, side.fresh = None, False
        out.append(self.desync(None, ts, side.lost_reason, side.lost_bytes))
        side.lost_bytes, side.state = 0, HEAD
        return bytes(buf), 0
