"""Load ``bpf/lumen_sockets.bpf.c``: new TLS connections, their host and their process.

The program is its own object with its own ring buffer, so a kernel that
refuses it (no cgroup v2, an exclusive program already on the root cgroup)
costs only the blind-spot report: :meth:`SocketWatch.start` raises, the loader
logs it and says so in status. It is compiled in a child (or read from the
object cache) while the capture program compiles; its records are read by the
capture's ring reader thread, which runs :meth:`SocketWatch.tick` for the
pending judgements' deadlines and otherwise sleeps. The packet program is
attached to the root cgroup v2 (found in /proc/mounts) through a BPF link,
which the kernel removes when the link's file descriptor closes, so a killed
daemon leaves nothing attached.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
from collections.abc import Callable
from pathlib import Path

from lumen_sniff.capture.bpf.btf import member_offsets_bytes
from lumen_sniff.capture.bpf.ringrecords import HEADER_PATH
from lumen_sniff.capture.bpf.runtime.cache import CompileJob, CompileRequest
from lumen_sniff.capture.bpf.runtime.loaded import CGROUP_SKB, TRACEPOINT, BpfObject, ProgKind
from lumen_sniff.capture.bpf.runtime.ringbuf import RingReader
from lumen_sniff.capture.bpf.runtime.ringwalk import Spans
from lumen_sniff.capture.bpf.sockrecords import SOCK_COUNTERS, SockEvent, decode_sock_event
from lumen_sniff.errors import BpfUnavailable

__all__ = ["SOCKETS_SOURCE_PATH", "SOCKET_PROGRAMS", "SocketWatch", "cgroup2_root"]

log = logging.getLogger("lumen_sniff.capture.bpf.sockets")

SOCKETS_SOURCE_PATH = HEADER_PATH.parent / "lumen_sockets.bpf.c"
"""The socket program."""

_BPF_CGROUP_INET_EGRESS = 1
_TRACEPOINT_FN = "tracepoint__sock__inet_sock_set_state"
_EGRESS_FN = "lumen_egress"

SOCKET_PROGRAMS: dict[str, ProgKind] = {
    _TRACEPOINT_FN: ProgKind(prog_type=TRACEPOINT, tracepoint="sock:inet_sock_set_state"),
    _EGRESS_FN: ProgKind(prog_type=CGROUP_SKB),
}
"""How each function of the socket program is loaded."""


def cgroup2_root(mounts: str) -> Path | None:
    """The cgroup v2 mount point (the shortest, i.e. the outermost), from /proc/mounts text."""
    points = [line.split()[1] for line in mounts.splitlines() if line.split()[2:3] == ["cgroup2"]]
    return Path(min(points, key=len)) if points else None


class SocketWatch:
    """The socket program; its records go to ``on_event`` on the ring reader's thread.

    Args:
        on_event: Called on the reader thread for each decoded record.
        on_tick: Called on the reader thread after records and when ``next_due`` says.
        next_due: Seconds until ``on_tick`` must run again, or None (nothing pending).
        cflags: Extra -D defines (task_struct offsets for the leader's comm).
        ring_bytes: Ring buffer size.
    """

    def __init__(
        self,
        on_event: Callable[[SockEvent], None],
        on_tick: Callable[[], None],
        *,
        next_due: Callable[[], float | None] = lambda: 0.2,
        cflags: tuple[str, ...] = (),
        ring_bytes: int = 1 << 20,
    ) -> None:
        self._on_event = on_event
        self._on_tick = on_tick
        self._next_due = next_due
        self._extra_cflags = cflags
        self._ring_bytes = ring_bytes
        self._bpf: BpfObject | None = None
        self._job: CompileJob | None = None
        self.bad_records = 0
        self.cgroup: Path | None = None

    def cflags(self) -> list[str]:
        """The -D defines the program is compiled with."""
        flags = [
            f"-I{HEADER_PATH.parent}",
            f"-DLUMEN_SOCK_RINGBUF_PAGES={max(1, self._ring_bytes // os.sysconf('SC_PAGE_SIZE'))}",
            *self._extra_cflags,
        ]
        try:
            off = member_offsets_bytes("tcp_sock", ("bytes_sent", "bytes_received"))
            flags.append(f"-DLUMEN_TCP_BYTES_SENT_OFF={off['bytes_sent']}")
            flags.append(f"-DLUMEN_TCP_BYTES_RECEIVED_OFF={off['bytes_received']}")
        except (OSError, KeyError, ValueError) as exc:
            log.warning("no BTF for tcp_sock byte counters (%s): unseen bytes are 0", exc)
        return flags

    def begin(self, cache_dir: Path | None) -> CompileJob:
        """Start obtaining the compiled program (a compile child on a cold cache)."""
        request = CompileRequest(
            name="sockets", text=SOCKETS_SOURCE_PATH.read_text(), cflags=tuple(self.cflags())
        )
        self._job = CompileJob(request, cache_dir)
        return self._job

    def start(self, reader: RingReader) -> None:
        """Load, attach the tracepoint and the root cgroup egress program, read into ``reader``.

        Raises:
            BpfUnavailable: the program does not compile, load or attach.
        """
        root = cgroup2_root(Path("/proc/mounts").read_text())
        if root is None:
            raise BpfUnavailable("no cgroup v2 mount in /proc/mounts")
        if self._job is None:
            self.begin(None)
        assert self._job is not None
        try:
            self._bpf = BpfObject(self._job.result(), SOCKET_PROGRAMS)
            cgroup_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                self._bpf.link(_EGRESS_FN, cgroup_fd, _BPF_CGROUP_INET_EGRESS)
            finally:
                os.close(cgroup_fd)
            self._bpf.attach_tracepoints()
            reader.add(self._bpf[b"lumen_sockets"], self._on_records)
        except (OSError, KeyError, ValueError) as exc:
            self.stop()
            raise BpfUnavailable(f"the socket program did not load: {exc}") from exc
        except BpfUnavailable:
            self.stop()
            raise
        reader.add_tick(self.tick)
        self.cgroup = root

    def tick(self) -> float | None:
        """Judge what waited long enough; the seconds until the next judgement is due."""
        if self._bpf is None:
            return None
        self._on_tick()
        return self._next_due()

    def _on_records(self, buf: mmap.mmap, spans: Spans) -> None:
        for at, size in spans:
            try:
                event = decode_sock_event(buf[at : at + size])
                if event is None:
                    self.bad_records += 1
                else:
                    self._on_event(event)
            except Exception:  # one bad record must not cost the rest of the batch
                log.exception("socket record handling failed")

    def program_fds(self) -> dict[str, int]:
        """File descriptors of the loaded programs, by name (for run-time statistics)."""
        if self._bpf is None:
            return {}
        fds = self._bpf.program_fds()
        return {
            "tracepoint inet_sock_set_state": fds[_TRACEPOINT_FN],
            "cgroup_skb egress": fds[_EGRESS_FN],
        }

    def counters(self) -> dict[str, int]:
        """The program's counters by name, summed over CPUs."""
        out = dict.fromkeys(SOCK_COUNTERS, 0)
        if self._bpf is None:
            return out
        table = self._bpf[b"lumen_sock_counts"]
        for index, name in enumerate(SOCK_COUNTERS):
            out[name] = sum(int(v) for v in table[ctypes.c_int(index)])
        out["bad_records"] = self.bad_records
        return out

    def stop(self) -> None:
        """Close the link (detaching the packet program) and free the program.

        The ring reader that read its records must be stopped first.
        """
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None
