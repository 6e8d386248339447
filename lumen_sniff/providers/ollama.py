"""Ollama's native API: /api/chat, /api/generate, /api/embed.

Usage is on the final object only, the one with ``"done": true`` (the last
NDJSON line of a stream, or the single JSON of a non-stream call):
``prompt_eval_count`` → input, ``eval_count`` → output. /api/embed reports
``prompt_eval_count`` on its single object. Ollama has no cache or reasoning
counts. Only the ``done: true`` line (and error lines) are parsed.
"""

from __future__ import annotations

import re
from typing import Any

from lumen_sniff.providers._json import INVALID, as_int, dig, first_string, parse
from lumen_sniff.providers.error_shapes import envelope_error_type, json_envelope
from lumen_sniff.providers.family import ApiFamily, Endpoint, Evidence, Framing
from lumen_sniff.providers.reader import Reader, carries_text, text_chars

__all__ = ["FAMILY", "OllamaReader"]

_DONE = re.compile(rb'"done"\s*:\s*true')
_ERROR = re.compile(rb'"error"\s*:')
_COUNT = re.compile(rb'"(prompt_eval_count|eval_count)"\s*:\s*(\d{1,12})')


class OllamaReader(Reader):
    """Ollama native chat / generate / embed."""

    __slots__ = ()

    def record(self, event: str, data: bytes) -> None:
        t = self.t
        t.records += 1
        if _DONE.search(data) is None and _ERROR.search(data) is None:
            if carries_text(data):
                t.deltas += 1
            if t.model is None:
                t.model = first_string(data, b'"model"')
            return
        doc = parse(data)
        if doc is INVALID or not isinstance(doc, dict):
            t.bad_json += 1
            return
        self.document(doc)

    def document(self, doc: Any) -> None:
        t = self.t
        if not isinstance(doc, dict):
            return
        if "error" in doc:
            t.error_type = envelope_error_type(doc)
            t.failed = True
            return
        model = doc.get("model")
        if isinstance(model, str):
            t.model = model
        t.out_chars += text_chars(dig(doc, "message", "content")) + text_chars(doc.get("response"))
        if doc.get("done") is True or "prompt_eval_count" in doc or "eval_count" in doc:
            t.input = as_int(doc.get("prompt_eval_count"))
            t.output = as_int(doc.get("eval_count"))
            t.reported = True
            t.final = True
            t.ended = True

    def salvage(self, head: bytes, tail: bytes) -> None:
        counts = {m.group(1): int(m.group(2)) for m in _COUNT.finditer(tail)}
        if counts:
            self.document({"done": True, **{k.decode(): v for k, v in counts.items()}})
        if self.t.model is None:
            self.t.model = first_string(head, b'"model"')


FAMILY = ApiFamily(
    name="ollama",
    provider="ollama",
    endpoints=(
        Endpoint(
            path=re.compile(r"^/api/chat$"),
            api="ollama_chat",
            reader=OllamaReader,
            framing=Framing.NDJSON,
            stream_default=True,
            body_required=True,
        ),
        Endpoint(
            path=re.compile(r"^/api/generate$"),
            api="ollama_generate",
            reader=OllamaReader,
            framing=Framing.NDJSON,
            stream_default=True,
            body_required=True,
        ),
        Endpoint(
            path=re.compile(r"^/api/embed(?:dings)?$"),
            api="ollama_embed",
            reader=OllamaReader,
            framing=Framing.NDJSON,
            no_output=True,
            body_required=True,
        ),
    ),
    evidence=Evidence(body_keys=frozenset({"model", "messages", "prompt", "input", "contents"})),
    error_shape=json_envelope,
    hosts={"ollama.com": "ollama"},
    path_prefixes=("/api/chat", "/api/generate", "/api/embed"),
)
"""Ollama's native API (its /v1 compatibility endpoints are the OpenAI family's)."""
