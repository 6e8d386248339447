"""AWS eventstream framer: messages, CRCs, bounds, any split (Hypothesis)."""

from __future__ import annotations

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.protocol.eventstream import EventMessage, EventStreamParser
from tests.support.eventstream_wire import encode_message, event


def _run(pieces: list[bytes], cap: int = 16 << 20) -> tuple[list[EventMessage], EventStreamParser]:
    parser = EventStreamParser(max_message_bytes=cap)
    out: list[EventMessage] = []
    for piece in pieces:
        out.extend(parser.feed(piece))
    parser.close()
    return out, parser


def _ways(data: bytes) -> list[list[bytes]]:
    rng = random.Random(len(data))
    ways = [[data], [data[i : i + 1] for i in range(len(data))]]
    for _ in range(4):
        cuts = sorted(rng.sample(range(len(data) + 1), k=min(5, len(data) + 1)))
        ways.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    return ways


STREAM = (
    event("messageStart", b'{"p":"abc","role":"assistant"}')
    + event("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"Hi"},"p":"ab"}')
    + event("metadata", b'{"usage":{"inputTokens":13,"outputTokens":12,"totalTokens":25}}')
)


def test_bedrock_messages_any_split() -> None:
    for pieces in _ways(STREAM):
        messages, parser = _run(pieces)
        assert [m.headers[":event-type"] for m in messages] == [
            "messageStart",
            "contentBlockDelta",
            "metadata",
        ]
        assert all(m.headers[":message-type"] == "event" for m in messages)
        assert messages[2].payload.startswith(b'{"usage"')
        assert parser.dropped_bytes == 0


def test_exception_message_headers() -> None:
    data = encode_message(
        [(":message-type", "exception"), (":exception-type", "throttlingException")],
        b'{"message":"slow down"}',
    )
    (msg,), _ = _run([data])
    assert msg.headers[":exception-type"] == "throttlingException"


def test_bad_message_crc_is_dropped_counted_and_framing_goes_on() -> None:
    first = bytearray(event("a", b"{}"))
    first[-1] ^= 0xFF
    data = bytes(first) + event("b", b"{}")
    for pieces in _ways(data):
        messages, parser = _run(pieces)
        assert [m.headers[":event-type"] for m in messages] == ["b"]
        assert parser.bad_count == 1
        assert parser.dropped_bytes == len(first)


def test_bad_prelude_crc_drops_the_rest_of_the_stream() -> None:
    good = event("a", b"{}")
    broken = bytearray(event("b", b"{}"))
    broken[9] ^= 0x01  # the prelude CRC
    data = good + bytes(broken) + event("c", b"{}")
    for pieces in _ways(data):
        messages, parser = _run(pieces)
        assert [m.headers[":event-type"] for m in messages] == ["a"]
        assert parser.desync_count == 1
        assert parser.dropped_bytes == len(data) - len(good)


def test_oversize_message_skipped_across_pieces() -> None:
    big = event("big", b"x" * 500)
    data = big + event("small", b"{}")
    for pieces in _ways(data):
        messages, parser = _run(pieces, cap=200)
        assert [m.headers[":event-type"] for m in messages] == ["small"]
        assert parser.oversize_count == 1
        assert parser.dropped_bytes == len(big)


def test_impossible_lengths_are_bad_not_fatal() -> None:
    prelude = struct.pack(">II", 8, 0)  # shorter than a prelude + CRC
    import zlib

    junk = prelude + struct.pack(">I", zlib.crc32(prelude))
    messages, parser = _run([junk + event("ok", b"{}")])
    assert [m.headers[":event-type"] for m in messages] == ["ok"]
    assert parser.bad_count == 1


def test_cut_message_at_close_is_counted() -> None:
    data = event("a", b"{}")
    messages, parser = _run([data[:-3]])
    assert messages == []
    assert parser.dropped_bytes == len(data) - 3


def test_other_header_types_are_skipped() -> None:
    import zlib

    headers = (
        bytes([4])
        + b"flag"
        + b"\x00"  # bool true
        + bytes([3])
        + b"num"
        + b"\x04"
        + struct.pack(">i", 7)
        + bytes([2])
        + b"id"
        + b"\x09"
        + bytes(16)
        + bytes([11])
        + b":event-type"
        + b"\x07"
        + struct.pack(">H", 1)
        + b"x"
    )
    payload = b"{}"
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers + payload
    data = body + struct.pack(">I", zlib.crc32(body))
    (msg,), _ = _run([data])
    assert msg.headers == {":event-type": "x"}


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=64), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_chunking_invariant(payloads: list[bytes], cuts: list[int]) -> None:
    data = b"".join(event(f"e{i}", p) for i, p in enumerate(payloads))
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    whole, _ = _run([data])
    split, parser = _run(pieces)
    assert split == whole
    assert [m.payload for m in whole] == payloads
    assert parser.dropped_bytes == 0


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_never_raises_on_garbage_and_is_split_invariant(data: bytes, cuts: list[int]) -> None:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    whole, p1 = _run([data])
    split, p2 = _run(pieces)
    assert split == whole
    assert (p1.bad_count, p1.desync_count, p1.oversize_count, p1.dropped_bytes) == (
        p2.bad_count,
        p2.desync_count,
        p2.oversize_count,
        p2.dropped_bytes,
    )
