"""What lumen-sniff's uprobes cost a process that is *not* talking to an LLM.

Three arms, interleaved round by round so drift (other load on the machine)
hits them alike:

- ``none``: nothing attached;
- ``floor``: the same uprobes and uretprobes, with programs that return at once
  (``BpfSettings(empty_probes=True)``): the price of a uprobe itself;
- ``lumen``: the real capture, with the real Pipeline judging the connection
  (a plain HTTP file transfer: not LLM traffic) so the ignore map stops the copy.

Workloads, each on a fresh TLS connection whose first exchange is a small
``GET /health`` (so the pipeline has judged it before timing starts), run by a
client subprocess (the capture never hooks its own process):

- median time per ``SSL_write`` (Python ``send``) of 64 B, 1 KiB, 16 KiB, 256 KiB;
- median time per ``SSL_read`` (Python ``recv``) with those buffer sizes;
- bulk download throughput (MiB/s).

Prints, per workload, the median of each arm, the time each arm adds over
``none`` and the ratio lumen/floor of the added times (target: <= 1.25).

Run as root: ``.venv/bin/python bench/overhead.py [--rounds 3] [--calls 3000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZES = (64, 1024, 16384, 262144)
_HEALTH = b"GET /health HTTP/1.1\r\nHost: files.example.com\r\n\r\n"
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


# --------------------------------------------------------------------- server


def _recv_line_block(conn: ssl.SSLSocket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        part = conn.recv(4096)
        if not part:
            raise EOFError
        buf += part
    return buf


def _serve_conn(conn: ssl.SSLSocket) -> None:
    # GET /health → 200 "ok"; PUT /upload?n=N → read N bytes, 200;
    # GET /blob?n=N&chunk=S → N bytes written S at a time.
    try:
        while True:
            head = _recv_line_block(conn)
            line = head.split(b"\r\n", 1)[0].decode()
            _method, target, _ = line.split(" ", 2)
            query = dict(p.split("=") for p in target.partition("?")[2].split("&") if p)
            if target.startswith("/upload"):
                left = int(query["n"]) - len(head.partition(b"\r\n\r\n")[2])
                while left > 0:
                    part = conn.recv(min(left, 1 << 20))
                    if not part:
                        return
                    left -= len(part)
                conn.sendall(_OK)
            elif target.startswith("/blob"):
                n, chunk = int(query["n"]), int(query["chunk"])
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n".encode())
                block = os.urandom(chunk)
                for _ in range(n // chunk):
                    conn.sendall(block)
            else:
                conn.sendall(_OK)
    except (OSError, EOFError, ValueError):
        return
    finally:
        conn.close()


def _start_server(workdir: Path) -> tuple[int, str]:
    import trustme

    ca = trustme.CA()
    ca_path = workdir / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(ctx)
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            raw, _ = listener.accept()
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                conn = ctx.wrap_socket(raw, server_side=True)
            except OSError:
                continue
            threading.Thread(target=_serve_conn, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1], str(ca_path)


# --------------------------------------------------------------------- client


def _connect(port: int, ca: str) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection(("127.0.0.1", port))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = ctx.wrap_socket(raw, server_hostname="localhost")
    conn.sendall(_HEALTH)
    reply = _recv_line_block(conn)
    while not reply.endswith(b"ok"):
        reply += conn.recv(2)
    time.sleep(0.05)  # the capture's pipeline judges the connection meanwhile
    return conn


def _client(port: int, ca: str, calls: int, bulk_mib: int) -> dict[str, float]:
    out: dict[str, float] = {}
    # Connections stay open to the end so that no two share an SSL* address: the
    # pipeline (at this commit) does not re-judge a reused (pid, SSL*) key after an
    # ignored connection closed, which would copy the next one whole.
    keep: list[ssl.SSLSocket] = []
    for size in SIZES:
        n = calls if size < 65536 else max(200, calls // 10)
        conn = _connect(port, ca)
        conn.sendall(
            f"PUT /upload?n={n * size} HTTP/1.1\r\nHost: files.example.com\r\n\r\n".encode()
        )
        data = os.urandom(size)
        times = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            conn.send(data)  # one SSL_write_ex of `size` bytes (blocking: all of it)
            times.append(time.perf_counter_ns() - t0)
        _recv_line_block(conn)
        keep.append(conn)
        out[f"write {size} B"] = statistics.median(times) / 1000
        conn = _connect(port, ca)
        total = n * size
        conn.sendall(
            f"GET /blob?n={total}&chunk={size} HTTP/1.1\r\nHost: files.example.com\r\n\r\n".encode()
        )
        head = _recv_line_block(conn)
        got = len(head.partition(b"\r\n\r\n")[2])
        times = []
        while got < total:
            t0 = time.perf_counter_ns()
            part = conn.recv(size)  # one SSL_read_ex (at most one TLS record)
            times.append(time.perf_counter_ns() - t0)
            got += len(part)
        keep.append(conn)
        out[f"read {size} B"] = statistics.median(times) / 1000
    conn = _connect(port, ca)
    total = bulk_mib << 20
    conn.sendall(
        f"GET /blob?n={total}&chunk=262144 HTTP/1.1\r\nHost: files.example.com\r\n\r\n".encode()
    )
    head = _recv_line_block(conn)
    got = len(head.partition(b"\r\n\r\n")[2])
    t0 = time.perf_counter()
    while got < total:
        got += len(conn.recv(262144))
    out["bulk MiB/s"] = bulk_mib / (time.perf_counter() - t0)
    keep.append(conn)
    for kept in keep:
        kept.close()
    return out


# ----------------------------------------------------------------------- arms


class _Arm:
    def __init__(self, name: str) -> None:
        self.name = name
        self.capture: Any = None
        self._stop = threading.Event()
        self._pump: threading.Thread | None = None
        self.ignored = 0

    def start(self) -> None:
        if self.name == "none":
            return
        from lumen_sniff.capture.bpf import BpfCapture, BpfSettings

        self.capture = BpfCapture(BpfSettings(empty_probes=self.name == "floor"))
        self.capture.start()
        if self.name == "lumen":
            self._stop.clear()
            self._pump = threading.Thread(target=self._run_pipeline, daemon=True)
            self._pump.start()

    def _run_pipeline(self) -> None:
        from lumen_sniff.model import IgnoreConnection
        from lumen_sniff.pipeline import Pipeline, PipelineSettings

        pipeline = Pipeline(PipelineSettings())
        while not self._stop.is_set():
            try:
                chunk = self.capture.chunks.get(timeout=0.05)
            except queue.Empty:
                continue
            for out in pipeline.feed(chunk):
                if isinstance(out, IgnoreConnection):
                    self.capture.ignore(out.conn)
                    self.ignored += 1

    def stop(self) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        if self.capture is not None:
            self._stop.set()
            if self._pump is not None:
                self._pump.join(2)
            status = self.capture.status()
            facts = {"dropped": status["dropped"], "records": status["counters"]["records"]}
            self.capture.stop()
            self.capture = None
        return facts


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--bulk-mib", type=int, default=128)
    parser.add_argument("--client", nargs=2, metavar=("PORT", "CA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(_client(int(args.client[0]), args.client[1], args.calls, args.bulk_mib)))
        return 0
    if os.geteuid() != 0:
        print("bench/overhead.py needs root (eBPF)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="lumen-bench-"))
    port, ca = _start_server(workdir)
    results: dict[str, list[dict[str, float]]] = {"none": [], "floor": [], "lumen": []}
    facts: dict[str, Any] = {}
    arms = [_Arm(name) for name in results]
    for round_no in range(args.rounds):
        random.shuffle(arms)
        for arm in arms:
            arm.start()
            proc = subprocess.run(
                [sys.executable, __file__, "--client", str(port), ca, "--calls", str(args.calls),
                 "--bulk-mib", str(args.bulk_mib)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[arm.name].append(json.loads(proc.stdout))
            facts[f"{arm.name}#{round_no}"] = {**arm.stop(), "ignored": arm.ignored}
            print(f"round {round_no + 1}/{args.rounds} {arm.name:5s} done", file=sys.stderr)
    _report(results, facts)
    return 0


def _report(results: dict[str, list[dict[str, float]]], facts: dict[str, Any]) -> None:
    keys = list(results["none"][0])
    med = {
        arm: {k: statistics.median(r[k] for r in runs) for k in keys}
        for arm, runs in results.items()
    }
    print(f"\n{'workload':16s} {'none µs':>9s} {'floor µs':>9s} {'lumen µs':>9s} "
          f"{'+floor':>8s} {'+lumen':>8s} {'lumen/floor':>11s}")  # fmt: skip
    for key in keys:
        if key.startswith("bulk"):
            continue
        none, floor, lumen = med["none"][key], med["floor"][key], med["lumen"][key]
        add_f, add_l = floor - none, lumen - none
        ratio = f"{add_l / add_f:11.2f}" if add_f > 0.05 else f"{'n/a':>11s}"
        print(f"{key:16s} {none:9.2f} {floor:9.2f} {lumen:9.2f} {add_f:8.2f} {add_l:8.2f} {ratio}")
    bulk = {arm: med[arm]["bulk MiB/s"] for arm in med}
    ratio = bulk["lumen"] / bulk["floor"]
    print(f"\nbulk TLS download (MiB/s): none {bulk['none']:.0f}, floor {bulk['floor']:.0f}, "
          f"lumen {bulk['lumen']:.0f}  (lumen/floor throughput {ratio:.2f})")  # fmt: skip
    lumen_facts = [v for k, v in facts.items() if k.startswith("lumen")]
    drops = {r: sum(f["dropped"][r] for f in lumen_facts) for r in lumen_facts[0]["dropped"]}
    print(f"lumen arm: connections ignored {sum(f['ignored'] for f in lumen_facts)}, "
          f"records copied {sum(f['records'] for f in lumen_facts)}, drops {drops}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
