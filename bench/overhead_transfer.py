"""Whole-transfer overhead, start included: a fast non-LLM upload on a fresh connection.

``bench/overhead.py`` times calls on connections the pipeline has already judged
and ignored, so it never sees what the *start* of a fast non-LLM connection costs:
the bytes copied (and parsed in Python) before the judgement arrives. This one
times the whole transfer, as issue 12's held-out check does:

- a fresh TLS connection per run sends ``PUT /bucket/backup-0001.tar`` (host
  ``objects.internal``) and ``--mib`` MiB in 16 KiB ``SSL_write`` calls, timed from
  the request head to the last write (connect and handshake excluded);
- client and server are pinned to one CPU, this process (the capture's ring-buffer
  reader and the Pipeline, as in the daemon) to the other;
- the server (``bench/overhead.py``'s sink) discards the ciphertext after the head;
- arms, interleaved in rotating order for ``--rounds`` rounds, each attached to the
  client's private libssl only: ``none``; ``floor`` (empty entry and return
  uprobes); ``nobudget`` (the real capture with the kernel's copy budget off: the
  state before it); ``lumen`` (the real capture as the daemon runs it).

Prints per arm the median [q1..q3] MiB/s, the added µs per 16 KiB write over ``none``
(paired per round), the ratio to the floor's, and the bytes each capture copied
per connection (median), with the budget's uncopied bytes and the load average.

``--ignore-delay-ms`` applies each IgnoreConnection that late (``-1``: never), to
stand for a daemon that judges later than this bench's own reader (the held-out
check saw 23 MB copied before the real daemon's ignore).

Run as root: ``.venv/bin/python bench/overhead_transfer.py [--rounds 15] [--mib 64]
[--ignore-delay-ms 50]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import queue
import shutil
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

import overhead  # bench/overhead.py: private libssl, attach points, the sink server

from lumen_sniff.capture.bpf.tlslib import AttachPoint

ARMS = ("none", "floor", "nobudget", "lumen")
_WRITE = 16384
_PEER_CPU, _READER_CPU = 1, 0
_HEAD = (
    "PUT /bucket/backup-0001.tar?conn=sink-put-{n} HTTP/1.1\r\nHost: objects.internal\r\n"
    "Content-Type: application/x-tar\r\nContent-Length: {size}\r\n\r\n"
)


def _client(port: int, ca: str) -> None:
    overhead._pin(_PEER_CPU)
    ctx = ssl.create_default_context(cafile=ca)
    block = os.urandom(_WRITE)
    for n, line in enumerate(sys.stdin):
        cmd = json.loads(line)
        if cmd["op"] == "ping":
            print(json.dumps({"pid": os.getpid()}), flush=True)
            continue
        size = cmd["mib"] << 20
        raw = socket.create_connection(("127.0.0.1", port))
        overhead._bigbufs(raw)
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        head = _HEAD.format(n=n, size=size).encode()
        t0 = time.perf_counter_ns()
        tls.sendall(head)
        for _ in range(size // _WRITE):
            tls.send(block)  # one SSL_write_ex of 16 KiB
        took = time.perf_counter_ns() - t0
        tls.recv(4096)  # the sink's "ok" (sent after the head): closing with it unread resets
        tls.close()  # SSL_free: the capture forgets the connection
        print(json.dumps({"mib_s": cmd["mib"] / (took / 1e9)}), flush=True)


class _Captures:
    """The three captures, compiled once; an arm is whose probes sit on the client's libssl."""

    def __init__(self, exclude: int, target: str, client_pid: int, delay_ms: float) -> None:
        from lumen_sniff.capture.bpf.loader import BpfCapture
        from lumen_sniff.capture.bpf.settings import BpfSettings
        from lumen_sniff.pipeline.pathneedles import kernel_path_filter

        prefixes, parts = kernel_path_filter()
        base = BpfSettings(exclude_pids=(exclude,), system_libraries=False, blind_spots=False)
        self.caps = {
            "floor": BpfCapture(dataclasses.replace(base, empty_probes=True)),
            "nobudget": BpfCapture(base),  # the kernel judges no path: copied until ignored
            "lumen": BpfCapture(
                dataclasses.replace(base, llm_path_prefixes=prefixes, llm_path_parts=parts)
            ),
        }
        self.client_pid = client_pid
        self.delay_s = delay_ms / 1000  # < 0: never ignore
        self.copied = {arm: 0 for arm in self.caps}
        self.ignored = {arm: 0 for arm in self.caps}
        self._points = overhead._points("openssl", target, labels=None)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        for arm, cap in self.caps.items():
            cap.start()
            for hooked in cap.status()["hooked"]:  # only the client's file, switched per arm
                points = overhead._points(
                    hooked["library"], hooked["path"], labels=hooked["probes"]
                )
                self._switch(cap, points, on=False)
            if arm != "floor":
                thread = threading.Thread(target=self._pipeline, args=(arm,), daemon=True)
                thread.start()
                self._threads.append(thread)

    @staticmethod
    def _switch(cap: Any, points: tuple[AttachPoint, ...], *, on: bool) -> None:
        overhead._Arms._switch(cap, points, on=on)

    def set(self, arm: str, *, on: bool) -> None:
        if arm != "none":
            self._switch(self.caps[arm], self._points, on=on)

    def _pipeline(self, arm: str) -> None:
        # The daemon's pump: the Pipeline judges the connection and the capture ignores it.
        from lumen_sniff.model import IgnoreConnection
        from lumen_sniff.pipeline import Pipeline, PipelineSettings

        pipeline, cap = Pipeline(PipelineSettings()), self.caps[arm]
        while not self._stop.is_set():
            try:
                chunk = cap.chunks.get(timeout=0.05)
            except queue.Empty:
                continue
            if chunk.conn.pid == self.client_pid:
                self.copied[arm] += len(chunk.data)
            for out in pipeline.feed(chunk):
                if isinstance(out, IgnoreConnection) and self.delay_s >= 0:
                    # A busy daemon judges later than this loop: --ignore-delay-ms.
                    threading.Timer(self.delay_s, cap.ignore, args=(out.conn,)).start()
                    self.ignored[arm] += 1

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        out = {
            arm: {"dropped": cap.status()["dropped"], "budget_skipped": cap.budget_skipped()}
            for arm, cap in self.caps.items()
        }
        for cap in self.caps.values():
            cap.stop()
        return out


