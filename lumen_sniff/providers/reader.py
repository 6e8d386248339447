"""What every API reader shares: the running tally and the reader interface.

A *reader* knows one API family's response format. The extractor
(:mod:`lumen_sniff.providers.extractor`) frames the body and hands the reader
either stream records (one SSE event, NDJSON line or JSON-array element) or a
whole parsed document (non-stream JSON). The reader updates its
:class:`Tally`; the extractor turns the tally into an ``Extraction``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from lumen_sniff.model import Headers
from lumen_sniff.providers._json import find_object, first_string

__all__ = ["Reader", "Tally"]


class Tally:
    """Mutable per-response state. Counts follow the normalised convention."""

    __slots__ = (
        "bad_json",
        "cache_read",
        "cache_write",
        "cost_usd",
        "deltas",
        "ended",
        "error_type",
        "failed",
        "final",
        "input",
        "model",
        "out_chars",
        "output",
        "reasoning",
        "records",
        "reported",
    )

    def __init__(self) -> None:
        self.input = 0
        self.output = 0
        self.cache_read = 0
        self.cache_write = 0
        self.reasoning = 0
        self.cost_usd: Decimal | None = None
        self.reported = False
        """Some usage was read from the wire."""
        self.final = False
        """The usage read is the response's final usage (not a running count)."""
        self.ended = False
        """The response reached its natural end ([DONE], message_stop, done:true…)."""
        self.failed = False
        """An error arrived inside a successful response (mid-stream error)."""
        self.error_type: str | None = None
        self.model: str | None = None
        self.deltas = 0
        """Streamed records that carried non-empty generated content."""
        self.out_chars = 0
        """Characters of generated text seen in a non-stream document."""
        self.records = 0
        self.bad_json = 0
        """Records that should have parsed and did not."""


class Reader:
    """Base reader: subclasses override :meth:`record` and :meth:`document`."""

    __slots__ = ("t",)

    usage_key = b'"usage"'
    """Quoted key of the usage object, for salvaging big or cut documents."""
    model_key = b'"model"'
    """Quoted key of the model name."""
    has_terminator = True
    """The stream format has an explicit end marker; False for Gemini."""

    def __init__(self) -> None:
        self.t = Tally()

    def head(self, status: int, headers: Headers) -> None:
        """The response head, before any body (Bedrock reports usage in headers)."""

    def record(self, event: str, data: bytes) -> None:
        """One stream record: SSE event name and data, or ("", line/element)."""

    def document(self, doc: Any) -> None:
        """One whole parsed JSON document (a non-stream body)."""

    def salvage(self, head: bytes, tail: bytes) -> None:
        """Read usage from the ends of a body too big (or too cut) to parse whole."""
        usage = find_object(tail, self.usage_key)
        if usage is None:
            usage = find_object(head, self.usage_key)
        model = first_string(head, self.model_key) or first_string(tail, self.model_key)
        if usage is not None:
            doc: dict[str, Any] = {self.usage_key.strip(b'"').decode(): usage}
            if model is not None:
                doc[self.model_key.strip(b'"').decode()] = model
            self.document(doc)
        elif model is not None and self.t.model is None:
            self.t.model = model


_TEXT_VALUE = re.compile(
    rb'"(?:content|text|arguments|reasoning_content|reasoning|refusal|partial_json|thinking'
    rb'|response|delta)"\s*:\s*"[^"]'
)


def carries_text(data: bytes, likely: bytes = b'"content":"') -> bool:
    """Cheap check: does this record carry a non-empty generated-text string?

    Args:
        data: One stream record.
        likely: The compact ``"key":"`` the API's deltas usually use
            (``"content":"`` for OpenAI, ``"text":"`` for Anthropic): finding it
            with a non-empty value settles the question at once. The regular
            expression, which tries every quote in the record, decides the rest.
    """
    i = data.find(likely)
    if i >= 0:
        i += len(likely)
        if data[i : i + 1] not in (b'"', b""):
            return True
    return _TEXT_VALUE.search(data) is not None


def text_chars(value: Any) -> int:
    """Characters of text in a content value: a string, or parts with ``text``."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        total = 0
        for part in value:
            if isinstance(part, dict):
                for key in ("text", "thinking", "content"):
                    v = part.get(key)
                    if isinstance(v, str):
                        total += len(v)
            elif isinstance(part, str):
                total += len(part)
        return total
    return 0
