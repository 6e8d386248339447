"""The pipeline's hot-path shortcuts give exactly what the general code gives.

Each shortcut (whole chunks in http1, whole events in SSE, the cheap byte tests of
the readers, the fast BodyData constructor, JSON objects parsed by json's scanner)
is checked against the general path it skips: byte-at-a-time feeding, which
never takes a shortcut, the regular expression it stands in for, or json.loads.
"""

from __future__ import annotations

import dataclasses
import json
import random
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.model import BodyData, ConnKey, HttpEvent, Role
from lumen_sniff.protocol.bodyevents import body_data
from lumen_sniff.protocol.http1.parser import Http1Parser
from lumen_sniff.protocol.sse import SseParser
from lumen_sniff.providers._json import INVALID, has_object, parse
from lumen_sniff.providers.openai import _FINISH, _USAGE_OBJECT, ChatReader
from lumen_sniff.providers.reader import _TEXT_VALUE, carries_text

K = ConnKey(source="replay", pid=7, handle=0x1000)
HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
NEXT = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _splits(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 12))))
    return [data[a:b] for a, b in pairwise([0, *cuts, len(data)])]


def _merge(events: list[HttpEvent]) -> list[HttpEvent]:
    """Join consecutive BodyData of one message (how the bytes were split may cut one)."""
    out: list[HttpEvent] = []
    for e in events:
        prev = out[-1] if out else None
        if isinstance(e, BodyData) and isinstance(prev, BodyData) and prev.stream == e.stream:
            out[-1] = dataclasses.replace(prev, data=prev.data + e.data)
        else:
            out.append(e)
    return out


def _http1(pieces: list[bytes]) -> list[HttpEvent]:
    parser = Http1Parser(K)
    out: list[HttpEvent] = []
    for piece in pieces:
        out += parser.data(Role.RESPONSE, 1, piece)
    out += parser.close(2)
    return _merge(out)


# ------------------------------------------------------------------- records


def test_body_data_builds_the_same_frozen_record() -> None:
    fast = body_data(K, 3, Role.RESPONSE, 5, b"x")
    slow = BodyData(conn=K, stream=3, role=Role.RESPONSE, ts_ns=5, data=b"x")
    assert type(fast) is BodyData
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.data = b"y"  # type: ignore[misc]
    # body_data sets these five fields and runs no __post_init__: both must stay true.
    assert [f.name for f in dataclasses.fields(BodyData)] == [
        "conn",
        "stream",
        "role",
        "ts_ns",
        "data",
    ]
    assert not hasattr(BodyData, "__post_init__")


# ------------------------------------------------------------- http1 chunks

_SIZE_LINES = st.sampled_from(
    [
        b"%x\r\n",
        b"%X\r\n",
        b"00%x\r\n",
        b"%x\n",  # bare LF
        b"%x;ext=1\r\n",
        b" %x\r\n",
        b"%x \r\n",
        b"%015x\r\n",  # 15 digits: the most a size may have
        b"%016x\r\n",  # 16 digits: a bad chunk
        b"%016x\n",
        b"0x%x\r\n",  # not hex to HTTP, though int() takes it
        b"+%x\r\n",
        b"%x\r\r\n",
    ]
)
_ENDINGS = st.sampled_from([b"\r\n", b"\r\n", b"\n", b"X\r\n", b""])


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(st.binary(min_size=1, max_size=40), _SIZE_LINES, _ENDINGS), max_size=8
    ),
    last=st.sampled_from([b"0\r\n\r\n", b"0\r\nx-t: 1\r\n\r\n", b"0\n\n", b""]),
    seed=st.integers(0, 1000),
)
def test_whole_chunks_match_the_state_loop(
    chunks: list[tuple[bytes, bytes, bytes]], last: bytes, seed: int
) -> None:
    frames = [line % len(payload) + payload + ending for payload, line, ending in chunks]
    stream = HEAD + b"".join(frames) + last + NEXT
    reference = _http1([stream[i : i + 1] for i in range(len(stream))])
    assert _http1([stream]) == reference
    assert _http1([HEAD, *frames, last + NEXT]) == reference  # a read per chunk
    assert _http1(_splits(stream, seed)) == reference


def test_a_read_per_chunk_gives_a_body_data_per_read() -> None:
    parser = Http1Parser(K)
    parser.data(Role.RESPONSE, 1, HEAD)
    assert parser.data(Role.RESPONSE, 2, b"5\r\nhello\r\n") == [
        BodyData(conn=K, stream=1, role=Role.RESPONSE, ts_ns=2, data=b"hello")
    ]
    assert parser.data(Role.RESPONSE, 3, b"1\r\n!\r\n2\r\nab\r\n") == [
        BodyData(conn=K, stream=1, role=Role.RESPONSE, ts_ns=3, data=b"!ab")
    ]


# --------------------------------------------------------------------- SSE

