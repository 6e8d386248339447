"""SSE framer: WHATWG event-stream rules, chunking invariance, bounds."""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.protocol.sse import SseEvent, SseParser


def _feed_all(pieces: list[bytes], *, cap: int = 4 << 20) -> tuple[list[SseEvent], SseParser]:
    parser = SseParser(max_event_bytes=cap)
    out: list[SseEvent] = []
    for piece in pieces:
        out.extend(parser.feed(piece))
    out.extend(parser.close())
    return out, parser


def _splits(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    pieces, i = [], 0
    while i < len(data):
        step = rng.randint(1, 7)
        pieces.append(data[i : i + step])
        i += step
    return pieces


def _all_ways(data: bytes) -> list[SseEvent]:
    """Events for ``data`` fed whole, byte by byte and in random splits: all must agree."""
    whole, _ = _feed_all([data])
    bytewise, _ = _feed_all([data[i : i + 1] for i in range(len(data))])
    assert bytewise == whole
    for seed in range(5):
        split, _ = _feed_all(_splits(data, seed))
        assert split == whole
    return whole


def _ev(event: str, data: bytes, last_id: str = "", *, complete: bool = True) -> SseEvent:
    return SseEvent(event=event, data=data, last_event_id=last_id, complete=complete)


def test_spec_example_fields_and_multiline_data() -> None:
    stream = (
        b": test stream\n\ndata: first event\nid: 1\n\n"
        b"data:second event\nid\n\ndata:  third event\n\n"
    )
    assert _all_ways(stream) == [
        _ev("message", b"first event", "1"),
        _ev("message", b"second event", ""),
        _ev("message", b" third event", ""),
    ]


def test_multiline_data_joined_with_lf_and_empty_data_dispatches() -> None:
    stream = b"data: YHOO\ndata: +2\ndata: 10\n\ndata\n\ndata\ndata\n\ndata:\n"
    assert _all_ways(stream) == [
        _ev("message", b"YHOO\n+2\n10"),
        _ev("message", b""),
        _ev("message", b"\n"),
        _ev("message", b"", complete=False),
    ]


def test_event_type_resets_after_dispatch_and_no_data_means_no_event() -> None:
    stream = b"event: add\ndata: 73857293\n\nevent: remove\n\ndata: x\n\n"
    assert _all_ways(stream) == [_ev("add", b"73857293"), _ev("message", b"x")]


def test_line_endings_crlf_cr_lf_mixed() -> None:
    stream = b"event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\rdata: 3\n\n"
    assert _all_ways(stream) == [_ev("a", b"1"), _ev("b", b"2"), _ev("message", b"3")]


def test_cr_at_chunk_boundary_then_lf_is_one_line_end() -> None:
    parser = SseParser()
    assert parser.feed(b"data: x\r") == []
    # The LF completes the CRLF; only the next CR LF pair makes the blank line.
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\r") == [_ev("message", b"x")]
    assert parser.feed(b"\ndata: y\n\n") == [_ev("message", b"y")]


def test_bom_stripped_only_at_start_even_bytewise() -> None:
    stream = b"\xef\xbb\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\ndata: c\n\n"
    # The second BOM is part of a field name, so that line is an unknown field.
    assert _all_ways(stream) == [_ev("message", b"a"), _ev("message", b"c")]


def test_short_stream_that_looks_like_bom_start() -> None:
    events, _ = _feed_all([b"\xef", b"\xbb"])
    assert events == []
    parser = SseParser()
    assert parser.feed(b"\xef") == []
    assert parser.feed(b"x: 1\ndata: z\n\n") == [_ev("message", b"z")]


def test_id_with_nul_ignored_and_id_persists() -> None:
    stream = b"id: 7\ndata: a\n\nid: bad\x00id\ndata: b\n\ndata: c\n\nid\ndata: d\n\n"
    assert _all_ways(stream) == [
        _ev("message", b"a", "7"),
        _ev("message", b"b", "7"),
        _ev("message", b"c", "7"),
        _ev("message", b"d", ""),
    ]


def test_retry_only_ascii_digits() -> None:
    parser = SseParser()
    parser.feed(b"retry: 1500\n\nretry: 12a\n\nretry: -1\n\n")
    assert parser.retry_ms == 1500
    assert parser.last_event_id == ""


def test_field_without_colon_and_unknown_fields() -> None:
    stream = b"data\nfoo: bar\nevent\ndata: q\n\n"
    assert _all_ways(stream) == [_ev("message", b"\nq")]


def test_only_one_leading_space_removed() -> None:
    assert _all_ways(b"data:   x \n\n") == [_ev("message", b"  x ")]


def test_unterminated_event_returned_incomplete_on_close() -> None:
    assert _all_ways(b'data: {"a":1}\n\ndata: {"b"') == [
        _ev("message", b'{"a":1}'),
        _ev("message", b'{"b"', complete=False),
    ]


def test_oversize_event_dropped_and_counted() -> None:
    big = b"x" * 50
    stream = b"event: big\ndata: " + big + b"\ndata: " + big + b"\n\ndata: ok\n\n"
    for pieces in ([stream], [stream[i : i + 1] for i in range(len(stream))], _splits(stream, 3)):
        events, parser = _feed_all(pieces, cap=80)
        assert events == [
            SseEvent(event="big", data=b"", oversize=True),
            _ev("message", b"ok"),
        ]
        assert parser.oversize_count == 1
        assert parser.oversize_bytes >= 100


def test_oversize_single_line_skipped_without_buffering() -> None:
    stream = b"data: " + b"y" * 500 + b"\nevent: e\n\ndata: next\n\n"
    for pieces in ([stream], _splits(stream, 1), [stream[i : i + 1] for i in range(len(stream))]):
        events, parser = _feed_all(pieces, cap=64)
        assert events == [SseEvent(event="e", data=b"", oversize=True), _ev("message", b"next")]
        assert parser.oversize_count == 1


# --------------------------------------------------------------- oracle (Hypothesis)


def _oracle(stream: bytes) -> list[tuple[str, str, str]]:
    """A direct transcription of the spec on the whole decoded text."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split(r"\r\n|\r|\n", text)
    lines.pop()  # the unterminated tail is never a full line
    out: list[tuple[str, str, str]] = []
    data, etype, last_id = "", "", ""
    for line in lines:
        if line == "":
            if data:
                out.append((etype or "message", data[:-1], last_id))
            data, etype = "", ""
            continue
        if line.startswith(":"):
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data += value + "\n"
        elif name == "event":
            etype = value
        elif name == "id" and "\x00" not in value:
            last_id = value
    return out


_PARTS = st.sampled_from(
    [
        b"data",
        b"data:",
        b"data: ",
        b"event:",
        b"event: x",
        b"id:",
        b"id: 9",
        b"retry: 5",
        b":",
        b": c",
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\n",
        b" ",
        b"a",
        b'{"k":1}',
        b"\xef\xbb\xbf",
        b"\x00",
        b"\xc3\xa9",
        b"\xff",
    ]
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_PARTS, max_size=40), cuts=st.lists(st.integers(0, 400), max_size=12))
def test_matches_spec_oracle_under_any_split(parts: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(parts)
    points = sorted({c for c in cuts if c <= len(stream)})
    pieces, prev = [], 0
    for c in [*points, len(stream)]:
        pieces.append(stream[prev:c])
        prev = c
    parser = SseParser()
    got: list[SseEvent] = []
    for piece in pieces:
        got.extend(parser.feed(piece))
    complete = [(e.event, e.data.decode("utf-8", "replace"), e.last_event_id) for e in got]
    assert complete == _oracle(stream)
    assert all(e.complete for e in got)
