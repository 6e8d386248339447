"""The stand-in answers each route in its API's recorded wire format (pure: no sockets)."""

from __future__ import annotations

import base64
import gzip
import json
import struct
import zlib
from typing import Any

import pytest

from tests.support.standin_routes import answer
from tests.support.standin_wire import Reply, StandinRequest, prompt_words


def _req(path: str, body: dict[str, Any], *, flags: str = "", gz: bool = True) -> StandinRequest:
    headers = [("content-type", "application/json")]
    if gz:
        headers.append(("accept-encoding", "gzip, deflate"))
    if flags:
        headers.append(("x-standin-scenario", flags))
    return StandinRequest(method="POST", target=path, headers=tuple(headers),
                          body=json.dumps(body).encode())


def _h(reply: Reply, name: str) -> str | None:
    for key, value in reply.headers:
        if key.lower() == name.lower():
            return value
    return None


def _body(reply: Reply) -> bytes:
    raw = b"".join(reply.parts)
    return gzip.decompress(raw) if _h(reply, "content-encoding") == "gzip" else raw


def _sse_data(text: str, sep: str = "\n\n") -> list[str]:
    return [line[6:] for event in text.split(sep) for line in event.split("\n")
            if line.startswith("data: ")]


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one two three"}]}


def test_prompt_words_counts_text_in_every_api_shape() -> None:
    assert prompt_words(CHAT) == 3
    assert prompt_words({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "a b"}, {"type": "image_url", "image_url": {"url": "x y"}}]}],
        "system": "c d e"}) == 5
    assert prompt_words({"contents": [{"parts": [{"text": "a b c d"}], "role": "user"}],
                         "systemInstruction": {"parts": [{"text": "e"}]}}) == 5
    assert prompt_words({"input": [[101, 102, 103]], "model": "m"}) == 3
    assert prompt_words({"prompt": "", "model": "llama3"}) == 0


def test_openai_chat_nonstream_is_gzip_chunked_pretty_json_with_exact_usage() -> None:
    reply = answer(_req("/v1/chat/completions", CHAT, flags="cache_read,reasoning"))
    assert reply.status == 200 and reply.chunked and not reply.stream
    assert _h(reply, "transfer-encoding") == "chunked" and _h(reply, "content-length") is None
    assert reply.parts[0][:2] == b"\x1f\x8b" and len(reply.parts[0]) == 10
    text = _body(reply).decode()
    assert text.startswith('{\n  "id": "chatcmpl-')
    obj = json.loads(text)
    assert obj["model"] == "gpt-4o-mini"
    assert obj["usage"]["prompt_tokens"] == 3 + 7 + 1024
    assert obj["usage"]["prompt_tokens_details"]["cached_tokens"] == 1024
    assert obj["usage"]["completion_tokens"] == 12 + 32
    assert obj["usage"]["completion_tokens_details"]["reasoning_tokens"] == 32
    assert reply.usage == {"input_tokens": 1034, "output_tokens": 44, "cache_read_tokens": 1024,
                           "cache_write_tokens": 0, "reasoning_tokens": 32}


def test_openai_chat_without_gzip_and_with_max_tokens_cap() -> None:
    reply = answer(_req("/v1/chat/completions", {**CHAT, "max_tokens": 5}, gz=False))
    assert _h(reply, "content-encoding") is None
    obj = json.loads(_body(reply))
    assert obj["choices"][0]["message"]["content"] == "Stand-in reply: one two three"
    assert obj["usage"]["completion_tokens"] == 5


def test_openai_chat_stream_include_usage_framing() -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    reply = answer(_req("/v1/chat/completions", body))
    assert reply.stream and _h(reply, "content-type") == "text/event-stream; charset=utf-8"
    assert _h(reply, "content-encoding") is None  # OpenAI SSE is never compressed
    assert all(p.endswith(b"\n\n") and b"\r" not in p for p in reply.parts)
    data = _sse_data(b"".join(reply.parts).decode())
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert all("obfuscation" in c for c in chunks)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 10
    assert chunks[-1]["usage"]["completion_tokens"] == 12
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Stand-in reply: one two three four five six seven eight nine ten"


