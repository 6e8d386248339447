"""Streamed JSON array splitter: Gemini framing, strings and escapes, bounds."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.protocol.jsonarray import JsonArraySplitter


def _run(pieces: list[bytes], cap: int = 4 << 20) -> tuple[list[bytes], JsonArraySplitter]:
    splitter = JsonArraySplitter(max_element_bytes=cap)
    out: list[bytes] = []
    for piece in pieces:
        out.extend(splitter.feed(piece))
    out.extend(splitter.close())
    return out, splitter


def _ways(data: bytes, seed: int = 0) -> list[list[bytes]]:
    rng = random.Random(seed)
    ways = [[data], [data[i : i + 1] for i in range(len(data))]]
    for _ in range(4):
        cuts = sorted(rng.sample(range(len(data) + 1), k=min(6, len(data) + 1)))
        ways.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    return ways


GEMINI = (
    b'[{\n  "candidates": [{"content": {"parts": [{"text": "a } ] \\" [ {"}]}}],\n'
    b'  "usageMetadata": {"promptTokenCount": 2}\n}\r\n,\r\n{\n  "usageMetadata": '
    b'{"promptTokenCount": 2, "candidatesTokenCount": 9}\n}\n]'
)


def test_gemini_array_elements_any_split() -> None:
    for pieces in _ways(GEMINI):
        elements, splitter = _run(pieces)
        docs = [json.loads(e) for e in elements]
        assert docs[0]["candidates"][0]["content"]["parts"][0]["text"] == 'a } ] " [ {'
        assert docs[1]["usageMetadata"] == {"promptTokenCount": 2, "candidatesTokenCount": 9}
        assert len(docs) == 2
        assert splitter.ended and splitter.started and not splitter.not_array


def test_scalars_strings_and_nested_arrays() -> None:
    data = b'\xef\xbb\xbf [1, -2.5e3 ,"x\\\\",true,null,[[],{}],"\\"]"] '
    for pieces in _ways(data):
        elements, splitter = _run(pieces)
        assert [json.loads(e) for e in elements] == [1, -2500.0, "x\\", True, None, [[], {}], '"]']
        assert splitter.ended
        assert splitter.trailing_bytes == 0


def test_not_an_array_is_flagged() -> None:
    elements, splitter = _run([b'{"error": {"code": 400}}'])
    assert elements == []
    assert splitter.not_array and not splitter.started


def test_cut_array_keeps_finished_elements_only() -> None:
    elements, splitter = _run([b'[{"a":1},{"b":'])
    assert elements == [b'{"a":1}']
    assert splitter.started and not splitter.ended


def test_trailing_garbage_counted() -> None:
    _, splitter = _run([b"[1] x y"])
    assert splitter.trailing_bytes == 2


def test_oversize_element_dropped_and_scan_continues() -> None:
    data = b'[{"t":"' + b"q" * 200 + b'"},{"ok":true}]'
    for pieces in _ways(data):
        elements, splitter = _run(pieces, cap=50)
        assert elements == [b'{"ok":true}']
        assert splitter.oversize_count == 1
        assert splitter.oversize_bytes == 208


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab"\\{}[], \n\u00e9'),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(_JSON, max_size=6),
    seed=st.integers(0, 10_000),
    indent=st.sampled_from([None, 2]),
)
def test_roundtrip_any_split(values: list[Any], seed: int, indent: int | None) -> None:
    data = json.dumps(values, indent=indent, ensure_ascii=False).encode()
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(len(data) + 1), k=min(8, len(data) + 1)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    elements, splitter = _run(pieces)
    assert [json.loads(e) for e in elements] == values
    assert splitter.ended
