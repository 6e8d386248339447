"""The contract between exchange assembly (lumen_sniff.pipeline) and the providers.

Flow for one exchange:

1. The pipeline collects the request head and (capped) decoded body into a
   :class:`RequestInfo` and calls ``providers.classify(request, hosts)``. ``None``
   means "not an LLM API call": the exchange yields nothing.
2. When the response head arrives it calls
   ``providers.new_extractor(classification, request, status, headers)``.
3. It feeds every decoded response body piece to ``extractor.feed(data)``: the
   extractor frames SSE / NDJSON / JSON arrays itself and parses JSON only where
   usage can be.
4. At the end of the response (or when it is cut off) it calls
   ``extractor.finish(complete=...)`` and gets an :class:`Extraction`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lumen_sniff.model import Headers, Usage

__all__ = ["Classification", "Extraction", "RequestInfo", "UsageExtractor"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestInfo:
    """What the providers may see of a request. Never stored, never logged."""

    method: str
    """Upper-case method."""
    host: str
    """Lower-case host without port ("" when unknown)."""
    path: str
    """Path without the query string."""
    query: str
    """Raw query string without the '?'."""
    headers: Headers
    """Header fields, names lower-cased."""
    body: bytes
    """Decoded request body, possibly cut at the pipeline's cap."""
    body_size: int
    """Full decoded body size in bytes, even when ``body`` was cut."""
    body_truncated: bool
    """True when ``body`` holds only part of the body."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Classification:
    """An exchange recognised as an LLM API call."""

    provider: str
    """"openai", "anthropic", "google", "azure", "openrouter", "groq", "ollama",
    "cohere", "aws" (Bedrock), …: the host's provider, else the family row's."""
    api: str
    """The endpoint row's API name: "chat", "responses", "responses_compact",
    "embeddings", "completions", "messages", "generate_content", "embed_content",
    "ollama_chat", "cohere_chat", "cohere_embed", "converse", "invoke", …"""
    model: str | None
    """Model named by the request (path or body), if any."""
    stream: bool
    """The request asked for a streamed response."""
    body_tenant: str | None = None
    """End-user id the body names (OpenAI ``user``, Anthropic ``metadata.user_id``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Extraction:
    """What an extractor learned from one response."""

    usage: Usage
    """Normalised usage (reported, estimated or none)."""
    model: str | None
    """Model named by the response, if any (preferred over the request's)."""
    stream: bool
    """The response was actually streamed (SSE / NDJSON / JSON array)."""
    error_type: str | None
    """Provider error type for error bodies and mid-stream errors."""
    complete: bool
    """The response reached its natural end (e.g. [DONE], message_stop)."""


class UsageExtractor(Protocol):
    """Incremental reader of one response body. Pure; never raises on bad input."""

    def feed(self, data: bytes) -> None:
        """Consume the next piece of decoded response body."""

    def finish(self, *, complete: bool) -> Extraction:
        """Finish: ``complete`` is False when the transport cut the body off."""
