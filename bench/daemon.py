"""The daemon's footprint, end to end: real TLS calls through ``lumen-sniff run``.

Prints the rows of issue 12's table that one machine can measure:

- *ready*: seconds from ``Popen`` until ``/api/status`` says ``"ready": true``:
  the first start on an empty BPF object cache (*cold*: the programs compile in
  child processes), then the median of the other ``--starts`` (*warm*: the
  compiled objects come from the cache);
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

- *throughput* (``--throughput-s``, 0 skips it): the daemon alone on the first
  CPU (``sched_setaffinity``), capturing only ``--comm loadgen``; the C OpenSSL
  load generator of ``bench/daemon_load.py`` and its server on the last CPU,
  keep-alive, ``--conns`` connections, each ``--rates`` offered calls/s in turn
  (0 = flat out). Per round: calls/s made, stored/made, drops, daemon CPU per
  call (and net of the CPU it burnt idle just before: other work on the machine
  runs discovery), and the share of its core. The generator's own ceiling (both
  ends on one CPU, no daemon) is printed first, then its ceiling with the probes
  attached but nothing captured (a daemon with ``--comm`` matching no process:
  every probe bails at its first lookup): a rate above that cannot be offered, and
  the gap between the two is the uprobe traps' own cost on the generator's CPU.
  ``--only-throughput`` runs this phase alone.

The daemon watches the whole machine: other work on a shared VM adds to its CPU
(the figures are medians over rounds for that reason), and another lumen-sniff
daemon's probes slow our clients (the script prints how many run). Run as root:
``.venv/bin/python bench/daemon.py [--rounds 3] [--phase-s 15] [--rest 30]
[--throughput-s 10 --rates 0,2000]``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
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
from tests.support.daemonproc import Daemon, start_daemon  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))

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


def thread_cpu_s(pid: int) -> dict[int, float]:
    """user+system seconds per thread of ``pid``."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = cpu_s_of(task / "stat")
        except (OSError, ValueError):
            continue
    return out


def _thread_name(pid: int, tid: int) -> str:
    if tid == pid:
        return "event-loop"
    try:
        return Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
    except OSError:
        return "?"


def cpu_s_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
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


def start(
    tmp: Path, cache: Path | None = None, *, extra: tuple[str, ...] = (), cpu: int | None = None
) -> Daemon:
    """A ``lumen-sniff run`` of this checkout, on a private db, port and object cache."""
    tmp.mkdir(parents=True, exist_ok=True)
    # Without a cache dir of its own the daemon uses the default (/var/cache/lumen-sniff).
    config = f'[capture]\nbpf_cache_dir = "{cache}"\n' if cache else ""
    (tmp / "none.toml").write_text(config)
    return start_daemon(
        tmp / "state" / "lumen.db", tmp / "daemon.log", *extra,
        config=tmp / "none.toml", poll_s=0.01, cpu=cpu,
    )  # fmt: skip


def _bpf(status: dict[str, Any]) -> dict[str, Any]:
    return status["capture"]["backends"]["BpfCapture"]  # type: ignore[no-any-return]


def drops(status: dict[str, Any]) -> int:
    # The capture's total over its backends (the eBPF backend's own counters included
    # once: adding them again counted every drop twice).
    return int(sum(status["capture"]["dropped"].values()))


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


def other_daemons() -> int:
    """Other ``lumen-sniff run`` processes: their probes tax our clients too."""
    count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (b"lumen_sniff" in argv and b"run" in argv) or any(
                a.endswith(b"/lumen-sniff") for a in argv[:2]):
            count += 1
    return count


