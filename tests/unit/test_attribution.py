"""API-key fingerprints and tenants."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from lumen_sniff.providers.attribution import api_key_id, tenant_of

SALT = b"install-salt-0123456789abcdef"
KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789Ab12"


def _expected(key: str, salt: bytes = SALT) -> str:
    digest = hmac.new(salt, key.encode(), hashlib.sha256).hexdigest()
    return f"k_{digest[:12]}…{key[-4:]}"


@pytest.mark.parametrize(
    "headers",
    [
        (("authorization", f"Bearer {KEY}"),),
        (("authorization", f"bearer   {KEY}  "),),
        (("x-api-key", KEY),),
        (("x-goog-api-key", KEY),),
        (("api-key", KEY),),
        (("content-type", "application/json"), ("x-api-key", KEY), ("accept", "*/*")),
    ],
)
def test_key_from_each_header(headers: tuple[tuple[str, str], ...]) -> None:
    got = api_key_id(headers, "", SALT)
    assert got == _expected(KEY)
    assert got is not None
    assert re.fullmatch(r"k_[0-9a-f]{12}…Ab12", got)
    assert KEY not in got
    assert KEY[3:-4] not in got


def test_key_from_query_string() -> None:
    assert api_key_id((), f"alt=sse&key={KEY}", SALT) == _expected(KEY)
    assert api_key_id((), "alt=sse", SALT) is None
    assert api_key_id((), "monkey=1", SALT) is None


def test_salt_changes_the_fingerprint_but_not_the_suffix() -> None:
    one = api_key_id((("x-api-key", KEY),), "", SALT)
    two = api_key_id((("x-api-key", KEY),), "", b"another-salt")
    assert one is not None and two is not None
    assert one != two
    assert one[-5:] == two[-5:] == "…Ab12"
    assert two == _expected(KEY, b"another-salt")


def test_no_key_and_non_bearer_authorization() -> None:
    assert api_key_id((("accept", "*/*"),), "", SALT) is None
    assert api_key_id((("authorization", "Basic dXNlcjpwYXNz"),), "", SALT) is None
    assert api_key_id((("x-api-key", "   "),), "", SALT) is None


def test_short_test_keys_get_no_suffix() -> None:
    got = api_key_id((("authorization", "Bearer sk-test"),), "", SALT)
    digest = hmac.new(SALT, b"sk-test", hashlib.sha256).hexdigest()
    assert got == f"k_{digest[:12]}"


def test_tenant_header_order_then_body() -> None:
    headers = (("x-team", "  search "), ("x-tenant-id", "acme"))
    assert tenant_of(headers, ("x-tenant-id", "x-team"), "user-9") == "acme"
    assert tenant_of(headers, ("x-team", "x-tenant-id"), "user-9") == "search"
    assert tenant_of((("x-tenant-id", ""),), ("x-tenant-id",), "user-9") == "user-9"
    assert tenant_of((), ("x-tenant-id",), None) is None
    assert tenant_of((), ("x-tenant-id",), "  ") is None
    assert tenant_of((("x-tenant-id", "t" * 500),), ("x-tenant-id",), None) == "t" * 128
