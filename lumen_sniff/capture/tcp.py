"""TCP reassembly: captured segments in, ordered per-direction Chunks out. Pure.

Strategy
--------
A *flow* is one TCP connection, found by its 4-tuple in either orientation, and
numbered in order of first sight (the number is the Chunk's ``ConnKey.handle``).
Each sending side of a flow is a *half* that maps 32-bit sequence numbers to a
64-bit stream offset: offset 0 is the byte after the SYN, or the first byte
seen when the capture started mid-connection. Differences are taken modulo
2**32 as signed values, so sequence wrap-around needs no special case.

Every payload is trimmed against what was already delivered (a retransmission
is dropped; "first copy wins") and then against what is already buffered out
of order, so a later overlapping copy never replaces earlier bytes. Buffered
pieces are delivered as soon as the hole before them fills. A half buffers at
most ``max_pending_bytes``: past that it skips ahead to its first buffered
piece, and the skipped bytes show as a jump in Chunk offsets (the tracker turns
that into a gap) and in the ``gap_bytes`` counter. Bytes a snap length cut off
ride on the Chunk as ``lost_bytes``.

Which side is EGRESS: the SYN sender (or the SYN-ACK receiver). Mid-connection,
the side whose first payload is an HTTP request (or the HTTP/2 preface), else
the side that did not send an HTTP response, else the higher port.

A flow ends, with one empty ``Chunk(closed=True)``, when both halves have
delivered everything up to their FIN, on RST, after ``idle_timeout_ns`` of
capture time without packets, when the flow table is full (least recently
active flow first), or at :meth:`TcpReassembler.close`. Buffered pieces are
flushed (with their gaps) first. Time comes only from packet timestamps.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass
from typing import Final

from lumen_sniff.capture.packets import ACK, FIN, RST, SYN, Segment, format_addr
from lumen_sniff.model import Chunk, ConnKey, Direction

__all__ = ["ReassemblySettings", "TcpReassembler"]

_SEQ_MOD: Final = 1 << 32
_SEQ_HALF: Final = 1 << 31
_TOMBSTONE_NS: Final = 60 * 10**9
"""How long a closed 4-tuple swallows stray payload (about 2 MSL)."""
_MAX_TOMBSTONES: Final = 4096
_HTTP_METHODS: Final = frozenset(
    b"GET POST PUT DELETE HEAD OPTIONS PATCH CONNECT TRACE".split()
)

_Endpoint = tuple[bytes, int]
_FlowKey = tuple[bytes, int, bytes, int]


@dataclass(frozen=True, kw_only=True, slots=True)
class ReassemblySettings:
    """Limits and naming for one reassembler."""

    source: str = "pcap"
    """``ConnKey.source`` of the Chunks made ("pcap" live, "replay" from files)."""
    max_flows: int = 20_000
    """Flows tracked at once; the least recently active is evicted beyond this."""
    max_pending_bytes: int = 1 << 20
    """Out-of-order bytes buffered per direction before skipping ahead."""
    max_pending_pieces: int = 2048
    """Out-of-order pieces buffered per direction before skipping ahead."""
    idle_timeout_ns: int = 300 * 10**9
    """Capture time without packets after which a flow is closed."""


class _Half:
    """One direction of a flow."""

    __slots__ = (
        "direction",
        "done",
        "fin_abs",
        "isn",
        "next_abs",
        "next_seq",
        "pending",
        "pending_bytes",
        "started",
    )

    def __init__(self) -> None:
        self.started = False
        self.isn: int | None = None
        self.next_seq = 0
        self.next_abs = 0
        self.fin_abs: int | None = None
        self.done = False
        self.direction = Direction.EGRESS
        # Sorted, non-overlapping (start, end, data) pieces beyond next_abs;
        # data None marks bytes a snap length cut off.
        self.pending: list[tuple[int, int, bytes | None]] = []
        self.pending_bytes = 0

    def start(self, seq: int) -> None:
        self.started = True
        self.next_seq = seq
        self.next_abs = 0

    def offset_of(self, seq: int) -> int:
        delta = ((seq - self.next_seq + _SEQ_HALF) % _SEQ_MOD) - _SEQ_HALF
        return self.next_abs + delta

    def advance(self, new_abs: int) -> None:
        self.next_seq = (self.next_seq + new_abs - self.next_abs) % _SEQ_MOD
        self.next_abs = new_abs


class _Flow:
    """One TCP connection."""

    __slots__ = ("client", "conn", "emitted", "halves", "ignored", "last_ts_ns", "peer")

    def __init__(self, conn: ConnKey) -> None:
        self.conn = conn
        self.client: _Endpoint | None = None
        self.peer: tuple[str, int] | None = None
        self.halves: dict[_Endpoint, _Half] = {}
        self.last_ts_ns = 0
        self.emitted = False
        self.ignored = False

    def half(self, sender: _Endpoint) -> _Half:
        half = self.halves.get(sender)
        if half is None:
            half = self.halves[sender] = _Half()
        return half


class TcpReassembler:
    """Turns TCP segments of many flows into per-direction byte streams.

    Feed segments in capture order with their timestamps; every call returns
    the Chunks that became deliverable. Never raises on odd input.
    """

    def __init__(self, settings: ReassemblySettings | None = None) -> None:
        """Create an empty flow table.

        Args:
            settings: limits; the defaults suit a busy server.
        """
        self.settings = settings or ReassemblySettings()
        self.stats: Counter[str] = Counter()
        self._flows: dict[_FlowKey, _Flow] = {}
        self._by_conn: dict[ConnKey, _FlowKey] = {}
        self._tombstones: dict[_FlowKey, int] = {}
        self._next_handle = 1
        self._last_sweep_ns = 0

    @property
    def flow_count(self) -> int:
        """Flows currently tracked."""
        return len(self._flows)

    def ignore(self, conn: ConnKey) -> None:
        """Stop reassembling ``conn``: its later packets are counted and dropped.

        Args:
            conn: a ConnKey this reassembler produced (others are ignored).
        """
        key = self._by_conn.get(conn)
        if key is not None:
            flow = self._flows[key]
            flow.ignored = True
            for half in flow.halves.values():
                half.pending.clear()
                half.pending_bytes = 0

    def feed(self, seg: Segment, ts_ns: int) -> list[Chunk]:
        """Take one segment; return the Chunks it made deliverable.

        Args:
            seg: a parsed TCP segment.
            ts_ns: its capture time, UNIX nanoseconds.
        """
        out: list[Chunk] = []
        if ts_ns - self._last_sweep_ns >= self.settings.idle_timeout_ns // 8:
            self._sweep(ts_ns, out)
        sender = (seg.src, seg.sport)
        receiver = (seg.dst, seg.dport)
        key = (*sender, *receiver) if sender < receiver else (*receiver, *sender)
        flags = seg.flags
        flow = self._flows.get(key)
        if flow is not None:
            del self._flows[key]  # re-inserted below: dict order is LRU order
            if flags & SYN and not flags & ACK:
                old = flow.halves.get(sender)
                if old is not None and old.isn is not None and old.isn != seg.seq:
                    self._flows[key] = flow
                    self._finish(key, flow, out, "closed_reused")  # port reuse
                    flow = None
        if flow is None:
            if not (flags & SYN or seg.payload or seg.missing_bytes) or flags & RST:
                return out  # pure ACK / FIN / RST of a flow never seen
            seen = self._tombstones.get(key)
            if seen is not None and not flags & SYN and ts_ns - seen < _TOMBSTONE_NS:
                self.stats["after_close_bytes"] += len(seg.payload)
                return out
            flow = self._new_flow(key, out)
        self._flows[key] = flow
        flow.last_ts_ns = ts_ns
        if flow.ignored:
            self.stats["ignored_bytes"] += len(seg.payload)
            half = flow.half(sender)
            half.done = half.done or bool(flags & FIN)
            if flags & RST or (len(flow.halves) == 2 and all(h.done for h in flow.halves.values())):
                self._finish(key, flow, out, "closed_ignored")
            return out
        half = flow.half(sender)
        seq = seg.seq
        if flags & SYN:
            if flow.client is None:
                self._set_client(flow, receiver if flags & ACK else sender, sender, receiver)
            if half.isn is None:
                half.isn = seq
                half.start((seq + 1) % _SEQ_MOD)
            seq = (seq + 1) % _SEQ_MOD
        if seg.payload or seg.missing_bytes:
            if flow.client is None:
                self._set_client(flow, _guess_client(seg, sender, receiver), sender, receiver)
            if not half.started:
                half.start(seq)
            self._accept(flow, half, seq, seg.payload, seg.missing_bytes, ts_ns, out)
        if flags & FIN and half.fin_abs is None:
            if not half.started:
                half.start(seq)
            half.fin_abs = half.offset_of(seq) + len(seg.payload) + seg.missing_bytes
        if flags & RST:
            self._finish(key, flow, out, "closed_rst")
            return out
        if half.fin_abs is not None and half.next_abs >= half.fin_abs:
            half.done = True
            if len(flow.halves) == 2 and all(h.done for h in flow.halves.values()):
                self._finish(key, flow, out, "closed_fin", last=half)
        return out

    def close(self) -> list[Chunk]:
        """End of capture: flush every flow (gaps included) and close it."""
        out: list[Chunk] = []
        for key, flow in list(self._flows.items()):
            self._finish(key, flow, out, "closed_eof")
        return out

    # ------------------------------------------------------------------ flows

    def _new_flow(self, key: _FlowKey, out: list[Chunk]) -> _Flow:
        while len(self._flows) >= self.settings.max_flows:
            old_key = next(iter(self._flows))
            self._finish(old_key, self._flows[old_key], out, "evicted")
        conn = ConnKey(source=self.settings.source, pid=0, handle=self._next_handle)
        self._next_handle += 1
        self.stats["flows"] += 1
        self._by_conn[conn] = key
        return _Flow(conn)

    def _set_client(
        self, flow: _Flow, client: _Endpoint, sender: _Endpoint, receiver: _Endpoint
    ) -> None:
        server = receiver if client == sender else sender
        flow.client = client
        flow.peer = (format_addr(server[0]), server[1])
        flow.half(client).direction = Direction.EGRESS
        flow.half(server).direction = Direction.INGRESS

    def _sweep(self, now_ns: int, out: list[Chunk]) -> None:
        self._last_sweep_ns = now_ns
        limit = now_ns - self.settings.idle_timeout_ns
        for key, flow in list(self._flows.items()):
            if flow.last_ts_ns >= limit:
                break  # LRU order: the rest are more recent
            self._finish(key, flow, out, "idle_timeout")
        for key, ts in list(self._tombstones.items()):
            if now_ns - ts < _TOMBSTONE_NS:
                break
            del self._tombstones[key]

    def _finish(
        self,
        key: _FlowKey,
        flow: _Flow,
        out: list[Chunk],
        reason: str,
        last: _Half | None = None,
    ) -> None:
        self.stats[reason] += 1
        del self._flows[key]
        del self._by_conn[flow.conn]
        self._tombstones[key] = flow.last_ts_ns
        if len(self._tombstones) > _MAX_TOMBSTONES:
            del self._tombstones[next(iter(self._tombstones))]
        if flow.ignored:
            return
        for half in flow.halves.values():
            while half.pending:
                self._skip_ahead(flow, half, flow.last_ts_ns, out)
        if not flow.emitted:
            return
        if last is None:
            last = next(
                (h for h in flow.halves.values() if h.direction == Direction.EGRESS),
                next(iter(flow.halves.values())),
            )
        out.append(
            Chunk(
                conn=flow.conn,
                direction=last.direction,
                offset=last.next_abs,
                ts_ns=flow.last_ts_ns,
                data=b"",
                closed=True,
                peer=flow.peer,
            )
        )

    # ------------------------------------------------------------ reassembly

    def _accept(
        self,
        flow: _Flow,
        half: _Half,
        seq: int,
        payload: bytes,
        missing: int,
        ts_ns: int,
        out: list[Chunk],
    ) -> None:
        start = half.offset_of(seq)
        end = start + len(payload) + missing
        if missing:
            self.stats["snaplen_bytes"] += missing
        if end <= half.next_abs:
            self.stats["retransmit_bytes"] += len(payload)
            return
        if start < half.next_abs:
            self.stats["overlap_bytes"] += half.next_abs - start
            payload = payload[half.next_abs - start :]
            start = half.next_abs
        if not half.pending and start == half.next_abs:
            # The common case, in order with nothing buffered: no copies.
            self._emit(flow, half, start, payload, missing, ts_ns, out)
            half.advance(end)
            return
        self._insert(half, start, start + len(payload), payload)
        if missing:
            self._insert(half, start + len(payload), end, None)
        self._drain(flow, half, ts_ns, out)
        settings = self.settings
        while half.pending and (
            half.pending_bytes > settings.max_pending_bytes
            or len(half.pending) > settings.max_pending_pieces
        ):
            self._skip_ahead(flow, half, ts_ns, out)

    def _insert(self, half: _Half, start: int, end: int, data: bytes | None) -> None:
        """Buffer [start, end) minus what is already buffered (first copy wins)."""
        pending = half.pending
        i = bisect.bisect_left(pending, start, key=lambda piece: piece[0])
        if i and pending[i - 1][1] > start:
            i -= 1
        free: list[tuple[int, int]] = []
        cursor = start
        j = i
        while j < len(pending) and pending[j][0] < end:
            piece_start, piece_end, _ = pending[j]
            if piece_start > cursor:
                free.append((cursor, piece_start))
            cursor = max(cursor, piece_end)
            j += 1
        if cursor < end:
            free.append((cursor, end))
        covered = (end - start) - sum(b - a for a, b in free)
        if covered:
            self.stats["overlap_bytes"] += covered
        new = [(a, b, None if data is None else data[a - start : b - start]) for a, b in free]
        pending[i:j] = sorted([*pending[i:j], *new], key=lambda piece: piece[0])
        if data is not None:
            half.pending_bytes += end - start - covered

    def _drain(self, flow: _Flow, half: _Half, ts_ns: int, out: list[Chunk]) -> None:
        """Deliver buffered pieces that now follow the delivered bytes."""
        pending = half.pending
        taken = 0
        while taken < len(pending) and pending[taken][0] == half.next_abs:
            start = half.next_abs
            parts: list[bytes] = []
            lost = 0
            while taken < len(pending) and pending[taken][0] == half.next_abs:
                piece_start, piece_end, data = pending[taken]
                if data is None:
                    lost += piece_end - piece_start
                elif lost:
                    break  # data after cut-off bytes starts a new Chunk
                else:
                    parts.append(data)
                    half.pending_bytes -= len(data)
                half.advance(piece_end)
                taken += 1
            self._emit(flow, half, start, b"".join(parts), lost, ts_ns, out)
        del pending[:taken]

    def _skip_ahead(self, flow: _Flow, half: _Half, ts_ns: int, out: list[Chunk]) -> None:
        """Give up on the hole before the first buffered piece, then deliver."""
        gap = half.pending[0][0] - half.next_abs
        self.stats["gap_bytes"] += gap
        half.advance(half.pending[0][0])
        self._drain(flow, half, ts_ns, out)

    def _emit(
        self,
        flow: _Flow,
        half: _Half,
        start: int,
        data: bytes,
        lost: int,
        ts_ns: int,
        out: list[Chunk],
    ) -> None:
        flow.emitted = True
        out.append(
            Chunk(
                conn=flow.conn,
                direction=half.direction,
                offset=start,
                ts_ns=ts_ns,
                data=data,
                lost_bytes=lost,
                peer=flow.peer,
            )
        )


def _guess_client(seg: Segment, sender: _Endpoint, receiver: _Endpoint) -> _Endpoint:
    """Pick the initiator of a flow whose handshake was not captured."""
    payload = seg.payload
    if payload.startswith(b"PRI * HTTP/2.0") or payload.split(b" ", 1)[0] in _HTTP_METHODS:
        return sender
    if payload.startswith(b"HTTP/1."):
        return receiver
    return sender if seg.sport > seg.dport else receiver
