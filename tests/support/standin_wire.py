"""Pure building blocks of the stand-in LLM API server: requests, replies, tokens.

Nothing here does I/O. A route turns a :class:`StandinRequest` into a
:class:`Reply`, whose ``parts`` are the body bytes exactly as they go on the
wire (already gzip-encoded when the reply says so), one element per write, so
SSE events leave the server as separate writes the way real APIs flush them.

The token model (what every route reports, so tests know exact usage):

- ``W`` = number of whitespace-separated words in the prompt text of the
  request (message contents, ``input``, ``system``, ``instructions``,
  ``prompt``, Gemini ``contents``/``systemInstruction``/``requests``);
  integers in token-id inputs count one each.
- fresh input tokens = ``W + 7`` for generation (``W`` for embeddings).
- output text tokens = 12 (the reply is :data:`REPLY_WORDS`), capped by the
  request's max tokens (``max_tokens``, ``max_completion_tokens``,
  ``max_output_tokens``, ``generationConfig.maxOutputTokens``,
  ``options.num_predict``).
- scenario flags in the ``x-standin-scenario`` header (comma-separated):
  ``cache_read`` adds 1024 cached input tokens, ``cache_write`` adds 2048
  cache-creation tokens (Anthropic only), ``reasoning`` adds 32 reasoning
  tokens (OpenAI, Gemini), ``error_400``/``error_404``/``error_429`` answer
  with that provider's recorded error shape, ``midstream_error`` (Anthropic
  stream) fails after two deltas, ``gzip_sse`` gzips Anthropic SSE,
  ``llamacpp`` answers OpenAI chat like llama.cpp's server, ``slow`` spaces
  stream events 50 ms apart.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CACHE_READ_TOKENS",
    "CACHE_WRITE_TOKENS",
    "DATE",
    "PROMPT_OVERHEAD_TOKENS",
    "REASONING_TOKENS",
    "REPLY_WORDS",
    "Reply",
    "StandinRequest",
    "TokenPlan",
    "build_reply",
    "plan_tokens",
    "prompt_words",
    "request_id",
]

Headers = tuple[tuple[str, str], ...]

REPLY_WORDS: tuple[str, ...] = (
    "Stand-in", "reply:", "one", "two", "three", "four",
    "five", "six", "seven", "eight", "nine", "ten",
)
"""The completion text, one output token per word."""
PROMPT_OVERHEAD_TOKENS = 7
"""Tokens a chat template adds around the prompt words."""
CACHE_READ_TOKENS = 1024
CACHE_WRITE_TOKENS = 2048
REASONING_TOKENS = 32
DATE = "Tue, 17 Feb 2026 23:44:12 GMT"
"""Fixed Date header value: recorded fixtures must not change between runs."""
CREATED_S = 1771371852
"""Fixed ``created`` timestamp (the same instant as :data:`DATE`)."""

# Header-template sentinels resolved by build_reply, so each provider keeps the
# header order of its recordings while the framing is decided per reply.
GZIP = "<gzip>"
TE = "<te>"
CL = "<cl>"


@dataclass(frozen=True, kw_only=True, slots=True)
class StandinRequest:
    """One request as the stand-in received it."""

    method: str
    """Request method, upper case."""
    target: str
    """Path and query, as sent."""
    headers: Headers
    """Header fields in wire order, names lower-cased."""
    body: bytes = b""
    """Request body, transfer-decoded."""
    http_version: str = "1.1"
    """"1.1" or "2"."""

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or None."""
        lname = name.lower()
        for key, value in self.headers:
            if key == lname:
                return value
        return None

    @property
    def path(self) -> str:
        """Target without the query string."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        """Query string without the ``?``."""
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def flags(self) -> frozenset[str]:
        """Scenario flags from ``x-standin-scenario``."""
        raw = self.header("x-standin-scenario") or ""
        return frozenset(f.strip() for f in raw.split(",") if f.strip())

    @property
    def accepts_gzip(self) -> bool:
        """The client listed gzip in Accept-Encoding."""
        return "gzip" in (self.header("accept-encoding") or "").lower()

    def json(self) -> dict[str, Any]:
        """The body as a JSON object ({} when it is not one)."""
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    """A response ready for the transport: head plus wire-encoded body writes."""

    status: int
    """HTTP status code."""
    reason: str
    """HTTP/1.1 reason phrase."""
    headers: Headers
    """Header fields in wire order and case, framing headers included."""
    parts: tuple[bytes, ...]
    """Body bytes per write, content-encoded; chunk framing not applied."""
    chunked: bool
    """HTTP/1.1 framing: chunked (else Content-Length)."""
    stream: bool = False
    """Parts are stream events (written with ``gap_s`` between them)."""
    gap_s: float = 0.0
    """Pause between parts of a stream."""
    usage: dict[str, int] = field(default_factory=dict)
    """Normalised usage this reply carries (for the record; empty on errors)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenPlan:
    """Token counts one request gets, before each provider spells them."""

    prompt_tokens: int
    """Fresh (uncached) input tokens."""
    text_tokens: int
    """Visible output tokens (words of the reply sent)."""
    cache_read_tokens: int = 0
    """Input tokens served from a prompt cache."""
    cache_write_tokens: int = 0
    """Input tokens written to a prompt cache."""
    reasoning_tokens: int = 0
    """Hidden reasoning output tokens."""

    @property
    def input_total(self) -> int:
        """All input tokens, cache included (the project's convention)."""
        return self.prompt_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def output_total(self) -> int:
        """All output tokens, reasoning included."""
        return self.text_tokens + self.reasoning_tokens

    @property
    def words(self) -> tuple[str, ...]:
        """The reply words actually sent."""
        return REPLY_WORDS[: self.text_tokens]

    def normalised(self) -> dict[str, int]:
        """Counts in the project's convention."""
        return {
            "input_tokens": self.input_total,
            "output_tokens": self.output_total,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


_TEXT_KEYS = (
    "messages", "content", "text", "input", "prompt", "system", "instructions",
    "contents", "parts", "systemInstruction", "system_instruction", "requests",
)


def prompt_words(value: Any) -> int:
    """Count prompt words in a request body (see the module docstring)."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return 1
    if isinstance(value, list):
        return sum(prompt_words(v) for v in value)
    if isinstance(value, dict):
        return sum(prompt_words(value[k]) for k in _TEXT_KEYS if k in value)
    return 0


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens", "n_predict"):
        if isinstance(body.get(key), int):
            return int(body[key])
    for outer, inner in (("generationConfig", "maxOutputTokens"), ("options", "num_predict")):
        sub = body.get(outer)
        if isinstance(sub, dict) and isinstance(sub.get(inner), int):
            return int(sub[inner])
    return None


def plan_tokens(
    req: StandinRequest,
    *,
    embeddings: bool = False,
    cache_write_ok: bool = False,
    reasoning_ok: bool = True,
) -> TokenPlan:
    """Derive the token counts for ``req`` from its body and scenario flags."""
    body = req.json()
    words = prompt_words(body)
    if embeddings:
        return TokenPlan(prompt_tokens=words, text_tokens=0)
    limit = _max_tokens(body)
    text = len(REPLY_WORDS) if limit is None or limit <= 0 else min(len(REPLY_WORDS), limit)
    flags = req.flags
    return TokenPlan(
        prompt_tokens=words + PROMPT_OVERHEAD_TOKENS,
        text_tokens=text,
        cache_read_tokens=CACHE_READ_TOKENS if "cache_read" in flags else 0,
        cache_write_tokens=CACHE_WRITE_TOKENS if cache_write_ok and "cache_write" in flags else 0,
        reasoning_tokens=REASONING_TOKENS if reasoning_ok and "reasoning" in flags else 0,
    )


def request_id(req: StandinRequest, prefix: str, length: int = 24) -> str:
    """A deterministic id for ``req`` (same request, same id)."""
    digest = hashlib.sha256(req.target.encode() + b"\0" + req.body).hexdigest()
    return prefix + digest[:length]


_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    429: "Too Many Requests", 500: "Internal Server Error", 529: "Overloaded",
}


def build_reply(
    status: int,
    template: list[tuple[str, str]],
    body_parts: list[bytes],
    *,
    gzip_body: bool = False,
    chunked: bool = True,
    stream: bool = False,
    gap_s: float = 0.0,
    usage: dict[str, int] | None = None,
) -> Reply:
    """Encode ``body_parts`` and resolve the header template's framing sentinels.

    Args:
        status: HTTP status.
        template: Headers in recorded order; values ``<gzip>``, ``<te>`` and
            ``<cl>`` mark where Content-Encoding, Transfer-Encoding and
            Content-Length go when this reply uses them.
        body_parts: Plain body bytes, one element per write.
        gzip_body: Content-Encoding gzip. Streams are compressed part by part
            with a sync flush, so each event is decodable when it arrives;
            whole bodies go out as the 10-byte gzip header then the rest, the
            way Cloudflare's chunked gzip responses look.
        chunked: Transfer-Encoding chunked, else Content-Length.
        stream: Parts are stream events.
        gap_s: Pause between stream events.
        usage: Normalised usage carried (for the record).

    Returns:
        The finished reply.
    """
    parts = list(body_parts)
    if gzip_body and stream:
        comp = zlib.compressobj(6, zlib.DEFLATED, 31)
        parts = [comp.compress(p) + comp.flush(zlib.Z_SYNC_FLUSH) for p in parts]
        parts.append(comp.flush())
    elif gzip_body:
        whole = gzip.compress(b"".join(parts), mtime=0)
        parts = [whole[:10], whole[10:]]
    length = sum(len(p) for p in parts)
    headers: list[tuple[str, str]] = []
    for name, value in template:
        if value == GZIP:
            if gzip_body:
                headers.append((name, "gzip"))
        elif value == TE:
            if chunked:
                headers.append((name, "chunked"))
        elif value == CL:
            if not chunked:
                headers.append((name, str(length)))
        else:
            headers.append((name, value))
    return Reply(
        status=status,
        reason=_REASONS.get(status, "Unknown"),
        headers=tuple(headers),
        parts=tuple(p for p in parts if p) or (b"",),
        chunked=chunked,
        stream=stream,
        gap_s=gap_s,
        usage=dict(usage or {}),
    )
