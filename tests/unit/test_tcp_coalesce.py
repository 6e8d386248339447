"""TCP reassembly for replay: coalescing in-order segments, and flows owned by other workers."""

from __future__ import annotations

import random
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.capture.tcp.reassembler import ReassemblySettings, TcpReassembler
from lumen_sniff.capture.tcp.segments import LINKTYPE_RAW, Segment, directional_key, parse_frame
from lumen_sniff.model import Chunk, ConnKey, Direction
from tests.support.make_pcaps import Conversation

REQUEST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + bytes(range(250)) * 4
OUT, IN = Direction.EGRESS, Direction.INGRESS
T0 = 1_000_000_000


def seg(packet: bytes) -> Segment:
    parsed = parse_frame(LINKTYPE_RAW, packet)
    assert isinstance(parsed, Segment)
    return parsed


def run(packets: list[bytes], window_ns: int = 10**9, max_bytes: int = 1 << 16) -> list[Chunk]:
    """Feed ``packets`` 1000 ns apart (the first at T0); close; return every Chunk."""
    reasm = TcpReassembler(
        ReassemblySettings(coalesce_window_ns=window_ns, coalesce_max_bytes=max_bytes)
    )
    out: list[Chunk] = []
    for i, packet in enumerate(packets):
        out += reasm.feed(seg(packet), T0 + i * 1000)
    return out + reasm.close()


