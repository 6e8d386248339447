"""Anthropic Messages route of the stand-in (POST /v1/messages).

Shapes follow fixtures/wire/anthropic_*.txt: compact JSON, gzip + chunked
when accepted; SSE as ``event:``/``data:`` pairs with LF framing, JSON padded
with a varying run of spaces before its final ``}``, a ``ping`` after the first
content_block_start, input and cache counts in message_start, a cumulative
message_delta usage that repeats them. Flags: ``gzip_sse`` (the April 2026
gzip-compressed SSE), ``midstream_error`` (``event: error`` after a 200, no
message_delta), ``error_400``/``error_404``/``error_429``.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.standin_wire import (
    CL,
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

__all__ = ["messages"]


def _template(content_type: str, *, sse: bool, gzip_vary: bool) -> list[tuple[str, str]]:
    head = [("CF-RAY", "9cf926b51f134973-SJC")]
    if sse:
        head.append(("Cache-Control", "no-cache"))
    head += [
        ("Connection", "keep-alive"),
        ("Content-Encoding", GZIP),
        ("Content-Length", CL),
        ("Content-Type", content_type),
        ("Date", DATE),
        ("Server", "cloudflare"),
        ("Transfer-Encoding", TE),
        ("X-Robots-Tag", "none"),
        ("anthropic-organization-id", "00000000-0000-4000-8000-000000000000"),
        ("anthropic-ratelimit-input-tokens-limit", "2000000"),
        ("anthropic-ratelimit-input-tokens-remaining", "2000000"),
        ("anthropic-ratelimit-input-tokens-reset", "2026-02-17T23:44:11Z"),
        ("anthropic-ratelimit-requests-limit", "20000"),
        ("anthropic-ratelimit-requests-remaining", "19999"),
        ("anthropic-ratelimit-requests-reset", "2026-02-17T23:44:11Z"),
        ("cf-cache-status", "DYNAMIC"),
        ("request-id", "req_011CStandin000000000000"),
        ("strict-transport-security", "max-age=31536000; includeSubDomains; preload"),
    ]
    if gzip_vary:
        head.append(("vary", "Accept-Encoding"))
    head.append(("x-envoy-upstream-service-time", "943"))
    return head


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _padded(obj: Any, i: int) -> str:
    # Anthropic pads some data lines with spaces before the last brace.
    text = _compact(obj)
    pad = (i * 7) % 16
    return text[:-1] + " " * pad + "}" if pad % 3 else text


def _usage(plan: TokenPlan, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": plan.prompt_tokens,
        "cache_creation_input_tokens": plan.cache_write_tokens,
        "cache_read_input_tokens": plan.cache_read_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": plan.cache_write_tokens,
                           "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def messages(req: StandinRequest) -> Reply:
    """Answer POST /v1/messages (JSON or SSE)."""
    body = req.json()
    err = _error(req, body)
    if err is not None:
        return err
    plan = plan_tokens(req, cache_write_ok=True, reasoning_ok=False)
    model = str(body.get("model", ""))
    mid = request_id(req, "msg_01", 22)
    text = " ".join(plan.words)
    if not body.get("stream"):
        obj = {"model": model, "id": mid, "type": "message", "role": "assistant",
               "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
               "stop_sequence": None, "usage": _usage(plan, plan.output_total)}
        return build_reply(200, _template("application/json", sse=False, gzip_vary=False),
                           [_compact(obj).encode()], gzip_body=req.accepts_gzip,
                           usage=plan.normalised())
    flags = req.flags
    gz = "gzip_sse" in flags and req.accepts_gzip
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {
            "model": model, "id": mid, "type": "message", "role": "assistant", "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": _usage(plan, 1)}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]
    words = plan.words[:2] if "midstream_error" in flags else plan.words
    for i, word in enumerate(words):
        events.append(("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": ("" if i == 0 else " ") + word}}))
    usage = plan.normalised()
    if "midstream_error" in flags:
        events.append(("error", {"type": "error", "error": {
            "details": None, "type": "overloaded_error", "message": "Overloaded"},
            "request_id": "req_011CStandin000000000000"}))
        usage = {}
    else:
        delta_usage = {k: v for k, v in _usage(plan, plan.output_total).items()
                       if k in ("input_tokens", "cache_creation_input_tokens",
                                "cache_read_input_tokens", "output_tokens")}
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": delta_usage}),
            ("message_stop", {"type": "message_stop"}),
        ]
    parts = []
    for i, (name, data) in enumerate(events):
        line = '{"type": "ping"}' if name == "ping" else _padded(data, i)
        parts.append(f"event: {name}\ndata: {line}\n\n".encode())
    gap = 0.05 if "slow" in flags else 0.002
    return build_reply(200, _template("text/event-stream; charset=utf-8", sse=True, gzip_vary=gz),
                       parts, gzip_body=gz, stream=True, gap_s=gap, usage=usage)


def _error(req: StandinRequest, body: dict[str, Any]) -> Reply | None:
    flags = req.flags
    rid = "req_011CStandin000000000000"
    if "error_429" in flags:
        err = {"type": "error", "error": {
            "type": "rate_limit_error",
            "message": "This request would exceed the rate limit for your organization of"
                       " 20,000 input tokens per minute."}, "request_id": rid}
        template = [
            ("Date", DATE), ("Content-Type", "application/json"), ("Content-Length", CL),
            ("Connection", "keep-alive"), ("retry-after", "27"),
            ("anthropic-ratelimit-input-tokens-limit", "20000"),
            ("anthropic-ratelimit-input-tokens-remaining", "0"),
            ("anthropic-ratelimit-input-tokens-reset", "2026-02-17T23:44:39Z"),
            ("request-id", rid), ("x-should-retry", "true"), ("Server", "cloudflare"),
        ]
        return build_reply(429, template, [_compact(err).encode()], chunked=False)
    for flag, status, kind, message in (
        ("error_404", 404, "not_found_error", f"model: {body.get('model', '')}"),
        ("error_400", 400, "invalid_request_error", "max_tokens: Field required"),
    ):
        if flag in flags:
            err = {"type": "error", "error": {"type": kind, "message": message}, "request_id": rid}
            template = _template("application/json", sse=False, gzip_vary=False)
            template.append(("x-should-retry", "false"))
            return build_reply(status, template, [_compact(err).encode()],
                               gzip_body=req.accepts_gzip)
    return None
