"""OpenAI routes of the stand-in: chat completions, responses, embeddings, errors.

Shapes follow fixtures/wire/openai_*.txt: pretty-printed (2-space) JSON,
gzip + chunked when the client accepts gzip; SSE with LF framing, ``usage:null``
on every chunk plus a ``choices:[]`` usage chunk only with
``stream_options.include_usage``, ``obfuscation`` padding, ``data: [DONE]``;
Responses streams as ``event:``/``data:`` pairs ending at response.completed
with no [DONE]. The ``llamacpp`` flag answers like llama.cpp's server instead:
no gzip, Content-Length, ``timings`` and a usage-bearing final chunk even
without ``include_usage``.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

from tests.support.standin_wire import (
    CL,
    CREATED_S,
    DATE,
    GZIP,
    TE,
    Reply,
    StandinRequest,
    TokenPlan,
    build_reply,
    plan_tokens,
    request_id,
)

__all__ = ["chat_completions", "embeddings", "openai_error", "responses"]


def _template(content_type: str) -> list[tuple[str, str]]:
    return [
        ("CF-RAY", "9b1fff2768a4a72a-NRT"),
        ("Connection", "keep-alive"),
        ("Content-Encoding", GZIP),
        ("Content-Length", CL),
        ("Content-Type", content_type),
        ("Date", DATE),
        ("Server", "cloudflare"),
        ("Strict-Transport-Security", "max-age=31536000; includeSubDomains; preload"),
        ("Transfer-Encoding", TE),
        ("X-Content-Type-Options", "nosniff"),
        ("access-control-expose-headers", "X-Request-ID"),
        ("alt-svc", 'h3=":443"; ma=86400'),
        ("cf-cache-status", "DYNAMIC"),
        ("openai-organization", "standin-org"),
        ("openai-processing-ms", "12"),
        ("openai-version", "2020-10-01"),
        ("x-ratelimit-limit-requests", "5000"),
        ("x-ratelimit-remaining-requests", "4999"),
        ("x-request-id", "req_" + "0" * 32),
    ]


_SSE = "text/event-stream; charset=utf-8"


def _pretty(obj: Any, indent: int = 2) -> bytes:
    return json.dumps(obj, indent=indent).encode() + b"\n"


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _obfuscation(i: int) -> str:
    # Random-length padding on the real wire; here a fixed function of the index.
    return "stnd1nObfX9q"[: 3 + (i * 5) % 10]


def _chat_usage(plan: TokenPlan) -> dict[str, Any]:
    return {
        "prompt_tokens": plan.input_total,
        "completion_tokens": plan.output_total,
        "total_tokens": plan.input_total + plan.output_total,
        "prompt_tokens_details": {"cached_tokens": plan.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": plan.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _gap(req: StandinRequest) -> float:
    return 0.05 if "slow" in req.flags else 0.002


def chat_completions(req: StandinRequest) -> Reply:
    """Answer POST /v1/chat/completions (also llama.cpp style with the flag)."""
    body = req.json()
    err = openai_error(req, body)
    if err is not None:
        return err
    model = str(body.get("model", ""))
    plan = plan_tokens(req)
    llama = "llamacpp" in req.flags
    cid = request_id(req, "chatcmpl-", 29)
    text = " ".join(plan.words)
    timings = {
        "prompt_n": plan.prompt_tokens, "prompt_ms": 12.5,
        "predicted_n": plan.text_tokens, "predicted_ms": 40.0,
    }
    usage = _chat_usage(plan)
    if llama:
        usage = {k: usage[k] for k in ("completion_tokens", "prompt_tokens", "total_tokens")}
    if not body.get("stream"):
        obj: dict[str, Any] = {
            "id": cid, "object": "chat.completion", "created": CREATED_S, "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None,
                            "annotations": []},
                "logprobs": None, "finish_reason": "stop",
            }],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": "fp_standin01",
        }
        if llama:
            obj["timings"] = timings
            return build_reply(200, _llama_template("application/json; charset=utf-8"),
                               [_compact(obj).encode()], chunked=False, usage=plan.normalised())
        return build_reply(200, _template("application/json"), [_pretty(obj)],
                           gzip_body=req.accepts_gzip, usage=plan.normalised())
    opts = body.get("stream_options")
    include = isinstance(opts, dict) and bool(opts.get("include_usage"))
    events: list[bytes] = []
    base = {"id": cid, "object": "chat.completion.chunk", "created": CREATED_S, "model": model,
            "service_tier": "default", "system_fingerprint": None}
    deltas: list[tuple[dict[str, Any], str | None]] = [
        ({"role": "assistant", "content": "", "refusal": None}, None)
    ]
    deltas += [({"content": ("" if i == 0 else " ") + w}, None) for i, w in enumerate(plan.words)]
    deltas.append(({}, "stop"))
    for i, (delta, finish) in enumerate(deltas):
        chunk: dict[str, Any] = dict(base)
        chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if llama and finish is not None:
            chunk["usage"] = usage
            chunk["timings"] = timings
        elif include:
            chunk["usage"] = None
        if not llama:
            chunk["obfuscation"] = _obfuscation(i)
        events.append(f"data: {_compact(chunk)}\n\n".encode())
    if include and not llama:
        chunk = dict(base)
        chunk["choices"] = []
        chunk["usage"] = usage
        chunk["obfuscation"] = _obfuscation(len(deltas))
        events.append(f"data: {_compact(chunk)}\n\n".encode())
    events.append(b"data: [DONE]\n\n")
    carried = plan.normalised() if include or llama else {}
    template = _llama_template("text/event-stream") if llama else _template(_SSE)
    return build_reply(200, template, events, stream=True, gap_s=_gap(req), usage=carried)


def _llama_template(content_type: str) -> list[tuple[str, str]]:
    # cpp-httplib: few headers, Content-Length for whole bodies, chunked streams.
    return [
        ("Content-Length", CL),
        ("Content-Type", content_type),
        ("Keep-Alive", "timeout=5, max=100"),
        ("Server", "llama.cpp"),
        ("Transfer-Encoding", TE),
    ]


def _responses_usage(plan: TokenPlan) -> dict[str, Any]:
    return {
        "input_tokens": plan.input_total,
        "input_tokens_details": {"cached_tokens": plan.cache_read_tokens},
        "output_tokens": plan.output_total,
        "output_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
        "total_tokens": plan.input_total + plan.output_total,
    }


def responses(req: StandinRequest) -> Reply:
    """Answer POST /v1/responses (JSON, or SSE events up to response.completed)."""
    body = req.json()
    err = openai_error(req, body)
    if err is not None:
        return err
    plan = plan_tokens(req)
    rid = request_id(req, "resp_", 48)
    mid = request_id(req, "msg_", 48)
    text = " ".join(plan.words)
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    item = {"id": mid, "type": "message", "status": "completed", "content": [part],
            "role": "assistant"}
    output: list[dict[str, Any]] = []
    if plan.reasoning_tokens:
        output.append({"id": request_id(req, "rs_", 48), "type": "reasoning", "summary": []})
    output.append(item)

    def response(status: str, done: bool) -> dict[str, Any]:
        return {
            "id": rid, "object": "response", "created_at": CREATED_S, "status": status,
            "background": False, "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "max_output_tokens": None,
            "model": str(body.get("model", "")), "output": output if done else [],
            "parallel_tool_calls": True, "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None}, "service_tier": "default",
            "store": True, "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
            "usage": _responses_usage(plan) if done else None, "user": None, "metadata": {},
        }

    if not body.get("stream"):
        whole = _pretty(response("completed", True))
        return build_reply(200, _template("application/json"), [whole],
                           gzip_body=req.accepts_gzip, usage=plan.normalised())
    seq = 0
    events: list[bytes] = []

    def emit(kind: str, payload: dict[str, Any]) -> None:
        nonlocal seq
        data = {"type": kind, **payload, "sequence_number": seq}
        seq += 1
        events.append(f"event: {kind}\ndata: {_compact(data)}\n\n".encode())

    emit("response.created", {"response": response("in_progress", False)})
    emit("response.in_progress", {"response": response("in_progress", False)})
    idx = len(output) - 1
    open_item = {**item, "status": "in_progress", "content": []}
    emit("response.output_item.added", {"item": open_item, "output_index": idx})
    emit("response.content_part.added", {"content_index": 0, "item_id": mid, "output_index": idx,
                                          "part": {**part, "text": ""}})
    for i, word in enumerate(plan.words):
        emit("response.output_text.delta", {
            "content_index": 0, "delta": ("" if i == 0 else " ") + word, "item_id": mid,
            "logprobs": [], "obfuscation": _obfuscation(i), "output_index": idx})
    emit("response.output_text.done", {"content_index": 0, "item_id": mid, "logprobs": [],
                                        "output_index": idx, "text": text})
    emit("response.content_part.done", {"content_index": 0, "item_id": mid, "output_index": idx,
                                         "part": part})
    emit("response.output_item.done", {"item": item, "output_index": idx})
    emit("response.completed", {"response": response("completed", True)})
    return build_reply(200, _template(_SSE), events, stream=True, gap_s=_gap(req),
                       usage=plan.normalised())


def embeddings(req: StandinRequest) -> Reply:
    """Answer POST /v1/embeddings (base64 float32 when ``encoding_format`` asks)."""
    body = req.json()
    err = openai_error(req, body)
    if err is not None:
        return err
    plan = plan_tokens(req, embeddings=True)
    raw = body.get("input", "")
    inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
    dims = int(body.get("dimensions") or 8)
    data = []
    for i, _ in enumerate(inputs):
        vec = [round(((i + 1) * (j + 3) % 17) / 17.0 - 0.5, 6) for j in range(dims)]
        emb: Any = vec
        if body.get("encoding_format") == "base64":
            emb = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    obj = {"object": "list", "data": data, "model": str(body.get("model", "")),
           "usage": {"prompt_tokens": plan.prompt_tokens, "total_tokens": plan.prompt_tokens}}
    return build_reply(200, _template("application/json"), [_pretty(obj)],
                       gzip_body=req.accepts_gzip, usage=plan.normalised())


def openai_error(req: StandinRequest, body: dict[str, Any]) -> Reply | None:
    """The recorded OpenAI error shape for an ``error_*`` flag, else None."""
    flags = req.flags
    model = str(body.get("model", ""))
    err: dict[str, Any]
    if "error_400" in flags:
        err = {"message": "Unsupported parameter: 'stop' is not supported with this model.",
               "type": "invalid_request_error", "param": "stop", "code": "unsupported_parameter"}
        return build_reply(400, _template("application/json"), [_pretty({"error": err})],
                           chunked=False)
    if "error_404" in flags:
        err = {"message": f"The model `{model}` does not exist or you do not have access to it.",
               "type": "invalid_request_error", "param": None, "code": "model_not_found"}
        return build_reply(404, _template("application/json; charset=utf-8"),
                           [_pretty({"error": err}, 4)], gzip_body=req.accepts_gzip)
    if "error_429" in flags:
        err = {"message": f"Rate limit reached for {model} in organization org-standin on tokens"
                          " per min (TPM): Limit 30000, Used 14567, Requested 24754. Please try"
                          " again in 18.642s.",
               "type": "tokens", "param": None, "code": "rate_limit_exceeded"}
        template = [h for h in _template("application/json") if not h[0].startswith("x-ratelimit")]
        return build_reply(429, template, [json.dumps({"error": err}, indent=4).encode() + b"\n"],
                           chunked=False)
    return None
