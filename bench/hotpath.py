"""The daemon's per-record path without the kernel: µs per call on one core.

The ring-buffer records of ``--calls`` calls are built first, byte for byte what
the BPF program writes for the throughput phase's client (``bench/daemon_load.py``:
the stand-in's OpenAI chat and Anthropic messages, plain and streamed, one record
per ``SSL_write``/``SSL_read``, 50 calls per connection). Then, timed apart:

- *record → queue*: the ring walk (``MappedRing.consume`` over a ring image laid
  out as the kernel maps it, ``tests/support/ringimage.py``) and
  ``BpfCapture._on_records`` per batch (decode, filters, offsets, process
  lookup, Chunk) into the daemon's ``BellQueue``, one put per batch;
- *queue → events*: the pump's batch drain and ``Pipeline.feed`` to costed events.

The epoll wake-ups, the store and the API are not included: ``bench/daemon.py``
measures the whole daemon. Each figure is the median of ``--repeat`` passes after
a warm-up. Run: ``.venv/bin/python bench/hotpath.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from daemon_load import CALLS_PER_CONN, KINDS, write_wire  # noqa: E402

from lumen_sniff.capture.bpf.loader import BpfCapture  # noqa: E402
from lumen_sniff.capture.bpf.ringrecords import Kind, RecordHeader  # noqa: E402
from lumen_sniff.capture.bpf.settings import BpfSettings  # noqa: E402
from lumen_sniff.daemon import _drain  # noqa: E402
from lumen_sniff.doorbell import BellQueue, Doorbell  # noqa: E402
from lumen_sniff.model import UsageEvent  # noqa: E402
from lumen_sniff.pipeline import Pipeline, PipelineSettings  # noqa: E402
from tests.support.ringimage import RingImage  # noqa: E402


def _wire() -> tuple[list[bytes], list[list[bytes]]]:
    with tempfile.TemporaryDirectory() as tmp:
        write_wire(Path(tmp), "localhost")
        reqs = [(Path(tmp) / f"req{k}").read_bytes() for k in range(KINDS)]
        reps = []
        for k in range(KINDS):
            raw, parts, at = (Path(tmp) / f"rep{k}").read_bytes(), [], 0
            while at < len(raw):
                n = int.from_bytes(raw[at:at + 4], "little")
                parts.append(raw[at + 4:at + 4 + n])
                at += 4 + n
            reps.append(parts)
    return reqs, reps


def records(calls: int) -> list[bytes]:
    """The ring-buffer records of ``calls`` calls of this process, close records included."""
    reqs, reps = _wire()
    pid, out, ts = os.getpid(), [], 1_000_000_000

    def record(kind: Kind, ssl: int, direction: int, offset: int, data: bytes) -> bytes:
        head = RecordHeader(ts_ns=ts, ssl=ssl, offset=offset, cgroup_id=1, pid=pid,
                            tid=pid + 1, data_len=len(data), kind=kind,
                            direction=direction, comm=b"loadgen")
        return bytes(head) + data

    for conn in range(-(-calls // CALLS_PER_CONN)):
        ssl, offsets = 0x7F0000001000 + conn * 4096, [0, 0]
        for n in range(CALLS_PER_CONN):
            for direction, parts in ((0, [reqs[n % KINDS]]), (1, reps[n % KINDS])):
                for part in parts:
                    ts += 1000
                    out.append(record(Kind.DATA, ssl, direction, offsets[direction], part))
                    offsets[direction] += len(part)
        out.append(record(Kind.CLOSE, ssl, 0, 0, b""))
    return out


def ring_of(raws: list[bytes]) -> RingImage:
    """Every record written once into a ring image big enough to hold them all."""
    size = 1 << max(12, (sum(len(r) + 16 for r in raws)).bit_length())
    image = RingImage(size)
    for raw in raws:
        image.write(raw)
    return image


def one_pass(image: RingImage, calls: int, pipeline: Pipeline) -> tuple[float, float]:
    """(record → queue, queue → events) CPU seconds of one pass."""
    capture = BpfCapture(BpfSettings(queue_size=1 << 22))
    queue = capture.chunks = BellQueue(1 << 22, Doorbell(asyncio.new_event_loop()))
    image.rewind()
    ring = image.ring()
    t0 = time.process_time()
    ring.consume(capture._on_records)
    t1 = time.process_time()
    events = 0
    feed = pipeline.feed
    while batch := list(_drain(queue, 2048)):
        for chunk in batch:
            for out in feed(chunk):
                events += type(out) is UsageEvent
    t2 = time.process_time()
    if events != calls:
        raise SystemExit(f"{events} events for {calls} calls: the path lost calls")
    return t1 - t0, t2 - t1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    calls = -(-args.calls // CALLS_PER_CONN) * CALLS_PER_CONN
    raw = records(calls)
    bufs = ring_of(raw)
    pipeline = Pipeline(PipelineSettings())
    one_pass(bufs, calls, pipeline)  # warm-up: imports, caches, the process lookup
    capture_s, pipeline_s = [], []
    for _ in range(args.repeat):
        c, p = one_pass(bufs, calls, pipeline)
        capture_s.append(c)
        pipeline_s.append(p)
    c, p = statistics.median(capture_s), statistics.median(pipeline_s)
    print(f"{calls} calls, {len(raw)} records ({len(raw) / calls:.1f} per call); "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"record -> queue   {c * 1e6 / calls:7.1f} us/call  {c * 1e6 / len(raw):6.2f} us/record")
    print(f"queue -> events   {p * 1e6 / calls:7.1f} us/call")
    print(f"total             {(c + p) * 1e6 / calls:7.1f} us/call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
