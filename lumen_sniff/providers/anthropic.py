"""Anthropic Messages responses (api.anthropic.com, Vertex rawPredict, compatible servers).

Anthropic's wire ``input_tokens`` EXCLUDES prompt-cache tokens, so

    input       = input_tokens + cache_creation_input_tokens + cache_read_input_tokens
    cache_write = cache_creation_input_tokens
    cache_read  = cache_read_input_tokens
    output      = output_tokens (thinking included)
    reasoning   = output_tokens_details.thinking_tokens (Claude Sonnet 4.5 and later;
                  a subset of output_tokens, as genai-prices reads it)

Streams: ``message_start.message.usage`` gives the input side and a placeholder
``output_tokens``; each ``message_delta.usage`` is cumulative and overrides
whatever fields it repeats; ``message_stop`` is the natural end. An ``error``
event after the 200 (``overloaded_error``…) fails the response: the counts read
so far stand, marked estimated by the extractor. Only message_start,
message_delta and error events are parsed.
"""

from __future__ import annotations

import re
from typing import Any

from lumen_sniff.providers._json import INVALID, as_int, first_string, parse
from lumen_sniff.providers.error_shapes import envelope_error_type, json_envelope
from lumen_sniff.providers.family import ApiFamily, Endpoint, Evidence
from lumen_sniff.providers.reader import Reader, carries_text, text_chars

__all__ = ["FAMILY", "MessagesReader"]

_FIELDS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)
_PARSED = frozenset({"message_start", "message_delta", "error"})


class MessagesReader(Reader):
    """Anthropic Messages, stream and not."""

    __slots__ = ("_wire",)

    def __init__(self) -> None:
        super().__init__()
        self._wire = dict.fromkeys(_FIELDS, 0)

    def record(self, event: str, data: bytes) -> None:
        t = self.t
        t.records += 1
        etype = event
        if etype == "message":  # no event: line: the type is in the data
            etype = first_string(data, b'"type"') or ""
        if etype == "content_block_delta":
            if carries_text(data, b'"text":"'):
                t.deltas += 1
            return
        if etype == "message_stop":
            t.ended = True
            return
        if etype not in _PARSED:
            return
        doc = parse(data)
        if doc is INVALID or not isinstance(doc, dict):
            t.bad_json += 1
            return
        if etype == "error":
            t.error_type = envelope_error_type(doc) or "error"
            t.failed = True
        elif etype == "message_start":
            message = doc.get("message")
            if isinstance(message, dict):
                model = message.get("model")
                if isinstance(model, str):
                    t.model = model
                self._usage(message.get("usage"), final=False)
        else:
            self._usage(doc.get("usage"), final=True)

    def _usage(self, usage: Any, *, final: bool) -> None:
        if not isinstance(usage, dict):
            return
        wire = self._wire
        for key in _FIELDS:
            if key in usage:
                wire[key] = as_int(usage[key])
        details = usage.get("output_tokens_details")
        if isinstance(details, dict) and "thinking_tokens" in details:
            self.t.reasoning = as_int(details["thinking_tokens"])
        t = self.t
        t.cache_write = wire["cache_creation_input_tokens"]
        t.cache_read = wire["cache_read_input_tokens"]
        t.input = wire["input_tokens"] + t.cache_write + t.cache_read
        t.output = wire["output_tokens"]
        t.reported = True
        t.final = t.final or final

    def document(self, doc: Any) -> None:
        t = self.t
        if not isinstance(doc, dict):
            return
        t.records += 1
        if doc.get("type") == "error" or isinstance(doc.get("error"), dict):
            t.error_type = envelope_error_type(doc)
            return
        model = doc.get("model")
        if isinstance(model, str):
            t.model = model
        t.out_chars += text_chars(doc.get("content"))
        self._usage(doc.get("usage"), final=True)
        t.ended = True


FAMILY = ApiFamily(
    name="anthropic",
    provider="anthropic",
    endpoints=(
        Endpoint(
            path=re.compile(
                r"/publishers/anthropic/models/(?P<model>[^/:]+)"
                r":(?:(?P<stream>stream)RawPredict|rawPredict)$"
            ),
            api="messages",
            reader=MessagesReader,
            self_evident=True,
            foreign_providers=frozenset({"google"}),
        ),
        Endpoint(path=re.compile(r"/v1/messages$"), api="messages", reader=MessagesReader),
        Endpoint(
            path=re.compile(r"/messages$"),
            api="messages",
            reader=MessagesReader,
            needs_header="anthropic-version",
        ),
    ),
    evidence=Evidence(
        headers=frozenset({"anthropic-version"}),
        body_keys=frozenset({"model", "messages", "prompt", "input", "contents"}),
        body_also="max_tokens",
    ),
    error_shape=json_envelope,
    hosts={"api.anthropic.com": "anthropic"},
    path_prefixes=("/v1/", "/messages", "/anthropic/"),
    path_parts=("/messages",),
)
"""Anthropic Messages, direct or on Vertex (rawPredict)."""
