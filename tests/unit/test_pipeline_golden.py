"""Golden tests: recorded API responses through the whole pure pipeline.

Each case pairs a response from fixtures/wire/ (re-framed the way the real
server sent it: gzip and chunked when the recording says so, one chunked write
per SSE event) with the request the official Python SDK sends for it (heads
from request_python_sdks.txt), as Chunks of one HTTP/1.1 connection on
127.0.0.1. The expected UsageEvent is built here field by field: token counts
read off the recordings, cost from genai-prices' published per-million prices,
id and key fingerprint recomputed with hashlib/hmac. Every case is also fed one
byte per Chunk and in random splits, and must give the identical event.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import random
import zlib
from dataclasses import dataclass, field, replace
from decimal import Decimal

import pytest

from lumen_sniff.model import (
    Chunk,
    ConnKey,
    Direction,
    IgnoreConnection,
    PipelineOutput,
    ProcessInfo,
    UsageEvent,
    UsageSource,
)
from lumen_sniff.pipeline import Pipeline, PipelineSettings
from tests.support.chunks import split_chunks
from tests.support.wire import WIRE_DIR

WIRE = WIRE_DIR
SALT = b"golden-salt"
T0_NS = 1_795_441_565_123_456_000
"""2026-11-23T13:46:05.123456Z: time of the request's first byte."""
T0_ISO = "2026-11-23T13:46:05.123456Z"
HEAD_DELAY_NS = 250_000_000
STEP_NS = 20_000_000
CONN = ConnKey(source="bpf", pid=31337, handle=0x7F00DEAD0000)
PROCESS = ProcessInfo(pid=31337, tid=31338, comm="python3", exe="/usr/bin/python3.11")
M = Decimal(1_000_000)

OPENAI_KEY = "sk-proj-Q1w2E3r4T5y6U7i8O9p0AsDfGhJkL"
ANTHROPIC_KEY = "sk-ant-api03-ZxCvBnM1234567890qwertyUIOP"
GOOGLE_KEY = "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStU"

_OPENAI_HEAD = """POST {target} HTTP/1.1
Host: api.openai.com
Accept-Encoding: gzip, deflate
Connection: keep-alive
Authorization: Bearer {key}
Accept: application/json
Content-Type: application/json
User-Agent: OpenAI/Python 2.54.0
X-Stainless-Lang: python
X-Stainless-Package-Version: 2.54.0
X-Stainless-OS: Linux
X-Stainless-Arch: x64
X-Stainless-Runtime: CPython
X-Stainless-Runtime-Version: 3.11.7
X-Stainless-Async: false
x-stainless-retry-count: 0
x-stainless-read-timeout: 600
{extra}Content-Length: {length}
"""
_ANTHROPIC_HEAD = """POST {target} HTTP/1.1
Host: api.anthropic.com
Accept-Encoding: gzip, deflate
Connection: keep-alive
x-stainless-timeout: 600
x-stainless-retry-count: 0
x-stainless-read-timeout: 600
Accept: application/json
Content-Type: application/json
User-Agent: Anthropic/Python 1.13.0
X-Stainless-Lang: python
X-Stainless-Package-Version: 1.13.0
X-Stainless-OS: Linux
X-Stainless-Arch: x64
X-Stainless-Runtime: CPython
X-Stainless-Runtime-Version: 3.11.7
X-Api-Key: {key}
X-Stainless-Async: false
anthropic-version: 2023-06-01
{extra}Content-Length: {length}
"""
_GENAI_HEAD = """POST {target} HTTP/1.1
Host: generativelanguage.googleapis.com
Accept: */*
Accept-Encoding: gzip, deflate
Connection: keep-alive
Content-Type: application/json
x-goog-api-key: {key}
user-agent: google-genai-sdk/2.25.0 gl-python/3.11.7
x-goog-api-client: google-genai-sdk/2.25.0 gl-python/3.11.7
{extra}Content-Length: {length}
"""
_HTTPX_HEAD = """POST {target} HTTP/1.1
Host: generativelanguage.googleapis.com
Accept: */*
Accept-Encoding: gzip, deflate
Connection: keep-alive
User-Agent: python-httpx/0.28.1
x-goog-api-key: {key}
Content-Type: application/json
{extra}Content-Length: {length}
"""
_CLIENTS = {
    "openai": (_OPENAI_HEAD, OPENAI_KEY),
    "anthropic": (_ANTHROPIC_HEAD, ANTHROPIC_KEY),
    "genai": (_GENAI_HEAD, GOOGLE_KEY),
    "httpx": (_HTTPX_HEAD, GOOGLE_KEY),
}


