"""TCP flows and how their bytes leave the reassembler: at once, or coalesced.

Strategy (coalescing, for replay: ``window_ns`` > 0)
---------------------------------------------------
The pipeline's cost is per Chunk, and a streamed response is one small TCP
segment per token, so replay joins consecutive in-order segments of one
direction into one Chunk. The pipeline is split-invariant, so the bytes it
sees make the same events; only times could move, and the rules keep them:

* the first bytes of a *burst* (a direction's payload after the other
  direction spoke, or after a gap or cut-off bytes) go out at once with their
  own timestamp, so request and response heads keep their exact times;
* later consecutive bytes of that direction are *held* and go out as one Chunk
  stamped with the time of the *last* segment, so the end of a response keeps
  its exact time too;
* held bytes go out before the other direction's bytes (so at most one half of
  a flow holds bytes and the two directions stay in order), before non-adjacent
  or cut-off bytes, at FIN, RST, eviction, idle timeout and end of capture, and
  when the run would span more than ``window_ns`` or ``max_bytes``.

For HTTP/1.1 every head starts a burst and every message ends one, so events
are identical. HTTP/2 (cleartext: its client preface was seen) is not
coalesced at all: its streams interleave, and one that ends while another
keeps sending would end in the middle of a held run, at a later time. Only
HTTP/2 whose preface was not captured and HTTP/1.1 pipelining (a message sent
right behind the previous one, in the same burst) can still see a time move
later, by less than the window. At most ``_MAX_HOLDING_FLOWS`` flows hold bytes at once (the
one holding longest is flushed first), which bounds the memory coalescing takes.
"""

from __future__ import annotations

from typing import Final

from lumen_sniff.capture.tcp.flow import Flow, HalfStream
from lumen_sniff.model import Chunk

__all__ = ["Delivery"]

_MAX_HOLDING_FLOWS: Final = 1024
_H2_PREFACE: Final = b"PRI * HTTP/2.0"


class Delivery:
    """Turns delivered byte runs into Chunks on ``out``, coalescing if asked."""

    def __init__(self, window_ns: int, max_bytes: int) -> None:
        """Deliver every run at once (``window_ns`` 0) or coalesce them.

        Args:
            window_ns: capture time one coalesced Chunk may span.
            max_bytes: bytes one coalesced Chunk may hold.
        """
        self.out: list[Chunk] = []
        """Chunks ready for the caller, in delivery order."""
        self.window_ns = window_ns
        self.max_bytes = max_bytes
        self._holding: dict[Flow, None] = {}

    def emit(
        self, flow: Flow, half: HalfStream, start: int, data: bytes, lost: int, ts_ns: int
    ) -> None:
        """Deliver ``data`` (offset ``start``), followed by ``lost`` uncaptured bytes.

        ``TcpReassembler.feed_tcp`` inlines the first branch for its hot path.
        """
        flow.emitted = True
        if data.startswith(_H2_PREFACE):  # at a burst's start: after an Upgrade too
            flow.coalesce = False
        if self.window_ns > 0 and flow.coalesce:
            holder = flow.holder
            if holder is not None:
                if (
                    holder is half
                    and not lost
                    and start == half.held_end
                    and ts_ns - half.held_ts_first <= self.window_ns
                    and start + len(data) - half.held_start <= self.max_bytes
                ):
                    half.held.append(data)
                    half.held_end += len(data)
                    half.held_ts_last = ts_ns
                    return
                self.flush(flow)
            if flow.last_half is half and start == half.held_end and data and not lost:
                holding = self._holding
                if len(holding) >= _MAX_HOLDING_FLOWS:
                    self.flush(next(iter(holding)))
                half.held.append(data)
                half.held_start = start
                half.held_end = start + len(data)
                half.held_ts_first = half.held_ts_last = ts_ns
                flow.holder = half
                holding[flow] = None
                return
            flow.last_half = half
            half.held_end = start + len(data) + lost
        self.out.append(
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

    def flush(self, flow: Flow) -> None:
        """Deliver the bytes ``flow`` holds, if any, as one Chunk."""
        half = flow.holder
        if half is None:
            return
        held = half.held
        self.out.append(
            Chunk(
                conn=flow.conn,
                direction=half.direction,
                offset=half.held_start,
                ts_ns=half.held_ts_last,
                data=held[0] if len(held) == 1 else b"".join(held),
                peer=flow.peer,
            )
        )
        half.held = []
        flow.holder = None
        del self._holding[flow]

    def drop(self, flow: Flow) -> None:
        """Forget the bytes ``flow`` holds (it is being ignored)."""
        half = flow.holder
        if half is not None:
            half.held = []
            flow.holder = None
            del self._holding[flow]
