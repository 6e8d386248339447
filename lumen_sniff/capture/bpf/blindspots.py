"""The blind-spot monitor: the socket program, the unseen tracker and the registry, together.

:class:`~lumen_sniff.capture.bpf.loader.BpfCapture` owns one. It feeds it the
first plaintext write of every new SSL connection (:meth:`BlindSpots.plaintext`)
and answers, for a process that just sent a ClientHello to an LLM host, why its
plaintext could not be read (the ``explain`` callable). The socket program's
records arrive on its own thread. Everything fails open: if the socket program
cannot load, capture runs on and status says why the report is missing.
The socket program's compile starts with the capture's (:meth:`BlindSpots.begin`)
and its records are read by the capture's ring reader (:meth:`BlindSpots.start`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lumen_sniff.capture.bpf.discovery import parse_maps
from lumen_sniff.capture.bpf.procinfo import ProcCache
from lumen_sniff.capture.bpf.runtime.ringbuf import RingReader
from lumen_sniff.capture.bpf.sockets import SocketWatch
from lumen_sniff.capture.bpf.sockrecords import SockEvent, SockKind
from lumen_sniff.capture.bpf.tlslib import NO_TLS_SYMBOLS, SKIP_REASONS
from lumen_sniff.capture.bpf.unhookable import Unhookable
from lumen_sniff.capture.unseen import UnseenTracker, blind_reason
from lumen_sniff.errors import BpfUnavailable
from lumen_sniff.model import ProcessInfo
from lumen_sniff.serialize import iso_from_ns

__all__ = ["BlindSpots", "explain_process"]

log = logging.getLogger("lumen_sniff.capture.bpf.blindspots")


class BlindSpots:
    """Who talks TLS to an LLM host without lumen-sniff reading it, and why.

    Args:
        hosts: Extra API hosts → provider (config ``[providers.hosts]``).
        procs: The capture's process cache (names, exe, service).
        explain: ``(pid, process) -> reason``, called while the process exists.
        wall_offset_ns: Kernel monotonic → wall clock offset, read when needed.
        exclude_pids: Processes never reported (the daemon itself).
    """

    def __init__(
        self,
        *,
        hosts: Mapping[str, str],
        procs: ProcCache,
        explain: Callable[[int, ProcessInfo], str],
        wall_offset_ns: Callable[[], int],
        exclude_pids: tuple[int, ...] = (),
    ) -> None:
        self.registry = Unhookable()
        """Unhookable binaries and why; discovery and attach failures feed it."""
        self._tracker = UnseenTracker(hosts)
        self._procs = procs
        self._explain = explain
        self._wall = wall_offset_ns
        self._exclude = set(exclude_pids)
        self._lock = threading.Lock()
        self._watch: SocketWatch | None = None
        self._pending: SocketWatch | None = None
        self.error = ""

    def begin(self, cflags: tuple[str, ...], cache_dir: Path | None) -> None:
        """Start obtaining the socket program (compiling it alongside the capture's)."""
        self._pending = SocketWatch(
            self._on_event, self._on_tick, next_due=self._next_due, cflags=cflags
        )
        try:
            self._pending.begin(cache_dir)
        except OSError as exc:
            self._pending = None
            self.error = str(exc)
            log.warning("blind-spot report unavailable: %s", exc)

    def start(self, reader: RingReader) -> None:
        """Load and attach the socket program; on failure remember why and carry on."""
        watch, self._pending = self._pending, None
        if watch is None:
            return
        try:
            watch.start(reader)
        except (BpfUnavailable, OSError) as exc:
            self.error = str(exc)
            log.warning("blind-spot report unavailable: %s", exc)
            return
        self._watch = watch

    def stop(self) -> None:
        """Detach the socket program."""
        if self._watch is not None:
            self._watch.stop()
            self._watch = None

    def plaintext(self, pid: int, ts_ns: int) -> None:
        """``pid`` wrote the first plaintext of a new SSL connection (kernel time)."""
        with self._lock:
            self._tracker.plaintext(pid, ts_ns)

    # ------------------------------------------------------------ records

    def _on_event(self, ev: SockEvent) -> None:
        if ev.pid in self._exclude:
            return
        wall = ev.ts_ns + self._wall()
        if ev.kind is SockKind.CLOSE:
            with self._lock:
                self._tracker.close(
                    sock=ev.sock,
                    ts_ns=ev.ts_ns,
                    wall_ns=wall,
                    sent=ev.bytes_sent,
                    received=ev.bytes_received,
                )
            return
        with self._lock:
            found = self._tracker.host_of(ev.hello)
        if found is None:
            return
        host, provider = found
        # Read /proc now: the process exists while it sends its ClientHello.
        process = self._procs.lookup(pid=ev.pid, comm=ev.comm, uid=ev.uid, cgroup_id=ev.cgroup_id)
        reason = self._explain(ev.pid, process)
        with self._lock:
            self._tracker.hello(
                sock=ev.sock,
                ts_ns=ev.ts_ns,
                wall_ns=wall,
                host=host,
                provider=provider,
                process=process,
                reason=reason,
            )

    def _on_tick(self) -> None:
        with self._lock:
            self._tracker.judge(time.monotonic_ns())

    def _next_due(self) -> float | None:
        with self._lock:
            due_ns = self._tracker.next_due_ns()
        if due_ns is None:
            return None  # nothing pending: the reader may sleep until records come
        return max(0.0, (due_ns - time.monotonic_ns()) / 1e9) + 0.01

    # ------------------------------------------------------------- status

    def status(self) -> dict[str, Any]:
        """``{"active", "error", "unseen": [...], "counters", "dropped", "unhookable": [...]}``.

        ``dropped`` counts what the report lost, by reason: socket records when
        its ring buffer was full, connections past its pending or row bounds.
        """
        with self._lock:
            spots = sorted(
                self._tracker.groups.values(), key=lambda s: (-s.connections, s.host, s.process)
            )
            counters = dict(self._tracker.counters)
            rows = [
                {
                    "process": s.process,
                    "service": s.service,
                    "exe": s.exe,
                    "host": s.host,
                    "provider": s.provider,
                    "connections": s.connections,
                    "bytes_sent": s.bytes_sent,
                    "bytes_received": s.bytes_received,
                    "first_seen": iso_from_ns(s.first_seen_ns),
                    "last_seen": iso_from_ns(s.last_seen_ns),
                    "reason": s.reason,
                    "pids": sorted(s.pids),
                }
                for s in spots
            ]
        if self._watch is not None:
            counters.update(self._watch.counters())
        dropped = {
            "unseen_ringbuf_full": counters.get("ringbuf_full", 0),
            "unseen_overflow": counters["dropped"],
        }
        return {
            "active": self._watch is not None,
            "error": self.error,
            "unseen": rows,
            "counters": counters,
            "dropped": dropped,
            "unhookable": self.registry.entries(),
        }


def explain_process(
    pid: int,
    *,
    files: list[Any],
    attached: Mapping[str, list[str]],
    registry: Unhookable,
    filtered: bool,
    proc: Path = Path("/proc"),
) -> str:
    """Why ``pid``'s TLS plaintext is not read (see :func:`blind_reason`).

    Args:
        pid: The process.
        files: Discovery's judged files (``Target``), hooked or not.
        attached: Hooked path → probes attached.
        registry: The unhookable registry.
        filtered: The capture filters leave the process out.
        proc: The /proc to read its mappings from.

    Returns:
        A one-line reason.
    """
    mine = sorted((t for t in files if pid in t.pids), key=lambda t: t.kind != "executable")
    for t in mine:
        # Discovery's refusals feed the registry here, when a process needs
        # explaining (cheap, rare); "no TLS functions" is not a refusal.
        if t.skipped and t.skipped not in (NO_TLS_SYMBOLS, "unreadable"):
            registry.report(t.key, t.path, SKIP_REASONS.get(t.skipped, t.skipped))
    try:
        maps = parse_maps((proc / str(pid) / "maps").read_text())
        exe: str | None = os.readlink(proc / str(pid) / "exe")
    except OSError:
        maps, exe = [], None
    return blind_reason(
        registered=registry.reason(t.key for t in mine),
        exe=exe,
        mapped=sorted({m.path for m in maps}),
        filtered=filtered,
        hooked=any(attached.get(t.path) for t in mine),
    )