def shape(chunks: list[Chunk]) -> list[tuple[Direction, int, int, int, bool]]:
    """(direction, offset, length, packet index of the timestamp, closed) per Chunk."""
    return [(c.direction, c.offset, len(c.data), (c.ts_ns - T0) // 1000, c.closed) for c in chunks]


def exchange(conv: Conversation, mss: int = 100) -> list[bytes]:
    return (
        conv.handshake()
        + conv.send("c", REQUEST, mss)
        + conv.send("s", RESPONSE, mss)
        + conv.fin("c")
        + conv.fin("s")
    )


def test_heads_go_alone_and_the_rest_of_a_burst_is_one_chunk_stamped_with_its_last_packet() -> None:
    # Packets: 0-2 handshake, 3 request, 4-14 response (11 segments), 15-16 FINs.
    chunks = run(exchange(Conversation()))
    assert shape(chunks) == [
        (OUT, 0, len(REQUEST), 3, False),
        (IN, 0, 100, 4, False),  # the response head keeps its own time
        (IN, 100, len(RESPONSE) - 100, 14, False),  # flushed at the client's FIN
        (IN, len(RESPONSE), 0, 16, True),
    ]
    assert b"".join(c.data for c in chunks if c.direction is IN) == RESPONSE


def test_held_bytes_go_out_before_the_other_direction_speaks() -> None:
    conv = Conversation()
    packets = conv.handshake() + conv.send("c", REQUEST, 30)  # 3..5
    packets += conv.send("s", RESPONSE[:300], 100)  # 6..8
    packets += conv.send("c", REQUEST, 40)  # 9..10
    packets += conv.send("s", RESPONSE[300:], 350)  # 11..13
    assert shape(run(packets)) == [
        (OUT, 0, 30, 3, False),
        (OUT, 30, len(REQUEST) - 30, 5, False),
        (IN, 0, 100, 6, False),
        (IN, 100, 200, 8, False),
        (OUT, len(REQUEST), 40, 9, False),
        (OUT, len(REQUEST) + 40, len(REQUEST) - 40, 10, False),
        (IN, 300, 350, 11, False),
        (IN, 650, len(RESPONSE) - 650, 13, False),  # flushed at end of capture
        (OUT, 2 * len(REQUEST), 0, 13, True),
    ]


def test_window_and_size_limits_split_a_burst() -> None:
    conv = Conversation()
    packets = conv.handshake() + conv.send("s", RESPONSE, 100)  # 3..13
    by_window = run(packets, window_ns=2500)  # a run spans at most 3 packets
    assert [(c.offset, (c.ts_ns - T0) // 1000) for c in by_window if not c.closed] == [
        (0, 3), (100, 6), (400, 9), (700, 12), (1000, 13)
    ]  # fmt: skip
    by_size = run(packets, max_bytes=450)  # a run holds at most 4 segments
    assert [(c.offset, len(c.data)) for c in by_size if not c.closed] == [
        (0, 100), (100, 400), (500, 400), (900, len(RESPONSE) - 900)
    ]  # fmt: skip


def test_no_window_means_one_chunk_per_segment() -> None:
    chunks = run(exchange(Conversation()), window_ns=0)
    assert [len(c.data) for c in chunks] == [len(REQUEST)] + [100] * 10 + [len(RESPONSE) - 1000, 0]


def test_cut_bytes_and_bytes_after_a_gap_go_alone_after_the_held_ones() -> None:
    conv = Conversation()
    packets = conv.handshake() + conv.send("s", RESPONSE[:300], 100)  # 3..5
    packets.append(conv.send("s", RESPONSE[300:400])[0][:-30])  # 6: snap length cut 30 bytes
    conv.send("s", RESPONSE[400:500])  # lost
    packets += conv.send("s", RESPONSE[500:700], 100)  # 7..8, buffered until the end
    chunks = run(packets)
    assert [(c.offset, len(c.data), c.lost_bytes, c.closed) for c in chunks] == [
        (0, 100, 0, False),
        (100, 200, 0, False),
        (300, 70, 30, False),
        (500, 200, 0, False),  # after the 100-byte gap
        (0, 0, 0, True),  # the close, on the client's (silent) side
    ]


def test_http2_flows_are_not_coalesced() -> None:
    conv = Conversation()
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    packets = conv.handshake() + conv.send("c", preface + bytes(250 - len(preface)), 50)
    packets += conv.send("s", bytes(300), 100)  # 8..10
    chunks = run(packets)
    assert [(c.direction, len(c.data)) for c in chunks if not c.closed] == [(OUT, 50)] * 5 + [
        (IN, 100)
    ] * 3  # fmt: skip


def test_an_ignored_flow_drops_what_it_held() -> None:
    conv = Conversation()
    reasm = TcpReassembler(ReassemblySettings(coalesce_window_ns=10**9))
    got: list[Chunk] = []
    for i, packet in enumerate(conv.handshake() + conv.send("s", RESPONSE, 100)):
        got += reasm.feed(seg(packet), T0 + i)
    assert [len(c.data) for c in got] == [100]
    reasm.ignore(got[0].conn)
    assert reasm.close() == []
    assert reasm.stats["ignored_bytes"] == 0


# --------------------------------------------------- coalescing changes nothing


def _expand(coalesced: list[Chunk], plain: list[Chunk]) -> None:
    """Check each coalesced Chunk is a run of consecutive plain Chunks of its
    connection, stamped with the last one's time, and that a direction's
    first Chunk after the other direction's is a single plain Chunk."""
    by_conn: dict[ConnKey, list[Chunk]] = defaultdict(list)
    for chunk in plain:
        by_conn[chunk.conn].append(chunk)
    position: dict[ConnKey, int] = defaultdict(int)
    previous: dict[ConnKey, Direction] = {}
    for chunk in coalesced:
        queue, i = by_conn[chunk.conn], position[chunk.conn]
        run = [queue[i]]
        while sum(len(c.data) for c in run) < len(chunk.data):
            run.append(queue[i + len(run)])
        position[chunk.conn] = i + len(run)
        assert all(c.direction is chunk.direction and not c.lost_bytes for c in run[:-1])
        assert (chunk.offset, chunk.data, chunk.lost_bytes, chunk.closed, chunk.peer) == (
            run[0].offset, b"".join(c.data for c in run), run[-1].lost_bytes, run[-1].closed,
            run[-1].peer,
        )  # fmt: skip
        assert chunk.ts_ns == run[-1].ts_ns
        if previous.get(chunk.conn, chunk.direction) is not chunk.direction:
            assert len(run) == 1
        previous[chunk.conn] = chunk.direction
    assert all(position[conn] == len(queue) for conn, queue in by_conn.items())


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32),
    st.integers(1, 4),
    st.integers(1, 400),
    st.sampled_from([1, 3000, 10**9]),
    st.integers(1, 3000),
)
def test_coalesced_chunks_are_runs_of_the_plain_ones(
    seed: int, flows: int, mss: int, window_ns: int, max_bytes: int
) -> None:
    rnd = random.Random(seed)
    streams = []
    for n in range(flows):
        conv = Conversation(client=("10.0.0.1", 40000 + n), client_isn=rnd.randrange(2**32))
        packets = conv.handshake() + conv.send("c", REQUEST, mss)
        response = conv.send("s", RESPONSE, mss)
        response += rnd.sample(response, k=min(2, len(response)))  # retransmissions
        if rnd.random() < 0.5:
            rnd.shuffle(response)
        packets += response + conv.send("c", REQUEST, mss) + conv.fin("c")
        if rnd.random() < 0.3:
            del packets[rnd.randrange(3, len(packets))]  # a lost segment
        streams.append(packets)
    merged: list[bytes] = []
    while any(streams):  # interleave the flows at random, each in its own order
        stream = rnd.choice([s for s in streams if s])
        merged.append(stream.pop(0))
    plain = run(merged, window_ns=0)
    _expand(run(merged, window_ns=window_ns, max_bytes=max_bytes), plain)


# ------------------------------------------------------------ foreign flows


def test_flows_another_worker_owns_keep_their_numbers_and_give_nothing() -> None:
    convs = [Conversation(client=("10.0.0.1", 40000 + n)) for n in range(3)]
    packets = [p for conv in convs for p in exchange(conv)]
    mine = {
        min(k, k[4:8] + k[:4] + k[10:] + k[8:10])
        for conv in (convs[0], convs[2])
        for k in [directional_key(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), conv.client[1],
                                  11434)]
    }  # fmt: skip
    reasm = TcpReassembler(ReassemblySettings(), owns=mine.__contains__)
    chunks = [c for i, p in enumerate(packets) for c in reasm.feed(seg(p), T0 + i * 1000)]
    chunks += reasm.close()
    everything = run(packets, window_ns=0)
    assert chunks == [c for c in everything if c.conn.handle != 2]
    assert {c.conn.handle for c in chunks} == {1, 3}
    assert (reasm.stats["flows"], reasm.stats["closed_fin"], reasm.stats["closed_foreign"]) == (
        3, 2, 1
    )  # fmt: skip
    assert reasm.stats["ignored_bytes"] == 0
