"""What lumen-sniff's uprobes cost a process that is *not* talking to an LLM.

Three arms:

- ``none``: nothing attached;
- ``floor``: the same uprobes and uretprobes, with programs that return at once
  (``BpfSettings(empty_probes=True)``): the price of a uprobe itself;
- ``lumen``: the real capture, with the real Pipeline judging the connections
  (``GET /health`` to a file server: not LLM traffic) so the ignore map stops the copy.

Strategy (a 2-vCPU VM shared with other work: effects of ~1 µs must stand out):

- *Batches, not single calls*: the client times N back-to-back ``SSL_write`` /
  ``SSL_read`` calls of one size and reports batch time / N; the figure per arm is
  the median of many batch means, with the interquartile range beside it.
- *The timed side never waits*: writes go to a peer that discards the ciphertext
  raw (no decryption) with large socket buffers; reads consume records the server
  encrypted beforehand and that already sit in the client's socket (``FIONREAD``).
  The bulk download's server also encrypts first and then pushes ciphertext at
  memory speed, so MiB/s is the client's decryption rate.
- *Only the client is hooked*: the server loads a private copy of libssl (and is
  excluded), as a remote server would be; client and server sit on different CPUs.
- *Short interleaved blocks*: both captures are compiled once; arms switch by
  attaching/detaching their probes on the client's libssl (milliseconds), in
  rotating order (ABC, BCA, CAB, ...) for many rounds. Added time per arm is the
  median over rounds of (arm - none) in the same round, which cancels drift.

Reading the table: ``none`` is the median [q1..q3] of batch means (µs per call);
``+floor``/``+lumen`` the median [q1..q3] over rounds of the paired difference;
``p10`` columns compare the 10th percentiles of all batches (other load only adds
time, so these show the undisturbed cost). A ratio is ``n/a`` when the floor's
spread reaches zero: a 256 KiB write (~300 µs of encryption and loopback TCP) moves
by more than a probe's cost from batch to batch on a shared VM.

``--boringssl``: the client is Bun (``bench/bun_client.js``, a private copy of the
Bun that ``make setup-test`` installs), whose BoringSSL is static and stripped; the
arms' probes go on ``SSL_write``/``SSL_read``/``SSL_shutdown`` at the addresses the
``boringssl-static`` row locates. Bun's own socket ``write`` is one synchronous
``SSL_write``; reads cannot be timed per call from JavaScript (they run in the event
loop), so that arm times writes and the bulk download (one ``SSL_read`` per record).

Run as root: ``.venv/bin/python bench/overhead.py [--rounds 54] [--batches 3]``
(about 4 minutes; ``--json FILE`` keeps the raw batch figures).
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import json
import os
import queue
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lumen_sniff.capture.bpf.elf import elf_facts  # noqa: E402 (needs the path above)
from lumen_sniff.capture.bpf.libraries import TLS_LIBRARIES, TLS_SYMBOLS  # noqa: E402
from lumen_sniff.capture.bpf.tlslib import AttachPoint  # noqa: E402

BUN = REPO / "tests/agents/bun/node_modules/@oven/bun-linux-x64/bin/bun"
"""The Bun of the static-BoringSSL arm (``make setup-test`` installs it)."""

SIZES = (64, 1024, 16384, 262144)
ARMS = ("none", "floor", "lumen")
_RECORD = 16384  # TLS plaintext per record: a read returns at most this much
_BATCH_CALLS = 2000
_READ_BYTES = 4 << 20  # per read batch at most: it waits whole in the socket buffer
_WRITE_BYTES = 8 << 20  # per write batch at most: the peer drains it meanwhile
_SOCKBUF = 32 << 20
_SO_SNDBUFFORCE, _SO_RCVBUFFORCE = 32, 33  # root may exceed net.core.*mem_max
_HEALTH = "GET /health?conn={} HTTP/1.1\r\nHost: files.example.com\r\n\r\n"
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
_CLIENT_CPU, _SERVER_CPU = 1, 0


def _calls(kind: str, size: int) -> int:
    if kind == "write":
        return min(_BATCH_CALLS, _WRITE_BYTES // size)
    return min(_BATCH_CALLS, _READ_BYTES // min(size, _RECORD))


def _bigbufs(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, _SOCKBUF)
    sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _SOCKBUF)


def _pin(cpu: int) -> None:
    if cpu < os.cpu_count():  # type: ignore[operator]
        os.sched_setaffinity(0, {cpu})


# --------------------------------------------------------------------- server


class _ServerConn:
    """A TLS connection driven through memory BIOs: encryption happens before sending."""

    def __init__(self, raw: socket.socket, ctx: ssl.SSLContext) -> None:
        self.raw = raw
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=True)

    def _pump(self) -> None:
        self.raw.sendall(self.out.read())
        data = self.raw.recv(65536)
        if not data:
            raise EOFError
        self.inc.write(data)

    def greet(self) -> str:
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._pump()
        head = b""
        while b"\r\n\r\n" not in head:
            try:
                head += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._pump()
        self.obj.write(_OK)
        self.raw.sendall(self.out.read())
        return re.search(rb"conn=(\S+)", head).group(1).decode()  # type: ignore[union-attr]

    def encrypt(self, records: int, size: int) -> bytes:
        block = os.urandom(size)
        for _ in range(records):
            self.obj.write(block)  # one TLS record each
        return self.out.read()


def _server(workdir: Path) -> None:
    _pin(_SERVER_CPU)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(workdir / "server.pem")
    tls = socket.socket()
    _bigbufs(tls)  # inherited by accepted sockets; sets the window scale
    tls.bind(("127.0.0.1", 0))
    tls.listen(64)
    ctl = socket.create_server(("127.0.0.1", 0))
    sources: dict[str, _ServerConn] = {}

    def serve(raw: socket.socket) -> None:
        conn = _ServerConn(raw, ctx)
        name = conn.greet()
        if not name.startswith("sink"):
            sources[name] = conn
            return
        buf = bytearray(1 << 20)  # discard ciphertext without decrypting it
        while raw.recv_into(buf):
            pass

    def accept() -> None:
        while True:
            raw, _ = tls.accept()
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=serve, args=(raw,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print(json.dumps({"tls": tls.getsockname()[1], "ctl": ctl.getsockname()[1]}), flush=True)
    link, _ = ctl.accept()
    for line in link.makefile("r"):
        cmd = json.loads(line)
        conn = sources[cmd["conn"]]
        data = conn.encrypt(cmd["records"], cmd["size"])
        link.sendall(f"{len(data)}\n".encode())
        conn.raw.sendall(data)


# --------------------------------------------------------------------- client


class _Client:
    def __init__(self, tls_port: int, ctl_port: int, ca: str) -> None:
        self.ctx = ssl.create_default_context(cafile=ca)
        self.port = tls_port
        self.ctl = socket.create_connection(("127.0.0.1", ctl_port))
        self.ctl_in = self.ctl.makefile("r")
        self.conns: dict[str, ssl.SSLSocket] = {}
        self.buf = bytearray(max(SIZES))

    def open(self, name: str) -> None:
        raw = socket.socket()
        _bigbufs(raw)
        raw.connect(("127.0.0.1", self.port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = self.ctx.wrap_socket(raw, server_hostname="localhost")
        conn.sendall(_HEALTH.format(name).encode())
        reply = b""
        while not reply.endswith(b"ok"):
            reply += conn.recv(4096)
        self.conns[name] = conn

    def _fill(self, name: str, records: int, size: int) -> int:
        self.ctl.sendall(json.dumps({"conn": name, "records": records, "size": size}).encode()
                         + b"\n")  # fmt: skip
        return int(self.ctl_in.readline())

    def write_batch(self, size: int) -> float:
        conn, data, n = self.conns[f"sink-{size}"], os.urandom(size), _calls("write", size)
        while _ioctl_int(conn, termios.TIOCOUTQ):  # start each batch with an empty queue
            time.sleep(0.0005)
        t0 = time.perf_counter_ns()
        for _ in range(n):
            conn.send(data)  # one SSL_write_ex of `size` bytes
        return (time.perf_counter_ns() - t0) / n

    def read_batch(self, size: int) -> float:
        name, n, record = f"src-{size}", _calls("read", size), min(size, _RECORD)
        conn, buf = self.conns[name], self.buf
        wire = self._fill(name, n, record)
        deadline = time.monotonic() + 10
        while _ioctl_int(conn, termios.FIONREAD) < wire:  # all of it already here
            if time.monotonic() > deadline:
                raise TimeoutError("server data did not arrive")
            time.sleep(0.0005)
        t0 = time.perf_counter_ns()
        for _ in range(n):
            conn.recv_into(buf, size)  # one SSL_read_ex: one record already buffered
        return (time.perf_counter_ns() - t0) / n

    def bulk(self, mib: int) -> float:
        conn, buf = self.conns["src-bulk"], memoryview(self.buf)
        total = mib << 20
        self._fill("src-bulk", total // _RECORD, _RECORD)
        got = 0
        t0 = time.perf_counter_ns()
        while got < total:
            got += conn.recv_into(buf, _RECORD)
        return mib / ((time.perf_counter_ns() - t0) / 1e9)


def _ioctl_int(sock: socket.socket, request: int) -> int:
    out = fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0")
    return int.from_bytes(out, sys.byteorder)


def _client(tls_port: int, ctl_port: int, ca: str) -> None:
    _pin(_CLIENT_CPU)
    client = _Client(tls_port, ctl_port, ca)
    for line in sys.stdin:
        cmd = json.loads(line)
        out: Any = None
        if cmd["op"] == "ping":
            out = ssl.OPENSSL_VERSION
        elif cmd["op"] == "open":
            for name in cmd["names"]:
                client.open(name)
            out = len(client.conns)
        elif cmd["op"] == "run":
            gc.disable()
            out = {}
            for work in cmd["work"]:
                kind, size = work.split()[0], int(work.split()[1])
                fn = client.write_batch if kind == "write" else client.read_batch
                out[work] = [fn(size) for _ in range(cmd["batches"])]
            out["bulk MiB/s"] = [client.bulk(cmd["bulk_mib"])]
            gc.enable()
        print(json.dumps(out), flush=True)


# ----------------------------------------------------------------------- arms


class _Arms:
    """Both captures loaded once; an arm is which one's probes sit on the client's TLS file."""

    def __init__(self, exclude: int, target: str, library: str, *, budget: bool = False) -> None:
        from lumen_sniff.capture.bpf.loader import BpfCapture
        from lumen_sniff.capture.bpf.settings import BpfSettings
        from lumen_sniff.pipeline.pathneedles import kernel_path_filter

        # budget: the daemon's path needles, so the kernel's copy budget is on.
        prefixes, parts = kernel_path_filter() if budget else ((), ())
        lumen = BpfSettings(exclude_pids=(exclude,), llm_path_prefixes=prefixes,
                            llm_path_parts=parts)  # fmt: skip
        self.caps = {
            "floor": BpfCapture(BpfSettings(empty_probes=True, exclude_pids=(exclude,))),
            "lumen": BpfCapture(lumen),
        }
        self.ignored = 0
        self._stop = threading.Event()
        self._points = _points(library, target, labels=None)
        for cap in self.caps.values():
            cap.start()
            for hooked in cap.status()["hooked"]:
                # Every file the capture found stays detached (less noise); the arm's
                # probes go on the client's private TLS file only.
                points = _points(hooked["library"], hooked["path"], labels=hooked["probes"])
                self._switch(cap, points, on=False)
        self._pump = threading.Thread(target=self._run_pipeline, daemon=True)
        self._pump.start()

    @staticmethod
    def _switch(cap: Any, points: tuple[AttachPoint, ...], *, on: bool) -> None:
        # Recompiling per arm takes seconds; attaching to one file takes milliseconds.
        bpf = cap._bpf
        for point in points:
            kw: dict[str, Any] = {"name": point.path.encode()}
            if point.sym:
                kw["sym"] = point.sym.encode()
            else:
                kw["addr"] = point.addr
            if on:
                attach = bpf.attach_uretprobe if point.ret else bpf.attach_uprobe
                attach(fn_name=point.fn_name.encode(), **kw)
            else:
                (bpf.detach_uretprobe if point.ret else bpf.detach_uprobe)(**kw)

    def set(self, arm: str, *, on: bool) -> None:
        if arm != "none":
            self._switch(self.caps[arm], self._points, on=on)

    def _run_pipeline(self) -> None:
        from lumen_sniff.model import IgnoreConnection
        from lumen_sniff.pipeline import Pipeline, PipelineSettings

        pipeline, cap = Pipeline(PipelineSettings()), self.caps["lumen"]
        while not self._stop.is_set():
            try:
                chunk = cap.chunks.get(timeout=0.05)
            except queue.Empty:
                continue
            for out in pipeline.feed(chunk):
                if isinstance(out, IgnoreConnection):
                    cap.ignore(out.conn)
                    self.ignored += 1

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._pump.join(2)
        status = self.caps["lumen"].status()
        for cap in self.caps.values():
            cap.stop()
        return {"dropped": status["dropped"], "records": status["counters"]["records"]}


def _points(library: str, path: str, *, labels: list[str] | None) -> tuple[AttachPoint, ...]:
    """The attach points a library row gives for ``path`` (those with ``labels``, or all)."""
    row = next(r for r in TLS_LIBRARIES if r.name == library)
    facts = elf_facts(path, TLS_SYMBOLS)
    if facts is None:
        raise RuntimeError(f"{path} is not readable as ELF")
    points = row.locate(row, path, facts)
    return tuple(p for p in points if labels is None or p.label in labels)


def _libssl_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(None, 5)
        path = fields[5] if len(fields) == 6 else ""
        if "/libssl.so" in path or path.endswith("/tls-under-test.so"):
            return path
    raise RuntimeError(f"pid {pid} maps no libssl")


def _private_libssl(where: Path) -> tuple[str, dict[str, str]]:
    """A copy of the system libssl under a name no capture's discovery recognises.

    Other lumen-sniff captures on the machine (tests, daemons) hook the system
    libssl; their probes would add to every arm. ld.so finds the copy through the
    ``libssl.so.3`` link, /proc/PID/maps names the file itself.
    """
    where.mkdir()
    system = _libssl_of(os.getpid())
    copy = where / "tls-under-test.so"
    shutil.copy(system, copy)
    (where / Path(system).name).symlink_to(copy.name)
    return str(copy), {**os.environ, "LD_LIBRARY_PATH": str(where)}


# ----------------------------------------------------------------------- main


def _start_client(
    args: argparse.Namespace, workdir: Path, ports: dict[str, int], lib: tuple[str, dict[str, str]]
) -> tuple[subprocess.Popen[str], str, str]:
    """The timed client, the file its probes go on, and that file's TLS library row."""
    ca = str(workdir / "ca.pem")
    if not args.boringssl:
        client = _spawn(["--client", str(ports["tls"]), str(ports["ctl"]), ca], env=lib[1])
        _ask(client, {"op": "ping"})  # it has imported ssl: libssl is mapped
        if _libssl_of(client.pid) != lib[0]:
            raise RuntimeError("the client did not load its private libssl")
        return client, lib[0], "openssl"
    # A private copy (its own inode): probes of other captures on the Bun that the
    # tests installed do not add to any arm.
    bun = workdir / "bun-under-test"
    shutil.copy(BUN, bun)
    argv = [str(bun), str(REPO / "bench" / "bun_client.js"), str(ports["tls"]),
            str(ports["ctl"]), ca]  # fmt: skip
    client = subprocess.Popen(argv, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              preexec_fn=lambda: _pin(_CLIENT_CPU))  # fmt: skip
    return client, str(bun), "boringssl-static"