@dataclass(frozen=True)
class Prices:
    """genai-prices' published USD per million tokens for a model, at T0."""

    input: Decimal
    output: Decimal = Decimal(0)
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None

    def cost(self, inp: int, out: int, read: int, write: int) -> Decimal:
        read_rate = self.input if self.cache_read is None else self.cache_read
        write_rate = self.input if self.cache_write is None else self.cache_write
        total = (inp - read - write) * self.input + read * read_rate + write * write_rate
        return (total + out * self.output) / M


@dataclass(frozen=True)
class Case:
    """One recorded response, the SDK request for it, and what must come out."""

    wire: str
    client: str
    target: str
    body: dict[str, object]
    provider: str
    api: str
    model: str | None
    stream: bool
    status: int = 200
    tokens: tuple[int, int, int, int, int] | None = (0, 0, 0, 0, 0)
    """(input, output, cache_read, cache_write, reasoning); None: estimated."""
    source: UsageSource = UsageSource.REPORTED
    prices: Prices | None = None
    error_type: str | None = None
    complete: bool = True
    extra_headers: tuple[tuple[str, str], ...] = ()
    tenant: str | None = None
    path: str = field(default="")


GPT_4O_MINI = Prices(Decimal("0.15"), Decimal("0.6"), Decimal("0.075"))
GPT_5 = Prices(Decimal("1.25"), Decimal(10), Decimal("0.125"))
GPT_5_MINI = Prices(Decimal("0.25"), Decimal(2), Decimal("0.025"))
GPT_5_NANO = Prices(Decimal("0.05"), Decimal("0.4"), Decimal("0.005"))
GPT_5_5 = Prices(Decimal(5), Decimal(30), Decimal("0.5"))
GPT_35 = Prices(Decimal("0.5"), Decimal("1.5"))
ADA_002 = Prices(Decimal("0.1"))
SONNET = Prices(Decimal(3), Decimal(15), Decimal("0.3"), Decimal("3.75"))
HAIKU_45 = Prices(Decimal(1), Decimal(5), Decimal("0.1"), Decimal("1.25"))
OPUS_46 = Prices(Decimal(5), Decimal(25), Decimal("0.5"), Decimal("6.25"))
FLASH_25 = Prices(Decimal("0.3"), Decimal("2.5"), Decimal("0.03"))
FLASH_36 = Prices(Decimal("0.75"), Decimal("3.75"), Decimal("0.075"))
FLASH_LITE_20 = Prices(Decimal("0.075"), Decimal("0.3"))
EMBED_2 = Prices(Decimal("0.2"))

_HI = [{"role": "user", "content": "hi"}]
_GEMINI_HI = {"contents": [{"parts": [{"text": "hi"}], "role": "user"}]}
_STREAM_USAGE = {"stream": True, "stream_options": {"include_usage": True}}

