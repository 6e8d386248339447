"""A failed webhook POST never logs or stores the webhook's path (a Slack hook's secret)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from lumen_sniff.budgets.outbox import Outbox, redact_urls
from lumen_sniff.budgets.settings import Webhook

SECRET = "T0AAAAAAA/B0BBBBBBB/s3cr3tT0k3nXYZ"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"POST https://hooks.slack.com/services/{SECRET} 500", "POST https://hooks.slack.com 500"),
        (f"url 'http://127.0.0.1:8080/hook?token={SECRET}'", "url 'http://127.0.0.1:8080'"),
        ("https://user:s3cr3t@example.org/x", "https://example.org"),
        ("All connection attempts failed", "All connection attempts failed"),
    ],
)
def test_redact_keeps_scheme_and_host_only(text: str, expected: str) -> None:
    assert redact_urls(text) == expected


async def _answer_500(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    writer.close()


async def test_failed_posts_log_no_path(caplog: pytest.LogCaptureFixture) -> None:
    server = await asyncio.start_server(_answer_500, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    closed = await asyncio.start_server(_answer_500, "127.0.0.1", 0)
    dead = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    hooks = [
        Webhook(
            url=f"http://127.0.0.1:{port}/services/{SECRET}",
        ),
        Webhook(url=f"http://127.0.0.1:{dead}/services/{SECRET}"),
    ]
    outbox = Outbox(db=None, webhooks=hooks)  # type: ignore[arg-type]  # send_now needs no db
    caplog.set_level(logging.DEBUG)
    try:
        errors = await outbox.send_now({"budget": "b", "text": "over"}, key="k1")
    finally:
        if outbox._http is not None:
            await outbox._http.aclose()
        server.close()
        await server.wait_closed()
    assert errors[0] == "webhook:0: HTTP 500"
    assert errors[1].startswith("webhook:1: ConnectError")
    assert f"http://127.0.0.1:{port}" in caplog.text  # httpx's request log, cut to the host
    for text in (*errors, caplog.text):
        assert "s3cr3t" not in text and "/services/" not in text