def test_openai_chat_stream_without_include_usage_has_no_usage_key() -> None:
    reply = answer(_req("/v1/chat/completions", {**CHAT, "stream": True}))
    data = _sse_data(b"".join(reply.parts).decode())
    assert data[-1] == "[DONE]"
    assert all("usage" not in json.loads(d) for d in data[:-1])
    assert reply.usage == {}


def test_llamacpp_final_chunk_carries_usage_and_timings_without_include_usage() -> None:
    reply = answer(_req("/v1/chat/completions", {**CHAT, "stream": True}, flags="llamacpp"))
    chunks = [json.loads(d) for d in _sse_data(b"".join(reply.parts).decode())[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"completion_tokens": 12, "prompt_tokens": 10,
                                   "total_tokens": 22}
    assert chunks[-1]["timings"]["prompt_n"] == 10
    assert _h(reply, "server") == "llama.cpp"


def test_openai_responses_stream_ends_at_completed_with_usage() -> None:
    reply = answer(_req("/v1/responses", {"model": "gpt-5-nano", "input": "a b c d",
                                          "stream": True}, flags="reasoning"))
    events = b"".join(reply.parts).decode().split("\n\n")[:-1]
    kinds = [e.split("\n")[0].removeprefix("event: ") for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "[DONE]" not in b"".join(reply.parts).decode()
    datas = [json.loads(e.split("\n")[1][6:]) for e in events]
    assert [d["sequence_number"] for d in datas] == list(range(len(datas)))
    assert datas[0]["response"]["usage"] is None
    assert datas[-1]["response"]["usage"] == {
        "input_tokens": 11, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 44,
        "output_tokens_details": {"reasoning_tokens": 32}, "total_tokens": 55}


def test_openai_embeddings_base64_float32() -> None:
    reply = answer(_req("/v1/embeddings", {"model": "text-embedding-3-small", "input": "a b c",
                                           "encoding_format": "base64", "dimensions": 4}))
    obj = json.loads(_body(reply))
    vec = struct.unpack("<4f", base64.b64decode(obj["data"][0]["embedding"]))
    assert len(vec) == 4
    assert obj["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


@pytest.mark.parametrize(("path", "body", "status", "gz"), [
    ("/v1/chat/completions", CHAT, 429, False),
    ("/v1/messages", {"model": "claude-x", "max_tokens": 5}, 429, False),
    ("/v1beta/models/gemini-2.5-flash:generateContent", {}, 429, True),
])
def test_rate_limit_errors_have_each_providers_shape(
        path: str, body: dict[str, Any], status: int, gz: bool) -> None:
    reply = answer(_req(path, body, flags="error_429"))
    assert reply.status == status
    assert (_h(reply, "content-encoding") == "gzip") is gz
    assert reply.chunked is gz
    obj = json.loads(_body(reply))
    assert "usage" not in obj and "usageMetadata" not in obj
    if path == "/v1/messages":
        assert _h(reply, "retry-after") == "27"
        assert obj["error"]["type"] == "rate_limit_error"
    if path.startswith("/v1beta"):
        assert obj["error"]["details"][0]["retryDelay"] == "47s"


def test_anthropic_stream_padding_cumulative_usage_and_cache() -> None:
    reply = answer(_req("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 64,
                                         "stream": True, "messages": [
                                             {"role": "user", "content": "x y"}]},
                        flags="cache_read,cache_write"))
    text = b"".join(reply.parts).decode()
    assert _h(reply, "content-encoding") is None
    assert "   }" in text  # Anthropic pads data JSON before its closing brace
    events = [(e.split("\n")[0][7:], json.loads(e.split("\n")[1][6:]))
              for e in text.split("\n\n")[:-1]]
    names = [n for n, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = events[0][1]["message"]["usage"]
    assert (start["input_tokens"], start["cache_read_input_tokens"],
            start["cache_creation_input_tokens"], start["output_tokens"]) == (9, 1024, 2048, 1)
    assert events[-2][1]["usage"]["output_tokens"] == 12
    assert reply.usage["input_tokens"] == 9 + 1024 + 2048


def test_anthropic_midstream_error_and_gzip_sse() -> None:
    body = {"model": "c", "max_tokens": 64, "stream": True, "messages": []}
    err = answer(_req("/v1/messages", body, flags="midstream_error"))
    text = b"".join(err.parts).decode()
    assert err.status == 200
    assert text.split("\n\n")[-2].startswith("event: error\n")
    assert "message_delta" not in text and '"overloaded_error"' in text
    gz = answer(_req("/v1/messages", body, flags="gzip_sse"))
    assert _h(gz, "content-encoding") == "gzip" and _h(gz, "vary") == "Accept-Encoding"
    # Each write decodes on arrival: the stream is sync-flushed per event.
    dec = zlib.decompressobj(31)
    first = dec.decompress(gz.parts[0])
    assert first.startswith(b"event: message_start\ndata: ") and first.endswith(b"\n\n")
    plain = answer(_req("/v1/messages", body))
    assert gzip.decompress(b"".join(gz.parts)) == b"".join(plain.parts)


def test_gemini_sse_uses_crlf_and_cumulative_usage() -> None:
    body = {"contents": [{"parts": [{"text": "a b c"}], "role": "user"}]}
    reply = answer(_req("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", body,
                        flags="reasoning"))
    assert _h(reply, "content-type") == "text/event-stream"
    assert _h(reply, "content-disposition") == "attachment"
    assert _h(reply, "content-encoding") is None
    assert all(p.startswith(b"data: {") and p.endswith(b"}\r\n\r\n") for p in reply.parts)
    metas = [json.loads(p[6:])["usageMetadata"] for p in reply.parts]
    assert [m["candidatesTokenCount"] for m in metas] == [4, 8, 12]
    assert metas[-1] == {"promptTokenCount": 10, "candidatesTokenCount": 12,
                         "totalTokenCount": 54, "thoughtsTokenCount": 32,
                         "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10}]}
    assert json.loads(reply.parts[-1][6:])["modelVersion"] == "gemini-2.5-flash"


def test_gemini_json_array_stream_and_error_labelled_sse() -> None:
    body = {"contents": [{"parts": [{"text": "a"}]}]}
    reply = answer(_req("/v1beta/models/gemini-x:streamGenerateContent", body))
    text = gzip.decompress(b"".join(reply.parts)).decode()
    assert text.startswith("[{\n") and "}\n,\r\n{" in text and text.endswith("}\n]")
    assert json.loads(text)[-1]["usageMetadata"]["promptTokenCount"] == 8
    err = answer(_req("/v1beta/models/gemini-x:streamGenerateContent?alt=sse", body,
                      flags="error_400"))
    assert err.status == 400 and _h(err, "content-type") == "text/event-stream"
    assert _h(err, "content-length") == str(len(b"".join(err.parts)))
    assert json.loads(b"".join(err.parts))["error"]["status"] == "INVALID_ARGUMENT"


def test_gemini_embeddings_usage_only_for_newer_models() -> None:
    body = {"requests": [{"content": {"parts": [{"text": "a b"}]}}]}
    new = json.loads(_body(answer(_req("/v1beta/models/gemini-embedding-2:batchEmbedContents",
                                       body))))
    assert new["usageMetadata"]["promptTokenCount"] == 2
    old = json.loads(_body(answer(_req(
        "/v1beta/models/gemini-embedding-001:batchEmbedContents", body))))
    assert "usageMetadata" not in old and len(old["embeddings"]) == 1


def test_ollama_ndjson_stream_and_whole_answer() -> None:
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi there"}]}
    reply = answer(_req("/api/chat", body))
    assert _h(reply, "content-type") == "application/x-ndjson" and reply.chunked
    lines = [json.loads(p) for p in reply.parts]
    assert all(p.endswith(b"\n") and p.count(b"\n") == 1 for p in reply.parts)
    assert [x["done"] for x in lines] == [False] * 12 + [True]
    assert (lines[-1]["prompt_eval_count"], lines[-1]["eval_count"]) == (9, 12)
    whole = answer(_req("/api/generate", {"model": "m", "prompt": "a", "stream": False}))
    assert not whole.chunked and _h(whole, "content-length") == str(len(whole.parts[0]))
    obj = json.loads(whole.parts[0])
    assert obj["response"].startswith("Stand-in") and obj["context"] == list(range(1, 9))


def test_unknown_route_is_a_json_404() -> None:
    reply = answer(StandinRequest(method="GET", target="/nope", headers=()))
    assert reply.status == 404 and not reply.chunked
    assert b"no stand-in route for GET /nope" in reply.parts[0]
