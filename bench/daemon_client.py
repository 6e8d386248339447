"""One load client for ``bench/daemon.py``: real Python ``ssl`` calls to the stand-in.

Run as ``python bench/daemon_client.py BASE_URL CA SECONDS [--pause-ms N]``. It
rotates OpenAI chat (plain, streamed) and Anthropic messages (plain, streamed)
over keep-alive HTTP/1.1 connections (a new one every 50 calls) and prints one
JSON line: the wall-clock end time of every call, in order. Calls are sequential,
so the daemon's events for this pid arrive in the same order.
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
import time
from urllib.parse import urlsplit

_CALLS_PER_CONN = 50
_OPENAI = ("/v1/chat/completions", {"authorization": "Bearer sk-bench-0000000000000000wxyz"})
_ANTHROPIC = ("/v1/messages", {"x-api-key": "sk-ant-bench-00000000000000000wxyz",
                               "anthropic-version": "2023-06-01"})


def _body(kind: int) -> tuple[str, dict[str, str], bytes]:
    stream = kind % 2 == 1
    msgs = [{"role": "user", "content": "Say hello in five words."}]
    if kind < 2:
        path, headers = _OPENAI
        obj: dict[str, object] = {"model": "gpt-4o-mini", "messages": msgs}
        if stream:
            obj |= {"stream": True, "stream_options": {"include_usage": True}}
    else:
        path, headers = _ANTHROPIC
        obj = {"model": "claude-3-5-haiku-20241022", "max_tokens": 64, "messages": msgs}
        if stream:
            obj["stream"] = True
    return path, {**headers, "content-type": "application/json"}, json.dumps(obj).encode()


def main(argv: list[str]) -> int:
    base, ca, seconds = argv[0], argv[1], float(argv[2])
    pause_s = float(argv[4]) / 1000 if len(argv) > 4 and argv[3] == "--pause-ms" else 0.0
    url = urlsplit(base)
    ctx = ssl.create_default_context(cafile=ca)
    ends: list[float] = []
    deadline = time.monotonic() + seconds
    conn: http.client.HTTPSConnection | None = None
    kind = 0
    while time.monotonic() < deadline:
        if conn is None or len(ends) % _CALLS_PER_CONN == 0:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPSConnection(url.hostname or "", url.port, context=ctx)
        path, headers, body = _body(kind)
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        ends.append(time.time())
        if response.status != 200:
            print(json.dumps({"error": response.status}), flush=True)
            return 1
        kind = (kind + 1) % 4
        if pause_s:
            time.sleep(pause_s)
    if conn is not None:
        conn.close()
    print(json.dumps({"ends": ends}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
