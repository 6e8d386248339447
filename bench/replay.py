"""Benchmark: ``lumen-sniff replay`` against ``tshark -r FILE -Y http`` on a big capture.

Builds (once, cached under /tmp) a pcap of thousands of streamed OpenAI-style
chat completions to a local server on port 8080 (a port tshark dissects as
HTTP), 40 connections interleaved at a time, one SSE event per HTTP chunk per
TCP segment, as a token-by-token stream looks on the wire. Then times both
tools over it ``--runs`` times, interleaved, and prints the machine, the
capture's size and frame count, every run, best and median of each tool and
the ratios.

Usage: ``.venv/bin/python bench/replay.py [--exchanges N] [--tokens N] [--runs N] [--jobs N]
[--rebuild]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.make_pcaps import Conversation, frame

CACHE = Path("/tmp/lumen-sniff-bench")
LINKTYPE = 1
PARALLEL = 40


def _request(i: int) -> bytes:
    body = json.dumps({
        "model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": f"question number {i}, please answer at length"}],
    }).encode()  # fmt: skip
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        "Content-Type: application/json\r\nAuthorization: Bearer sk-bench-0000\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _response_parts(i: int, tokens: int) -> list[bytes]:
    def chunk(event: dict[str, object] | str) -> bytes:
        text = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))
        data = f"data: {text}\n\n".encode()
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    base = {"id": f"chatcmpl-{i}", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18"}  # fmt: skip
    parts = [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    ]
    for t in range(tokens):
        delta = {"content": f" word{t}"}
        parts.append(
            chunk(
                {
                    **base,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                    "usage": None,
                }
            )
        )
    usage = {"prompt_tokens": 20, "completion_tokens": tokens, "total_tokens": 20 + tokens}
    parts.append(chunk({**base, "choices": [], "usage": usage}))
    parts.append(chunk("[DONE]"))
    parts.append(b"0\r\n\r\n")
    return parts


def build(path: Path, exchanges: int, tokens: int) -> None:
    """Write the synthetic capture to ``path`` (classic pcap, nanoseconds)."""
    import struct

    tmp = path.with_suffix(".tmp")
    ts = 1_700_000_000 * 10**9
    with open(tmp, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, LINKTYPE))

        def emit(packets: list[bytes]) -> None:
            nonlocal ts
            for packet in packets:
                data = frame(LINKTYPE, packet)
                ts += 20_000
                sec, ns = divmod(ts, 10**9)
                f.write(struct.pack("<IIII", sec, ns, len(data), len(data)) + data)

        active: list[tuple[Conversation, list[list[bytes]]]] = []
        started = 0
        while started < exchanges or active:
            while started < exchanges and len(active) < PARALLEL:
                client = (f"10.1.{started // 250 % 250}.{started % 250 + 1}",
                          40000 + started % 20000)  # fmt: skip
                conv = Conversation(client, ("10.0.0.2", 8080), client_isn=started * 7919)
                steps = [conv.handshake(), conv.send("c", _request(started))]
                steps += [conv.send("s", part) for part in _response_parts(started, tokens)]
                steps += [conv.fin("c") + conv.fin("s")]
                active.append((conv, steps))
                started += 1
            for entry in list(active):
                emit(entry[1].pop(0))
                if not entry[1]:
                    active.remove(entry)
    tmp.rename(path)


def _time(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed, done.stdout


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, load {load}"


def _frames(path: Path) -> int:
    from lumen_sniff.capture.pcap.pcapfile import CaptureFile

    with CaptureFile(path) as capture:
        for _ in capture.raw():
            pass
        return capture.frames_read


def main() -> int:
    """Build the capture if needed, time both tools ``--runs`` times, print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--exchanges", type=int, default=4000)
    parser.add_argument("--tokens", type=int, default=150)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each tool")
    parser.add_argument("--jobs", type=int, default=0, help="lumen-sniff replay --jobs (0: auto)")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"stream-{args.exchanges}x{args.tokens}.pcap"
    if args.rebuild or not path.exists():
        started = time.perf_counter()
        build(path, args.exchanges, args.tokens)
        print(f"built {path} in {time.perf_counter() - started:.1f}s")
    size_mb = path.stat().st_size / 1e6
    print(f"machine: {_machine()}")
    print(f"capture: {path} ({size_mb:.1f} MB, {_frames(path)} frames, "
          f"{args.exchanges} streamed exchanges of {args.tokens} tokens)")  # fmt: skip

    lumen = [str(Path(sys.executable).parent / "lumen-sniff"), "replay", str(path), "--json"]
    if args.jobs:
        lumen += ["--jobs", str(args.jobs)]
    tshark = shutil.which("tshark")
    ours: list[float] = []
    theirs: list[float] = []
    good = 0
    for run in range(1, args.runs + 1):  # interleaved, so both see the same machine load
        elapsed, out = _time(lumen)
        ours.append(elapsed)
        events = [json.loads(line) for line in out.splitlines()]
        good = sum(
            1 for e in events if e["output_tokens"] == args.tokens and e["input_tokens"] == 20
        )
        line = f"run {run}: lumen-sniff {elapsed:.2f}s ({len(events)} events, {good} exact)"
        if tshark is not None:
            elapsed, out = _time([tshark, "-n", "-r", str(path), "-Y", "http"])
            theirs.append(elapsed)
            line += f", tshark {elapsed:.2f}s ({len(out.splitlines())} lines)"
        print(line, flush=True)
    jobs = f" --jobs {args.jobs}" if args.jobs else ""
    print(f"lumen-sniff replay --json{jobs}: best {min(ours):.2f}s "
          f"({size_mb / min(ours):.1f} MB/s), median {median(ours):.2f}s")  # fmt: skip
    if not theirs:
        print("tshark not installed: no comparison")
        return 0 if good == args.exchanges else 1
    print(f"tshark -r FILE -Y http: best {min(theirs):.2f}s ({size_mb / min(theirs):.1f} MB/s), "
          f"median {median(theirs):.2f}s")  # fmt: skip
    print(f"ratio (tshark time / lumen-sniff time): best {min(theirs) / min(ours):.2f}x, "
          f"median {median(theirs) / median(ours):.2f}x")  # fmt: skip
    return 0 if good == args.exchanges else 1


if __name__ == "__main__":
    os.environ.setdefault("LC_ALL", "C")
    sys.exit(main())
