"""Real clients against the stand-in: each reports exactly the usage the token model promises.

The prompt is six words, so generation input is 6 + 7 = 13 tokens and
embeddings input is 6; replies are 12 words (see tests/support/standin_wire.py).
The TLS stand-in runs as a subprocess through its command line; the plaintext
one runs in a thread of this process; both paths are exercised.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_or_skip
from tests.support.clients import SCENARIOS
from tests.support.standin import running_standin

pytestmark = pytest.mark.slow

_REPO = Path(__file__).resolve().parents[2]


def _u(inp: int, out: int, cread: int = 0, cwrite: int = 0, reason: int = 0) -> dict[str, int]:
    return {"input_tokens": inp, "output_tokens": out, "cache_read_tokens": cread,
            "cache_write_tokens": cwrite, "reasoning_tokens": reason}


BASIC = _u(13, 12)
# scenario: (usage, status, error, http_version or None when the client does not say)
EXPECTED: dict[str, tuple[dict[str, int] | None, int, str | None, str | None]] = {
    "openai_chat": (BASIC, 200, None, None),
    "openai_chat_cached": (_u(1037, 12, 1024), 200, None, None),
    "openai_chat_reasoning": (_u(13, 44, reason=32), 200, None, None),
    "openai_chat_stream_usage": (BASIC, 200, None, None),
    "openai_chat_stream_nousage": (None, 200, None, None),
    "openai_chat_error_429": (None, 429, "tokens", None),
    "openai_chat_stream_error_404": (None, 404, "invalid_request_error", None),
    "openai_responses": (BASIC, 200, None, None),
    "openai_responses_stream": (_u(13, 44, reason=32), 200, None, None),
    "openai_embeddings": (_u(6, 0), 200, None, None),
    "openai_async_streams": (_u(39, 36), 200, None, None),
    "anthropic_messages": (BASIC, 200, None, None),
    "anthropic_messages_cache_write": (_u(2061, 12, cwrite=2048), 200, None, None),
    "anthropic_stream": (BASIC, 200, None, None),
    "anthropic_stream_cache_read": (_u(1037, 12, 1024), 200, None, None),
    "anthropic_async_stream": (BASIC, 200, None, None),
    "anthropic_stream_gzip": (BASIC, 200, None, None),
    "anthropic_stream_midstream_error": (None, 200, "overloaded_error", None),
    "anthropic_error_429": (None, 429, "rate_limit_error", None),
    "gemini_generate": (BASIC, 200, None, None),
    "gemini_generate_cached": (_u(1037, 44, 1024, reason=32), 200, None, None),
    "gemini_stream": (BASIC, 200, None, None),
    "gemini_stream_error_400": (None, 400, "INVALID_ARGUMENT", None),
    "gemini_stream_json_array": (BASIC, 200, None, "1.1"),
    "gemini_embed": (_u(6, 0), 200, None, "1.1"),
    "httpx_h2_chat": (BASIC, 200, None, "2"),
    "httpx_h2_chat_stream": (BASIC, 200, None, "2"),
    "curl_h2_chat": (BASIC, 200, None, "2"),
    "curl_h2_chat_stream": (BASIC, 200, None, "2"),
    "node_fetch_chat": (BASIC, 200, None, "1.1"),
    "node_fetch_chat_stream": (BASIC, 200, None, "1.1"),
    "node_fetch_anthropic_stream": (BASIC, 200, None, "1.1"),
    "ollama_chat": (BASIC, 200, None, "1.1"),
    "ollama_chat_stream": (BASIC, 200, None, "1.1"),
    "ollama_generate_stream": (BASIC, 200, None, "1.1"),
    "llamacpp_chat_stream": (BASIC, 200, None, None),
    "plain_openai_chat": (BASIC, 200, None, None),
    "cohere_chat": (BASIC, 200, None, "1.1"),
    "cohere_chat_stream": (BASIC, 200, None, "1.1"),
    "cohere_embed": (_u(10, 0), 200, None, "1.1"),  # two texts: 6 + 4 words
    "bedrock_converse": (BASIC, 200, None, "1.1"),
    "bedrock_converse_cache_read": (_u(1037, 12, 1024), 200, None, "1.1"),
    "bedrock_converse_stream": (BASIC, 200, None, "1.1"),
    "bedrock_invoke": (BASIC, 200, None, "1.1"),
    "bedrock_invoke_stream": (BASIC, 200, None, "1.1"),
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    ca_dir = tmp_path_factory.mktemp("ca")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.standin", "--tls", "--port", "0",
         "--ca-dir", str(ca_dir)], cwd=_REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        tls = json.loads(proc.stdout.readline())
        with running_standin(tls=False) as plain:
            yield {"tls": tls, "plain": {"base_url": plain.base_url, "ca": None}}
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_every_scenario_has_an_expectation() -> None:
    assert set(EXPECTED) == set(SCENARIOS)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_client_reports_exact_usage(name: str, servers: dict[str, dict[str, Any]]) -> None:
    if name.startswith("node"):
        require_or_skip(shutil.which("node") is not None, "node is not installed")
    if name.startswith("curl"):
        require_or_skip(shutil.which("curl") is not None, "curl is not installed")
    info = servers["tls" if SCENARIOS[name].tls else "plain"]
    cmd = [sys.executable, "-m", "tests.support.clients", name, "--base-url", info["base_url"]]
    if info["ca"]:
        cmd += ["--ca", info["ca"]]
    out = subprocess.run(cmd, cwd=_REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    usage, status, error, http_version = EXPECTED[name]
    assert got["scenario"] == name
    assert got["usage"] == usage
    assert got["status"] == status
    assert got["error"] == error
    if http_version is not None:
        assert got["http_version"] == http_version
    if usage is not None:
        assert got["model"] in {"gpt-4o-mini", "text-embedding-3-small", "claude-sonnet-4-5",
                                "gemini-2.5-flash", "gemini-embedding-2", "llama3.2",
                                "command-a-03-2025", "embed-v4.0", "us.amazon.nova-lite-v1:0",
                                "anthropic.claude-3-5-haiku-20241022-v1:0"}


def test_tls_offers_h2_and_http11_via_alpn(servers: dict[str, dict[str, Any]]) -> None:
    info = servers["tls"]
    ctx = ssl.create_default_context(cafile=info["ca"])
    port = info["port"]
    for offered, chosen in ((["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")):
        ctx.set_alpn_protocols(offered)
        with socket.create_connection(("127.0.0.1", port)) as raw, \
                ctx.wrap_socket(raw, server_hostname="api.openai.com") as tls:
            assert tls.selected_alpn_protocol() == chosen


def test_http11_keepalive_and_chunked_request_body(servers: dict[str, dict[str, Any]]) -> None:
    port = int(servers["plain"]["base_url"].rsplit(":", 1)[1])
    body = b'{"model":"m","stream":false,"messages":[{"role":"user","content":"a b"}]}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = (b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
        s.sendall(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    answers = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(answers) == 2
    for a in answers:
        obj = json.loads(a.split(b"\r\n\r\n", 1)[1])
        assert (obj["prompt_eval_count"], obj["eval_count"]) == (9, 12)
