"""Recognise LLM API calls (``classify``) and pick their usage reader (``new_extractor``).

Strategy
--------
``classify`` loops over the family rows (:mod:`lumen_sniff.providers.table`)
and, in each, over its :class:`~lumen_sniff.providers.family.Endpoint` rows;
the first endpoint whose path pattern matches, and whose evidence holds,
classifies the request. Only POSTs count (``GET /v1/models`` gives None).

1. **Provider from the host**: config ``hosts`` first, then the rows' hosts
   (:mod:`lumen_sniff.providers.hosts`). An unknown host (``10.0.0.5``,
   ``127.0.0.1``) gets the family's provider name but must show the family's
   :class:`~lumen_sniff.providers.family.Evidence`: a header, a path prefix, or
   a JSON body with the family's keys.
2. **Request facts from the body**, parsed once: ``model``, ``stream``, the
   end-user id (OpenAI ``user``/``safety_identifier``, Anthropic
   ``metadata.user_id``). A cut body is searched with bounded regular
   expressions instead. The model can also come from the path (Gemini,
   Bedrock, Azure deployments), and ``stream`` from it
   (``:streamGenerateContent``, ``converse-stream``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from lumen_sniff.model import Headers
from lumen_sniff.providers._json import INVALID, dig, parse
from lumen_sniff.providers.base import Classification, RequestInfo, UsageExtractor
from lumen_sniff.providers.extractor import BodyExtractor
from lumen_sniff.providers.family import ApiFamily, Endpoint
from lumen_sniff.providers.hosts import provider_for_host
from lumen_sniff.providers.openai import FAMILY as _FALLBACK
from lumen_sniff.providers.table import ENDPOINTS, FAMILIES

__all__ = ["classify", "new_extractor"]

# Bounded fallbacks for a cut body: top-level keys cannot be told from nested
# ones without parsing, so these are best effort (and only used when cut).
_RE_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,256})"')
_RE_STREAM = re.compile(rb'"stream"\s*:\s*(true|false)')
_RE_USER = re.compile(rb'"(?:user|safety_identifier|user_id)"\s*:\s*"([^"\\]{1,256})"')
_RE_KEY = re.compile(rb'"([A-Za-z_]{1,40})"\s*:')
_MAX_CUT_KEYS = 256


@dataclass(frozen=True, kw_only=True, slots=True)
class _Body:
    """The request facts classification needs."""

    model: str | None = None
    stream: bool | None = None
    tenant: str | None = None
    keys: frozenset[str] = frozenset()
    """Keys of the JSON object body (top level when parsed; any level when cut)."""


_NO_BODY = _Body()


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
    candidates = _PATH_MATCHES.get(request.path)
    if candidates is None:
        candidates = _match_path(request.path)
    for family, endpoint, groups in candidates:
        if endpoint.needs_header is not None and not _has_header(
            request.headers, endpoint.needs_header
        ):
            continue
        body = _read_body(request)
        known = provider_for_host(request.host, hosts)
        if not _convincing(family, endpoint, request, known, body):
            return None
        return _classification(family, endpoint, groups, known, body)
    return None


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
    row = ENDPOINTS.get(classification.api)
    family, endpoint = row if row is not None else (_FALLBACK, _FALLBACK.endpoints[0])
    return BodyExtractor(
        endpoint.reader(),
        classification,
        request,
        status,
        headers,
        framing=endpoint.framing,
        no_output=endpoint.no_output,
        error_shape=family.error_shape,
    )


# ---------------------------------------------------------------------- helpers

_Match = tuple[ApiFamily, Endpoint, Mapping[str, str | None]]
_PATH_MATCHES: dict[str, tuple[_Match, ...]] = {}
"""Path → the endpoint rows whose pattern matches it, in row order, with the
pattern's groups. Memoised because the same few paths repeat: the rows' regular
expressions then run once per distinct path, not once per request."""
_PATH_MATCHES_MAX = 4096


def _match_path(path: str) -> tuple[_Match, ...]:
    found: list[_Match] = []
    for family in FAMILIES:
        for endpoint in family.endpoints:
            m = endpoint.path.search(path)
            if m is None:
                continue
            groups: dict[str, str | None] = m.groupdict()
            if groups.get("model") is None and family.path_model is not None:
                pm = family.path_model.search(path)
                groups["model"] = pm.group("model") if pm is not None else None
            found.append((family, endpoint, groups))
    out = tuple(found)
    if len(_PATH_MATCHES) >= _PATH_MATCHES_MAX:
        _PATH_MATCHES.clear()
    _PATH_MATCHES[path] = out
    return out



def _has_header(headers: Headers, name: str) -> bool:
    return any(field == name for field, _ in headers)


def _convincing(
    family: ApiFamily, endpoint: Endpoint, request: RequestInfo, known: str | None, body: _Body
) -> bool:
    """Does the request show enough that it really is this family's call?"""
    evidence = family.evidence
    body_ok = bool(body.keys & evidence.body_keys) and (
        evidence.body_also is None or evidence.body_also in body.keys
    )
    if endpoint.body_required:
        return body_ok
    if known is not None or endpoint.self_evident:
        return True
    if evidence.path_prefixes and request.path.startswith(evidence.path_prefixes):
        return True
    if evidence.headers and any(field in evidence.headers for field, _ in request.headers):
        return True
    return body_ok


def _classification(
    family: ApiFamily,
    endpoint: Endpoint,
    groups: Mapping[str, str | None],
    known: str | None,
    body: _Body,
) -> Classification:
    model = body.model
    if model is None:
        path_model = groups.get("model")
        model = unquote(path_model) if path_model else None
    if groups.get("stream"):
        stream = True
    elif body.stream is not None:
        stream = body.stream
    else:
        stream = endpoint.stream_default
    provider = known if known is not None and known not in endpoint.foreign_providers else None
    return Classification(
        provider=provider or family.provider,
        api=endpoint.api,
        model=model,
        stream=stream,
        body_tenant=body.tenant,
    )


def _read_body(request: RequestInfo) -> _Body:
    body = request.body
    if not body:
        return _NO_BODY
    if not request.body_truncated:
        doc = parse(body)
        if isinstance(doc, dict):
            return _from_doc(doc)
        if doc is not INVALID:
            return _NO_BODY
    # Cut (or not JSON): bounded regular expressions over what we have.
    model = _RE_MODEL.search(body)
    stream = _RE_STREAM.search(body)
    user = _RE_USER.search(body)
    keys: frozenset[str] = frozenset()
    if body.lstrip()[:1] == b"{":
        found = set()
        for km in _RE_KEY.finditer(body):
            found.add(km.group(1).decode("ascii"))
            if len(found) >= _MAX_CUT_KEYS:
                break
        keys = frozenset(found)
    return _Body(
        model=model.group(1).decode("utf-8", "replace") if model else None,
        stream=(stream.group(1) == b"true") if stream else None,
        tenant=user.group(1).decode("utf-8", "replace") if user else None,
        keys=keys,
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
        keys=frozenset(doc),
    )