_SSE_PARTS = st.sampled_from(
    [
        b'data: {"k":1}\n\n',
        b"event: delta\ndata: x\n\n",
        b"event: delta\n",
        b"data: y\n",
        b"data:z\n\n",
        b"event: \ndata: e\n\n",
        b"event:nospace\ndata: n\n\n",
        b"id: 7\n",
        b": comment\n",
        b"retry: 5\n",
        b"\n",
        b"\n\n",
        b"\r\n",
        b"\r",
        b"data: " + b"w" * 60 + b"\n\n",  # over the cap used below
        b"data",
        b"\xef\xbb\xbf",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(_SSE_PARTS, max_size=30),
    seed=st.integers(0, 1000),
    by_part=st.booleans(),
)
def test_feed_records_matches_feed(parts: list[bytes], seed: int, by_part: bool) -> None:
    stream = b"".join(parts)
    pieces = [p for p in parts if p] if by_part else (_splits(stream, seed) if stream else [])
    full, pairs = SseParser(max_event_bytes=50), SseParser(max_event_bytes=50)
    expected = [e for piece in pieces for e in full.feed(piece)]
    got = [pair for piece in pieces for pair in pairs.feed_records(piece)]
    assert got == [(e.event, e.data) for e in expected]
    assert pairs.oversize_count == full.oversize_count
    assert pairs.oversize_bytes == full.oversize_bytes
    assert pairs.last_event_id == full.last_event_id
    assert pairs.close() == full.close()
    # And feed() itself, whole events at a time, matches feeding a byte at a time.
    # (Default cap: a line of an unknown field over the cap is dropped as oversize
    # only when it arrives in pieces, a known limit of the line cap.)
    whole, bytewise = SseParser(), SseParser()
    expected = [e for piece in pieces for e in whole.feed(piece)]
    reference = [e for i in range(len(stream)) for e in bytewise.feed(stream[i : i + 1])]
    assert expected == reference


# ------------------------------------------------------------ reader tests

_RECORD_PARTS = st.sampled_from(
    [
        b'"content":"',
        b'"content":""',
        b'"content": "a"',
        b'"text":"',
        b'"text":"b"',
        b'"thinking":"c"',
        b'"delta":{',
        b'"x":"content"',
        b'\\"text\\":\\"',
        b'"',
        b":",
        b" ",
        b"a",
        b"{",
        b"}",
    ]
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_RECORD_PARTS, max_size=12))
def test_carries_text_agrees_with_its_regular_expression(parts: list[bytes]) -> None:
    data = b"".join(parts)
    expected = _TEXT_VALUE.search(data) is not None
    assert carries_text(data) is expected
    assert carries_text(data, b'"text":"') is expected


_CHAT_PARTS = st.sampled_from(
    [
        b'"finish_reason":null',
        b'"finish_reason":"stop"',
        b'"finish_reason" : "length"',
        b'"finish_reason": null',
        b'"usage":null',
        b'"usage":{"prompt_tokens":1}',
        b'"usage" : {',
        b'"usage": null',
        b'"x":"usage"',
        b'"error":{',
        b'"content":"hi"',
        b"null",
        b'"',
        b":",
    ]
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_CHAT_PARTS, max_size=8))
def test_chat_reader_byte_tests_agree_with_its_regular_expressions(parts: list[bytes]) -> None:
    data = b"{{" + b",".join(parts)  # never valid JSON: a parse attempt shows as bad_json
    reader = ChatReader()
    reader.record("message", data)
    assert reader.t.ended is (_FINISH.search(data) is not None)
    parsed = (
        _USAGE_OBJECT.search(data) is not None
        or data.find(b'"x_groq"') >= 0
        or data.find(b'"timings"') >= 0
        or has_object(data, b'"error"')
    )
    assert reader.t.bad_json == int(parsed)


def _loads(data: bytes) -> object:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return INVALID


_JSON_ODDITIES = [
    b'{"a":1}', b'{"a":1,"a":2}', b'{"a":1} \r\n\t', b'{"a":1}\x0b', b'{"a":1}x',
    b'{"a":1,}', b'{"a":NaN}', b'{"a":1e400}', b'{"a":123456789012345678901234567890}',
    b'{"a":"\\ud800"}', b'{"a":"\xed\xa0\x80"}', b'{\xff}', b'{"a":"\x1f"}', b"{",
    b'{"a":', b"{}", b"{\x00\x00\x00", b'{"a":1}\xc2\xa0', b'{"a":[' * 3000 + b"]}" * 3000,
    b'\xef\xbb\xbf{"a":1}', b' {"a":1}', b'["a"]', b'"a"', b"",
]
_JSON_TEXT = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@pytest.mark.parametrize("data", _JSON_ODDITIES)
def test_parse_gives_what_json_loads_gives(data: bytes) -> None:
    got, want = parse(data), _loads(data)
    assert (got is INVALID) == (want is INVALID)
    assert repr(got) == repr(want) or got is INVALID


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(st.text(max_size=6), _JSON_TEXT, max_size=5),
       tail=st.sampled_from([b"", b" ", b"\n", b"\r\n ", b"x", b"\x0c", b"}"]),
       cut=st.integers(0, 40))
def test_parse_of_objects_matches_json_loads(doc: dict[str, object], tail: bytes, cut: int) -> None:
    data = json.dumps(doc, ensure_ascii=bool(cut % 2)).encode("utf-8", "surrogatepass") + tail
    for piece in (data, data[: len(data) - cut]):
        got, want = parse(piece), _loads(piece)
        assert (got is INVALID) == (want is INVALID)
        assert repr(got) == repr(want) or got is INVALID
