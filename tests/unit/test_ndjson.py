"""NDJSON framer: records, blank lines, CRLF, final line without newline, bounds."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.protocol.ndjson import NdjsonParser


def _run(pieces: list[bytes], cap: int = 4 << 20) -> tuple[list[bytes], NdjsonParser]:
    parser = NdjsonParser(max_record_bytes=cap)
    out: list[bytes] = []
    for piece in pieces:
        out.extend(parser.feed(piece))
    out.extend(parser.close())
    return out, parser


def _ways(data: bytes) -> list[list[bytes]]:
    rng = random.Random(len(data))
    ways = [[data], [data[i : i + 1] for i in range(len(data))]]
    for _ in range(4):
        cuts = sorted(rng.sample(range(len(data) + 1), k=min(5, len(data) + 1)))
        ways.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    return ways


OLLAMA = (
    b'{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant",'
    b'"content":"Hi"},"done":false}\n'
    b'{"model":"llama3.2","created_at":"2025-01-01T00:00:01Z","message":{"role":"assistant",'
    b'"content":""},"done":true,"done_reason":"stop","prompt_eval_count":26,"eval_count":2}\n'
)


def test_ollama_stream_records_any_split() -> None:
    for pieces in _ways(OLLAMA):
        records, _ = _run(pieces)
        assert [json.loads(r)["done"] for r in records] == [False, True]
        assert json.loads(records[1])["eval_count"] == 2


def test_blank_lines_crlf_and_missing_final_newline() -> None:
    data = b'\n{"a":1}\r\n\r\n  {"b":2}  \n{"c":3}'
    for pieces in _ways(data):
        records, _ = _run(pieces)
        assert records == [b'{"a":1}', b'{"b":2}', b'{"c":3}']


def test_oversize_record_dropped_and_counted() -> None:
    data = b'{"x":"' + b"z" * 100 + b'"}\n{"ok":1}\n'
    for pieces in _ways(data):
        records, parser = _run(pieces, cap=40)
        assert records == [b'{"ok":1}']
        assert parser.oversize_count == 1
        assert parser.oversize_bytes == 108


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")), max_size=15),
    seed=st.integers(0, 1000),
)
def test_split_invariance(lines: list[bytes], seed: int) -> None:
    data = b"\n".join(lines)
    expected = [x.strip(b" \t\r\n") for x in lines if x.strip(b" \t\r\n")]
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(len(data) + 1), k=min(4, len(data) + 1)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert _run(pieces)[0] == expected
