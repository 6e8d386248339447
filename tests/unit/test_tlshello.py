"""client_hello_sni on real ClientHellos made by Python's ssl (OpenSSL), whole and cut."""

from __future__ import annotations

import ssl

import pytest

from lumen_sniff.protocol.tlshello import client_hello_sni


def real_client_hello(server_name: str | None) -> bytes:
    """The first bytes OpenSSL sends for a connection to ``server_name``."""
    ctx = ssl.create_default_context()
    if server_name is None:
        ctx.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        conn.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("host", ["api.openai.com", "API.Anthropic.com", "x" * 63 + ".example"])
def test_sni_of_a_real_client_hello(host: str) -> None:
    hello = real_client_hello(host)
    assert client_hello_sni(hello) == host.lower()


def test_no_sni_when_the_client_sends_none() -> None:
    assert client_hello_sni(real_client_hello(None)) is None


def test_every_truncation_is_none_or_the_name_never_an_error() -> None:
    hello = real_client_hello("api.openai.com")
    for cut in range(len(hello)):
        assert client_hello_sni(hello[:cut]) in (None, "api.openai.com")
    assert client_hello_sni(hello[:60]) is None


@pytest.mark.parametrize(
    "data",
    [b"", b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", b"\x16" * 100],
)
def test_not_a_client_hello(data: bytes) -> None:
    assert client_hello_sni(data) is None