CASES = [
    Case(
        "openai_chat_nonstream_cached.txt", "openai", "/v1/chat/completions",
        {"messages": _HI, "model": "gpt-4o-mini"},
        "openai", "chat", "gpt-4o-mini-2024-07-18", False,
        tokens=(1149, 353, 1024, 0, 0), prices=GPT_4O_MINI,
        extra_headers=(("x-tenant-id", "team-search"),), tenant="team-search",
    ),
    Case(
        "openai_chat_nonstream_reasoning.txt", "openai", "/v1/chat/completions",
        {"messages": _HI, "model": "gpt-5", "max_completion_tokens": 500, "user": "end-user-7"},
        "openai", "chat", "gpt-5-2025-08-07", False,
        tokens=(15, 75, 0, 0, 64), prices=GPT_5, tenant="end-user-7",
    ),
    Case(
        "openai_chat_stream_usage.txt", "openai", "/v1/chat/completions",
        {"messages": _HI, "model": "gpt-5-mini", "max_completion_tokens": 50} | _STREAM_USAGE,
        "openai", "chat", "gpt-5-mini-2025-08-07", True,
        tokens=(13, 50, 0, 0, 50), prices=GPT_5_MINI,
    ),
    Case(
        "openai_chat_stream_usage_content.txt", "openai", "/v1/chat/completions",
        {"messages": _HI, "model": "gpt-4o-mini"} | _STREAM_USAGE,
        "openai", "chat", "gpt-4o-mini-2024-07-18", True,
        tokens=(87, 26, 0, 0, 0), prices=GPT_4O_MINI,
    ),
    Case(
        "openai_chat_stream_nousage.txt", "openai", "/v1/chat/completions",
        {"messages": _HI, "model": "gpt-3.5-turbo", "stream": True},
        "openai", "chat", "gpt-3.5-turbo-0125", True,
        tokens=None, source=UsageSource.ESTIMATED, prices=GPT_35,
    ),
    Case(
        "openai_embeddings.txt", "openai", "/v1/embeddings",
        {"input": "hi", "model": "text-embedding-ada-002", "encoding_format": "base64"},
        "openai", "embeddings", "text-embedding-ada-002-v2", False,
        tokens=(8, 0, 0, 0, 0), prices=ADA_002,
    ),
    Case(
        "openai_responses_nonstream.txt", "openai", "/v1/responses",
        {"input": "hi", "model": "gpt-5-nano"},
        "openai", "responses", "gpt-5-nano-2025-08-07", False,
        tokens=(11, 327, 0, 0, 320), prices=GPT_5_NANO,
    ),
    Case(
        "openai_responses_stream.txt", "openai", "/v1/responses",
        {"input": "hi", "model": "gpt-5.5", "stream": True},
        "openai", "responses", "gpt-5.5-2026-04-23", True,
        tokens=(11, 5, 0, 0, 0), prices=GPT_5_5,
    ),
    Case(
        "openai_error_400.txt", "openai", "/v1/chat/completions",
        {"messages": _HI, "model": "gpt-5", "max_tokens": 10},
        "openai", "chat", "gpt-5", False, status=400, source=UsageSource.NONE,
        prices=GPT_5, error_type="unsupported_parameter",
    ),
    Case(
        "openai_error_404_on_stream_request.txt", "openai", "/v1/chat/completions",
        {"messages": _HI, "model": "gpt-nonexistent-1", "stream": True},
        "openai", "chat", "gpt-nonexistent-1", False, status=404, source=UsageSource.NONE,
        error_type="model_not_found",
    ),
    Case(
        "openai_error_429.txt", "openai", "/v1/chat/completions",
        {"messages": _HI, "model": "gpt-4o-mini"},
        "openai", "chat", "gpt-4o-mini", False, status=429, source=UsageSource.NONE,
        prices=GPT_4O_MINI, error_type="rate_limit_exceeded",
    ),
    Case(
        "anthropic_messages_nonstream_cache_write.txt", "anthropic", "/v1/messages",
        {"max_tokens": 16000, "messages": _HI, "model": "claude-sonnet-4-0"},
        "anthropic", "messages", "claude-sonnet-4-20250514", False,
        tokens=(8 + 4167, 204, 0, 4167, 0), prices=SONNET,
    ),
    Case(
        "anthropic_messages_nonstream_cache_read.txt", "anthropic", "/v1/messages",
        {"max_tokens": 16000, "messages": _HI, "model": "claude-sonnet-4-0",
         "metadata": {"user_id": "acct-99"}},
        "anthropic", "messages", "claude-sonnet-4-20250514", False,
        tokens=(12 + 4167, 350, 4167, 0, 0), prices=SONNET, tenant="acct-99",
    ),
    Case(
        "anthropic_messages_stream.txt", "anthropic", "/v1/messages",
        {"max_tokens": 8192, "messages": _HI, "model": "claude-sonnet-4-5", "stream": True},
        "anthropic", "messages", "claude-sonnet-4-5-20250929", True,
        tokens=(17, 10, 0, 0, 0), prices=SONNET,
    ),
    Case(
        "anthropic_messages_stream_cache_read.txt", "anthropic", "/v1/messages",
        {"max_tokens": 1024, "messages": _HI, "model": "claude-3-5-sonnet-20240620",
         "stream": True},
        "anthropic", "messages", "claude-3-5-sonnet-20240620", True,
        tokens=(4 + 1165, 221, 1165, 0, 0), prices=SONNET,
    ),
    Case(
        "anthropic_messages_stream_gzip_tooluse.txt", "anthropic", "/v1/messages",
        {"max_tokens": 8192, "messages": _HI, "model": "claude-haiku-4-5-20251001",
         "stream": True},
        "anthropic", "messages", "claude-haiku-4-5-20251001", True,
        tokens=(542, 62, 0, 0, 0), prices=HAIKU_45,
    ),
    Case(
        "anthropic_error_400.txt", "anthropic", "/v1/messages?beta=true",
        {"max_tokens": 4096, "messages": _HI, "model": "claude-opus-4-6", "stream": False},
        "anthropic", "messages", "claude-opus-4-6", False, status=400,
        source=UsageSource.NONE, prices=OPUS_46, error_type="invalid_request_error",
        path="/v1/messages",
    ),
    Case(
        "anthropic_error_404.txt", "anthropic", "/v1/messages",
        {"max_tokens": 16000, "messages": _HI, "model": "this-model-does-not-exist-12345"},
        "anthropic", "messages", "this-model-does-not-exist-12345", False, status=404,
        source=UsageSource.NONE, error_type="not_found_error",
    ),
    Case(
        "anthropic_error_429.txt", "anthropic", "/v1/messages",
        {"max_tokens": 1024, "messages": _HI, "model": "claude-sonnet-4-0"},
        "anthropic", "messages", "claude-sonnet-4-0", False, status=429,
        source=UsageSource.NONE, prices=SONNET, error_type="rate_limit_error",
    ),
    Case(
        "gemini_generate_content_cached.txt", "genai",
        "/v1beta/models/gemini-2.5-flash:generateContent", _GEMINI_HI,
        "google", "generate_content", "gemini-2.5-flash", False,
        tokens=(3797, 656 + 1549, 3055, 0, 1549), prices=FLASH_25,
    ),
    Case(
        "gemini_stream_sse.txt", "genai",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", _GEMINI_HI,
        "google", "generate_content", "gemini-2.5-flash", True,
        tokens=(13, 63 + 75, 0, 0, 75), prices=FLASH_25,
    ),
    Case(
        "gemini_stream_sse_thoughts.txt", "genai",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", _GEMINI_HI,
        "google", "generate_content", "gemini-2.5-flash", True,
        tokens=(30, 1947, 0, 0, 1947), prices=FLASH_25,
    ),
    Case(
        "gemini_stream_json_array.txt", "httpx",
        "/v1beta/models/gemini-flash-latest:streamGenerateContent", _GEMINI_HI,
        "google", "generate_content", "gemini-3.6-flash", True,
        tokens=(2, 9 + 179, 0, 0, 179), prices=FLASH_36,
    ),
    Case(
        "gemini_embeddings.txt", "httpx",
        "/v1beta/models/gemini-embedding-2:batchEmbedContents",
        {"requests": [{"model": "models/gemini-embedding-2",
                       "content": {"parts": [{"text": "Some text goes here"}]}}]},
        "google", "embed_content", "gemini-embedding-2", False,
        tokens=(4, 0, 0, 0, 0), prices=EMBED_2,
    ),
    Case(
        "gemini_error_400_on_stream_request.txt", "genai",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", _GEMINI_HI,
        "google", "generate_content", "gemini-2.5-flash", False, status=400,
        source=UsageSource.NONE, prices=FLASH_25, error_type="INVALID_ARGUMENT",
    ),
    Case(
        "gemini_error_404.txt", "genai",
        "/v1beta/models/this-model-does-not-exist-12345:generateContent", _GEMINI_HI,
        "google", "generate_content", "this-model-does-not-exist-12345", False, status=404,
        source=UsageSource.NONE, error_type="NOT_FOUND",
    ),
    Case(
        "gemini_error_429.txt", "genai",
        "/v1beta/models/gemini-2.0-flash-lite:generateContent", _GEMINI_HI,
        "google", "generate_content", "gemini-2.0-flash-lite", False, status=429,
        source=UsageSource.NONE, prices=FLASH_LITE_20, error_type="RESOURCE_EXHAUSTED",
    ),
]


