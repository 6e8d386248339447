"""Google Gemini routes of the stand-in (/v1beta/models/{model}:{method}).

Shapes follow fixtures/wire/gemini_*.txt: pretty-printed JSON with
``application/json; charset=UTF-8``, gzip + chunked when accepted;
``?alt=sse`` streams as ``data: {json}\\r\\n\\r\\n`` (``", "``/``": "``-style
JSON, no ``event:`` lines, no [DONE], ``Content-Disposition: attachment``,
never compressed); without alt=sse, one JSON array sent piece by piece
(``[{…}\\n,\\r\\n{…}\\n]``, gzip). Every stream chunk repeats the cumulative
``usageMetadata``. Errors: a 400 on a stream request is labelled
``text/event-stream`` but is bare JSON with Content-Length; 404/429 are gzip
JSON, the 429 with retry information only in ``details[RetryInfo]``.
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

__all__ = ["models"]

_JSON = "application/json; charset=UTF-8"


def _template(content_type: str, *, attachment: bool = False) -> list[tuple[str, str]]:
    head = [("Alt-Svc", 'h3=":443"; ma=2592000,h3-29=":443"; ma=2592000'),
            ("Content-Encoding", GZIP), ("Content-Length", CL)]
    if attachment:
        head.append(("Content-Disposition", "attachment"))
    head += [
        ("Content-Type", content_type),
        ("Date", DATE),
        ("Server", "scaffolding on HTTPServer2"),
        ("Server-Timing", "gfet4t7; dur=1634"),
        ("Transfer-Encoding", TE),
        ("Vary", "Origin"), ("Vary", "X-Origin"), ("Vary", "Referer"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "SAMEORIGIN"),
        ("X-XSS-Protection", "0"),
    ]
    return head


def _usage(plan: TokenPlan, candidates: int) -> dict[str, Any]:
    prompt = plan.input_total
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + plan.reasoning_tokens,
    }
    if plan.cache_read_tokens:
        usage["cachedContentTokenCount"] = plan.cache_read_tokens
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if plan.cache_read_tokens:
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.cache_read_tokens}]
    if plan.reasoning_tokens:
        usage["thoughtsTokenCount"] = plan.reasoning_tokens
    return usage


def _chunk(text: str, finish: bool, usage: dict[str, Any], model: str, rid: str) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        candidate["finishReason"] = "STOP"
    candidate["index"] = 0
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model,
            "responseId": rid}


def models(req: StandinRequest) -> Reply:
    """Answer POST /v1beta/models/{model}:{generateContent|streamGenerateContent|…}."""
    name, _, method = req.path.rsplit("/", 1)[-1].partition(":")
    stream = method == "streamGenerateContent"
    sse = stream and "alt=sse" in req.query
    err = _error(req, name, method, sse)
    if err is not None:
        return err
    if method == "batchEmbedContents":
        return _embed(req)
    plan = plan_tokens(req)
    rid = request_id(req, "", 23)
    if not stream:
        obj = _chunk(" ".join(plan.words), True, _usage(plan, plan.text_tokens), name, rid)
        return build_reply(200, _template(_JSON), [json.dumps(obj, indent=2).encode()],
                           gzip_body=req.accepts_gzip, usage=plan.normalised())
    groups = [plan.words[i:i + 4] for i in range(0, len(plan.words), 4)] or [()]
    parts: list[bytes] = []
    sent = 0
    for g, words in enumerate(groups):
        text = ("" if g == 0 else " ") + " ".join(words)
        sent += len(words)
        obj = _chunk(text, g == len(groups) - 1, _usage(plan, sent), name, rid)
        if sse:
            parts.append(b"data: " + json.dumps(obj, separators=(",", ": ")).encode()
                         + b"\r\n\r\n")
        else:
            body = json.dumps(obj, indent=2).encode()
            parts.append((b"[" if g == 0 else b"\n,\r\n") + body)
    gap = 0.05 if "slow" in req.flags else 0.002
    if sse:
        return build_reply(200, _template("text/event-stream", attachment=True), parts,
                           stream=True, gap_s=gap, usage=plan.normalised())
    parts.append(b"\n]")
    return build_reply(200, _template(_JSON), parts, gzip_body=req.accepts_gzip, stream=True,
                       gap_s=gap, usage=plan.normalised())


def _embed(req: StandinRequest) -> Reply:
    body = req.json()
    plan = plan_tokens(req, embeddings=True)
    requests = body.get("requests") if isinstance(body.get("requests"), list) else []
    embeddings = [{"values": [round(((i + 1) * (j + 5) % 13) / 13.0 - 0.5, 6) for j in range(3)]}
                  for i in range(len(requests or [None]))]
    obj: dict[str, Any] = {"embeddings": embeddings}
    carried: dict[str, int] = {}
    # gemini-embedding-001 answers with no usageMetadata at all (recorded).
    if "embedding-001" not in req.path:
        obj["usageMetadata"] = {"promptTokenCount": plan.prompt_tokens, "promptTokenDetails": [
            {"modality": "TEXT", "tokenCount": plan.prompt_tokens}]}
        carried = plan.normalised()
    return build_reply(200, _template(_JSON), [json.dumps(obj, indent=2).encode()],
                       gzip_body=req.accepts_gzip, usage=carried)


def _error(req: StandinRequest, name: str, method: str, sse: bool) -> Reply | None:
    flags = req.flags
    if "error_400" in flags:
        err = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                         "status": "INVALID_ARGUMENT", "details": [{
                             "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                             "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                             "metadata": {"service": "generativelanguage.googleapis.com"}}]}}
        # Recorded: a stream request's 400 says text/event-stream but is bare JSON.
        ctype = "text/event-stream" if sse else _JSON
        return build_reply(400, _template(ctype), [json.dumps(err, indent=2).encode() + b"\n"],
                           chunked=False)
    if "error_404" in flags:
        err = {"error": {"code": 404, "message": f"models/{name} is not found for API version"
                         f" v1beta, or is not supported for {method}.", "status": "NOT_FOUND"}}
        return build_reply(404, _template(_JSON), [json.dumps(err, indent=2).encode() + b"\n"],
                           gzip_body=req.accepts_gzip)
    if "error_429" in flags:
        err = {"error": {"code": 429, "message": "You exceeded your current quota, please check"
                         " your plan and billing details.", "status": "RESOURCE_EXHAUSTED",
                         "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                      "retryDelay": "47s"}]}}
        return build_reply(429, _template(_JSON), [json.dumps(err, indent=2).encode() + b"\n"],
                           gzip_body=req.accepts_gzip)
    return None
