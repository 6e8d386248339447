"""Hypothesis: arbitrary Chunks never raise out of the pipeline, and memory stays bounded."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumen_sniff.model import Chunk, ConnKey, Direction, UsageEvent, UsageSource
from lumen_sniff.pipeline import Pipeline, PipelineSettings

CAP = 512
MAX_OPEN = 4
T0 = 1_795_441_565_000_000_000

_BODY = json.dumps({"model": "gpt-4o-mini", "stream": True,
                    "messages": [{"role": "user", "content": "hi"}]}).encode()
_PIECES = [
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
    b"Content-Length: %d\r\n\r\n" % len(_BODY) + _BODY,
    b"POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 20\r\n\r\n",
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\n{}",
    b"1a\r\ndata: {\"usage\":{\"prompt_tokens\":3}}\n\n\r\n",
    b"data: [DONE]\n\n",
    b"0\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"\x00\x00\x12\x04\x00\x00\x00\x00\x00",
    b"ffffffff\r\n",
    b"\r\n",
]

_data = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(_PIECES),
    st.lists(st.sampled_from(_PIECES), min_size=1, max_size=4).map(b"".join),
)


@st.composite
def _chunks(draw: st.DrawFn) -> list[Chunk]:
    offsets: dict[tuple[int, Direction], int] = {}
    out = []
    for i in range(draw(st.integers(1, 25))):
        handle = draw(st.integers(1, 3))
        direction = draw(st.sampled_from(Direction))
        data = draw(_data)
        key = (handle, direction)
        offset = offsets.get(key, 0) + draw(st.sampled_from([0, 0, 0, 0, 5, -3]))
        lost = draw(st.sampled_from([0, 0, 0, 0, 7]))
        offsets[key] = max(offset, 0) + len(data) + lost
        out.append(Chunk(
            conn=ConnKey(source="bpf", pid=1, handle=handle), direction=direction,
            offset=max(offset, 0), ts_ns=T0 + i * 1000, data=data, lost_bytes=lost,
            closed=draw(st.booleans()) and draw(st.booleans()),
        ))
    return out


def _check(event: object) -> None:
    if isinstance(event, UsageEvent):
        assert event.usage_source in tuple(UsageSource)
        assert min(event.input_tokens, event.output_tokens, event.cache_read_tokens,
                   event.cache_write_tokens, event.reasoning_tokens) >= 0
        assert event.cost_usd is None or event.cost_usd >= Decimal(0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_chunks(), st.booleans())
def test_arbitrary_chunks_never_raise_and_stay_bounded(chunks: list[Chunk], server: bool) -> None:
    pipeline = Pipeline(PipelineSettings(request_body_cap_bytes=CAP, max_open_exchanges=MAX_OPEN,
                                         max_connections=2, count_server_side=server))
    for chunk in chunks:
        for out in pipeline.feed(chunk):
            _check(out)
        assert pipeline.open_exchanges <= 2 * MAX_OPEN
        held_bodies = pipeline.buffered_bytes - _tracker_bytes(pipeline)
        assert 0 <= held_bodies <= 2 * MAX_OPEN * CAP
    for out in pipeline.close():
        _check(out)
    assert pipeline.open_exchanges == 0
    assert pipeline.buffered_bytes == 0


def _tracker_bytes(pipeline: Pipeline) -> int:
    return int(getattr(pipeline._tracker, "buffered_bytes", 0))


def test_a_huge_request_body_is_not_buffered() -> None:
    pipeline = Pipeline(PipelineSettings(request_body_cap_bytes=64 * 1024))
    conn = ConnKey(source="bpf", pid=1, handle=1)
    size = 8 << 20
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
            b"Content-Length: %d\r\n\r\n" % size)
    offset = 0
    feed = [head] + [b"x" * 65536] * (size // 65536)
    for i, data in enumerate(feed):
        pipeline.feed(Chunk(conn=conn, direction=Direction.EGRESS, offset=offset,
                            ts_ns=T0 + i, data=data))
        offset += len(data)
        assert pipeline.buffered_bytes <= 64 * 1024 + 128 * 1024
    assert pipeline.open_exchanges == 1
