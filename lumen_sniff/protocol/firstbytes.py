"""What a connection's first bytes are: HTTP/1 (either side), HTTP/2, other text, binary.

Pure functions used by :mod:`lumen_sniff.protocol.tracker` before a parser is
chosen (see the table in its docstring).
"""

from __future__ import annotations

import re

__all__ = [
    "BINARY",
    "H1_REQUEST",
    "H1_RESPONSE",
    "H2",
    "H2_MID",
    "H2_PREFACE",
    "PROBE_LIMIT_BYTES",
    "TEXT",
    "classify",
]

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
H1_REQUEST, H2, H2_MID, TEXT, BINARY = "h1_request", "h2", "h2_mid", "text", "binary"
H1_RESPONSE = "h1_response"
"""The kinds :func:`classify` tells apart."""


def classify(held: bytes) -> str | None:
    """What the first bytes of a direction are; None while more are needed to tell.

    Args:
        held: The first bytes of one direction of a connection.

    Returns:
        One of the kinds above, or None while the bytes could still become more
        than one of them.
    """
    head = held[:24]
    if H2_PREFACE.startswith(head):
        return H2 if len(head) == 24 else None
    if _REQUEST_START.match(held):
        return H1_REQUEST
    if held.startswith(b"HTTP/1."):
        return H1_RESPONSE
    if b"HTTP/1.".startswith(held[:7]) or _REQUEST_PREFIX.fullmatch(held[:21]):
        return None  # could still become a start line
    if len(held) < 9:
        return None
    if _plausible_frame(held):
        return H2_MID
    return BINARY if _BINARY.search(held, 0, 256) else TEXT


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
