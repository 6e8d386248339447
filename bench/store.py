"""Store benchmark: insert rate into SQLite, and API latency over a month of events.

Prints (issue 12: inserts with listeners ≥ 25,000/s; minute buckets over
24 h at 1M events ≤ 100 ms):

1. sustained events/s through ``Writer.submit`` → commit (rollups included),
   bare and with the API's commit listeners (metrics, live feed) attached,
   median of ``--rounds`` runs, each in a fresh process and database;
2. the latency of /api/summary, /api/usage (minute, hour and day buckets over
   24 h, and longer ranges) and /api/events over HTTP (real uvicorn on
   127.0.0.1) with ``--events`` stored events spanning 30 days: median and
   p95 of ``--runs`` requests.

``--baseline DIR`` compares with another checkout (e.g. ``git worktree add
/tmp/base main``): every measure then runs on both trees, alternating
before/after, round by round and request by request, so a busy machine slows
both arms alike. The month database is filled once by the baseline tree and
copied; the other tree upgrades its copy on open (the schema migration time is
printed).

Usage: ``python bench/store.py [--events N] [--rounds 3] [--baseline DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
TREE = Path(os.environ.get("LUMEN_BENCH_TREE", HERE.parents[1]))
"""The checkout whose lumen_sniff is imported (children get the arm's tree)."""
sys.path.insert(0, str(TREE))

DAY_NS = 86_400 * 10**9
MODELS = [
    ("openai", "gpt-4o-mini", Decimal("0.00000015")),
    ("openai", "gpt-4.1", Decimal("0.000002")),
    ("openai", "o4-mini", Decimal("0.0000011")),
    ("anthropic", "claude-sonnet-4-20250514", Decimal("0.000003")),
    ("anthropic", "claude-3-5-haiku-latest", Decimal("0.0000008")),
    ("google", "gemini-2.5-flash", Decimal("0.0000003")),
    ("ollama", "llama3.2", None),
]
PROCESSES = ["python3", "node", "java", "uvicorn", "celery", "ruby", "curl", "go-worker"]
KEYS = [f"k:{i:08x}…{i:04d}" for i in range(20)]
TENANTS = ["acme", "globex", "initech", "umbrella", None]
CONTAINERS = ["3f2a9c1b0d4e", "77aa01bc9e21", None]

QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("/api/usage", {"group_by": "model", "bucket": "minute", "since": "24h"}),
    ("/api/usage", {"group_by": "model", "bucket": "hour", "since": "24h"}),
    ("/api/usage", {"group_by": "model", "bucket": "day", "since": "24h"}),
    ("/api/usage", {"group_by": "model", "bucket": "minute", "since": "3h"}),
    ("/api/usage", {"group_by": "process", "bucket": "minute", "since": "3h", "model": "gpt-4.1"}),
    ("/api/summary", {"since": "30d"}),
    ("/api/summary", {"since": "5m"}),
    ("/api/summary", {"since": "7d", "until": "1d"}),
    ("/api/usage", {"group_by": "model", "bucket": "day", "since": "30d"}),
    ("/api/usage", {"group_by": "model", "bucket": "hour", "since": "30d"}),
    ("/api/usage", {"group_by": "api_key_id", "bucket": "day", "since": "30d"}),
    ("/api/breakdown", {"dim": "process", "since": "24h"}),
    ("/api/events", {"limit": 100}),
    ("/api/events", {"limit": 100, "model": "gpt-4.1", "since": "7d"}),
]


def events(n: int, start_ns: int, span_ns: int, seed: int = 1) -> Iterator[Any]:
    """``n`` varied events in time order over ``[start_ns, start_ns + span_ns)``."""
    from lumen_sniff.model import UsageEvent, UsageSource
    from lumen_sniff.serialize import iso_from_ns

    rng = random.Random(seed)
    step = span_ns / n
    for i in range(n):
        at = start_ns + int(i * step)
        provider, model, rate = rng.choice(MODELS)
        tokens_in, tokens_out = rng.randrange(50, 8000), rng.randrange(1, 1200)
        cached = rng.randrange(0, tokens_in) if rng.random() < 0.3 else 0
        ok = rng.random() > 0.03
        yield UsageEvent(
            # Hash-like and distinct per (seed, i), as real ids are: sequential
            # ids would flatter the unique index, and reused ones be skipped.
            id=hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).hexdigest(),
            started_at=iso_from_ns(at),
            started_ns=at,
            provider=provider,
            api="chat",
            model=model,
            stream=rng.random() < 0.5,
            status=200 if ok else 429,
            input_tokens=tokens_in if ok else 0,
            output_tokens=tokens_out if ok else 0,
            cache_read_tokens=cached if ok else 0,
            cache_write_tokens=0,
            reasoning_tokens=0,
            cost_usd=None if rate is None else rate * (tokens_in + 4 * tokens_out),
            usage_source=UsageSource.REPORTED if ok else UsageSource.NONE,
            pid=rng.randrange(100, 60000),
            process=rng.choice(PROCESSES),
            duration_ms=rng.uniform(100, 20000),
            ttft_ms=rng.uniform(50, 2000),
            api_key_id=rng.choice(KEYS),
            tenant=rng.choice(TENANTS),
            host="api.example.com",
            path="/v1/chat/completions",
            container=rng.choice(CONTAINERS),
        )


