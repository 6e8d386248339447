"""Route table of the stand-in: request path to the pure function that answers it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from tests.support import standin_anthropic as anthropic
from tests.support import standin_bedrock as bedrock
from tests.support import standin_cohere as cohere
from tests.support import standin_gemini as gemini
from tests.support import standin_ollama as ollama
from tests.support import standin_openai as openai
from tests.support.standin_wire import DATE, Reply, StandinRequest, build_reply

__all__ = ["ROUTES", "answer"]

Route = Callable[[StandinRequest], Reply]

ROUTES: tuple[tuple[str, re.Pattern[str], Route], ...] = (
    ("POST", re.compile(r"/v1/chat/completions"), openai.chat_completions),
    ("POST", re.compile(r"/v1/responses"), openai.responses),
    ("POST", re.compile(r"/v1/embeddings"), openai.embeddings),
    ("POST", re.compile(r"/v1/messages"), anthropic.messages),
    ("POST", re.compile(r"/v1beta/models/[^/:]+:(generateContent|streamGenerateContent"
                        r"|batchEmbedContents)"), gemini.models),
    ("POST", re.compile(r"/v2/chat"), cohere.chat),
    ("POST", re.compile(r"/v2/embed"), cohere.embed),
    ("POST", re.compile(r"/model/[^/]+/converse(-stream)?"), bedrock.converse),
    ("POST", re.compile(r"/model/[^/]+/invoke(-with-response-stream)?"), bedrock.invoke),
    ("POST", re.compile(r"/api/chat"), ollama.chat),
    ("POST", re.compile(r"/api/generate"), ollama.generate),
)
"""(method, full-match path pattern, handler), first match wins."""


def answer(req: StandinRequest) -> Reply:
    """Answer ``req`` in its API's wire format (a JSON 404 for unknown routes)."""
    for method, pattern, route in ROUTES:
        if req.method == method and pattern.fullmatch(req.path):
            return route(req)
    body = json.dumps({"error": {"message": f"no stand-in route for {req.method} {req.path}"}})
    return build_reply(404, [("Content-Type", "application/json"), ("Date", DATE),
                             ("Content-Length", "<cl>")], [body.encode()], chunked=False)