def _spawn(args: list[str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, **kw)  # fmt: skip


def _ask(proc: subprocess.Popen[str], cmd: dict[str, Any]) -> Any:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(cmd) + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"benchmark subprocess died (exit {proc.wait()})")
    return json.loads(line)


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=54, help="ABC blocks (rotating order)")
    parser.add_argument("--batches", type=int, default=3, help="batches per workload per block")
    parser.add_argument("--bulk-mib", type=int, default=32, help="MiB per bulk download")
    parser.add_argument("--json", type=Path, help="also write the raw batch figures here")
    parser.add_argument("--boringssl", action="store_true",
                        help="client in Bun: static, stripped BoringSSL, functions located "
                             "without symbols (writes and bulk reads only)")  # fmt: skip
    parser.add_argument("--server", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=3, metavar=("TLS", "CTL", "CA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server:
        _server(Path(args.server))
        return 0
    if args.client:
        _client(int(args.client[0]), int(args.client[1]), args.client[2])
        return 0
    if os.geteuid() != 0:
        print("bench/overhead.py needs root (eBPF)", file=sys.stderr)
        return 2
    import trustme

    workdir = Path(tempfile.mkdtemp(prefix="lumen-bench-"))
    procs: list[subprocess.Popen[str]] = []
    arms: _Arms | None = None
    try:
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
        ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(
            str(workdir / "server.pem")
        )
        libs = {who: _private_libssl(workdir / who) for who in ("server", "client")}
        server = _spawn(["--server", str(workdir)], env=libs["server"][1])
        procs.append(server)
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())
        if _libssl_of(server.pid) != libs["server"][0]:
            raise RuntimeError("the server did not load its private libssl")
        client, target, library = _start_client(args, workdir, ports, libs["client"])
        procs.append(client)
        print(f"client: {_ask(client, {'op': 'ping'})}, hooked file {target}", file=sys.stderr)
        arms = _Arms(server.pid, target, library)
        names = [f"{k}-{s}" for s in SIZES for k in ("sink", "src")] + ["src-bulk"]
        arms.set("lumen", on=True)  # the pipeline judges every connection, once
        _ask(client, {"op": "open", "names": names})
        deadline = time.monotonic() + 15
        while arms.ignored < len(names) and time.monotonic() < deadline:
            time.sleep(0.05)
        arms.set("lumen", on=False)
        results = _measure(client, arms, args)
        facts = {**arms.stop(), "ignored": arms.ignored, "conns": len(names)}
        arms = None
    finally:
        if arms is not None:
            arms.stop()
        for proc in procs:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "facts": facts}))
    _report(results, facts, args)
    return 0


