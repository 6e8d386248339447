"""Ollama native routes of the stand-in (POST /api/chat, /api/generate).

Ollama is a Go net/http server: Content-Type then Date then the framing
header; whole answers carry Content-Length, streams (the default when
``stream`` is absent) are ``application/x-ndjson`` with chunked framing, one
JSON object per line. The final object has ``done: true`` with
``prompt_eval_count`` (input) and ``eval_count`` (output). No compression.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.standin_wire import CL, DATE, TE, Reply, StandinRequest, build_reply, plan_tokens

__all__ = ["chat", "generate"]

_CREATED_AT = "2026-02-17T23:44:12.000000000Z"


def _template(content_type: str) -> list[tuple[str, str]]:
    return [("Content-Type", content_type), ("Date", DATE),
            ("Content-Length", CL), ("Transfer-Encoding", TE)]


def _line(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _answer(req: StandinRequest, *, chat: bool) -> Reply:
    body = req.json()
    plan = plan_tokens(req, reasoning_ok=False)
    model = str(body.get("model", ""))
    final: dict[str, Any] = {
        "model": model, "created_at": _CREATED_AT,
    }

    def piece(text: str) -> dict[str, Any]:
        if chat:
            return {"message": {"role": "assistant", "content": text}}
        return {"response": text}

    stats = {
        "done_reason": "stop", "done": True, "total_duration": 123456789,
        "load_duration": 1234567, "prompt_eval_count": plan.prompt_tokens,
        "prompt_eval_duration": 2345678, "eval_count": plan.text_tokens,
        "eval_duration": 34567890,
    }
    if not chat:
        stats["context"] = list(range(1, 9))
    if body.get("stream", True) is False:
        whole = {**final, **piece(" ".join(plan.words)), **stats}
        return build_reply(200, _template("application/json; charset=utf-8"), [_line(whole)],
                           chunked=False, usage=plan.normalised())
    parts = [_line({**final, **piece(("" if i == 0 else " ") + w), "done": False})
             for i, w in enumerate(plan.words)]
    parts.append(_line({**final, **piece(""), **stats}))
    gap = 0.05 if "slow" in req.flags else 0.002
    return build_reply(200, _template("application/x-ndjson"), parts, stream=True, gap_s=gap,
                       usage=plan.normalised())


def chat(req: StandinRequest) -> Reply:
    """Answer POST /api/chat."""
    return _answer(req, chat=True)


def generate(req: StandinRequest) -> Reply:
    """Answer POST /api/generate."""
    return _answer(req, chat=False)
