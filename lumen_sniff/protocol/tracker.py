"""Connection tracker: Chunks of many connections in, HTTP events out.

Strategy. One :class:`_Conn` per ConnKey, kept in least-recently-used order and
capped at ``max_connections`` (the oldest is evicted: its open messages end
incomplete with reason "evicted"). For each chunk the tracker:

1. puts the bytes in stream order: a jump forward in ``offset`` is a gap, bytes
   already seen are trimmed, pure duplicates dropped; ``lost_bytes`` becomes a
   gap after the data, and ``closed`` closes the connection;
2. until the protocol is known, holds the first few bytes of each direction
   (at most the 24 of the HTTP/2 preface) and classifies them:

   ========================================  ===========================================
   first bytes                               parser
   ========================================  ===========================================
   ``PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n``  Http2Parser
   ``METHOD `` or ``HTTP/1.``                 Http1Parser
   a plausible HTTP/2 frame header           Http2Parser(mid_stream=True)
   other text                                Http1Parser, probing: it skips to the
                                             next head, and the connection is
                                             "not_http" if none comes in 64 KiB
   binary                                    Desync "not_http"
   ========================================  ===========================================

   A request line or preface seen on INGRESS (or a status line on EGRESS) means
   the observed process is the server: the roles swap and
   :meth:`ConnectionTracker.is_server_side` says so;
3. hands the bytes to the parser with the Role of their direction.

Every byte not parsed is counted in :attr:`ConnectionTracker.stats`.
"""

from __future__ import annotations

import dataclasses
import re
from collections import OrderedDict
from collections.abc import Callable

from lumen_sniff.model import (
    Chunk,
    ConnClosed,
    ConnKey,
    Desync,
    Direction,
    HttpEvent,
    MessageEnd,
    ProcessInfo,
    Role,
)
from lumen_sniff.protocol.base import ConnectionParser
from lumen_sniff.protocol.http1 import Http1Parser