Runs = dict[str, dict[str, list[list[float]]]]
"""arm → workload → per round, the batch figures."""


def _measure(client: subprocess.Popen[str], arms: _Arms, args: argparse.Namespace) -> Runs:
    work = [f"{k} {s} B" for s in SIZES for k in ("write", "read")]
    runs: Runs = {arm: {} for arm in ARMS}
    started = time.monotonic()
    for round_no in range(args.rounds):
        for arm in ARMS[round_no % 3 :] + ARMS[: round_no % 3]:
            arms.set(arm, on=True)
            try:
                got = _ask(client, {"op": "run", "work": work, "batches": args.batches,
                                    "bulk_mib": args.bulk_mib})  # fmt: skip
            finally:
                arms.set(arm, on=False)
            for key, values in got.items():
                runs[arm].setdefault(key, []).append(values)
        took = time.monotonic() - started
        print(f"round {round_no + 1}/{args.rounds} ({took:.0f} s)", file=sys.stderr)
    return runs


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return q1, q2, q3


def _added(runs: Runs, arm: str, key: str, per: Any) -> tuple[float, float, float]:
    # Paired by round: (arm - none) from blocks minutes apart would carry drift.
    diffs = [
        per(statistics.median(a)) - per(statistics.median(n))
        for a, n in zip(runs[arm][key], runs["none"][key], strict=True)
    ]
    return _quartiles(diffs)


