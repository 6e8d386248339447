"""Issue 8's accuracy defects, each through the whole pipeline from a wire file.

The files (fixtures/wire/, "Written from documented shapes" in INDEX.md) follow
the providers' documented response shapes. Each is replayed as one HTTP/1.1
exchange on 127.0.0.1 (chunked with one chunk per SSE event for streams),
whole, one byte per Chunk and in random splits; all must give the same event.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from decimal import Decimal

import pytest

from lumen_sniff.model import (
    Chunk,
    ConnKey,
    Direction,
    PipelineOutput,
    ProcessInfo,
    Usage,
    UsageEvent,
    UsageSource,
)
from lumen_sniff.pipeline import Pipeline, PipelineSettings
from lumen_sniff.pricing.prices import Pricer
from lumen_sniff.serialize import event_from_dict, event_to_csv_row, event_to_dict
from tests.support.wire import WIRE_DIR

CONN = ConnKey(source="bpf", pid=777, handle=0xABC)
PROC = ProcessInfo(pid=777, comm="python3")
T0 = 1_763_460_000_000_000_000


def _wire(name: str) -> tuple[bytes, bytes]:
    raw = (WIRE_DIR / name).read_bytes()
    kept = b"".join(line for line in raw.splitlines(keepends=True) if not line.startswith(b"#"))
    head, _, body = kept.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", body


def _response_writes(name: str) -> list[bytes]:
    head, body = _wire(name)
    if b"transfer-encoding: chunked" not in head.lower():
        return [head + body]
    events = [e + b"\n\n" for e in body.split(b"\n\n") if e]
    return [head] + [b"%x\r\n%s\r\n" % (len(e), e) for e in events] + [b"0\r\n\r\n"]


def _chunks(
    target: str, host: str, headers: str, body: dict[str, object], name: str
) -> list[Chunk]:
    payload = json.dumps(body).encode()
    request = (
        f"POST {target} HTTP/1.1\r\nHost: {host}\r\n{headers}"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    out = [Chunk(conn=CONN, direction=Direction.EGRESS, offset=0, ts_ns=T0, data=request,
                 process=PROC)]
    offset = 0
    for i, data in enumerate(_response_writes(name), start=1):
        out.append(Chunk(conn=CONN, direction=Direction.INGRESS, offset=offset,
                         ts_ns=T0 + i * 1_000_000, data=data, process=PROC))
        offset += len(data)
    return out


def _split(chunks: list[Chunk], rng: random.Random | None) -> list[Chunk]:
    out = []
    for chunk in chunks:
        data = chunk.data
        if rng is None:
            bounds = list(range(len(data) + 1))
        else:
            inner = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8))))
            bounds = [0, *inner, len(data)]
        for a, b in itertools.pairwise(bounds):
            out.append(dataclasses.replace(chunk, offset=chunk.offset + a, data=data[a:b]))
    return out


def _event(chunks: list[Chunk]) -> UsageEvent:
    def run(feed: list[Chunk]) -> list[PipelineOutput]:
        pipeline = Pipeline(PipelineSettings(key_salt=b"accuracy"))
        return [o for c in feed for o in pipeline.feed(c)] + pipeline.close()

    whole = run(chunks)
    assert run(_split(chunks, None)) == whole
    assert run(_split(chunks, random.Random(len(chunks)))) == whole
    (event,) = [o for o in whole if isinstance(o, UsageEvent)]
    return event


ANTHROPIC = "x-api-key: sk-ant-api03-test-key-000000\r\nanthropic-version: 2023-06-01\r\n"
OPENAI = "Authorization: Bearer sk-test-key-00000000000000\r\n"
GOOGLE = "x-goog-api-key: AIza-test-key-000000000000\r\n"
MSG = {"model": "claude-sonnet-4-5", "max_tokens": 1024,
       "messages": [{"role": "user", "content": "How many r's in strawberry?"}]}


def _price(provider: str, model: str, usage: Usage) -> Decimal | None:
    return Pricer().price(provider, model, usage, T0).cost_usd


@pytest.mark.parametrize(
    ("name", "stream", "counts"),
    [
        ("anthropic_messages_thinking_tokens.txt", False, (2096, 310, 2048, 0, 256)),
        ("anthropic_messages_stream_thinking_tokens.txt", True, (48, 180, 0, 0, 150)),
    ],
)
def test_anthropic_thinking_tokens_are_reasoning_inside_output(
    name: str, stream: bool, counts: tuple[int, ...]
) -> None:
    ev = _event(_chunks("/v1/messages", "api.anthropic.com", ANTHROPIC,
                        {**MSG, "stream": stream}, name))
    got = (ev.input_tokens, ev.output_tokens, ev.cache_read_tokens, ev.cache_write_tokens,
           ev.reasoning_tokens)
    assert got == counts
    assert ev.usage_source is UsageSource.REPORTED and ev.complete
    assert ev.usage_flags == ()
    assert ev.model == "claude-sonnet-4-5-20250929"
    assert ev.cost_usd is not None and ev.cost_usd > 0


def test_gemini_models_prefix_is_dropped_and_priced() -> None:
    ev = _event(_chunks("/v1beta/models/gemini-2.5-pro:generateContent",
                        "generativelanguage.googleapis.com", GOOGLE,
                        {"contents": [{"parts": [{"text": "Hello"}], "role": "user"}]},
                        "gemini_model_version_models_prefix.txt"))
    assert ev.model == "gemini-2.5-pro"
    assert (ev.input_tokens, ev.output_tokens, ev.reasoning_tokens) == (9, 124, 120)
    usage = Usage(input_tokens=9, output_tokens=124, reasoning_tokens=120,
                  source=UsageSource.REPORTED)
    assert ev.cost_usd is not None
    assert ev.cost_usd == _price("google", "gemini-2.5-pro", usage)


def test_responses_compact_is_recognised_and_billed() -> None:
    ev = _event(_chunks("/v1/responses/compact", "api.openai.com", OPENAI,
                        {"model": "gpt-5.1-codex-max", "input": [{"role": "user",
                                                                  "content": "hi"}]},
                        "openai_responses_compact.txt"))
    assert (ev.provider, ev.api, ev.model) == ("openai", "responses_compact", "gpt-5.1-codex-max")
    assert (ev.input_tokens, ev.output_tokens, ev.cache_read_tokens, ev.reasoning_tokens) == (
        5210, 612, 4096, 384)
    assert ev.usage_source is UsageSource.REPORTED and ev.complete
    usage = Usage(input_tokens=5210, output_tokens=612, cache_read_tokens=4096,
                  reasoning_tokens=384, source=UsageSource.REPORTED)
    assert ev.cost_usd is not None
    assert ev.cost_usd == _price("openai", "gpt-5.1-codex-max", usage)


def test_error_chunk_usage_is_kept_and_the_event_says_it_errored() -> None:
    ev = _event(_chunks("/api/v1/chat/completions", "openrouter.ai", OPENAI,
                        {"model": "deepseek/deepseek-chat-v3.1", "stream": True,
                         "messages": [{"role": "user", "content": "hi"}]},
                        "openrouter_stream_error_chunk_usage.txt"))
    assert ev.provider == "openrouter" and ev.status == 200 and ev.stream
    assert (ev.input_tokens, ev.output_tokens) == (57, 3)
    assert ev.usage_source is UsageSource.REPORTED  # the wire's numbers, not an estimate
    assert ev.provider_cost_usd == Decimal("0.0000201")
    assert ev.error_type == "bad_gateway"  # error.code 502
    assert ev.complete is False
    assert ev.usage_flags == ()


def test_self_contradicting_usage_is_recorded_as_reported_and_flagged() -> None:
    ev = _event(_chunks("/v1/chat/completions", "api.openai.com", OPENAI,
                        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                        "openai_chat_usage_contradicts_itself.txt"))
    assert (ev.input_tokens, ev.output_tokens, ev.cache_read_tokens, ev.reasoning_tokens) == (
        20, 2, 64, 5)  # as reported, never "fixed"
    assert ev.usage_source is UsageSource.REPORTED
    assert ev.usage_flags == ("cache_exceeds_input", "reasoning_exceeds_output")
    assert ev.cost_usd is None  # no uncached input count to price from
    d = event_to_dict(ev)
    assert d["usage_flags"] == ["cache_exceeds_input", "reasoning_exceeds_output"]
    assert event_from_dict(json.loads(json.dumps(d)), started_ns=ev.started_ns) == ev
    assert "cache_exceeds_input,reasoning_exceeds_output" in event_to_csv_row(ev)


def test_reasoning_over_output_alone_is_flagged_but_priced() -> None:
    from lumen_sniff.providers.extractor import usage_flags

    assert usage_flags(10, 2, 0, 0, 5) == ("reasoning_exceeds_output",)
    assert usage_flags(10, 2, 6, 4, 2) == ()
    assert usage_flags(10, 2, 6, 5, 2) == ("cache_exceeds_input",)


def test_flags_survive_the_store_row() -> None:
    from lumen_sniff.store.rows import EVENT_COLUMNS, event_from_row, event_to_row

    ev = _event(_chunks("/v1/chat/completions", "api.openai.com", OPENAI,
                        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                        "openai_chat_usage_contradicts_itself.txt"))
    row = dict(zip(EVENT_COLUMNS, event_to_row(ev), strict=True))
    assert row["usage_flags"] == "cache_exceeds_input,reasoning_exceeds_output"
    assert event_from_row(row) == ev
