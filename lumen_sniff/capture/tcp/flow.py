"""A TCP flow and its two sending halves (sequence numbers to offsets, out-of-order buffer).

A :class:`Flow` owns two :class:`HalfStream` objects and each half points back at
its flow: one idea, so one module (the reassembler and delivery both use it).

Strategy: a half maps 32-bit sequence numbers to a 64-bit stream offset;
offset 0 is the byte after the SYN, or the first byte seen when the capture
started mid-connection. Differences are taken modulo 2**32 as signed values,
so sequence wrap-around needs no special case. Bytes beyond the next expected
offset wait in ``pending``, a sorted list of non-overlapping pieces; the first
copy of a byte wins, so a later overlapping copy never replaces earlier bytes.
:meth:`HalfStream.take_ready` hands out the pieces that follow the delivered
bytes; :meth:`HalfStream.skip_gap` gives up on the hole before the first piece.

The half also holds the bytes that replay coalesces (``held``, from offset
``held_start`` to ``held_end``): consecutive in-order payloads that
:class:`~lumen_sniff.capture.tcp.delivery.Delivery` sends later as one Chunk.
Otherwise ``held_end`` is the offset after the last byte delivered.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Final

from lumen_sniff.capture.tcp.segments import reverse_key
from lumen_sniff.model import ConnKey, Direction

__all__ = ["SEQ_MASK", "Flow", "HalfStream", "Piece"]

SEQ_MASK: Final = (1 << 32) - 1
_SEQ_HALF: Final = 1 << 31
_SEQ_MOD: Final = 1 << 32

Piece = tuple[int, int, bytes | None]
"""(start offset, end offset, data); data None marks bytes a snap length cut off."""


class HalfStream:
    """One direction of a flow (see the module docstring)."""

    __slots__ = (
        "direction",
        "done",
        "fin_abs",
        "flow",
        "held",
        "held_end",
        "held_start",
        "held_ts_first",
        "held_ts_last",
        "isn",
        "key",
        "next_abs",
        "next_seq",
        "pending",
        "pending_bytes",
        "started",
    )

    def __init__(self, flow: Flow, key: bytes) -> None:
        self.flow = flow
        """The flow this half belongs to."""
        self.key = key
        """Directional key: source address, destination address, ports."""
        self.started = False
        self.isn: int | None = None
        self.next_seq = 0
        self.next_abs = 0
        self.fin_abs: int | None = None
        self.done = False
        self.direction = Direction.EGRESS
        self.pending: list[Piece] = []
        self.pending_bytes = 0
        self.held: list[bytes] = []
        self.held_start = 0
        self.held_end = 0
        self.held_ts_first = 0
        self.held_ts_last = 0

    def start(self, seq: int) -> None:
        """Make ``seq`` stream offset 0."""
        self.started = True
        self.next_seq = seq
        self.next_abs = 0

    def offset_of(self, seq: int) -> int:
        """Stream offset of sequence number ``seq`` (near the next expected one)."""
        delta = ((seq - self.next_seq + _SEQ_HALF) % _SEQ_MOD) - _SEQ_HALF
        return self.next_abs + delta

    def advance(self, new_abs: int) -> None:
        """Mark everything before offset ``new_abs`` delivered."""
        self.next_seq = (self.next_seq + new_abs - self.next_abs) & SEQ_MASK
        self.next_abs = new_abs

    def insert(self, start: int, end: int, data: bytes | None, stats: Counter[str]) -> None:
        """Buffer [start, end) minus what is already buffered (first copy wins)."""
        pending = self.pending
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
            stats["overlap_bytes"] += covered
        new = [(a, b, None if data is None else data[a - start : b - start]) for a, b in free]
        pending[i:j] = sorted([*pending[i:j], *new], key=lambda piece: piece[0])
        if data is not None:
            self.pending_bytes += end - start - covered

    def take_ready(self) -> list[tuple[int, bytes, int]]:
        """Pop the buffered pieces that now follow the delivered bytes.

        Returns:
            (offset, data, lost bytes after data) runs, in order; data after
            cut-off bytes starts a new run.
        """
        pending = self.pending
        runs: list[tuple[int, bytes, int]] = []
        taken = 0
        while taken < len(pending) and pending[taken][0] == self.next_abs:
            start = self.next_abs
            parts: list[bytes] = []
            lost = 0
            while taken < len(pending) and pending[taken][0] == self.next_abs:
                piece_start, piece_end, data = pending[taken]
                if data is None:
                    lost += piece_end - piece_start
                elif lost:
                    break
                else:
                    parts.append(data)
                    self.pending_bytes -= len(data)
                self.advance(piece_end)
                taken += 1
            runs.append((start, b"".join(parts), lost))
        del pending[:taken]
        return runs

    def skip_gap(self) -> int:
        """Give up on the hole before the first buffered piece; return its size."""
        gap = self.pending[0][0] - self.next_abs
        self.advance(self.pending[0][0])
        return gap


class Flow:
    """One TCP connection and its two halves."""

    __slots__ = (
        "coalesce", "conn", "emitted", "first", "foreign", "holder", "ignored", "key",
        "last_half", "last_ts_ns", "peer", "second", "settled",
    )  # fmt: skip

    def __init__(self, key: bytes, conn: ConnKey, sender_key: bytes) -> None:
        self.key = key
        """The smaller of the two directional keys."""
        self.conn = conn
        self.first = HalfStream(self, sender_key)
        """The half that sent the flow's first segment."""
        self.second = HalfStream(self, reverse_key(sender_key))
        self.settled = False
        """Which half is the client is known."""
        self.peer: tuple[str, int] | None = None
        self.last_ts_ns = 0
        self.emitted = False
        """Some bytes were delivered (or held): the flow's close is worth a Chunk."""
        self.ignored = False
        self.foreign = False
        """Another replay worker's: tracked, never reassembled."""
        self.holder: HalfStream | None = None
        """The half holding coalesced bytes, if any (never both)."""
        self.last_half: HalfStream | None = None
        """The half whose bytes went out last."""
        self.coalesce = True
        """Not HTTP/2: its bytes may be coalesced."""

    def other(self, half: HalfStream) -> HalfStream:
        """The opposite half of ``half``."""
        return self.second if half is self.first else self.first
