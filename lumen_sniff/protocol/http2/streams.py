"""HTTP/2 streams as a passive observer tracks them: messages, their ends, their losses.

Strategy: a stream holds at most two messages (request, response). A message
is *open* from its head until it ends; events flow only for open messages. A
message that is not open but still receives DATA (its head was never seen or
failed to decode, it was cut by a desync, its decoding failed) counts the bytes
it drops, and they are reported as one ``Desync`` with the message's
``drop_reason`` when the stream is retired. A stream is retired once its
response has ended and its request has ended or was never seen; the table is
capped at :data:`MAX_STREAMS`, evicting the oldest stream first.

The table also owns the output list, so BodyData of one message that arrive
within one call are merged into one event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lumen_sniff.model import (
    BodyData,
    ConnKey,
    Desync,
    HttpEvent,
    MessageEnd,
    ProcessInfo,
    RequestHead,
    ResponseHead,
    Role,
)
from lumen_sniff.protocol.decoding import make_decoder

if TYPE_CHECKING:
    from lumen_sniff.protocol.decoding import ContentDecoder

__all__ = ["MAX_STREAMS", "Message", "StreamTable"]

MAX_STREAMS = 1000
"""Streams tracked at once; beyond, the oldest is evicted (its messages cut)."""

_IDENTITY = frozenset({"", "identity"})


class Message:
    """One request or response on one stream."""

    __slots__ = ("decoder", "drop_reason", "dropped_bytes", "finished", "open", "retired", "role",
                 "sid")

    def __init__(self, sid: int, role: Role, *, open_: bool, drop_reason: str = "") -> None:
        self.sid = sid
        self.role = role
        self.open = open_
        """Head seen, not ended: its events flow."""
        self.finished = False
        """The wire ended it (END_STREAM, RST_STREAM) or we cut it."""
        self.retired = False
        """Its stream left the table; later drops are reported at once."""
        self.decoder: ContentDecoder | None = None
        self.dropped_bytes = 0
        self.drop_reason = drop_reason


class StreamTable:
    """The streams of one connection, and the events their messages produce."""

    def __init__(self, conn: ConnKey, process: ProcessInfo | None,
                 peer: tuple[str, int] | None) -> None:
        self._conn = conn
        self._process = process
        self._peer = peer
        self._streams: dict[int, list[Message | None]] = {}
        self._events: list[HttpEvent] = []
        self._pending: list[bytes] = []
        self._pending_msg: Message | None = None
        self._pending_ts = 0

    def __len__(self) -> int:
        return len(self._streams)

    # ------------------------------------------------------------------ output

    def emit(self, event: HttpEvent) -> None:
        """Append an event after any body bytes still pending."""
        if self._pending_msg is not None:
            self._flush_body()
        self._events.append(event)

    def take(self) -> list[HttpEvent]:
        """Return and forget the events produced so far."""
        if self._pending_msg is not None:
            self._flush_body()
        events, self._events = self._events, []
        return events

    def _flush_body(self) -> None:
        msg = self._pending_msg
        assert msg is not None
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._events.append(BodyData(conn=self._conn, stream=msg.sid, role=msg.role,
                                     ts_ns=self._pending_ts, data=data))
        self._pending = []
        self._pending_msg = None

    def body(self, msg: Message, chunk: memoryview, ts: int) -> None:
        """DATA payload bytes for open ``msg`` (decoded, merged, emitted)."""
        data = chunk.tobytes()
        decoder = msg.decoder
        if decoder is not None:
            data = decoder.decode(data)
            if decoder.error is not None:
                self._decoding_failed(msg, ts)
                return
        if not data:
            return
        if self._pending_msg is not msg or self._pending_ts != ts:
            if self._pending_msg is not None:
                self._flush_body()
            self._pending_msg, self._pending_ts = msg, ts
        self._pending.append(data)

    def _decoding_failed(self, msg: Message, ts: int) -> None:
        self.emit(Desync(conn=self._conn, stream=msg.sid, ts_ns=ts, reason="decoding"))
        msg.decoder = None
        self._end(msg, ts, complete=False, reason="decoding")
        msg.finished = False  # the wire has not ended it: keep counting its DATA

    # --------------------------------------------------------------- messages

    def _end(self, msg: Message, ts: int, *, complete: bool, reason: str = "") -> None:
        decoder = msg.decoder
        if decoder is not None:
            msg.decoder = None
            tail = decoder.flush()
            if tail:
                self.body(msg, memoryview(tail), ts)
            if decoder.error is not None and complete:
                self.emit(Desync(conn=self._conn, stream=msg.sid, ts_ns=ts, reason="decoding"))
                complete, reason = False, "decoding"
        msg.open = False
        msg.finished = True
        msg.drop_reason = reason or "after_end"
        self.emit(MessageEnd(conn=self._conn, stream=msg.sid, role=msg.role, ts_ns=ts,
                             complete=complete, reason=reason))

    def cut(self, msg: Message | None, ts: int, reason: str) -> None:
        """End ``msg`` as incomplete if it is open (its bytes were lost)."""
        if msg is not None and msg.open:
            self._end(msg, ts, complete=False, reason=reason)

    def cut_role(self, role: Role, ts: int, reason: str) -> None:
        """End every open message sent by ``role`` as incomplete."""
        for msgs in self._streams.values():
            self.cut(msgs[role], ts, reason)

    def settle(self, msg: Message | None, ts: int) -> None:
        """A DATA frame for ``msg`` is over: report drops its retired stream can no longer."""
        if msg is not None and msg.retired and msg.dropped_bytes:
            self._report_drops(msg, ts)

    def _report_drops(self, msg: Message, ts: int) -> None:
        self.emit(Desync(conn=self._conn, stream=msg.sid, ts_ns=ts, reason=msg.drop_reason,
                         lost_bytes=msg.dropped_bytes))
        msg.dropped_bytes = 0

    # ---------------------------------------------------------------- streams

    def _stream(self, sid: int, ts: int) -> list[Message | None]:
        msgs = self._streams.get(sid)
        if msgs is None:
            if len(self._streams) >= MAX_STREAMS:
                oldest = next(iter(self._streams))
                for old in self._streams[oldest]:
                    self.cut(old, ts, "evicted")
                self._retire(oldest, ts)
            msgs = self._streams[sid] = [None, None]
        return msgs

    def _retire(self, sid: int, ts: int) -> None:
        for msg in self._streams.pop(sid):
            if msg is not None:
                msg.retired = True
                if msg.dropped_bytes:
                    self._report_drops(msg, ts)

    def _maybe_retire(self, sid: int, ts: int) -> None:
        msgs = self._streams.get(sid)
        if msgs is None:
            return
        req, resp = msgs
        if resp is not None and resp.finished and (req is None or req.finished):
            self._retire(sid, ts)

    def data_target(self, role: Role, sid: int, ts: int) -> Message:
        """The message a DATA frame from ``role`` on ``sid`` belongs to."""
        msgs = self._stream(sid, ts)
        msg = msgs[role]
        if msg is None:
            msg = msgs[role] = Message(sid, role, open_=False, drop_reason="no_head")
        return msg

    def promise(self, sid: int, ts: int) -> None:
        """PUSH_PROMISE reserved ``sid``: a server-made exchange, counted, not reported."""
        msgs = self._stream(sid, ts)
        for role in Role:
            if msgs[role] is None:
                msg = msgs[role] = Message(sid, role, open_=False, drop_reason="push")
                msg.finished = role is Role.REQUEST

    def end_stream(self, role: Role, sid: int, ts: int) -> None:
        """END_STREAM from ``role`` on ``sid``."""
        msgs = self._streams.get(sid)
        msg = msgs[role] if msgs is not None else None
        if msg is None:
            return
        if msg.open:
            self._end(msg, ts, complete=True)
        msg.finished = True
        self._maybe_retire(sid, ts)

    def reset(self, sid: int, ts: int) -> None:
        """RST_STREAM (from either side): the stream's open messages are cut."""
        msgs = self._streams.get(sid)
        if msgs is None:
            return
        for msg in msgs:
            self.cut(msg, ts, "reset")
        self._retire(sid, ts)

    def goaway(self, last_sid: int, ts: int) -> None:
        """The server's GOAWAY: client streams above ``last_sid`` will not be answered."""
        for sid in [s for s in self._streams if s > last_sid and s & 1]:
            for msg in self._streams[sid]:
                self.cut(msg, ts, "goaway")
            self._retire(sid, ts)

    def close_all(self, ts: int) -> None:
        """The connection ended: cut every open message, report every drop."""
        if self._pending_msg is not None:
            self._flush_body()
        for sid in list(self._streams):
            for msg in self._streams[sid]:
                self.cut(msg, ts, "closed")
            self._retire(sid, ts)

    # ---------------------------------------------------------------- heads

    def lost_head(self, role: Role, sid: int, end_stream: bool, ts: int, reason: str) -> None:
        """A header block from ``role`` on ``sid`` could not be decoded or kept."""
        msgs = self._stream(sid, ts)
        msg = msgs[role]
        if msg is None or _reopenable(msg):
            msg = msgs[role] = Message(sid, role, open_=False, drop_reason=reason)
        elif msg.open and end_stream:
            # Lost trailers: the body itself was whole.
            self._end(msg, ts, complete=True)
        if end_stream:
            msg.finished = True
        self._maybe_retire(sid, ts)

    def headers(self, role: Role, sid: int, fields: list[tuple[str, str]], end_stream: bool,
                head_ts: int, ts: int) -> None:
        """A decoded header block from ``role`` on ``sid``: a head, an interim, or trailers."""
        msgs = self._stream(sid, ts)
        msg = msgs[role]
        if msg is not None and not _reopenable(msg):
            if msg.open and end_stream:
                self._end(msg, ts, complete=True)  # trailers
            elif end_stream:
                msg.finished = True
            self._maybe_retire(sid, ts)
            return
        pseudo: dict[str, str] = {}
        regular: list[tuple[str, str]] = []
        for name, value in fields:
            if name.startswith(":"):
                pseudo.setdefault(name, value)
            else:
                regular.append((name, value))
        head = self._head(role, sid, pseudo, tuple(regular), head_ts)
        if head is None:
            self.emit(Desync(conn=self._conn, stream=sid, ts_ns=ts, reason="malformed"))
            self.lost_head(role, sid, end_stream, ts, "malformed")
            return
        if isinstance(head, ResponseHead) and head.status < 200:
            return  # 1xx: interim, the final head is still to come
        self.emit(head)
        msg = msgs[role] = Message(sid, role, open_=True)
        encoding = ", ".join(v for n, v in regular if n == "content-encoding")
        if encoding.strip().lower() not in _IDENTITY:
            msg.decoder = make_decoder(encoding)
            if msg.decoder.error is not None:
                self._decoding_failed(msg, ts)
        if end_stream:
            self.end_stream(role, sid, ts)

    def _head(self, role: Role, sid: int, pseudo: dict[str, str],
              headers: tuple[tuple[str, str], ...], ts: int) -> RequestHead | ResponseHead | None:
        if role is Role.REQUEST:
            method = pseudo.get(":method", "").upper()
            if not method:
                return None
            authority = pseudo.get(":authority", "") or next(
                (v for n, v in headers if n == "host"), "")
            target = pseudo.get(":path", "") or (authority if method == "CONNECT" else "")
            return RequestHead(conn=self._conn, stream=sid, ts_ns=ts, method=method,
                               target=target, authority=authority.lower(), headers=headers,
                               http_version="2", process=self._process, peer=self._peer)
        status = pseudo.get(":status", "")
        if len(status) != 3 or not status.isdigit() or status[0] == "0":
            return None
        return ResponseHead(conn=self._conn, stream=sid, ts_ns=ts, status=int(status),
                            headers=headers, http_version="2")


def _reopenable(msg: Message) -> bool:
    """A message whose head was lost before any of its DATA: a later head may still open it."""
    return (not msg.open and not msg.finished and msg.dropped_bytes == 0
            and msg.drop_reason in ("hpack", "too_large", "frame"))
