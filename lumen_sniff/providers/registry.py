"""Recognise LLM API calls (``classify``) and pick their usage reader (``new_extractor``).

Strategy
--------
1. **Shape from the path** (and method): only POSTs to usage-bearing endpoints
   count. ``GET /v1/models``, ``countTokens`` and the like give None.

   ============================================  ===================  ==========
   path (suffix or pattern)                      api                  family
   ============================================  ===================  ==========
   …/models/{m}:generateContent|stream…          generate_content     gemini
   …/models/{m}:embedContent|batchEmbed…         embed_content        gemini
   …/publishers/anthropic/models/{m}:rawPredict  messages             anthropic
   …/v1/messages (or …/messages + anthropic hdr) messages             anthropic
   …/chat/completions                            chat                 openai
   …/responses                                   responses            openai
   …/embeddings                                  embeddings           openai
   …/completions                                 completions          openai
   /api/chat, /api/generate, /api/embed[dings]   ollama_*             ollama
   ============================================  ===================  ==========

2. **Provider from the host**: config ``hosts`` first, then the built-in table
   (:mod:`lumen_sniff.providers.hosts`). An unknown host (``10.0.0.5``,
   ``127.0.0.1``) gets the family's name ("openai", "anthropic", "google",
   "ollama") but must show more evidence: a ``/v1/`` path, the family's
   headers (``anthropic-version``, ``x-goog-api-key``), or a JSON body with the
   family's keys.
3. **Request facts from the body**, parsed once: ``model``, ``stream``, the
   end-user id (OpenAI ``user``/``safety_identifier``, Anthropic
   ``metadata.user_id``). A cut body is searched with bounded regular
   expressions instead. The model can also come from the path (Gemini, Azure
   deployments), and ``stream`` from ``:streamGenerateContent``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lumen_sniff.model import Headers
from lumen_sniff.providers._json import INVALID, dig, parse
from lumen_sniff.providers.anthropic import MessagesReader
from lumen_sniff.providers.base import Classification, RequestInfo, UsageExtractor
from lumen_sniff.providers.extractor import BodyExtractor
from lumen_sniff.providers.gemini import GeminiReader
from lumen_sniff.providers.hosts import provider_for_host
from lumen_sniff.providers.ollama import OllamaReader
from lumen_sniff.providers.openai import ChatReader, ResponsesReader
from lumen_sniff.providers.reader import Reader

__all__ = ["classify", "new_extractor"]

_GEMINI = re.compile(
    r"/(?:tuned)?[mM]odels/([^/:]+):"
    r"(generateContent|streamGenerateContent|embedContent|batchEmbedContents)$"
)
_VERTEX_CLAUDE = re.compile(r"/publishers/anthropic/models/([^/:]+):(rawPredict|streamRawPredict)$")
_AZURE_DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)/")
_OLLAMA_PATHS = {
    "/api/chat": "ollama_chat",
    "/api/generate": "ollama_generate",
    "/api/embed": "ollama_embed",
    "/api/embeddings": "ollama_embed",
}
_OPENAI_SUFFIXES = (
    ("/chat/completions", "chat"),
    ("/responses", "responses"),
    ("/embeddings", "embeddings"),
    ("/completions", "completions"),
)
_FAMILY_DEFAULT = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "ollama": "ollama",
}
_READERS: Mapping[str, type[Reader]] = {
    "chat": ChatReader,
    "completions": ChatReader,
    "embeddings": ChatReader,
    "responses": ResponsesReader,
    "messages": MessagesReader,
    "generate_content": GeminiReader,
    "embed_content": GeminiReader,
    "ollama_chat": OllamaReader,
    "ollama_generate": OllamaReader,
    "ollama_embed": OllamaReader,
}

# Bounded fallbacks for a cut body: top-level keys cannot be told from nested
# ones without parsing, so these are best effort (and only used when cut).
_RE_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,256})"')
_RE_STREAM = re.compile(rb'"stream"\s*:\s*(true|false)')
_RE_USER = re.compile(rb'"(?:user|safety_identifier|user_id)"\s*:\s*"([^"\\]{1,256})"')
_RE_KEYS = re.compile(rb'"(?:model|messages|prompt|input|contents)"\s*:')


@dataclass(frozen=True, kw_only=True, slots=True)
class _Body:
    """The request facts classification needs."""

    model: str | None = None
    stream: bool | None = None
    tenant: str | None = None
    evidence: bool = False
    """The body looks like an LLM request (JSON with model/messages/… keys)."""
    max_tokens: bool = False
    """The body names ``max_tokens`` (Anthropic requires it)."""


def classify(request: RequestInfo, hosts: Mapping[str, str] | None = None) -> Classification | None:
    """Recognise an LLM API call.

    Args:
        request: The request head and (possibly cut) body.
        hosts: Config entries host → provider, extending the built-in table.

    Returns:
        The classification, or None when this is not a usage-bearing LLM call.
    """
    if request.method != "POST":
        return None
    path = request.path
    known = provider_for_host(request.host, hosts)
    headers = _header_names(request.headers)

    m = _GEMINI.search(path)
    if m is not None:
        api = "embed_content" if "mbed" in m.group(2) else "generate_content"
        if known is None and not (path.startswith("/v1") or "x-goog-api-key" in headers):
            return None
        body = _read_body(request)
        stream = m.group(2) == "streamGenerateContent"
        return Classification(
            provider=known or "google",
            api=api,
            model=m.group(1),
            stream=stream,
            body_tenant=body.tenant,
        )

    m = _VERTEX_CLAUDE.search(path)
    if m is not None:
        body = _read_body(request)
        return Classification(
            provider=known if known is not None and known != "google" else "anthropic",
            api="messages",
            model=body.model or m.group(1),
            stream=m.group(2) == "streamRawPredict" or bool(body.stream),
            body_tenant=body.tenant,
        )

    if path.endswith("/messages") and (
        path.endswith("/v1/messages") or "anthropic-version" in headers
    ):
        body = _read_body(request)
        if known is None and not (
            "anthropic-version" in headers or (body.evidence and body.max_tokens)
        ):
            return None
        return Classification(
            provider=known or "anthropic",
            api="messages",
            model=body.model,
            stream=bool(body.stream),
            body_tenant=body.tenant,
        )

    ollama_api = _OLLAMA_PATHS.get(path)
    if ollama_api is not None:
        body = _read_body(request)
        if not body.evidence:
            return None
        stream = body.stream if body.stream is not None else ollama_api != "ollama_embed"
        return Classification(
            provider=known or "ollama",
            api=ollama_api,
            model=body.model,
            stream=stream,
            body_tenant=body.tenant,
        )

    api = next((name for suffix, name in _OPENAI_SUFFIXES if path.endswith(suffix)), "")
    if not api:
        return None
    body = _read_body(request)
    azure = _AZURE_DEPLOYMENT.search(path)
    if known is None and not (body.evidence or path.startswith("/v1/")):
        return None
    model = body.model or (azure.group(1) if azure is not None else None)
    return Classification(
        provider=known or "openai",
        api=api,
        model=model,
        stream=bool(body.stream),
        body_tenant=body.tenant,
    )


def new_extractor(
    classification: Classification, request: RequestInfo, status: int, headers: Headers
) -> UsageExtractor:
    """A fresh usage extractor for one response.

    Args:
        classification: What :func:`classify` said of the request.
        request: The request (used to estimate input tokens when needed).
        status: The response status.
        headers: The response header fields.

    Returns:
        An extractor to feed the decoded response body to.
    """
    reader_type = _READERS.get(classification.api, ChatReader)
    return BodyExtractor(reader_type(), classification, request, status, headers)


# ---------------------------------------------------------------------- helpers


def _header_names(headers: Headers) -> frozenset[str]:
    return frozenset(name for name, _ in headers)


def _read_body(request: RequestInfo) -> _Body:
    body = request.body
    if not body:
        return _Body()
    if not request.body_truncated:
        doc = parse(body)
        if isinstance(doc, dict):
            return _from_doc(doc)
        if doc is not INVALID:
            return _Body()
    # Cut (or not JSON): bounded regular expressions over what we have.
    model = _RE_MODEL.search(body)
    stream = _RE_STREAM.search(body)
    user = _RE_USER.search(body)
    return _Body(
        model=model.group(1).decode("utf-8", "replace") if model else None,
        stream=(stream.group(1) == b"true") if stream else None,
        tenant=user.group(1).decode("utf-8", "replace") if user else None,
        evidence=body.lstrip()[:1] == b"{" and _RE_KEYS.search(body) is not None,
        max_tokens=b'"max_tokens"' in body,
    )


def _from_doc(doc: dict[str, Any]) -> _Body:
    model = doc.get("model")
    stream = doc.get("stream")
    tenant: Any = doc.get("user")
    if not isinstance(tenant, str) or not tenant:
        tenant = doc.get("safety_identifier")
    if not isinstance(tenant, str) or not tenant:
        tenant = dig(doc, "metadata", "user_id")
    return _Body(
        model=model if isinstance(model, str) and model else None,
        stream=stream if isinstance(stream, bool) else None,
        tenant=tenant[:256] if isinstance(tenant, str) and tenant else None,
        evidence=any(k in doc for k in ("model", "messages", "prompt", "input", "contents")),
        max_tokens="max_tokens" in doc,
    )
