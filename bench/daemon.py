"""The daemon's footprint, end to end: real TLS calls through ``lumen-sniff run``.

Prints the rows of issue 12's table that one machine can measure:

- *ready*: seconds from ``Popen`` until ``/api/status`` says ``"ready": true``
  (median of ``--starts`` starts);
- *memory at rest*: RSS, PSS and USS (``/proc/PID/smaps_rollup``) after the
  daemon has settled, and the peak RSS (``VmHWM``) after the load;
- *CPU at rest*: the daemon's user+system time over ``--rest`` seconds with no
  traffic of ours, as % of one core;
- *under load*: ``--clients`` real Python ``ssl`` clients (``bench/daemon_client.py``)
  rotate OpenAI chat and Anthropic messages, plain and streamed, against the
  stand-in (``tests.support.standin``, TLS). Rounds alternate two phases:
  without a live-feed listener (daemon CPU per call) and with one (``/api/live``:
  each event's arrival, matched per client pid in call order, minus the client's
  response end = *event visible after response end*, and stored/calls);
- *drops*: the daemon's ``dropped`` counters before/after;
- *non-LLM bulk upload*: a ``PUT /bucket/backup-0001.tar`` to host
  ``objects.internal`` of ``--upload-mib`` MiB in 16 KiB TLS writes; the bytes
  the BPF programs copied to the ring buffer meanwhile (client and stand-in are
  both hooked, so both ends count), their share of the transfer, and what the
  kernel's copy budget left uncopied.

The daemon watches the whole machine: other work on a shared VM adds to its CPU
(the figures are medians over rounds for that reason). Run as root:
``.venv/bin/python bench/daemon.py [--rounds 3] [--phase-s 15] [--rest 30]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
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
from urllib.parse import urlsplit

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.bpfcap import spawn_server  # noqa: E402
from tests.support.daemonproc import free_port  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def machine() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (f"{os.cpu_count()} vCPU {model}, {mem_kb // 1024} MiB, "
            f"Linux {platform.release()}, Python {platform.python_version()}")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def memory_mb(pid: int) -> dict[str, float]:
    kb: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        kb[name] = int(value.split()[0])
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            kb["HWM"] = int(line.split()[1])
    uss = kb["Private_Clean"] + kb["Private_Dirty"]
    return {"rss": kb["Rss"] / 1024, "pss": kb["Pss"] / 1024, "uss": uss / 1024,
            "peak": kb["HWM"] / 1024}


class Daemon:
    """A ``lumen-sniff run`` of this checkout, on a private db and port."""

    def __init__(self, tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "none.toml").write_text("")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lumen_sniff", "run", "--capture", "bpf",
             "--db", str(tmp / "state" / "lumen.db"), "--listen", f"127.0.0.1:{port}",
             "--config", str(tmp / "none.toml")],
            stdout=(tmp / "daemon.log").open("a"), stderr=subprocess.STDOUT, cwd=REPO,
        )
        self.http = httpx.Client(base_url=self.url, timeout=10)
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"daemon exited: {(tmp / 'daemon.log').read_text()[-2000:]}")
            try:
                if self.http.get("/api/status").json()["ready"]:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        self.ready_s = time.monotonic() - started

    def status(self) -> dict[str, Any]:
        return self.http.get("/api/status").json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.http.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def _bpf(status: dict[str, Any]) -> dict[str, Any]:
    return status["capture"]["backends"]["BpfCapture"]  # type: ignore[no-any-return]


def drops(status: dict[str, Any]) -> int:
    total = sum(_bpf(status)["dropped"].values()) + sum(status["capture"]["dropped"].values())
    return int(total)


class LiveFeed(threading.Thread):
    """Arrival time of every ``/api/live`` event, per pid."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.arrivals: dict[int, list[float]] = {}
        self.subscribed = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.stream("GET", self.url + "/api/live", timeout=None) as response:
            for line in response.iter_lines():
                if line.startswith(": subscribed"):
                    self.subscribed.set()
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    self.arrivals.setdefault(event["pid"], []).append(time.time())
                if self.stop.is_set():
                    return


def run_clients(info: dict[str, Any], n: int, seconds: float) -> dict[int, list[float]]:
    procs = [
        subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "daemon_client.py"), info["base_url"],
             info["ca"], str(seconds)], stdout=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    ends = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 120)
        result = json.loads(out.strip().splitlines()[-1])
        if "ends" not in result:
            raise SystemExit(f"client failed: {result}")
        ends[proc.pid] = result["ends"]
    return ends


def load_phase(daemon: Daemon, info: dict[str, Any], args: argparse.Namespace,
               *, feed: bool) -> dict[str, Any]:
    live = LiveFeed(daemon.url) if feed else None
    if live is not None:
        live.start()
        live.subscribed.wait(10)
    before_s = daemon.status()
    before = cpu_s(daemon.proc.pid)
    started = time.monotonic()
    ends = run_clients(info, args.clients, args.phase_s)
    calls = sum(len(v) for v in ends.values())
    out: dict[str, Any] = {"calls": calls, "rate": calls / (time.monotonic() - started)}
    # Let the last events through before reading the CPU and counters.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done = live is None or all(len(live.arrivals.get(p, [])) >= len(e)
                                   for p, e in ends.items())
        if done and daemon.status()["capture"]["backends"]["BpfCapture"]["queue_depth"] == 0:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    out["cpu_ms_per_call"] = (cpu_s(daemon.proc.pid) - before) * 1000 / calls
    out["drops"] = drops(daemon.status()) - drops(before_s)
    if live is not None:
        live.stop.set()
        lat, stored = [], 0
        for pid, client_ends in ends.items():
            got = live.arrivals.get(pid, [])
            stored += min(len(got), len(client_ends))
            lat += [(a - e) * 1000 for a, e in zip(got, client_ends, strict=False)]
        out["stored"] = stored
        out["latency_ms"] = lat
    return out


