"""Socket records of ``bpf/lumen_sockets.bpf.c`` (``struct lumen_sock_event`` in
``bpf/lumen.h``), mirrored with ctypes and decoded. Pure: bytes in, a
:class:`SockEvent` out. ``tests/unit/test_bpf_layout.py`` checks the mirror
against the compiled header.
"""

from __future__ import annotations

import ctypes
import enum
import ipaddress
from dataclasses import dataclass

from lumen_sniff.capture.bpf.ringrecords import COMM_LEN

__all__ = [
    "HELLO_BYTES",
    "SOCK_COUNTERS",
    "SockEvent",
    "SockEventStruct",
    "SockKind",
    "SockOwnerStruct",
    "TupleStruct",
    "decode_sock_event",
]

HELLO_BYTES = 2048
"""LUMEN_HELLO_BYTES: ClientHello bytes copied per connection."""

SOCK_COUNTERS = ("connects", "hellos", "not_tls", "ringbuf_full", "unknown_owner")
"""Names of the ``lumen_sock_counts`` counters, in LUMEN_SOCK_* index order."""


class SockKind(enum.IntEnum):
    """``lumen_sock_event.kind`` (LUMEN_SOCK_*)."""

    HELLO = 1
    CLOSE = 2


class TupleStruct(ctypes.Structure):
    """``struct lumen_tuple``."""

    _fields_ = [  # noqa: RUF012 - ctypes wants a plain list
        ("saddr", ctypes.c_uint8 * 16),
        ("daddr", ctypes.c_uint8 * 16),
        ("sport", ctypes.c_uint16),
        ("dport", ctypes.c_uint16),
        ("pad", ctypes.c_uint32),
    ]


class SockOwnerStruct(ctypes.Structure):
    """``struct lumen_sock_owner``."""

    _fields_ = [  # noqa: RUF012
        ("ts_ns", ctypes.c_uint64),
        ("sock", ctypes.c_uint64),
        ("cgroup_id", ctypes.c_uint64),
        ("pid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("comm", ctypes.c_char * COMM_LEN),
    ]


class SockEventStruct(ctypes.Structure):
    """``struct lumen_sock_event``."""

    _fields_ = [  # noqa: RUF012
        ("ts_ns", ctypes.c_uint64),
        ("sock", ctypes.c_uint64),
        ("cgroup_id", ctypes.c_uint64),
        ("bytes_sent", ctypes.c_uint64),
        ("bytes_received", ctypes.c_uint64),
        ("tuple", TupleStruct),
        ("pid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("data_len", ctypes.c_uint32),
        ("kind", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 3),
        ("comm", ctypes.c_char * COMM_LEN),
        ("data", ctypes.c_uint8 * HELLO_BYTES),
    ]


@dataclass(frozen=True, kw_only=True, slots=True)
class SockEvent:
    """A decoded socket record."""

    kind: SockKind
    """HELLO (a new connection's ClientHello) or CLOSE (it left ESTABLISHED)."""
    ts_ns: int
    """Kernel monotonic time."""
    sock: int
    """Kernel socket address: pairs a HELLO with its CLOSE."""
    pid: int
    """tgid of the process that connected."""
    uid: int
    """Its real uid."""
    cgroup_id: int
    """Its cgroup v2 id."""
    comm: str
    """Its leader's comm."""
    src: tuple[str, int]
    """Local address and port (IPv4 shown as a.b.c.d)."""
    dst: tuple[str, int]
    """Remote address and port."""
    bytes_sent: int = 0
    """CLOSE: payload bytes sent over the connection's life."""
    bytes_received: int = 0
    """CLOSE: payload bytes received."""
    hello: bytes = b""
    """HELLO: the start of the ClientHello TLS record."""


def _addr(raw: bytes) -> str:
    ip = ipaddress.IPv6Address(raw)
    mapped = ip.ipv4_mapped
    return str(mapped if mapped is not None else ip)


def decode_sock_event(buf: bytes) -> SockEvent | None:
    """Decode one ``lumen_sockets`` record.

    Args:
        buf: The record as the ring buffer delivered it.

    Returns:
        The event, or None when the record is short or of an unknown kind.
    """
    if len(buf) < ctypes.sizeof(SockEventStruct):
        return None
    s = SockEventStruct.from_buffer_copy(buf)
    try:
        kind = SockKind(s.kind)
    except ValueError:
        return None
    t = s.tuple
    return SockEvent(
        kind=kind,
        ts_ns=s.ts_ns,
        sock=s.sock,
        pid=s.pid,
        uid=s.uid,
        cgroup_id=s.cgroup_id,
        comm=s.comm.decode("utf-8", "replace"),
        src=(_addr(bytes(t.saddr)), t.sport),
        dst=(_addr(bytes(t.daddr)), t.dport),
        bytes_sent=s.bytes_sent,
        bytes_received=s.bytes_received,
        hello=bytes(s.data[: min(s.data_len, HELLO_BYTES)]),
    )
