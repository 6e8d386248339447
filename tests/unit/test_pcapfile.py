"""Capture file reading: formats, timestamps, link types and damage."""

from __future__ import annotations

import os
import re
import struct
import threading
from pathlib import Path

import pytest

from lumen_sniff.capture.pcap.pcapfile import CaptureFile, Frame
from lumen_sniff.errors import ReplayError
from tests.support.make_pcaps import write_pcap, write_pcapng

FRAMES = [(1_700_000_000_123_456_789, b"a" * 60), (1_700_000_001_000_000_001, b"b" * 70_000)]


def read_all(path: Path) -> list[Frame]:
    with CaptureFile(path) as capture:
        return list(capture)


def read_until_error(path: Path) -> tuple[list[Frame], str]:
    got: list[Frame] = []
    with pytest.raises(ReplayError) as info, CaptureFile(path) as capture:
        for frame in capture:
            got.append(frame)
    return got, str(info.value)


def test_pcap_nanosecond(tmp_path: Path) -> None:
    path = tmp_path / "n.pcap"
    write_pcap(path, 113, FRAMES)
    # The 70000-byte frame is larger than scapy's default cap: it must survive whole.
    assert read_all(path) == [
        Frame(113, 1_700_000_000_123_456_789, b"a" * 60, 60),
        Frame(113, 1_700_000_001_000_000_001, b"b" * 70_000, 70_000),
    ]


def test_pcap_microsecond(tmp_path: Path) -> None:
    path = tmp_path / "u.pcap"
    write_pcap(path, 1, FRAMES, nano=False)
    assert [(f.linktype, f.ts_ns) for f in read_all(path)] == [
        (1, 1_700_000_000_123_456_000),
        (1, 1_700_000_001_000_000_000),
    ]


