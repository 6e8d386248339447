"""Google Gemini responses: generateContent, streamGenerateContent, embeddings.

``usageMetadata`` maps to the normalised convention as

    input      = promptTokenCount + toolUsePromptTokenCount
    cache_read = cachedContentTokenCount          (already inside promptTokenCount)
    output     = candidatesTokenCount + thoughtsTokenCount   (thoughts are billed as output)
    reasoning  = thoughtsTokenCount

``modelVersion`` can arrive as ``models/gemini-2.5-pro``: the prefix is
dropped so the model is priced. Any field may be missing (the last chunk of a thinking stream has no
``candidatesTokenCount``; embedding-001 sends no usage at all). Streams
(``alt=sse`` or the incremental JSON array) repeat a cumulative
``usageMetadata`` on every chunk: the last one wins, never a sum. A chunk with
``finishReason`` ends the response. Only chunks whose bytes mention
``usageMetadata``, ``finishReason`` or ``"error"`` are parsed.
"""

from __future__ import annotations

import re
from typing import Any

from lumen_sniff.providers._json import INVALID, as_int, dig, first_string, has_object, parse
from lumen_sniff.providers.error_shapes import envelope_error_type, json_envelope
from lumen_sniff.providers.family import ApiFamily, Endpoint, Evidence, Framing
from lumen_sniff.providers.reader import Reader, text_chars

__all__ = ["FAMILY", "GeminiReader"]

_TEXT = re.compile(rb'"text"\s*:\s*"[^"]')


class GeminiReader(Reader):
    """Gemini generateContent / streamGenerateContent / embedContent."""

    __slots__ = ()

    usage_key = b'"usageMetadata"'
    model_key = b'"modelVersion"'
    has_terminator = False

    def record(self, event: str, data: bytes) -> None:
        t = self.t
        t.records += 1
        if _TEXT.search(data) is not None:
            t.deltas += 1
        if b"usageMetadata" in data or b"finishReason" in data or has_object(data, b'"error"'):
            doc = parse(data)
            if doc is INVALID or not isinstance(doc, dict):
                t.bad_json += 1
                return
            self._chunk(doc)
        elif t.model is None:
            model = first_string(data, b'"modelVersion"')
            t.model = _bare(model) if model is not None else None

    def _chunk(self, doc: dict[str, Any]) -> None:
        t = self.t
        if isinstance(doc.get("error"), dict):
            t.error_type = envelope_error_type(doc)
            t.failed = True
            return
        model = doc.get("modelVersion")
        if isinstance(model, str):
            t.model = _bare(model)
        self._usage(doc.get("usageMetadata"))
        for cand in doc.get("candidates") or ():
            if isinstance(cand, dict) and isinstance(cand.get("finishReason"), str):
                t.ended = True
                t.final = t.reported

    def _usage(self, meta: Any) -> None:
        if not isinstance(meta, dict):
            return
        t = self.t
        prompt = as_int(meta.get("promptTokenCount"))
        thoughts = as_int(meta.get("thoughtsTokenCount"))
        t.input = prompt + as_int(meta.get("toolUsePromptTokenCount"))
        t.cache_read = as_int(meta.get("cachedContentTokenCount"))  # as reported
        t.output = as_int(meta.get("candidatesTokenCount")) + thoughts
        t.reasoning = thoughts
        t.reported = True

    def document(self, doc: Any) -> None:
        t = self.t
        if isinstance(doc, list):  # a whole streamed array read at once
            for item in doc:
                self.document(item)
            return
        if not isinstance(doc, dict):
            return
        t.records += 1
        if isinstance(doc.get("error"), dict):
            t.error_type = envelope_error_type(doc)
            return
        for cand in doc.get("candidates") or ():
            t.out_chars += text_chars(dig(cand, "content", "parts"))
        model = doc.get("modelVersion")
        if isinstance(model, str):
            t.model = _bare(model)
        self._usage(doc.get("usageMetadata"))
        t.final = t.reported
        t.ended = True


def _bare(model: str) -> str:
    """``models/gemini-2.5-pro`` → ``gemini-2.5-pro`` (the name genai-prices knows)."""
    return model.removeprefix("models/")


_MODEL = r"/(?:tuned)?[mM]odels/(?P<model>[^/:]+)"

FAMILY = ApiFamily(
    name="gemini",
    provider="google",
    endpoints=(
        Endpoint(
            path=re.compile(_MODEL + r":(?:(?P<stream>stream)GenerateContent|generateContent)$"),
            api="generate_content",
            reader=GeminiReader,
            framing=Framing.JSON_ARRAY,
        ),
        Endpoint(
            path=re.compile(_MODEL + r":(?:embedContent|batchEmbedContents)$"),
            api="embed_content",
            reader=GeminiReader,
            no_output=True,
        ),
    ),
    evidence=Evidence(headers=frozenset({"x-goog-api-key"}), path_prefixes=("/v1",)),
    error_shape=json_envelope,
    hosts={
        "generativelanguage.googleapis.com": "google",
        "aiplatform.googleapis.com": "google",
    },
    host_patterns=((r".+-aiplatform\.googleapis\.com", "google"),),
    path_prefixes=("/v1/", "/v1beta/", "/v1alpha/", "/v1beta1/", "/models/"),
)
"""Gemini API and Vertex AI (Google's own models)."""
