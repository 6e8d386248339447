"""Link, IP and TCP header parsing on hand-built frames."""

from __future__ import annotations

import pytest

from lumen_sniff.capture.packets import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Segment,
    format_addr,
    parse_frame,
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
