"""Who a call is billed to: API-key fingerprint and tenant.

The raw key is read here and nowhere else, and it never leaves
:func:`api_key_id`: what comes out is ``k_`` + 12 hex characters of a salted
HMAC-SHA256 + "…" + the key's last 4 characters, e.g. ``k_3f9a1c2b7d4e…Ab12``.
The salt is per installation, so a fingerprint cannot be looked up in a table
of known keys, and the last 4 characters let a person match it to the key list
their provider's console shows. Keys shorter than 12 characters (test keys)
give no suffix, since 4 characters would be most of the key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl

from lumen_sniff.model import Headers

__all__ = [
    "API_KEY_HEADERS",
    "DEFAULT_TENANT_HEADERS",
    "KeyFingerprinter",
    "api_key_id",
    "tenant_of",
]

API_KEY_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")
"""Request headers that carry API keys: OpenAI/Anthropic-JS/most (Bearer),
AWS (SigV4 ``Credential=`` access key id), Anthropic, Google, Azure OpenAI."""

DEFAULT_TENANT_HEADERS = ("x-tenant-id",)
"""Tenant headers used when none are configured."""

_HASH_HEX = 12
_SUFFIX_MIN_KEY_LEN = 12
_TENANT_MAX = 128
_KEY_MAX = 4096
_KEY_HEADERS = frozenset(API_KEY_HEADERS)


class KeyFingerprinter:
    """:func:`api_key_id` with the salted HMAC key schedule done once.

    Args:
        salt: Per-installation secret salt.
    """

    __slots__ = ("_base",)

    def __init__(self, salt: bytes) -> None:
        self._base = hmac.new(salt, digestmod=hashlib.sha256)

    def __call__(self, headers: Headers, query: str) -> str | None:
        """The fingerprint of the request's API key; see :func:`api_key_id`."""
        key = _raw_key(headers, query)
        if not key:
            return None
        mac = self._base.copy()
        mac.update(key.encode("utf-8", "surrogateescape"))
        fingerprint = "k_" + mac.hexdigest()[:_HASH_HEX]
        if len(key) >= _SUFFIX_MIN_KEY_LEN:
            return f"{fingerprint}…{key[-4:]}"
        return fingerprint


def api_key_id(headers: Headers, query: str, salt: bytes) -> str | None:
    """The salted fingerprint of the request's API key, if it sent one.

    Args:
        headers: Request header fields, names lower-cased.
        query: Raw query string (Gemini accepts ``key=`` there).
        salt: Per-installation secret salt.

    Returns:
        ``"k_<12 hex>…<last 4>"`` (or ``"k_<12 hex>"`` for short keys), or None.
    """
    return KeyFingerprinter(salt)(headers, query)


def tenant_of(
    headers: Headers, tenant_headers: Sequence[str], body_tenant: str | None
) -> str | None:
    """The tenant: the first configured header present, else the body's user id.

    Args:
        headers: Request header fields, names lower-cased.
        tenant_headers: Configured header names, lower-cased, in priority order.
        body_tenant: End-user id named by the body (OpenAI ``user``…), if any.

    Returns:
        The tenant, stripped and cut to 128 characters, or None.
    """
    for name in tenant_headers:
        for field, value in headers:
            if field == name:
                value = value.strip()
                if value:
                    return value[:_TENANT_MAX]
    if body_tenant:
        body_tenant = body_tenant.strip()
        if body_tenant:
            return body_tenant[:_TENANT_MAX]
    return None


def _sigv4_access_key(credentials: str) -> str | None:
    """The access key id of ``Credential=AKIA…/date/region/service/aws4_request, …``."""
    for part in credentials.split(","):
        name, _, value = part.strip().partition("=")
        if name == "Credential":
            key = value.partition("/")[0].strip()
            return key or None
    return None


def _bearer(token: str) -> str | None:
    return token


_AUTH_SCHEMES: dict[str, Callable[[str], str | None]] = {
    "bearer": _bearer,
    "aws4-hmac-sha256": _sigv4_access_key,
}
"""Authorization schemes whose credentials name a key: scheme → the key. Basic
and Digest carry passwords, not API keys; the SigV4 signature changes with
every request, so only its access key id identifies the caller (Bedrock)."""


def _raw_key(headers: Headers, query: str) -> str | None:
    for field, value in headers:
        if field in _KEY_HEADERS:
            if field == "authorization":
                scheme, _, token = value.strip().partition(" ")
                reader = _AUTH_SCHEMES.get(scheme.lower())
                if reader is None:
                    continue
                value = reader(token.strip()) or ""
            value = value.strip()
            if value:
                return value[:_KEY_MAX]
    if "key=" in query:
        for name, value in parse_qsl(query, keep_blank_values=False):
            if name == "key" and value:
                return value[:_KEY_MAX]
    return None
