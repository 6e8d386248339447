"""The soak: the real daemon under a steady load of real TLS calls for an hour.

Issue 12's row "RSS after 1 hour at 100 calls/s: ≤ 150 MB, no growth trend" and
its "1-hour soak shows zero drops and a flat RSS". ``lumen-sniff run`` starts as
in ``bench/daemon.py`` (its helpers, private db and port); ``--clients`` paced
clients (``bench/soak_client.py``, real Python ``ssl``) share ``--rate`` calls/s
of OpenAI and Anthropic calls, plain and streamed, against the TLS stand-in
(``tests.support.standin``) for ``--minutes``. Every ``--sample-s`` seconds one
row: the daemon's RSS, PSS and USS (``smaps_rollup``), its CPU over the interval
(% of a core and ms per call), calls made (answered 200) and stored (rows of the
clients' pids in the daemon's db), client errors, drops by reason (capture and
store), the capture queue depth (and ring fill, where the daemon reports one),
threads, open fds, and the machine's load average.

At the end: the table, the RSS trend (least-squares slope over the second half
of the soak, MB/h, and first-vs-last load sample), total drops, stored vs made,
and a verdict against the targets. A client that fails a call counts it and goes
on; a client that dies is restarted for the remaining time; a status request
that fails is counted; only the daemon's exit ends the soak early (verdict FAIL).
The daemon watches the whole machine, so other work on a shared VM adds to its
CPU and may add events of other pids (not counted here), unless ``--comm NAME``
names the clients' processes and makes the daemon capture only those. Run as root:
``.venv/bin/python bench/soak.py [--minutes 60] [--rate 100] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.daemon import Daemon, cpu_s, machine, memory_mb  # noqa: E402
from tests.support.bpfcap import spawn_server  # noqa: E402


class Client:
    """One ``soak_client.py`` process; its last totals line, read in a thread."""

    def __init__(self, info: dict[str, Any], rate: float, seconds: float, comm: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "soak_client.py"), info["base_url"],
             info["ca"], str(rate), str(seconds), *([comm] if comm else [])],
            stdout=subprocess.PIPE, text=True)
        self.totals: dict[str, Any] = {"made": 0, "errors": {}, "late": 0, "done": False}
        self.replaced = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.totals = json.loads(line)
            except ValueError:
                continue

    def finished(self) -> bool:
        """The process exited and its last line has been read."""
        if self.proc.poll() is None:
            return False
        self._reader.join(5)
        return True


class Load:
    """The paced clients; a client that dies early is replaced for the time left."""

    def __init__(self, info: dict[str, Any], args: argparse.Namespace) -> None:
        self.info, self.per_client, self.comm = info, args.rate / args.clients, args.comm
        self.deadline = time.monotonic() + args.minutes * 60
        self.clients = [Client(info, self.per_client, args.minutes * 60, args.comm)
                        for _ in range(args.clients)]
        self.restarts = 0

    def tend(self) -> None:
        left = self.deadline - time.monotonic()
        for client in list(self.clients):
            if (left > 5 and not client.replaced and client.finished()
                    and not client.totals.get("done")):
                client.replaced = True
                self.restarts += 1
                self.clients.append(Client(self.info, self.per_client, left, self.comm))

    def pids(self) -> list[int]:
        return [c.proc.pid for c in self.clients]

    def totals(self) -> tuple[int, dict[str, int], int]:
        made, late, errors = 0, 0, {}
        for client in self.clients:
            made += int(client.totals["made"])
            late += int(client.totals["late"])
            for kind, n in client.totals["errors"].items():
                errors[kind] = errors.get(kind, 0) + int(n)
        if self.restarts:
            errors["client_restarted"] = self.restarts
        return made, errors, late

    def wait(self) -> None:
        for client in self.clients:
            try:
                client.proc.wait(max(5.0, self.deadline - time.monotonic() + 60))
            except subprocess.TimeoutExpired:
                client.proc.kill()
            client.finished()


def stored(db: Path, pids: list[int]) -> int:
    """Events of these pids in the daemon's database (read-only, beside its writer)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            marks = ",".join("?" * len(pids))
            row = conn.execute(f"SELECT count(*) FROM events WHERE pid IN ({marks})", pids)
            return int(row.fetchone()[0])
    except sqlite3.Error:
        return -1


