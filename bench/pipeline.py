"""Benchmark the pure pipeline on one core: MB/s and exchanges/s.

Usage: ``.venv/bin/python bench/pipeline.py [--scale 1.0] [--repeat 3] [--profile SCENARIO]``

Scenarios (all Chunks are built before the clock starts):

- ``sse``: OpenAI chat and Anthropic messages streams, thousands of deltas each,
  chunked transfer coding, one server write per SSE event (as the APIs flush).
- ``small``: small non-streaming JSON exchanges on keep-alive connections.
- ``sse-16k``: the same streams read 16 KiB at a time (bulk parser throughput).
- ``gzip``: gzip + chunked JSON responses (pretty-printed, ~40 KB decoded)
  and a gzip SSE stream.

Targets: ≥ 50 MB/s for SSE and ≥ 5,000 small exchanges/s.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import gzip
import json
import os
import platform
import pstats
import sys
import time
import zlib
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lumen_sniff.model import Chunk, ConnKey, Direction, ProcessInfo, UsageEvent
from lumen_sniff.pipeline import Pipeline, PipelineSettings

T0 = 1_795_441_565_000_000_000
PROC = ProcessInfo(pid=4242, comm="python3")
_KEY = "sk-proj-bench0123456789abcdefghijklmnop"


def _request(host: str, target: str, body: dict[str, object], extra: str = "") -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: gzip, deflate\r\n"
        f"Connection: keep-alive\r\nAuthorization: Bearer {_KEY}\r\nAccept: application/json\r\n"
        f"Content-Type: application/json\r\nUser-Agent: OpenAI/Python 2.54.0\r\n{extra}"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def _chunked(pieces: list[bytes]) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p] + [b"0\r\n\r\n"]


class _Builder:
    """Chunks of many connections, offsets kept per direction."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.offsets: dict[tuple[int, Direction], int] = {}
        self.ts = T0
        self.ingress_bytes = 0
        self.total_bytes = 0

    def add(self, handle: int, direction: Direction, data: bytes) -> None:
        key = (handle, direction)
        offset = self.offsets.get(key, 0)
        self.offsets[key] = offset + len(data)
        self.ts += 1000
        conn = ConnKey(source="bpf", pid=4242, handle=handle)
        self.chunks.append(
            Chunk(conn=conn, direction=direction, offset=offset, ts_ns=self.ts, data=data,
                  process=PROC)
        )
        self.total_bytes += len(data)
        if direction is Direction.INGRESS:
            self.ingress_bytes += len(data)

    def exchange(self, handle: int, request: bytes, head: bytes, writes: list[bytes]) -> None:
        self.add(handle, Direction.EGRESS, request)
        self.add(handle, Direction.INGRESS, head)
        for w in writes:
            self.add(handle, Direction.INGRESS, w)


_SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
             b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n")


def _openai_sse(deltas: int) -> list[bytes]:
    events = []
    for i in range(deltas):
        chunk = {"id": "chatcmpl-BENCH", "object": "chat.completion.chunk", "created": 1,
                 "model": "gpt-4o-mini-2024-07-18", "service_tier": "default",
                 "system_fingerprint": "fp_0392822090",
                 "choices": [{"index": 0, "delta": {"content": f" word{i}"}, "logprobs": None,
                              "finish_reason": None}],
                 "usage": None, "obfuscation": "aBcD3"}
        events.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
    final = {"id": "chatcmpl-BENCH", "object": "chat.completion.chunk", "created": 1,
             "model": "gpt-4o-mini-2024-07-18", "choices": [],
             "usage": {"prompt_tokens": 87, "completion_tokens": deltas,
                       "total_tokens": 87 + deltas}}
    events.append(b"data: " + json.dumps(final, separators=(",", ":")).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def _anthropic_sse(deltas: int) -> list[bytes]:
    def ev(name: str, obj: Mapping[str, object]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + json.dumps(
            obj, separators=(",", ":")).encode() + b"\n\n"

    start = {"type": "message_start", "message": {
        "model": "claude-sonnet-4-5-20250929", "id": "msg_01BENCH", "type": "message",
        "role": "assistant", "content": [], "stop_reason": None,
        "usage": {"input_tokens": 17, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 1}}}
    events = [ev("message_start", start),
              ev("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}})]
    for i in range(deltas):
        events.append(ev("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": f" pelican name number {i}"}}))
    events.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(ev("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": "end_turn"},
                                       "usage": {"output_tokens": deltas}}))
    events.append(ev("message_stop", {"type": "message_stop"}))
    return events


def build_sse(scale: float) -> _Builder:
    b = _Builder()
    streams = max(2, int(10 * scale))
    for n in range(streams):
        if n % 2 == 0:
            req = _request("api.openai.com", "/v1/chat/completions",
                           {"model": "gpt-4o-mini", "stream": True,
                            "stream_options": {"include_usage": True},
                            "messages": [{"role": "user", "content": "hi"}]})
            b.exchange(n, req, _SSE_HEAD, _chunked(_openai_sse(4000)))
        else:
            req = _request("api.anthropic.com", "/v1/messages",
                           {"model": "claude-sonnet-4-5", "max_tokens": 8192, "stream": True,
                            "messages": [{"role": "user", "content": "hi"}]},
                           "anthropic-version: 2023-06-01\r\n")
            b.exchange(n, req, _SSE_HEAD, _chunked(_anthropic_sse(4000)))
    return b