# ------------------------------------------------------------------ wire building


def _recorded(name: str) -> tuple[list[bytes], bytes]:
    """Header lines and decoded body of a wire file (``#`` lines dropped)."""
    raw = (WIRE / name).read_bytes()
    text = b"".join(line for line in raw.splitlines(keepends=True) if not line.startswith(b"#"))
    head, _, body = text.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


def _events_of(body: bytes) -> list[bytes]:
    """The body cut after each SSE blank line (how the servers flush), else whole."""
    pieces: list[bytes] = []
    start = 0
    for sep in (b"\r\n\r\n", b"\n\n"):
        if sep in body:
            pos = body.find(sep)
            while pos != -1:
                pieces.append(body[start : pos + len(sep)])
                start = pos + len(sep)
                pos = body.find(sep, start)
            break
    if start < len(body):
        pieces.append(body[start:])
    return pieces


def response_writes(name: str) -> list[bytes]:
    """The server's writes: head, then one write per HTTP chunk (or the body)."""
    lines, body = _recorded(name)
    names = [line.split(b":", 1)[0].strip().lower() for line in lines[1:]]
    gzipped = b"content-encoding" in names and any(
        line.lower().startswith(b"content-encoding:") and b"gzip" in line.lower()
        for line in lines
    )
    chunked = any(
        line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower()
        for line in lines
    )
    pieces = _events_of(body)
    if gzipped:
        if len(pieces) > 1:  # gzip SSE: one sync-flushed gzip piece per event
            comp = zlib.compressobj(wbits=31)
            pieces = [comp.compress(p) + comp.flush(zlib.Z_SYNC_FLUSH) for p in pieces]
            pieces[-1] += comp.flush()
        else:
            blob = gzip.compress(body, mtime=0)
            pieces = [blob[i : i + 512] for i in range(0, len(blob), 512)]
    if chunked:
        writes = [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p]
        writes.append(b"0\r\n\r\n")
        head_lines = lines
    else:
        payload = b"".join(pieces)
        writes = [payload]
        head_lines = [
            b"Content-Length: %d" % len(payload)
            if line.lower().startswith(b"content-length:")
            else line
            for line in lines
        ]
    return [b"\r\n".join(head_lines) + b"\r\n\r\n", *writes]


