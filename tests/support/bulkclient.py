"""A raw HTTP/1.1 client over Python ``ssl`` for the copy-budget tests: big bodies, 16 KiB writes.

``python -m tests.support.bulkclient --port P --ca CA [--put-kib N] [--llm-kib N]``
opens ONE TLS connection and, in order:

- with ``--put-kib``: ``PUT /bucket/backup-0001.tar`` (a non-LLM path) with an
  N KiB body, and reads its response;
- with ``--llm-kib``: ``POST /v1/chat/completions`` whose JSON body is about N
  KiB and names its ``model`` LAST, and reads its (JSON) response.

Every body goes out in ``--write`` byte ``SSL_write`` calls. Prints one JSON line:
``pid``, the status of each response and the chat response's ``usage`` and ``model``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
from typing import Any

_MODEL = "gpt-4o-mini"


def _send(tls: ssl.SSLSocket, head: bytes, body: bytes, write: int) -> None:
    tls.sendall(head)
    for at in range(0, len(body), write):
        tls.sendall(body[at : at + write])


def _fill(tls: ssl.SSLSocket, buf: bytearray, need: int) -> None:
    while len(buf) < need:
        got = tls.recv(65536)
        if not got:
            raise EOFError("connection closed inside a response")
        buf += got


def _line(tls: ssl.SSLSocket, buf: bytearray) -> bytes:
    while b"\r\n" not in buf:
        _fill(tls, buf, len(buf) + 1)
    line, _, rest = bytes(buf).partition(b"\r\n")
    buf[:] = rest
    return line


def _response(tls: ssl.SSLSocket, buf: bytearray) -> tuple[int, bytes]:
    """(status, body) of the next response (Content-Length or chunked)."""
    status = int(_line(tls, buf).split()[1])
    fields: dict[str, str] = {}
    while line := _line(tls, buf).decode("latin-1"):
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    body = bytearray()
    if fields.get("transfer-encoding", "").lower() == "chunked":
        while size := int(_line(tls, buf).split(b";")[0], 16):
            _fill(tls, buf, size + 2)
            body += buf[:size]
            del buf[: size + 2]
        while _line(tls, buf):  # trailers, then the empty line
            pass
    else:
        size = int(fields.get("content-length", "0"))
        _fill(tls, buf, size)
        body += buf[:size]
        del buf[:size]
    return status, bytes(body)


def _chat_body(kib: int) -> bytes:
    # The model comes last, after a long prompt: nothing before the end of the
    # body says which model this is.
    words = " ".join(f"w{i}" for i in range(kib * 1024 // 6))
    body: dict[str, Any] = {"messages": [{"role": "user", "content": words}], "model": _MODEL}
    return json.dumps(body).encode()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--host", default="api.openai.com", help="the Host header")
    parser.add_argument("--put-kib", type=int, default=0)
    parser.add_argument("--llm-kib", type=int, default=0)
    parser.add_argument("--write", type=int, default=16384)
    parser.add_argument("--raw-kib", type=int, default=0, help="non-HTTP bytes only, then close")
    args = parser.parse_args()
    ctx = ssl.create_default_context(cafile=args.ca)
    out: dict[str, Any] = {"pid": os.getpid(), "statuses": []}
    buf = bytearray()
    with socket.create_connection(("127.0.0.1", args.port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:  # fmt: skip
        if args.raw_kib:  # not HTTP at all (what the stand-in answers, if anything, is unread)
            _send(tls, b"", b"x" * (args.raw_kib * 1024), args.write)
        if args.put_kib:
            body = b"\0" * (args.put_kib * 1024)
            head = (
                f"PUT /bucket/backup-0001.tar HTTP/1.1\r\nHost: {args.host}\r\n"
                f"Content-Type: application/x-tar\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            _send(tls, head.encode(), body, args.write)
            out["statuses"].append(_response(tls, buf)[0])
        if args.llm_kib:
            body = _chat_body(args.llm_kib)
            head = (
                f"POST /v1/chat/completions HTTP/1.1\r\nHost: {args.host}\r\n"
                "Authorization: Bearer sk-test-bulk\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            _send(tls, head.encode(), body, args.write)
            status, reply = _response(tls, buf)
            out["statuses"].append(status)
            doc = json.loads(reply)
            out["usage"], out["model"] = doc.get("usage"), doc.get("model")
            out["body_bytes"] = len(body)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
