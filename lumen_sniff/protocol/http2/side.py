"""One direction of an HTTP/2 connection: its framing state (see :mod:`.parser`)."""

from __future__ import annotations

from lumen_sniff.model import Role
from lumen_sniff.protocol.http2.frames import DEFAULT_MAX_FRAME
from lumen_sniff.protocol.http2.headerblocks import HeaderBlocks
from lumen_sniff.protocol.http2.streams import Message

__all__ = ["FrameSide"]


class FrameSide:
    """One direction's framing state."""

    __slots__ = (
        "blocks", "buf", "counting", "end_stream", "flags", "frame_ts", "ftype", "max_frame_bytes",
        "pad", "preface_pos", "remaining", "replay", "role", "sid", "skipped", "state", "target",
    )

    def __init__(self, role: Role, state: int, blocks: HeaderBlocks) -> None:
        self.role = role
        self.state = state
        self.blocks = blocks
        """Header block assembly and this direction's HPACK decoder."""
        self.buf = bytearray()
        """Partial frame header, partial BODY, or the bytes being scanned in SYNC."""
        self.remaining = 0
        """Bytes left in the current state (DATA payload, BODY, SKIP)."""
        self.pad = 0
        self.ftype = self.flags = self.sid = 0
        self.frame_ts = 0
        self.end_stream = False
        self.target: Message | None = None
        """The message the current DATA frame feeds."""
        self.counting = False
        """The current DATA frame's payload is counted as dropped, not emitted.

        Decided when the frame starts (or the loss happens), never by where a
        chunk ends, so the counts do not depend on chunking."""
        self.max_frame_bytes = DEFAULT_MAX_FRAME
        """Largest frame the receiver announced it accepts (used to resync)."""
        self.preface_pos = 0
        self.skipped = 0
        """Bytes ruled out while in SYNC, not yet reported."""
        self.replay: bytes | None = None
        """Bytes to parse again after SYNC found a boundary."""
