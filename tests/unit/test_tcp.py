"""TCP reassembly: ordering, overlap, gaps, direction, lifetime, limits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.capture.tcp.reassembler import ReassemblySettings, TcpReassembler
from lumen_sniff.capture.tcp.segments import LINKTYPE_RAW, Segment, parse_frame
from lumen_sniff.model import Chunk, ConnKey, Direction
from tests.support.make_pcaps import ACK, RST, SYN, Conversation

REQUEST = b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + bytes(range(200)) * 5


def seg(packet: bytes) -> Segment:
    parsed = parse_frame(LINKTYPE_RAW, packet)
    assert isinstance(parsed, Segment)
    return parsed


def run(
    packets: list[bytes], reasm: TcpReassembler | None = None, *, close: bool = True
) -> list[Chunk]:
    reasm = reasm or TcpReassembler()
    out: list[Chunk] = []
    for i, packet in enumerate(packets):
        out += reasm.feed(seg(packet), 1_000_000_000 + i * 1000)
    if close:
        out += reasm.close()
    return out


def streams(chunks: list[Chunk]) -> dict[Direction, bytes]:
    """Each direction's bytes, checking that offsets are contiguous."""
    result: dict[Direction, bytes] = {Direction.EGRESS: b"", Direction.INGRESS: b""}
    for chunk in chunks:
        if chunk.closed:
            continue
        assert chunk.offset == len(result[chunk.direction])
        assert chunk.lost_bytes == 0
        result[chunk.direction] += chunk.data
    return result


def exchange(conv: Conversation, mss: int = 100) -> list[bytes]:
    return (
        conv.handshake()
        + conv.send("c", REQUEST, mss)
        + conv.send("s", RESPONSE, mss)
        + conv.fin("c")
        + conv.fin("s")
    )


