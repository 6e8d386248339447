"""What discovery costs on this machine: import, the first scan of every process, a rescan.

Prints, for this checkout and (``--baseline DIR``) another source tree, alternately
in fresh interpreters so both see the same load:

- *import*: ``lumen_sniff.capture.bpf.discovery`` and what it pulls in;
- *first scan*: ``Discovery.scan_all()`` (every process and the system TLS
  libraries, each file judged), with the number of processes and the slowest files;
- *rescan of a known process*: ``scan_pid`` of every process again (what an exec
  of a program already judged costs), median per process;
- *RSS* of the interpreter after all that.

Run as root (other users' /proc/PID/maps are unreadable otherwise):
``.venv/bin/python bench/discovery.py [--runs 3] [--baseline DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_PROBE = r"""
import json, os, statistics, sys, time
t0 = time.perf_counter()
import lumen_sniff.capture.bpf.discovery as dm
imported = time.perf_counter() - t0
judged = []
original = dm._judge_file
def timed(path, key, kind, libraries):
    started = time.perf_counter()
    target = original(path, key, kind, libraries)
    judged.append((time.perf_counter() - started, path))
    return target
dm._judge_file = timed
discovery = dm.Discovery(exclude_pids=(os.getpid(),))
t0 = time.perf_counter()
discovery.scan_all()
first = time.perf_counter() - t0
pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
rescans = []
for _ in range(5):
    t0 = time.perf_counter()
    for pid in pids:
        discovery.scan_pid(pid)
    rescans.append((time.perf_counter() - t0) / len(pids))
rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
print(json.dumps({
    "import_s": imported, "first_s": first, "pids": len(pids), "files": len(judged),
    "rescan_s": statistics.median(rescans), "rss_mb": rss / 2**20,
    "slowest": sorted(judged, reverse=True)[:3],
}))
"""


def _run(src: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=src, env=env,
        check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None)
    args = parser.parse_args()
    arms = {"this": REPO}
    if args.baseline is not None:
        arms["baseline"] = args.baseline.resolve()
    results: dict[str, list[dict[str, object]]] = {arm: [] for arm in arms}
    loads = [os.getloadavg()[0]]
    for _ in range(args.runs):
        for arm, src in arms.items():
            results[arm].append(_run(src))
            loads.append(os.getloadavg()[0])
    for arm, runs in results.items():

        def med(key: str, runs: list[dict[str, object]] = runs) -> float:
            return statistics.median(float(r[key]) for r in runs)  # type: ignore[arg-type]

        print(
            f"{arm:>9}: import {1000 * med('import_s'):.0f} ms, first scan "
            f"{1000 * med('first_s'):.0f} ms ({med('pids'):.0f} processes, "
            f"{med('files'):.0f} files judged), rescan of a known process "
            f"{1e6 * med('rescan_s'):.0f} us, RSS {med('rss_mb'):.0f} MB (n={len(runs)})"
        )
        for seconds, path in runs[-1]["slowest"]:  # type: ignore[attr-defined]
            print(f"{'':>11}{1000 * seconds:7.1f} ms  {path}")
    print(f"load average (1 min): {min(loads):.1f}-{max(loads):.1f}")


if __name__ == "__main__":
    main()