__all__ = ["H2_PREFACE", "PROBE_LIMIT_BYTES", "ConnectionTracker"]

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The HTTP/2 client connection preface (RFC 9113 §3.4)."""
PROBE_LIMIT_BYTES = 64 * 1024
"""Text that has not shown an HTTP/1 head after this many bytes is "not_http"."""

_REQUEST_START = re.compile(rb"[A-Z][A-Z_-]{0,19}[ \t]")
_REQUEST_PREFIX = re.compile(rb"[A-Z][A-Z_-]{0,19}")
_BINARY = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")
# Frame types DATA..CONTINUATION: (needs stream 0, needs a stream, fixed length or -1).
_H2_FRAMES = {
    0x0: (False, True, -1),  # DATA
    0x1: (False, True, -1),  # HEADERS
    0x2: (False, True, 5),  # PRIORITY
    0x3: (False, True, 4),  # RST_STREAM
    0x4: (True, False, -1),  # SETTINGS
    0x5: (False, True, -1),  # PUSH_PROMISE
    0x6: (True, False, 8),  # PING
    0x7: (True, False, -1),  # GOAWAY
    0x8: (False, False, 4),  # WINDOW_UPDATE
    0x9: (False, True, -1),  # CONTINUATION
}
_H2_MAX_FRAME_BYTES = 1 << 20  # servers may raise SETTINGS_MAX_FRAME_SIZE; 1 MiB is generous
_H1, _H2, _H2_MID, _TEXT, _BINARY_KIND = "h1_request", "h2", "h2_mid", "text", "binary"
_H1_RESPONSE = "h1_response"


_ConnId = tuple[int, int, str]
"""``(handle, pid, source)``: a ConnKey as a plain tuple. Tuples hash in C; the
dataclass's generated ``__hash__``/``__eq__`` run Python code, and the tracker
looks a connection up for every chunk."""


def _conn_id(key: ConnKey) -> _ConnId:
    return (key.handle, key.pid, key.source)


class _Conn:
    """What the tracker knows about one connection."""

    __slots__ = (
        "expected",
        "feed",
        "key",
        "parser",
        "peer",
        "probe",
        "probing",
        "process",
        "request_dir",
        "roles",
        "server_side",
    )

    def __init__(
        self, key: ConnKey, process: ProcessInfo | None, peer: tuple[str, int] | None
    ) -> None:
        self.key = key  # the ConnKey every event of the connection carries
        self.expected: list[int | None] = [None, None]  # next offset, per Direction
        self.parser: ConnectionParser | None = None
        # parser.data once the parser is set and past probing: the fast path's test.
        self.feed: Callable[[Role, int, bytes], list[HttpEvent]] | None = None
        self.probing = False  # an Http1Parser that has not yet seen a head
        self.probe: list[tuple[Direction, int, bytes]] = []  # bytes held before classifying
        self.process = process
        self.peer = peer
        self.request_dir = Direction.EGRESS
        self.roles = (Role.REQUEST, Role.RESPONSE)  # Role of each Direction
        self.server_side = False


class ConnectionTracker:
    """Routes Chunks to per-connection HTTP parsers (see the module docstring).

    Args:
        max_connections: Connections tracked at once; past it the least recently
            used one is evicted.
    """

    def __init__(self, max_connections: int = 4096) -> None:
        self._max = max(1, max_connections)
        self._conns: OrderedDict[_ConnId, _Conn] = OrderedDict()
        self._ignored: OrderedDict[_ConnId, None] = OrderedDict()
        # Server-side verdicts outlive the state: the pipeline asks while handling
        # the events of the very chunk that closed the connection.
        self._was_server: OrderedDict[_ConnId, None] = OrderedDict()
        self._last_ts = 0
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "chunks",
                "bytes.egress",
                "bytes.ingress",
                "gaps",
                "lost_bytes",
                "duplicate_bytes",
                "evictions",
                "ignored_bytes",
                "connections",
            ),
            0,
        )
        """Counters: bytes per direction, gaps and lost bytes, ``desync.<reason>``…"""

    def feed(self, chunk: Chunk) -> list[HttpEvent]:
        """Process one Chunk.

        Args:
            chunk: Bytes of one direction of one connection, in any order.

        Returns:
            The HTTP events the chunk completed, in order.
        """
        key = chunk.conn
        cid = (key.handle, key.pid, key.source)
        conn = self._conns.get(cid)
        if conn is not None and conn.feed is not None:
            data, d = chunk.data, chunk.direction
            expected = conn.expected[d]
            if expected == chunk.offset and data and not chunk.lost_bytes and not chunk.closed:
                # The usual case: the next bytes of a classified connection, in order.
                ts = chunk.ts_ns
                if ts > self._last_ts:
                    self._last_ts = ts
                stats = self.stats
                stats["chunks"] += 1
                stats[_BYTES_STAT[d]] += len(data)
                self._conns.move_to_end(cid)
                conn.expected[d] = expected + len(data)
                out = conn.feed(conn.roles[d], ts, data)
                for event in out:
                    if type(event) is Desync:
                        self._count(out)
                        break
                return out
        return self._feed_slow(chunk, cid, conn)

    def ignore(self, conn: ConnKey) -> None:
        """Drop ``conn``'s state; its later chunks are counted as ignored bytes."""
        self._ignore(_conn_id(conn))

    def close(self) -> list[HttpEvent]:
        """Close every connection (end of capture); returns their last events."""
        out: list[HttpEvent] = []
        for cid in list(self._conns):
            self._finish(cid, self._last_ts, out)
        self._count(out)
        return out

    def is_server_side(self, conn: ConnKey) -> bool:
        """True when the observed endpoint of ``conn`` is its server (requests came in)."""
        cid = _conn_id(conn)
        state = self._conns.get(cid)
        return state.server_side if state is not None else cid in self._was_server

    @property
    def buffered_bytes(self) -> int:
        """Bytes held across all connections (probes plus parser buffers)."""
        total = 0
        for conn in self._conns.values():
            total += sum(len(b) for _, _, b in conn.probe)
            total += getattr(conn.parser, "buffered_bytes", 0)
        return total

    # ------------------------------------------------------------------ internals

    def _feed_slow(self, chunk: Chunk, cid: _ConnId, conn: _Conn | None) -> list[HttpEvent]:
        """Everything but in-order data of a classified connection."""
        stats = self.stats
        key, data, ts, d = chunk.conn, chunk.data, chunk.ts_ns, chunk.direction
        if ts > self._last_ts:
            self._last_ts = ts
        stats["chunks"] += 1
        if conn is None and self._ignored and cid in self._ignored:
            stats["ignored_bytes"] += len(data) + chunk.lost_bytes
            if chunk.closed:
                # The key (an SSL* pointer) is free for reuse by the next
                # connection: forget the verdict and tell the stages after us.
                del self._ignored[cid]
                return [ConnClosed(conn=key, ts_ns=ts)]
            return []
        stats[_BYTES_STAT[d]] += len(data)
        out: list[HttpEvent] = []
        if conn is None:
            if len(self._conns) >= self._max:
                self._evict(ts, out)
            conn = self._conns[cid] = _Conn(key, chunk.process, chunk.peer)
            self._was_server.pop(cid, None)
            stats["connections"] += 1
        else:
            self._conns.move_to_end(cid)
        expected = conn.expected[d]
        if expected == chunk.offset and not chunk.lost_bytes:  # in order
            conn.expected[d] = expected + len(data)
            before = after = 0
        else:
            before, data, after = self._order(conn, chunk)
        if before:
            self._gap(conn, d, ts, before, out)
        if data:
            self._data(cid, conn, d, ts, data, out)
        if cid not in self._conns:  # judged not HTTP just now
            if chunk.closed:
                self._ignored.pop(cid, None)
        else:
            if after:
                self._gap(conn, d, ts, after, out)
            if chunk.closed:
                self._finish(cid, ts, out)
        if out:
            self._count(out)
        return out

    def _ignore(self, cid: _ConnId) -> None:
        self._conns.pop(cid, None)
        self._ignored[cid] = None
        self._ignored.move_to_end(cid)
        while len(self._ignored) > 4 * self._max:
            self._ignored.popitem(last=False)

    def _order(self, conn: _Conn, chunk: Chunk) -> tuple[int, bytes, int]:
        """(gap before, new data, gap after) of ``chunk`` in its direction's stream."""
        d = chunk.direction
        expected = conn.expected[d]
        start, data, lost = chunk.offset, chunk.data, chunk.lost_bytes
        end = start + len(data) + lost
        if expected is None:
            expected = start
        if end <= expected and (data or lost):
            self.stats["duplicate_bytes"] += len(data)
            return 0, b"", 0
        before = max(0, start - expected)
        if start < expected:
            overlap = expected - start
            self.stats["duplicate_bytes"] += min(overlap, len(data))
            if overlap >= len(data):  # only part of the lost tail is new
                lost, data = end - expected, b""
            else:
                data = data[overlap:]
        conn.expected[d] = max(end, expected)
        return before, data, lost

    def _gap(self, conn: _Conn, d: Direction, ts: int, lost: int, out: list[HttpEvent]) -> None:
        self.stats["gaps"] += 1
        self.stats["lost_bytes"] += lost
        if conn.parser is None:
            # Not classified yet: held bytes of this direction are cut off from
            # what follows, so they go too; the next bytes are classified afresh.
            held = sum(len(b) for dd, _, b in conn.probe if dd == d)
            if held:
                self.stats["lost_bytes"] += held
                conn.probe = [p for p in conn.probe if p[0] != d]
            return
        out += conn.parser.gap(conn.roles[d], ts, lost)

    def _data(
        self, cid: _ConnId, conn: _Conn, d: Direction, ts: int, data: bytes, out: list[HttpEvent]
    ) -> None:
        parser = conn.parser
        if parser is None:
            conn.probe.append((d, ts, data))
            held = b"".join(b for dd, _, b in conn.probe if dd == d)
            kind = _classify(held)
            if kind is None:
                return
            parser = self._start(cid, conn, d, kind, ts, out)
            if parser is None:
                return
            probe, conn.probe = conn.probe, []
            for pd, pts, pdata in probe:
                out += parser.data(conn.roles[pd], pts, pdata)
        else:
            out += parser.data(conn.roles[d], ts, data)
        if conn.probing:
            assert isinstance(parser, Http1Parser)
            if parser.has_synced:
                conn.probing = False
                conn.feed = parser.data
            elif parser.unsynced_bytes > PROBE_LIMIT_BYTES:
                out.append(
                    Desync(
                        conn=conn.key,
                        stream=None,
                        ts_ns=ts,
                        reason="not_http",
                        lost_bytes=parser.unsynced_bytes,
                    )
                )
                self._ignore(cid)

    def _start(
        self, cid: _ConnId, conn: _Conn, d: Direction, kind: str, ts: int, out: list[HttpEvent]
    ) -> ConnectionParser | None:
        """Build the parser ``kind`` calls for, or give up on the connection."""
        key = conn.key
        if kind == _BINARY_KIND:
            held = sum(len(b) for _, _, b in conn.probe)
            out.append(Desync(conn=key, stream=None, ts_ns=ts, reason="not_http", lost_bytes=held))
            self._ignore(cid)
            return None
        swap = (kind in (_H1, _H2) and d is Direction.INGRESS) or (
            kind == _H1_RESPONSE and d is Direction.EGRESS
        )
        conn.server_side = swap
        conn.request_dir = Direction.INGRESS if swap else Direction.EGRESS
        conn.roles = (Role.RESPONSE, Role.REQUEST) if swap else (Role.REQUEST, Role.RESPONSE)
        if kind in (_H2, _H2_MID):
            try:
                from lumen_sniff.protocol.http2 import Http2Parser
            except ImportError:
                held = sum(len(b) for _, _, b in conn.probe)
                out.append(
                    Desync(
                        conn=key, stream=None, ts_ns=ts, reason="h2_unavailable", lost_bytes=held
                    )
                )
                self._ignore(cid)
                return None
            parser: ConnectionParser = Http2Parser(
                key, conn.process, conn.peer, mid_stream=kind == _H2_MID
            )
        else:
            parser = Http1Parser(key, conn.process, conn.peer)
            conn.probing = True
        conn.parser = parser
        if not conn.probing:
            conn.feed = parser.data
        return parser

    def _finish(
        self, cid: _ConnId, ts: int, out: list[HttpEvent], *, evicted: bool = False
    ) -> None:
        conn = self._conns.pop(cid)
        if conn.server_side:
            self._was_server[cid] = None
            while len(self._was_server) > self._max:
                self._was_server.popitem(last=False)
        if conn.parser is None:
            held = sum(len(b) for _, _, b in conn.probe)
            if held:
                out.append(
                    Desync(
                        conn=conn.key, stream=None, ts_ns=ts, reason="too_short", lost_bytes=held
                    )
                )
            return
        events = conn.parser.close(ts)
        if evicted:
            events = [
                dataclasses.replace(e, complete=False, reason="evicted")
                if isinstance(e, MessageEnd)
                else e
                for e in events
            ]
        out += events

    def _evict(self, ts: int, out: list[HttpEvent]) -> None:
        cid = next(iter(self._conns))
        self.stats["evictions"] += 1
        self._finish(cid, ts, out, evicted=True)

    def _count(self, out: list[HttpEvent]) -> None:
        stats = self.stats
        for event in out:
            if type(event) is Desync:
                name = "desync." + event.reason
                stats[name] = stats.get(name, 0) + 1
                stats["desync_lost_bytes"] = stats.get("desync_lost_bytes", 0) + event.lost_bytes


