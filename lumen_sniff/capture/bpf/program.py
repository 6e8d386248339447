"""What the capture program needs from the kernel's side: its functions' kinds, tracefs.

Kept apart from :mod:`lumen_sniff.capture.bpf.loader` (which runs the threads):
these are facts about ``bpf/lumen.bpf.c`` and the machine it loads on.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from lumen_sniff.capture.bpf.runtime.loaded import TRACEPOINT, ProgKind

__all__ = ["PROGRAM_KINDS", "TRACEFS", "mount_tracefs"]

log = logging.getLogger("lumen_sniff.capture.bpf")

TRACEFS = Path("/sys/kernel/tracing")

PROGRAM_KINDS: dict[str, ProgKind] = {
    f"tracepoint__{category}__{event}": ProgKind(
        prog_type=TRACEPOINT, tracepoint=f"{category}:{event}"
    )
    for category, event in (
        ("sched", "sched_process_exec"),
        ("syscalls", "sys_enter_mmap"),
        ("sched", "sched_process_exit"),
    )
}
"""The program's tracepoints (its TRACEPOINT_PROBEs); every other function is a uprobe.
``tests/unit/test_bpf_runtime.py`` checks these rows against the C file."""


def mount_tracefs() -> None:
    """Mount tracefs when it is not: tracepoints are found there (and old kernels'
    uprobes live there), and minimal systems do not mount it."""
    if (TRACEFS / "uprobe_events").exists():
        return
    proc = subprocess.run(
        ["mount", "-t", "tracefs", "nodev", str(TRACEFS)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        log.warning("could not mount tracefs at %s: %s", TRACEFS, proc.stderr.strip())
