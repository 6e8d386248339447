"""How long the kernel's verifier takes per capture program (copy-budget judge included).

A warm start loads every probe program it attaches through the verifier; the
copy budget's request-line judge is the costly part of them. This compiles the
capture program as the daemon would (through the object cache, so a second run
does not compile), then loads each probe program ``--rounds`` times and prints
the median milliseconds per program and their sum. ``--budget 0`` gives the
program without the judge, for comparison. Run as root:
``.venv/bin/python bench/verifytime.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lumen_sniff.capture.bpf.libraries import TLS_LIBRARIES
from lumen_sniff.capture.bpf.loader import BpfCapture
from lumen_sniff.capture.bpf.program import PROGRAM_KINDS
from lumen_sniff.capture.bpf.runtime.cache import CompileJob, CompileRequest
from lumen_sniff.capture.bpf.runtime.loaded import BpfObject
from lumen_sniff.capture.bpf.settings import BpfSettings
from lumen_sniff.pipeline.pathneedles import kernel_path_filter


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=32 * 1024, help="copy budget bytes")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "lumen-verifytime"))
    args = parser.parse_args()
    prefixes, parts = kernel_path_filter()  # the daemon's: the judge is compiled in
    settings = BpfSettings(
        budget_bytes=args.budget, llm_path_prefixes=prefixes, llm_path_parts=parts
    )
    capture = BpfCapture(settings)
    text, cflags = capture.render_source()
    job = CompileJob(
        CompileRequest(name="capture", text=text, cflags=tuple(cflags)), Path(args.cache)
    )
    obj = job.result()
    names = sorted({p.fn_name for library in TLS_LIBRARIES for p in library.probes})
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):
        bpf = BpfObject(obj, PROGRAM_KINDS)
        try:
            for name in names:
                t0 = time.perf_counter()
                bpf.load_func(name)
                times[name].append((time.perf_counter() - t0) * 1000)
        finally:
            bpf.cleanup()
    total = 0.0
    for name in names:
        med = statistics.median(times[name])
        total += med
        print(f"{name:36s} {med:8.2f} ms")
    print(f"{'sum of medians':36s} {total:8.2f} ms  ({len(names)} programs, budget {args.budget})")
    print(f"load average: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
