"""Regenerate fixtures/exchanges/: every driver scenario against a recording stand-in.

``python -m tests.support.make_fixtures [--out DIR] [--only NAME…]`` starts the
TLS and plaintext stand-ins as subprocesses with ``--record-dir``, runs each
scenario of :data:`tests.support.clients.SCENARIOS` in its own process, and
writes ``<out>/<scenario>.json`` from the connections it recorded plus the usage
the client reported. To make regeneration reproducible:

- the servers listen on fixed ports (``--tls-port``/``--plain-port``), so Host
  and ``:authority`` never change;
- consecutive reads of the server (the client's writes) are merged, so client
  write boundaries, which depend on scheduling, are not kept;
- timestamps are synthetic: chunk i of a fixture is at ``BASE_NS + i`` ms;
- connections of one scenario are interleaved round-robin, chunk by chunk;
- keys are the drivers' fixed fakes; any other key-like header value is
  replaced by a same-length fake.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.clients import SCENARIOS
from tests.support.clients_aws_cohere import COHERE_KEY
from tests.support.clients_common import ANTHROPIC_KEY, GOOGLE_KEY, OPENAI_KEY
from tests.support.fixtures import EXCHANGES_DIR

__all__ = ["BASE_NS", "build_fixture", "main", "record_all"]

BASE_NS = 1_771_371_852_000_000_000
"""Synthetic time of a fixture's first chunk (the stand-in's Date header)."""
STEP_NS = 1_000_000
TLS_PORT = 28443
PLAIN_PORT = 28080
_REPO = Path(__file__).resolve().parents[2]
_FAKES = (OPENAI_KEY.encode(), ANTHROPIC_KEY.encode(), GOOGLE_KEY.encode(), COHERE_KEY.encode())
_KEY_HEADER = re.compile(rb"(?im)^(authorization: bearer |x-api-key: |x-goog-api-key: )(\S+)\r$")
# boto3 signs with the time and a random invocation id: both are pinned, same
# length, so regenerated Bedrock fixtures are byte-identical too (the fixed fake
# access key id stays, it is what lumen-sniff fingerprints).
_AWS_VOLATILE = (
    (re.compile(rb"(?im)^(x-amz-date: )(\d{8}T\d{6}Z)\r$"), b"20260217T234412Z"),
    (re.compile(rb"(?im)^(amz-sdk-invocation-id: )([0-9a-f-]{36})\r$"),
     b"00000000-0000-4000-8000-000000000000"),
    (re.compile(rb"(?i)(Credential=[A-Z0-9]+/)(\d{8})(?=/)"), b"20260217"),
    (re.compile(rb"(?i)(Signature=)([0-9a-f]{64})"), b"0" * 64),
)


_PORTS_LOCK = Path(tempfile.gettempdir()) / "lumen-sniff-fixture-ports.lock"
"""Held while the stand-ins listen on the fixed ports: recordings made at the same
time (other checkouts of this repository on one machine) take turns."""


@contextlib.contextmanager
def _ports_lock() -> Iterator[None]:
    with open(_PORTS_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _server(tls: bool, port: int, record_dir: Path, ca_dir: Path) -> Iterator[dict[str, Any]]:
    cmd = [sys.executable, "-m", "tests.support.standin", "--tls" if tls else "--plain",
           "--port", str(port), "--record-dir", str(record_dir), "--ca-dir", str(ca_dir)]
    proc = subprocess.Popen(cmd, cwd=_REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"stand-in did not start (port {port} busy?)")
        yield json.loads(line)
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _scrub(data: bytes) -> bytes:
    # Drivers use fixed fake keys; anything else in a key header is replaced, same length.
    def repl(m: re.Match[bytes]) -> bytes:
        key = m.group(2)
        return m.group(1) + (key if key in _FAKES else b"X" * len(key)) + b"\r"

    data = _KEY_HEADER.sub(repl, data)
    for pattern, fixed in _AWS_VOLATILE:
        data = pattern.sub(lambda m, fixed=fixed: m.group(1) + fixed + (  # type: ignore[misc]
            b"\r" if m.group(0).endswith(b"\r") else b""), data)
    return data


def _wait_new(record_dir: Path, seen: set[str], timeout_s: float = 10.0) -> list[Path]:
    deadline = time.monotonic() + timeout_s
    last: list[str] = []
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        # Full paths: the TLS and the plaintext stand-in both number their
        # connections from 1, so bare names would collide across the two dirs.
        new = sorted(str(p) for p in record_dir.glob("conn-*.json") if str(p) not in seen)
        if new != last:
            last, stable_since = new, time.monotonic()
        elif new and time.monotonic() - stable_since > 0.4:
            break
        time.sleep(0.05)
    seen.update(last)
    return [Path(n) for n in last]


def build_fixture(scenario: str, result: dict[str, Any], records: list[dict[str, Any]],
                  port: int) -> dict[str, Any]:
    """Turn one scenario's recorded connections and driver result into a fixture.

    Args:
        scenario: Scenario name.
        result: The driver's JSON line.
        records: The stand-in's per-connection records, in connection order.
        port: Server port the client connected to.

    Returns:
        The fixture document.
    """
    per_conn: list[list[tuple[int, str, bytes, bool]]] = []
    for n, rec in enumerate(records, start=1):
        merged: list[tuple[int, str, bytes, bool]] = []
        for raw in rec["chunks"]:
            direction, data = raw["direction"], base64.b64decode(raw["data_b64"])
            if direction == "egress":
                data = _scrub(data)
            if merged and direction == "egress" and merged[-1][1] == "egress":
                merged[-1] = (n, "egress", merged[-1][2] + data, False)
            else:
                merged.append((n, direction, data, False))
        if merged:
            merged[-1] = (*merged[-1][:3], True)
        per_conn.append(merged)
    chunks = []
    offsets: dict[tuple[int, str], int] = {}
    ordered = itertools.chain.from_iterable(itertools.zip_longest(*per_conn))
    for i, (conn, direction, data, closed) in enumerate(x for x in ordered if x is not None):
        off = offsets.get((conn, direction), 0)
        offsets[(conn, direction)] = off + len(data)
        entry: dict[str, Any] = {"conn": conn, "direction": direction, "offset": off,
                                 "ts_ns": BASE_NS + i * STEP_NS,
                                 "data_b64": base64.b64encode(data).decode()}
        if closed:
            entry["closed"] = True
        chunks.append(entry)
    usage = result.get("usage") or {}
    expected = {k: usage.get(k) for k in ("input_tokens", "output_tokens", "cache_read_tokens",
                                          "cache_write_tokens", "reasoning_tokens")}
    expected |= {"model": result.get("model"), "stream": result.get("stream"),
                 "status": result.get("status"), "error": result.get("error"),
                 "calls": result.get("calls", 1)}
    client = str(result.get("client", ""))
    comm = "node" if client.startswith("node") else "curl" if client.startswith("curl") \
        else "python3"
    return {"scenario": scenario, "client": client, "comm": comm,
            "http_version": records[0]["http_version"] if records else None,
            "tls": bool(records and records[0]["tls"]), "port": port,
            "expected": expected, "chunks": chunks}


def record_all(out_dir: Path, names: list[str] | None = None, *,
               tls_port: int = TLS_PORT, plain_port: int = PLAIN_PORT) -> list[Path]:
    """Run scenarios against recording stand-ins and write their fixtures.

    Args:
        out_dir: Directory the ``<scenario>.json`` files go to.
        names: Scenarios to run (all when None).
        tls_port: Port of the TLS stand-in (0: any free one).
        plain_port: Port of the plaintext stand-in (0: any free one).

    Returns:
        The fixture files written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fixed = bool(tls_port or plain_port)
    with (
        _ports_lock() if fixed else contextlib.nullcontext(),
        tempfile.TemporaryDirectory(prefix="standin-rec-") as tmp,
    ):
        root = Path(tmp)
        with _server(True, tls_port, root / "tls", root / "ca") as tls_info, \
                _server(False, plain_port, root / "plain", root / "ca") as plain_info:
            seen: set[str] = set()
            for name in names or list(SCENARIOS):
                sc = SCENARIOS[name]
                info = tls_info if sc.tls else plain_info
                rec_dir = root / ("tls" if sc.tls else "plain")
                cmd = [sys.executable, "-m", "tests.support.clients", name,
                       "--base-url", info["base_url"]]
                if sc.tls:
                    cmd += ["--ca", info["ca"]]
                env = dict(os.environ, PYTHONHASHSEED="0")
                out = subprocess.run(cmd, cwd=_REPO, capture_output=True, text=True, env=env,
                                     timeout=120)
                if out.returncode != 0:
                    raise RuntimeError(f"{name}: driver failed:\n{out.stderr}")
                result = json.loads(out.stdout.strip().splitlines()[-1])
                files = _wait_new(rec_dir, seen)
                records = [json.loads(p.read_text()) for p in files]
                doc = build_fixture(name, result, records, info["port"])
                path = out_dir / f"{name}.json"
                path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
                written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (``make fixtures``)."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.make_fixtures")
    parser.add_argument("--out", type=Path, default=EXCHANGES_DIR)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--tls-port", type=int, default=TLS_PORT)
    parser.add_argument("--plain-port", type=int, default=PLAIN_PORT)
    args = parser.parse_args(argv)
    for path in record_all(args.out, args.only, tls_port=args.tls_port,
                           plain_port=args.plain_port):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
