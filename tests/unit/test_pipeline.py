"""Pipeline behaviour: connection judgement, incomplete exchanges, conventions, stats."""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import replace
from decimal import Decimal

import pytest

from lumen_sniff.config import PriceOverride
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
from lumen_sniff.pipeline.events import event_id, iso_utc
from lumen_sniff.providers.base import RequestInfo

T0 = 1_795_441_565_000_000_000
M = Decimal(1_000_000)
PROC = ProcessInfo(pid=77, comm="agent", container="c0ffee", unit="agent.service")


def _conn(handle: int = 1) -> ConnKey:
    return ConnKey(source="bpf", pid=77, handle=handle)


def _request(host: str, target: str, body: dict[str, object] | bytes, *headers: str) -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    lines = [f"POST {target} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
             *headers, f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def _response(body: dict[str, object] | bytes, status: int = 200, *, gz: bool = False) -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = [f"HTTP/1.1 {status} X", "Content-Type: application/json"]
    if gz:
        data = gzip.compress(data)
        headers.append("Content-Encoding: gzip")
    headers.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + data


class Wire:
    """Builds the Chunks of connections, keeping offsets per direction."""

    def __init__(self) -> None:
        self.offsets: dict[tuple[ConnKey, Direction], int] = {}

    def chunk(self, conn: ConnKey, direction: Direction, ts_ns: int, data: bytes,
              *, closed: bool = False, process: ProcessInfo | None = PROC) -> Chunk:
        key = (conn, direction)
        offset = self.offsets.get(key, 0)
        self.offsets[key] = offset + len(data)
        return Chunk(conn=conn, direction=direction, offset=offset, ts_ns=ts_ns, data=data,
                     closed=closed, process=process)


def _feed(pipeline: Pipeline, chunks: list[Chunk], *, close: bool = True) -> list[PipelineOutput]:
    out: list[PipelineOutput] = []
    for chunk in chunks:
        out.extend(pipeline.feed(chunk))
    if close:
        out.extend(pipeline.close())
    return out


def _events(out: list[PipelineOutput]) -> list[UsageEvent]:
    return [o for o in out if isinstance(o, UsageEvent)]


def _exchange(req: bytes, resp: bytes | None, conn: ConnKey | None = None,
              wire: Wire | None = None, t0: int = T0) -> list[Chunk]:
    wire = wire or Wire()
    conn = conn or _conn()
    chunks = [wire.chunk(conn, Direction.EGRESS, t0, req)]
    if resp is not None:
        chunks.append(wire.chunk(conn, Direction.INGRESS, t0 + 400_000_000, resp))
    return chunks


OPENAI_OK = {
    "model": "gpt-4o-mini-2024-07-18",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}],
    "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
              "prompt_tokens_details": {"cached_tokens": 40}},
}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


# -------------------------------------------------------------- conventions


def test_openai_cached_tokens_are_counted_once() -> None:
    req = _request("api.openai.com", "/v1/chat/completions", CHAT, "Authorization: Bearer sk-x")
    [event] = _events(_feed(Pipeline(PipelineSettings()), _exchange(req, _response(OPENAI_OK))))
    assert (event.input_tokens, event.cache_read_tokens, event.output_tokens) == (100, 40, 20)
    expected = 60 * Decimal("0.15") + 40 * Decimal("0.075") + 20 * Decimal("0.6")
    assert event.cost_usd == expected / M


def test_anthropic_cache_counts_join_input() -> None:
    body = {"model": "claude-sonnet-4-20250514", "type": "message", "content": [],
            "usage": {"input_tokens": 100, "cache_creation_input_tokens": 50,
                      "cache_read_input_tokens": 25, "output_tokens": 7}}
    req = _request("api.anthropic.com", "/v1/messages",
                   {"model": "claude-sonnet-4-0", "max_tokens": 5, "messages": []},
                   "anthropic-version: 2023-06-01")
    out = _feed(Pipeline(PipelineSettings()), _exchange(req, _response(body, gz=True)))
    [event] = _events(out)
    assert (event.input_tokens, event.cache_write_tokens, event.cache_read_tokens) == (175, 50, 25)
    assert event.output_tokens == 7
    assert event.cost_usd == (100 * 3 + 50 * Decimal("3.75") + 25 * Decimal("0.3") + 7 * 15) / M