def _ask(proc: subprocess.Popen[str], cmd: dict[str, Any]) -> Any:
    return overhead._ask(proc, cmd)


def _measure(client: subprocess.Popen[str], caps: _Captures, args: argparse.Namespace) -> Any:
    runs: dict[str, list[float]] = {arm: [] for arm in ARMS}
    copied: dict[str, list[int]] = {arm: [] for arm in caps.caps}
    for round_no in range(args.rounds):
        for arm in ARMS[round_no % len(ARMS) :] + ARMS[: round_no % len(ARMS)]:
            caps.set(arm, on=True)
            before = dict(caps.copied)
            try:
                runs[arm].append(_ask(client, {"op": "put", "mib": args.mib})["mib_s"])
            finally:
                caps.set(arm, on=False)
            if arm in copied:
                time.sleep(0.3)  # the reader catches up before the count is read
                copied[arm].append(caps.copied[arm] - before[arm])
        print(f"round {round_no + 1}/{args.rounds}", file=sys.stderr)
    return runs, copied


def _q(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, q2, q3


def _report(runs: dict[str, list[float]], copied: dict[str, list[int]], facts: Any,
            args: argparse.Namespace) -> None:  # fmt: skip
    writes = (args.mib << 20) // _WRITE
    us = {arm: [1e6 * args.mib / v / writes for v in runs[arm]] for arm in ARMS}  # µs per write
    added = {arm: [a - n for a, n in zip(us[arm], us["none"], strict=True)] for arm in ARMS[1:]}
    print(f"\nmachine: {overhead._machine()}")
    print(
        f"{args.rounds} rounds; per run a fresh connection, PUT head + {args.mib} MiB in "
        f"{writes} x 16 KiB SSL_write, client+server on CPU {_PEER_CPU}, "
        f"reader+pipeline on CPU {_READER_CPU}, ignore applied "
        f"{'never' if args.ignore_delay_ms < 0 else f'{args.ignore_delay_ms:g} ms late'}"
    )
    floor = statistics.median(added["floor"])
    print(f"\n{'arm':9s} {'MiB/s median [q1..q3]':>24s} {'+µs/write [q1..q3]':>22s} "
          f"{'/floor':>7s} {'total/floor':>11s} {'copied/conn':>12s}")  # fmt: skip
    for arm in ARMS:
        t1, t2, t3 = _q(runs[arm])
        row = f"{arm:9s} {t2:9.0f} [{t1:5.0f}..{t3:5.0f}]"
        if arm != "none":
            a1, a2, a3 = _q(added[arm])
            ratio = f"{a2 / floor:7.2f}" if floor > 0 else f"{'n/a':>7s}"
            total = (statistics.median(us["none"]) + a2) / (statistics.median(us["none"]) + floor)
            row += f" {a2:8.2f} [{a1:5.2f}..{a3:5.2f}] {ratio} {total:11.3f}"
        if arm in copied:
            row += f" {statistics.median(copied[arm]) / 1024:9.0f} KiB"
        print(row)
    print(
        "  /floor: the arm's added time per write / the floor's (issue 12's ratio); "
        "total/floor: the whole transfer's time / the floor arm's"
    )
    for arm, fact in facts.items():
        drops = {r: n for r, n in fact["dropped"].items() if n}
        print(f"{arm}: drops {drops or 'none'}, budget not copied "
              f"{fact['budget_skipped']['bytes'] / 1e6:.1f} MB")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--ignore-delay-ms", type=float, default=0.0,
                        help="apply the pipeline's IgnoreConnection this late, as a busy "
                             "daemon does (-1: never)")  # fmt: skip
    parser.add_argument("--server", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=2, metavar=("PORT", "CA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server:
        overhead._SERVER_CPU = _PEER_CPU
        overhead._server(Path(args.server))
        return 0
    if args.client:
        _client(int(args.client[0]), args.client[1])
        return 0
    if os.geteuid() != 0:
        print("bench/overhead_transfer.py needs root (eBPF)", file=sys.stderr)
        return 2
    import trustme

    overhead._pin(_READER_CPU)
    workdir = Path(tempfile.mkdtemp(prefix="lumen-bench-transfer-"))
    procs: list[subprocess.Popen[str]] = []
    caps: _Captures | None = None
    try:
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
        ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(
            str(workdir / "server.pem")
        )
        libs = {who: overhead._private_libssl(workdir / who) for who in ("server", "client")}
        spawn = [sys.executable, __file__]
        server = subprocess.Popen([*spawn, "--server", str(workdir)], text=True,
                                  stdout=subprocess.PIPE, env=libs["server"][1])  # fmt: skip
        procs.append(server)
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())
        client = subprocess.Popen([*spawn, "--client", str(ports["tls"]), str(workdir / "ca.pem")],
                                  text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  env=libs["client"][1])  # fmt: skip
        procs.append(client)
        pid = _ask(client, {"op": "ping"})["pid"]
        if overhead._libssl_of(pid) != libs["client"][0]:
            raise RuntimeError("the client did not load its private libssl")
        # The sink server waits for its control connection (unused here) and lives while
        # it is open.
        ctl = socket.create_connection(("127.0.0.1", ports["ctl"]))
        caps = _Captures(server.pid, libs["client"][0], pid, args.ignore_delay_ms)
        runs, copied = _measure(client, caps, args)
        facts = caps.stop()
        caps = None
        ctl.close()
    finally:
        if caps is not None:
            caps.stop()
        for proc in procs:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    _report(runs, copied, facts, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