def capture_state(daemon: Daemon) -> dict[str, Any]:
    """Drops by reason (capture and store), queue depth and ring fill from /api/status."""
    status = daemon.status()
    capture = status.get("capture", {})
    bpf = capture.get("backends", {}).get("BpfCapture", {})
    drops = {f"capture.{k}": int(v) for k, v in capture.get("dropped", {}).items()}
    drops |= {f"store.{k}": int(v) for k, v in (status["store"].get("drops") or {}).items()}
    ring = {k: v for k, v in bpf.items() if k.startswith("ring")}
    ring["store_queue"] = status["store"].get("queue", 0)
    return {"drops": drops, "queue_depth": bpf.get("queue_depth", 0), "ring": ring,
            "store_events": status["store"].get("events", 0)}


def sample(daemon: Daemon, load: Load | None, db: Path, t0: float,
           last: dict[str, Any] | None, status_errors: list[int]) -> dict[str, Any]:
    pid = daemon.proc.pid
    now, cpu = time.monotonic(), cpu_s(pid)
    made, errors, late = load.totals() if load else (0, {}, 0)
    row: dict[str, Any] = {"t_s": now - t0, **memory_mb(pid), "cpu_s": cpu, "made": made,
                           "errors": errors, "late": late,
                           "stored": stored(db, load.pids()) if load else 0,
                           "threads": len(os.listdir(f"/proc/{pid}/task")),
                           "fds": len(os.listdir(f"/proc/{pid}/fd")),
                           "loadavg": os.getloadavg()[0]}
    try:
        row |= capture_state(daemon)
    except (httpx.HTTPError, ValueError, KeyError):
        status_errors[0] += 1
        row |= {"drops": dict(last["drops"]) if last else {}, "queue_depth": -1, "ring": {},
                "store_events": -1}
    if last is not None:
        span = row["t_s"] - last["t_s"]
        calls = row["made"] - last["made"]
        row["cpu_pct"] = (cpu - last["cpu_s"]) * 100 / span if span > 0 else 0.0
        row["ms_per_call"] = (cpu - last["cpu_s"]) * 1000 / calls if calls > 0 else 0.0
        row["rate"] = calls / span if span > 0 else 0.0
    return row