def test_gemini_thoughts_are_output() -> None:
    body = {"candidates": [], "modelVersion": "gemini-2.5-flash",
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5,
                              "thoughtsTokenCount": 7, "totalTokenCount": 22}}
    req = _request("generativelanguage.googleapis.com",
                   "/v1beta/models/gemini-2.5-flash:generateContent", {"contents": []},
                   "x-goog-api-key: AIzaSyA1b2C3d4E5f6G7h8I9j0")
    [event] = _events(_feed(Pipeline(PipelineSettings()), _exchange(req, _response(body))))
    assert (event.input_tokens, event.output_tokens, event.reasoning_tokens) == (10, 12, 7)
    assert event.cost_usd == (10 * Decimal("0.3") + 12 * Decimal("2.5")) / M


# ------------------------------------------------------------- event fields


def test_event_fields_ids_and_times() -> None:
    req = _request("api.openai.com", "/v1/chat/completions?api-version=1", CHAT,
                   "x-tenant-id: blue")
    [event] = _events(_feed(Pipeline(PipelineSettings()), _exchange(req, _response(OPENAI_OK))))
    assert event.id == hashlib.blake2b(f"bpf/77/1/1/{T0}".encode(), digest_size=8).hexdigest()
    assert event.started_at == "2026-11-23T13:46:05.000000Z"
    assert (event.ttft_ms, event.duration_ms) == (400.0, 400.0)
    assert (event.pid, event.process, event.container, event.unit) == (77, "agent", "c0ffee",
                                                                      "agent.service")
    assert (event.host, event.path, event.tenant, event.api_key_id) == (
        "api.openai.com", "/v1/chat/completions", "blue", None)
    assert (event.provider, event.api, event.stream, event.status) == ("openai", "chat", False,
                                                                       200)
    assert event.usage_source is UsageSource.REPORTED and event.complete


def test_iso_utc_and_event_id() -> None:
    assert iso_utc(1_795_441_565_123_456_789) == "2026-11-23T13:46:05.123456Z"
    assert iso_utc(0) == "1970-01-01T00:00:00.000000Z"
    assert iso_utc(-5) == "1970-01-01T00:00:00.000000Z"
    conn = ConnKey(source="pcap", pid=0, handle=9)
    assert event_id(conn, 3, 42) == hashlib.blake2b(b"pcap/0/9/3/42", digest_size=8).hexdigest()
    assert len(event_id(conn, 3, 42)) == 16
    assert event_id(conn, 3, 42) != event_id(conn, 4, 42)


def test_keep_alive_exchanges_get_their_own_events() -> None:
    wire = Wire()
    req = _request("api.openai.com", "/v1/chat/completions", CHAT)
    chunks = _exchange(req, _response(OPENAI_OK), wire=wire)
    chunks += _exchange(req, _response(OPENAI_OK), wire=wire, t0=T0 + 10**9)
    events = _events(_feed(Pipeline(PipelineSettings()), chunks))
    assert [e.started_ns for e in events] == [T0, T0 + 10**9]
    assert events[0].id != events[1].id


def test_unknown_model_is_unpriced_and_counted() -> None:
    body = dict(OPENAI_OK, model="my-private-model")
    req = _request("api.openai.com", "/v1/chat/completions", dict(CHAT, model="my-private-model"))
    pipeline = Pipeline(PipelineSettings())
    [event] = _events(_feed(pipeline, _exchange(req, _response(body))))
    assert (event.cost_usd, event.price_source) == (None, None)
    assert event.input_tokens == 100
    assert pipeline.stats["unpriced"] == 1


def test_config_price_override_prices_it() -> None:
    override = PriceOverride(model="my-private-model", provider=None, input_mtok=Decimal(2),
                             output_mtok=Decimal(8), cache_read_mtok=Decimal(1),
                             cache_write_mtok=Decimal(2))
    body = dict(OPENAI_OK, model="my-private-model")
    req = _request("api.openai.com", "/v1/chat/completions", dict(CHAT, model="my-private-model"))
    pipeline = Pipeline(PipelineSettings(price_overrides=(override,)))
    [event] = _events(_feed(pipeline, _exchange(req, _response(body))))
    assert event.cost_usd == (60 * 2 + 40 * 1 + 20 * 8) / M
    assert event.price_source == "override"


