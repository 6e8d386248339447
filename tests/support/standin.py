"""The stand-in LLM API server: real wire formats on 127.0.0.1, TLS or plaintext.

Strategy: one asyncio loop serves every connection. After the TLS handshake
(ALPN ``h2,http/1.1``) or, in plaintext, after peeking for the HTTP/2 preface
(prior knowledge, as ``curl --http2-prior-knowledge`` sends), a connection is
served by a small HTTP/1.1 loop or by ``h2``'s server-side state machine. Each
complete request goes to :func:`tests.support.standin_routes.answer`, a pure
function returning a :class:`Reply` whose body parts are written one write per
part. Every byte read and written after TLS is kept with its time and, with a
record directory, saved per connection when it closes, in the fixture format
(``fixtures/README.md``).

Use it in-process (:func:`running_standin`, a thread with its own loop) or as a
subprocess: ``python -m tests.support.standin --tls --port 0 --ca-dir DIR
--record-dir DIR`` prints one JSON line (``port``, ``ca``, ``base_url``, ``pid``)
when it is listening and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.exceptions

from tests.support.standin_h2 import serve_h2
from tests.support.standin_routes import answer
from tests.support.standin_wire import Reply, StandinRequest

__all__ = ["CERT_NAMES", "StandinServer", "main", "running_standin"]

CERT_NAMES = (
    "localhost", "127.0.0.1",
    "api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com",
)
"""Names the server certificate is valid for."""
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_READ_SIZE = 65536


@dataclass(kw_only=True, slots=True)
class _Record:
    """What one connection carried, in order."""

    conn_id: int
    tls: bool
    http_version: str = "1.1"
    chunks: list[tuple[str, int, bytes]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        offsets = {"egress": 0, "ingress": 0}
        out = []
        for direction, ts_ns, data in self.chunks:
            out.append({"direction": direction, "offset": offsets[direction], "ts_ns": ts_ns,
                        "data_b64": base64.b64encode(data).decode()})
            offsets[direction] += len(data)
        if out:
            out[-1]["closed"] = True
        return {"scenario": None, "client": None, "http_version": self.http_version,
                "tls": self.tls, "conn_id": self.conn_id, "expected": None, "chunks": out}


class _Wire:
    """A connection's streams, recording reads as egress and writes as ingress.

    Directions are named from the client's side (the observed process), the
    way the fixtures name them.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 record: _Record) -> None:
        self.reader = reader
        self.writer = writer
        self.record = record
        self.pending = b""

    async def read(self) -> bytes:
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        data = await self.reader.read(_READ_SIZE)
        if data:
            self.record.chunks.append(("egress", time.time_ns(), data))
        return data

    async def write(self, data: bytes) -> None:
        if not data:
            return
        self.record.chunks.append(("ingress", time.time_ns(), data))
        self.writer.write(data)
        await self.writer.drain()


