"""Bedrock Runtime routes of the stand-in: POST /model/{id}/converse[-stream] and invoke[-…].

Shapes follow the Bedrock Runtime API reference. Converse answers carry
``usage`` (``inputTokens`` without the cache, ``cacheRead/WriteInputTokens``,
``totalTokens`` = all four); ConverseStream and InvokeModelWithResponseStream
answer ``application/vnd.amazon.eventstream`` messages (one write each, every
event padded with a ``p`` field as Bedrock does). InvokeModel bodies are the
model's own (Anthropic Messages here) and Bedrock adds
``X-Amzn-Bedrock-Input-Token-Count`` / ``-Output-Token-Count`` headers; a
stream's last chunk carries ``amazon-bedrock-invocationMetrics``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.support.eventstream_wire import event
from tests.support.standin_wire import (
    CL,
    DATE,
    TE,
    Reply,
    StandinRequest,
    TokenPlan,
    build_reply,
    plan_tokens,
    request_id,
)

__all__ = ["converse", "invoke"]

_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _headers(req: StandinRequest, content_type: str,
             extra: tuple[tuple[str, str], ...] = ()) -> list[tuple[str, str]]:
    return [("Date", DATE), ("Content-Type", content_type), ("Content-Length", CL),
            ("Transfer-Encoding", TE), ("Connection", "keep-alive"),
            ("x-amzn-RequestId", request_id(req, "", 32)), *extra]


def _usage(plan: TokenPlan) -> dict[str, int]:
    usage = {"inputTokens": plan.prompt_tokens, "outputTokens": plan.text_tokens,
             "totalTokens": plan.input_total + plan.text_tokens}
    if plan.cache_read_tokens or plan.cache_write_tokens:
        usage["cacheReadInputTokens"] = plan.cache_read_tokens
        usage["cacheWriteInputTokens"] = plan.cache_write_tokens
    return usage


def _plan(req: StandinRequest) -> TokenPlan:
    plan = plan_tokens(req, cache_write_ok=True, reasoning_ok=False)
    body = req.json()
    limit = (body.get("inferenceConfig") or {}).get("maxTokens")
    if isinstance(limit, int) and 0 < limit < plan.text_tokens:
        plan = TokenPlan(prompt_tokens=plan.prompt_tokens, text_tokens=limit,
                         cache_read_tokens=plan.cache_read_tokens,
                         cache_write_tokens=plan.cache_write_tokens)
    return plan


def converse(req: StandinRequest) -> Reply:
    """Answer POST /model/{id}/converse and /converse-stream."""
    plan = _plan(req)
    if not req.path.endswith("-stream"):
        doc = {"metrics": {"latencyMs": 412},
               "output": {"message": {"content": [{"text": " ".join(plan.words)}],
                                      "role": "assistant"}},
               "stopReason": "end_turn", "usage": _usage(plan)}
        return build_reply(200, _headers(req, "application/json"), [_dumps(doc)],
                           chunked=False, usage=plan.normalised())
    events = [event("messageStart", _dumps({"p": _PAD[:6], "role": "assistant"}))]
    for i, word in enumerate(plan.words):
        delta = {"contentBlockIndex": 0, "delta": {"text": ("" if i == 0 else " ") + word},
                 "p": _PAD[: 4 + i]}
        events.append(event("contentBlockDelta", _dumps(delta)))
    events.append(event("contentBlockStop", _dumps({"contentBlockIndex": 0, "p": _PAD[:9]})))
    events.append(event("messageStop", _dumps({"p": _PAD[:12], "stopReason": "end_turn"})))
    events.append(event("metadata", _dumps({"metrics": {"latencyMs": 412}, "p": _PAD[:3],
                                            "usage": _usage(plan)})))
    return build_reply(200, _headers(req, "application/vnd.amazon.eventstream"), events,
                       stream=True, gap_s=0.002, usage=plan.normalised())


def _chunk(obj: dict[str, Any], pad: int) -> bytes:
    inner = base64.b64encode(_dumps(obj)).decode()
    return event("chunk", _dumps({"bytes": inner, "p": _PAD[:pad]}))


def invoke(req: StandinRequest) -> Reply:
    """Answer POST /model/{id}/invoke and /invoke-with-response-stream (Anthropic bodies)."""
    plan = _plan(req)
    usage = {"input_tokens": plan.prompt_tokens, "output_tokens": plan.text_tokens}
    msg_id = request_id(req, "msg_bdrk_", 24)
    if not req.path.endswith("-stream"):
        doc = {"id": msg_id, "type": "message", "role": "assistant",
               "model": "claude-3-5-haiku-20241022",
               "content": [{"type": "text", "text": " ".join(plan.words)}],
               "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}
        counts = (("X-Amzn-Bedrock-Invocation-Latency", "398"),
                  ("X-Amzn-Bedrock-Output-Token-Count", str(plan.text_tokens)),
                  ("X-Amzn-Bedrock-Input-Token-Count", str(plan.prompt_tokens)))
        return build_reply(200, _headers(req, "application/json", counts), [_dumps(doc)],
                           chunked=False, usage=plan.normalised())
    chunks = [
        _chunk({"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant",
            "model": "claude-3-5-haiku-20241022", "content": [], "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": 1}}}, 5),
        _chunk({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}, 7),
    ]
    for i, word in enumerate(plan.words):
        chunks.append(_chunk({"type": "content_block_delta", "index": 0, "delta": {
            "type": "text_delta", "text": ("" if i == 0 else " ") + word}}, 3 + i))
    chunks.append(_chunk({"type": "content_block_stop", "index": 0}, 8))
    chunks.append(_chunk({"type": "message_delta", "delta": {
        "stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": plan.text_tokens}}, 10))
    chunks.append(_chunk({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
        "inputTokenCount": plan.prompt_tokens, "outputTokenCount": plan.text_tokens,
        "invocationLatency": 398, "firstByteLatency": 211}}, 4))
    return build_reply(200, _headers(req, "application/vnd.amazon.eventstream"), chunks,
                       stream=True, gap_s=0.002, usage=plan.normalised())
