"""Many LLM streams at once through the eBPF capture: nothing may be dropped.

Runs the TLS stand-in, starts the capture and a Pipeline, and has one AsyncOpenAI
client stream ``--streams`` chat completions concurrently (one TLS connection
each). Prints the events the pipeline made of the client's connections, the
usage they add up to next to what the client itself reported, and every drop
counter (ring buffer, cap, read, queue). Exit status 1 if anything was dropped
or the usage differs.

Run as root: ``.venv/bin/python bench/streams.py [--streams 200]``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def main() -> int:
    """Run the benchmark; print the figures."""
    from lumen_sniff.capture.bpf.loader import BpfCapture
    from lumen_sniff.capture.bpf.settings import BpfSettings
    from lumen_sniff.model import UsageEvent
    from lumen_sniff.pipeline import Pipeline, PipelineSettings

    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=200)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/streams.py needs root (eBPF)", file=sys.stderr)
        return 2
    ca_dir = tempfile.mkdtemp(prefix="lumen-streams-")
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.standin", "--tls", "--port", "0", "--ca-dir", ca_dir],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert server.stdout is not None
    info = json.loads(server.stdout.readline())
    capture = BpfCapture(BpfSettings(exclude_pids=(server.pid,)))
    capture.start()
    events: list[UsageEvent] = []
    stop = threading.Event()

    def pump() -> None:
        pipeline = Pipeline(PipelineSettings())
        while not (stop.is_set() and capture.chunks.empty()):
            try:
                chunk = capture.chunks.get(timeout=0.05)
            except queue.Empty:
                continue
            for out in pipeline.feed(chunk):
                if isinstance(out, UsageEvent):
                    events.append(out)
                else:
                    capture.ignore(out.conn)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "tests.support.clients", "openai_async_streams",
             "--base-url", info["base_url"], "--ca", info["ca"],
             "--concurrency", str(args.streams)],
            capture_output=True, text=True, cwd=REPO, timeout=600,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        if run.returncode != 0:
            print(run.stderr[-3000:], file=sys.stderr)
            return 1
        client = json.loads(run.stdout.strip().splitlines()[-1])
        time.sleep(0.5)  # the last records and closes
        stop.set()
        thread.join(10)
        status = capture.status()
    finally:
        capture.stop()
        server.terminate()
        server.wait(5)
    client_pid = {e.pid for e in events if e.process == "python"}
    mine = [e for e in events if e.pid in client_pid and e.api == "chat"]
    captured = {f: sum(getattr(e, f) for e in mine) for f in _FIELDS}
    dropped = status["dropped"]
    print(f"streams: {args.streams} concurrent, client done in {elapsed:.2f} s")
    complete = sum(e.complete for e in mine)
    print(f"events: {len(mine)} (client made {client['calls']} calls), complete {complete}")
    print(f"usage captured {captured}")
    print(f"usage reported {client['usage']}")
    print(f"records {status['counters']['records']}, bytes {status['counters']['bytes']}")
    print(f"drops {dropped}")
    ok = (
        not any(dropped.values())
        and captured == client["usage"]
        and len(mine) == client["calls"] == args.streams
    )
    print("OK: zero drops, usage exact" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
