"""Cohere v2 routes of the stand-in (POST /v2/chat, /v2/embed).

Shapes follow Cohere's API reference: a chat answer has ``message.content[]``,
``finish_reason`` and ``usage`` with ``billed_units`` (charged) and ``tokens``
(what the model saw, template included: the stand-in adds 200); a stream is
SSE (``event:`` + ``data:``, the type repeated in the data) ending with
``message-end`` whose ``delta.usage`` is the final usage. Embed answers carry
``meta.billed_units.input_tokens``. Token counts follow the stand-in's model
(``standin_wire``); embeddings count the words of ``texts``.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.standin_wire import (
    CL,
    DATE,
    TE,
    Reply,
    StandinRequest,
    build_reply,
    plan_tokens,
    prompt_words,
    request_id,
)

__all__ = ["chat", "embed"]

_TEMPLATE_TOKENS = 200


def _headers(content_type: str, tokens: int) -> list[tuple[str, str]]:
    return [("content-type", content_type), ("date", DATE), ("content-length", CL),
            ("transfer-encoding", TE), ("num_tokens", str(tokens))]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def chat(req: StandinRequest) -> Reply:
    """Answer POST /v2/chat."""
    plan = plan_tokens(req, reasoning_ok=False)
    usage = {
        "billed_units": {"input_tokens": plan.prompt_tokens, "output_tokens": plan.text_tokens},
        "tokens": {"input_tokens": plan.prompt_tokens + _TEMPLATE_TOKENS,
                   "output_tokens": plan.text_tokens + 2},
        "cached_tokens": 0,
    }
    rid = request_id(req, "", 36)
    total = plan.prompt_tokens + plan.text_tokens
    if not req.json().get("stream"):
        doc = {"id": rid, "message": {"role": "assistant", "content": [
            {"type": "text", "text": " ".join(plan.words)}]},
            "finish_reason": "COMPLETE", "usage": usage}
        return build_reply(200, _headers("application/json", total), [_dumps(doc)],
                           chunked=False, usage=plan.normalised())
    events: list[tuple[str, dict[str, Any]]] = [
        ("message-start", {"id": rid, "type": "message-start", "delta": {"message": {
            "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [],
            "citations": []}}}),
        ("content-start", {"type": "content-start", "index": 0, "delta": {"message": {
            "content": {"type": "text", "text": ""}}}}),
    ]
    for i, word in enumerate(plan.words):
        events.append(("content-delta", {"type": "content-delta", "index": 0, "delta": {
            "message": {"content": {"text": ("" if i == 0 else " ") + word}}}}))
    events.append(("content-end", {"type": "content-end", "index": 0}))
    events.append(("message-end", {"type": "message-end", "delta": {
        "finish_reason": "COMPLETE", "usage": usage}}))
    parts = [b"event: " + name.encode() + b"\ndata: " + _dumps(doc) + b"\n\n"
             for name, doc in events]
    return build_reply(200, _headers("text/event-stream", total), parts, stream=True,
                       gap_s=0.002, usage=plan.normalised())


def embed(req: StandinRequest) -> Reply:
    """Answer POST /v2/embed."""
    body = req.json()
    texts = body.get("texts") or []
    words = prompt_words(texts)
    types = body.get("embedding_types") or ["float"]
    doc = {"id": request_id(req, "", 36),
           "embeddings": {t: [[0.0125, -0.5, 0.25] for _ in texts] for t in types},
           "texts": texts,
           "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": words}},
           "response_type": "embeddings_by_type"}
    return build_reply(200, _headers("application/json", words), [_dumps(doc)], chunked=False,
                       usage={"input_tokens": words, "output_tokens": 0,
                              "cache_read_tokens": 0, "cache_write_tokens": 0,
                              "reasoning_tokens": 0})
