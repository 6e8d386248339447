"""How fast a $ limit turns into refused calls, and how much is spent past it.

Runs a real daemon (eBPF capture) and the TLS stand-in, then, per run, creates a
``block`` budget through the API for a fresh service name and starts that
service: the official OpenAI SDK calling ``chat.completions.create`` in a loop
on one keep-alive connection (``--interval`` between calls, 0 = back to back).
Per run it prints:

* ``limit→block ms``: from the end of the call that crossed the limit (its
  event's start + duration) to the daemon's "block applied" log entry;
* ``limit→refused ms``: from that same instant to the end of the client's first
  failed call (the SDK raising ``APIConnectionError``);
* ``overshoot $`` and ``calls``: spend past the limit, and calls that completed
  after the crossing call (in flight or sent before the block landed).

Usage: ``sudo .venv/bin/python bench/budgets.py [--runs 5] [--interval 0 0.05]``.
Figures depend on the machine's load (the store commits in batches of up to
50 ms, and the capture polls its ring buffer).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.bpfcap import spawn_server  # noqa: E402 (needs the path above)
from tests.support.daemonproc import Daemon, start_daemon  # noqa: E402

_LIMIT_USD = "0.00005"  # between the 5th and 6th stand-in call


def _ns(iso: str) -> int:
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(t.timestamp()) * 10**9 + t.microsecond * 1000


def _run(daemon: Daemon, standin: dict[str, Any], interval: float) -> dict[str, float]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    daemon.post(
        "/api/budgets",
        {
            "name": name,
            "scope": "service",
            "match": name,
            "period": "day",
            "limit_usd": _LIMIT_USD,
            "action": "block",
        },
    )
    argv = [
        sys.executable,
        "-m",
        "tests.support.budget_client",
        "--name",
        name,
        "--base-url",
        standin["base_url"],
        "--ca",
        standin["ca"],
        "--calls",
        "200",
        "--interval",
        str(interval),
        "--stop-after-errors",
        "1",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=REPO, check=True)
    calls = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    refused = next(c for c in calls if not c["ok"])
    events = sorted(
        daemon.api("/api/events", process=name, limit=1000)["events"], key=lambda e: e["started_at"]
    )
    # A call cut by the block (its connection destroyed mid-response) is an
    # incomplete event without a cost: it is not counted as spend.
    events = [e for e in events if e["cost_usd"] is not None]
    spent, crossing = 0.0, None
    for i, e in enumerate(events):
        spent += e["cost_usd"]
        if crossing is None and spent >= float(_LIMIT_USD):
            crossing = i
    assert crossing is not None, "the limit was never reached"
    e = events[crossing]
    limit_ns = _ns(e["started_at"]) + int(e["duration_ms"] * 1e6)
    log = daemon.api("/api/budgets")["log"]
    applied = next(r for r in log if r["budget"] == name and r["active"])
    status = next(b for b in daemon.api("/api/budgets")["budgets"] if b["name"] == name)
    daemon.cli("budgets", "remove", name)
    return {
        "block_ms": (_ns(applied["at"]) - limit_ns) / 1e6,
        "refused_ms": (refused["end_ns"] - limit_ns) / 1e6,
        "overshoot_usd": status["overshoot_usd"],
        "overshoot_calls": len(events) - 1 - crossing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interval", type=float, nargs="+", default=[0.0, 0.05])
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        spawn_server("tests.support.standin", "--tls", "--port", "0", "--ca-dir", tmp) as standin,
    ):
        config = Path(tmp) / "config.toml"
        config.write_text("")
        daemon = start_daemon(
            Path(tmp) / "db" / "lumen.db", Path(tmp) / "daemon.log", config=config
        )
        try:
            print(
                f"{'interval s':>10} {'run':>3} {'limit→block ms':>15} {'limit→refused ms':>17} "
                f"{'overshoot $':>12} {'calls':>5}"
            )
            for interval in args.interval:
                rows = [_run(daemon, standin.info, interval) for _ in range(args.runs)]
                for i, r in enumerate(rows):
                    print(
                        f"{interval:>10} {i:>3} {r['block_ms']:>15.1f} {r['refused_ms']:>17.1f} "
                        f"{r['overshoot_usd']:>12.8f} {r['overshoot_calls']:>5}"
                    )
                for label, key in (("median", statistics.median), ("max", max)):
                    print(
                        f"{interval:>10} {label:>3} "
                        f"{key(r['block_ms'] for r in rows):>15.1f} "
                        f"{key(r['refused_ms'] for r in rows):>17.1f} "
                        f"{key(r['overshoot_usd'] for r in rows):>12.8f} "
                        f"{key(r['overshoot_calls'] for r in rows):>5}"
                    )
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