def test_error_has_status_and_zero_usage() -> None:
    err = {"error": {"type": "rate_limit_error", "message": "slow down"}}
    req = _request("api.openai.com", "/v1/chat/completions", CHAT)
    [event] = _events(_feed(Pipeline(PipelineSettings()), _exchange(req, _response(err, 429))))
    assert (event.status, event.input_tokens, event.output_tokens) == (429, 0, 0)
    assert event.usage_source is UsageSource.NONE
    assert event.cost_usd == Decimal(0)  # a known model: errors are not billed


# ----------------------------------------------------- incomplete exchanges


def test_request_without_response_at_close() -> None:
    req = _request("api.openai.com", "/v1/chat/completions", CHAT)
    pipeline = Pipeline(PipelineSettings())
    assert _events(_feed(pipeline, _exchange(req, None), close=False)) == []
    [event] = _events(pipeline.close())
    assert (event.status, event.complete, event.ttft_ms, event.duration_ms) == (0, False, None,
                                                                               None)
    # The provider estimates the input from the request body; nothing was output.
    assert event.usage_source is UsageSource.ESTIMATED
    assert event.input_tokens > 0 and event.output_tokens == 0
    assert event.cost_usd == event.input_tokens * Decimal("0.15") / M
    assert event.model == "gpt-4o-mini"
    assert pipeline.stats["incomplete"] == 1


def test_stream_cut_by_connection_close() -> None:
    wire = Wire()
    req = _request("api.openai.com", "/v1/chat/completions", dict(CHAT, stream=True))
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    delta = (b'data: {"model":"gpt-4o-mini","choices":[{"index":0,"delta":'
             b'{"content":"hello there"}}]}\n\n')
    chunks = [
        wire.chunk(_conn(), Direction.EGRESS, T0, req),
        wire.chunk(_conn(), Direction.INGRESS, T0 + 100_000_000, head),
        wire.chunk(_conn(), Direction.INGRESS, T0 + 200_000_000, b"%x\r\n%s\r\n" % (len(delta),
                                                                                  delta)),
        wire.chunk(_conn(), Direction.INGRESS, T0 + 900_000_000, b"", closed=True),
    ]
    [event] = _events(_feed(Pipeline(PipelineSettings()), chunks))
    assert (event.status, event.stream, event.complete) == (200, True, False)
    assert (event.ttft_ms, event.duration_ms) == (100.0, 900.0)
    assert event.usage_source is UsageSource.ESTIMATED and event.output_tokens > 0
    assert event.extra == {"end": "closed"}


# ------------------------------------------------------- connection judgement


def test_non_llm_connection_is_ignored_once() -> None:
    wire = Wire()
    req = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n"
    pipeline = Pipeline(PipelineSettings())
    out = _feed(pipeline, [wire.chunk(_conn(), Direction.EGRESS, T0, req),
                           wire.chunk(_conn(), Direction.EGRESS, T0 + 1, req),
                           wire.chunk(_conn(), Direction.INGRESS, T0 + 2, _response(b"x"))])
    assert out == [IgnoreConnection(conn=_conn(), reason="not_llm")]
    stats = pipeline.stats
    assert (stats["ignored_connections"], stats["ignored.not_llm"]) == (1, 1)
    assert stats["ignored_bytes"] > 0


@pytest.mark.parametrize(
    ("host", "target", "hosts"),
    [
        ("127.0.0.1:8000", "/v1/chat/completions", {}),
        ("localhost:11434", "/api/chat", {}),
        ("gateway.internal:8443", "/health", {"gateway.internal:8443": "openai"}),
        ("api.openai.com", "/health", {}),
    ],
)
def test_llm_hosts_and_paths_are_kept(host: str, target: str, hosts: dict[str, str]) -> None:
    pipeline = Pipeline(PipelineSettings(hosts=hosts))
    out = _feed(pipeline, _exchange(_request(host, target, CHAT), _response(OPENAI_OK)))
    assert not [o for o in out if isinstance(o, IgnoreConnection)]


def test_configured_host_gets_its_provider() -> None:
    req = _request("llm-gateway.internal", "/v1/chat/completions", CHAT)
    pipeline = Pipeline(PipelineSettings(hosts={"llm-gateway.internal": "azure"}))
    [event] = _events(_feed(pipeline, _exchange(req, _response(OPENAI_OK))))
    assert (event.provider, event.host) == ("azure", "llm-gateway.internal")


