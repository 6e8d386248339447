"""Usage conventions of OpenAI-compatible servers, Ollama, edge cases and estimation."""

from __future__ import annotations

import json
import random
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.model import Headers, Usage, UsageSource
from lumen_sniff.providers import Extraction, RequestInfo, classify, new_extractor
from lumen_sniff.providers.estimate import (
    estimate_input_tokens,
    estimate_output_tokens,
    text_tokens,
)

SSE: Headers = (("content-type", "text/event-stream"),)
JSON: Headers = (("content-type", "application/json"),)
NDJSON: Headers = (("content-type", "application/x-ndjson"),)
CHAT = b'{"messages":[{"role":"user","content":"hi"}],"model":"m","stream":true}'


def req(url: str, body: bytes = CHAT, headers: Headers = JSON) -> RequestInfo:
    host, _, path = url.partition("/")
    return RequestInfo(
        method="POST",
        host=host,
        path="/" + path,
        query="",
        headers=headers,
        body=body,
        body_size=len(body),
        body_truncated=False,
    )


def extract(
    request: RequestInfo,
    body: bytes,
    *,
    status: int = 200,
    headers: Headers = SSE,
    complete: bool = True,
) -> Extraction:
    """Feed whole, byte by byte and in random splits; all must agree."""
    cls = classify(request)
    assert cls is not None
    results = []
    splits: list[list[bytes]] = [[body], [body[i : i + 1] for i in range(len(body))]]
    rng = random.Random(7)
    for _ in range(3):
        cuts = sorted(rng.sample(range(len(body) + 1), k=min(6, len(body) + 1)))
        splits.append([body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)])
    for pieces in splits:
        ex = new_extractor(cls, request, status, headers)
        for piece in pieces:
            ex.feed(piece)
        results.append(ex.finish(complete=complete))
    assert all(r == results[0] for r in results)
    return results[0]


def sse(*events: object) -> bytes:
    out = []
    for ev in events:
        out.append(b"data: " + (ev if isinstance(ev, bytes) else json.dumps(ev).encode()) + b"\n\n")
    return b"".join(out)


def counts(u: Usage) -> tuple[int, int, int, int, int]:
    return (
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
    )


def delta(text: str, finish: str | None = None, model: str = "m") -> dict[str, object]:
    return {
        "model": model,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }


# ------------------------------------------------------------- OpenAI-compatible


def test_openrouter_cost_cache_reasoning_and_comments() -> None:
    body = b": OPENROUTER PROCESSING\n\n" + sse(
        delta("Hi", model="anthropic/claude-3.5-sonnet"),
        delta("", "stop", model="anthropic/claude-3.5-sonnet"),
        {
            "model": "anthropic/claude-3.5-sonnet",
            "choices": [],
            "usage": {
                "prompt_tokens": 120,
                "completion_tokens": 30,
                "total_tokens": 150,
                "cost": 0.000123,
                "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 20},
                "completion_tokens_details": {"reasoning_tokens": 5},
            },
        },
        b"[DONE]",
    )
    got = extract(req("openrouter.ai/api/v1/chat/completions"), body)
    assert counts(got.usage) == (120, 30, 100, 20, 5)
    assert got.usage.provider_cost_usd == Decimal("0.000123")
    assert got.usage.source is UsageSource.REPORTED
    assert got.model == "anthropic/claude-3.5-sonnet"
    assert got.complete and got.stream


def test_groq_usage_in_x_groq() -> None:
    body = sse(
        delta("Hello"),
        {
            "model": "llama-3.3-70b-versatile",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "x_groq": {
                "id": "req_1",
                "usage": {
                    "queue_time": 0.01,
                    "prompt_tokens": 40,
                    "completion_tokens": 12,
                    "total_tokens": 52,
                },
            },
        },
        b"[DONE]",
    )
    got = extract(req("api.groq.com/openai/v1/chat/completions"), body)
    assert counts(got.usage) == (40, 12, 0, 0, 0)
    assert got.usage.source is UsageSource.REPORTED