async def fill(store: Any, stream: Iterator[Any]) -> tuple[int, float]:
    """Submit everything as fast as the writer takes it; return (events, seconds)."""
    writer = store.writer
    high = writer.stats()["queue_capacity"]
    count = 0
    started = time.perf_counter()
    for event in stream:
        while not writer.submit(event):
            await asyncio.sleep(0.001)
        count += 1
        if count % 2000 == 0:
            # Yield so the writer task runs; back off while the queue is half full.
            await asyncio.sleep(0 if writer.stats()["queue"] < high // 2 else 0.002)
    await writer.flush()
    return count, time.perf_counter() - started


# ------------------------------------------------------------------ children


async def _rate(n: int, directory: Path, listeners: bool, span_ns: int) -> float:
    from lumen_sniff.api.live import LiveFeed
    from lumen_sniff.api.metrics import Metrics
    from lumen_sniff.store import open_store

    store = await open_store(directory / f"rate-{listeners}-{span_ns}.db", retention_days=0)
    try:
        if listeners:
            store.writer.add_listener(Metrics(lambda: {"ready": True}, store.stats))
            store.writer.add_listener(LiveFeed())
        batch = list(events(n, time.time_ns() - span_ns, span_ns, seed=2))
        count, seconds = await fill(store, iter(batch))
        drops = store.writer.drops
        assert not drops.get("store_write_error"), drops
        return count / seconds
    finally:
        await store.close()


TARGET_RATE_CASE = "with metrics+live listeners"
RATE_CASES: dict[str, tuple[bool, int | None]] = {
    "bare writer": (False, None),
    "with metrics+live listeners": (True, None),
    "listeners, events spread over 24 h": (True, DAY_NS),
}
"""(listeners, span of the events' start times; None: as they would arrive at
25,000/s, so a batch's events share a minute or two as in the daemon)."""


def child_rate(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="lumen-bench-") as tmp:
        out = {
            case: asyncio.run(_rate(n, Path(tmp), listeners, span or n * 10**9 // 25_000))
            for case, (listeners, span) in RATE_CASES.items()
        }
    print(json.dumps(out))


def child_fill(db: Path, n: int, now_ns: int) -> None:
    from lumen_sniff.store import open_store

    async def run() -> tuple[int, float]:
        store = await open_store(db, retention_days=0)
        try:
            return await fill(store, events(n, now_ns - 30 * DAY_NS, 30 * DAY_NS))
        finally:
            await store.close()

    count, seconds = asyncio.run(run())
    print(json.dumps({"count": count, "seconds": seconds}))


def child_serve(db: Path) -> None:
    """Serve ``db`` on 127.0.0.1 until stdin closes; print the URL and the open time."""
    import uvicorn

    from lumen_sniff.api import create_app
    from lumen_sniff.store import open_store

    async def run() -> None:
        started = time.perf_counter()
        store = await open_store(db, retention_days=0)
        opened = time.perf_counter() - started
        app = create_app(store, status=lambda: {"ready": True}, token=None)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        print(json.dumps({"url": f"http://127.0.0.1:{port}", "open_s": opened}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        server.should_exit = True
        await task
        await store.close()

    asyncio.run(run())


# -------------------------------------------------------------------- parent


def _child(tree: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "LUMEN_BENCH_TREE": str(tree)}
    return subprocess.Popen(
        [sys.executable, str(HERE), *args], env=env, text=True, stdout=subprocess.PIPE, **popen
    )


def _run_child(tree: Path, *args: str) -> Any:
    proc = _child(tree, *args)
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{tree}: {' '.join(args)} failed ({proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def insert_rates(arms: dict[str, Path], n: int, rounds: int) -> dict[str, float]:
    """Print every case's median per arm; return the target case's (with listeners)."""
    got: dict[str, dict[str, list[float]]] = {a: {c: [] for c in RATE_CASES} for a in arms}
    order = list(arms)
    for r in range(rounds):
        for arm in order if r % 2 == 0 else order[::-1]:
            for case, rate in _run_child(arms[arm], "--child", "rate", str(n)).items():
                got[arm][case].append(rate)
    print(f"insert rate, {n:,} events per run, median of {rounds} (load average {_loadavg()}):")
    for case in RATE_CASES:
        row = "".join(f"  {arm} {statistics.median(got[arm][case]):>9,.0f}/s" for arm in arms)
        print(f"  {case:<36}{row}")
    return {arm: statistics.median(got[arm][TARGET_RATE_CASE]) for arm in arms}


def latencies(arms: dict[str, Path], db: Path, runs: int) -> dict[str, float]:
    """Print every query's median and p95 per arm; return the target query's medians."""
    import httpx

    target: dict[str, float] = {}
    servers: dict[str, tuple[subprocess.Popen[str], str]] = {}
    try:
        for arm, tree in arms.items():
            copy = db if len(arms) == 1 else db.with_name(f"{arm}.db")
            if copy != db:
                shutil.copyfile(db, copy)
            proc = _child(tree, "--child", "serve", str(copy), stdin=subprocess.PIPE)
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            servers[arm] = (proc, info["url"])
            print(f"{arm}: opened the database in {info['open_s']:.1f}s (schema upgrade included)")
        clients = {
            arm: httpx.Client(base_url=url, timeout=120) for arm, (_, url) in servers.items()
        }
        for client in clients.values():
            for _ in range(2):  # warm the page cache
                client.get("/api/summary").raise_for_status()
        print(f"{'query':<64}" + "".join(f" {a + ' med':>12} {'p95':>7}" for a in arms))
        for path, params in QUERIES:
            times: dict[str, list[float]] = {arm: [] for arm in arms}
            for i in range(runs):
                for arm in list(arms) if i % 2 == 0 else list(arms)[::-1]:
                    started = time.perf_counter()
                    clients[arm].get(path, params=params).raise_for_status()
                    times[arm].append((time.perf_counter() - started) * 1000)
            if (path, params) == QUERIES[0]:
                target = {arm: statistics.median(times[arm]) for arm in arms}
            query = path + ("?" + str(httpx.QueryParams(params)) if params else "")
            row = f"{query:<64}"
            for arm in arms:
                ts = sorted(times[arm])
                p95 = ts[max(0, int(len(ts) * 0.95) - 1)]
                row += f" {statistics.median(ts):>12.1f} {p95:>7.1f}"
            print(row, flush=True)
        print(f"load average after the queries: {_loadavg()}")
        return target
    finally:
        for proc, _ in servers.values():
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate-events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--baseline", type=Path, default=None, help="checkout to compare with")
    parser.add_argument("--db", type=Path, default=None, help="keep the month database here")
    parser.add_argument("--skip-rate", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, *rest = args.child
        if kind == "rate":
            child_rate(int(rest[0]))
        elif kind == "fill":
            child_fill(Path(rest[0]), int(rest[1]), int(rest[2]))
        else:
            child_serve(Path(rest[0]))
        return

    arms = {"after": HERE.parents[1]}
    if args.baseline is not None:
        arms = {"before": args.baseline.resolve(), **arms}
    print(f"trees: {', '.join(f'{a}={t}' for a, t in arms.items())}")
    rates = {} if args.skip_rate else insert_rates(arms, args.rate_events, args.rounds)
    minute_ms: dict[str, float] = {}
    if args.events > 0:
        minute_ms = month_queries(args, arms)
    print("issue 12 targets (medians):")
    if rates:
        row = "".join(f"  {arm} {rate:>9,.0f}/s" for arm, rate in rates.items())
        print(f"  {'store inserts/s with listeners (>= 25,000)':<52}{row}")
    if minute_ms:
        row = "".join(f"  {arm} {ms:>8.1f} ms" for arm, ms in minute_ms.items())
        label = f"minute buckets, 24 h, {args.events:,} events, HTTP (<= 100 ms)"
        print(f"  {label:<52}{row}")


def month_queries(args: argparse.Namespace, arms: dict[str, Path]) -> dict[str, float]:
    """Fill (or reuse) the month database and time the queries over HTTP."""
    with tempfile.TemporaryDirectory(prefix="lumen-bench-") as tmp:
        db = args.db or Path(tmp) / "month.db"
        if not db.exists():
            oldest = next(iter(arms.values()))
            filled = _run_child(
                oldest, "--child", "fill", str(db), str(args.events), str(time.time_ns())
            )
            rate = filled["count"] / filled["seconds"]
            took = filled["seconds"]
            print(f"filled {filled['count']:,} events over 30 days in {took:.1f}s ({rate:,.0f}/s)")
        print(f"database: {db.stat().st_size:,} bytes")
        return latencies(arms, db, args.runs)


if __name__ == "__main__":
    main()
