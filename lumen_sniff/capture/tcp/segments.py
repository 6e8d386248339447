"""Link, IP and TCP header parsing for captured frames: bytes in, a Segment out.

Strategy: one function per layer, each reading fixed offsets with
``struct.unpack_from`` on the frame as captured, with no copies but the final
payload slice. scapy's own dissectors build a Python object per layer and per
field, which costs more than the whole of reassembly; here a frame costs a few
unpacks. Anything that is not a TCP segment comes back as a short reason string
(the caller counts it) instead of raising: a capture is full of ARP, UDP, ICMP
and frames cut short by the snap length.

Link types are the ``LINKTYPE_*`` values of pcap files and libpcap, which match
``DLT_*`` except for raw IP (DLT 12/14 on some systems, LINKTYPE 101 in files).
"""

from __future__ import annotations

import mmap
import socket
import struct
from typing import NamedTuple, TypeAlias

__all__ = [
    "ACK",
    "ETHERNET_IPV4_TCP",
    "FIN",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "RST",
    "SUPPORTED_LINKTYPES",
    "SYN",
    "Segment",
    "TcpFields",
    "directional_key",
    "format_addr",
    "parse_frame",
    "reverse_key",
    "sender_of",
    "tcp_fields",
]

LINKTYPE_NULL = 0
"""BSD loopback: 4-byte address family in the capturing host's byte order."""
LINKTYPE_ETHERNET = 1
"""Ethernet II, optionally with 802.1Q / 802.1ad VLAN tags."""
LINKTYPE_RAW = 101
"""Raw IPv4 or IPv6, no link header."""
LINKTYPE_LOOP = 108
"""OpenBSD loopback: 4-byte address family in network byte order."""
LINKTYPE_LINUX_SLL = 113
"""Linux cooked capture v1 (16-byte header), what ``-i any`` gives."""
LINKTYPE_IPV4 = 228
"""Raw IPv4 only."""
LINKTYPE_IPV6 = 229
"""Raw IPv6 only."""
LINKTYPE_LINUX_SLL2 = 276
"""Linux cooked capture v2 (20-byte header)."""

Buffer: TypeAlias = "bytes | mmap.mmap"

_DLT_RAW_ALIASES = (12, 14)
"""DLT_RAW as some platforms number it in live captures."""

SUPPORTED_LINKTYPES = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_RAW,
        LINKTYPE_LOOP,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL2,
        *_DLT_RAW_ALIASES,
    }
)
"""Every link type :func:`parse_frame` understands."""

FIN = 0x01
SYN = 0x02
RST = 0x04
ACK = 0x10

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN = (0x8100, 0x88A8, 0x9100)
_AF_INET6 = (10, 24, 28, 30)
"""AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD and macOS: a capture may come from any."""
_IPPROTO_TCP = 6
_IPV6_EXT_HEADERS = (0, 43, 60)
"""Hop-by-hop, routing and destination options: skipped to reach TCP."""
_IPV6_FRAGMENT = 44

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_TCP_HEAD = struct.Struct("!HHIIBB")
_PORTS = struct.Struct("!HH")
ETHERNET_IPV4_TCP = struct.Struct("!12xHBxH2xHxB2x12xI4xBB")
"""From an Ethernet frame's start: ethertype, IPv4 version/IHL, total length,
fragment field, protocol, then TCP sequence, data offset and flags, assuming a
20-byte IP header (IHL 5). The key is then bytes 26-38, TCP starts at 34."""
_IPV4_TCP = struct.Struct("!BxH2xHxB2x12xI4xBB")
"""The same fields from the start of the IP header."""
_RAW_LINKTYPES = frozenset({LINKTYPE_RAW, LINKTYPE_IPV4, *_DLT_RAW_ALIASES})

TcpFields = tuple[bytes, int, int, bytes, int]
"""``(directional key, seq, flags, payload, missing bytes)``: a Segment, flat."""