def test_deepseek_cache_hit_tokens_non_stream() -> None:
    doc = {
        "model": "deepseek-reasoner",
        "choices": [
            {"message": {"role": "assistant", "content": "ok", "reasoning_content": "..."}}
        ],
        "usage": {
            "prompt_tokens": 50,
            "completion_tokens": 20,
            "total_tokens": 70,
            "prompt_cache_hit_tokens": 32,
            "prompt_cache_miss_tokens": 18,
            "completion_tokens_details": {"reasoning_tokens": 8},
        },
    }
    got = extract(
        req("api.deepseek.com/chat/completions", CHAT), json.dumps(doc).encode(), headers=JSON
    )
    assert counts(got.usage) == (50, 20, 32, 0, 8)
    assert got.stream is False and got.complete


def test_llamacpp_usage_on_finish_chunk_and_timings_fallback() -> None:
    final = {
        "choices": [{"finish_reason": "stop", "index": 0, "delta": {}}],
        "model": "qwen",
        "usage": {"completion_tokens": 11, "prompt_tokens": 9, "total_tokens": 20},
        "timings": {"prompt_n": 9, "predicted_n": 11},
    }
    got = extract(req("127.0.0.1/v1/chat/completions"), sse(delta("a"), final, b"[DONE]"))
    assert counts(got.usage) == (9, 11, 0, 0, 0)
    assert got.usage.source is UsageSource.REPORTED
    del final["usage"]
    final["timings"] = {"prompt_n": 7, "predicted_n": 3}
    got = extract(req("127.0.0.1/v1/chat/completions"), sse(delta("a"), final, b"[DONE]"))
    assert counts(got.usage) == (7, 3, 0, 0, 0)
    assert got.usage.source is UsageSource.REPORTED