def request_bytes(case: Case) -> bytes:
    template, key = _CLIENTS[case.client]
    body = json.dumps(case.body, separators=(",", ":")).encode()
    extra = "".join(f"{k}: {v}\n" for k, v in case.extra_headers)
    head = template.format(target=case.target, key=key, extra=extra, length=len(body))
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


def exchange_chunks(case: Case, *, closed: bool = False) -> list[Chunk]:
    """Client writes then server writes, as an eBPF capture of the client sees them."""
    request = request_bytes(case)
    split = request.index(b"\r\n\r\n") + 4
    writes = [(Direction.EGRESS, T0_NS, request[:split])]
    writes.append((Direction.EGRESS, T0_NS + 100_000, request[split:]))
    for i, data in enumerate(response_writes(case.wire)):
        writes.append((Direction.INGRESS, T0_NS + HEAD_DELAY_NS + i * STEP_NS, data))
    offsets = {Direction.EGRESS: 0, Direction.INGRESS: 0}
    chunks = []
    for direction, ts, data in writes:
        chunks.append(
            Chunk(conn=CONN, direction=direction, offset=offsets[direction], ts_ns=ts,
                  data=data, process=PROCESS, peer=("127.0.0.1", 443))
        )
        offsets[direction] += len(data)
    if closed:
        last = chunks[-1]
        chunks.append(replace(last, offset=offsets[Direction.INGRESS], data=b"", closed=True))
    return chunks


def run(chunks: list[Chunk], settings: PipelineSettings | None = None) -> list[PipelineOutput]:
    pipeline = Pipeline(settings or PipelineSettings(key_salt=SALT))
    out: list[PipelineOutput] = []
    for chunk in chunks:
        out.extend(pipeline.feed(chunk))
    out.extend(pipeline.close())
    return out


