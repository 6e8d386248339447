"""What the blind-spot program costs: kernel ns per run of each of its BPF programs.

Loads ``bpf/lumen_sockets.bpf.c`` (as the daemon does), turns on the kernel's
BPF run-time statistics for the duration (BPF_ENABLE_STATS, released at exit),
and drives two workloads over loopback:

- ``connections``: new TLS connections (Python ssl client and server), each
  sending a real ClientHello: the tracepoint runs on every state change, the
  egress program copies each hello;
- ``bulk``: one TCP connection sending ``--bulk-mb`` MiB in 64 KiB writes: the
  egress program runs per packet and returns after the header read.

Prints, per program: runs, total ns, ns per run (from /proc/self/fdinfo). The
machine is shared, so take the median of a few runs.

Run as root: ``.venv/bin/python bench/sockets.py [--connections 500] [--bulk-mb 512]``.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import socket
import ssl
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_BPF_ENABLE_STATS = 32
_SYS_BPF = {"x86_64": 321, "aarch64": 280}


def _enable_stats() -> int:
    attr = (ctypes.c_uint32 * 4)(0)  # BPF_STATS_RUN_TIME
    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(libc.syscall(_SYS_BPF[platform.machine()], _BPF_ENABLE_STATS, ctypes.byref(attr), 16))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "BPF_ENABLE_STATS")
    return fd


def _stats(fd: int) -> tuple[int, int]:
    info = dict(
        line.split(":", 1) for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines()
    )
    return int(info.get("run_cnt", "0")), int(info.get("run_time_ns", "0"))


def _tls_pair() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    import trustme

    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def _connections(n: int) -> None:
    server_ctx, client_ctx = _tls_pair()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(n):
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(16)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve)
    thread.start()
    for _ in range(n):
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client_ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"x")
    thread.join()
    listener.close()


def _bulk(mib: int) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def sink() -> None:
        conn, _ = listener.accept()
        with conn:
            while conn.recv(1 << 20):
                pass

    thread = threading.Thread(target=sink)
    thread.start()
    block = b"\0" * 65536
    with socket.create_connection(("127.0.0.1", port)) as out:
        for _ in range(mib * 16):
            out.sendall(block)
    thread.join()
    listener.close()


def main() -> int:
    """Run the workloads; print the figures."""
    from lumen_sniff.capture.bpf.runtime.ringbuf import RingReader
    from lumen_sniff.capture.bpf.sockets import SocketWatch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--bulk-mb", type=int, default=512)
    args = parser.parse_args()
    events: list[object] = []
    watch = SocketWatch(events.append, lambda: None, next_due=lambda: None)
    reader = RingReader()
    watch.start(reader)
    reader.start()
    stats_fd = _enable_stats()
    try:
        progs = watch.program_fds()
        with tempfile.TemporaryDirectory():
            for name, work in (
                (f"connections ({args.connections} TLS)", lambda: _connections(args.connections)),
                (f"bulk ({args.bulk_mb} MiB, 64 KiB writes)", lambda: _bulk(args.bulk_mb)),
            ):
                before = {p: _stats(fd) for p, fd in progs.items()}
                work()
                print(name)
                for prog, fd in progs.items():
                    runs, ns = (a - b for a, b in zip(_stats(fd), before[prog], strict=True))
                    per = f"{ns / runs:.0f} ns/run" if runs else "-"
                    print(f"  {prog:32} {runs:>9} runs {ns / 1e6:>9.1f} ms  {per}")
        print("counters", watch.counters(), "records", len(events))
    finally:
        os.close(stats_fd)
        reader.stop()
        watch.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
