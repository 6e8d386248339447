"""Store benchmark: insert rate into SQLite, and API latency over a month of events.

Prints:

1. sustained events/s through ``Writer.submit`` → commit (target ≥ 20,000/s),
   bare and with the API's commit listeners (metrics, live feed) attached;
2. the latency of /api/summary, /api/usage and /api/events over HTTP (real
   uvicorn on 127.0.0.1) with 1,000,000 stored events spanning 30 days
   (target < 100 ms).

Usage: ``python bench/store.py [--events N] [--db PATH]``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import uvicorn

from lumen_sniff.api import create_app
from lumen_sniff.api.live import LiveFeed
from lumen_sniff.api.metrics import Metrics
from lumen_sniff.model import UsageEvent, UsageSource
from lumen_sniff.serialize import iso_from_ns
from lumen_sniff.store import Store, open_store

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


def events(n: int, start_ns: int, span_ns: int, seed: int = 1) -> Iterator[UsageEvent]:
    """``n`` varied events in time order over ``[start_ns, start_ns + span_ns)``."""
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


async def fill(store: Store, stream: Iterator[UsageEvent]) -> tuple[int, float]:
    """Submit everything as fast as the writer takes it; return (events, seconds)."""
    writer = store.writer
    high = writer.stats()["queue_capacity"]
    assert isinstance(high, int)
    count = 0
    started = time.perf_counter()
    for event in stream:
        while not writer.submit(event):
            await asyncio.sleep(0.001)
        count += 1
        if count % 2000 == 0:
            # Yield so the writer task runs; back off while the queue is half full.
            await asyncio.sleep(0 if writer.stats()["queue"] < high // 2 else 0.002)  # type: ignore[operator]
    await writer.flush()
    return count, time.perf_counter() - started


async def insert_rate(n: int, directory: Path, listeners: bool) -> float:
    store = await open_store(directory / f"rate-{listeners}.db", retention_days=0)
    try:
        if listeners:
            store.writer.add_listener(Metrics(lambda: {"ready": True}, store.stats))
            store.writer.add_listener(LiveFeed())
        batch = list(events(n, time.time_ns() - DAY_NS, DAY_NS, seed=2))
        count, seconds = await fill(store, iter(batch))
        drops = store.writer.drops
        assert not drops.get("store_write_error"), drops
        return count / seconds
    finally:
        await store.close()


class Server:
    """uvicorn in a background thread, as the daemon runs it."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        app = create_app(store, status=lambda: {"ready": True}, token=None)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none")
        )
        self.future = asyncio.run_coroutine_threadsafe(self.server.serve(), loop)
        while not self.server.started:
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"


def latency(client: httpx.Client, path: str, params: dict[str, Any], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path, params=params)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate-events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--db", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lumen-bench-") as tmp:
        directory = Path(tmp)
        for listeners in (False, True):
            rate = asyncio.run(insert_rate(args.rate_events, directory, listeners))
            label = "with metrics+live listeners" if listeners else "bare writer"
            print(f"insert rate ({label}, {args.rate_events:,} events): {rate:,.0f} events/s")

        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()

        def call(coro: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, loop).result()

        db = args.db or directory / "month.db"
        store: Store = call(open_store(db, retention_days=0))
        now = time.time_ns()
        if store.event_count < args.events:
            count, seconds = call(fill(store, events(args.events, now - 30 * DAY_NS, 30 * DAY_NS)))
            rate = count / seconds
            print(f"filled {count:,} events over 30 days in {seconds:.1f}s ({rate:,.0f}/s)")
        print(f"database: {store.event_count:,} events, {store.stats()['size_bytes']:,} bytes")
        extra = list(events(args.rate_events // 2, now, 60 * 10**9, seed=9))
        count, seconds = call(fill(store, iter(extra)))
        print(
            f"insert rate into the full database ({count:,} more events): {count / seconds:,.0f}/s"
        )

        server = Server(store, loop)
        queries: list[tuple[str, dict[str, Any]]] = [
            ("/api/summary", {"since": "30d"}),
            ("/api/summary", {}),
            ("/api/summary", {"since": "7d", "until": "1d"}),
            ("/api/usage", {"group_by": "model", "bucket": "day", "since": "30d"}),
            ("/api/usage", {"group_by": "model", "bucket": "hour", "since": "30d"}),
            ("/api/usage", {"group_by": "api_key_id", "bucket": "day", "since": "30d"}),
            ("/api/usage", {"group_by": "process", "bucket": "hour", "since": "24h"}),
            ("/api/usage", {"group_by": "model", "bucket": "minute", "since": "24h"}),
            ("/api/events", {"limit": 100}),
            ("/api/events", {"limit": 100, "model": "gpt-4.1", "since": "7d"}),
        ]
        with httpx.Client(base_url=server.url, timeout=60) as client:
            latency(client, "/api/summary", {}, 3)  # warm the page cache
            print(f"{'query':<72} {'median ms':>10} {'p95 ms':>8}")
            for path, params in queries:
                times = sorted(latency(client, path, params, args.runs))
                p95 = times[max(0, int(len(times) * 0.95) - 1)]
                query = path + ("?" + str(httpx.QueryParams(params)) if params else "")
                print(f"{query:<72} {statistics.median(times):>10.1f} {p95:>8.1f}")
        server.server.should_exit = True
        server.future.result()
        call(store.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


if __name__ == "__main__":
    main()