def slope_mb_per_h(rows: list[dict[str, Any]]) -> float:
    """Least-squares slope of RSS over time, MB per hour (0 with fewer than 2 rows)."""
    if len(rows) < 2:
        return 0.0
    xs = [r["t_s"] / 3600 for r in rows]
    ys = [r["rss"] for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def soak(args: argparse.Namespace, tmp: Path, info: dict[str, Any]) -> dict[str, Any]:
    daemon = Daemon(tmp, extra=("--comm", args.comm) if args.comm else ())
    db = tmp / "state" / "lumen.db"
    status_errors = [0]
    try:
        at_ready = sum(capture_state(daemon)["drops"].values())
    except (httpx.HTTPError, ValueError, KeyError):
        at_ready = -1
    time.sleep(args.settle)
    t0 = time.monotonic()
    rows = [sample(daemon, None, db, t0, None, status_errors)]
    load = Load(info, args)
    end = load.deadline
    died = interrupted = False
    while (now := time.monotonic()) < end:
        try:
            time.sleep(min(args.sample_s, end - now))
            load.tend()
            rows.append(sample(daemon, load, db, t0, rows[-1], status_errors))
        except KeyboardInterrupt:  # Ctrl-C: stop the load, still report what was seen
            interrupted = True
            for client in load.clients:
                client.proc.terminate()
            break
        except OSError:  # /proc/PID vanished under us: the daemon exited
            if daemon.proc.poll() is None:
                raise
        if daemon.proc.poll() is not None:
            died = True
            break
        print(format_row(rows[-1]), flush=True)
    load.wait()
    if not died:
        # Let the last calls through the pipeline and the group commit.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and stored(db, load.pids()) < load.totals()[0]:
            time.sleep(0.5)
        rows.append(sample(daemon, load, db, t0, rows[-1], status_errors))
        rows[-1]["note"] = "after the load (drain)"
        try:
            daemon.stop()
        except subprocess.TimeoutExpired:  # a backlog it cannot flush in time: still report
            daemon.proc.kill()
            daemon.proc.wait()
    else:
        daemon.proc.wait(10)
    settle_drops = sum(rows[0]["drops"].values()) - at_ready if at_ready >= 0 else -1
    return {"rows": rows, "died": died, "interrupted": interrupted, "settle_drops": settle_drops,
            "exit": daemon.proc.returncode,
            "status_errors": status_errors[0], "ready_s": daemon.ready_s,
            "log_tail": (tmp / "daemon.log").read_text()[-3000:] if died else ""}


HEADER = (f"{'min':>6} {'RSS':>6} {'PSS':>6} {'USS':>6} {'CPU%':>6} {'ms/call':>7} "
          f"{'calls/s':>7} {'made':>8} {'stored':>8} {'errors':>6} {'drops':>6} "
          f"{'queue':>6} {'thr':>4} {'fds':>5} {'load':>5}")


def format_row(r: dict[str, Any]) -> str:
    ring = " ".join(f"{k}={v}" for k, v in r.get("ring", {}).items())
    return (f"{r['t_s'] / 60:6.1f} {r['rss']:6.1f} {r['pss']:6.1f} {r['uss']:6.1f} "
            f"{r.get('cpu_pct', 0.0):6.2f} {r.get('ms_per_call', 0.0):7.2f} "
            f"{r.get('rate', 0.0):7.1f} {r['made']:8d} {r['stored']:8d} "
            f"{sum(r['errors'].values()):6d} {sum(r['drops'].values()):6d} "
            f"{r['queue_depth']:6d} {r['threads']:4d} {r['fds']:5d} {r['loadavg']:5.2f}"
            + (f"  {ring}" if ring else "") + (f"  {r['note']}" if "note" in r else ""))


def verdict(result: dict[str, Any], args: argparse.Namespace) -> list[str]:
    rows = result["rows"]
    loaded = rows[1:]
    second = [r for r in loaded if r["t_s"] >= args.minutes * 30]
    last = rows[-1]
    slope = slope_mb_per_h(second)
    peak = max(r["rss"] for r in rows)
    drops = {k: v - rows[0]["drops"].get(k, 0) for k, v in last["drops"].items()}
    total_drops = sum(drops.values())
    made, got = last["made"], last["stored"]
    result["summary"] = {"slope_mb_h": slope, "peak_rss": peak, "drops": drops,
                         "made": made, "stored": got, "errors": last["errors"]}
    errors = last["errors"]
    lines = [
        f"RSS: at rest {rows[0]['rss']:.1f} MB, first load sample "
        f"{loaded[0]['rss'] if loaded else 0:.1f}, last {last['rss']:.1f}, max {peak:.1f} MB "
        f"(peak VmHWM {last['peak']:.1f})",
        f"RSS trend over the second half ({len(second)} samples): {slope:+.2f} MB/h",
        f"drops: {total_drops} " + " ".join(f"{k}={v}" for k, v in drops.items() if v)
        + f"; while settling, before any load of ours: {result['settle_drops']} in "
        f"{args.settle:g} s (other work on the machine)",
        f"calls made {made}, stored {got}; client errors {sum(errors.values())} "
        + " ".join(f"{k}={v}" for k, v in errors.items())
        + f"; late slots {last['late']}; status errors {result['status_errors']}",
    ]
    checks = {
        f"RSS <= {args.max_rss:.0f} MB": (peak <= args.max_rss, f"max {peak:.1f}"),
        f"slope <= {args.max_slope:g} MB/h": (slope <= args.max_slope, f"{slope:+.1f}"),
        "0 drops": (total_drops == 0, str(total_drops)),
        "stored == made": (got == made, f"{got}/{made}"),
        "daemon alive": (not result["died"], "" if not result["died"] else "exited"),
        f"ran {args.minutes:g} min": (not result["interrupted"], ""),
    }
    ok = all(passed for passed, _ in checks.values())
    lines.append(f"verdict: {'PASS' if ok else 'FAIL'} — " + "; ".join(
        f"{name}: {'ok' if passed else 'NO'}" + (f" ({why})" if why else "")
        for name, (passed, why) in checks.items()))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=100.0, help="calls/s, all clients")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--sample-s", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--max-rss", type=float, default=150.0)
    parser.add_argument("--max-slope", type=float, default=5.0, help="MB/h, second half")
    parser.add_argument("--comm", default="",
                        help="name the clients' processes so and capture only them "
                             "(a shared machine's other TLS traffic is then skipped)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if len(args.comm) > 15:
        parser.error("--comm: at most 15 characters (the kernel's comm length)")
    print(f"machine: {machine()}; soak {args.minutes:g} min at {args.rate:g} calls/s, "
          f"{args.clients} clients, a sample every {args.sample_s:g} s"
          + (f", capturing only comm {args.comm}" if args.comm else ""))
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as ca_dir, \
            spawn_server("tests.support.standin", "--tls", "--port", "0",
                         "--ca-dir", ca_dir) as server:
        print(HEADER, flush=True)
        result = soak(args, Path(tmp), server.info)
    print("\n" + HEADER)
    for row in result["rows"]:
        print(format_row(row))
    if result["died"]:
        print(f"daemon exited with {result['exit']}:\n{result['log_tail']}")
    for line in verdict(result, args):
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "args": vars(args) | {
            "json": str(args.json)}, **result}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
