"""TCP reassembly: captured segments in, ordered per-direction Chunks out. Pure.

Strategy
--------
A *flow* is one TCP connection, numbered in order of first sight (the number
is the Chunk's ``ConnKey.handle``). Each sending side is a
:class:`~lumen_sniff.capture.tcp.flow.HalfStream`, found directly by its
*directional key* (source address, destination address, source and
destination port, as bytes), which is also what replay slices out of a frame
without parsing further.

The hot path is a segment that is exactly the next one expected, with no
SYN/FIN/RST and nothing buffered: its payload is delivered as it is, no copy,
no buffering. Everything else takes the general path: every payload is trimmed
against what was already delivered (a retransmission is dropped; "first copy
wins") and then against what is already buffered out of order. A half buffers
at most ``max_pending_bytes``: past that it skips ahead, and the skipped bytes
show as a jump in Chunk offsets (the tracker turns that into a gap) and in the
``gap_bytes`` counter. Bytes a snap length cut off ride on the Chunk as
``lost_bytes``.

In-order bytes go out through :class:`~lumen_sniff.capture.tcp.delivery.Delivery`,
at once or, for replay (``coalesce_window_ns`` > 0), coalesced into fewer,
bigger Chunks without changing the events (see that module).

Which side is EGRESS: the SYN sender (or the SYN-ACK receiver). Mid-connection,
the side whose first payload is an HTTP request (or the HTTP/2 preface), else
the side that did not send an HTTP response, else the higher port.

A flow ends, with one empty ``Chunk(closed=True)``, when both halves have
delivered everything up to their FIN, on RST, after ``idle_timeout_ns`` of
capture time without packets, when the flow table is full (least recently
active flow first), or at :meth:`TcpReassembler.close`. Buffered pieces are
flushed (with their gaps) first. Time comes only from packet timestamps.

Flows that ``owns`` rejects (another replay worker's) are tracked like ignored
flows, so flow numbers stay the same in every worker, but never reassembled.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from lumen_sniff.capture.tcp.delivery import Delivery
from lumen_sniff.capture.tcp.flow import SEQ_MASK, Flow, HalfStream
from lumen_sniff.capture.tcp.segments import (
    ACK,
    FIN,
    RST,
    SYN,
    Segment,
    directional_key,
    reverse_key,
    sender_of,
)
from lumen_sniff.model import Chunk, ConnKey, Direction

__all__ = ["ReassemblySettings", "TcpReassembler"]

_TOMBSTONE_NS: Final = 60 * 10**9
"""How long a closed 4-tuple swallows stray payload (about 2 MSL)."""
_MAX_TOMBSTONES: Final = 4096
_HTTP_METHODS: Final = frozenset(b"GET POST PUT DELETE HEAD OPTIONS PATCH CONNECT TRACE".split())
_SLOW_FLAGS: Final = SYN | FIN | RST
_PORTS = struct.Struct("!HH")


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
    coalesce_window_ns: int = 0
    """Capture time one coalesced Chunk may span; 0 delivers every segment at once."""
    coalesce_max_bytes: int = 64 << 10
    """Bytes one coalesced Chunk may hold."""


class TcpReassembler:
    """Turns TCP segments of many flows into per-direction byte streams.

    Feed segments in capture order with their timestamps; Chunks come out as
    they become deliverable. Never raises on odd input.
    """

    def __init__(
        self,
        settings: ReassemblySettings | None = None,
        *,
        owns: Callable[[bytes], bool] | None = None,
    ) -> None:
        """Create an empty flow table.

        Args:
            settings: limits; the defaults suit a busy server.
            owns: given a flow's key (the smaller directional key), whether to
                reassemble it; other flows are only tracked, so flow numbers
                match a reassembler that owns every flow.
        """
        self.settings = settings or ReassemblySettings()
        self.stats: Counter[str] = Counter()
        self._delivery = Delivery(
            self.settings.coalesce_window_ns, self.settings.coalesce_max_bytes
        )
        self.out = self._delivery.out
        """Chunks made deliverable by :meth:`feed_tcp`; the caller empties it."""
        self._owns = owns
        self._flows: dict[bytes, Flow] = {}
        self._halves: dict[bytes, HalfStream] = {}
        self._by_conn: dict[ConnKey, Flow] = {}
        self._tombstones: dict[bytes, int] = {}
        self._next_handle = 1
        self._last_sweep_ns = 0
        self._sweep_every_ns = self.settings.idle_timeout_ns // 8
        self._window_ns = self.settings.coalesce_window_ns
        self._max_held = self.settings.coalesce_max_bytes  # both for the hot path

    @property
    def flow_count(self) -> int:
        """Flows currently tracked."""
        return len(self._flows)

    def ignore(self, conn: ConnKey) -> None:
        """Stop reassembling ``conn``: its later packets are counted and dropped.

        Args:
            conn: a ConnKey this reassembler produced (others are ignored).
        """
        flow = self._by_conn.get(conn)
        if flow is not None and not flow.ignored:
            flow.ignored = True
            self._delivery.drop(flow)
            for half in (flow.first, flow.second):
                half.pending.clear()
                half.pending_bytes = 0

    def feed(self, seg: Segment, ts_ns: int) -> list[Chunk]:
        """Take one segment; return the Chunks it made deliverable.

        Args:
            seg: a parsed TCP segment.
            ts_ns: its capture time, UNIX nanoseconds.
        """
        key = directional_key(seg.src, seg.dst, seg.sport, seg.dport)
        self.feed_tcp(key, seg.seq, seg.flags, seg.payload, seg.missing_bytes, ts_ns)
        out = self.out[:]
        self.out.clear()
        return out

    def feed_tcp(
        self, key: bytes, seq: int, flags: int, payload: bytes, missing: int, ts_ns: int
    ) -> None:
        """Take one segment given as fields; append the Chunks it made deliverable to ``out``.

        Args:
            key: its :func:`~lumen_sniff.capture.tcp.segments.directional_key`.
            seq: sequence number.
            flags: TCP flags byte.
            payload: payload bytes captured.
            missing: payload bytes the snap length cut off.
            ts_ns: capture time, UNIX nanoseconds.
        """
        if ts_ns - self._last_sweep_ns >= self._sweep_every_ns:
            self._sweep(ts_ns)
        half = self._halves.get(key)
        if half is not None and not flags & _SLOW_FLAGS and not missing:
            flow = half.flow
            if flow.ignored:
                if not flow.foreign:  # another worker's bytes are its business
                    self.stats["ignored_bytes"] += len(payload)
                flows = self._flows
                del flows[flow.key]
                flows[flow.key] = flow
                flow.last_ts_ns = ts_ns
                return
            if (
                seq == half.next_seq
                and payload
                and half.started
                and not half.pending
                and half.fin_abs is None
            ):
                # In order, nothing buffered: deliver as is (the common case).
                flows = self._flows
                del flows[flow.key]  # re-inserted: dict order is LRU order
                flows[flow.key] = flow
                flow.last_ts_ns = ts_ns
                start = half.next_abs
                size = len(payload)
                half.next_abs = end = start + size
                half.next_seq = (seq + size) & SEQ_MASK
                if (
                    flow.holder is half
                    and start == half.held_end
                    and ts_ns - half.held_ts_first <= self._window_ns
                    and end - half.held_start <= self._max_held
                ):
                    # A coalesced run goes on (as Delivery.emit would do).
                    half.held.append(payload)
                    half.held_end = end
                    half.held_ts_last = ts_ns
                    return
                self._delivery.emit(flow, half, start, payload, 0, ts_ns)
                return
        self._feed_general(key, half, seq, flags, payload, missing, ts_ns)

    def close(self) -> list[Chunk]:
        """End of capture: flush every flow (gaps included) and close it."""
        for flow in list(self._flows.values()):
            self._finish(flow, "closed_eof")
        out = self.out[:]
        self.out.clear()
        return out

    # ------------------------------------------------------------------ flows

    def _feed_general(
        self,
        key: bytes,
        half: HalfStream | None,
        seq: int,
        flags: int,
        payload: bytes,
        missing: int,
        ts_ns: int,
    ) -> None:
        flow: Flow | None = None
        if half is not None:
            flow = half.flow
            assert flow is not None
            flows = self._flows
            del flows[flow.key]
            flows[flow.key] = flow
            if flags & SYN and not flags & ACK and half.isn is not None and half.isn != seq:
                self._finish(flow, "closed_reused")  # port reuse
                flow = None
        if flow is None:
            if not (flags & SYN or payload or missing) or flags & RST:
                return  # pure ACK / FIN / RST of a flow never seen
            reverse = reverse_key(key)
            flow_key = min(key, reverse)
            seen = self._tombstones.get(flow_key)
            if seen is not None and not flags & SYN and ts_ns - seen < _TOMBSTONE_NS:
                self.stats["after_close_bytes"] += len(payload)
                return
            flow = self._new_flow(flow_key, key, reverse)
            half = flow.first
        assert half is not None
        flow.last_ts_ns = ts_ns
        if flow.ignored:
            if not flow.foreign:
                self.stats["ignored_bytes"] += len(payload)
            half.done = half.done or bool(flags & FIN)
            if flags & RST or (flow.first.done and flow.second.done):
                self._finish(flow, "closed_foreign" if flow.foreign else "closed_ignored")
            return
        if flags & SYN:
            if not flow.settled:
                self._set_client(flow, flow.other(half) if flags & ACK else half)
            if half.isn is None:
                half.isn = seq
                half.start((seq + 1) & SEQ_MASK)
            seq = (seq + 1) & SEQ_MASK
        if payload or missing:
            if not flow.settled:
                self._set_client(flow, _guess_client(payload, half, flow.other(half)))
            if not half.started:
                half.start(seq)
            self._accept(flow, half, seq, payload, missing, ts_ns)
        if flags & FIN and half.fin_abs is None:
            if not half.started:
                half.start(seq)
            half.fin_abs = half.offset_of(seq) + len(payload) + missing
        if flags & RST:
            self._finish(flow, "closed_rst")
            return
        if half.fin_abs is not None and half.next_abs >= half.fin_abs:
            half.done = True
            if flow.first.done and flow.second.done:
                self._finish(flow, "closed_fin", last=half)

    def _new_flow(self, flow_key: bytes, key: bytes, reverse: bytes) -> Flow:
        while len(self._flows) >= self.settings.max_flows:
            self._finish(next(iter(self._flows.values())), "evicted")
        conn = ConnKey(source=self.settings.source, pid=0, handle=self._next_handle)
        self._next_handle += 1
        self.stats["flows"] += 1
        flow = Flow(flow_key, conn, key)
        if self._owns is not None and not self._owns(flow_key):
            flow.ignored = flow.foreign = True
        self._flows[flow_key] = flow
        self._by_conn[conn] = flow
        self._halves[key] = flow.first
        self._halves[reverse] = flow.second
        return flow

    def _set_client(self, flow: Flow, client: HalfStream) -> None:
        server = flow.other(client)
        flow.settled = True
        flow.peer = sender_of(server.key)
        client.direction = Direction.EGRESS
        server.direction = Direction.INGRESS

    def _sweep(self, now_ns: int) -> None:
        self._last_sweep_ns = now_ns
        limit = now_ns - self.settings.idle_timeout_ns
        for flow in list(self._flows.values()):
            if flow.last_ts_ns >= limit:
                break  # LRU order: the rest are more recent
            self._finish(flow, "idle_timeout")
        for key, ts in list(self._tombstones.items()):
            if now_ns - ts < _TOMBSTONE_NS:
                break
            del self._tombstones[key]

    def _finish(self, flow: Flow, reason: str, last: HalfStream | None = None) -> None:
        self.stats[reason] += 1
        del self._flows[flow.key]
        del self._by_conn[flow.conn]
        for half in (flow.first, flow.second):
            if self._halves.get(half.key) is half:
                del self._halves[half.key]
        self._tombstones[flow.key] = flow.last_ts_ns
        if len(self._tombstones) > _MAX_TOMBSTONES:
            del self._tombstones[next(iter(self._tombstones))]
        if flow.ignored:
            return
        for half in (flow.first, flow.second):
            while half.pending:
                self._skip_ahead(flow, half, flow.last_ts_ns)
        if flow.holder is not None:
            self._delivery.flush(flow)
        if not flow.emitted:
            return
        if last is None:
            last = next(
                (h for h in (flow.first, flow.second) if h.direction is Direction.EGRESS),
                flow.first,
            )
        self.out.append(
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
        self, flow: Flow, half: HalfStream, seq: int, payload: bytes, missing: int, ts_ns: int
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
            self._delivery.emit(flow, half, start, payload, missing, ts_ns)
            half.advance(end)
            return
        half.insert(start, start + len(payload), payload, self.stats)
        if missing:
            half.insert(start + len(payload), end, None, self.stats)
        self._drain(flow, half, ts_ns)
        settings = self.settings
        while half.pending and (
            half.pending_bytes > settings.max_pending_bytes
            or len(half.pending) > settings.max_pending_pieces
        ):
            self._skip_ahead(flow, half, ts_ns)

    def _drain(self, flow: Flow, half: HalfStream, ts_ns: int) -> None:
        for start, data, lost in half.take_ready():
            self._delivery.emit(flow, half, start, data, lost, ts_ns)

    def _skip_ahead(self, flow: Flow, half: HalfStream, ts_ns: int) -> None:
        self.stats["gap_bytes"] += half.skip_gap()
        self._drain(flow, half, ts_ns)


def _guess_client(payload: bytes, sender: HalfStream, receiver: HalfStream) -> HalfStream:
    """Pick the initiator of a flow whose handshake was not captured."""
    if payload.startswith(b"PRI * HTTP/2.0") or payload.split(b" ", 1)[0] in _HTTP_METHODS:
        return sender
    if payload.startswith(b"HTTP/1."):
        return receiver
    sport, dport = _PORTS.unpack_from(sender.key, len(sender.key) - 4)
    return sender if sport > dport else receiver
