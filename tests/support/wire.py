"""Where the recorded API responses live: fixtures/wire/ (a copy of shared/wire/).

The copy keeps the repository self-contained: CI and a fresh clone need nothing
beside it. ``fixtures/wire/INDEX.md`` says where each file came from.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

__all__ = ["WIRE_DIR", "request_samples", "wire_response"]

WIRE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "wire"


def wire_response(name: str) -> tuple[list[bytes], bytes, int, int]:
    """A recorded response re-framed as the server sent it.

    Returns (writes, decoded body, status, number of body units): the head is the
    first write, then one write per SSE event (or 700-byte slice of JSON), each
    gzip-flushed and chunk-framed when the head says so.
    """
    raw = (WIRE_DIR / name).read_bytes()
    data = b"\n".join(line for line in raw.split(b"\n") if not line.startswith(b"#"))
    head, text = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    lower = [line.lower() for line in lines]
    gz = b"content-encoding: gzip" in lower
    chunked = b"transfer-encoding: chunked" in lower
    lines = [
        b"Content-Length: %d" % len(text) if line.lower().startswith(b"content-length:") else line
        for line in lines
    ]
    if b"text/event-stream" in head.lower() and text.lstrip().startswith((b"data:", b"event:")):
        units = [u for u in re.split(rb"(?<=\n\n)|(?<=\r\n\r\n)", text) if u]
    else:
        units = [text[i : i + 700] for i in range(0, len(text), 700)]
    assert b"".join(units) == text
    if gz:
        z = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        coded = [z.compress(u) + z.flush(zlib.Z_SYNC_FLUSH) for u in units]
        coded[-1] += z.flush()
    else:
        coded = list(units)
    if chunked:
        coded = [b"%x\r\n%s\r\n" % (len(u), u) for u in coded]
        coded[-1] += b"0\r\n\r\n"
    status = int(lines[0].split()[1])
    return [b"\r\n".join(lines) + b"\r\n\r\n", *coded], text, status, len(units)


def request_samples() -> list[bytes]:
    """The exact request heads (plus bodies) the SDKs sent, CRLF restored."""
    out = []
    text = (WIRE_DIR / "request_python_sdks.txt").read_bytes()
    for block in text.split(b"\n--- ")[1:]:
        lines = [x for x in block.split(b"\n")[1:] if not x.startswith(b"#")]
        start = next(i for i, x in enumerate(lines) if x.startswith(b"POST "))
        blank = lines.index(b"", start)
        length = next(
            int(x.split(b":")[1])
            for x in lines[start:blank]
            if x.lower().startswith(b"content-length")
        )
        content = lines[blank + 1]
        assert len(content) == length
        out.append(b"\r\n".join(lines[start:blank]) + b"\r\n\r\n" + content)
    return out