def test_binary_connection_is_not_http() -> None:
    wire = Wire()
    chunk = wire.chunk(_conn(), Direction.EGRESS, T0, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc")
    out = _feed(Pipeline(PipelineSettings()), [chunk])
    assert out == [IgnoreConnection(conn=_conn(), reason="not_http")]


def _server_side_chunks() -> list[Chunk]:
    # A TLS-terminating gateway: requests are read (INGRESS), responses written.
    wire = Wire()
    req = _request("gateway.local", "/v1/chat/completions", CHAT)
    return [wire.chunk(_conn(), Direction.INGRESS, T0, req),
            wire.chunk(_conn(), Direction.EGRESS, T0 + 400_000_000, _response(OPENAI_OK))]


def test_server_side_views_are_ignored_by_default() -> None:
    out = _feed(Pipeline(PipelineSettings()), _server_side_chunks())
    assert out == [IgnoreConnection(conn=_conn(), reason="server_side")]


def test_server_side_views_counted_when_asked() -> None:
    out = _feed(Pipeline(PipelineSettings(count_server_side=True)), _server_side_chunks())
    [event] = _events(out)
    assert (event.input_tokens, event.output_tokens, event.ttft_ms) == (100, 20, 400.0)


# ------------------------------------------------------------- robustness


def test_request_body_cap_keeps_size_and_still_classifies() -> None:
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 50_000}]}
    req = _request("api.openai.com", "/v1/chat/completions", big)
    seen: list[RequestInfo] = []

    from lumen_sniff import providers

    def spy(request: RequestInfo, hosts: object) -> object:
        seen.append(request)
        return providers.classify(request, hosts)  # type: ignore[arg-type]

    pipeline = Pipeline(PipelineSettings(request_body_cap_bytes=1024),
                        classify=spy)  # type: ignore[arg-type]
    [event] = _events(_feed(pipeline, _exchange(req, _response(OPENAI_OK))))
    assert event.model == "gpt-4o-mini-2024-07-18"
    [info] = seen
    assert (len(info.body), info.body_size, info.body_truncated) == (1024, len(json.dumps(big)),
                                                                     True)
    assert pipeline.stats["request_body_truncated"] == 1


def test_provider_exceptions_are_counted_not_raised() -> None:
    def broken(request: RequestInfo, hosts: object) -> None:
        raise RuntimeError("bug")

    pipeline = Pipeline(PipelineSettings(), classify=broken)  # type: ignore[arg-type]
    req = _request("api.openai.com", "/v1/chat/completions", CHAT)
    assert _feed(pipeline, _exchange(req, _response(OPENAI_OK))) == []
    assert pipeline.stats["provider_errors"] == 1


def test_open_exchanges_per_connection_are_capped() -> None:
    wire = Wire()
    req = _request("api.openai.com", "/v1/chat/completions", CHAT)
    chunks = [wire.chunk(_conn(), Direction.EGRESS, T0 + i, req) for i in range(6)]
    pipeline = Pipeline(PipelineSettings(max_open_exchanges=4))
    _feed(pipeline, chunks, close=False)
    assert pipeline.open_exchanges == 4
    assert pipeline.stats["exchanges_dropped"] == 2
    assert len(_events(pipeline.close())) == 4


def test_connections_beyond_the_cap_are_finished_not_leaked() -> None:
    wire = Wire()
    req = _request("api.openai.com", "/v1/chat/completions", CHAT)
    chunks = [wire.chunk(_conn(h), Direction.EGRESS, T0 + h, req) for h in range(5)]
    pipeline = Pipeline(PipelineSettings(max_connections=2))
    events = _events(_feed(pipeline, chunks, close=False))
    assert pipeline.open_exchanges <= 2
    assert len(events) == 3 and not any(e.complete for e in events)
    assert len(_events(pipeline.close())) == 2


def test_same_input_same_output() -> None:
    req = _request("api.openai.com", "/v1/chat/completions", CHAT)
    chunks = _exchange(req, _response(OPENAI_OK))
    first = _feed(Pipeline(PipelineSettings()), chunks)
    assert first == _feed(Pipeline(PipelineSettings()), chunks)
    later = [replace(c, ts_ns=c.ts_ns + 1) for c in chunks]
    assert _events(_feed(Pipeline(PipelineSettings()), later))[0].id != _events(first)[0].id