def test_pcapng_link_type_per_interface(tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    write_pcapng(path, [1, 276], [(1, FRAMES[0][0], b"x" * 41), (0, FRAMES[1][0], b"y" * 3)])
    assert read_all(path) == [
        Frame(276, FRAMES[0][0], b"x" * 41, 41),
        Frame(1, FRAMES[1][0], b"y" * 3, 3),
    ]


@pytest.mark.parametrize("keep", [24 + 76 + 5, 24 + 76 + 16 + 100, 24 + 76 + 16 + 70_000 - 1])
def test_truncated_pcap_yields_good_frames_then_fails(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "t.pcap"
    write_pcap(path, 1, FRAMES)
    path.write_bytes(path.read_bytes()[:keep])
    got, message = read_until_error(path)
    assert [f.data for f in got] == [b"a" * 60]
    assert f"{path}: damaged pcap after 1 packets (byte 100 of {keep})" in message


def test_pcapng_with_a_cut_last_block(tmp_path: Path) -> None:
    path = tmp_path / "t.pcapng"
    write_pcapng(path, [1], [(0, 1, b"x" * 40), (0, 2, b"y" * 40)])
    path.write_bytes(path.read_bytes()[:-10])
    got, message = read_until_error(path)
    assert [f.data for f in got] == [b"x" * 40]
    assert "damaged pcapng after 1 packets" in message


def test_pcapng_with_garbage_after_good_blocks(tmp_path: Path) -> None:
    path = tmp_path / "g.pcapng"
    write_pcapng(path, [1], [(0, 1, b"x" * 40)])
    path.write_bytes(path.read_bytes() + struct.pack("<II", 6, 4) + bytes(20))
    got, message = read_until_error(path)
    assert [f.data for f in got] == [b"x" * 40]
    assert "bad block length 4" in message


def test_pcapng_trailing_statistics_block_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "s.pcapng"
    write_pcapng(path, [1], [(0, 1, b"x" * 40)])
    isb = struct.pack("<IIIII", 5, 24, 0, 0, 0) + struct.pack("<I", 24)
    path.write_bytes(path.read_bytes() + isb)
    assert [f.data for f in read_all(path)] == [b"x" * 40]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "not a pcap or pcapng capture (empty file)"),
        (b"GET / HTTP/1.1\r\n", "not a pcap or pcapng capture (file starts with 47455420)"),
        (b"\x1f\x8b\x08\x00rest", "gzip-compressed"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "bad pcap header"),
        (b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x00\x00", "bad pcapng header"),
    ],
)
def test_wrong_file_types(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(ReplayError, match=re.escape(expected)):
        CaptureFile(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="cannot read: No such file or directory"):
        CaptureFile(tmp_path / "nope.pcap")


def read_raw(path: Path) -> list[tuple[int, int, bytes]]:
    with CaptureFile(path) as capture:
        return [(lt, ts, bytes(buf[start:end])) for lt, ts, buf, start, end, _ in capture.raw()]


@pytest.mark.parametrize("nano", [True, False])
def test_raw_pcap_gives_the_frames_iteration_gives(tmp_path: Path, nano: bool) -> None:
    path = tmp_path / "r.pcap"
    write_pcap(path, 113, [*FRAMES, (1_700_000_002_000_000_000, b"")], nano=nano)
    assert read_raw(path) == [(f.linktype, f.ts_ns, f.data) for f in read_all(path)]
    assert read_raw(path)[0][1] == (
        1_700_000_000_123_456_789 if nano else 1_700_000_000_123_456_000
    )


def test_raw_pcapng_gives_the_frames_iteration_gives(tmp_path: Path) -> None:
    path = tmp_path / "r.pcapng"
    write_pcapng(path, [1, 276], [(1, FRAMES[0][0], b"x" * 41), (0, FRAMES[1][0], b"y" * 3)])
    assert read_raw(path) == [(276, FRAMES[0][0], b"x" * 41), (1, FRAMES[1][0], b"y" * 3)]


@pytest.mark.parametrize("keep", [24 + 76 + 5, 24 + 76 + 16 + 100, 24 + 76 + 16 + 70_000 - 1])
def test_raw_truncated_pcap_yields_good_frames_then_fails(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "t.pcap"
    write_pcap(path, 1, FRAMES)
    path.write_bytes(path.read_bytes()[:keep])
    got = []
    with pytest.raises(ReplayError) as info, CaptureFile(path) as capture:
        for _, _, buf, start, end, _ in capture.raw():
            got.append(bytes(buf[start:end]))
    assert got == [b"a" * 60]
    assert capture.frames_read == 1
    assert f"{path}: damaged pcap after 1 packets (byte 100 of {keep})" in str(info.value)
    cut = "cut inside a record header" if keep == 105 else "record of 70000 bytes cut short"
    assert str(info.value).endswith(cut)


def test_raw_pcap_rejects_an_absurd_record_length(tmp_path: Path) -> None:
    path = tmp_path / "h.pcap"
    write_pcap(path, 1, FRAMES[:1])
    path.write_bytes(path.read_bytes() + struct.pack("<IIII", 1, 0, 1 << 29, 60) + bytes(60))
    with pytest.raises(ReplayError, match=r"after 1 packets \(byte 100 of 176\): record of "
                       r"536870912 bytes is too large"), CaptureFile(path) as capture:  # fmt: skip
        for _ in capture.raw():
            pass


def _ng_block(endian: str, block_type: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    length = len(body) + 12
    return struct.pack(endian + "II", block_type, length) + body + struct.pack(endian + "I", length)


def _ng_section(endian: str) -> bytes:
    return _ng_block(endian, 0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def _ng_interface(endian: str, linktype: int, tsresol: int | None) -> bytes:
    options = b""
    if tsresol is not None:
        options = struct.pack(endian + "HHB3x", 9, 1, tsresol) + struct.pack(endian + "HH", 0, 0)
    return _ng_block(endian, 1, struct.pack(endian + "HHI", linktype, 0, 262144) + options)


def _ng_epb(endian: str, iface: int, ticks: int, data: bytes, options: bytes = b"") -> bytes:
    head = struct.pack(endian + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), 900)
    return _ng_block(endian, 6, head + data + bytes(-len(data) % 4) + options)


def _mixed_pcapng() -> bytes:
    """Two sections (little then big endian), microsecond, binary and nanosecond
    interfaces, an EPB with options, a Simple Packet Block, an unknown block."""
    comment = struct.pack("<HH", 1, 5) + b"hello" + bytes(3) + struct.pack("<HH", 0, 0)
    return b"".join([
        _ng_section("<"),
        _ng_interface("<", 1, None),  # microseconds by default
        _ng_interface("<", 113, 0x80 | 10),  # 2**-10 s: not a whole number of ns
        _ng_epb("<", 0, 1_700_000_000_123_456, b"a" * 60),
        _ng_epb("<", 1, 1_700_000_000 * 1024 + 5, b"b" * 7, comment),
        _ng_block("<", 3, struct.pack("<I", 5) + b"ccccc"),  # SPB: interface 0, last time
        _ng_block("<", 0x0BAD, b"unknown block"),
        _ng_section(">"),
        _ng_interface(">", 276, 9),
        _ng_epb(">", 0, 1_700_000_001_000_000_001, b"d" * 1500),
    ])  # fmt: skip


def test_raw_pcapng_sections_interfaces_and_block_kinds(tmp_path: Path) -> None:
    path = tmp_path / "m.pcapng"
    path.write_bytes(_mixed_pcapng())
    expected = [
        (1, 1_700_000_000_123_456_000, b"a" * 60),
        (113, (1_700_000_000 * 1024 + 5) * 10**9 // 1024, b"b" * 7),
        (1, (1_700_000_000 * 1024 + 5) * 10**9 // 1024, b"ccccc"),
        (276, 1_700_000_001_000_000_001, b"d" * 1500),
    ]
    assert [(f.linktype, f.ts_ns, f.data) for f in read_all(path)] == expected
    assert read_raw(path) == expected


@pytest.mark.parametrize(
    ("cut", "where", "problem"),
    [
        # The layout: sections at 0 and 280; the last block, an EPB at 340, ends at 1872.
        (1, 340, "block trailer does not match its length"),  # cut, then garbage
        (4, 340, "bad block length 1532"),
        (1500, 340, "bad block length 1532"),
        (1540, 308, "bad block length 32"),  # inside the second section's IDB
        (1572, 280, "bad block length 28"),  # inside the second section header
    ],
)
def test_pcapng_damage_in_a_later_section(
    tmp_path: Path, cut: int, where: int, problem: str
) -> None:
    path = tmp_path / "c.pcapng"
    data = _mixed_pcapng()
    assert len(data) == 1872
    path.write_bytes(data[:-cut] + (b"\x00garbage" if cut % 2 else b""))
    got, message = read_until_error(path)
    assert [f.data[:1] for f in got] == [b"a", b"b", b"c"]
    size = path.stat().st_size
    assert message.endswith(f"damaged pcapng after 3 packets (byte {where} of {size}): {problem}")


def test_pcapng_with_an_unknown_interface_is_damaged(tmp_path: Path) -> None:
    path = tmp_path / "i.pcapng"
    path.write_bytes(_ng_section("<") + _ng_interface("<", 1, 6) + _ng_epb("<", 1, 5, b"x"))
    got, message = read_until_error(path)
    assert got == []
    assert message.endswith("after 0 packets (byte 60 of 96): packet on undeclared interface 1")


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_a_pipe_is_read_whole(tmp_path: Path, kind: str) -> None:
    source = tmp_path / f"s.{kind}"
    if kind == "pcap":
        write_pcap(source, 1, FRAMES)
    else:
        write_pcapng(source, [1], [(0, ts, data) for ts, data in FRAMES])
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(source.read_bytes()))
    writer.start()
    try:
        got = read_all(fifo)
    finally:
        writer.join()
    assert [(f.ts_ns, f.data) for f in got] == FRAMES
