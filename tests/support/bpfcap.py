"""Shared machinery of the eBPF integration tests: one capture, test cgroups, servers.

The capture is compiled and attached once per test process (bcc takes about a
second) and drained by a collector thread. Other programs on the machine use
TLS too, so every client a test starts runs in a fresh cgroup v2 directory and
the collector keeps only Chunks whose cgroup id belongs to a test (children such
as the curl a driver spawns inherit the cgroup, so they are caught too).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumen_sniff.model import Chunk, ConnKey, Direction

__all__ = [
    "CGROUP_ROOT",
    "REPO",
    "Collector",
    "Server",
    "TestCgroup",
    "bpf_ready",
    "reassemble",
    "shared_capture",
    "spawn_server",
    "tls_standin",
]

REPO = Path(__file__).resolve().parents[2]
CGROUP_ROOT = next(
    (
        p
        for p in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
        if (p / "cgroup.procs").exists()
    ),
    Path("/sys/fs/cgroup"),
)
"""The cgroup v2 hierarchy (bpf_get_current_cgroup_id reports ids from it)."""


def bpf_ready() -> tuple[bool, str]:
    """Whether this machine can run the eBPF tests, and why not."""
    if os.geteuid() != 0:
        return False, "eBPF capture needs root"
    try:
        import bcc  # noqa: F401
    except ImportError as exc:
        return False, f"bcc not importable: {exc}"
    if not (CGROUP_ROOT / "cgroup.procs").exists():
        return False, "no cgroup v2 hierarchy to isolate test clients"
    return True, ""


class Collector:
    """Drains a capture's queue, keeping the Chunks of registered cgroups."""

    def __init__(self, capture: Any) -> None:
        self.capture = capture
        self._lock = threading.Lock()
        self._cgroups: set[int] = set()
        self._conns: set[ConnKey] = set()
        self._chunks: list[Chunk] = []
        self._thread = threading.Thread(target=self._run, name="bpf-collector", daemon=True)
        self._stop = threading.Event()
        self._thread.start()

    def _run(self) -> None:
        import queue

        while not self._stop.is_set():
            try:
                chunk = self.capture.chunks.get(timeout=0.05)
            except queue.Empty:
                continue
            with self._lock:
                cg = chunk.process.cgroup_id if chunk.process else None
                if cg in self._cgroups or chunk.conn in self._conns:
                    self._conns.add(chunk.conn)
                    self._chunks.append(chunk)

    def watch(self, cgroup_id: int) -> None:
        """Keep Chunks from this cgroup from now on."""
        with self._lock:
            self._cgroups.add(cgroup_id)

    def chunks(self, pred: Callable[[Chunk], bool] = lambda c: True) -> list[Chunk]:
        """Kept Chunks matching ``pred``, in arrival order."""
        with self._lock:
            return [c for c in self._chunks if pred(c)]

    def wait_for(
        self,
        pred: Callable[[list[Chunk]], bool],
        *,
        of: Callable[[Chunk], bool],
        timeout_s: float = 5,
    ) -> list[Chunk]:
        """Wait until ``pred`` holds for the kept Chunks matching ``of``; return them."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.chunks(of)
            if pred(got) or time.monotonic() > deadline:
                return got
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop draining."""
        self._stop.set()
        self._thread.join(2)


@functools.cache
def shared_capture() -> Collector:
    """The one capture of this test process (started on first use, stopped at exit)."""
    from lumen_sniff.capture.bpf.loader import BpfCapture
    from lumen_sniff.capture.bpf.settings import BpfSettings
    from lumen_sniff.pipeline.pathneedles import kernel_path_filter

    # The daemon's copy budget too: every real-client test then shows that no
    # LLM call loses a byte to it.
    prefixes, parts = kernel_path_filter()
    settings = BpfSettings(queue_size=1 << 20, llm_path_prefixes=prefixes, llm_path_parts=parts)
    capture = BpfCapture(settings)
    capture.start()
    collector = Collector(capture)

    def _stop() -> None:
        collector.stop()
        capture.stop()

    atexit.register(_stop)
    return collector


class TestCgroup:
    """A fresh cgroup v2 directory; processes started through :meth:`argv` run in it."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.path = CGROUP_ROOT / f"lumen-test-{uuid.uuid4().hex[:12]}"
        self.path.mkdir()
        self.cgroup_id = os.stat(self.path).st_ino
        """What bpf_get_current_cgroup_id reports for processes in it."""

    def argv(self, *cmd: str) -> list[str]:
        """``cmd`` wrapped so that it joins this cgroup before it execs."""
        return ["/bin/sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh", *cmd]

    def remove(self) -> None:
        """Remove the directory (once its processes are gone)."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.05)


@dataclass(frozen=True, kw_only=True, slots=True)
class Server:
    """A server subprocess and what it printed when it started listening."""

    proc: subprocess.Popen[str]
    info: dict[str, Any]


@contextlib.contextmanager
def spawn_server(
    *args: str, wrap: Callable[..., list[str]] | None = None
) -> Iterator[Server]:
    """Run ``python -m <args>`` until it prints its JSON line; kill it afterwards.

    ``wrap``: turns the command into the one to run (``TestCgroup.argv``: the
    server then runs, and is captured, in that cgroup; it execs, so the pid is its own).
    """
    argv = [sys.executable, "-m", *args]
    proc = subprocess.Popen(
        wrap(*argv) if wrap else argv, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"server {args} exited: {proc.wait()}")
        yield Server(proc=proc, info=json.loads(line))
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def tls_standin() -> Iterator[Server]:
    """The provider stand-in over TLS on an ephemeral port, with its own throwaway CA."""
    with (
        tempfile.TemporaryDirectory() as ca_dir,
        spawn_server("tests.support.standin", "--tls", "--port", "0", "--ca-dir", ca_dir) as server,
    ):
        yield server


def reassemble(chunks: list[Chunk], direction: Direction) -> tuple[bytes, int]:
    """One direction's bytes, by offset, with the total of lost bytes.

    Raises AssertionError when the Chunks overlap or leave a gap not accounted
    as lost: a capture must say exactly which bytes it missed.
    """
    out = bytearray()
    lost = 0
    for chunk in sorted(
        (c for c in chunks if c.direction == direction and (c.data or c.lost_bytes)),
        key=lambda c: c.offset,
    ):
        assert chunk.offset == len(out) + lost, (chunk.offset, len(out), lost)
        out += chunk.data
        lost += chunk.lost_bytes
    return bytes(out), lost
