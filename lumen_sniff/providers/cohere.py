"""Cohere API v2: ``/v2/chat`` (stream and not) and ``/v2/embed``.

Usage is ``usage`` on a chat response (``delta.usage`` on the stream's
``message-end`` event) and ``meta`` on an embed response. Cohere reports two
sets of counts: ``billed_units`` (what is charged) and ``tokens`` (what the
model saw, chat template included). lumen-sniff counts what is billed:

    input      = billed_units.input_tokens   (else tokens.input_tokens)
    output     = billed_units.output_tokens  (else tokens.output_tokens)
    cache_read = cached_tokens               (prompt tokens that hit the cache)

Neither response names the model, so the request's ``model`` stands. Streams
are SSE; the type of an event is in its data (``"type": "content-delta"``);
``message-end`` ends the stream and carries the final usage. Only
``message-end`` is parsed.
"""

from __future__ import annotations

import re
from typing import Any

from lumen_sniff.providers._json import INVALID, as_int, dig, first_string, parse
from lumen_sniff.providers.error_shapes import status_only
from lumen_sniff.providers.family import ApiFamily, Endpoint, Evidence
from lumen_sniff.providers.reader import Reader, carries_text, text_chars

__all__ = ["FAMILY", "CohereReader"]

_TYPE_KEY = b'"type"'


class CohereReader(Reader):
    """Cohere v2 chat and embed."""

    __slots__ = ()

    def record(self, event: str, data: bytes) -> None:
        t = self.t
        t.records += 1
        etype = event if event not in ("", "message") else first_string(data, _TYPE_KEY) or ""
        if etype == "content-delta" or etype == "tool-call-delta":
            if carries_text(data, b'"text":"'):
                t.deltas += 1
            return
        if etype != "message-end":
            return
        doc = parse(data)
        if doc is INVALID or not isinstance(doc, dict):
            t.bad_json += 1
            return
        self._usage(dig(doc, "delta", "usage"))
        t.final = t.reported
        t.ended = True

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        billed = usage.get("billed_units")
        tokens = usage.get("tokens")
        t = self.t
        for source in (billed, tokens):
            if isinstance(source, dict) and ("input_tokens" in source or "output_tokens" in source):
                t.input = as_int(source.get("input_tokens"))
                t.output = as_int(source.get("output_tokens"))
                t.reported = True
                break
        t.cache_read = as_int(usage.get("cached_tokens"))  # as reported

    def document(self, doc: Any) -> None:
        t = self.t
        if not isinstance(doc, dict):
            return
        t.records += 1
        t.out_chars += text_chars(dig(doc, "message", "content"))
        if isinstance(doc.get("usage"), dict):
            self._usage(doc["usage"])
        elif isinstance(doc.get("meta"), dict):  # embed
            self._usage(doc["meta"])
        t.final = t.reported
        t.ended = True


FAMILY = ApiFamily(
    name="cohere",
    provider="cohere",
    endpoints=(
        Endpoint(path=re.compile(r"^/v2/chat$"), api="cohere_chat", reader=CohereReader),
        Endpoint(
            path=re.compile(r"^/v2/embed$"),
            api="cohere_embed",
            reader=CohereReader,
            no_output=True,
        ),
    ),
    evidence=Evidence(body_keys=frozenset({"messages", "texts", "inputs"})),
    error_shape=status_only,
    hosts={"api.cohere.com": "cohere", "api.cohere.ai": "cohere"},
    path_prefixes=("/v2/",),
)
"""Cohere's v2 API (its OpenAI-compatible endpoints are the OpenAI family's)."""