_BYTES_STAT = ("bytes.egress", "bytes.ingress")  # counter of each Direction


def _classify(held: bytes) -> str | None:
    """What the first bytes of a direction are; None while more are needed to tell."""
    head = held[:24]
    if H2_PREFACE.startswith(head):
        return _H2 if len(head) == 24 else None
    if _REQUEST_START.match(held):
        return _H1
    if held.startswith(b"HTTP/1."):
        return _H1_RESPONSE
    if b"HTTP/1.".startswith(held[:7]) or _REQUEST_PREFIX.fullmatch(held[:21]):
        return None  # could still become a start line
    if len(held) < 9:
        return None
    if _plausible_frame(held):
        return _H2_MID
    return _BINARY_KIND if _BINARY.search(held, 0, 256) else _TEXT


def _plausible_frame(b: bytes) -> bool:
    """Whether ``b`` starts with a frame header an HTTP/2 peer could send."""
    length = int.from_bytes(b[0:3], "big")
    kind = _H2_FRAMES.get(b[3])
    stream = int.from_bytes(b[5:9], "big")
    if kind is None or length > _H2_MAX_FRAME_BYTES or stream >> 31:
        return False
    zero_only, nonzero_only, fixed = kind
    if (zero_only and stream) or (nonzero_only and not stream):
        return False
    if fixed >= 0 and length != fixed:
        return False
    return not (b[3] == 0x4 and length % 6)