def build_small(scale: float) -> _Builder:
    b = _Builder()
    body = json.dumps({
        "id": "chatcmpl-BENCH", "object": "chat.completion", "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!",
                                             "refusal": None}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12,
                  "prompt_tokens_details": {"cached_tokens": 0}},
    }).encode()
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: keep-alive\r\n\r\n" % len(body))
    req = _request("api.openai.com", "/v1/chat/completions",
                   {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    for i in range(int(20000 * scale)):
        b.exchange(i % 64, req, head + body, [])
    return b


def build_gzip(scale: float) -> _Builder:
    b = _Builder()
    doc = {"id": "chatcmpl-BENCH", "object": "chat.completion", "created": 1,
           "model": "gpt-4o-mini-2024-07-18",
           "choices": [{"index": 0, "message": {"role": "assistant",
                                                "content": "lorem ipsum dolor " * 2000},
                        "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 1149, "completion_tokens": 353, "total_tokens": 1502,
                     "prompt_tokens_details": {"cached_tokens": 1024}}}
    blob = gzip.compress(json.dumps(doc, indent=2).encode(), mtime=0)
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    req = _request("api.openai.com", "/v1/chat/completions",
                   {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    for i in range(int(2000 * scale)):
        pieces = [blob[j : j + 1024] for j in range(0, len(blob), 1024)]
        b.exchange(i % 32, req, head, _chunked(pieces))
    comp = zlib.compressobj(wbits=31)
    events = [comp.compress(e) + comp.flush(zlib.Z_SYNC_FLUSH) for e in _anthropic_sse(4000)]
    events[-1] += comp.flush()
    req = _request("api.anthropic.com", "/v1/messages",
                   {"model": "claude-sonnet-4-5", "max_tokens": 8192, "stream": True,
                    "messages": [{"role": "user", "content": "hi"}]})
    sse_gzip_head = _SSE_HEAD.replace(b"Connection:", b"Content-Encoding: gzip\r\nConnection:")
    for n in range(max(1, int(4 * scale))):
        b.exchange(100 + n, req, sse_gzip_head, _chunked(events))
    return b


def build_sse_bulk(scale: float) -> _Builder:
    """The SSE streams read 16 KiB at a time (a busy client, or pcap segments)."""
    src = build_sse(scale)
    out = _Builder()
    pending: list[bytes] = []
    last: tuple[int, Direction] | None = None

    def flush() -> None:
        if pending and last is not None:
            out.add(last[0], last[1], b"".join(pending))
            pending.clear()

    for chunk in src.chunks:
        key = (chunk.conn.handle, chunk.direction)
        if key != last or sum(map(len, pending)) + len(chunk.data) > 16384:
            flush()
            last = key
        pending.append(chunk.data)
    flush()
    return out


def run(builder: _Builder) -> tuple[float, float, int]:
    """Feed every Chunk; return (wall seconds, CPU seconds, UsageEvents)."""
    pipeline = Pipeline(PipelineSettings(key_salt=b"bench"))
    events = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for chunk in builder.chunks:
        for out in pipeline.feed(chunk):
            events += type(out) is UsageEvent
    for out in pipeline.close():
        events += type(out) is UsageEvent
    return time.perf_counter() - start, time.process_time() - cpu_start, events


def machine() -> str:
    """One line naming what the figures were measured on."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"machine: nproc={os.cpu_count()} cpu={model!r} kernel={platform.release()} "
        f"python={platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="workload size factor")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per scenario")
    parser.add_argument("--profile", choices=("sse", "sse-16k", "small", "gzip"),
                        help="cProfile one scenario")
    args = parser.parse_args()
    pinned = ""
    if hasattr(os, "sched_setaffinity"):
        cpu = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {cpu})  # one core
        pinned = f", pinned to CPU {cpu}"
    builders = {
        "sse": build_sse,
        "sse-16k": build_sse_bulk,
        "small": build_small,
        "gzip": build_gzip,
    }
    if args.profile:
        builder = builders[args.profile](args.scale)
        prof = cProfile.Profile()
        prof.enable()
        run(builder)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    print(machine() + pinned)
    print(f"best and median of {args.repeat} runs, wall clock; cpu = MB per CPU second in the "
          "best run (leaves out time the core spent on other processes)")
    print("targets: sse ≥ 50 MB/s, small ≥ 5000 exch/s")
    print(f"{'scenario':<8} {'exchanges':>9} {'MB fed':>7} {'best s':>7} {'MB/s':>7} "
          f"{'(median)':>8} {'exch/s':>8} {'(median)':>8} {'cpu':>7}")
    for name, build in builders.items():
        builder = build(args.scale)
        run(build(min(args.scale, 0.1)))  # warm caches (pricing lookups, imports)
        times: list[float] = []
        cpu_times: list[float] = []
        events = 0
        for _ in range(max(1, args.repeat)):
            gc.collect()
            seconds, cpu_seconds, events = run(builder)
            times.append(seconds)
            cpu_times.append(cpu_seconds)
        times.sort()
        best, median, cpu_best = times[0], times[len(times) // 2], min(cpu_times)
        mb = builder.total_bytes / 1e6
        print(f"{name:<8} {events:>9} {mb:>7.1f} {best:>7.3f} {mb / best:>7.1f} "
              f"{mb / median:>8.1f} {events / best:>8.0f} {events / median:>8.0f} "
              f"{mb / cpu_best:>7.1f}")


if __name__ == "__main__":
    main()
