"""The throughput phase's load: ``bench/loadgen/loadgen.c`` built here, fed the stand-in's bytes.

``bench/daemon.py --throughput-s S`` uses it. The C client (``loadgen``, OpenSSL,
keep-alive, one connection per thread, a new one every ``CALLS_PER_CONN`` calls)
and server (``loadsrv``, the same binary under another name so the daemon can
capture the client alone with ``--comm loadgen``) replay the exact bytes of the
stand-in's OpenAI chat and Anthropic messages replies, plain and streamed
(``tests.support.standin._write_http1``), one ``SSL_write`` per part, but
without the stand-in's 2 ms pause between stream events.

The generator's own ceiling (calls/s with both ends on one CPU and no daemon)
is printed with the result: a daemon figure above it cannot be measured here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from daemon_client import _body  # noqa: E402

from tests.support.standin import CERT_NAMES, _write_http1  # noqa: E402
from tests.support.standin_routes import answer  # noqa: E402
from tests.support.standin_wire import StandinRequest  # noqa: E402

__all__ = ["CALLS_PER_CONN", "KINDS", "LoadGen", "build", "write_wire"]

CALLS_PER_CONN = 50
"""Calls per keep-alive connection (as bench/daemon_client.py)."""
KINDS = 4
"""Request kinds: OpenAI chat and Anthropic messages, plain and streamed."""
_SOURCE = REPO / "bench" / "loadgen" / "loadgen.c"


class _Sink:
    """Stands in for the stand-in's connection: keeps each write."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    async def write(self, data: bytes) -> None:
        if data:
            self.parts.append(data)


def _request(kind: int, host: str) -> bytes:
    path, headers, body = _body(kind)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: identity\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def write_wire(directory: Path, host: str) -> None:
    """The requests (``reqK``) and the stand-in's reply writes (``repK``)."""
    directory.mkdir(parents=True, exist_ok=True)
    for kind in range(KINDS):
        path, headers, body = _body(kind)
        req = StandinRequest(method="POST", target=path, body=body,
                             headers=(("host", host), *((k.lower(), v) for k, v in
                                                        headers.items())))
        sink = _Sink()
        asyncio.run(_write_http1(sink, answer(req)))  # type: ignore[arg-type]
        (directory / f"req{kind}").write_bytes(_request(kind, host))
        (directory / f"rep{kind}").write_bytes(
            b"".join(struct.pack("<I", len(p)) + p for p in sink.parts))


def build(workdir: Path) -> tuple[Path, Path]:
    """Compile the C load generator; return (client, server) executables."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("the throughput phase needs gcc and libssl-dev (make setup-test)")
    workdir.mkdir(parents=True, exist_ok=True)
    client = workdir / "loadgen"
    subprocess.run([gcc, "-O2", "-pthread", "-o", str(client), str(_SOURCE), "-lssl",
                    "-lcrypto"], check=True)
    server = workdir / "loadsrv"
    shutil.copy(client, server)
    return client, server


def _pin(cpu: int | None) -> dict[str, object]:
    if cpu is None:
        return {}
    return {"preexec_fn": lambda: os.sched_setaffinity(0, {cpu})}


@dataclass(frozen=True, kw_only=True, slots=True)
class Result:
    """One client run."""

    calls: int
    """Calls answered."""
    seconds: float
    """Wall time of the run."""
    pid: int
    """The client's pid (its events' pid)."""


class LoadGen:
    """The built generator, its certificate and wire bytes, and a running server."""

    def __init__(self, workdir: Path, *, cpu: int | None) -> None:
        import trustme

        self.cpu = cpu
        self.client, server = build(workdir)
        ca = trustme.CA()
        cert = ca.issue_cert(*CERT_NAMES)
        self.ca = workdir / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca))
        key = workdir / "server.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(key))
        self.wire = workdir / "wire"
        write_wire(self.wire, "localhost")
        self._server = subprocess.Popen(
            [str(server), "serve", str(key), str(key), str(self.wire)],
            stdout=subprocess.PIPE, text=True, **_pin(cpu))  # type: ignore[call-overload]
        assert self._server.stdout is not None
        self.port = int(self._server.stdout.readline())

    def run(self, seconds: float, conns: int, rate: float = 0) -> Result:
        """Drive calls for ``seconds`` over ``conns`` connections, at most ``rate``/s."""
        proc = subprocess.Popen(
            [str(self.client), "client", str(self.port), str(self.ca), str(self.wire),
             str(seconds), str(conns), str(CALLS_PER_CONN), str(rate)],
            stdout=subprocess.PIPE, text=True, **_pin(self.cpu))  # type: ignore[call-overload]
        out, _ = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0:
            raise SystemExit(f"loadgen failed ({proc.returncode})")
        got = json.loads(out)
        return Result(calls=got["calls"], seconds=got["seconds"], pid=proc.pid)

    def close(self) -> None:
        self._server.terminate()
        self._server.wait(5)


@contextlib.contextmanager
def loadgen(workdir: Path, *, cpu: int | None) -> Iterator[LoadGen]:
    """A :class:`LoadGen` whose server ends with the block."""
    gen = LoadGen(workdir, cpu=cpu)
    try:
        yield gen
    finally:
        gen.close()
