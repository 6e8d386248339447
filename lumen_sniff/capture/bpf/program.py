"""What the capture program needs from the kernel's side: its functions' kinds, tracefs.

Kept apart from :mod:`lumen_sniff.capture.bpf.loader` (which runs the threads):
these are facts about ``bpf/lumen.bpf.c`` and the machine it loads on.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
from pathlib import Path

from lumen_sniff.capture.bpf.btf import member_offsets_bytes
from lumen_sniff.capture.bpf.ringrecords import HEADER_PATH
from lumen_sniff.capture.bpf.runtime.loaded import TRACEPOINT, ProgKind
from lumen_sniff.capture.bpf.settings import BpfSettings

__all__ = ["PROGRAM_KINDS", "SOURCE_PATH", "TRACEFS", "mount_tracefs", "render_capture"]

log = logging.getLogger("lumen_sniff.capture.bpf")

TRACEFS = Path("/sys/kernel/tracing")

SOURCE_PATH = HEADER_PATH.parent / "lumen.bpf.c"
"""The BPF C program."""

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


@functools.cache
def _task_offsets() -> dict[str, int]:
    try:
        return member_offsets_bytes("task_struct", ("group_leader", "comm"))
    except (OSError, KeyError, ValueError) as exc:
        # Without BTF the thread's own comm is used; procinfo fills the leader's.
        log.warning("no kernel BTF for task_struct (%s): comm is the thread's", exc)
        return {}


def render_capture(s: BpfSettings) -> tuple[str, list[str]]:
    """The C program and the cflags it is compiled with: settings reach it as ``-D``s only."""
    chunks = -(-s.max_bytes_per_call // s.chunk_bytes)
    page = os.sysconf("SC_PAGE_SIZE")
    cflags = [
        f"-I{HEADER_PATH.parent}",
        f"-DLUMEN_CHUNK_BYTES={s.chunk_bytes}",
        f"-DLUMEN_CAP_BYTES={s.max_bytes_per_call}",
        f"-DLUMEN_MAX_CHUNKS={chunks}",
        f"-DLUMEN_RINGBUF_PAGES={max(1, s.ring_bytes // page)}",
        f"-DLUMEN_WAKEUP_RECORDS={s.wakeup_records}",
        f"-DLUMEN_WAKEUP_BYTES={s.wakeup_bytes}",
        f"-DLUMEN_BUDGET_BYTES={s.budget_bytes if s.judges_paths else 0}",
    ]
    offsets = _task_offsets()
    if offsets:
        cflags.append(f"-DLUMEN_TASK_GROUP_LEADER_OFF={offsets['group_leader']}")
        cflags.append(f"-DLUMEN_TASK_COMM_OFF={offsets['comm']}")
    if s.empty_probes:
        cflags.append("-DLUMEN_EMPTY_PROBES=1")
    return SOURCE_PATH.read_text(), cflags