# ---------------------------------------------------------------- expectations


def _key_id(key: str) -> str:
    return "k_" + hmac.new(SALT, key.encode(), hashlib.sha256).hexdigest()[:12] + "…" + key[-4:]


def expected_event(case: Case, got: UsageEvent) -> UsageEvent:
    """The event the case must give; estimated token counts are taken from ``got``."""
    writes = response_writes(case.wire)
    if case.tokens is None:
        inp, out, read, write, reason = (
            got.input_tokens, got.output_tokens, got.cache_read_tokens,
            got.cache_write_tokens, got.reasoning_tokens,
        )
    else:
        inp, out, read, write, reason = case.tokens
    cost = None if case.prices is None else case.prices.cost(inp, out, read, write)
    ident = f"bpf/31337/{0x7F00DEAD0000}/1/{T0_NS}".encode()  # HTTP/1.1: exchange #1
    return UsageEvent(
        id=hashlib.blake2b(ident, digest_size=8).hexdigest(),
        started_at=T0_ISO,
        started_ns=T0_NS,
        provider=case.provider,
        api=case.api,
        model=case.model,
        stream=case.stream,
        status=case.status,
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=reason,
        cost_usd=cost,
        usage_source=case.source,
        pid=31337,
        process="python3",
        duration_ms=(HEAD_DELAY_NS + (len(writes) - 1) * STEP_NS) / 1e6,
        ttft_ms=HEAD_DELAY_NS / 1e6,
        api_key_id=_key_id(_CLIENTS[case.client][1]),
        tenant=case.tenant,
        host="api.openai.com" if case.client == "openai"
        else "api.anthropic.com" if case.client == "anthropic"
        else "generativelanguage.googleapis.com",
        path=case.path or case.target.partition("?")[0],
        complete=case.complete,
        error_type=case.error_type,
        price_source=None if cost is None else "genai-prices 0.2.3",
        provider_cost_usd=None,
        exe="/usr/bin/python3.11",
        container=None,
        unit=None,
        extra={} if case.complete else {"end": "closed"},
    )


def _only_event(outputs: list[PipelineOutput]) -> UsageEvent:
    assert not [o for o in outputs if isinstance(o, IgnoreConnection)]
    events = [o for o in outputs if isinstance(o, UsageEvent)]
    assert len(events) == 1, events
    return events[0]


@pytest.mark.parametrize("case", CASES, ids=[c.wire.removesuffix(".txt") for c in CASES])
def test_golden_event(case: Case) -> None:
    event = _only_event(run(exchange_chunks(case)))
    assert event == expected_event(case, event)
    if case.tokens is None:  # estimated: counted from the stream, never zero
        assert event.output_tokens > 0 and event.input_tokens > 0
    assert OPENAI_KEY not in repr(event) and ANTHROPIC_KEY not in repr(event)
    assert GOOGLE_KEY not in repr(event)


@pytest.mark.parametrize("case", CASES, ids=[c.wire.removesuffix(".txt") for c in CASES])
def test_golden_event_is_split_invariant(case: Case) -> None:
    chunks = exchange_chunks(case)
    whole = run(chunks)
    assert run(split_chunks(chunks, None)) == whole
    rng = random.Random(case.wire)
    for _ in range(5):
        assert run(split_chunks(chunks, rng)) == whole


def test_connection_close_after_the_response_changes_nothing() -> None:
    case = CASES[0]
    assert run(exchange_chunks(case, closed=True)) == run(exchange_chunks(case))


def test_anthropic_midstream_error_is_incomplete_with_its_error_type() -> None:
    case = Case(
        "anthropic_stream_error_midstream.txt", "anthropic", "/v1/messages",
        {"max_tokens": 1024, "messages": _HI, "model": "claude-sonnet-4-5", "stream": True},
        "anthropic", "messages", "claude-sonnet-4-5-20250929", True,
    )
    event = _only_event(run(exchange_chunks(case)))
    assert (event.status, event.error_type, event.complete) == (200, "overloaded_error", False)
    assert event.input_tokens == 25
    assert event.cache_read_tokens == event.cache_write_tokens == 0
    assert event.cost_usd == SONNET.cost(25, event.output_tokens, 0, 0)
