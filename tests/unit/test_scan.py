"""The fused replay loop reads every frame exactly as tcp_fields does."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.capture.pcap.pcapfile import CaptureFile
from lumen_sniff.capture.pcap.scan import scan_capture
from lumen_sniff.capture.tcp.reassembler import ReassemblySettings, TcpReassembler
from lumen_sniff.capture.tcp.segments import ACK, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, tcp_fields
from lumen_sniff.errors import ReplayError
from lumen_sniff.model import Chunk
from tests.support.make_pcaps import Conversation, frame, ipv4_tcp, write_pcap, write_pcapng

V4 = ipv4_tcp("10.0.0.1", "10.0.0.2", 40000, 8080, 77, ACK, b"payload bytes" * 9)
OPTIONS = bytes([0x46]) + V4[1:2] + (len(V4) + 4).to_bytes(2, "big") + V4[4:20] + bytes(4) + V4[20:]
ARP = bytes(12) + b"\x08\x06" + bytes(28)


class Recorder(TcpReassembler):
    """Records what it is fed, and reassembles it too."""

    def __init__(self) -> None:
        super().__init__(ReassemblySettings(coalesce_window_ns=10**9))
        self.fed: list[tuple[object, ...]] = []

    def feed_tcp(
        self, key: bytes, seq: int, flags: int, payload: bytes, missing: int, ts_ns: int
    ) -> None:
        self.fed.append((key, seq, flags, payload, missing, ts_ns))
        super().feed_tcp(key, seq, flags, payload, missing, ts_ns)


def scan(path: Path) -> tuple[list[tuple[object, ...]], Counter[str], list[Chunk], int]:
    reasm = Recorder()
    chunks: list[Chunk] = []
    skipped: Counter[str] = Counter()

    def deliver(out: list[Chunk]) -> None:
        chunks.extend(out)
        out.clear()

    with CaptureFile(path) as capture:
        scan_capture(capture, reasm, deliver, skipped)
        frames = capture.frames_read
    return reasm.fed, skipped, chunks + reasm.close(), frames


def expected(path: Path) -> tuple[list[tuple[object, ...]], Counter[str]]:
    fed: list[tuple[object, ...]] = []
    skipped: Counter[str] = Counter()
    with CaptureFile(path) as capture:
        for f in capture:
            fields = tcp_fields(f.linktype, f.data, 0, len(f.data))
            if isinstance(fields, str):
                skipped[fields] += 1
            else:
                fed.append((*fields, f.ts_ns))
    return fed, skipped


def _variants(linktype: int) -> list[bytes]:
    conv = Conversation(v6=False)
    v6 = Conversation(("fd00::1", 5000), ("fd00::2", 80), v6=True)
    packets = [V4, OPTIONS, *conv.handshake(), *conv.send("c", b"x" * 3000), v6.handshake()[0]]
    frames = [frame(linktype, p) for p in packets]
    if linktype == LINKTYPE_ETHERNET:
        frames += [frame(linktype, V4, vlan=True), ARP, frame(linktype, V4) + bytes(20)]
        tso = V4[:2] + b"\x00\x00" + V4[4:]  # total length 0: the captured length counts
        frames += [frame(linktype, tso)]
    return frames


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL]))
def test_pcap_frames_reach_the_reassembler_as_tcp_fields_reads_them(
    tmp_path_factory: pytest.TempPathFactory, seed: int, linktype: int
) -> None:
    rnd = random.Random(seed)
    frames = _variants(linktype)
    rnd.shuffle(frames)
    cut = [f[: rnd.randrange(len(f) + 1)] if rnd.random() < 0.3 else f for f in frames]
    path = tmp_path_factory.mktemp("scan") / "s.pcap"
    write_pcap(path, linktype, [(1_700_000_000 * 10**9 + i * 7, f) for i, f in enumerate(cut)])
    fed, skipped, _, frames_read = scan(path)
    assert (fed, skipped) == expected(path)
    assert frames_read == len(cut)


def test_pcapng_frames_reach_the_reassembler_as_tcp_fields_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "s.pcapng"
    frames = _variants(LINKTYPE_ETHERNET)
    write_pcapng(path, [LINKTYPE_ETHERNET], [(0, i * 1000, f) for i, f in enumerate(frames)])
    fed, skipped, chunks, frames_read = scan(path)
    assert (fed, skipped) == expected(path)
    assert skipped == Counter({"not_ip": 1})
    assert frames_read == len(frames)
    assert b"".join(c.data for c in chunks if c.conn.handle == 2) == b"x" * 3000


def test_damage_after_good_frames_raises_once_they_are_fed(tmp_path: Path) -> None:
    path = tmp_path / "d.pcap"
    conv = Conversation()
    packets = conv.handshake() + conv.send("c", b"y" * 500, 100)
    write_pcap(path, LINKTYPE_ETHERNET, [(i, frame(1, p)) for i, p in enumerate(packets)])
    path.write_bytes(path.read_bytes()[:-50])
    reasm = Recorder()
    with pytest.raises(ReplayError, match="damaged pcap after 7 packets"), CaptureFile(path) as c:
        scan_capture(c, reasm, lambda out: out.clear(), Counter())
    assert len(reasm.fed) == 7
    # The first 100 bytes went out at once; the next 300 were held until the close.
    assert b"".join(chunk.data for chunk in reasm.close()) == b"y" * 300
