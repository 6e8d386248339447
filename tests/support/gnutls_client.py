"""A libcurl-gnutls client (Debian's python3-pycurl) for the GnuTLS capture tests.

Run with the system interpreter (``/usr/bin/python3``), whose pycurl links
``libcurl-gnutls.so.4`` and through it ``libgnutls.so.30``:
``/usr/bin/python3 tests/support/gnutls_client.py CA_PEM BASE_URL h1|h2``.
Like the Go client, it waits for a line (or EOF) on stdin, makes three OpenAI
chat-completions calls (plain, streamed with include_usage, a large prompt),
prints one line per call and a JSON summary of the usage it read itself.
Standalone on purpose: it imports nothing from the repository.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys

import pycurl  # type: ignore[import-not-found]


def _call(
    curl: pycurl.Curl, base: str, body: dict[str, object], used: int
) -> tuple[int, dict[str, int], str]:
    out = io.BytesIO()
    curl.setopt(pycurl.URL, base + "/v1/chat/completions")
    curl.setopt(pycurl.POSTFIELDS, json.dumps(body))
    curl.setopt(pycurl.HTTPHEADER, [
        "Content-Type: application/json",
        "Authorization: Bearer sk-gnutls-client-test-key-0000",
    ])
    curl.setopt(pycurl.WRITEDATA, out)
    curl.perform()
    status = int(curl.getinfo(pycurl.RESPONSE_CODE))
    if curl.getinfo(pycurl.INFO_HTTP_VERSION) != used:
        raise SystemExit(f"HTTP version {curl.getinfo(pycurl.INFO_HTTP_VERSION)} was used")
    data = out.getvalue()
    usage: dict[str, int] = {}
    if body.get("stream"):
        for line in data.decode().splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                usage = chunk.get("usage") or usage
    else:
        usage = json.loads(data)["usage"]
    return status, usage, hashlib.sha256(data).hexdigest()


def main() -> int:
    ca, base, proto = sys.argv[1:4]
    sys.stdin.readline()
    curl = pycurl.Curl()
    curl.setopt(pycurl.CAINFO, ca)
    curl.setopt(pycurl.ACCEPT_ENCODING, "gzip")
    version = pycurl.CURL_HTTP_VERSION_2TLS if proto == "h2" else pycurl.CURL_HTTP_VERSION_1_1
    curl.setopt(pycurl.HTTP_VERSION, version)
    msg = lambda text: [{"role": "user", "content": text}]  # noqa: E731
    calls: list[dict[str, object]] = [
        {"model": "gpt-4o-mini", "messages": msg("Say hello to the curl client"), "max_tokens": 12},
        {"model": "gpt-4o-mini", "messages": msg("Count to five slowly please"), "max_tokens": 20,
         "stream": True, "stream_options": {"include_usage": True}},
        {"model": "gpt-4o-mini", "messages": msg("lorem ipsum dolor sit amet " * 3000),
         "max_tokens": 30},
    ]
    total = {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "reasoning_tokens": 0}
    for i, body in enumerate(calls):
        used = pycurl.CURL_HTTP_VERSION_2_0 if proto == "h2" else pycurl.CURL_HTTP_VERSION_1_1
        status, usage, digest = _call(curl, base, body, used)
        print(f"call {i} {status} {usage['prompt_tokens']} {usage['completion_tokens']} {digest}")
        total["input_tokens"] += usage["prompt_tokens"]
        total["output_tokens"] += usage["completion_tokens"]
        total["cache_read_tokens"] += (usage.get("prompt_tokens_details") or {}).get(
            "cached_tokens", 0)
        total["reasoning_tokens"] += (usage.get("completion_tokens_details") or {}).get(
            "reasoning_tokens", 0)
    curl.close()
    print(json.dumps({"calls": len(calls), "usage": total}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
