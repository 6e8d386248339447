"""Every recorded response in fixtures/wire/ through classify + new_extractor.

Expected counts are worked out by hand from the files (see each row's comment)
in the normalised convention: input includes cache, output includes reasoning.
Each body is fed whole, one byte at a time and in random splits, and all three
must give the same Extraction.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.model import Headers, UsageSource
from lumen_sniff.providers import Extraction, RequestInfo, classify, new_extractor
from tests.support.wire import WIRE_DIR

WIRE = WIRE_DIR

OPENAI_HDRS = (("authorization", "Bearer sk-test"), ("content-type", "application/json"))
ANTHROPIC_HDRS = (("x-api-key", "sk-ant-test"), ("anthropic-version", "2023-06-01"))
GOOGLE_HDRS = (("x-goog-api-key", "AIza-test"),)


def load(name: str) -> tuple[int, Headers, bytes]:
    """Status, headers and body of a wire file (drop ``#`` lines, split at CRLFCRLF)."""
    raw = (WIRE / name).read_bytes()
    kept = b"".join(line for line in raw.splitlines(keepends=True) if not line.startswith(b"#"))
    head, _, body = kept.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = tuple(
        (k.strip().lower().decode(), v.strip().decode("latin-1"))
        for k, _, v in (line.partition(b":") for line in lines[1:])
    )
    return status, headers, body


def request(url: str, body: bytes, headers: Headers = OPENAI_HDRS) -> RequestInfo:
    parts = urlsplit(url)
    return RequestInfo(
        method="POST",
        host=parts.hostname or "",
        path=parts.path,
        query=parts.query,
        headers=headers,
        body=body,
        body_size=len(body),
        body_truncated=False,
    )


def run(req: RequestInfo, name: str, pieces_of: str = "whole", seed: int = 0) -> Extraction:
    status, headers, body = load(name)
    cls = classify(req)
    assert cls is not None
    ex = new_extractor(cls, req, status, headers)
    if pieces_of == "whole":
        ex.feed(body)
    elif pieces_of == "bytes":
        for i in range(len(body)):
            ex.feed(body[i : i + 1])
    else:
        rng = random.Random(seed)
        i = 0
        while i < len(body):
            step = rng.randint(1, 300)
            ex.feed(body[i : i + step])
            i += step
    return ex.finish(complete=True)


def extract_all_ways(req: RequestInfo, name: str) -> Extraction:
    whole = run(req, name)
    assert run(req, name, "bytes") == whole
    for seed in range(4):
        assert run(req, name, "random", seed) == whole
    return whole


@dataclass(frozen=True)
class Case:
    file: str
    url: str
    body: bytes
    headers: Headers
    want: tuple[int, int, int, int, int]
    """input, output, cache_read, cache_write, reasoning"""
    source: UsageSource
    model: str | None
    stream: bool
    error_type: str | None = None
    complete: bool = True


OA = "https://api.openai.com"
AN = "https://api.anthropic.com"
GG = "https://generativelanguage.googleapis.com/v1beta/models"
R = UsageSource.REPORTED
E = UsageSource.ESTIMATED
N = UsageSource.NONE
CHAT = b'{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o-mini"}'
CHAT_STREAM = b'{"messages":[{"role":"user","content":"hi"}],"model":"gpt-5-mini","stream":true}'
MSG = b'{"max_tokens":10,"messages":[{"role":"user","content":"hi"}],"model":"claude-x"}'
MSG_STREAM = MSG[:-1] + b',"stream":true}'
GEM = b'{"contents": [{"parts": [{"text": "hi"}], "role": "user"}]}'

CASES = [
    # prompt 1149 with cached 1024; completion 353
    Case(
        "openai_chat_nonstream_cached.txt",
        f"{OA}/v1/chat/completions",
        CHAT,
        OPENAI_HDRS,
        (1149, 353, 1024, 0, 0),
        R,
        "gpt-4o-mini-2024-07-18",
        False,
    ),
    # completion 75 includes reasoning 64
    Case(
        "openai_chat_nonstream_reasoning.txt",
        f"{OA}/v1/chat/completions",
        CHAT,
        OPENAI_HDRS,
        (15, 75, 0, 0, 64),
        R,
        "gpt-5-2025-08-07",
        False,
    ),
    # final choices:[] chunk: prompt 13, completion 50 all reasoning
    Case(
        "openai_chat_stream_usage.txt",
        f"{OA}/v1/chat/completions",
        CHAT_STREAM,
        OPENAI_HDRS,
        (13, 50, 0, 0, 50),
        R,
        "gpt-5-mini-2025-08-07",
        True,
    ),
    Case(
        "openai_chat_stream_usage_content.txt",
        f"{OA}/v1/chat/completions",
        CHAT_STREAM,
        OPENAI_HDRS,
        (87, 26, 0, 0, 0),
        R,
        "gpt-4o-mini-2024-07-18",
        True,
    ),
    # no usage: input = ceil(34 text bytes / 4) + 4 per message = 9 + 4;
    # output = 24 non-empty content deltas (27 data lines - role chunk - finish chunk - [DONE])
    Case(
        "openai_chat_stream_nousage.txt",
        f"{OA}/v1/chat/completions",
        b'{"messages":[{"role":"user","content":"Tell me a joke about opentelemetry"}],'
        b'"model":"gpt-3.5-turbo","stream":true}',
        OPENAI_HDRS,
        (13, 24, 0, 0, 0),
        E,
        "gpt-3.5-turbo-0125",
        True,
    ),
    Case(
        "openai_embeddings.txt",
        f"{OA}/v1/embeddings",
        b'{"input":"hi","model":"text-embedding-ada-002","encoding_format":"base64"}',
        OPENAI_HDRS,
        (8, 0, 0, 0, 0),
        R,
        "text-embedding-ada-002-v2",
        False,
    ),
    Case(
        "openai_responses_nonstream.txt",
        f"{OA}/v1/responses",
        b'{"input":"Count","model":"gpt-5-nano"}',
        OPENAI_HDRS,
        (11, 327, 0, 0, 320),
        R,
        "gpt-5-nano-2025-08-07",
        False,
    ),
    Case(
        "openai_responses_stream.txt",
        f"{OA}/v1/responses",
        b'{"input":"pong","model":"gpt-5.5","stream":true}',
        OPENAI_HDRS,
        (11, 5, 0, 0, 0),
        R,
        "gpt-5.5-2026-04-23",
        True,
    ),
    Case(
        "openai_error_400.txt",
        f"{OA}/v1/chat/completions",
        CHAT,
        OPENAI_HDRS,
        (0, 0, 0, 0, 0),
        N,
        None,
        False,
        "unsupported_parameter",
    ),
    Case(
        "openai_error_404_on_stream_request.txt",
        f"{OA}/v1/chat/completions",
        CHAT_STREAM,
        OPENAI_HDRS,
        (0, 0, 0, 0, 0),
        N,
        None,
        False,
        "model_not_found",
    ),
    Case(
        "openai_error_429.txt",
        f"{OA}/v1/chat/completions",
        CHAT,
        OPENAI_HDRS,
        (0, 0, 0, 0, 0),
        N,
        None,
        False,
        "rate_limit_exceeded",
    ),
    # wire input 8 excludes cache: 8 + 4167 written
    Case(
        "anthropic_messages_nonstream_cache_write.txt",
        f"{AN}/v1/messages",
        MSG,
        ANTHROPIC_HDRS,
        (4175, 204, 0, 4167, 0),
        R,
        "claude-sonnet-4-20250514",
        False,
    ),
    # 12 + 4167 read
    Case(
        "anthropic_messages_nonstream_cache_read.txt",
        f"{AN}/v1/messages",
        MSG,
        ANTHROPIC_HDRS,
        (4179, 350, 4167, 0, 0),
        R,
        "claude-sonnet-4-20250514",
        False,
    ),
    # message_delta output 10 overrides message_start's 1
    Case(
        "anthropic_messages_stream.txt",
        f"{AN}/v1/messages",
        MSG_STREAM,
        ANTHROPIC_HDRS,
        (17, 10, 0, 0, 0),
        R,
        "claude-sonnet-4-5-20250929",
        True,
    ),
    # 4 + 1165 read; output 221 from message_delta
    Case(
        "anthropic_messages_stream_cache_read.txt",
        f"{AN}/v1/messages",
        MSG_STREAM,
        ANTHROPIC_HDRS,
        (1169, 221, 1165, 0, 0),
        R,
        "claude-3-5-sonnet-20240620",
        True,
    ),
    Case(
        "anthropic_messages_stream_gzip_tooluse.txt",
        f"{AN}/v1/messages",
        MSG_STREAM,
        ANTHROPIC_HDRS,
        (542, 62, 0, 0, 0),
        R,
        "claude-haiku-4-5-20251001",
        True,
    ),
    # error after message_start: input 25 known, output max(1 placeholder, 1 delta)
    Case(
        "anthropic_stream_error_midstream.txt",
        f"{AN}/v1/messages",
        MSG_STREAM,
        ANTHROPIC_HDRS,
        (25, 1, 0, 0, 0),
        E,
        "claude-sonnet-4-5-20250929",
        True,
        "overloaded_error",
        complete=False,
    ),
    Case(
        "anthropic_error_400.txt",
        f"{AN}/v1/messages",
        MSG,
        ANTHROPIC_HDRS,
        (0, 0, 0, 0, 0),
        N,
        None,
        False,
        "invalid_request_error",
    ),
    Case(
        "anthropic_error_404.txt",
        f"{AN}/v1/messages",
        MSG,
        ANTHROPIC_HDRS,
        (0, 0, 0, 0, 0),
        N,
        None,
        False,
        "not_found_error",
    ),
    Case(
        "anthropic_error_429.txt",
        f"{AN}/v1/messages",
        MSG,
        ANTHROPIC_HDRS,
        (0, 0, 0, 0, 0),
        N,
        None,
        False,
        "rate_limit_error",
    ),
    # prompt 3797 (3055 cached); output 656 + 1549 thoughts
    Case(
        "gemini_generate_content_cached.txt",
        f"{GG}/gemini-2.5-flash:generateContent",
        GEM,
        GOOGLE_HDRS,
        (3797, 2205, 3055, 0, 1549),
        R,
        "gemini-2.5-flash",
        False,
    ),
    # last chunk: prompt 13, candidates 63 + thoughts 75
    Case(
        "gemini_stream_sse.txt",
        f"{GG}/gemini-2.5-flash:streamGenerateContent?alt=sse",
        GEM,
        GOOGLE_HDRS,
        (13, 138, 0, 0, 75),
        R,
        "gemini-2.5-flash",
        True,
    ),
    # last chunk has no candidatesTokenCount: output = thoughts 1947
    Case(
        "gemini_stream_sse_thoughts.txt",
        f"{GG}/gemini-2.5-flash:streamGenerateContent?alt=sse",
        GEM,
        GOOGLE_HDRS,
        (30, 1947, 0, 0, 1947),
        R,
        "gemini-2.5-flash",
        True,
    ),
    # JSON array: last element prompt 2, candidates 9 + thoughts 179
    Case(
        "gemini_stream_json_array.txt",
        f"{GG}/gemini-flash-latest:streamGenerateContent",
        GEM,
        GOOGLE_HDRS,
        (2, 188, 0, 0, 179),
        R,
        "gemini-3.6-flash",
        True,
    ),
    Case(
        "gemini_embeddings.txt",
        f"{GG}/gemini-embedding-2:batchEmbedContents",
        b'{"requests":[{"model":"models/gemini-embedding-2","content":{"parts":[{"text":"x"}]}}]}',
        GOOGLE_HDRS,
        (4, 0, 0, 0, 0),
        R,
        None,
        False,
    ),
    Case(
        "gemini_error_400_on_stream_request.txt",
        f"{GG}/gemini-2.5-flash:streamGenerateContent?alt=sse",
        GEM,
        GOOGLE_HDRS,
        (0, 0, 0, 0, 0),
        N,
        None,
        False,
        "INVALID_ARGUMENT",
    ),
    Case(
        "gemini_error_404.txt",
        f"{GG}/nope:generateContent",
        GEM,
        GOOGLE_HDRS,
        (0, 0, 0, 0, 0),
        N,
        None,
        False,
        "NOT_FOUND",
    ),
    Case(
        "gemini_error_429.txt",
        f"{GG}/gemini-2.0-flash-lite:generateContent",
        GEM,
        GOOGLE_HDRS,
        (0, 0, 0, 0, 0),
        N,
        None,
        False,
        "RESOURCE_EXHAUSTED",
    ),
]


def test_every_response_file_has_a_case() -> None:
    # Files written from documented shapes (not recordings) are covered through
    # the whole pipeline by test_accuracy_defects.py.
    files = {
        p.name
        for p in WIRE.glob("*.txt")
        if not p.name.startswith("request_")
        and not p.read_bytes().startswith(b"# source: written from")
    }
    assert files == {c.file for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.file.removesuffix(".txt") for c in CASES])
