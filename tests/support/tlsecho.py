"""A tiny TLS server and client whose every byte is known in advance.

The eBPF tests compare captured plaintext with what the client really wrote and
read, so both sides here are deterministic: the client sends a header line
``LUMEN <n_in> <n_out>\\n`` and ``n_in`` pattern bytes; the server answers with
``n_out`` pattern bytes; repeat per exchange. :func:`expected` rebuilds both
byte streams from the plan.

Server: ``python -m tests.support.tlsecho serve --ca-dir DIR`` prints one JSON
line (``port``, ``ca``, ``pid``) and serves until killed.

Client: ``python -m tests.support.tlsecho client --port P --ca CA --plan 10:20,300000:5``
(python's ``ssl``: SSL_write_ex/SSL_read_ex) prints one JSON line with its pid
once done; ``--wait-stdin`` makes it wait for a line on stdin before connecting,
``--late-import`` also waits after the handshake (so the test can see the
library the import mapped get hooked); ``--pause-after N`` waits before exchange
N; ``--thread-name`` runs the exchanges in a renamed thread; ``--seccomp``
installs a kill-on-unknown-syscall filter first; ``--exit-hard`` exits without
closing (no SSL_free).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["expected", "main", "parse_plan", "pattern"]


def pattern(n: int, seed: int) -> bytes:
    """``n`` deterministic bytes (not constant, so offsets errors show)."""
    block = bytes((i * 31 + seed * 17 + 7) % 251 for i in range(251))
    return (block * (n // 251 + 1))[:n]


def parse_plan(text: str) -> list[tuple[int, int]]:
    """``"10:20,300000:5"`` → ``[(10, 20), (300000, 5)]``."""
    out = []
    for item in text.split(","):
        n_in, _, n_out = item.partition(":")
        out.append((int(n_in), int(n_out)))
    return out


def expected(plan: list[tuple[int, int]]) -> tuple[bytes, bytes]:
    """The client's (egress, ingress) byte streams for a plan."""
    egress = b"".join(
        f"LUMEN {n_in} {n_out}\n".encode() + pattern(n_in, 2 * i)
        for i, (n_in, n_out) in enumerate(plan)
    )
    ingress = b"".join(pattern(n_out, 2 * i + 1) for i, (_n_in, n_out) in enumerate(plan))
    return egress, ingress


def _recv_exact(conn: Any, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = conn.recv(min(65536, n - len(buf)))
        if not part:
            raise EOFError
        buf += part
    return bytes(buf)


def _serve_conn(conn: Any) -> None:
    try:
        index = 0
        while True:
            line = bytearray()
            while not line.endswith(b"\n"):
                part = conn.recv(1)
                if not part:
                    return
                line += part
            _tag, n_in, n_out = line.decode().split()
            _recv_exact(conn, int(n_in))
            conn.sendall(pattern(int(n_out), 2 * index + 1))
            index += 1
    except (OSError, EOFError, ValueError):
        return
    finally:
        conn.close()


def _serve(ca_dir: Path) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca_path = ca_dir / "tlsecho-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    listener = socket.create_server(("127.0.0.1", 0))
    print(
        json.dumps({"port": listener.getsockname()[1], "ca": str(ca_path), "pid": os.getpid()}),
        flush=True,
    )
    while True:
        raw, _ = listener.accept()
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
        except OSError:
            raw.close()
            continue
        threading.Thread(target=_serve_conn, args=(conn,), daemon=True).start()


_SECCOMP_ALLOWED = (
    "read",
    "write",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "futex",
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "madvise",
    "mprotect",
    "close",
    "exit",
    "exit_group",
    "rt_sigreturn",
    "rt_sigprocmask",
    "rt_sigaction",
    "getpid",
    "gettid",
    "clock_gettime",
    "clock_nanosleep",
    "nanosleep",
    "fstat",
    "newfstatat",
    "lseek",
    "ioctl",
    "getsockname",
    "getpeername",
    "shutdown",
    "getrandom",
    "fcntl",
    "epoll_wait",
    "epoll_ctl",
    "epoll_pwait",
    "sched_yield",
    "set_robust_list",
    "rseq",
    "getsockopt",
    "setsockopt",
)


def _install_seccomp() -> None:
    # Kill the whole process on any syscall not listed: if the capture made the
    # process do anything new (it must not), the client dies and the test fails.
    import seccomp

    flt = seccomp.SyscallFilter(defaction=seccomp.KILL_PROCESS)
    for name in _SECCOMP_ALLOWED:
        try:
            flt.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError, OSError):
            continue  # not a syscall on this architecture
    flt.load()


def _say(**fields: Any) -> None:
    print(json.dumps({"pid": os.getpid(), **fields}), flush=True)


def _exchanges(conn: Any, plan: list[tuple[int, int]], pause_after: int) -> None:
    for i, (n_in, n_out) in enumerate(plan):
        if i == pause_after:
            _say(paused=True, local_port=conn.getsockname()[1])
            sys.stdin.readline()
        conn.sendall(f"LUMEN {n_in} {n_out}\n".encode() + pattern(n_in, 2 * i))
        got = _recv_exact(conn, n_out)
        if got != pattern(n_out, 2 * i + 1):
            raise SystemExit("server sent unexpected bytes")


def _client(args: argparse.Namespace) -> None:
    if args.wait_stdin:
        _say(ready=True)
        sys.stdin.readline()
    import ssl  # late on purpose with --wait-stdin: libssl may be dlopen'ed only here

    ctx = ssl.create_default_context(cafile=args.ca)
    raw = socket.create_connection(("127.0.0.1", args.port))
    conn = ctx.wrap_socket(raw, server_hostname="localhost")
    if args.late_import:
        # Let the capture hook the library this import just mapped; a real program
        # imports ssl long before its first request.
        _say(imported=True)
        sys.stdin.readline()
    if args.seccomp:
        _install_seccomp()
    plan = parse_plan(args.plan)
    if args.thread_name:
        # The calls come from a renamed thread: the capture must still report the
        # process leader's name.
        def work() -> None:
            import ctypes

            libc = ctypes.CDLL(None)
            libc.prctl(15, args.thread_name.encode(), 0, 0, 0)  # PR_SET_NAME
            _exchanges(conn, plan, args.pause_after)

        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
    else:
        _exchanges(conn, plan, args.pause_after)
    local_port = conn.getsockname()[1]
    if args.exit_hard:
        _say(local_port=local_port, done=True)
        os._exit(0)  # no SSL_free: the capture learns of the end from the exit
    conn.close()
    _say(local_port=local_port, done=True)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.tlsecho")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--ca-dir", required=True)
    client = sub.add_parser("client")
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--ca", required=True)
    client.add_argument("--plan", required=True)
    client.add_argument("--wait-stdin", action="store_true")
    client.add_argument("--late-import", action="store_true")
    client.add_argument("--pause-after", type=int, default=-1)
    client.add_argument("--thread-name", default="")
    client.add_argument("--seccomp", action="store_true")
    client.add_argument("--exit-hard", action="store_true")
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        _serve(Path(args.ca_dir))
    else:
        _client(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
