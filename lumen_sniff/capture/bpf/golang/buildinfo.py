"""The Go version a binary was built with, from its ``.go.buildinfo`` blob.

Layout (``debug/buildinfo``): the 14-byte magic ``\\xff Go buildinf:``, a
pointer-size byte, a flags byte, then either (flag bit 1, Go 1.18+) the version
as a varint-prefixed string at offset 32, or (Go 1.13 to 1.17) a pointer to a Go
string header ``(data pointer, length)`` at offset 16, which the caller resolves
through the ELF segments. Pure: bytes in, a version out.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

__all__ = ["BUILDINFO_MAGIC", "go_version", "version_tuple"]

BUILDINFO_MAGIC = b"\xff Go buildinf:"
"""First bytes of the ``.go.buildinfo`` section."""

_FLAG_INLINE = 0x2
_VERSION_RE = re.compile(r"go1\.(\d+)")


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("bad varint in buildinfo")


def go_version(blob: bytes, read: Callable[[int, int], bytes | None]) -> str | None:
    """The version string (``go1.19.8``) of a ``.go.buildinfo`` blob.

    Args:
        blob: The section's bytes (at least its first 32 bytes, more when inline).
        read: ``read(vaddr, size)`` → bytes at a virtual address of the same
            binary, or None; used by the pre-1.18 pointer layout.

    Returns:
        The version, or None when the blob is not understood.
    """
    if not blob.startswith(BUILDINFO_MAGIC) or len(blob) < 32:
        return None
    ptr_size, flags = blob[14], blob[15]
    try:
        if flags & _FLAG_INLINE:
            size, pos = _uvarint(blob, 32)
            raw = blob[pos : pos + size]
        else:
            if ptr_size != 8 or flags & 0x1:  # big-endian or 32-bit: not amd64
                return None
            (header_addr,) = struct.unpack_from("<Q", blob, 16)
            header = read(header_addr, 16)
            if header is None:
                return None
            data_addr, size = struct.unpack("<QQ", header)
            if not 0 < size < 128:
                return None
            raw = read(data_addr, size) or b""
        text = raw.decode("ascii")
    except (ValueError, UnicodeDecodeError, struct.error):
        return None
    return text if text.startswith(("go1", "devel")) else None


def version_tuple(version: str) -> tuple[int, int] | None:
    """``go1.19.8`` → (1, 19); ``devel go1.23-abc`` → (1, 23); else None."""
    match = _VERSION_RE.search(version)
    return (1, int(match.group(1))) if match else None
