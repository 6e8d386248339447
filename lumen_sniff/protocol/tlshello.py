"""The server name (SNI) of a TLS ClientHello, from the start of the connection's bytes.

Strategy: the blind-spot report needs only the host a client asked for, from
the first TLS record it sent (RFC 8446 §4.1.2, RFC 6066 §3). The walk is
bounds-checked at every length field: a truncated or malformed hello gives
None, never an exception. Only the first record is read: a ClientHello split
over several records (rare, > 16 KiB) or cut by the copy limit before its
server_name extension has no name here, and the caller counts that.
"""

from __future__ import annotations

__all__ = ["client_hello_sni"]

_HANDSHAKE = 22
_CLIENT_HELLO = 1
_SERVER_NAME = 0
_HOST_NAME = 0


def client_hello_sni(data: bytes) -> str | None:
    """The host_name of the server_name extension of a ClientHello record.

    Args:
        data: Bytes from the start of a TLS connection (client to server).

    Returns:
        The name, lower case (ASCII), or None when there is none or it is cut off.
    """
    if len(data) < 9 or data[0] != _HANDSHAKE or data[5] != _CLIENT_HELLO:
        return None
    end = min(len(data), 5 + int.from_bytes(data[3:5], "big"))
    # record header 5, handshake header 4, legacy_version 2, random 32
    pos = 5 + 4 + 2 + 32
    for width in (1, 2, 1):  # session id, cipher suites, compression methods
        if pos + width > end:
            return None
        pos += width + int.from_bytes(data[pos : pos + width], "big")
    if pos + 2 > end:
        return None
    ext_end = min(end, pos + 2 + int.from_bytes(data[pos : pos + 2], "big"))
    pos += 2
    while pos + 4 <= ext_end:
        kind = int.from_bytes(data[pos : pos + 2], "big")
        size = int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 4
        if kind == _SERVER_NAME:
            return _host_name(data[pos : min(pos + size, ext_end)])
        pos += size
    return None


def _host_name(ext: bytes) -> str | None:
    pos, end = 2, min(len(ext), 2 + int.from_bytes(ext[:2], "big"))
    while pos + 3 <= end:
        kind, size = ext[pos], int.from_bytes(ext[pos + 1 : pos + 3], "big")
        pos += 3
        if pos + size > end:
            return None
        if kind == _HOST_NAME:
            try:
                return ext[pos : pos + size].decode("ascii").lower().rstrip(".") or None
            except UnicodeDecodeError:
                return None
        pos += size
    return None
