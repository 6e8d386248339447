"""Frames whose body is read whole: header blocks, SETTINGS, RST_STREAM, GOAWAY.

hyperframe parses the bodies (a sniffer reuses a library's frame layer, never
its connection state machine); what each frame means for the streams and the
HPACK tables is applied here.
"""

from __future__ import annotations

from hyperframe.exceptions import HyperframeError
from hyperframe.frame import (
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
)

from lumen_sniff.model import Role
from lumen_sniff.protocol.http2.frames import (
    CONTINUATION,
    FLAG_ACK,
    GOAWAY,
    HEADERS,
    LARGEST_FRAME,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
)
from lumen_sniff.protocol.http2.side import FrameSide
from lumen_sniff.protocol.http2.streams import StreamTable

__all__ = ["read_frame"]


def read_frame(
    side: FrameSide, other: FrameSide, streams: StreamTable, body: memoryview, ts: int
) -> bool:
    """Apply the whole frame ``side`` is on (its header fields are on ``side``).

    Args:
        side: The sending direction.
        other: The other direction (SETTINGS apply to what it may send).
        streams: The connection's stream table.
        body: The frame's payload.
        ts: Capture time.

    Returns:
        False when the frame is malformed (nothing was applied).
    """
    ftype, flags, sid = side.ftype, side.flags, side.sid
    frame: Frame
    try:
        if ftype == HEADERS:
            frame = HeadersFrame(sid)
            frame.parse_flags(flags)
            frame.parse_body(body)
            side.blocks.fragment(sid, flags, side.frame_ts, frame.data, ts, push=False)
        elif ftype == PUSH_PROMISE:
            frame = PushPromiseFrame(sid)
            frame.parse_flags(flags)
            frame.parse_body(body)
            streams.promise(frame.promised_stream_id, ts)
            side.blocks.fragment(sid, flags, side.frame_ts, frame.data, ts, push=True)
        elif ftype == CONTINUATION:
            side.blocks.fragment(sid, flags, side.frame_ts, body.tobytes(), ts, push=False)
        elif ftype == SETTINGS:
            if not flags & FLAG_ACK:
                frame = SettingsFrame(0)
                frame.parse_body(body)
                _settings(other, frame.settings)
        elif ftype == RST_STREAM:
            frame = RstStreamFrame(sid)
            frame.parse_body(body)
            streams.reset(sid, ts)
        elif ftype == GOAWAY:
            frame = GoAwayFrame(0)
            frame.parse_body(body)
            if side.role is Role.RESPONSE:
                streams.goaway(frame.last_stream_id, ts)
    except (HyperframeError, ValueError, IndexError):
        return False
    return True


def _settings(other: FrameSide, settings: dict[int, int]) -> None:
    """SETTINGS bound what the *other* side may send: its HPACK table and frame size."""
    for key, value in settings.items():
        if key == SettingsFrame.HEADER_TABLE_SIZE:
            other.blocks.hpack.announce_table_size(value)
        elif key == SettingsFrame.MAX_FRAME_SIZE and other.max_frame_bytes < value:
            other.max_frame_bytes = min(value, LARGEST_FRAME)