def _machine() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, {model}, kernel {os.uname().release}, load {load}"


def _us_per_mib(mib_s: float) -> float:
    return 1e6 / mib_s


def _low(runs: Runs, arm: str, key: str, q: int) -> float:
    # Other load only ever adds time: a low quantile of all batches is the undisturbed cost.
    return statistics.quantiles([v for b in runs[arm][key] for v in b], n=10)[q - 1]


def _report(runs: Runs, facts: dict[str, Any], args: argparse.Namespace) -> None:
    us = 1000.0
    print(f"\nmachine: {_machine()}")
    print(f"{args.rounds} rounds x {args.batches} batches per arm and workload; a batch is "
          f"<= {_BATCH_CALLS} calls, <= {_WRITE_BYTES >> 20} MiB written or "
          f"{_READ_BYTES >> 20} MiB read; µs per call")  # fmt: skip
    print(
        "  none: median [q1..q3] of batch means; +arm: median [q1..q3] over rounds of "
        "(arm - none) in the same round; p10: 10th percentiles of all batches, arm - none"
    )
    print(f"\n{'workload':14s} {'calls':>5s} {'none':>19s} {'+floor':>19s} {'+lumen':>19s} "
          f"{'lumen/floor':>11s} {'p10 +floor':>10s} {'+lumen':>6s} {'ratio':>5s}")  # fmt: skip
    for key in runs["none"]:
        if key.startswith("bulk"):
            continue
        n1, n2, n3 = (v / us for v in _quartiles([v for b in runs["none"][key] for v in b]))
        f1, f2, f3 = (v / us for v in _added(runs, "floor", key, float))
        l1, l2, l3 = (v / us for v in _added(runs, "lumen", key, float))
        # n/a: the floor's effect is not resolved (its spread reaches zero).
        ratio = f"{l2 / f2:11.2f}" if f1 > 0 else f"{'n/a':>11s}"
        low = {arm: _low(runs, arm, key, 1) / us for arm in ARMS}
        pf, pl = low["floor"] - low["none"], low["lumen"] - low["none"]
        pratio = f"{pl / pf:5.2f}" if f1 > 0 and pf > 0 else f"{'n/a':>5s}"
        calls = _calls(key.split()[0], int(key.split()[1]))
        print(f"{key:14s} {calls:5d} {n2:6.1f} [{n1:5.1f}..{n3:5.1f}] "
              f"{f2:6.1f} [{f1:5.1f}..{f3:5.1f}] {l2:6.1f} [{l1:5.1f}..{l3:5.1f}] {ratio} "
              f"{pf:10.1f} {pl:6.1f} {pratio}")  # fmt: skip
    key = "bulk MiB/s"
    thr = {arm: _quartiles([v for b in runs[arm][key] for v in b]) for arm in ARMS}
    f1, f2, f3 = _added(runs, "floor", key, _us_per_mib)
    l1, l2, l3 = _added(runs, "lumen", key, _us_per_mib)
    print(
        f"\nbulk TLS download ({args.bulk_mib} MiB, 16 KiB records, {args.rounds} per arm), "
        "MiB/s: " + ", ".join(f"{a} {q[1]:.0f} [{q[0]:.0f}..{q[2]:.0f}]" for a, q in thr.items())
    )
    ratio = f"{l2 / f2:.2f}" if f2 > 0 else "n/a"
    print(f"  added µs per 16 KiB record: floor {f2 / 64:.1f} [{f1 / 64:.1f}..{f3 / 64:.1f}], "
          f"lumen {l2 / 64:.1f} [{l1 / 64:.1f}..{l3 / 64:.1f}], lumen/floor {ratio}")  # fmt: skip
    high = {arm: _us_per_mib(_low(runs, arm, key, 9)) / 64 for arm in ARMS}  # p90 of MiB/s
    pf, pl = high["floor"] - high["none"], high["lumen"] - high["none"]
    print(f"  from p90 MiB/s: floor {pf:.1f}, lumen {pl:.1f}, "
          f"lumen/floor {pl / pf if pf > 0 else float('nan'):.2f}")  # fmt: skip
    drops = {reason: n for reason, n in facts["dropped"].items() if n}
    print(f"lumen arm: connections judged and ignored {facts['ignored']}/{facts['conns']}, "
          f"records copied {facts['records']}, drops {drops or 'none'}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