class StandinServer:
    """The stand-in server on one port (TLS or plaintext)."""

    def __init__(self, *, tls: bool, port: int = 0, ca_dir: Path | None = None,
                 record_dir: Path | None = None) -> None:
        """Configure; nothing is opened until :meth:`start`.

        Args:
            tls: Serve TLS (ALPN h2, http/1.1) with a trustme certificate.
            port: TCP port on 127.0.0.1; 0 picks a free one.
            ca_dir: Where the CA PEM is written (a temp dir when None).
            record_dir: Where each connection's bytes are saved on close.
        """
        self.tls = tls
        self.port = port
        self.ca_dir = ca_dir
        self.record_dir = record_dir
        self.ca_path: Path | None = None
        self._server: asyncio.Server | None = None
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT`` or ``http://…``."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _ssl_context(self) -> ssl.SSLContext:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert(*CERT_NAMES)
        ca_dir = self.ca_dir or Path(tempfile.mkdtemp(prefix="standin-ca-"))
        ca_dir.mkdir(parents=True, exist_ok=True)
        self.ca_path = ca_dir / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_path))
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        return ctx

    async def start(self) -> None:
        """Listen on 127.0.0.1 (the port is known afterwards)."""
        ctx = self._ssl_context() if self.tls else None
        if self.record_dir is not None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, ssl=ctx)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and end open connections."""
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        record = _Record(conn_id=next(self._ids), tls=self.tls)
        wire = _Wire(reader, writer, record)
        try:
            await self._serve(wire)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError,
                h2.exceptions.ProtocolError):
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()
            self._save(record)

    async def _serve(self, wire: _Wire) -> None:
        alpn = None
        sslobj = wire.writer.get_extra_info("ssl_object")
        if sslobj is not None:
            alpn = sslobj.selected_alpn_protocol()
        if alpn is None and not self.tls:
            # Plaintext: HTTP/2 with prior knowledge starts with the preface.
            first = b""
            while len(first) < len(_H2_PREFACE) and _H2_PREFACE.startswith(first):
                data = await wire.read()
                if not data:
                    return
                first += data
            wire.pending = first
            alpn = "h2" if first.startswith(_H2_PREFACE) else "http/1.1"
        if alpn == "h2":
            wire.record.http_version = "2"
            await serve_h2(wire)
        else:
            await _serve_http1(wire)

    def _save(self, record: _Record) -> None:
        if self.record_dir is None or not record.chunks:
            return
        path = self.record_dir / f"conn-{record.conn_id:05d}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record.to_json(), indent=1))
        tmp.rename(path)


# ------------------------------------------------------------------------ HTTP/1.1


def _parse_head(head: bytes) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers.append((name.strip().lower(), value.strip()))
    return method.upper(), target, version, tuple(headers)


async def _read_until(wire: _Wire, buf: bytearray, marker: bytes) -> int:
    while (i := buf.find(marker)) < 0:
        data = await wire.read()
        if not data:
            raise asyncio.IncompleteReadError(bytes(buf), None)
        buf += data
    return i


async def _read_exact(wire: _Wire, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        data = await wire.read()
        if not data:
            raise asyncio.IncompleteReadError(bytes(buf), n)
        buf += data
    out = bytes(buf[:n])
    del buf[:n]
    return out


async def _read_body(wire: _Wire, buf: bytearray, req_headers: dict[str, str]) -> bytes:
    if "chunked" in req_headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            i = await _read_until(wire, buf, b"\r\n")
            size = int(bytes(buf[:i]).split(b";")[0], 16)
            del buf[: i + 2]
            if size == 0:
                # Skip trailer lines up to the empty line that ends the body.
                while (j := await _read_until(wire, buf, b"\r\n")) != 0:
                    del buf[: j + 2]
                del buf[:2]
                return bytes(body)
            body += await _read_exact(wire, buf, size)
            await _read_exact(wire, buf, 2)
    return await _read_exact(wire, buf, int(req_headers.get("content-length", "0") or 0))


async def _serve_http1(wire: _Wire) -> None:
    buf = bytearray()
    while True:
        try:
            end = await _read_until(wire, buf, b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return
        method, target, version, headers = _parse_head(bytes(buf[:end]))
        del buf[: end + 4]
        hmap = dict(headers)
        if hmap.get("expect", "").lower() == "100-continue":
            await wire.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await _read_body(wire, buf, hmap)
        req = StandinRequest(method=method, target=target, headers=headers, body=body,
                             http_version="1.1")
        reply = answer(req)
        await _write_http1(wire, reply)
        if hmap.get("connection", "").lower() == "close" or version == "HTTP/1.0":
            return


async def _write_http1(wire: _Wire, reply: Reply) -> None:
    head = f"HTTP/1.1 {reply.status} {reply.reason}\r\n"
    head += "".join(f"{n}: {v}\r\n" for n, v in reply.headers) + "\r\n"
    parts = [(f"{len(p):x}\r\n".encode() + p + b"\r\n") if reply.chunked else p
             for p in reply.parts if p]
    if reply.chunked:
        parts.append(b"0\r\n\r\n")
    if not reply.stream and parts:
        # Whole bodies leave with their head, as small proxied responses do.
        parts[0] = head.encode("latin-1") + parts[0]
    else:
        parts.insert(0, head.encode("latin-1"))
    for i, part in enumerate(parts):
        if reply.stream and i > 1 and reply.gap_s:
            await asyncio.sleep(reply.gap_s)
        await wire.write(part)


# ------------------------------------------------------------------ running it


@contextlib.contextmanager
def running_standin(*, tls: bool = True, ca_dir: Path | None = None,
                    record_dir: Path | None = None) -> Iterator[StandinServer]:
    """Run a stand-in on its own loop in a daemon thread for the ``with`` block.

    Args:
        tls: Serve TLS (the CA PEM is at ``server.ca_path``) or plaintext.
        ca_dir: Where to write the CA PEM.
        record_dir: Where to save each connection's bytes.

    Yields:
        The listening server (``base_url``, ``port``, ``ca_path``).
    """
    server = StandinServer(tls=tls, ca_dir=ca_dir, record_dir=record_dir)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=run, name="standin", daemon=True)
    thread.start()
    ready.wait(30)
    if failure:
        raise failure[0]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


async def _main_async(args: argparse.Namespace) -> None:
    server = StandinServer(tls=args.tls, port=args.port,
                           ca_dir=Path(args.ca_dir) if args.ca_dir else None,
                           record_dir=Path(args.record_dir) if args.record_dir else None)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"port": server.port, "ca": str(server.ca_path) if server.ca_path else None,
                      "base_url": server.base_url, "tls": server.tls, "pid": os.getpid()}),
          flush=True)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.standin")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--tls", dest="tls", action="store_true")
    mode.add_argument("--plain", dest="tls", action="store_false")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ca-dir")
    parser.add_argument("--record-dir")
    asyncio.run(_main_async(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
