"""AWS Bedrock Runtime: Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream.

Requests go to ``bedrock-runtime.<region>.amazonaws.com`` as
``POST /model/{modelId}/converse[-stream]`` or ``/model/{modelId}/invoke[-with-response-stream]``,
signed with SigV4 (the access key id in ``Authorization: … Credential=`` is what
:mod:`lumen_sniff.providers.attribution` fingerprints). The model id comes from
the path, percent-decoded (``us.anthropic.claude-…-v1:0``, ``amazon.nova-lite-v1:0``
or an inference-profile ARN); it is what genai-prices' ``aws`` provider prices,
so a model name inside a response body is never used.

Converse usage (``usage``, or the stream's ``metadata`` event)::

    input       = inputTokens + cacheReadInputTokens + cacheWriteInputTokens
    cache_read  = cacheReadInputTokens
    cache_write = cacheWriteInputTokens
    output      = outputTokens

Bedrock's ``inputTokens`` leaves the cache out (its ``totalTokens`` adds all
four); when ``totalTokens`` shows the cache already inside ``inputTokens``, it
is not added twice.

InvokeModel bodies are the model's own format, so usage is read from what
Bedrock adds for every model: the ``x-amzn-bedrock-input-token-count`` /
``-output-token-count`` / ``-cache-read-input-token-count`` /
``-cache-write-input-token-count`` response headers, else a usage object in the
body (Anthropic or Nova shape). Streams are AWS eventstream messages
(:mod:`lumen_sniff.protocol.eventstream`); an InvokeModel stream's ``chunk``
events hold ``{"bytes": base64(model chunk)}`` and the last model chunk carries
``amazon-bedrock-invocationMetrics`` (same counts, same convention). An
``exception`` message fails the response.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from lumen_sniff.model import Headers
from lumen_sniff.providers._json import as_int, dig, find_object, parse
from lumen_sniff.providers.error_shapes import aws_error
from lumen_sniff.providers.family import ApiFamily, Endpoint, Evidence, Framing
from lumen_sniff.providers.reader import Reader, Tally, carries_text, text_chars

__all__ = ["FAMILY", "ConverseReader", "InvokeReader", "apply_bedrock_counts"]

_METRICS = "amazon-bedrock-invocationMetrics"
_HEADER_COUNTS = {
    "x-amzn-bedrock-input-token-count": "inputTokens",
    "x-amzn-bedrock-output-token-count": "outputTokens",
    "x-amzn-bedrock-cache-read-input-token-count": "cacheReadInputTokens",
    "x-amzn-bedrock-cache-write-input-token-count": "cacheWriteInputTokens",
}


def apply_bedrock_counts(t: Tally, counts: dict[str, Any]) -> None:
    """Set the tally from Bedrock counts (Converse names or invocationMetrics names)."""
    fresh = as_int(counts.get("inputTokens", counts.get("inputTokenCount")))
    output = as_int(counts.get("outputTokens", counts.get("outputTokenCount")))
    cache_read = as_int(counts.get("cacheReadInputTokens", counts.get("cacheReadInputTokenCount")))
    cache_write = as_int(
        counts.get("cacheWriteInputTokens", counts.get("cacheWriteInputTokenCount"))
    )
    total = counts.get("totalTokens")
    cached_inside = (
        isinstance(total, int)
        and (cache_read or cache_write)
        and total == fresh + output
        and fresh >= cache_read + cache_write
    )
    t.input = fresh if cached_inside else fresh + cache_read + cache_write
    t.output = output
    t.cache_read = cache_read
    t.cache_write = cache_write
    t.reported = True


def _exception(t: Tally, event: str) -> bool:
    if not event.startswith("exception:"):
        return False
    t.failed = True
    t.error_type = event[len("exception:") :][:64] or "exception"
    return True


class ConverseReader(Reader):
    """Converse and ConverseStream."""

    __slots__ = ()

    def record(self, event: str, data: bytes) -> None:
        t = self.t
        t.records += 1
        if _exception(t, event):
            return
        if event == "contentBlockDelta":
            if carries_text(data, b'"text":"'):
                t.deltas += 1
        elif event == "metadata":
            doc = parse(data)
            if not isinstance(doc, dict):
                t.bad_json += 1
                return
            usage = doc.get("usage")
            if isinstance(usage, dict):
                apply_bedrock_counts(t, usage)
                t.final = True
            t.ended = True

    def document(self, doc: Any) -> None:
        t = self.t
        if not isinstance(doc, dict):
            return
        t.records += 1
        t.out_chars += text_chars(dig(doc, "output", "message", "content"))
        usage = doc.get("usage")
        if isinstance(usage, dict):
            apply_bedrock_counts(t, usage)
            t.final = True
        t.ended = True


class InvokeReader(Reader):
    """InvokeModel and InvokeModelWithResponseStream, for any model."""

    __slots__ = ("_from_headers",)

    def __init__(self) -> None:
        super().__init__()
        self._from_headers = False

    def head(self, status: int, headers: Headers) -> None:
        counts = {_HEADER_COUNTS[n]: v for n, v in headers if n in _HEADER_COUNTS}
        if status < 300 and "inputTokens" in counts and counts["inputTokens"].isdigit():
            apply_bedrock_counts(
                self.t, {k: int(v) if v.isdigit() else 0 for k, v in counts.items()}
            )
            self.t.final = True
            self._from_headers = True

    def record(self, event: str, data: bytes) -> None:
        t = self.t
        t.records += 1
        if _exception(t, event) or event != "chunk":
            return
        outer = parse(data)
        encoded = outer.get("bytes") if isinstance(outer, dict) else None
        if not isinstance(encoded, str):
            t.bad_json += 1
            return
        try:
            inner = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            t.bad_json += 1
            return
        if carries_text(inner, b'"text":"'):
            t.deltas += 1
        if _METRICS.encode() not in inner:
            return
        doc = parse(inner)
        metrics = doc.get(_METRICS) if isinstance(doc, dict) else None
        if isinstance(metrics, dict):
            apply_bedrock_counts(t, metrics)
            t.final = True
            t.ended = True

    def salvage(self, head: bytes, tail: bytes) -> None:
        # Like the base, but never takes a model from the body: the path's is billed.
        usage = find_object(tail, b'"usage"') or find_object(head, b'"usage"')
        if usage is not None:
            self.document({"usage": usage})

    def document(self, doc: Any) -> None:
        t = self.t
        if not isinstance(doc, dict):
            return
        t.records += 1
        t.out_chars += text_chars(doc.get("content")) + text_chars(
            dig(doc, "output", "message", "content")
        )
        t.ended = True
        if self._from_headers:
            return
        usage = doc.get("usage")
        if not isinstance(usage, dict):
            return
        if "input_tokens" in usage or "output_tokens" in usage:  # Anthropic shape
            apply_bedrock_counts(
                t,
                {
                    "inputTokens": usage.get("input_tokens"),
                    "outputTokens": usage.get("output_tokens"),
                    "cacheReadInputTokens": usage.get("cache_read_input_tokens"),
                    "cacheWriteInputTokens": usage.get("cache_creation_input_tokens"),
                },
            )
        else:  # Nova and Converse names
            apply_bedrock_counts(t, usage)
        t.final = True


_MODEL = r"^/model/(?P<model>[^/]+)/"

FAMILY = ApiFamily(
    name="bedrock",
    provider="aws",
    endpoints=(
        Endpoint(
            path=re.compile(_MODEL + r"converse(?P<stream>-stream)?$"),
            api="converse",
            reader=ConverseReader,
            framing=Framing.EVENTSTREAM,
        ),
        Endpoint(
            path=re.compile(_MODEL + r"invoke(?P<stream>-with-response-stream)?$"),
            api="invoke",
            reader=InvokeReader,
            framing=Framing.EVENTSTREAM,
        ),
    ),
    evidence=Evidence(
        headers=frozenset({"x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}),
        body_keys=frozenset({"messages", "anthropic_version", "inputText", "prompt"}),
    ),
    error_shape=aws_error,
    host_patterns=((r"bedrock-runtime(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com", "aws"),),
    path_prefixes=("/model/",),
)
"""Bedrock Runtime (the ``aws`` provider of genai-prices)."""
