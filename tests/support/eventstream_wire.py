"""Encode AWS eventstream messages (test side: the stand-in's Bedrock streams, framer tests).

The layout is in :mod:`lumen_sniff.protocol.eventstream`; this writes string
headers only, which is all Bedrock sends.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["encode_message", "event"]


def encode_message(headers: list[tuple[str, str]], payload: bytes) -> bytes:
    """One message with string headers, CRCs included."""
    hbytes = b""
    for name, value in headers:
        n, v = name.encode(), value.encode()
        hbytes += bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 12 + len(hbytes) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hbytes))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + hbytes + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(event_type: str, payload: bytes) -> bytes:
    """A Bedrock event message (``:message-type: event``, JSON payload)."""
    return encode_message(
        [(":event-type", event_type), (":content-type", "application/json"),
         (":message-type", "event")],
        payload,
    )