class Segment(NamedTuple):
    """One TCP segment as captured.

    A NamedTuple rather than a frozen dataclass: it is built once per packet on
    the capture hot path, where a tuple costs a third of a dataclass.
    """

    src: bytes
    """Source address, 4 (IPv4) or 16 (IPv6) bytes."""
    dst: bytes
    """Destination address, same family as ``src``."""
    sport: int
    """Source port."""
    dport: int
    """Destination port."""
    seq: int
    """Sequence number of the first payload byte (or of the SYN/FIN)."""
    flags: int
    """TCP flags byte (FIN, SYN, RST, ACK…)."""
    payload: bytes
    """Payload bytes that were captured."""
    missing_bytes: int = 0
    """Payload bytes the IP header announced but the snap length cut off."""


def directional_key(src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    """The key of one sending side of a flow: addresses then ports, as on the wire.

    For IPv4 and IPv6 without options or extension headers these are
    consecutive bytes of the packet (the addresses end the IP header, the ports
    start TCP), so :func:`tcp_fields` slices the key straight out of a frame.
    """
    return src + dst + _PORTS.pack(sport, dport)


def tcp_fields(linktype: int, buf: Buffer, start: int, end: int) -> TcpFields | str:
    """:func:`parse_frame` for the frame ``buf[start:end]``, flattened for replay.

    IPv4 without options on Ethernet, Linux cooked capture and raw IP (nearly
    every frame of a capture) is read with one ``unpack_from`` and two slices,
    in place; anything else goes through :func:`parse_frame`.

    Returns:
        The segment's :data:`TcpFields`, or parse_frame's reason string.
    """
    # The buffer may go on past ``end`` (the next record): check the length
    # before reading fixed offsets.
    if linktype == LINKTYPE_ETHERNET and start + ETHERNET_IPV4_TCP.size <= end:
        ethertype, vihl, total, frag, proto, seq, data_offset, flags = (
            ETHERNET_IPV4_TCP.unpack_from(buf, start)
        )
        ip = start + 14
        fast = ethertype == _ETH_IPV4
    elif linktype == LINKTYPE_LINUX_SLL or linktype in _RAW_LINKTYPES:
        ip = start + 16 if linktype == LINKTYPE_LINUX_SLL else start
        fast = ip + _IPV4_TCP.size <= end and (
            ip == start or _U16.unpack_from(buf, start + 14)[0] == _ETH_IPV4
        )
        if fast:
            vihl, total, frag, proto, seq, data_offset, flags = _IPV4_TCP.unpack_from(buf, ip)
    else:
        fast = False
    if not fast or vihl != 0x45 or proto != _IPPROTO_TCP or frag & 0x3FFF:
        return _slow_fields(linktype, bytes(buf[start:end]))
    ip_end = ip + total if total else end
    payload_start = ip + 20 + (data_offset >> 4) * 4
    if payload_start > ip_end:
        return "truncated"
    if ip_end <= end:
        return buf[ip + 12 : ip + 24], seq, flags, buf[payload_start:ip_end], 0
    payload = buf[payload_start:end] if payload_start < end else b""
    return buf[ip + 12 : ip + 24], seq, flags, payload, ip_end - payload_start - len(payload)


def _slow_fields(linktype: int, frame: bytes) -> TcpFields | str:
    seg = parse_frame(linktype, frame)
    if isinstance(seg, str):
        return seg
    key = directional_key(seg.src, seg.dst, seg.sport, seg.dport)
    return key, seg.seq, seg.flags, seg.payload, seg.missing_bytes


def format_addr(addr: bytes) -> str:
    """Render a 4- or 16-byte address the usual way ("127.0.0.1", "::1")."""
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


def parse_frame(linktype: int, frame: bytes) -> Segment | str:
    """Parse one captured frame down to its TCP segment.

    Args:
        linktype: the capture's LINKTYPE_* (per interface for pcapng).
        frame: the frame as captured, link header first.

    Returns:
        The segment, or a reason string for frames that carry no usable TCP:
        ``"linktype"``, ``"not_ip"``, ``"not_tcp"``, ``"fragment"``,
        ``"truncated"``.
    """
    try:
        if linktype == LINKTYPE_ETHERNET:
            ethertype = _U16.unpack_from(frame, 12)[0]
            offset = 14
            while ethertype in _ETH_VLAN:
                ethertype = _U16.unpack_from(frame, offset + 2)[0]
                offset += 4
            return _parse_l3(ethertype, frame, offset)
        if linktype == LINKTYPE_LINUX_SLL:
            return _parse_l3(_U16.unpack_from(frame, 14)[0], frame, 16)
        if linktype == LINKTYPE_LINUX_SLL2:
            return _parse_l3(_U16.unpack_from(frame, 0)[0], frame, 20)
        if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            return _parse_l3(_loop_ethertype(frame), frame, 4)
        if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, *_DLT_RAW_ALIASES):
            version = frame[0] >> 4
            return _parse_l3(_ETH_IPV6 if version == 6 else _ETH_IPV4, frame, 0)
    except (struct.error, IndexError):
        return "truncated"
    return "linktype"


