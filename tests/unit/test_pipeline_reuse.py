"""A connection key reused after an ignored connection closed is judged afresh.

Allocators hand a freed SSL* to the next connection at once, so (tgid, SSL*)
keys repeat. Forgetting the "ignore" verdict at close is what keeps the next
connection on the same key from being dropped unseen.
"""

from __future__ import annotations

import json

from lumen_sniff.model import Chunk, ConnKey, Direction, IgnoreConnection, UsageEvent
from lumen_sniff.pipeline import Pipeline, PipelineSettings

KEY = ConnKey(source="bpf", pid=42, handle=0x7F00_1234)


def _conn(request: bytes, response: bytes, ts_ns: int) -> list[Chunk]:
    return [
        Chunk(conn=KEY, direction=Direction.EGRESS, offset=0, ts_ns=ts_ns, data=request),
        Chunk(conn=KEY, direction=Direction.INGRESS, offset=0, ts_ns=ts_ns + 1000, data=response),
        Chunk(
            conn=KEY,
            direction=Direction.EGRESS,
            offset=len(request),
            ts_ns=ts_ns + 2000,
            data=b"",
            closed=True,
        ),
    ]


def _chat() -> tuple[bytes, bytes]:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    request = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n"
        f"Authorization: Bearer sk-test-abcdefghijklmnop1234\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    answer = json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        }
    )
    response = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(answer)}\r\n\r\n{answer}"
    ).encode()
    return request, response


def test_reused_key_after_an_ignored_connection_is_seen() -> None:
    pipeline = Pipeline(PipelineSettings(key_salt=b"s"))
    health = _conn(
        b"GET /health HTTP/1.1\r\nHost: db.internal\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        1_000_000,
    )
    first = [out for c in health for out in pipeline.feed(c)]
    assert [type(o) for o in first] == [IgnoreConnection]
    request, response = _chat()
    second = [out for c in _conn(request, response, 2_000_000) for out in pipeline.feed(c)]
    events = [o for o in second if isinstance(o, UsageEvent)]
    assert len(events) == 1
    assert (events[0].input_tokens, events[0].output_tokens) == (11, 3)
