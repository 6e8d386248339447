"""eBPF capture: load ``bpf/lumen.bpf.c``, hook TLS libraries, make Chunks.

The program is compiled by bcc in a short-lived child process, or read from the
object cache (:mod:`lumen_sniff.capture.bpf.runtime.cache`); this process loads
it with libbpf and never maps bcc's LLVM (:mod:`lumen_sniff.capture.bpf.runtime`).

Threads:

- the *ring* thread (:class:`~lumen_sniff.capture.bpf.runtime.ringbuf.RingReader`)
  blocks until the BPF program wakes it (per batch, or by the first record after
  it caught up), then turns records into Chunks on the bounded
  :attr:`BpfCapture.chunks` queue (a full queue is a counted drop); it reads the
  socket program's ring buffer too;
- the *discovery* thread rescans processes that exec'd or mapped an executable
  file (dlopen) and hooks new TLS libraries and executables.

What to hook and where comes from the TLS library table
(:mod:`lumen_sniff.capture.bpf.libraries`): each hooked file's row supplies its
attach points. Settings reach the C program as ``-D`` defines only. When the
program cannot be compiled or loaded, :meth:`BpfCapture.start` raises
:class:`lumen_sniff.errors.BpfUnavailable` with the reason.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import queue
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lumen_sniff.capture.bpf.blindspots import BlindSpots, explain_process
from lumen_sniff.capture.bpf.btf import parsed_once
from lumen_sniff.capture.bpf.conns import OpenConns
from lumen_sniff.capture.bpf.discovery import Discovery, Rescans, Target
from lumen_sniff.capture.bpf.pathtrie import load_paths
from lumen_sniff.capture.bpf.procinfo import ProcCache
from lumen_sniff.capture.bpf.program import (
    SOURCE_PATH,
    mount_tracefs,
    render_capture,
)
from lumen_sniff.capture.bpf.ringrecords import (
    HEADER_SIZE,
    Kind,
    Record,
    RecordFields,
    conn_struct,
    decode_fields_at,
    make_chunk,
    read_drops,
    record_of,
)
from lumen_sniff.capture.bpf.runtime.cache import CompileJob
from lumen_sniff.capture.bpf.runtime.loaded import BpfObject
from lumen_sniff.capture.bpf.runtime.ringbuf import RingReader
from lumen_sniff.capture.bpf.runtime.ringwalk import Spans
from lumen_sniff.capture.bpf.settings import BpfSettings
from lumen_sniff.capture.bpf.tlslib import NO_TLS_SYMBOLS
from lumen_sniff.capture.bpf.warm import capture_job, load_capture, socket_cflags
from lumen_sniff.doorbell import put_all
from lumen_sniff.errors import BpfUnavailable
from lumen_sniff.model import Chunk, ConnKey, Direction, ProcessInfo

__all__ = ["SOURCE_PATH", "BpfCapture"]

log = logging.getLogger("lumen_sniff.capture.bpf")


class BpfCapture:
    """Uprobes on SSL_read/SSL_write in every TLS library → bounded queue of Chunks."""

    source = "bpf"
    """ConnKey.source of the Chunks this backend makes."""

    def __init__(self, settings: BpfSettings | None = None) -> None:
        self.settings = settings or BpfSettings()
        self.settings.validate()
        self.chunks: queue.Queue[Chunk] = queue.Queue(maxsize=self.settings.queue_size)
        self._bpf: BpfObject | None = None
        self._reader: RingReader | None = None
        self._last_clock = time.monotonic()
        self.compile_job: CompileJob | None = None
        """How the program was obtained (cached or compiled, seconds), once started."""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._procs = ProcCache()
        self._discovery = Discovery(exclude_pids=self.settings.exclude_pids)
        self._rescans = Rescans()
        self._attached: dict[str, list[str]] = {}
        self._attach_errors: dict[str, str] = {}
        self._wall_offset_ns = time.time_ns() - time.monotonic_ns()
        self._wanted: dict[int, bool] = {}
        self._conns = OpenConns()
        self._counters = {"records": 0, "bytes": 0, "chunks": 0, "closed": 0}
        self._counters.update({"process_events": 0, "filtered_records": 0, "bad_records": 0})
        self._counters.update({"ignored_connections": 0, "queue_full": 0})
        self._queue_full_bytes = 0
        self._batch: list[Chunk] = []  # handed to ``chunks`` per ring batch
        self._blind = BlindSpots(
            hosts=dict(self.settings.hosts),
            procs=self._procs,
            explain=self._explain,
            wall_offset_ns=lambda: self._wall_offset_ns,
            exclude_pids=(*self.settings.exclude_pids, os.getpid()),
        )

    # ---------------------------------------------------------------- source

    def render_source(self) -> tuple[str, list[str]]:
        """The C program and the cflags it is compiled with (for ``--dump-bpf``)."""
        return render_capture(self.settings)

    # ----------------------------------------------------------------- start

    def start(self) -> None:
        """Load, attach to every TLS library and executable found, start the threads.

        Raises:
            BpfUnavailable: not root, or the program does not compile or load.
        """
        if os.geteuid() != 0:
            raise BpfUnavailable("eBPF capture needs root (CAP_BPF and CAP_PERFMON)")
        mount_tracefs()
        cache = Path(self.settings.object_cache_dir) if self.settings.object_cache_dir else None
        blind = self.settings.blind_spots and not self.settings.empty_probes
        with parsed_once():  # both programs' cflags read the kernel's BTF
            # Both programs compile at once (each in its own child) on a cold cache.
            self.compile_job = capture_job(self.settings, cache)
            if blind:
                self._blind.begin(socket_cflags(self.compile_job.request.cflags), cache)
        try:
            self._bpf, self.compile_job, self.settings = load_capture(
                self.settings, self.compile_job, cache
            )
            skip = self._bpf[b"lumen_skip"]
            for pid in {*self.settings.exclude_pids, os.getpid()}:
                skip[ctypes.c_uint32(pid)] = ctypes.c_uint8(1)
            load_paths(self._bpf, self.settings)  # before any probe is attached
            self._reader = RingReader(gather_s=self.settings.gather_ms / 1000)
            self._reader.add(self._bpf[b"lumen_events"], self._on_records)
            self._bpf.attach_tracepoints()
        except (OSError, KeyError, ValueError, BpfUnavailable) as exc:
            self._blind.stop()
            self.stop()
            raise BpfUnavailable(
                f"the BPF program did not load: {exc} (kernel headers? run `lumen-sniff doctor`)"
            ) from exc
        for target in self._discovery.scan_all(system=self.settings.system_libraries):
            self._attach(target)
        if blind:
            self._blind.start(self._reader)
        self._reader.add_tick(self._clock_tick)
        self._reader.start()
        thread = threading.Thread(target=self._scan_loop, name="lumen-bpf-discovery", daemon=True)
        thread.start()
        self._threads.append(thread)
        log.info(
            "eBPF capture: %d files hooked (program %s in %.2f s)",
            len(self._attached),
            "cached" if self.compile_job.cached else "compiled",
            self.compile_job.seconds,
        )

    def _attach(self, target: Target) -> None:
        done: list[str] = []
        try:
            assert self._bpf is not None
            library = target.library
            if library is None or target.facts is None:
                raise ValueError("not accepted by any TLS library row")
            for point in library.locate(library, target.path, target.facts):
                attach = self._bpf.attach_uretprobe if point.ret else self._bpf.attach_uprobe
                # A symbol's address is in the facts discovery read: no second ELF read.
                addr = target.facts.address(point.sym) if point.sym else point.addr
                where: dict[str, Any] = {"addr": addr} if addr else {"sym": point.sym}
                attach(name=point.path.encode(), fn_name=point.fn_name.encode(), **where)
                done.append(point.label)
        except Exception as exc:  # an attach raises OSError; a locator may raise anything
            self._attach_errors[target.path] = str(exc)
            row = target.library.name if target.library else "attach"
            self._blind.registry.report(target.key, target.path, f"{row}: {exc}")
            log.warning("could not hook %s: %s", target.path, exc)
        with self._lock:
            self._attached[target.path] = done

    # ------------------------------------------------------------- threads

    def _clock_tick(self) -> float | None:
        # Run by the ring reader after each wake-up (records arrived): follow NTP
        # steps, CLOCK_MONOTONIC → wall clock, at most once a second. An idle
        # daemon needs no clock, so this asks for no timer.
        now = time.monotonic()
        if now - self._last_clock > 1.0:
            self._wall_offset_ns = time.time_ns() - time.monotonic_ns()
            self._last_clock = now
        return None

    def _scan_loop(self) -> None:
        while not self._stop.is_set():
            due = self._rescans.next_due(timeout_s=1.0)  # add() wakes it
            if due is None:
                continue
            pid, forget = due
            if forget:
                self._discovery.forget_pid(pid)
                continue
            for target in self._discovery.scan_pid(pid):
                self._attach(target)

    def _explain(self, pid: int, info: ProcessInfo) -> str:
        s = self.settings
        filtered = (
            (bool(s.pids) and pid not in s.pids)
            or (bool(s.comms) and info.comm not in s.comms)
            or (bool(s.exes) and info.exe not in s.exes)
        )
        with self._lock:
            attached = dict(self._attached)
        return explain_process(
            pid,
            files=list(self._discovery.files.values()),
            attached=attached,
            registry=self._blind.registry,
            filtered=filtered,
        )

    def _on_records(self, buf: mmap.mmap, spans: Spans) -> None:
        """A batch of records from the ring (payload spans in its mapping) → one queue put."""
        counters = self._counters
        for at, size in spans:
            try:
                # Data records (nearly all) go from fields to Chunk without a Record.
                fields = decode_fields_at(buf, at, size)
                if fields is None:
                    counters["bad_records"] += 1
                elif fields[0] is Kind.DATA or fields[0] is Kind.CLOSE:
                    self._on_conn_record(fields)
                else:
                    self._on_process_record(record_of(fields))
            except Exception:  # one bad record must not cost the rest of the batch
                log.exception("ring buffer record handling failed")
        self._flush()

    def _on_process_record(self, record: Record) -> None:
        self._counters["process_events"] += 1
        pid = record.pid
        if record.kind is Kind.EXEC:
            self._procs.forget(pid)
            self._wanted.pop(pid, None)
            # Read /proc now, while the program surely exists: a short-lived client
            # (curl) may be gone by the time its records are handled.
            self._procs.lookup(pid=pid, comm=record.comm)
            self._rescans.add(pid, delays_s=(0.0, 0.1))
        elif record.kind is Kind.MMAP:
            # The tracepoint fires at syscall entry; the mapping exists a moment later.
            self._rescans.add(pid, delays_s=(0.005, 0.1))
        elif record.kind is Kind.EXIT:
            process = self._procs.lookup(pid=pid, comm=record.comm)
            self._procs.forget(pid)
            self._wanted.pop(pid, None)
            self._rescans.add(pid, delays_s=(0.0,), forget=True)
            for ssl, egress_end in self._conns.pop_pid(pid):
                self._batch.append(
                    Chunk(
                        conn=ConnKey(source="bpf", pid=pid, handle=ssl),
                        direction=Direction.EGRESS,
                        offset=egress_end,
                        ts_ns=record.ts_ns + self._wall_offset_ns,
                        data=b"",
                        closed=True,
                        process=process,
                    )
                )

    def _is_wanted(self, pid: int, comm: str) -> bool:
        wanted = self._wanted.get(pid)
        if wanted is not None:
            return wanted
        s = self.settings
        info = self._procs.lookup(pid=pid, comm=comm)
        wanted = (
            (not s.pids or pid in s.pids)
            and (not s.comms or info.comm in s.comms)
            and (not s.exes or info.exe in s.exes)
        )
        if len(self._wanted) > 65536:
            self._wanted.clear()
        self._wanted[pid] = wanted
        if not wanted and self._bpf is not None:
            # From now on the probes bail out in the kernel for this process.
            self._bpf[b"lumen_skip"][ctypes.c_uint32(pid)] = ctypes.c_uint8(1)
        return wanted

    def _on_conn_record(self, fields: RecordFields) -> None:
        kind, ts_ns, pid, tid, uid, cgroup_id, comm, ssl, direction, offset, lost, data = fields
        counters = self._counters
        counters["records"] += 1
        if not self._is_wanted(pid, comm):
            counters["filtered_records"] += 1
            return
        if kind is Kind.CLOSE:
            self._conns.close(pid, ssl)
            counters["closed"] += 1
        else:
            counters["bytes"] += len(data)
            if offset == 0 and direction is Direction.EGRESS:
                self._blind.plaintext(pid, ts_ns)  # a new SSL connection
            self._conns.advance(pid, ssl, direction, offset + len(data) + lost)
        process = self._procs.lookup(pid=pid, tid=tid, comm=comm, uid=uid, cgroup_id=cgroup_id)
        chunk = make_chunk(fields, wall_offset_ns=self._wall_offset_ns, process=process)
        self._batch.append(chunk)

    def _flush(self) -> None:
        # Chunks wait in record order in _batch and go over once per ring batch.
        batch = self._batch
        if not batch:
            return
        taken = put_all(self.chunks, batch)
        self._counters["chunks"] += taken
        if taken < len(batch):
            self._counters["queue_full"] += len(batch) - taken
            self._queue_full_bytes += sum(len(c.data) + c.lost_bytes for c in batch[taken:])
        batch.clear()

    # ------------------------------------------------------------ control

    def ignore(self, conn: ConnKey) -> None:
        """Stop copying a connection: its probes bail out in the kernel from now on."""
        if self._bpf is None or conn.source != self.source:
            return
        self._bpf[b"lumen_ignored"][conn_struct(conn)] = ctypes.c_uint8(1)
        self._conns.close(conn.pid, conn.handle)
        self._counters["ignored_connections"] += 1

    def stop(self) -> None:
        """Stop the threads and detach every probe; queued Chunks stay in ``chunks``."""
        self._stop.set()
        self._rescans.add(0, delays_s=(0.0,), forget=True)  # wakes the discovery thread
        if self._reader is not None:
            self._reader.stop()  # reads what is left first
            self._reader = None
        self._blind.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    # ------------------------------------------------------------- status

    def drops(self) -> dict[str, dict[str, int]]:
        """Drops by reason, ``{"ringbuf_full": {"records": n, "bytes": n}, ...}`` (no budget)."""
        out = read_drops(self._bpf[b"lumen_drops"] if self._bpf is not None else None)
        del out["budget"]  # not a loss: :meth:`budget_skipped`
        out["queue_full"] = {"records": self._counters["queue_full"], "bytes": 0}
        out["queue_full"]["bytes"] = self._queue_full_bytes
        return out

    def _program_status(self) -> dict[str, Any]:
        job = self.compile_job
        if job is None:
            return {}
        return {
            "cached": job.cached,
            "seconds": round(job.seconds, 3),
            "uprobes": self._bpf.uprobe_count() if self._bpf is not None else 0,
        }

    def budget_skipped(self) -> dict[str, int]:
        """Calls (``records``) and ``bytes`` of non-LLM connections not copied (the budget)."""
        return read_drops(self._bpf[b"lumen_drops"] if self._bpf else None)["budget"]

    def kernel_skips(self) -> set[int]:
        """Processes whose calls the probes now drop in the kernel (filtered or excluded)."""
        if self._bpf is None:
            return set()
        return {key.value for key in self._bpf[b"lumen_skip"]}

    def status(self) -> dict[str, Any]:
        """Hooked files with the pids using them, counters, drops by reason, settings."""
        with self._lock:
            attached = dict(self._attached)
        hooked = []
        skipped = []
        for target in list(self._discovery.files.values()):
            pids = sorted(p for p in list(target.pids) if os.path.exists(f"/proc/{p}"))
            if target.path in attached:
                hooked.append(
                    {
                        "path": target.path,
                        "kind": target.kind,
                        "library": target.library.name if target.library else "",
                        "probes": attached[target.path],
                        "pids": pids,
                        "error": self._attach_errors.get(target.path, ""),
                    }
                )
            elif target.skipped not in (NO_TLS_SYMBOLS, "unreadable") or target.symbols:
                # Includes a row's own reasons ("go…", "static BoringSSL, functions not located").
                skipped.append({"path": target.path, "reason": target.skipped, "pids": pids})
        drops = self.drops()
        blind = self._blind.status()
        dropped = {reason: d["records"] for reason, d in drops.items()}
        dropped.update(blind["dropped"])
        return {
            "source": self.source,
            "running": self._bpf is not None and not self._stop.is_set(),
            "hooked": hooked,
            "skipped": skipped,
            "counters": dict(self._counters),
            "dropped": dropped,
            "dropped_bytes": {reason: d["bytes"] for reason, d in drops.items()},
            "budget_skipped": self.budget_skipped(),
            "queue_depth": self.chunks.qsize(),
            "kernel_skipped_processes": len(self.kernel_skips()),
            "settings": asdict(self.settings),
            "record_header_bytes": HEADER_SIZE,
            "ring_buffers": self._reader.fill() if self._reader is not None else {},
            "ring_late_reads": self._reader.late_reads if self._reader is not None else 0,
            "program": self._program_status(),
            "blind_spots": blind,
        }
