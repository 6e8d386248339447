"""What the capture's BPF programs themselves cost per call, from the kernel's own run-time stats.

``bench/overhead.py`` times whole calls, where one uprobe trap (~12 µs on these VMs,
far more under load) and the machine's noise hide a program's few hundred
nanoseconds. This asks the kernel instead: with run-time statistics on
(``BPF_ENABLE_STATS``, held by this process only while it runs), every program keeps
``run_time_ns`` and ``run_cnt``; ns per run is their quotient, whatever else the
machine does.

A Python ``ssl`` client (its own private libssl, only it hooked) makes ``--calls``
64-byte ``SSL_write`` + ``SSL_read`` round trips on three connections in turn:

- ``copied``: ``POST /v1/chat/completions`` first, so every call is copied;
- ``budget``: ``PUT /bucket/...`` first: judged in the kernel, the budget spent by a
  64 KiB body, then only counted;
- ``ignored``: the same after user space judged it (``BpfCapture.ignore``).

Prints ns per run of each program (entry and return of ``SSL_write_ex`` /
``SSL_read_ex``) per connection kind. Run as root: ``.venv/bin/python bench/probecost.py``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import overhead  # bench/overhead.py: private libssl, attach points

_SYS_BPF = 321  # x86-64
_BPF_OBJ_GET_INFO_BY_FD = 15
_BPF_ENABLE_STATS = 32
_RUN_TIME_OFF, _RUN_CNT_OFF = 192, 200  # struct bpf_prog_info
_PROGS = ("lumen_enter_ssl_write_ex", "lumen_leave_ssl_write_ex",
          "lumen_enter_ssl_read_ex", "lumen_leave_ssl_read_ex")  # fmt: skip
_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    rc = _libc.syscall(_SYS_BPF, cmd, attr, len(attr))
    if rc < 0:
        raise OSError(ctypes.get_errno(), f"bpf({cmd})")
    return int(rc)


def _enable_stats() -> int:
    attr = ctypes.create_string_buffer(8)  # union bpf_attr { __u32 type; } BPF_STATS_RUN_TIME
    return _bpf(_BPF_ENABLE_STATS, attr)


def _run_stats(fd: int) -> tuple[int, int]:
    info = ctypes.create_string_buffer(256)
    attr = ctypes.create_string_buffer(16)
    ctypes.c_uint32.from_buffer(attr, 0).value = fd
    ctypes.c_uint32.from_buffer(attr, 4).value = len(info)
    ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(info)
    _bpf(_BPF_OBJ_GET_INFO_BY_FD, attr)
    return (ctypes.c_uint64.from_buffer(info, _RUN_TIME_OFF).value,
            ctypes.c_uint64.from_buffer(info, _RUN_CNT_OFF).value)  # fmt: skip


def _server(port_out: Any, ctx: ssl.SSLContext) -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    port_out.append(srv.getsockname()[1])

    def serve(raw: socket.socket) -> None:
        with ctx.wrap_socket(raw, server_side=True) as tls:
            while data := tls.recv(65536):
                if len(data) == 64:
                    tls.sendall(data)  # echo the 64-byte pings only

    while True:
        raw, _ = srv.accept()
        threading.Thread(target=serve, args=(raw,), daemon=True).start()


def _client(port: int, ca: str, calls: int) -> None:
    ctx = ssl.create_default_context(cafile=ca)
    print(json.dumps({"pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        kind = json.loads(line)["kind"]
        tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                              server_hostname="localhost")  # fmt: skip
        if kind == "copied":
            tls.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n")
        else:
            tls.sendall(b"PUT /bucket/backup-0001.tar HTTP/1.1\r\nHost: x\r\n\r\n")
            tls.sendall(b"\0" * (64 << 10))  # spends the budget
        print(json.dumps({"ready": True}), flush=True)
        sys.stdin.readline()  # go
        ping = b"p" * 64
        for _ in range(calls):
            tls.sendall(ping)
            tls.recv(64)
        tls.close()
        print(json.dumps({"done": True}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        _client(int(args.client[0]), args.client[1], int(args.client[2]))
        return 0
    import trustme

    from lumen_sniff.capture.bpf.loader import BpfCapture
    from lumen_sniff.capture.bpf.settings import BpfSettings
    from lumen_sniff.pipeline.pathneedles import kernel_path_filter

    work = Path(tempfile.mkdtemp(prefix="lumen-probecost-"))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(sctx)
    port: list[int] = []
    threading.Thread(target=_server, args=(port, sctx), daemon=True).start()
    while not port:
        pass
    lib, env = overhead._private_libssl(work / "client")
    client = subprocess.Popen([sys.executable, __file__, "--client", str(port[0]),
                               str(work / "ca.pem"), str(args.calls)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)  # fmt: skip
    assert client.stdin is not None and client.stdout is not None
    pid = json.loads(client.stdout.readline())["pid"]
    prefixes, parts = kernel_path_filter()
    cap = BpfCapture(BpfSettings(llm_path_prefixes=prefixes, llm_path_parts=parts,
                                 system_libraries=False, blind_spots=False))  # fmt: skip
    stats_fd = -1
    try:
        cap.start()
        for hooked in cap.status()["hooked"]:
            pts = overhead._points(hooked["library"], hooked["path"], labels=hooked["probes"])
            overhead._Arms._switch(cap, pts, on=False)
        overhead._Arms._switch(cap, overhead._points("openssl", lib, labels=None), on=True)
        assert cap._bpf is not None
        fds = {name: cap._bpf.load_func(name.encode()) for name in _PROGS}
        stats_fd = _enable_stats()
        rows = {}
        for kind in ("copied", "budget", "ignored"):
            client.stdin.write(json.dumps({"kind": kind}) + "\n")
            client.stdin.flush()
            client.stdout.readline()  # connection open, head (and budget body) sent
            if kind == "ignored":
                import time

                time.sleep(0.3)
                for chunk in list(cap.chunks.queue)[-4:]:
                    if chunk.conn.pid == pid:
                        cap.ignore(chunk.conn)
            before = {n: _run_stats(fd) for n, fd in fds.items()}
            client.stdin.write("\n")
            client.stdin.flush()
            client.stdout.readline()
            after = {n: _run_stats(fd) for n, fd in fds.items()}
            rows[kind] = {
                n: (after[n][0] - before[n][0]) / max(1, after[n][1] - before[n][1])
                for n in _PROGS
            }
    finally:
        if stats_fd >= 0:
            os.close(stats_fd)
        cap.stop()
        client.kill()
    print(f"machine: {overhead._machine()}; {args.calls} round trips of 64 B per connection")
    print(f"{'ns per program run':28s} " + " ".join(f"{k:>8s}" for k in rows))
    for name in _PROGS:
        print(f"{name:28s} " + " ".join(f"{rows[k][name]:8.0f}" for k in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