def test_wire_file(case: Case) -> None:
    got = extract_all_ways(request(case.url, case.body, case.headers), case.file)
    u = got.usage
    assert (
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
    ) == case.want
    assert u.source is case.source
    assert got.model == case.model
    assert got.stream is case.stream
    assert got.error_type == case.error_type
    assert got.complete is case.complete
    assert u.provider_cost_usd is None


def test_cut_stream_without_final_usage_is_estimated() -> None:
    status, headers, body = load("openai_chat_stream_usage_content.txt")
    cut = body[: body.index(b'"choices":[]')]  # stop before the usage chunk
    req = request(f"{OA}/v1/chat/completions", CHAT_STREAM)
    cls = classify(req)
    assert cls is not None
    ex = new_extractor(cls, req, status, headers)
    ex.feed(cut)
    got = ex.finish(complete=False)
    assert got.usage.source is UsageSource.ESTIMATED
    assert got.complete is False
    # "hi" → ceil(2/4) + 4 per message; 24 non-empty content deltas were streamed
    assert (got.usage.input_tokens, got.usage.output_tokens) == (5, 24)


def test_cut_gemini_stream_keeps_last_usage_but_estimated() -> None:
    status, headers, body = load("gemini_stream_sse.txt")
    first_event_end = body.index(b"\r\n\r\n") + 4
    req = request(f"{GG}/gemini-2.5-flash:streamGenerateContent?alt=sse", GEM, GOOGLE_HDRS)
    cls = classify(req)
    assert cls is not None
    ex = new_extractor(cls, req, status, headers)
    ex.feed(body[:first_event_end])
    got = ex.finish(complete=False)
    assert got.usage.source is UsageSource.ESTIMATED
    assert (got.usage.input_tokens, got.usage.output_tokens, got.usage.reasoning_tokens) == (
        13,
        125,
        75,
    )
    assert got.complete is False


@settings(max_examples=60, deadline=None)
@given(
    case=st.sampled_from([c for c in CASES if c.stream]),
    cuts=st.lists(st.integers(min_value=0, max_value=30_000), max_size=20),
)
def test_stream_files_any_split_points(case: Case, cuts: list[int]) -> None:
    status, headers, body = load(case.file)
    req = request(case.url, case.body, case.headers)
    cls = classify(req)
    assert cls is not None
    ex = new_extractor(cls, req, status, headers)
    prev = 0
    for cut in sorted({min(c, len(body)) for c in cuts}):
        ex.feed(body[prev:cut])
        prev = cut
    ex.feed(body[prev:])
    assert ex.finish(complete=True) == run(req, case.file)
