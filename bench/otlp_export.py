"""OTLP export benchmark: CPU per call, and what a dead or hung collector costs.

Prints:

1. CPU per call (µs, thread CPU time of the exporting thread, median of runs):
   recording one call into the GenAI metric instruments; building and sending
   its log record over OTLP/HTTP to a live receiver (batches of 512); and one
   cumulative metrics push.
2. A dead collector (connection refused) and a hung one (accepts, never
   answers), fed 200 calls/s for a few seconds through the real SinkRunner:
   the longest ``committed()`` call (what the store writer waits), the records
   sent / dropped by reason, the queue at its bound, and the process CPU.

The receiver runs in a child process so its CPU is not counted.

Usage: ``python bench/otlp_export.py [--calls N] [--outage-s S]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lumen_sniff.model import UsageEvent, UsageSource
from lumen_sniff.serialize import iso_from_ns
from lumen_sniff.sinks import OtlpSettings, QueueSettings, SinkRunner
from lumen_sniff.sinks.otlp import OtlpLogsSink, OtlpMetricsSink

T0 = 1_750_000_000_000_000_000


def _events(n: int) -> list[UsageEvent]:
    models = ["gpt-4o-mini", "gpt-4.1", "claude-sonnet-4", "gemini-2.5-flash"]
    out = []
    for i in range(n):
        out.append(
            UsageEvent(
                id=f"bench{i:012d}", started_at=iso_from_ns(T0 + i), started_ns=T0 + i,
                provider="openai", api="chat", model=models[i % 4], stream=bool(i % 2),
                status=200 if i % 20 else 429, input_tokens=1200 + i % 100, output_tokens=300,
                cache_read_tokens=1000 if i % 3 == 0 else 0, cache_write_tokens=0,
                reasoning_tokens=64 if i % 5 == 0 else 0, cost_usd=Decimal("0.00123"),
                usage_source=UsageSource.REPORTED, pid=4242, process="python3",
                duration_ms=850.0, ttft_ms=210.0, api_key_id="k:1a2b3c4d…wxyz",
                tenant=f"tenant-{i % 7}", host="api.openai.com", path="/v1/chat/completions",
                container="c0ffee", unit="app.service",
            )
        )  # fmt: skip
    return out


def _serve(port_out: Any) -> None:
    from tests.support.otlpreceiver import OtlpReceiver

    receiver = OtlpReceiver()
    port_out.send(receiver.port)
    time.sleep(3600)


def _hung_listener() -> tuple[socket.socket, int]:
    """A port that accepts connections (backlog) but never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock, int(sock.getsockname()[1])


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_per_call(calls: int) -> None:
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
    proc.start()
    port = parent.recv()
    settings = OtlpSettings(
        enabled=True, endpoint=f"http://127.0.0.1:{port}", metrics_interval_s=3600
    )
    events = _events(calls)
    metrics = OtlpMetricsSink(settings)
    logs = OtlpLogsSink(settings)
    logs.send(events[:10])  # warm the connection
    rec, log_us, push_ms = [], [], []
    for _ in range(5):
        t = time.thread_time()
        metrics.send(events)
        rec.append((time.thread_time() - t) / calls * 1e6)
        t = time.thread_time()
        for i in range(0, calls, 512):
            logs.send(events[i : i + 512])
        log_us.append((time.thread_time() - t) / calls * 1e6)
        t = time.thread_time()
        metrics.flush()
        push_ms.append((time.thread_time() - t) * 1e3)
    metrics.close()
    logs.close()
    proc.terminate()
    print(f"CPU per call, {calls} calls x 5 runs (median; exporting thread only):")
    print(f"  metrics: record into the GenAI instruments   {statistics.median(rec):7.1f} µs")
    print(f"  logs:    build + encode + POST (batch 512)   {statistics.median(log_us):7.1f} µs")
    total = statistics.median(rec) + statistics.median(log_us)
    print(f"  total per call                               {total:7.1f} µs")
    print(f"  one cumulative metrics push (all series)     {statistics.median(push_ms):7.1f} ms")


def outage(kind: str, endpoint: str, seconds: float) -> None:
    queue = QueueSettings(queue_size=500, batch_max=100, batch_wait_s=0.2,
                          retry_pauses_s=(0.5, 1.0, 2.0), close_timeout_s=2.0)  # fmt: skip
    settings = OtlpSettings(enabled=True, endpoint=endpoint, timeout_s=1.0, queue=queue)
    runner = SinkRunner(OtlpLogsSink(settings), queue)
    runner.start()
    events = _events(int(seconds * 200) + 1)
    worst = 0.0
    cpu0, wall0 = time.process_time(), time.monotonic()
    for i, event in enumerate(events):
        t = time.perf_counter()
        runner.committed([event])
        worst = max(worst, time.perf_counter() - t)
        time.sleep(max(0.0, wall0 + (i + 1) / 200 - time.monotonic()))
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    peak_queue = runner.stats()["queue"]
    runner.closed()
    stats = runner.stats()
    print(f"{kind} collector, {len(events)} calls at 200/s over {wall:.1f} s:")
    print(f"  longest committed() {worst * 1e6:7.1f} µs (GIL switch interval: 5 ms)", end="")
    print(f"   process CPU {cpu / wall * 100:5.1f} %")
    print(f"  queue at end of feed {peak_queue}/{queue.queue_size}", end="")
    print(f"   failed attempts {stats['failures']}")
    print(f"  sent {stats['sent']}   dropped {stats['dropped']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--outage-s", type=float, default=8.0)
    args = parser.parse_args()
    cpu_per_call(args.calls)
    outage("dead (connection refused)", f"http://127.0.0.1:{_refused_port()}", args.outage_s)
    hung, port = _hung_listener()
    outage("hung (accepts, never answers)", f"http://127.0.0.1:{port}", args.outage_s)
    hung.close()


if __name__ == "__main__":
    main()
