"""Small-call probe overhead: lumen-sniff vs the empty-probe floor vs no probes.

Issue 12's target: what lumen-sniff's probes add to a 64-byte TLS round trip must be
at most 1.15x what the floor adds, the floor being empty uprobes and uretprobes on
``SSL_write``/``_ex`` and ``SSL_read``/``_ex`` (the least a correct sniffer needs).

- A raw TLS echo server (its own process and CPU, never hooked) echoes 64-byte pings
  and swallows anything else.
- The timed client (the other CPU) loads a private copy of libssl; each arm's probes
  go on that file only (``bench/overhead.py``'s ``_Arms``: both captures loaded
  once, an arm is attached in milliseconds). ``lumen`` runs the real Pipeline, which
  tells the kernel to ignore a connection it judged not to be LLM traffic.
- Every batch opens a FRESH connection, so the start of a connection (copied
  until judged) is in the figure, as it is for a real short-lived client:
  ``rtt``: ``--calls`` round trips of 64 bytes of raw (non-HTTP) bytes;
  ``rtt-http``: the same after a ``GET /health`` request line (judged in the kernel);
  ``bulk``: ``--bulk-mib`` MiB in 16 KiB writes.
- Arms rotate (ABC, BCA, CAB, ...) for ``--rounds``; the added time per arm is the
  median over rounds of (arm - none) within the round, which cancels drift.

Prints per workload: none (µs per call or MiB/s), +floor, +lumen, and the ratio
lumen/floor of the added times (the target's figure), with the load average.
Run as root: ``.venv/bin/python bench/smallcalls.py [--rounds 30]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead  # (bench/overhead.py: arms, private libssl, CA)

WORKLOADS = ("rtt", "rtt-http", "bulk")
_PING = 64
_SERVER_CPU, _CLIENT_CPU = 0, 1


def _serve(ctx: ssl.SSLContext, listener: socket.socket) -> None:
    def one(raw: socket.socket) -> None:
        with ctx.wrap_socket(raw, server_side=True) as tls:
            while data := tls.recv(65536):
                if len(data) == _PING:
                    tls.sendall(data)

    while True:
        raw, _ = listener.accept()
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=one, args=(raw,), daemon=True).start()


def _server_main(ca_dir: str) -> None:
    overhead._pin(_SERVER_CPU)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(f"{ca_dir}/cert.pem", f"{ca_dir}/key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
    _serve(ctx, listener)


def _batch(port: int, ca: str, work: str, calls: int, bulk_mib: int) -> float:
    """µs per round trip (rtt*) or MiB/s (bulk) on a fresh connection."""
    ctx = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection(("127.0.0.1", port))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        if work == "bulk":
            block = b"b" * 16384
            t0 = time.perf_counter()
            for _ in range(bulk_mib * 64):
                tls.sendall(block)
            return bulk_mib / (time.perf_counter() - t0)
        ping = b"p" * _PING
        t0 = time.perf_counter()
        if work == "rtt-http":
            tls.sendall(b"GET /health HTTP/1.1\r\nHost: files.example.com\r\n\r\n")
        for _ in range(calls):
            tls.sendall(ping)
            tls.recv(_PING)
        return (time.perf_counter() - t0) / calls * 1e6


def _client_main(port: int, ca: str) -> None:
    overhead._pin(_CLIENT_CPU)
    for line in sys.stdin:
        cmd = json.loads(line)
        out: Any = ssl.OPENSSL_VERSION
        if cmd["op"] == "run":
            out = {w: _batch(port, ca, w, cmd["calls"], cmd["bulk_mib"]) for w in WORKLOADS}
        print(json.dumps(out), flush=True)


def _certs(where: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(where / "key.pem"), "-out", str(where / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip


def _cost(value: float, bulk: bool) -> float:
    """µs per MiB for bulk (from MiB/s), µs per round trip as is."""
    return 1e6 / value if bulk else value


def _report(runs: list[dict[str, dict[str, float]]]) -> None:
    print(f"\n{'workload':9s} {'none':>10s} {'+floor':>9s} {'+lumen':>9s} {'lumen/floor':>11s}")
    for work in WORKLOADS:
        bulk = work == "bulk"
        unit = "MiB/s" if bulk else "µs"

        def added(arm: str, w: str = work, b: bool = bulk) -> list[float]:
            return [_cost(r[arm][w], b) - _cost(r["none"][w], b) for r in runs]

        none = statistics.median(r["none"][work] for r in runs)
        floor, lumen = statistics.median(added("floor")), statistics.median(added("lumen"))
        ratio = f"{lumen / floor:11.2f}" if floor > 0 else f"{'n/a':>11s}"
        suffix = " (added µs per MiB)" if bulk else " (added µs per round trip)"
        print(f"{work:9s} {none:8.1f}{unit[:2]:>2s} {floor:9.2f} {lumen:9.2f} {ratio}{suffix}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="ABC blocks (rotating order)")
    parser.add_argument("--calls", type=int, default=2000, help="round trips per batch")
    parser.add_argument("--bulk-mib", type=int, default=16)
    parser.add_argument("--server", metavar="CA_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=2, metavar=("PORT", "CA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server:
        _server_main(args.server)
        return 0
    if args.client:
        _client_main(int(args.client[0]), args.client[1])
        return 0
    if os.geteuid() != 0:
        print("run as root (uprobes)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _certs(work)
        lib = overhead._private_libssl(work / "lib")
        server = subprocess.Popen([sys.executable, __file__, "--server", tmp], text=True,
                                  stdout=subprocess.PIPE)  # fmt: skip
        assert server.stdout is not None
        port = json.loads(server.stdout.readline())["port"]
        client = subprocess.Popen([sys.executable, __file__, "--client", str(port),
                                   str(work / "cert.pem")], text=True, env=lib[1],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
        try:
            overhead._ask(client, {"op": "ping"})
            if overhead._libssl_of(client.pid) != lib[0]:
                raise RuntimeError("the client did not load its private libssl")
            arms = overhead._Arms(server.pid, lib[0], "openssl", budget=True)
            runs: list[dict[str, dict[str, float]]] = []
            order = list(overhead.ARMS)
            cmd = {"op": "run", "calls": args.calls, "bulk_mib": args.bulk_mib}
            for n in range(args.rounds):
                run: dict[str, dict[str, float]] = {}
                for arm in order[n % 3 :] + order[: n % 3]:
                    arms.set(arm, on=True)
                    run[arm] = overhead._ask(client, cmd)
                    arms.set(arm, on=False)
                runs.append(run)
            skipped = arms.caps["lumen"].budget_skipped()
            arms.stop()
        finally:
            client.kill()
            server.kill()
    print(f"machine: {overhead._machine()}")
    print(f"{args.rounds} rounds; each batch a fresh connection: {args.calls} round trips of "
          f"{_PING} B, or {args.bulk_mib} MiB in 16 KiB writes; lumen arm: "
          f"{skipped['records']} calls ({skipped['bytes']} B) left uncopied by the copy "
          f"budget, {arms.ignored} ignores by user space")  # fmt: skip
    _report(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