def _stored(daemon: Daemon) -> int:
    # Read from the database file, not /api/status: a status answer costs the daemon
    # milliseconds of CPU (maps read, files listed), which would count against the calls.
    import sqlite3

    with sqlite3.connect(f"file:{daemon.db}?mode=ro", uri=True, timeout=10) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def throughput(tmp: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Calls/s the daemon, alone on one CPU, keeps up with (``bench/daemon_load.py``).

    The C generator and its server run on the other CPU; the daemon captures the
    client only (``--comm loadgen``), so CPU per call is one side of each call.
    The first rows are the generator's own ceiling, measured before the daemon
    starts, and its ceiling with the probes attached and nothing captured.
    """
    from daemon_load import loadgen

    cpus = sorted(os.sched_getaffinity(0))
    daemon_cpu, load_cpu = cpus[0], cpus[-1]
    rows: list[dict[str, Any]] = []
    with loadgen(tmp / "loadgen", cpu=load_cpu) as gen:
        ceiling = gen.run(args.throughput_s, args.conns)
        rows.append({"rate": 0, "calls": ceiling.calls, "made_per_s": ceiling.calls
                     / ceiling.seconds, "daemon": False})
        # The same daemon, its probes on every libssl, capturing no process: the
        # highest rate a hooked generator on one CPU can offer at all.
        probes_only = start(tmp / "probes-only", tmp / "bpf-cache",
                            extra=("--comm", "lumen-nomatch"), cpu=daemon_cpu)
        try:
            time.sleep(args.settle)
            floor = gen.run(args.throughput_s, args.conns)
        finally:
            probes_only.stop()
        rows.append({"rate": 0, "calls": floor.calls, "made_per_s": floor.calls
                     / floor.seconds, "daemon": False, "probes_only": True})
        daemon = start(
            tmp / "throughput", tmp / "bpf-cache", extra=("--comm", "loadgen"), cpu=daemon_cpu
        )
        try:
            time.sleep(args.settle)
            idle_before = cpu_s(daemon.proc.pid)
            time.sleep(5.0)
            idle_per_s = (cpu_s(daemon.proc.pid) - idle_before) / 5.0
            for rate in args.rates:
                rows.append(_throughput_round(daemon, gen, rate, idle_per_s, args))
        finally:
            daemon.stop()
    return rows


def _throughput_round(daemon: Daemon, gen: Any, rate: float, idle_per_s: float,
                      args: argparse.Namespace) -> dict[str, Any]:
    status0 = daemon.status()
    drops0, stored0 = drops(status0), _stored(daemon)
    cpu0, t0 = cpu_s(daemon.proc.pid), time.monotonic()
    threads0 = thread_cpu_s(daemon.proc.pid)
    made = gen.run(args.throughput_s, args.conns, rate)
    # Until every call is stored, or the count stops growing (drops: it never will).
    last, still = -1, time.monotonic()
    while time.monotonic() - still < 2.0:
        stored = _stored(daemon) - stored0
        if stored >= made.calls:
            break
        if stored != last:
            last, still = stored, time.monotonic()
        time.sleep(0.1)
    busy_s = time.monotonic() - t0
    cpu = cpu_s(daemon.proc.pid) - cpu0
    threads = thread_cpu_s(daemon.proc.pid)
    # The main thread runs the event loop (pipeline, store, API); the ring reader
    # names itself (lumen-bpf-ring); SQLite's and discovery's threads are "python".
    per_thread = sorted(((threads[t] - threads0.get(t, 0.0), _thread_name(daemon.proc.pid, t))
                         for t in threads), reverse=True)
    status = daemon.status()
    records = (_bpf(status)["counters"]["records"] - _bpf(status0)["counters"]["records"])
    # The reader's CPU per record read holds even when records were dropped (a
    # starved core): the builds before the reader named its thread have it as the
    # busiest thread after the event loop.
    ring = next((cpu for cpu, name in per_thread if name == "lumen-bpf-ring"),
                next((cpu for cpu, name in per_thread if name != "event-loop"), 0.0))
    # By reason: ringbuf_full is a reader that fell behind (or was starved of its
    # core), queue_full a pipeline that did.
    by_reason = {k: v - status0["capture"]["dropped"].get(k, 0)
                 for k, v in status["capture"]["dropped"].items()}
    return {"drop_reasons": {k: v for k, v in by_reason.items() if v}, "rate": rate,
            "records": records, "ring_us_per_record": ring * 1e6 / max(1, records),
            "calls": made.calls, "made_per_s": made.calls / made.seconds,
            "stored": _stored(daemon) - stored0, "drops": drops(status) - drops0,
            "cpu_ms_per_call": cpu * 1000 / max(1, made.calls),
            "net_cpu_ms_per_call": (cpu - idle_per_s * busy_s) * 1000 / max(1, made.calls),
            "daemon_cpu_pct": cpu * 100 / made.seconds, "daemon": True,
            "thread_ms_per_call": [(n, t * 1000 / max(1, made.calls)) for t, n in per_thread[:4]]}


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
    parser.add_argument("--throughput-s", type=float, default=10.0,
                        help="seconds per throughput round (0: no throughput phase)")
    parser.add_argument("--rates", type=lambda v: [float(x) for x in v.split(",")],
                        default=[0.0, 2000.0], help="offered calls/s per round, 0 = flat out")
    parser.add_argument("--conns", type=int, default=8, help="generator connections")
    parser.add_argument("--only-throughput", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    # As an install leaves it (`make setup` runs `lumen-sniff warm`): byte-compiled.
    # Without it, a PYTHONDONTWRITEBYTECODE environment compiles every module of the
    # package at each start (0.13 s of ready here).
    compileall.compile_dir(REPO / "lumen_sniff", quiet=1)
    print(f"machine: {machine()}")
    print(f"load average: {os.getloadavg()[0]:.2f}; other lumen-sniff daemons: "
          f"{other_daemons()}")
    if args.only_throughput:
        with tempfile.TemporaryDirectory() as tmp_:
            print_throughput(throughput(Path(tmp_), args))
        return 0
    with tempfile.TemporaryDirectory() as tmp_, tempfile.TemporaryDirectory() as ca_dir, \
            spawn_server("tests.support.standin", "--tls", "--port", "0",
                         "--ca-dir", ca_dir) as server:
        tmp = Path(tmp_)
        readies = []
        for i in range(args.starts - 1):
            d = start(tmp / f"s{i}", tmp / "bpf-cache")
            readies.append(d.ready_s)
            d.stop()
        daemon = start(tmp / "main", tmp / "bpf-cache")
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
        ("ready after start, cold (s)", f"{readies[0]:.2f}", "empty BPF object cache"),
        ("ready after start, warm (s)", f"{statistics.median(readies[1:] or readies):.2f}",
         " ".join(f"{r:.2f}" for r in readies[1:])),
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
    if args.throughput_s > 0:
        with tempfile.TemporaryDirectory() as tmp_:
            tput = throughput(Path(tmp_), args)
        print_throughput(tput)
    if args.json:
        args.json.write_text(json.dumps({"ready": readies, "rest_mem": rest_mem,
                                         "rest_cpu": rest_cpu, "plain": plain, "fed": fed,
                                         "upload": upload, "load_mem": load_mem}))
    return 0


def print_throughput(rows: list[dict[str, Any]]) -> None:
    print("throughput: C OpenSSL client + server on one CPU, daemon alone on the other, "
          "--comm loadgen")
    for r in rows:
        offered = f"{r['rate']:.0f}/s" if r["rate"] else "flat out"
        if not r["daemon"]:
            what = ("probes attached, nothing captured" if r.get("probes_only")
                    else "no daemon")
            print(f"  generator ceiling, {what} ({offered}): {r['made_per_s']:.0f} calls/s")
            continue
        print(f"  offered {offered:>8}: made {r['made_per_s']:6.0f} calls/s, stored "
              f"{r['stored']}/{r['calls']}, drops {r['drops']} {r.get('drop_reasons') or ''}, "
              f"daemon CPU "
              f"{r['cpu_ms_per_call']:.3f} ms/call ({r['net_cpu_ms_per_call']:.3f} net of "
              f"idle), {r['daemon_cpu_pct']:.0f}% of its core; busiest threads "
              + ", ".join(f"{n} {t:.3f}" for n, t in r["thread_ms_per_call"]) + " ms/call; "
              f"ring reader {r['ring_us_per_record']:.2f} us per record read ({r['records']})")


if __name__ == "__main__":
    raise SystemExit(main())