def test_in_order_exchange() -> None:
    chunks = run(exchange(Conversation()), close=False)
    assert streams(chunks) == {Direction.EGRESS: REQUEST, Direction.INGRESS: RESPONSE}
    assert [c.closed for c in chunks].count(True) == 1
    assert chunks[-1].closed and chunks[-1].data == b""
    assert {c.conn for c in chunks} == {ConnKey(source="pcap", pid=0, handle=1)}
    assert {c.peer for c in chunks} == {("10.0.0.2", 11434)}


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(0, 2**32 - 1), st.integers(1, 300))
def test_reordered_and_duplicated_segments_give_the_same_streams(
    rnd: object, client_isn: int, mss: int
) -> None:
    import random

    assert isinstance(rnd, random.Random)
    conv = Conversation(client_isn=client_isn, server_isn=(client_isn * 7) % 2**32)
    packets = exchange(conv, mss)
    head, body = packets[:3], packets[3:]
    body += rnd.sample(body, k=min(len(body), 5))  # retransmissions
    rnd.shuffle(body)
    reasm = TcpReassembler()
    chunks = run(head + body, reasm, close=False)
    assert streams(chunks) == {Direction.EGRESS: REQUEST, Direction.INGRESS: RESPONSE}
    assert [c.closed for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert reasm.stats["gap_bytes"] == 0
    assert reasm.flow_count == 0


def test_overlapping_segments_first_copy_wins() -> None:
    conv = Conversation()
    packets = conv.handshake()
    base = conv.seq["c"]
    packets.append(conv.packet("c", ACK, b"A" * 10, seq=base + 5))  # [5, 15) first
    packets.append(conv.packet("c", ACK, b"B" * 20, seq=base))  # [0, 20) later
    packets.append(conv.packet("c", ACK, b"C" * 25, seq=base))  # all retransmitted
    reasm = TcpReassembler()
    chunks = run(packets, reasm)
    assert streams(chunks)[Direction.EGRESS] == b"B" * 5 + b"A" * 10 + b"B" * 5 + b"C" * 5
    assert reasm.stats["overlap_bytes"] == 10 + 20


def test_sequence_wraparound() -> None:
    conv = Conversation(client_isn=2**32 - 50, server_isn=2**32 - 1)
    chunks = run(exchange(conv, mss=30))
    assert streams(chunks) == {Direction.EGRESS: REQUEST, Direction.INGRESS: RESPONSE}


def test_ipv6_flow() -> None:
    conv = Conversation(("fd00::1", 50000), ("fd00::2", 8000), v6=True)
    chunks = run(exchange(conv))
    assert streams(chunks) == {Direction.EGRESS: REQUEST, Direction.INGRESS: RESPONSE}
    assert chunks[0].peer == ("fd00::2", 8000)


def test_mid_stream_start_judges_direction_from_the_bytes() -> None:
    conv = Conversation(client=("10.0.0.1", 80), server=("10.0.0.2", 50000))  # ports mislead
    exchange(conv)  # advance sequence numbers past a first exchange, uncaptured
    packets = conv.send("s", b"HTTP/1.1 200 OK\r\n\r\n") + conv.send("c", REQUEST)
    chunks = run(packets)
    assert [(c.direction, c.offset, c.data) for c in chunks] == [
        (Direction.INGRESS, 0, b"HTTP/1.1 200 OK\r\n\r\n"),
        (Direction.EGRESS, 0, REQUEST),
        (Direction.EGRESS, len(REQUEST), b""),
    ]
    assert chunks[-1].closed
    assert chunks[0].peer == ("10.0.0.2", 50000)


def test_mid_stream_unknown_bytes_take_the_higher_port_as_client() -> None:
    conv = Conversation(client=("10.0.0.1", 50000), server=("10.0.0.2", 8000))
    chunks = run(conv.send("s", b"data: {}\n\n"), close=False)
    assert [(c.direction, c.peer) for c in chunks] == [(Direction.INGRESS, ("10.0.0.2", 8000))]


def test_out_of_order_cap_skips_ahead_and_shows_the_gap() -> None:
    conv = Conversation()
    packets = conv.handshake()
    lost = conv.send("c", b"x" * 100)  # never captured
    later = conv.send("c", b"y" * 300, mss=100)
    reasm = TcpReassembler(ReassemblySettings(max_pending_bytes=250))
    chunks = run(packets + later, reasm, close=False)
    assert len(lost) == 1
    assert [(c.offset, c.data) for c in chunks] == [(100, b"y" * 300)]
    assert reasm.stats["gap_bytes"] == 100


def test_rst_flushes_buffered_data_and_closes() -> None:
    conv = Conversation()
    packets = conv.handshake() + conv.send("c", b"a" * 10)
    conv.send("c", b"b" * 10)  # lost
    packets += [*conv.send("c", b"c" * 10), conv.packet("s", RST)]
    reasm = TcpReassembler()
    chunks = run(packets, reasm, close=False)
    assert [(c.offset, c.data, c.closed) for c in chunks] == [
        (0, b"a" * 10, False),
        (20, b"c" * 10, False),
        (30, b"", True),
    ]
    assert reasm.stats["closed_rst"] == 1
    assert reasm.flow_count == 0
    # A late retransmission of the reset flow does not start a new one.
    assert reasm.feed(seg(conv.packet("c", ACK, b"b" * 10, seq=1011)), 2_000_000_000) == []


def test_snaplen_cut_rides_on_the_chunk_as_lost_bytes() -> None:
    conv = Conversation()
    packets = conv.handshake() + conv.send("c", b"0123456789") + conv.send("c", b"abc")
    packets[3] = packets[3][:-4]  # captured with a short snap length
    chunks = run(packets, close=False)
    assert [(c.offset, c.data, c.lost_bytes) for c in chunks] == [
        (0, b"012345", 4),
        (10, b"abc", 0),
    ]


def test_flow_table_evicts_least_recently_active() -> None:
    convs = [Conversation(client=("10.0.0.1", 40000 + i)) for i in range(3)]
    reasm = TcpReassembler(ReassemblySettings(max_flows=2))
    packets = [convs[0].send("c", REQUEST)[0], convs[1].send("c", REQUEST)[0]]
    packets += [convs[0].send("c", b"more")[0], convs[2].send("c", REQUEST)[0]]
    chunks = run(packets, reasm, close=False)
    closed = [c.conn.handle for c in chunks if c.closed]
    assert closed == [2]  # flow 2 was idle longest, flow 1 was touched again
    assert reasm.stats["evicted"] == 1
    assert reasm.flow_count == 2


def test_idle_timeout_uses_packet_time() -> None:
    reasm = TcpReassembler(ReassemblySettings(idle_timeout_ns=10**9))
    a = Conversation(client=("10.0.0.1", 40001))
    b = Conversation(client=("10.0.0.1", 40002))
    first = reasm.feed(seg(a.send("c", REQUEST)[0]), 5 * 10**9)
    later = reasm.feed(seg(b.send("c", REQUEST)[0]), 7 * 10**9)
    assert [c.conn.handle for c in first] == [1]
    assert [(c.conn.handle, c.closed) for c in later] == [(1, True), (2, False)]
    assert reasm.stats["idle_timeout"] == 1


def test_ignored_flow_emits_nothing_more() -> None:
    conv = Conversation()
    reasm = TcpReassembler(ReassemblySettings(source="replay"))
    first = run(conv.handshake() + conv.send("c", b"\x16\x03\x01tls"), reasm, close=False)
    assert first[0].conn == ConnKey(source="replay", pid=0, handle=1)
    reasm.ignore(first[0].conn)
    rest = run(conv.send("s", RESPONSE) + conv.fin("c") + conv.fin("s"), reasm)
    assert rest == []
    assert reasm.stats["ignored_bytes"] == len(RESPONSE)
    assert reasm.stats["closed_ignored"] == 1


def test_new_syn_on_same_ports_starts_a_new_flow() -> None:
    old = Conversation(client_isn=100)
    new = Conversation(client_isn=900_000)
    chunks = run(old.handshake() + old.send("c", b"one") + new.handshake() + new.send("c", b"two"))
    assert [(c.conn.handle, c.data, c.closed) for c in chunks] == [
        (1, b"one", False),
        (1, b"", True),
        (2, b"two", False),
        (2, b"", True),
    ]


def test_syn_retransmission_is_harmless() -> None:
    conv = Conversation()
    syn = conv.packet("c", SYN)
    chunks = run([syn, *exchange(conv)])
    assert streams(chunks) == {Direction.EGRESS: REQUEST, Direction.INGRESS: RESPONSE}
