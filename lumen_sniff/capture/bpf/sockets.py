"""Load ``bpf/lumen_sockets.bpf.c``: new TLS connections, their host and their process.

The program is its own bcc object with its own ring buffer, so the uprobe
capture never waits on it and a kernel that refuses it (no cgroup v2, an
exclusive program already on the root cgroup) costs only the blind-spot
report: :meth:`SocketWatch.start` raises, the loader logs it and says so in
status. The packet program is attached to the root cgroup v2 (found in
/proc/mounts) through a BPF link, which the kernel removes when the link's
file descriptor closes, so a killed daemon leaves nothing attached.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lumen_sniff.capture.bpf.btf import member_offsets_bytes
from lumen_sniff.capture.bpf.ringrecords import HEADER_PATH
from lumen_sniff.capture.bpf.sockrecords import SOCK_COUNTERS, SockEvent, decode_sock_event
from lumen_sniff.errors import BpfUnavailable

__all__ = ["SOCKETS_SOURCE_PATH", "SocketWatch", "cgroup2_root"]

log = logging.getLogger("lumen_sniff.capture.bpf.sockets")

SOCKETS_SOURCE_PATH = HEADER_PATH.parent / "lumen_sockets.bpf.c"
"""The socket program."""

_BPF_LINK_CREATE = 28
_BPF_CGROUP_INET_EGRESS = 1
_SYS_BPF = {"x86_64": 321, "aarch64": 280}


def cgroup2_root(mounts: str) -> Path | None:
    """The cgroup v2 mount point (the shortest, i.e. the outermost), from /proc/mounts text."""
    points = [line.split()[1] for line in mounts.splitlines() if line.split()[2:3] == ["cgroup2"]]
    return Path(min(points, key=len)) if points else None


def _link_create(prog_fd: int, target_fd: int, attach_type: int) -> int:
    number = _SYS_BPF.get(platform.machine())
    if number is None:
        raise BpfUnavailable(f"no bpf syscall number known for {platform.machine()}")
    attr = (ctypes.c_uint32 * 16)(prog_fd, target_fd, attach_type, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(libc.syscall(number, _BPF_LINK_CREATE, ctypes.byref(attr), ctypes.sizeof(attr)))
    if fd < 0:
        err = ctypes.get_errno()
        raise BpfUnavailable(f"BPF_LINK_CREATE on the root cgroup: {os.strerror(err)}")
    return fd


class SocketWatch:
    """The socket program, and a thread that hands its records to ``on_event``.

    Args:
        on_event: Called on the poll thread for each decoded record.
        on_tick: Called on the poll thread after every poll (at least every 200 ms),
            for judgements that wait on time.
        cflags: Extra -D defines (task_struct offsets for the leader's comm).
        ring_bytes: Ring buffer size.
    """

    def __init__(
        self,
        on_event: Callable[[SockEvent], None],
        on_tick: Callable[[], None],
        *,
        cflags: tuple[str, ...] = (),
        ring_bytes: int = 1 << 20,
    ) -> None:
        self._on_event = on_event
        self._on_tick = on_tick
        self._extra_cflags = cflags
        self._ring_bytes = ring_bytes
        self._bpf: Any = None
        self._link_fd = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
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

    def start(self) -> None:
        """Compile, attach the tracepoint and the root cgroup egress program, start polling.

        Raises:
            BpfUnavailable: the program does not load or cannot be attached.
        """
        import bcc

        root = cgroup2_root(Path("/proc/mounts").read_text())
        if root is None:
            raise BpfUnavailable("no cgroup v2 mount in /proc/mounts")
        try:
            self._bpf = bcc.BPF(text=SOCKETS_SOURCE_PATH.read_bytes(), cflags=self.cflags())
            fn = self._bpf.load_func(b"lumen_egress", bcc.BPF.CGROUP_SKB)
        except Exception as exc:  # bcc raises bare Exception
            self.stop()
            raise BpfUnavailable(f"the socket program did not load: {exc}") from exc
        cgroup_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._link_fd = _link_create(fn.fd, cgroup_fd, _BPF_CGROUP_INET_EGRESS)
        except BpfUnavailable:
            self.stop()
            raise
        finally:
            os.close(cgroup_fd)
        self.cgroup = root
        self._bpf[b"lumen_sockets"].open_ring_buffer(self._on_record)
        self._thread = threading.Thread(target=self._poll, name="lumen-bpf-sockets", daemon=True)
        self._thread.start()

    def _on_record(self, _ctx: Any, data: Any, size: int) -> int:
        try:
            event = decode_sock_event(ctypes.string_at(data, size))
            if event is None:
                self.bad_records += 1
            else:
                self._on_event(event)
        except Exception:  # never unwind into bcc's C callback
            log.exception("socket record handling failed")
        return 0

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._bpf.ring_buffer_poll(200)
            try:
                self._on_tick()
            except Exception:  # the thread must keep polling
                log.exception("socket tick failed")

    def program_fds(self) -> dict[str, int]:
        """File descriptors of the loaded programs, by name (for run-time statistics)."""
        import bcc

        if self._bpf is None:
            return {}
        return {
            "tracepoint inet_sock_set_state": self._bpf.load_func(
                b"tracepoint__sock__inet_sock_set_state", bcc.BPF.TRACEPOINT
            ).fd,
            "cgroup_skb egress": self._bpf.load_func(b"lumen_egress", bcc.BPF.CGROUP_SKB).fd,
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
        """Stop polling, close the link (detaching the packet program) and free the program."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._link_fd >= 0:
            os.close(self._link_fd)
            self._link_fd = -1
        if self._bpf is not None:
            try:
                self._bpf.cleanup()
            except Exception as exc:  # bcc raises bare Exception
                log.warning("detaching the socket program: %s", exc)
            self._bpf = None