def bulk_upload(daemon: Daemon, info: dict[str, Any], mib: int) -> dict[str, float]:
    url = urlsplit(info["base_url"])
    ctx = ssl.create_default_context(cafile=info["ca"])
    size = mib * 1024 * 1024
    block = b"\0" * 16384
    before = _bpf(daemon.status())
    with socket.create_connection((url.hostname, url.port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"PUT /bucket/backup-0001.tar HTTP/1.1\r\nHost: objects.internal\r\n"
                    b"Content-Type: application/x-tar\r\n"
                    + f"Content-Length: {size}\r\n\r\n".encode())
        for _ in range(size // len(block)):
            tls.sendall(block)
        tls.recv(65536)
    time.sleep(1.0)
    after = _bpf(daemon.status())
    copied = after["counters"].get("bytes", 0) - before["counters"].get("bytes", 0)
    lost = sum(after["dropped_bytes"].values()) - sum(before["dropped_bytes"].values())
    records = after["counters"].get("records", 0) - before["counters"].get("records", 0)
    skipped = (after.get("budget_skipped", {}).get("bytes", 0)
               - before.get("budget_skipped", {}).get("bytes", 0))  # the kernel's copy budget
    return {"copied_mb": copied / 1e6, "dropped_mb": lost / 1e6, "records": records,
            "share": (copied + lost) / (2 * size), "budget_mb": skipped / 1e6}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--rest", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phase-s", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--upload-mib", type=int, default=64)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp_, tempfile.TemporaryDirectory() as ca_dir, \
            spawn_server("tests.support.standin", "--tls", "--port", "0",
                         "--ca-dir", ca_dir) as server:
        tmp = Path(tmp_)
        readies = []
        for i in range(args.starts - 1):
            d = Daemon(tmp / f"s{i}")
            readies.append(d.ready_s)
            d.stop()
        daemon = Daemon(tmp / "main")
        readies.append(daemon.ready_s)
        time.sleep(args.settle)
        rest_mem = memory_mb(daemon.proc.pid)
        before = cpu_s(daemon.proc.pid)
        time.sleep(args.rest)
        rest_cpu = (cpu_s(daemon.proc.pid) - before) * 100 / args.rest
        plain, fed = [], []
        for _ in range(args.rounds):
            plain.append(load_phase(daemon, server.info, args, feed=False))
            fed.append(load_phase(daemon, server.info, args, feed=True))
        upload = bulk_upload(daemon, server.info, args.upload_mib)
        load_mem = memory_mb(daemon.proc.pid)
        daemon.stop()
    lat = [x for r in fed for x in r["latency_ms"]]
    rows = [
        ("ready after start (s)", f"{statistics.median(readies):.2f}",
         " ".join(f"{r:.2f}" for r in readies)),
        ("RSS / PSS / USS at rest (MB)",
         f"{rest_mem['rss']:.0f} / {rest_mem['pss']:.0f} / {rest_mem['uss']:.0f}", ""),
        ("peak RSS after load (MB)", f"{load_mem['peak']:.0f}", f"RSS now {load_mem['rss']:.0f}"),
        ("CPU at rest (% of a core)", f"{rest_cpu:.2f}", f"over {args.rest:.0f} s"),
        ("daemon CPU per call (ms)",
         f"{statistics.median(r['cpu_ms_per_call'] for r in plain):.2f}",
         " ".join(f"{r['cpu_ms_per_call']:.2f}@{r['rate']:.0f}/s" for r in plain)),
        ("calls stored / made (with feed)",
         f"{sum(r['stored'] for r in fed)} / {sum(r['calls'] for r in fed)}", ""),
        ("drops during load", f"{sum(r['drops'] for r in plain + fed)}", ""),
        ("event visible after response end p50 / p95 (ms)",
         f"{pct(lat, 0.5):.0f} / {pct(lat, 0.95):.0f}", f"{len(lat)} calls"),
        (f"non-LLM {args.upload_mib} MiB upload: copied (KiB)",
         f"{upload['copied_mb'] * 1e6 / 1024:.0f}",
         f"{upload['records']} records, {upload['share']:.1%} of both ends' bytes, "
         f"{upload['dropped_mb']:.1f} MB dropped, {upload['budget_mb']:.1f} MB over budget"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>14}  {note}")
    if args.json:
        args.json.write_text(json.dumps({"ready": readies, "rest_mem": rest_mem,
                                         "rest_cpu": rest_cpu, "plain": plain, "fed": fed,
                                         "upload": upload, "load_mem": load_mem}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