def test_vllm_continuous_usage_is_cumulative_not_summed() -> None:
    chunks = [
        {**delta("a"), "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}},
        {**delta("b"), "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}},
        {
            **delta("", "length"),
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
        },
    ]
    got = extract(req("10.1.1.1/v1/chat/completions"), sse(*chunks, b"[DONE]"))
    assert counts(got.usage) == (10, 3, 0, 0, 0)
    assert got.usage.source is UsageSource.REPORTED


def test_reasoning_outside_completion_is_added_to_output() -> None:
    # xAI: total = prompt + completion + reasoning
    doc = {
        "model": "grok-3-mini",
        "choices": [{"message": {"content": "4"}}],
        "usage": {
            "prompt_tokens": 20,
            "completion_tokens": 5,
            "total_tokens": 125,
            "completion_tokens_details": {"reasoning_tokens": 100},
        },
    }
    got = extract(req("api.x.ai/v1/chat/completions", CHAT), json.dumps(doc).encode(), headers=JSON)
    assert counts(got.usage) == (20, 105, 0, 0, 100)


def test_openai_midstream_error_event() -> None:
    body = sse(
        delta("a"), delta("b"), {"error": {"message": "boom", "type": "server_error", "code": None}}
    )
    got = extract(req("api.openai.com/v1/chat/completions"), body, complete=True)
    assert got.error_type == "server_error"
    assert got.complete is False
    assert got.usage.source is UsageSource.ESTIMATED
    assert counts(got.usage) == (5, 2, 0, 0, 0)  # ceil(2/4) + 4; two deltas


def test_non_stream_without_usage_estimates_from_chars() -> None:
    doc = {"model": "local", "choices": [{"message": {"role": "assistant", "content": "x" * 41}}]}
    got = extract(
        req("127.0.0.1/v1/chat/completions", CHAT), json.dumps(doc).encode(), headers=JSON
    )
    assert got.usage.source is UsageSource.ESTIMATED
    assert counts(got.usage) == (5, 11, 0, 0, 0)  # ceil(41 / 4)


def test_ok_status_with_error_body_has_no_usage() -> None:
    body = json.dumps(
        {"error": {"message": "bad", "type": "invalid_request_error", "code": None}}
    ).encode()
    got = extract(req("127.0.0.1/v1/chat/completions", CHAT), body, headers=JSON)
    assert got.usage == Usage(source=UsageSource.NONE)
    assert got.error_type == "invalid_request_error"


def test_error_status_without_envelope_uses_status_name() -> None:
    got = extract(
        req("api.openai.com/v1/chat/completions"),
        b"<html>bad gateway</html>",
        status=502,
        headers=JSON,
    )
    assert got.usage == Usage(source=UsageSource.NONE)
    assert got.error_type == "bad_gateway"


def test_redirect_has_no_usage_and_no_error() -> None:
    got = extract(req("api.openai.com/v1/chat/completions"), b"", status=307, headers=JSON)
    assert got.usage == Usage(source=UsageSource.NONE)
    assert got.error_type is None


# ------------------------------------------------------------------ Responses API


def _responses_events(final_type: str, extra: dict[str, object]) -> bytes:
    created = {
        "type": "response.created",
        "response": {"model": "o4-mini-2025-04-16", "usage": None},
    }
    usage = {
        "input_tokens": 300,
        "input_tokens_details": {"cached_tokens": 256},
        "output_tokens": 90,
        "output_tokens_details": {"reasoning_tokens": 64},
    }
    final = {
        "type": final_type,
        "response": {"model": "o4-mini-2025-04-16", "usage": usage, **extra},
    }
    # no "event:" lines: the type is read from the data
    return sse(created, {"type": "response.output_text.delta", "delta": "x"}, final)


def test_responses_incomplete_is_reported() -> None:
    body = _responses_events(
        "response.incomplete", {"incomplete_details": {"reason": "max_output_tokens"}}
    )
    got = extract(
        req("api.openai.com/v1/responses", b'{"input":"x","model":"o4-mini","stream":true}'), body
    )
    assert counts(got.usage) == (300, 90, 256, 0, 64)
    assert got.usage.source is UsageSource.REPORTED
    assert got.complete is True and got.error_type is None


def test_responses_failed_keeps_usage_and_error_code() -> None:
    body = _responses_events("response.failed", {"error": {"code": "server_error", "message": "x"}})
    got = extract(
        req("api.openai.com/v1/responses", b'{"input":"x","model":"o4-mini","stream":true}'), body
    )
    assert counts(got.usage) == (300, 90, 256, 0, 64)
    assert got.usage.source is UsageSource.REPORTED
    assert got.error_type == "server_error"
    assert got.complete is False


# -------------------------------------------------------------- Anthropic, Gemini


def test_anthropic_message_delta_overrides_cache_fields() -> None:
    msg = b'{"max_tokens":5,"messages":[{"role":"user","content":"hi"}],"model":"c","stream":true}'
    body = (
        b"event: message_start\ndata: "
        + json.dumps(
            {
                "type": "message_start",
                "message": {
                    "model": "claude-opus-4-1",
                    "usage": {
                        "input_tokens": 5,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                        "output_tokens": 1,
                    },
                },
            }
        ).encode()
        + b"\n\nevent: content_block_delta\ndata: "
        + b'{"type":"content_block_delta","index":0,'
        + b'"delta":{"type":"thinking_delta","thinking":"hm"}}'
        + b"\n\nevent: message_delta\ndata: "
        + json.dumps(
            {
                "type": "message_delta",
                "usage": {
                    "input_tokens": 5,
                    "cache_creation_input_tokens": 100,
                    "cache_read_input_tokens": 200,
                    "output_tokens": 50,
                },
            }
        ).encode()
        + b'\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    got = extract(
        req("api.anthropic.com/v1/messages", msg, (("anthropic-version", "2023-06-01"),)), body
    )
    assert counts(got.usage) == (305, 50, 200, 100, 0)
    assert got.usage.source is UsageSource.REPORTED and got.complete


def test_anthropic_cut_after_message_start_is_estimated() -> None:
    msg = b'{"max_tokens":5,"messages":[],"model":"c","stream":true}'
    body = (
        b'event: message_start\ndata: {"type":"message_start",'
        b'"message":{"model":"claude-x","usage":'
        b'{"input_tokens":40,"cache_read_input_tokens":60,"output_tokens":1}}}\n\n'
        + b"event: content_block_delta\n"
        b'data: {"type":"content_block_delta","delta":{"text":"a"}}\n\n' * 3
    )
    got = extract(req("api.anthropic.com/v1/messages", msg), body, complete=False)
    assert counts(got.usage) == (100, 3, 60, 0, 0)
    assert got.usage.source is UsageSource.ESTIMATED
    assert got.complete is False


def test_gemini_tool_use_prompt_counts_as_input() -> None:
    doc = {
        "candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
        "usageMetadata": {
            "promptTokenCount": 10,
            "toolUsePromptTokenCount": 5,
            "candidatesTokenCount": 3,
        },
        "modelVersion": "gemini-2.5-pro",
    }
    url = "generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent"
    got = extract(req(url, b"{}"), json.dumps(doc).encode(), headers=JSON)
    assert counts(got.usage) == (15, 3, 0, 0, 0)


def test_gemini_embedding_without_usage_is_estimated_from_texts() -> None:
    body = (
        b'{"requests":[{"model":"models/embedding-001",'
        b'"content":{"parts":[{"text":"Some text goes here"}]}}]}'
    )
    url = "generativelanguage.googleapis.com/v1beta/models/embedding-001:batchEmbedContents"
    got = extract(req(url, body), b'{"embeddings":[{"values":[0.1,0.2]}]}', headers=JSON)
    assert got.usage.source is UsageSource.ESTIMATED
    assert counts(got.usage) == (5, 0, 0, 0, 0)  # ceil(19 / 4)


# ------------------------------------------------------------------------ Ollama

OLLAMA_STREAM = (
    b'{"model":"llama3.2","created_at":"t","message":{"role":"assistant","content":"Hel"},"done":false}\n'
    b'{"model":"llama3.2","created_at":"t","message":{"role":"assistant","content":"lo"},"done":false}\n'
    b'{"model":"llama3.2","created_at":"t","message":{"role":"assistant","content":""},"done":true,'
    b'"done_reason":"stop","total_duration":1,"prompt_eval_count":26,"eval_count":2}\n'
)


def test_ollama_ndjson_stream() -> None:
    body = b'{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}'
    for headers in (NDJSON, JSON):  # sniffed even when labelled JSON
        got = extract(req("localhost/api/chat", body), OLLAMA_STREAM, headers=headers)
        assert counts(got.usage) == (26, 2, 0, 0, 0)
        assert got.usage.source is UsageSource.REPORTED
        assert got.model == "llama3.2" and got.stream and got.complete


def test_ollama_non_stream_generate_and_embed() -> None:
    doc = b'{"model":"llama3.2","response":"hi","done":true,"prompt_eval_count":8,"eval_count":4}'
    got = extract(
        req("localhost/api/generate", b'{"model":"llama3.2","prompt":"hi","stream":false}'),
        doc,
        headers=JSON,
    )
    assert counts(got.usage) == (8, 4, 0, 0, 0)
    assert got.stream is False
    emb = b'{"model":"all-minilm","embeddings":[[0.1]],"total_duration":5,"prompt_eval_count":6}'
    got = extract(
        req("localhost/api/embed", b'{"model":"all-minilm","input":"hi"}'), emb, headers=JSON
    )
    assert counts(got.usage) == (6, 0, 0, 0, 0)


def test_ollama_error() -> None:
    body = b'{"error":"model \\"nope\\" not found, try pulling it first"}'
    got = extract(
        req("localhost/api/chat", b'{"model":"nope","messages":[]}'), body, status=404, headers=JSON
    )
    assert got.usage == Usage(source=UsageSource.NONE)
    assert got.error_type == "not_found"


def test_ollama_cut_stream_is_estimated_from_deltas() -> None:
    body = b'{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}'
    got = extract(
        req("localhost/api/chat", body),
        OLLAMA_STREAM[: OLLAMA_STREAM.rindex(b"{")],
        headers=NDJSON,
        complete=False,
    )
    assert counts(got.usage) == (5, 2, 0, 0, 0)
    assert got.usage.source is UsageSource.ESTIMATED and not got.complete


# -------------------------------------------------------------- bounds and safety


def test_huge_json_body_salvages_usage_from_tail() -> None:
    floats = ",".join(["0.0123456789"] * 800_000)
    body = (
        b'{"object":"list","data":[{"object":"embedding","embedding":['
        + floats.encode()
        + b']}],"model":"text-embedding-3-large","usage":{"prompt_tokens":7,"total_tokens":7}}'
    )
    assert len(body) > 8 << 20
    cls = classify(
        req("api.openai.com/v1/embeddings", b'{"input":"x","model":"text-embedding-3-large"}')
    )
    assert cls is not None
    ex = new_extractor(cls, req("api.openai.com/v1/embeddings"), 200, JSON)
    for i in range(0, len(body), 65536):
        ex.feed(body[i : i + 65536])
    got = ex.finish(complete=True)
    assert counts(got.usage) == (7, 0, 0, 0, 0)
    assert got.usage.source is UsageSource.REPORTED
    assert got.model == "text-embedding-3-large"


def test_cut_json_body_is_estimated() -> None:
    doc = json.dumps(
        {
            "model": "gpt-4o",
            "choices": [{"message": {"content": "abc"}}],
            "usage": {"prompt_tokens": 3},
        }
    )
    got = extract(
        req("api.openai.com/v1/chat/completions", CHAT),
        doc.encode()[:30],
        headers=JSON,
        complete=False,
    )
    assert got.usage.source is UsageSource.ESTIMATED
    assert got.complete is False
    assert got.model == "gpt-4o"


def test_bad_json_in_usage_event_is_ignored() -> None:
    body = sse(delta("a"), b'{"choices":[],"usage":{"prompt_tokens":1,', b"[DONE]")
    got = extract(req("api.openai.com/v1/chat/completions"), body)
    assert got.usage.source is UsageSource.ESTIMATED
    assert counts(got.usage) == (5, 1, 0, 0, 0)


def test_finish_is_idempotent_and_late_feed_ignored() -> None:
    request = req("api.openai.com/v1/chat/completions")
    cls = classify(request)
    assert cls is not None
    ex = new_extractor(cls, request, 200, SSE)
    ex.feed(sse(delta("a"), b"[DONE]"))
    first = ex.finish(complete=True)
    ex.feed(sse({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 9}}))
    assert ex.finish(complete=False) == first


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(max_size=300),
    api=st.sampled_from(
        [
            "api.openai.com/v1/chat/completions",
            "api.openai.com/v1/responses",
            "api.anthropic.com/v1/messages",
            "generativelanguage.googleapis.com/v1beta/models/g:streamGenerateContent",
            "localhost/api/chat",
        ]
    ),
    ctype=st.sampled_from([SSE, JSON, NDJSON, ()]),
    status=st.sampled_from([200, 400, 500]),
)
def test_garbage_never_raises(body: bytes, api: str, ctype: Headers, status: int) -> None:
    request = req(api, b'{"model":"m","messages":[]}')
    cls = classify(request)
    assert cls is not None
    ex = new_extractor(cls, request, status, ctype)
    ex.feed(body[: len(body) // 2])
    ex.feed(body[len(body) // 2 :])
    got = ex.finish(complete=bool(len(body) % 2))
    assert got.usage.source in (UsageSource.ESTIMATED, UsageSource.NONE, UsageSource.REPORTED)
    assert getattr(ex, "broken", 0) == 0


# -------------------------------------------------------------------- estimation


def test_estimate_heuristic() -> None:
    assert text_tokens("") == 0
    assert text_tokens("abcd efgh") == 3
    assert text_tokens("é" * 4) == 2  # 8 UTF-8 bytes
    assert estimate_output_tokens(deltas=7, chars=1000) == 7
    assert estimate_output_tokens(deltas=0, chars=9) == 3
    body = json.dumps(
        {
            "model": "gpt-4o",
            "stop": ["never counted"],
            "messages": [
                {"role": "system", "content": "12345678"},
                {"role": "user", "content": [{"type": "text", "text": "abcd"}]},
            ],
            "tools": [{"type": "function"}],
        }
    ).encode()
    request = req("api.openai.com/v1/chat/completions", body)
    # 8 + 1 ("\n") + 4 + 1 + len('[{"type":"function"}]') = 35 bytes -> 9 tokens, + 2 messages x 4
    assert estimate_input_tokens(request) == 9 + 8
    cut = RequestInfo(
        method="POST",
        host="h",
        path="/",
        query="",
        headers=(),
        body=body[:10],
        body_size=4001,
        body_truncated=True,
    )
    assert estimate_input_tokens(cut) == 1001
