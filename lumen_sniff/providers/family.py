"""The ``ApiFamily`` row: everything lumen-sniff knows about one LLM API family.

A family is a wire format (OpenAI-shape, Anthropic Messages, Gemini, Ollama,
Cohere v2, Bedrock Runtime…). Its row, declared in the family's own module,
says:

* **which hosts** belong to it (exact names and ``re.fullmatch`` patterns → the
  provider name, a genai-prices provider id where one exists);
* **which requests** it recognises: :class:`Endpoint` rows, each a path pattern
  searched in the request path, with the API name, where the model and the
  ``stream`` flag come from, and how a streamed response is framed when its
  Content-Type does not say;
* **the evidence** an unknown host (``127.0.0.1``, a relay) must show before a
  matching path counts: request header names, path prefixes, body keys;
* **its error shape**: a function from an error document (and the response
  headers) to a short machine-readable error type;
* **the path prefixes** the connection filter lets through.

:mod:`lumen_sniff.providers.table` lists the rows in the order they are tried;
the registry, the extractor, the host table and the connection filter read
only rows, never a family's name.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lumen_sniff.model import Headers
from lumen_sniff.providers.reader import Reader

__all__ = ["ApiFamily", "Endpoint", "ErrorShape", "Evidence", "Framing"]

ErrorShape = Callable[[Any, Headers], str | None]
"""(parsed error document or None, response headers) → error type, or None."""


class Framing(enum.Enum):
    """How a streamed response body is cut into records."""

    SSE = "sse"
    """Server-sent events (the default; also recognised from the bytes)."""
    NDJSON = "ndjson"
    """One JSON document per line, even when labelled application/json (Ollama)."""
    JSON_ARRAY = "json_array"
    """One JSON array whose elements arrive over time (Gemini without alt=sse)."""
    EVENTSTREAM = "eventstream"
    """AWS binary ``application/vnd.amazon.eventstream`` messages (Bedrock)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Evidence:
    """What a request to an unknown host must show (any one item suffices)."""

    headers: frozenset[str] = frozenset()
    """Request header names that only this family's clients send."""
    path_prefixes: tuple[str, ...] = ()
    """Path prefixes (``/v1/``) that make a matching path convincing."""
    body_keys: frozenset[str] = frozenset()
    """Top-level JSON body keys, any of which marks an LLM request body."""
    body_also: str | None = None
    """A key the body must ALSO name for ``body_keys`` to count (Anthropic's
    ``max_tokens``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Endpoint:
    """One recognised request shape of a family."""

    path: re.Pattern[str]
    """Searched in the request path. A group named ``model`` gives the model
    (percent-decoded); a group named ``stream`` that matched non-empty marks a
    streamed request."""
    api: str
    """API name on the events (unique over all families)."""
    reader: type[Reader]
    """Reads the response body."""
    framing: Framing = Framing.SSE
    """Framing of a streamed response whose Content-Type does not say."""
    no_output: bool = False
    """The API bills input only (embeddings): an estimate never invents output."""
    stream_default: bool = False
    """``stream`` when neither the path nor the body says (Ollama streams by default)."""
    self_evident: bool = False
    """The path alone is evidence enough, whatever the host."""
    needs_header: str | None = None
    """The endpoint applies only when the request has this header."""
    body_required: bool = False
    """The body must show the family's evidence even on a known host."""
    foreign_providers: frozenset[str] = frozenset()
    """Known-host providers that do not own this endpoint: the family's own
    provider name is used instead (Claude on Vertex is billed as Anthropic)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiFamily:
    """One API family's row. See the module docstring."""

    name: str
    """Family name (for docs and tests only: no code branches on it)."""
    provider: str
    """Provider name for requests to hosts no table knows."""
    endpoints: tuple[Endpoint, ...]
    """Tried in order; the first match wins."""
    evidence: Evidence
    """What an unknown host's request must show."""
    error_shape: ErrorShape
    """Error document → error type."""
    path_model: re.Pattern[str] | None = None
    """Searched in the path when the body names no model: group ``model`` (Azure
    deployments)."""
    hosts: Mapping[str, str] = field(default_factory=dict)
    """Exact host → provider."""
    host_patterns: tuple[tuple[str, str], ...] = ()
    """(regular expression over the whole host, provider), tried after ``hosts``."""
    path_prefixes: tuple[str, ...] = ()
    """Path prefixes for the connection filter (a connection whose first request
    matches none of any family, on an unknown host, is ignored)."""
    path_parts: tuple[str, ...] = ()
    """Path substrings for the connection filter (relays put prefixes before them)."""