def _loop_ethertype(frame: bytes) -> int:
    # The family is in the capturing host's byte order for DLT_NULL, so read it
    # both ways: the families are small numbers, the other order is huge.
    family = frame[0] | frame[1] << 8 | frame[2] << 16 | frame[3] << 24
    if family > 0xFFFF:
        family = _U32.unpack_from(frame, 0)[0]
    if family == 2:
        return _ETH_IPV4
    if family in _AF_INET6:
        return _ETH_IPV6
    return 0


def _parse_l3(ethertype: int, frame: bytes, offset: int) -> Segment | str:
    if ethertype == _ETH_IPV4:
        first = frame[offset]
        if first >> 4 != 4:
            return "not_ip"
        header_len = (first & 0x0F) * 4
        total_len = _U16.unpack_from(frame, offset + 2)[0]
        if _U16.unpack_from(frame, offset + 6)[0] & 0x3FFF:
            return "fragment"  # MF set or a non-zero fragment offset
        if frame[offset + 9] != _IPPROTO_TCP:
            return "not_tcp"
        src = frame[offset + 12 : offset + 16]
        dst = frame[offset + 16 : offset + 20]
        if len(dst) != 4:
            return "truncated"
        # total_len 0 is TSO on the capturing host: trust the captured length.
        end = offset + total_len if total_len else len(frame)
        return _parse_tcp(src, dst, frame, offset + header_len, end)
    if ethertype == _ETH_IPV6:
        if frame[offset] >> 4 != 6:
            return "not_ip"
        payload_len = _U16.unpack_from(frame, offset + 4)[0]
        next_header = frame[offset + 6]
        src = frame[offset + 8 : offset + 24]
        dst = frame[offset + 24 : offset + 40]
        if len(dst) != 16:
            return "truncated"
        end = offset + 40 + payload_len if payload_len else len(frame)
        offset += 40
        while next_header in _IPV6_EXT_HEADERS:
            next_header = frame[offset]
            offset += (frame[offset + 1] + 1) * 8
        if next_header == _IPV6_FRAGMENT:
            return "fragment"
        if next_header != _IPPROTO_TCP:
            return "not_tcp"
        return _parse_tcp(src, dst, frame, offset, end)
    return "not_ip"


def _parse_tcp(src: bytes, dst: bytes, frame: bytes, offset: int, end: int) -> Segment | str:
    sport, dport, seq, _ack, data_offset, flags = _TCP_HEAD.unpack_from(frame, offset)
    start = offset + (data_offset >> 4) * 4
    if start > end:
        return "truncated"
    payload = frame[start:end]
    # Ethernet pads short frames, hence the slice to ``end``; a snap length
    # cuts long ones, which is what ``missing`` counts.
    missing = end - start - len(payload)
    return Segment(src, dst, sport, dport, seq, flags, payload, missing)


def reverse_key(key: bytes) -> bytes:
    """The directional key of the other side of the same flow."""
    n = (len(key) - 4) // 2
    return key[n : 2 * n] + key[:n] + key[2 * n + 2 :] + key[2 * n : 2 * n + 2]


def sender_of(key: bytes) -> tuple[str, int]:
    """(address, port) of the side a directional key sends from."""
    n = (len(key) - 4) // 2
    return format_addr(key[:n]), _PORTS.unpack_from(key, 2 * n)[0]
