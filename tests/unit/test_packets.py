"""Link, IP and TCP header parsing on hand-built frames."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.capture.tcp.segments import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Segment,
    TcpFields,
    directional_key,
    format_addr,
    parse_frame,
    tcp_fields,
)
from tests.support.make_pcaps import ACK, PSH, SYN, frame, ipv4_tcp, ipv6_tcp

V4 = ipv4_tcp("10.0.0.1", "10.0.0.2", 40000, 11434, 123456, PSH | ACK, b"GET / HTTP/1.1\r\n\r\n")
V6 = ipv6_tcp("fd00::1", "::1", 40000, 8000, 2**32 - 3, SYN, b"hello")

EXPECTED_V4 = Segment(
    bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 40000, 11434, 123456, PSH | ACK,
    b"GET / HTTP/1.1\r\n\r\n", 0,
)  # fmt: skip


@pytest.mark.parametrize(
    "linktype",
    [LINKTYPE_ETHERNET, LINKTYPE_NULL, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,
     LINKTYPE_RAW, 228, 12],
)  # fmt: skip
def test_every_link_type_reaches_the_same_ipv4_segment(linktype: int) -> None:
    packet = frame(228 if linktype == 12 else linktype, V4)
    assert parse_frame(linktype, packet) == EXPECTED_V4


@pytest.mark.parametrize(
    "linktype", [LINKTYPE_ETHERNET, LINKTYPE_NULL, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL,
                 LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, 229]
)  # fmt: skip
def test_ipv6_with_extension_header(linktype: int) -> None:
    seg = parse_frame(linktype, frame(linktype, V6))
    assert isinstance(seg, Segment)
    assert format_addr(seg.src) == "fd00::1"
    assert format_addr(seg.dst) == "::1"
    assert (seg.sport, seg.dport, seg.seq, seg.flags, seg.payload) == (
        40000, 8000, 2**32 - 3, SYN, b"hello"
    )  # fmt: skip


def test_vlan_tag_is_skipped() -> None:
    assert parse_frame(LINKTYPE_ETHERNET, frame(LINKTYPE_ETHERNET, V4, vlan=True)) == EXPECTED_V4


def test_big_endian_dlt_null_family() -> None:
    packet = bytes([0, 0, 0, 2]) + V4  # written on a big-endian host
    assert parse_frame(LINKTYPE_NULL, packet) == EXPECTED_V4


def test_ethernet_padding_is_not_payload() -> None:
    tiny = ipv4_tcp("10.0.0.1", "10.0.0.2", 1, 2, 7, ACK, b"x")
    seg = parse_frame(LINKTYPE_ETHERNET, frame(LINKTYPE_ETHERNET, tiny) + bytes(12))
    assert isinstance(seg, Segment)
    assert (seg.payload, seg.missing_bytes) == (b"x", 0)


def test_snaplen_cut_is_counted_as_missing() -> None:
    seg = parse_frame(LINKTYPE_RAW, V4[:-5])
    assert isinstance(seg, Segment)
    assert (seg.payload, seg.missing_bytes) == (b"GET / HTTP/1.", 5)


def test_format_addr_v4() -> None:
    assert format_addr(bytes([127, 0, 0, 1])) == "127.0.0.1"


@pytest.mark.parametrize(
    ("linktype", "packet", "reason"),
    [
        (LINKTYPE_RAW, ipv4_tcp("1.1.1.1", "2.2.2.2", 1, 2, 0, 0, b"x", proto=17), "not_tcp"),
        (LINKTYPE_RAW, ipv4_tcp("1.1.1.1", "2.2.2.2", 1, 2, 0, 0, b"x", frag=0x2000), "fragment"),
        (LINKTYPE_RAW, ipv4_tcp("1.1.1.1", "2.2.2.2", 1, 2, 0, 0, b"x", frag=5), "fragment"),
        (LINKTYPE_RAW, V4[:30], "truncated"),
        (LINKTYPE_RAW, V6[:20], "truncated"),
        (LINKTYPE_RAW, b"", "truncated"),
        (LINKTYPE_ETHERNET, bytes(12) + b"\x08\x06" + bytes(28), "not_ip"),  # ARP
        (LINKTYPE_ETHERNET, bytes(12) + b"\x86\xdd" + V4, "not_ip"),  # v4 marked v6
        (LINKTYPE_NULL, b"\x07\x00\x00\x00" + V4, "not_ip"),
        (147, V4, "linktype"),
    ],
)
def test_non_tcp_frames_give_a_reason(linktype: int, packet: bytes, reason: str) -> None:
    assert parse_frame(linktype, packet) == reason


# ------------------------------------------------------------------ tcp_fields


def _flat(linktype: int, packet: bytes) -> TcpFields | str:
    seg = parse_frame(linktype, packet)
    if isinstance(seg, str):
        return seg
    key = directional_key(seg.src, seg.dst, seg.sport, seg.dport)
    return key, seg.seq, seg.flags, seg.payload, seg.missing_bytes


def test_directional_key_is_the_wire_bytes_of_addresses_and_ports() -> None:
    assert directional_key(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 40000, 11434) == (
        bytes([10, 0, 0, 1, 10, 0, 0, 2]) + (40000).to_bytes(2, "big") + (11434).to_bytes(2, "big")
    )
    assert directional_key(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 40000, 11434) == V4[12:24]


def test_tcp_fields_reads_a_frame_inside_a_bigger_buffer() -> None:
    packet = frame(LINKTYPE_ETHERNET, V4)
    buf = b"\xff" * 7 + packet + b"\xee" * 9  # other records around it
    assert tcp_fields(LINKTYPE_ETHERNET, buf, 7, 7 + len(packet)) == (
        V4[12:24], 123456, PSH | ACK, b"GET / HTTP/1.1\r\n\r\n", 0
    )  # fmt: skip


_TCP_OPTIONS = ipv4_tcp("10.0.0.1", "10.0.0.2", 1, 2, 9, ACK, b"")
"""An IPv4 packet whose TCP header carries 12 bytes of options (data offset 8)."""
_TCP_OPTIONS = (
    _TCP_OPTIONS[:2]
    + (52 + 5).to_bytes(2, "big")
    + _TCP_OPTIONS[4:32]
    + bytes([8 << 4])
    + _TCP_OPTIONS[33:]
    + bytes([1] * 12)
    + b"hello"
)
_IP_OPTIONS = (
    bytes([0x46]) + V4[1:2] + (len(V4) + 4).to_bytes(2, "big") + V4[4:20] + bytes(4) + V4[20:]
)
"""V4 with 4 bytes of IP options (IHL 6): the key is not one slice any more."""


@pytest.mark.parametrize(
    "packet",
    [V4, V6, _TCP_OPTIONS, _IP_OPTIONS, V4[:-5], V4[:45], V4[:30], V4[:10], b"",
     ipv4_tcp("1.1.1.1", "2.2.2.2", 1, 2, 0, 0, b"x", proto=17),
     ipv4_tcp("1.1.1.1", "2.2.2.2", 1, 2, 0, 0, b"x", frag=0x2000),
     V4[:2] + b"\x00\x00" + V4[4:],  # total length 0 (TSO): the captured length counts
     V4[:2] + b"\x00\x10" + V4[4:]],  # total length shorter than the headers
)  # fmt: skip
@pytest.mark.parametrize(
    "linktype",
    [LINKTYPE_ETHERNET, LINKTYPE_NULL, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,
     LINKTYPE_RAW, 228, 12],
)  # fmt: skip
def test_tcp_fields_agrees_with_parse_frame(linktype: int, packet: bytes) -> None:
    if not packet or packet[0] >> 4 == 6:
        framed = frame(LINKTYPE_RAW if linktype in (228, 12) else linktype, packet or V4)
        framed = framed if packet else framed[: len(framed) - len(V4)]
    else:
        framed = frame(228 if linktype == 12 else linktype, packet)
    expected = _flat(linktype, framed)
    assert tcp_fields(linktype, framed, 0, len(framed)) == expected
    # The same frame between other bytes, as in a mapped capture file.
    buf = b"\x45" * 5 + framed + bytes(30)
    assert tcp_fields(linktype, buf, 5, 5 + len(framed)) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_RAW, LINKTYPE_NULL]),
    st.sampled_from([V4, V6, _TCP_OPTIONS, _IP_OPTIONS]),
    st.integers(0, 120),
    st.binary(max_size=24),
    st.booleans(),
)
def test_tcp_fields_agrees_with_parse_frame_on_cut_and_padded_frames(
    linktype: int, packet: bytes, keep: int, tail: bytes, vlan: bool
) -> None:
    framed = frame(linktype, packet, vlan=vlan and linktype == LINKTYPE_ETHERNET)
    framed = framed[:keep] if keep < len(framed) else framed + tail  # snap length or padding
    buf = tail + framed + tail
    assert tcp_fields(linktype, buf, len(tail), len(tail) + len(framed)) == _flat(linktype, framed)
