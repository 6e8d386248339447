"""Connection tracker: Chunks of many connections in, HTTP events out.

Strategy. One :class:`~lumen_sniff.protocol.connstate.ConnState` per ConnKey,
kept in least-recently-used order and capped at ``max_connections`` (the oldest
is evicted: its open messages end incomplete with reason "evicted"). For each chunk the tracker:

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

The usual chunk (the next bytes of a classified connection, in order, nothing
lost) takes a short path: one lookup by a plain ``(handle, pid, source)``
tuple, which hashes in C where ConnKey's generated ``__hash__`` runs Python,
then straight to the parser. Everything else goes through ``_feed_slow``.

Every byte not parsed is counted in :attr:`ConnectionTracker.stats`.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from lumen_sniff.model import (
    Chunk,
    ConnClosed,
    ConnKey,
    Desync,
    Direction,
    HttpEvent,
    MessageEnd,
    Role,
)
from lumen_sniff.protocol.connparser import ConnectionParser, Http2Factory
from lumen_sniff.protocol.connstate import ConnState
from lumen_sniff.protocol.firstbytes import (
    BINARY,
    H1_REQUEST,
    H1_RESPONSE,
    H2,
    H2_MID,
    H2_PREFACE,
    PROBE_LIMIT_BYTES,
    classify,
)
from lumen_sniff.protocol.http1.parser import Http1Parser

__all__ = ["H2_PREFACE", "PROBE_LIMIT_BYTES", "ConnectionTracker"]


_ConnId = tuple[int, int, str]  # (handle, pid, source): see the module docstring


def _real_http2_parser() -> Http2Factory:
    # Imported when the first HTTP/2 connection appears: h2's frame layer is
    # optional at run time, and a missing one makes a counted Desync, not a crash.
    from lumen_sniff.protocol.http2.parser import Http2Parser

    return Http2Parser


def _conn_id(key: ConnKey) -> _ConnId:
    return (key.handle, key.pid, key.source)


class ConnectionTracker:
    """Routes Chunks to per-connection HTTP parsers (see the module docstring).

    Args:
        max_connections: Connections tracked at once; past it the least recently
            used one is evicted.
        http2_parser: Makes the HTTP/2 parser of a connection (tests give a fake);
            :class:`~lumen_sniff.protocol.http2.parser.Http2Parser` when None.
    """

    def __init__(
        self, max_connections: int = 4096, *, http2_parser: Http2Factory | None = None
    ) -> None:
        self._max = max(1, max_connections)
        self._http2_parser = http2_parser
        self._conns: OrderedDict[_ConnId, ConnState] = OrderedDict()
        self._ignored: OrderedDict[_ConnId, None] = OrderedDict()
        # Server-side verdicts outlive the state: the pipeline asks while handling
        # the events of the very chunk that closed the connection.
        self._was_server: OrderedDict[_ConnId, None] = OrderedDict()
        self._last_ts = 0
        # The per-chunk counters are plain attributes (a dict update per chunk
        # costs more); ``stats`` puts them together with the rest.
        self._chunks = 0
        self._bytes_egress = 0
        self._bytes_ingress = 0
        self._stats: dict[str, int] = dict.fromkeys(
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

    @property
    def stats(self) -> dict[str, int]:
        """Counters: chunks, bytes per direction, gaps and lost bytes, ``desync.<reason>``…"""
        stats = dict(self._stats)
        stats["chunks"] = self._chunks
        stats["bytes.egress"] = self._bytes_egress
        stats["bytes.ingress"] = self._bytes_ingress
        return stats

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
                self._chunks += 1
                if d:
                    self._bytes_ingress += len(data)
                else:
                    self._bytes_egress += len(data)
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

    def _feed_slow(self, chunk: Chunk, cid: _ConnId, conn: ConnState | None) -> list[HttpEvent]:
        """Everything but in-order data of a classified connection."""
        stats = self._stats
        key, data, ts, d = chunk.conn, chunk.data, chunk.ts_ns, chunk.direction
        if ts > self._last_ts:
            self._last_ts = ts
        self._chunks += 1
        if conn is None and self._ignored and cid in self._ignored:
            stats["ignored_bytes"] += len(data) + chunk.lost_bytes
            if chunk.closed:
                # The key (an SSL* pointer) is free for reuse by the next
                # connection: forget the verdict and tell the stages after us.
                del self._ignored[cid]
                return [ConnClosed(conn=key, ts_ns=ts)]
            return []
        if d:
            self._bytes_ingress += len(data)
        else:
            self._bytes_egress += len(data)
        out: list[HttpEvent] = []
        if conn is None:
            if len(self._conns) >= self._max:
                self._evict(ts, out)
            conn = self._conns[cid] = ConnState(key, chunk.process, chunk.peer)
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

    def _order(self, conn: ConnState, chunk: Chunk) -> tuple[int, bytes, int]:
        """(gap before, new data, gap after) of ``chunk`` in its direction's stream."""
        d = chunk.direction
        expected = conn.expected[d]
        start, data, lost = chunk.offset, chunk.data, chunk.lost_bytes
        end = start + len(data) + lost
        if expected is None:
            expected = start
        if end <= expected and (data or lost):
            self._stats["duplicate_bytes"] += len(data)
            return 0, b"", 0
        before = max(0, start - expected)
        if start < expected:
            overlap = expected - start
            self._stats["duplicate_bytes"] += min(overlap, len(data))
            if overlap >= len(data):  # only part of the lost tail is new
                lost, data = end - expected, b""
            else:
                data = data[overlap:]
        conn.expected[d] = max(end, expected)
        return before, data, lost

    def _gap(self, conn: ConnState, d: Direction, ts: int, lost: int, out: list[HttpEvent]) -> None:
        self._stats["gaps"] += 1
        self._stats["lost_bytes"] += lost
        if conn.parser is None:
            # Not classified yet: held bytes of this direction are cut off from
            # what follows, so they go too; the next bytes are classified afresh.
            held = sum(len(b) for dd, _, b in conn.probe if dd == d)
            if held:
                self._stats["lost_bytes"] += held
                conn.probe = [p for p in conn.probe if p[0] != d]
            return
        out += conn.parser.gap(conn.roles[d], ts, lost)

    def _data(
        self,
        cid: _ConnId,
        conn: ConnState,
        d: Direction,
        ts: int,
        data: bytes,
        out: list[HttpEvent],
    ) -> None:
        parser = conn.parser
        if parser is None:
            conn.probe.append((d, ts, data))
            held = b"".join(b for dd, _, b in conn.probe if dd == d)
            kind = classify(held)
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
        self, cid: _ConnId, conn: ConnState, d: Direction, kind: str, ts: int, out: list[HttpEvent]
    ) -> ConnectionParser | None:
        """Build the parser ``kind`` calls for, or give up on the connection."""
        key = conn.key
        if kind == BINARY:
            held = sum(len(b) for _, _, b in conn.probe)
            out.append(Desync(conn=key, stream=None, ts_ns=ts, reason="not_http", lost_bytes=held))
            self._ignore(cid)
            return None
        swap = (kind in (H1_REQUEST, H2) and d is Direction.INGRESS) or (
            kind == H1_RESPONSE and d is Direction.EGRESS
        )
        conn.server_side = swap
        conn.request_dir = Direction.INGRESS if swap else Direction.EGRESS
        conn.roles = (Role.RESPONSE, Role.REQUEST) if swap else (Role.REQUEST, Role.RESPONSE)
        if kind in (H2, H2_MID):
            try:
                make_h2 = self._http2_parser or _real_http2_parser()
            except ImportError:
                held = sum(len(b) for _, _, b in conn.probe)
                out.append(
                    Desync(
                        conn=key, stream=None, ts_ns=ts, reason="h2_unavailable", lost_bytes=held
                    )
                )
                self._ignore(cid)
                return None
            parser: ConnectionParser = make_h2(
                key, conn.process, conn.peer, mid_stream=kind == H2_MID
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
        self._stats["evictions"] += 1
        self._finish(cid, ts, out, evicted=True)

    def _count(self, out: list[HttpEvent]) -> None:
        stats = self._stats
        for event in out:
            if type(event) is Desync:
                name = "desync." + event.reason
                stats[name] = stats.get(name, 0) + 1
                stats["desync_lost_bytes"] = stats.get("desync_lost_bytes", 0) + event.lost_bytes
