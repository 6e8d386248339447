"""Start-up and rest footprint of ``lumen-sniff run``, arm against arm.

For each start of the real daemon (``--capture bpf``, private db and port) prints:

- *ready*: seconds from ``Popen`` until ``/api/status`` says ``"ready": true``,
  and the daemon's CPU seconds (user+system) spent by then;
- *memory at rest*: RSS, PSS and USS (``/proc/PID/smaps_rollup``) after ``--settle``
  seconds, the thread count, and (``--maps``) the largest mappings by RSS;
- *CPU at rest*: over ``--rest`` seconds, the whole process's CPU as % of one core,
  and per thread (``/proc/PID/task/*``) its CPU and wake-ups per second
  (voluntary context switches), named by ``py-spy dump`` when py-spy is installed.

``--baseline DIR`` alternates each start with one of another source tree (say
``git archive main lumen_sniff bpf | tar -x -C DIR``) run with the same venv, so
both arms see the same machine load; medians per arm and the load average are
printed. ``--profile-start`` adds one start under ``python -X importtime`` and
prints the slowest imports (cumulative, top levels).

Run as root: ``.venv/bin/python bench/startup.py [--starts 3] [--rest 20]``.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_s(path: str) -> float:
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _memory_mb(pid: int) -> dict[str, float]:
    kb: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        kb[name] = int(value.split()[0])
    uss = kb["Private_Clean"] + kb["Private_Dirty"]
    return {"rss": kb["Rss"] / 1024, "pss": kb["Pss"] / 1024, "uss": uss / 1024}


def _largest_maps(pid: int, n: int = 8) -> list[tuple[float, str]]:
    sizes: dict[str, int] = {}
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(None, 5)
        if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
            name = head[5].strip() if len(head) > 5 else "[anon]"
        elif line.startswith("Rss:"):
            sizes[name] = sizes.get(name, 0) + int(line.split()[1])
    return sorted(((kb / 1024, nm) for nm, kb in sizes.items()), reverse=True)[:n]


def _threads(pid: int) -> dict[int, tuple[float, int]]:
    """tid -> (cpu seconds, voluntary context switches)."""
    out: dict[int, tuple[float, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            cpu = _cpu_s(f"{task}/stat")
            status = (task / "status").read_text()
        except OSError:
            continue
        switches = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("voluntary_")
        )
        out[int(task.name)] = (cpu, switches)
    return out


def _thread_names(pid: int) -> dict[int, str]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {}
    proc = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True)
    names: dict[int, str] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("Thread "):
            tid, _, rest = line[7:].partition(" ")
            if tid.isdigit():
                names[int(tid)] = rest.split('"')[1] if '"' in rest else rest
    return names


class Start:
    """One daemon started from ``src`` until ready, measured, then stopped."""

    def __init__(
        self,
        src: Path,
        tmp: Path,
        extra: tuple[str, ...] = (),
        args: tuple[str, ...] = (),
        cache: Path | None = None,
    ) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        # A private object cache: the shared default holds a few entries per program,
        # so other checkouts' daemons on the machine evict ours and a "warm" start
        # would compile.
        (tmp / "none.toml").write_text(f'[capture]\nbpf_cache_dir = "{cache}"\n' if cache else "")
        port = _free_port()
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.log = tmp / "daemon.log"
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, *extra, "-m", "lumen_sniff", "run", "--capture", "bpf",
             "--db", str(tmp / "state" / "lumen.db"), "--listen", f"127.0.0.1:{port}",
             "--config", str(tmp / "none.toml"), *args],
            stdout=self.log.open("a"), stderr=subprocess.STDOUT, cwd=src, env=env,
        )  # fmt: skip
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"daemon exited: {self.log.read_text()[-2000:]}")
            try:
                if http.get("/api/status").json()["ready"]:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        self.ready_s = time.monotonic() - started
        self.ready_cpu_s = _cpu_s(f"/proc/{self.proc.pid}/stat")
        http.close()

    def rest(self, settle_s: float, rest_s: float, maps: bool) -> dict[str, Any]:
        pid = self.proc.pid
        time.sleep(settle_s)
        memory = _memory_mb(pid)
        before, cpu0, t0 = _threads(pid), _cpu_s(f"/proc/{pid}/stat"), time.monotonic()
        time.sleep(rest_s)
        after, cpu1, t1 = _threads(pid), _cpu_s(f"/proc/{pid}/stat"), time.monotonic()
        names = _thread_names(pid)
        span = t1 - t0
        per_thread = sorted(
            (
                (100 * (after[tid][0] - before[tid][0]) / span,
                 (after[tid][1] - before[tid][1]) / span, names.get(tid, str(tid)))
                for tid in after if tid in before
            ),
            reverse=True,
        )  # fmt: skip
        return {
            **memory,
            "threads": len(after),
            "cpu_pct": 100 * (cpu1 - cpu0) / span,
            "per_thread": per_thread,
            "maps": _largest_maps(pid) if maps else [],
        }

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)


def _import_profile(src: Path, tmp: Path, top: int, cache: Path) -> None:
    start = Start(src, tmp, ("-X", "importtime"), cache=cache)
    start.stop()
    rows: list[tuple[int, str]] = []
    for line in start.log.read_text().splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cumulative, name = line.split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        if depth <= 2:
            rows.append((int(cumulative), name.strip()))
    print(f"\nslowest imports ({src.name}), cumulative ms, top levels:")
    for us, name in sorted(rows, reverse=True)[:top]:
        print(f"  {us / 1000:8.1f}  {name}")


def _report(arm: str, runs: list[dict[str, Any]]) -> None:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    readies = ", ".join(f"{r['ready_s']:.1f}" for r in runs)
    print(
        f"{arm:>9}: ready {med('ready_s'):.2f} s (cpu {med('ready_cpu_s'):.2f} s), "
        f"RSS/PSS/USS {med('rss'):.0f}/{med('pss'):.0f}/{med('uss'):.0f} MB, "
        f"{med('threads'):.0f} threads, CPU at rest {med('cpu_pct'):.2f} % "
        f"(n={len(runs)}; ready {readies})"
    )
    last = runs[-1]
    for pct, wakeups, name in last["per_thread"]:
        print(f"{'':>11}{name:<24} {pct:6.2f} %  {wakeups:7.1f} wake-ups/s")
    for mb, name in last["maps"]:
        print(f"{'':>11}{mb:7.1f} MB  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=3, help="starts per arm")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--rest", type=float, default=20.0, help="seconds of CPU at rest")
    parser.add_argument("--baseline", type=Path, default=None, help="source tree to compare")
    parser.add_argument("--maps", action="store_true", help="largest mappings by RSS")
    parser.add_argument("--profile-start", action="store_true", help="import-time breakdown")
    parser.add_argument(
        "--daemon-arg", action="append", default=[],
        help="extra argument for `run` (repeat); on a shared machine, "
        "--daemon-arg=--comm --daemon-arg=none keeps others' TLS traffic out of 'at rest'",
    )  # fmt: skip
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (eBPF capture)")
    arms = {"this": REPO}
    if args.baseline is not None:
        arms["baseline"] = args.baseline.resolve()
    for src in arms.values():  # as `make setup` (`lumen-sniff warm`) leaves a tree
        compileall.compile_dir(src / "lumen_sniff", quiet=1)
    results: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="lumen-startup-") as tmp:
        caches = {arm: Path(tmp) / f"bpf-cache-{arm}" for arm in arms}
        for arm, src in arms.items():  # untimed: fills the arm's object cache
            Start(
                src, Path(tmp) / f"{arm}-cold", args=tuple(args.daemon_arg), cache=caches[arm]
            ).stop()
        for i in range(args.starts):
            for arm, src in arms.items():
                start = Start(
                    src, Path(tmp) / f"{arm}-{i}", args=tuple(args.daemon_arg), cache=caches[arm]
                )
                try:
                    rest = start.rest(args.settle, args.rest, args.maps)
                finally:
                    start.stop()
                results[arm].append(
                    {"ready_s": start.ready_s, "ready_cpu_s": start.ready_cpu_s, **rest}
                )
                loads.append(os.getloadavg()[0])
        for arm, runs in results.items():
            _report(arm, runs)
        print(f"load average (1 min) during the run: {min(loads):.1f}-{max(loads):.1f}")
        if args.profile_start:
            for arm, src in arms.items():
                _import_profile(src, Path(tmp) / f"{arm}-importtime", top=20, cache=caches[arm])


if __name__ == "__main__":
    main()
